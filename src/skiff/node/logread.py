"""Reading a container run's log for `kubectl logs`: seek, never load a file whole.

A run's log is a few files (logs.run_files: rotated ones, then the current
one) of CRI records (logformat.py). stream() serves the pods/log options:
tailLines by reading backwards in blocks from the end, sinceSeconds/sinceTime
by a binary search on the records' times, limitBytes by stopping there,
timestamps by keeping each line's time, and follow by polling the current
file, moving on to the next file when the writer (logs.LogWriter) rotates
it, until the run is no longer live. Memory stays at a few blocks whatever
the size of the log. Used by ApiServer._log (apiserver/server.py) and
NodeRuntime.follow_log (node.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from skiff.node import logformat, logs

BLOCK = 64 * 1024
POLL_SECONDS = 0.1
PREFIX_MAX = 64        # a record's timestamp, stream and tag fit in this
SCAN = 4096            # a binary search probe's read: most records are shorter


@dataclass(frozen=True)
class Options:
    """The pods/log query, decoded."""
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since_ns: int | None = None        # epoch ns: only records at or after it
    timestamps: bool = False
    follow: bool = False


def options(query: Mapping[str, str], now_ns: int) -> Options | str:
    """The pods/log query as Options, or why it is invalid (the API server's 400)."""
    def number(key: str, least: int) -> int | str | None:
        raw = query.get(key)
        if raw is None or raw == "":
            return None
        try:
            value = int(raw)
        except ValueError:
            return f"{key}: Invalid value: {raw!r}: must be an integer"
        if value < least:
            return f"{key}: Invalid value: {value}: must be greater than or equal to {least}"
        return value

    tail, limit, since_s = number("tailLines", 0), number("limitBytes", 1), \
        number("sinceSeconds", 1)
    for v in (tail, limit, since_s):
        if isinstance(v, str):
            return v
    since_time = query.get("sinceTime")
    if since_s is not None and since_time:
        return "at most one of `sinceTime` or `sinceSeconds` may be specified"
    since: int | None = None
    if isinstance(since_s, int):
        since = now_ns - since_s * 1_000_000_000
    elif since_time:
        since = logformat.parse_timestamp(since_time)
        if since is None:
            return f"sinceTime: Invalid value: {since_time!r}: not an RFC3339 time"
    truthy = ("true", "1", "yes")
    return Options(tail_lines=tail if isinstance(tail, int) else None,
                   limit_bytes=limit if isinstance(limit, int) else None, since_ns=since,
                   timestamps=(query.get("timestamps") or "").lower() in truthy,
                   follow=(query.get("follow") or "").lower() in truthy)


def run_live(pod: Mapping[str, Any], uid: str, container: str, number: int) -> bool:
    """Whether run `number` of the container may still write, by the pod's stored status.

    The runtime writes the run's last lines before it records the run's end
    (pod.py), so once this turns false one more read gets everything.
    """
    if (pod.get("metadata") or {}).get("uid") != uid:
        return False
    status = pod.get("status") or {}
    for cs in [*(status.get("initContainerStatuses") or []),
               *(status.get("containerStatuses") or [])]:
        if cs.get("name") != container:
            continue
        count = int(cs.get("restartCount") or 0)
        if count != number:
            return count < number        # the status has not caught up with this run yet
        state = cs.get("state") or {}
        # waiting after a run (CrashLoopBackOff) is over; waiting before the first is not
        return "running" in state or ("waiting" in state
                                      and "terminated" not in (cs.get("lastState") or {}))
    return True


# ---- finding where to start ---------------------------------------------------------------

def tail_start(f: BinaryIO, size: int, lines: int) -> tuple[int, int]:
    """Where the last `lines` lines of the file begin, and how many lines were found.

    Reads backwards in blocks. Lines are full records (F); the parts (P) of a
    long line belong to the F after them. A torn record at the very end (a
    write in progress) is not a line yet. When the file has fewer lines, the
    start is 0 and the count says how many more an older file must give.
    """
    if lines <= 0:
        return size, 0
    found = 0
    rec_end = -1           # end of the record being bounded; unknown until a newline is seen
    pos = size
    later = b""            # the first bytes after this block: prefixes of records starting there
    while pos > 0:
        step = min(BLOCK, pos)
        pos -= step
        f.seek(pos)
        block = f.read(step)
        window = block + later
        hi = len(block)
        while (nl := block.rfind(b"\n", 0, hi)) >= 0:
            hi = nl
            if rec_end < 0:
                rec_end = pos + nl + 1
                continue
            if _is_line(window[nl + 1:nl + 1 + PREFIX_MAX]):
                found += 1
                if found == lines + 1:
                    return rec_end, lines
            rec_end = pos + nl + 1
        later = block[:PREFIX_MAX]
    if rec_end > 0 and _is_line(later):
        found += 1
        if found == lines + 1:
            return rec_end, lines
    return 0, found


def _is_line(prefix: bytes) -> bool:
    return logformat.record_tag(prefix) != logformat.PARTIAL


def _record_at_or_after(f: BinaryIO, offset: int, size: int) -> tuple[int, int | None] | None:
    """The first record starting at or after `offset`: (its start, its time)."""
    pos = offset
    if offset > 0:
        f.seek(offset - 1)
        while True:
            chunk = f.read(SCAN)
            if not chunk:
                return None
            nl = chunk.find(b"\n")
            if nl >= 0:
                pos = f.tell() - len(chunk) + nl + 1
                break
    if pos >= size:
        return None
    f.seek(pos)
    return pos, logformat.record_time(f.read(PREFIX_MAX))


def since_start(f: BinaryIO, size: int, since_ns: int) -> int:
    """The start of the first record at or after `since_ns` (`size` if none): binary search.

    Records are appended in time order, so "the record at or after this
    offset is recent enough" flips once, from false to true, along the file.
    """
    def recent(offset: int) -> bool:
        rec = _record_at_or_after(f, offset, size)
        return rec is None or rec[1] is None or rec[1] >= since_ns

    lo, hi = 0, size
    while lo < hi:
        mid = (lo + hi) // 2
        if recent(mid):
            hi = mid
        else:
            lo = mid + 1
    rec = _record_at_or_after(f, lo, size)
    return rec[0] if rec is not None else size


def start_position(files: list[BinaryIO], sizes: list[int], opts: Options) -> tuple[int, int]:
    """(index of the file, offset in it) where the output begins."""
    index, offset = 0, 0
    if opts.tail_lines is not None:
        index, offset = len(files) - 1, sizes[-1] if files else 0
        want = opts.tail_lines
        for i in range(len(files) - 1, -1, -1):
            off, found = tail_start(files[i], sizes[i], want)
            index, offset = i, off
            if found >= want or off > 0:
                break
            want -= found
    if opts.since_ns is not None:
        for i in range(index, len(files)):
            off = since_start(files[i], sizes[i], opts.since_ns)
            lower = offset if i == index else 0
            if off < sizes[i] or i == len(files) - 1:
                # the later of the two starts, as the kubelet applies both
                return i, max(off, lower)
            index, offset = i + 1, 0
    return index, offset


# ---- streaming ----------------------------------------------------------------------------

class _Output:
    """Rendering and limitBytes: what goes out, and whether it must stop."""

    def __init__(self, opts: Options) -> None:
        self.renderer = logformat.Renderer(opts.timestamps)
        self.left = opts.limit_bytes if opts.limit_bytes and opts.limit_bytes > 0 else None
        self.carry = b""

    @property
    def done(self) -> bool:
        return self.left is not None and self.left <= 0

    def feed(self, data: bytes) -> bytes:
        """Bytes read from a file in, rendered bytes out (whole records only)."""
        data = self.carry + data if self.carry else data
        cut = data.rfind(b"\n") + 1
        self.carry = data[cut:]
        out = self.renderer.render(data[:cut])
        if self.left is not None:
            out = out[:self.left]
            self.left -= len(out)
        return out

    def next_file(self) -> None:
        # the writer rotates between whole records: nothing torn carries over
        self.carry = b""


def _open_all(paths: list[Path]) -> list[BinaryIO]:
    out: list[BinaryIO] = []
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            out.append(p.open("rb"))
    return out


async def stream(current: Path, opts: Options,
                 live: Callable[[], bool] = lambda: False,
                 poll: float = POLL_SECONDS) -> AsyncGenerator[bytes, None]:
    """The run whose current file is `current`, as `kubectl logs` prints it.

    With follow, keeps going while live() holds (the run is still going),
    and across rotations: when the file it reads is no longer the current
    one, it finishes it and opens the next one.
    """
    files = _open_all(logs.run_files(current))
    out = _Output(opts)
    try:
        if not files:
            return
        sizes = [os.fstat(f.fileno()).st_size for f in files]
        index, offset = start_position(files, sizes, opts)
        for f in files[:index]:
            f.close()
        files = files[index:]
        files[0].seek(offset)
        # Without follow, what was there when the request came: a writer still going must not
        # stretch `--tail=1` into everything it writes while the answer is read.
        left = [*sizes[index:]]
        left[0] -= offset
        ended = False
        while files:
            f = files[0]
            while not out.done:
                if opts.follow:
                    data = f.read(BLOCK)
                else:
                    data = f.read(min(BLOCK, left[0])) if left[0] > 0 else b""
                    left[0] -= len(data)
                if not data:
                    break
                chunk = out.feed(data)
                if chunk:
                    yield chunk
                # another request's turn between blocks; the loop never waits on a whole log
                await asyncio.sleep(0)
            if out.done:
                return
            if len(files) > 1:
                files.pop(0).close()
                left.pop(0)
                files[0].seek(0)        # finding the start may have moved it
                out.next_file()
                continue
            if not opts.follow:
                return
            nxt = _after(current, f)
            if nxt is not None:
                files = [nxt]
                f.close()
                out.next_file()
                continue
            if ended:
                return
            if not live():
                ended = True    # one more pass: the run may have written just before it ended
                continue
            await asyncio.sleep(poll)
    finally:
        for f in files:
            f.close()


def _after(current: Path, f: BinaryIO) -> BinaryIO | None:
    """The file to read after `f`, if `f` has been rotated; None while it is the current one.

    The writer renames the current file away and then creates a new one, so
    `f` stops being `current` (another inode, or none for a moment). The next
    file is the one rotated just after `f`, or, if the writer has already
    deleted `f` (a reader slower than max-files rotations), the oldest left.
    """
    ino = os.fstat(f.fileno()).st_ino
    try:
        if os.stat(current).st_ino == ino:
            return None
    except FileNotFoundError:
        return None
    paths = logs.run_files(current)
    inos = []
    for p in paths:
        try:
            inos.append(os.stat(p).st_ino)
        except FileNotFoundError:
            inos.append(-1)
    pick = paths[inos.index(ino) + 1] if ino in inos else paths[0]
    try:
        return pick.open("rb")
    except FileNotFoundError:
        return None
