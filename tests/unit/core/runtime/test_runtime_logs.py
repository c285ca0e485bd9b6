"""logs: file naming and tail offsets (small files in a temp dir)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from skiff.core.runtime import logs


@pytest.mark.parametrize("content, n, tail", [
    (b"a\nb\nc\n", 1, b"c\n"),
    (b"a\nb\nc\n", 2, b"b\nc\n"),
    (b"a\nb\nc\n", 5, b"a\nb\nc\n"),
    (b"a\nb\nc", 1, b"c"),
    (b"a\nb\nc\n", 0, b""),
    (b"", 3, b""),
])
def test_tail_offset(tmp_path: Path, content: bytes, n: int, tail: bytes) -> None:
    f = tmp_path / "0.log"
    f.write_bytes(content)
    assert content[logs.tail_offset(f, n):] == tail


def test_paths_and_runs(tmp_path: Path) -> None:
    d = logs.pod_dir(tmp_path, "ns", "p", "uid") / "c"
    assert d == tmp_path / "pods" / "ns_p_uid" / "c"
    d.mkdir(parents=True)
    for n in (0, 2, 10):
        logs.log_file(d, n).touch()
    (d / "pid").touch()
    assert logs.runs(d) == [0, 2, 10]


def test_stream_limit_bytes(tmp_path: Path) -> None:
    f = tmp_path / "0.log"
    f.write_bytes(b"0123456789")

    async def collect() -> bytes:
        return b"".join([c async for c in logs.stream(f, limit_bytes=4)])

    assert asyncio.run(collect()) == b"0123"
