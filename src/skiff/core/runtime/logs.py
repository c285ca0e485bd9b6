"""Container log files: where they live and how they are streamed.

Each run of a container appends its stdout and stderr to
`<home>/pods/<namespace>_<name>_<uid>/<container>/<restartCount>.log`
(process.py opens it for the child). `kubectl logs` reads the current run,
--previous the one before. stream() yields a file's bytes, optionally only
the last lines or first bytes, and with follow keeps yielding what is
appended until the run is over. NodeRuntime.log_path/follow_log (node.py)
choose the file; the API server's log handler iterates the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

CHUNK = 64 * 1024
POLL_SECONDS = 0.1


def pod_dir(home: Path, namespace: str, name: str, uid: str) -> Path:
    return home / "pods" / f"{namespace}_{name}_{uid}"


def log_file(container_dir: Path, restart_count: int) -> Path:
    return container_dir / f"{restart_count}.log"


def runs(container_dir: Path) -> list[int]:
    """Restart counts that have a log file, ascending."""
    out = []
    for p in container_dir.glob("*.log"):
        if p.stem.isdigit():
            out.append(int(p.stem))
    return sorted(out)


def tail_offset(path: Path, lines: int) -> int:
    """Byte offset where the last `lines` lines of the file begin."""
    if lines <= 0:
        return path.stat().st_size
    with path.open("rb") as f:
        f.seek(0, 2)
        end = pos = f.tell()
        newlines = 0
        while pos > 0:
            step = min(CHUNK, pos)
            pos -= step
            f.seek(pos)
            block = f.read(step)
            # a trailing newline ends the last line, it does not start another
            if pos + step == end and block.endswith(b"\n"):
                block = block[:-1]
            idx = len(block)
            while True:
                idx = block.rfind(b"\n", 0, idx)
                if idx == -1:
                    break
                newlines += 1
                if newlines == lines:
                    return pos + idx + 1
        return 0


async def stream(path: Path, follow: bool = False, live: Callable[[], bool] = lambda: False,
                 tail_lines: int | None = None,
                 limit_bytes: int | None = None) -> AsyncIterator[bytes]:
    """The file's bytes; with follow, then what is appended while live() holds."""
    offset = tail_offset(path, tail_lines) if tail_lines is not None else 0
    left = limit_bytes
    with path.open("rb") as f:
        f.seek(offset)
        while True:
            data = f.read(CHUNK if left is None else min(CHUNK, left))
            if data:
                if left is not None:
                    left -= len(data)
                yield data
                if left is not None and left <= 0:
                    return
                continue
            if not follow or not live():
                # one last read: the run may have written just before it ended
                rest = f.read() if left is None else f.read(left)
                if rest:
                    yield rest
                return
            await asyncio.sleep(POLL_SECONDS)
