"""logread: where a pods/log read starts, the query, and streaming (small files in a temp dir)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from skiff.node import logformat, logread

SEC = 1_000_000_000
T0 = 1_700_000_000 * SEC


def make(lines: list[tuple[int, bytes]], max_line: int = logformat.MAX_LINE) -> bytes:
    """Records for (time, bytes written) pairs, as the writer frames them."""
    stamp, f = logformat.Stamper(), logformat.Framer(max_line=max_line)
    out = b"".join(f.feed(data, stamp(t)) for t, data in lines)
    return out + f.flush(stamp(lines[-1][0] if lines else 0))


def text(data: bytes, timestamps: bool = False) -> bytes:
    return logformat.Renderer(timestamps).render(data)


def tail_of(data: bytes, n: int) -> bytes:
    off, _ = logread.tail_start(io.BytesIO(data), len(data), n)
    rest = data[off:]
    return text(rest[:rest.rfind(b"\n") + 1])        # stream() holds a torn record back


@pytest.mark.parametrize("n, want", [(0, b""), (1, b"c\n"), (2, b"b\nc\n"), (9, b"a\nb\nc\n")])
def test_tail_counts_lines_from_the_end(n: int, want: bytes) -> None:
    data = make([(T0, b"a\nb\nc\n")])
    assert tail_of(data, n) == want


def test_tail_takes_a_long_line_whole_and_skips_a_torn_record() -> None:
    data = make([(T0, b"a\n0123456789"), (T0, b"\nz\n")], max_line=4)
    assert data.count(b" P ") == 2
    assert tail_of(data, 2) == b"0123456789\nz\n"
    torn = data + b"2023-11-14T22:13:20.000000000Z stdo"
    assert tail_of(torn, 1) == b"z\n"


def test_tail_reads_backwards_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logread, "BLOCK", 100)        # records straddle every block edge
    data = make([(T0, b"".join(b"line %d\n" % i for i in range(500)))])
    assert tail_of(data, 3) == b"line 497\nline 498\nline 499\n"
    off, found = logread.tail_start(io.BytesIO(data), len(data), 1000)
    assert (off, found) == (0, 500)


def test_since_finds_the_first_recent_record_by_bisection() -> None:
    data = make([(T0 + i * SEC, b"at %d\n" % i) for i in range(100)])
    f = io.BytesIO(data)
    assert text(data[logread.since_start(f, len(data), T0 + 42 * SEC):]).startswith(b"at 42\n")
    assert logread.since_start(f, len(data), T0 + 1000 * SEC) == len(data)
    assert logread.since_start(f, len(data), 0) == 0


def test_options_decode_the_query() -> None:
    now = T0
    o = logread.options({"tailLines": "3", "limitBytes": "10", "sinceSeconds": "5",
                         "timestamps": "true", "follow": "true"}, now)
    assert o == logread.Options(3, 10, now - 5 * SEC, True, True)
    o = logread.options({"sinceTime": "2023-11-14T22:13:20Z"}, now)
    assert isinstance(o, logread.Options) and o.since_ns == T0
    assert "greater than or equal to 0" in str(logread.options({"tailLines": "-1"}, now))
    assert "integer" in str(logread.options({"limitBytes": "x"}, now))
    assert "at most one" in str(logread.options({"sinceSeconds": "1", "sinceTime": "x"}, now))
    assert "RFC3339" in str(logread.options({"sinceTime": "noon"}, now))


def pod(count: int, state: str, last: bool = False, uid: str = "u") -> dict[str, object]:
    cs = {"name": "c", "restartCount": count, "state": {state: {}},
          "lastState": {"terminated": {}} if last else {}}
    return {"metadata": {"uid": uid}, "status": {"containerStatuses": [cs]}}


def test_run_live_by_the_stored_status() -> None:
    assert logread.run_live(pod(0, "running"), "u", "c", 0)
    assert logread.run_live(pod(0, "waiting"), "u", "c", 0)               # not written yet
    assert not logread.run_live(pod(0, "terminated"), "u", "c", 0)
    assert not logread.run_live(pod(0, "waiting", last=True), "u", "c", 0)  # CrashLoopBackOff
    assert not logread.run_live(pod(1, "running"), "u", "c", 0)           # a later run
    assert logread.run_live(pod(0, "terminated"), "u", "c", 1)            # status lags
    assert not logread.run_live(pod(0, "running", uid="v"), "u", "c", 0)  # another pod


def collect(current: Path, opts: logread.Options, live: object = lambda: False) -> bytes:
    async def body() -> bytes:
        return b"".join([c async for c in logread.stream(current, opts, live, poll=0.01)])  # type: ignore[arg-type]
    return asyncio.run(asyncio.wait_for(body(), 10))


def test_stream_reads_across_rotated_files(tmp_path: Path) -> None:
    (tmp_path / "0.log.1").write_bytes(make([(T0, b"a\nb\n")]))
    (tmp_path / "0.log.2").write_bytes(make([(T0 + SEC, b"c\n")]))
    (tmp_path / "0.log").write_bytes(make([(T0 + 2 * SEC, b"d\ne\n")]))
    cur = tmp_path / "0.log"
    assert collect(cur, logread.Options()) == b"a\nb\nc\nd\ne\n"
    assert collect(cur, logread.Options(tail_lines=4)) == b"b\nc\nd\ne\n"
    assert collect(cur, logread.Options(tail_lines=2)) == b"d\ne\n"
    assert collect(cur, logread.Options(since_ns=T0 + SEC)) == b"c\nd\ne\n"
    # both: the later start wins
    assert collect(cur, logread.Options(tail_lines=4, since_ns=T0 + 2 * SEC)) == b"d\ne\n"
    assert collect(cur, logread.Options(limit_bytes=5)) == b"a\nb\nc"
    assert collect(cur, logread.Options(tail_lines=1, timestamps=True)) == \
        b"2023-11-14T22:13:22.000000000Z e\n"


def test_follow_continues_into_the_next_file_after_a_rotation(tmp_path: Path) -> None:
    cur = tmp_path / "0.log"
    cur.write_bytes(make([(T0, b"one\n")]))
    done = asyncio.Event()

    async def writer() -> None:
        await asyncio.sleep(0.05)
        with cur.open("ab") as f:
            f.write(make([(T0, b"two\n")]))
        cur.rename(tmp_path / "0.log.1")                 # what LogWriter._rotate does
        await asyncio.sleep(0.05)
        cur.write_bytes(make([(T0, b"three\n")]))
        await asyncio.sleep(0.05)
        done.set()

    async def body() -> bytes:
        task = asyncio.ensure_future(writer())
        got = b"".join([c async for c in logread.stream(
            cur, logread.Options(follow=True), lambda: not done.is_set(), poll=0.01)])
        await task
        return got

    assert asyncio.run(asyncio.wait_for(body(), 10)) == b"one\ntwo\nthree\n"


def test_without_follow_what_is_written_during_the_read_is_not_in_the_answer(
        tmp_path: Path) -> None:
    # The current file has just been rotated (empty); the last line is in the one before. A
    # writer still going appends while the answer is read: `--tail=1` stays one line.
    (tmp_path / "0.log.1").write_bytes(make([(T0, b"a\nb\n")]))
    cur = tmp_path / "0.log"
    cur.write_bytes(b"")

    async def body() -> bytes:
        gen = logread.stream(cur, logread.Options(tail_lines=1))
        got = await gen.__anext__()
        with cur.open("ab") as f:
            f.write(make([(T0 + SEC, b"c\nd\n")]))
        return got + b"".join([c async for c in gen])

    assert asyncio.run(asyncio.wait_for(body(), 10)) == b"b\n"
