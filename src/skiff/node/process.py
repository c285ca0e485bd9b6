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

spawn() starts every container through a Forker (forkserver.py) when one
is given and ready: it forks the built-in Python images from a warm template
and execs the rest, and holds them all, so they die with skiff. Without one
(not started yet, failed, or dead) it forks and execs here, and the child
gets SIGKILL as its parent-death signal (die_with_parent()). Either way the
pid file lets the next start sweep what a crash left (the parent-death
signal is not inherited by a container's own children and is cleared by a
set-user-ID exec).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import os
import shutil
import signal
import socket
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import psutil

log = logging.getLogger("skiff.runtime")

PYTHON_NAMES = ("python", "python3", f"python3.{sys.version_info.minor}")


class SpawnError(Exception):
    """The process could not be started (kubelet's StartError)."""


PR_SET_PDEATHSIG = 1
_prctl: object | None = None


def _libc_prctl() -> object | None:
    global _prctl
    if _prctl is None and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            _prctl = ctypes.CDLL(None, use_errno=True).prctl
    return _prctl


def die_with_parent(sig: int, parent: int) -> bool:
    """Ask the kernel for `sig` when the parent dies (PR_SET_PDEATHSIG); call it in the child.

    The signal comes when the *thread* that forked the child ends, so only the event loop's
    thread may spawn; a set-user-ID exec clears it. False when `parent` is already gone (the
    signal would never come): the caller should exit. Without prctl (not Linux) it is a no-op.
    """
    prctl = _libc_prctl()
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)  # type: ignore[operator]
    return os.getppid() == parent


def record_pid(pid_file: Path, pid: int) -> None:
    """`pid start-time`, so that a later sweep never kills a reused pid."""
    with contextlib.suppress(psutil.Error, OSError):
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{pid} {psutil.Process(pid).create_time()}\n")


def recorded_process(pid_file: Path) -> psutil.Process | None:
    """The process a pid file names, if it still runs (same pid, same start time)."""
    try:
        pid_s, created_s = pid_file.read_text().split()
        proc = psutil.Process(int(pid_s))
        if abs(proc.create_time() - float(created_s)) < 0.01:
            return proc
    except (ValueError, OSError, psutil.Error):
        pass
    return None


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
    """A supervisor that starts containers by forking and holds them (forkserver.ForkServer)."""

    async def wait_ready(self) -> bool: ...

    def module_for(self, argv: Sequence[str]) -> str | None: ...

    def script_for(self, argv: Sequence[str], cwd: Path) -> str | None: ...

    async def spawn_script(self, script: str, argv: Sequence[str], env: Mapping[str, str],
                           cwd: Path, log_file: Path, sandbox: Mapping[str, str] | None = None,
                           ) -> tuple[int, asyncio.Future[int]]: ...

    async def spawn(self, module: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path,
                    log_file: Path, sandbox: Mapping[str, str] | None = None,
                    ) -> tuple[int, asyncio.Future[int]]: ...

    async def spawn_exec(self, exe: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path,
                         log_file: Path, sandbox: Mapping[str, str] | None = None,
                         ) -> tuple[int, asyncio.Future[int]]: ...


def pod_umask() -> None:
    """skiff runs with umask 077 (its home is private); a container gets the usual 022.
    (uvloop's subprocess has no umask argument; this runs in the child before exec.)"""
    os.umask(0o022)


async def spawn(argv: Sequence[str], env: Mapping[str, str], cwd: Path, log_file: Path,
                pid_file: Path | None = None, own_python: bool = False,
                forker: Forker | None = None,
                sandbox: Mapping[str, str] | None = None) -> ContainerProcess:
    if not argv:
        raise SpawnError("no command specified")
    exe = resolve_executable(argv[0], env.get("PATH", os.defpath), own_python)
    if exe is None:
        raise SpawnError(not_found_message(argv[0]))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    cwd.mkdir(parents=True, exist_ok=True)
    pid_exit: tuple[int, asyncio.Future[int]] | None = None
    if forker is not None and await forker.wait_ready():
        module = forker.module_for(argv) if own_python else None
        script = forker.script_for(argv, cwd) if own_python and module is None else None
        full_env = dict(env)
        if own_python:
            python_path_env(full_env)
        try:
            if module is not None:
                pid_exit = await forker.spawn(module, argv, env, cwd, log_file, sandbox)
            elif script is not None:
                pid_exit = await forker.spawn_script(script, argv, env, cwd, log_file, sandbox)
            else:
                pid_exit = await forker.spawn_exec(exe, argv, full_env, cwd, log_file, sandbox)
        except (OSError, RuntimeError, TimeoutError) as e:
            # The fork server cancelled the request (it never leaves an untracked child).
            log.warning("fork server could not start %s (%s); starting it afresh",
                        module or argv[0], e)
    if pid_exit is None:
        pid_exit = await _exec(exe, argv, env, cwd, log_file, own_python, sandbox)
    pid, exited = pid_exit
    if pid_file is not None:
        record_pid(pid_file, pid)
    return ContainerProcess(pid, exited, pid_file)


def _child_setup(skiff: int, sandbox: Mapping[str, str] | None = None) -> None:
    """In the child, before exec: the pod's umask; SIGKILL when skiff dies (even by SIGKILL);
    the pod's sandbox (network, mounts, hostname) when it has one."""
    pod_umask()
    if not die_with_parent(signal.SIGKILL, skiff):
        os._exit(UNKNOWN_PARENT_EXIT)
    if sandbox:
        from skiff.node.network.sandbox import enter
        enter(dict(sandbox))


UNKNOWN_PARENT_EXIT = 255


async def _exec(exe: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path,
                log_file: Path, own_python: bool,
                sandbox: Mapping[str, str] | None = None) -> tuple[int, asyncio.Future[int]]:
    full_env = dict(env)
    if own_python:
        python_path_env(full_env)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = await asyncio.create_subprocess_exec(
            exe, *argv[1:], stdin=asyncio.subprocess.DEVNULL, stdout=fd, stderr=fd,
            cwd=str(cwd), env=full_env, start_new_session=True,
            preexec_fn=functools.partial(_child_setup, os.getpid(), sandbox))
    except OSError as e:
        raise SpawnError(f'exec: "{argv[0]}": {e.strerror or e}') from e
    finally:
        os.close(fd)
    return proc.pid, asyncio.ensure_future(proc.wait())


def sweep_orphans(pods_dir: Path) -> int:
    """Kill process groups a previous skiff left behind (their pid files survive a crash)."""
    killed = 0
    for pid_file in pods_dir.glob("*/*/pid"):
        proc = recorded_process(pid_file)
        if proc is not None:
            killed += signal_group(proc.pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)
    if killed:
        log.info("killed %d process groups left by a previous run", killed)
    return killed


def sweep_supervisor(pid_file: Path, timeout: float = 2.0) -> bool:
    """Stop a fork server a previous skiff left running: SIGTERM (it kills its children
    first), SIGKILL if it does not exit in time. Normally it has died with that skiff."""
    proc = recorded_process(pid_file)
    pid_file.unlink(missing_ok=True)
    if proc is None:
        return False
    with contextlib.suppress(psutil.Error):
        proc.terminate()
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            proc.kill()
    log.info("stopped the fork server %d left by a previous run", proc.pid)
    return True


class PortAllocator:
    """Free loopback ports, never handed out twice while held, nor ever one of `reserved`: the
    platform's own listeners, which are free for a moment whenever their process restarts."""

    def __init__(self, host: str = "127.0.0.1", reserved: Iterable[int] = ()) -> None:
        self.host = host
        self.reserved = frozenset(reserved)
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

    def _taken(self, port: int) -> bool:
        return port in self.held or port in self.reserved

    def allocate(self, prefer: int | None = None) -> int:
        if prefer and not self._taken(prefer) and self._free(prefer) is not None:
            self.held.add(prefer)
            return prefer
        for _ in range(100):
            port = self._free(0)
            if port is not None and not self._taken(port):
                self.held.add(port)
                return port
        raise OSError("no free loopback port")

    def release(self, port: int) -> None:
        self.held.discard(port)
