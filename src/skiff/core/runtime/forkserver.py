"""A warm template process that starts the built-in Python images by forking.

DESIGN.md: a fresh Python that imports asyncio, uvloop and httptools takes
~80-95 ms to start; a fork of a process that already has them takes a few.
The template (`python -m skiff.core.runtime.forkserver MODULE...`) imports
the modules once, then, for each request on its stdin, forks a child that
becomes its own session and process group, points fds 0/1/2 at /dev/null and
the run's log file, takes the container's env, cwd and argv, and calls the
module's main() (each such module runs main() under `if __name__ ==
"__main__"`, so this is what `python -m MODULE` does, without re-executing
the module: runpy would cost ~3 ms). The template reaps its
children and reports their exit status on stdout, one JSON line each.

ForkServer is the runtime's side (process.spawn() calls it as a Forker):
it starts the template, matches replies, and resolves each child's exit
future. If the template dies, live children are watched until they are gone
(exit code unknown: 255) and later pods start with plain fork/exec.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import itertools
import json
import logging
import os
import selectors
import signal
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from skiff.core.runtime.process import PYTHON_NAMES, python_path_env

log = logging.getLogger("skiff.runtime")

UNKNOWN_EXIT = 255


# ---- the template (a separate process) ---------------------------------------------------

def _send(msg: dict[str, Any]) -> None:
    os.write(1, json.dumps(msg).encode() + b"\n")   # short lines: atomic on a pipe


def _child(req: dict[str, Any], main: Callable[[], object]) -> None:
    code: int = 1
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDONLY)
        out = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.umask(0o022)   # the log is skiff's and private; what the container makes is its own
        os.dup2(devnull, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        sys.argv = list(req["argv"])
        if os.environ.get("PYTHONUNBUFFERED"):
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(AttributeError, ValueError):
                    stream.reconfigure(write_through=True)  # type: ignore[union-attr]
        result = main()
        code = result if isinstance(result, int) else 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _reap() -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send({"exit": pid, "returncode": os.waitstatus_to_exitcode(status)})


def serve(modules: Sequence[str]) -> None:
    mains = {m: importlib.import_module(m).main for m in modules}
    gc.freeze()     # keep the collector from touching (and so copying) the template's pages
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    _send({"ready": os.getpid()})
    buf = b""
    while True:
        for key, _ in sel.select():
            if key.fd == wake_r:
                os.read(wake_r, 4096)
                _reap()
                continue
            data = os.read(0, 65536)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                req = json.loads(line)
                try:
                    pid = os.fork()
                except OSError as e:
                    _send({"id": req["id"], "error": str(e)})
                    continue
                if pid == 0:
                    _child(req, mains[req["module"]])
                _send({"id": req["id"], "pid": pid})


# ---- the runtime's side ------------------------------------------------------------------

class ForkServer:
    """Starts the template and asks it for children; process.spawn()'s Forker."""

    def __init__(self, modules: Sequence[str], start_timeout: float = 30.0,
                 spawn_timeout: float = 5.0) -> None:
        self.modules = tuple(modules)
        self.start_timeout = start_timeout
        self.spawn_timeout = spawn_timeout
        self.proc: asyncio.subprocess.Process | None = None
        self.ready = False
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[int]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._orphan_watch: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        env = dict(os.environ)
        python_path_env(env)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", __name__, *self.modules, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, env=env, start_new_session=True)
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), self.start_timeout)
        except TimeoutError:
            await self.close()
            raise
        if not line.startswith(b'{"ready"'):
            await self.close()
            raise RuntimeError("fork server did not start")
        self.ready = True
        self._reader = asyncio.ensure_future(self._read())

    def module_for(self, argv: Sequence[str]) -> str | None:
        """The preloaded module `argv` runs (python -m MODULE ...), if this server can fork it."""
        if (self.ready and len(argv) >= 3 and os.path.basename(argv[0]) in PYTHON_NAMES
                and argv[1] == "-m" and argv[2] in self.modules):
            return argv[2]
        return None

    async def spawn(self, module: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path,
                    log_file: Path) -> tuple[int, asyncio.Future[int]]:
        if not self.ready or self.proc is None or self.proc.stdin is None:
            raise RuntimeError("fork server is not running")
        rid = next(self._ids)
        reply: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._replies[rid] = reply
        req = {"id": rid, "module": module, "argv": [module, *argv[3:]], "env": dict(env),
               "cwd": str(cwd), "log": str(log_file)}
        try:
            self.proc.stdin.write(json.dumps(req).encode() + b"\n")
            await self.proc.stdin.drain()
            pid = await asyncio.wait_for(asyncio.shield(reply), self.spawn_timeout)
        finally:
            self._replies.pop(rid, None)
        return pid, self._exit_future(pid)

    def _exit_future(self, pid: int) -> asyncio.Future[int]:
        fut = self._exits.get(pid)
        if fut is None:
            fut = self._exits[pid] = asyncio.get_running_loop().create_future()
        return fut

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            async for line in self.proc.stdout:
                msg = json.loads(line)
                if "exit" in msg:
                    fut = self._exit_future(int(msg["exit"]))
                    self._exits.pop(int(msg["exit"]), None)
                    if not fut.done():
                        fut.set_result(int(msg["returncode"]))
                    continue
                reply = self._replies.get(int(msg.get("id", 0)))
                if "pid" in msg:
                    self._exit_future(int(msg["pid"]))
                if reply is not None and not reply.done():
                    if "pid" in msg:
                        reply.set_result(int(msg["pid"]))
                    else:
                        reply.set_exception(OSError(msg.get("error", "fork failed")))
        except (ValueError, KeyError) as e:
            log.error("fork server: bad reply (%s)", e)
        finally:
            self.ready = False
            for reply in self._replies.values():
                if not reply.done():
                    reply.set_exception(RuntimeError("fork server exited"))
            for pid, fut in list(self._exits.items()):
                task = asyncio.ensure_future(self._watch_orphan(pid, fut))
                self._orphan_watch.add(task)
                task.add_done_callback(self._orphan_watch.discard)

    async def _watch_orphan(self, pid: int, fut: asyncio.Future[int]) -> None:
        """The template is gone: its children's exit codes are lost; notice when they end."""
        while not fut.done():
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            await asyncio.sleep(0.1)
        self._exits.pop(pid, None)
        if not fut.done():
            fut.set_result(UNKNOWN_EXIT)

    async def close(self) -> None:
        self.ready = False
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 2.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._reader, 1.0)


if __name__ == "__main__":
    serve(sys.argv[1:])
