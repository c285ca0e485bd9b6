"""The platform's home directory: private, and held by one platform at a time.

Everything in the home is the platform's own and much of it is secret (the
store holds every Secret, the wildcard TLS key included; the token; the CA
keys; pod logs), so the home is 0700 and each file is created with its final
mode, 0600, never written first and chmod-ed after. One `skiff up` holds an
exclusive flock on <home>/skiff.lock for its whole life: a second one on the
same home exits at once, naming the PID that holds it, instead of sweeping
the first one's pods and rewriting its kubeconfig. The kernel drops the lock
when the holder dies, even by `kill -9`. Neighbours: platform.py (takes the
lock first, before anything is written), core/pki.py and core/store/sqlite.py
(write through private_file / write_private).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = "skiff.lock"


class HomeInUse(Exception):
    """Another platform holds the home."""

    def __init__(self, home: Path, pid: str) -> None:
        who = f"PID {pid}" if pid else "another process"
        super().__init__(f"{home} is in use by another skiff ({who})")
        self.home = home
        self.pid = pid


def make_private_dir(path: Path) -> None:
    """Create `path` (and parents) with 0700 for the last part; tighten one that exists."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)


def private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 if it is missing (a file some library opens later,
    such as the SQLite database, whose -wal and -shm files then take the same mode); tighten
    it if it exists with a wider one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data`, the file 0600 from the moment it exists."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def lock_home(home: Path) -> int:
    """Hold the home for this process: the lock file's descriptor (keep it open; closing it or
    exiting releases the lock). Raises HomeInUse, naming the holder's PID, when taken."""
    make_private_dir(home)
    path = home / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        raise HomeInUse(home, holder) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def tighten(home: Path) -> None:
    """Make what an older skiff left readable by others private (it wrote files 0644). The
    home itself is 0700, so what lies deeper is out of others' reach already."""
    for p in [*home.iterdir(), *(home / "pki").glob("*")]:
        with contextlib.suppress(OSError):
            st = p.lstat()
            if p.is_symlink() or not st.st_mode & 0o077:
                continue
            p.chmod(0o700 if p.is_dir() else 0o600)
