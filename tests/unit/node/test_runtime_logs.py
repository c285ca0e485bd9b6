"""logs: file naming, rotation decisions, and the writer on a real FIFO in a temp dir."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from skiff.node import logformat, logs


def test_paths_and_runs(tmp_path: Path) -> None:
    d = logs.pod_dir(tmp_path, "ns", "p", "uid") / "c"
    assert d == tmp_path / "pods" / "ns_p_uid" / "c"
    d.mkdir(parents=True)
    for n in (0, 2, 10):
        logs.log_file(d, n).touch()
    (d / "pid").touch()
    (d / "2.log.1").touch()
    assert logs.runs(d) == [0, 2, 10]
    for seq in (10, 9, 1):
        (d / f"0.log.{seq}").touch()
    (d / "0.log.tmp").touch()
    assert logs.run_files(d / "0.log") == [d / "0.log.1", d / "0.log.9", d / "0.log.10",
                                           d / "0.log"]


def test_rotation_keeps_max_files_with_the_current_one() -> None:
    assert logs.rotated_to_delete([3, 1, 2, 4], 3) == [1, 2]
    assert logs.rotated_to_delete([1, 2], 3) == []
    assert logs.rotated_to_delete([5], 1) == [5]


def test_only_the_previous_run_is_kept() -> None:
    assert logs.stale_runs([0, 1, 2, 3], 4) == [0, 1, 2]
    assert logs.stale_runs([0], 1) == []


def test_throttle_is_a_bucket_of_loop_seconds() -> None:
    left, pause = logs.throttle(0.05, idle=0.0, busy=0.01, share=0.25, burst=0.05)
    assert abs(left - 0.04) < 1e-9 and pause == 0.0
    # over budget: pause until the share of the pause pays the debt back
    left, pause = logs.throttle(0.0, idle=0.0, busy=0.01, share=0.25, burst=0.05)
    assert abs(pause - 0.04) < 1e-9
    # idle time refills, up to the burst
    left, _ = logs.throttle(0.0, idle=100.0, busy=0.0, share=0.25, burst=0.05)
    assert left == 0.05


def _text(paths: list[Path]) -> bytes:
    return logformat.Renderer().render(b"".join(p.read_bytes() for p in paths))


async def _write_through_fifo(w: logs.LogWriter, payload: bytes) -> None:
    fifo = w.start()
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)      # what the child's stdout opens
    try:
        view = memoryview(payload)
        while view:
            try:
                view = view[os.write(fd, view[:65536]):]
            except BlockingIOError:
                await asyncio.sleep(0.001)       # the pipe is full: the writer's turn
    finally:
        os.close(fd)
    await w.close()


def test_writer_rotates_within_the_bound(tmp_path: Path) -> None:
    lines = b"".join(b"line %06d\n" % i for i in range(300_000))     # more than a pipe holds
    w = logs.LogWriter(tmp_path, 0, max_size=4096, max_files=3)
    asyncio.run(asyncio.wait_for(_write_through_fifo(w, lines), 30))
    files = logs.run_files(tmp_path / "0.log")
    assert len(files) == 3
    assert all(p.stat().st_size <= 4096 for p in files)
    text = _text(files)
    assert text.endswith(b"line 299999\n")
    assert lines.endswith(text)                       # the newest lines, in order, none torn
    assert not (tmp_path / "0.pipe").exists()


def test_writer_notes_and_drops_old_runs(tmp_path: Path) -> None:
    for n in (0, 1, 2):
        logs.log_file(tmp_path, n).write_bytes(b"old\n")
    (tmp_path / "0.log.1").write_bytes(b"old\n")
    (tmp_path / "1.pipe").touch()                 # a crash left it

    async def body() -> None:
        w = logs.LogWriter(tmp_path, 3)
        w.start()
        w.note("failed to start container process: boom: unknown")
        await w.close()

    asyncio.run(asyncio.wait_for(body(), 10))
    assert logs.runs(tmp_path) == [2, 3]
    assert not (tmp_path / "0.log.1").exists()
    assert not list(tmp_path.glob("*.pipe"))
    assert _text([tmp_path / "3.log"]) == b"failed to start container process: boom: unknown\n"


def test_writer_ends_a_last_line_without_newline(tmp_path: Path) -> None:
    w = logs.LogWriter(tmp_path, 0)
    asyncio.run(asyncio.wait_for(_write_through_fifo(w, b"a\nno newline"), 10))
    assert _text([tmp_path / "0.log"]) == b"a\nno newline\n"
