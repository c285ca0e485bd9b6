"""The process shell: containers as process groups, and loopback ports.

spawn() starts one container run as its own session and process group
(start_new_session), stdin from /dev/null, stdout and stderr appended to the
run's log file, and writes `pid` (pid and start time) next to it so that a
later start of skiff can sweep_orphans() left by a crash. stop() is
kubelet's kill: SIGTERM to the group, SIGKILL after the grace period; once
the main process is gone, whatever is left in its group is killed too, as a
container's PID namespace would be. resolve_executable() gives host command
semantics to argv[0]. PortAllocator hands out free 127.0.0.1 ports for
ports.py's plan. Used by pod.py (containers) and execsession.py (argv).

spawn() starts the built-in Python images by forking a warm template when
a Forker (forkserver.py) is given and ready, else with a fresh fork/exec.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import psutil

log = logging.getLogger("skiff.runtime")

PYTHON_NAMES = ("python", "python3", f"python3.{sys.version_info.minor}")


class SpawnError(Exception):
    """The process could not be started (kubelet's StartError)."""


def resolve_executable(argv0: str, path: str, own_python: bool = False) -> str | None:
    """argv[0] as the host runs it: skiff's Python for built-in/local images, else PATH.

    An absolute path that does not exist on the host (an image path such as
    /usr/local/bin/foo) falls back to the basename on PATH.
    """
    if own_python and os.path.basename(argv0) in PYTHON_NAMES:
        return sys.executable
    if "/" in argv0:
        if os.access(argv0, os.X_OK) and not os.path.isdir(argv0):
            return argv0
        if not argv0.startswith("/"):
            return None
        argv0 = os.path.basename(argv0)
    return shutil.which(argv0, path=path)


def not_found_message(argv0: str) -> str:
    return (f'exec: "{argv0}": executable file not found in $PATH'
            if "/" not in argv0 else f'exec: "{argv0}": stat {argv0}: no such file or directory')


def exit_code(returncode: int) -> int:
    """A shell-style exit code: 128+N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def python_path_env(env: dict[str, str]) -> None:
    """Let skiff's interpreter find the skiff package from any cwd."""
    root = str(Path(__file__).resolve().parents[3])
    current = env.get("PYTHONPATH", "")
    if root not in current.split(os.pathsep):
        env["PYTHONPATH"] = root + (os.pathsep + current if current else "")


class ContainerProcess:
    """One run of a container: the group leader (pgid == pid) and its group.

    `exit` resolves to the leader's raw return code (negative: killed by that
    signal), from asyncio's child watcher or from the fork server's reaper.
    """

    def __init__(self, pid: int, exit: asyncio.Future[int], pid_file: Path | None) -> None:
        self.pid = pid
        self.pid_file = pid_file
        self._exit = exit
        self._term_sent = False
        self._waiter: asyncio.Task[int] | None = None

    async def wait(self) -> int:
        """The exit code (128+N when killed by signal N); the rest of the group is killed."""
        if self._waiter is None:
            self._waiter = asyncio.ensure_future(self._wait())
        return await asyncio.shield(self._waiter)

    async def _wait(self) -> int:
        rc = await asyncio.shield(self._exit)
        signal_group(self.pid, signal.SIGKILL)
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)
        return exit_code(rc)

    @property
    def exited(self) -> bool:
        return self._exit.done()

    async def stop(self, grace: float) -> int:
        """SIGTERM the group, SIGKILL it after `grace` seconds; the exit code."""
        if not self.exited and not self._term_sent:
            self._term_sent = True
            signal_group(self.pid, signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.wait(), timeout=max(grace, 0.0))
        except TimeoutError:
            signal_group(self.pid, signal.SIGKILL)
            return await self.wait()


class Forker(Protocol):
    """A warm template that can start some argv by forking (forkserver.ForkServer)."""

    def module_for(self, argv: Sequence[str]) -> str | None: ...

    async def spawn(self, module: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path,
                    log_file: Path) -> tuple[int, asyncio.Future[int]]: ...


def pod_umask() -> None:
    """skiff runs with umask 077 (its home is private); a container gets the usual 022.
    (uvloop's subprocess has no umask argument; this runs in the child before exec.)"""
    os.umask(0o022)


async def spawn(argv: Sequence[str], env: Mapping[str, str], cwd: Path, log_file: Path,
                pid_file: Path | None = None, own_python: bool = False,
                forker: Forker | None = None) -> ContainerProcess:
    if not argv:
        raise SpawnError("no command specified")
    exe = resolve_executable(argv[0], env.get("PATH", os.defpath), own_python)
    if exe is None:
        raise SpawnError(not_found_message(argv[0]))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    cwd.mkdir(parents=True, exist_ok=True)
    module = forker.module_for(argv) if forker is not None and own_python else None
    pid_exit: tuple[int, asyncio.Future[int]] | None = None
    if forker is not None and module is not None:
        try:
            pid_exit = await forker.spawn(module, argv, env, cwd, log_file)
        except (OSError, RuntimeError, TimeoutError) as e:
            log.warning("fork server could not start %s (%s); starting it afresh", module, e)
    if pid_exit is None:
        pid_exit = await _exec(exe, argv, env, cwd, log_file, own_python)
    pid, exited = pid_exit
    if pid_file is not None:
        try:
            created = psutil.Process(pid).create_time()
            pid_file.write_text(f"{pid} {created}\n")
        except (psutil.Error, OSError):
            pass
    return ContainerProcess(pid, exited, pid_file)


async def _exec(exe: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path,
                log_file: Path, own_python: bool) -> tuple[int, asyncio.Future[int]]:
    full_env = dict(env)
    if own_python:
        python_path_env(full_env)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = await asyncio.create_subprocess_exec(
            exe, *argv[1:], stdin=asyncio.subprocess.DEVNULL, stdout=fd, stderr=fd,
            cwd=str(cwd), env=full_env, start_new_session=True,
            preexec_fn=pod_umask)
    except OSError as e:
        raise SpawnError(f'exec: "{argv[0]}": {e.strerror or e}') from e
    finally:
        os.close(fd)
    return proc.pid, asyncio.ensure_future(proc.wait())


def sweep_orphans(pods_dir: Path) -> int:
    """Kill process groups a previous skiff left behind (their pid files survive a crash)."""
    killed = 0
    for pid_file in pods_dir.glob("*/*/pid"):
        try:
            pid_s, created_s = pid_file.read_text().split()
            pid, created = int(pid_s), float(created_s)
            if abs(psutil.Process(pid).create_time() - created) < 0.01:
                killed += signal_group(pid, signal.SIGKILL)
        except (ValueError, OSError, psutil.Error):
            pass
        pid_file.unlink(missing_ok=True)
    if killed:
        log.info("killed %d process groups left by a previous run", killed)
    return killed


class PortAllocator:
    """Free loopback ports, never handed out twice while held."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.held: set[int] = set()

    def _free(self, port: int) -> int | None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            # like the servers that will bind it: a port in TIME_WAIT is free to them
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((self.host, port))
            except OSError:
                return None
            return int(s.getsockname()[1])

    def allocate(self, prefer: int | None = None) -> int:
        if prefer and prefer not in self.held and self._free(prefer) is not None:
            self.held.add(prefer)
            return prefer
        for _ in range(100):
            port = self._free(0)
            if port is not None and port not in self.held:
                self.held.add(port)
                return port
        raise OSError("no free loopback port")

    def release(self, port: int) -> None:
        self.held.discard(port)
