"""Container log files: where they live, and the writer that fills and rotates them.

Each run of a container has its log in `<home>/pods/<ns>_<name>_<uid>/<container>/`:
`<restartCount>.log` is the file being written, `<restartCount>.log.<seq>` the
ones rotated out of it (seq ascending, oldest first), all in the kubelet's CRI
format (logformat.py). `kubectl logs` reads the current run, --previous the
one before (logread.py reads them; NodeRuntime.log_path in node.py picks the
run).

The child does not write the file itself, or nothing could bound it: it gets
the write end of a FIFO (its path is what process.spawn() and the fork
server open as the "log file", so neither needs to know), and LogWriter reads
the other end on the event loop, one bounded read per wake-up, frames lines
into records and appends them, rotating at containerLogMaxSize and keeping
containerLogMaxFiles files (the current one included), as the kubelet's
container log manager does. When skiff falls behind, the pipe fills and the
child blocks in write(): the backpressure a real container runtime applies
too. Runs older than the previous one are deleted when a new run starts (the
kubelet keeps one dead container per container).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from skiff.node import logformat

log = logging.getLogger("skiff.runtime")

DEFAULT_MAX_SIZE = 10 * 1024 * 1024     # the kubelet's containerLogMaxSize, 10Mi
DEFAULT_MAX_FILES = 5                   # and containerLogMaxFiles
READ_CHUNK = 64 * 1024                  # one read per wake-up: a few ms of framing at most
PIPE_SIZE = 1024 * 1024                 # room for bursts while the loop is busy elsewhere
DRAIN_SECONDS = 2.0                     # how long a finished run's pipe is read for its tail
# A flood (`yes`: a record per 2 bytes) costs the loop ~40 ms of framing per MiB. Each
# container's reader may use this share of one core, in bursts of up to BURST_SECONDS; past
# it, reading pauses and the child waits in write(). Ordinary logging never comes near it.
CPU_SHARE = 0.25
BURST_SECONDS = 0.05
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def pod_dir(home: Path, namespace: str, name: str, uid: str) -> Path:
    return home / "pods" / f"{namespace}_{name}_{uid}"


def log_file(container_dir: Path, restart_count: int) -> Path:
    return container_dir / f"{restart_count}.log"


def fifo_path(container_dir: Path, restart_count: int) -> Path:
    return container_dir / f"{restart_count}.pipe"


def runs(container_dir: Path) -> list[int]:
    """Restart counts that have a log file, ascending."""
    out = []
    for p in container_dir.glob("*.log"):
        if p.stem.isdigit():
            out.append(int(p.stem))
    return sorted(out)


def rotated(current: Path) -> list[tuple[int, Path]]:
    """The files rotated out of `current` (`N.log.<seq>`), oldest first."""
    out = []
    for p in current.parent.glob(current.name + ".*"):
        seq = p.name[len(current.name) + 1:]
        if seq.isdigit():
            out.append((int(seq), p))
    return sorted(out)


def run_files(current: Path) -> list[Path]:
    """Every file of one run, oldest first: the rotated ones, then the current one."""
    return [p for _, p in rotated(current)] + [current]


def rotated_to_delete(seqs: list[int], max_files: int) -> list[int]:
    """The oldest rotated files beyond max_files - 1 (the current file is the last one)."""
    keep = max(max_files - 1, 0)
    ordered = sorted(seqs)
    return ordered[:len(ordered) - keep] if len(ordered) > keep else []


def stale_runs(found: list[int], current: int) -> list[int]:
    """Runs whose logs go when run `current` starts: all but the previous one."""
    return [n for n in found if n < current - 1]


def throttle(budget: float, idle: float, busy: float, share: float = CPU_SHARE,
             burst: float = BURST_SECONDS) -> tuple[float, float]:
    """A token bucket of loop seconds: (budget left, seconds to pause reading; 0 for none).

    The budget grows by `share` of the seconds spent elsewhere (`idle`), up to
    `burst`, and shrinks by the seconds a read took (`busy`).
    """
    left = min(burst, budget + idle * share) - busy
    return left, (-left / share if left < 0 else 0.0)


def remove_run(container_dir: Path, restart_count: int) -> None:
    current = log_file(container_dir, restart_count)
    for p in run_files(current):
        p.unlink(missing_ok=True)


class LogWriter:
    """One container run's stdout and stderr: the FIFO's reader, and the rotating writer.

    start() before the spawn (it returns the path the child opens), close()
    once the run's process has exited. A write error (disk full) drops the
    records and is logged once: the child must never block on a log skiff
    cannot keep.
    """

    def __init__(self, container_dir: Path, restart_count: int,
                 max_size: int = DEFAULT_MAX_SIZE, max_files: int = DEFAULT_MAX_FILES,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.dir = container_dir
        self.number = restart_count
        self.path = log_file(container_dir, restart_count)
        self.fifo = fifo_path(container_dir, restart_count)
        self.max_size = max(max_size, 1)
        self.max_files = max(max_files, 2)
        self.clock = clock
        self.framer = logformat.Framer()
        self.stamp = logformat.Stamper()
        self.size = 0
        self._fd = -1          # the current log file
        self._rfd = -1         # the FIFO's read end
        self._keeper = -1      # a write end of our own: no EOF before the child has opened it
        self._eof = asyncio.Event()
        self._seq = 1
        self._failed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._budget = BURST_SECONDS
        self._last = time.perf_counter()
        self._paused: asyncio.TimerHandle | None = None

    # ---- life cycle --------------------------------------------------------------------

    def start(self) -> Path:
        """Open the run's log and FIFO; the FIFO's path is what the child's stdout/stderr open."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for n in stale_runs(runs(self.dir), self.number):
            remove_run(self.dir, n)
        for pipe in self.dir.glob("*.pipe"):
            pipe.unlink(missing_ok=True)   # left by a crash: one run at a time per container
        found = rotated(self.path)
        self._seq = found[-1][0] + 1 if found else 1
        self._open_current()
        self.fifo.unlink(missing_ok=True)
        os.mkfifo(self.fifo, 0o600)
        self._rfd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self._keeper = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._rfd, F_SETPIPE_SZ, PIPE_SIZE)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._rfd, self._readable)
        return self.fifo

    def note(self, text: str) -> None:
        """A line of skiff's own in the run's log (why the container could not start)."""
        self._write(logformat.message(text, self.stamp(self.clock())))

    async def close(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        """The run is over: read what is left in the pipe (bounded), then close everything.

        A process that escaped the container's group and still holds the pipe
        gets EPIPE after this, as it would when its container is gone.
        """
        if self._keeper >= 0:
            os.close(self._keeper)
            self._keeper = -1
        if self._paused is not None:
            self._resume()          # drain at full speed: the child is gone
        if self._rfd >= 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._eof.wait(), drain_seconds)
        self._stop_reading()
        self._write(self.framer.flush(self.stamp(self.clock())))
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.fifo.unlink(missing_ok=True)

    def _stop_reading(self) -> None:
        if self._paused is not None:
            self._paused.cancel()
            self._paused = None
        elif self._rfd >= 0 and self._loop is not None:
            self._loop.remove_reader(self._rfd)
        if self._rfd >= 0:
            os.close(self._rfd)
            self._rfd = -1

    # ---- the hot path ------------------------------------------------------------------

    def _readable(self) -> None:
        start = time.perf_counter()
        try:
            data = os.read(self._rfd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._stop_reading()
            self._eof.set()
            return
        self._write(self.framer.feed(data, self.stamp(self.clock())))
        end = time.perf_counter()
        self._budget, pause = throttle(self._budget, start - self._last, end - start)
        self._last = end
        if pause and self._keeper >= 0 and self._loop is not None:
            self._loop.remove_reader(self._rfd)
            self._paused = self._loop.call_later(pause, self._resume)

    def _resume(self) -> None:
        if self._paused is not None:
            self._paused.cancel()
            self._paused = None
            if self._rfd >= 0 and self._loop is not None:
                self._loop.add_reader(self._rfd, self._readable)

    def _write(self, out: bytes) -> None:
        try:
            if self._fd < 0:
                self._open_current()      # a rotation failed half-way; try again
            while out:
                head, out = logformat.split_at_room(out, self.max_size - self.size)
                if not head:
                    if self.size:
                        self._rotate()
                        continue
                    # one record longer than a whole file: it gets a file of its own
                    cut = out.find(b"\n") + 1 or len(out)
                    head, out = out[:cut], out[cut:]
                self._write_all(head)
        except OSError as e:
            if not self._failed:
                self._failed = True
                log.warning("container log %s: %s; dropping its output", self.path, e)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
            self.size += n

    def _open_current(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                           0o644)
        self.size = os.fstat(self._fd).st_size

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = -1
        os.rename(self.path, self.path.with_name(f"{self.path.name}.{self._seq}"))
        self._seq += 1
        found = rotated(self.path)
        for seq in rotated_to_delete([s for s, _ in found], self.max_files):
            self.path.with_name(f"{self.path.name}.{seq}").unlink(missing_ok=True)
        self._open_current()
