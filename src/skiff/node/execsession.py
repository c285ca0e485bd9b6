"""`kubectl exec` on this machine: a host process with a container's env and cwd,
inside the pod's sandbox (network namespace, resolv.conf, hostname) when it has one.

ExecSession.start() runs a command in its own process group, with pipes
(stdout and stderr apart) or, for tty, a pseudo-terminal (one merged output
stream; resize() sets its window size). The API server's exec handler
(core/apiserver, WebSocket channels) reads `stdout`/`stderr`, calls write()
and close_stdin(), then wait() for the exit code. A command that cannot be
found yields a session that prints runc's message and exits 126, which
kubectl reports as "command terminated with exit code 126". NodeRuntime.exec
(node.py) creates sessions and kills them when the container stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import pty
import signal
import struct
import termios
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from skiff.node.network.sandbox import enter
from skiff.node.process import (
    exit_code,
    not_found_message,
    pod_umask,
    python_path_env,
    resolve_executable,
)


def in_pod(sandbox: dict[str, str] | None) -> None:
    """In the exec'd child: the pod's umask, and its sandbox when it has one."""
    pod_umask()
    if sandbox:
        enter(sandbox)


class ExecSession:
    """A started exec'd process."""

    def __init__(self, stdout: asyncio.StreamReader, stderr: asyncio.StreamReader | None,
                 proc: asyncio.subprocess.Process | None = None, master_fd: int | None = None,
                 fixed_exit: int | None = None, pty_eof: asyncio.Event | None = None) -> None:
        self.stdout = stdout
        self.stderr = stderr                      # None with tty: merged into stdout
        self.tty = master_fd is not None
        self._proc = proc
        self._master = master_fd
        self._fixed_exit = fixed_exit
        self._pty_eof = pty_eof
        self.pid: int | None = proc.pid if proc is not None else None

    @classmethod
    async def start(cls, command: Sequence[str], env: Mapping[str, str], cwd: Path,
                    stdin: bool = False, tty: bool = False,
                    own_python: bool = False,
                    sandbox: Mapping[str, str] | None = None) -> ExecSession:
        if not command:
            return cls.failed("exec: no command specified", 126)
        exe = resolve_executable(command[0], env.get("PATH", os.defpath), own_python)
        if exe is None:
            return cls.failed("OCI runtime exec failed: exec failed: unable to start container "
                              f"process: {not_found_message(command[0])}: unknown", 126)
        full_env = dict(env)
        if own_python:
            python_path_env(full_env)
        setup = functools.partial(in_pod, dict(sandbox) if sandbox else None)
        if tty:
            return await cls._start_tty(exe, command, full_env, cwd, setup)
        proc = await asyncio.create_subprocess_exec(
            exe, *command[1:], cwd=str(cwd), env=full_env, start_new_session=True, preexec_fn=setup,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        return cls(proc.stdout, proc.stderr, proc=proc)

    @classmethod
    async def _start_tty(cls, exe: str, command: Sequence[str], env: dict[str, str],
                         cwd: Path, setup: Callable[[], None]) -> ExecSession:
        env.setdefault("TERM", "xterm")
        master, slave = pty.openpty()
        try:
            proc = await asyncio.create_subprocess_exec(
                exe, *command[1:], cwd=str(cwd), env=env, start_new_session=True, preexec_fn=setup,
                stdin=slave, stdout=slave, stderr=slave)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        reader = asyncio.StreamReader()
        eof = asyncio.Event()
        loop = asyncio.get_running_loop()

        def readable() -> None:
            try:
                data = os.read(master, 65536)
            except BlockingIOError:
                return
            except OSError:          # EIO: every slave end is closed
                data = b""
            if data:
                reader.feed_data(data)
            else:
                loop.remove_reader(master)
                reader.feed_eof()
                eof.set()

        loop.add_reader(master, readable)
        return cls(reader, None, proc=proc, master_fd=master, pty_eof=eof)

    @classmethod
    def failed(cls, message: str, code: int) -> ExecSession:
        out, err = asyncio.StreamReader(), asyncio.StreamReader()
        out.feed_eof()
        err.feed_data(message.encode() + b"\n")
        err.feed_eof()
        return cls(out, err, fixed_exit=code)

    async def write(self, data: bytes) -> None:
        if self._master is not None:
            view = memoryview(data)
            while view:
                try:
                    n = os.write(self._master, view)
                    view = view[n:]
                except BlockingIOError:
                    await asyncio.sleep(0.005)
                except OSError:
                    return
            return
        if self._proc is None or self._proc.stdin is None:
            return
        try:
            self._proc.stdin.write(data)
            await self._proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def close_stdin(self) -> None:
        if self._master is not None:
            with contextlib.suppress(OSError):
                os.write(self._master, b"\x04")       # EOF for the terminal's line discipline
        elif self._proc is not None and self._proc.stdin is not None:
            self._proc.stdin.close()

    def resize(self, width: int, height: int) -> None:
        if self._master is not None:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self._master, termios.TIOCSWINSZ,
                            struct.pack("HHHH", height, width, 0, 0))

    async def wait(self) -> int:
        if self._proc is None:
            return self._fixed_exit if self._fixed_exit is not None else 0
        rc = exit_code(await self._proc.wait())
        if self._master is not None and self._pty_eof is not None:
            # the terminal's output may still be draining; give the reader a moment
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._pty_eof.wait(), 1.0)
            self._close_master()
        return rc

    def _close_master(self) -> None:
        if self._master is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._master)
            with contextlib.suppress(OSError):
                os.close(self._master)
            self._master = None
            if self._pty_eof is not None and not self._pty_eof.is_set():
                self._pty_eof.set()
                self.stdout.feed_eof()

    @property
    def returncode(self) -> int | None:
        if self._proc is None:
            return self._fixed_exit
        rc = self._proc.returncode
        return None if rc is None else exit_code(rc)

    def kill(self) -> None:
        """SIGKILL the session's whole group (the container stopped)."""
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(OSError):
                os.killpg(self._proc.pid, signal.SIGKILL)
