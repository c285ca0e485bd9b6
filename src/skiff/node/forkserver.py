"""A warm template that starts the node's containers by forking, and holds them.

DESIGN.md: a fresh Python that imports asyncio, uvloop and httptools takes
~80-95 ms to start; a fork of a process that already has them takes a few.
The template (`python -m skiff.node.forkserver MODULE...`) imports
the modules once, then, for each request on its stdin, forks a child that
becomes its own session and process group, points fds 0/1/2 at /dev/null and
the run's log file, takes the container's env, cwd and argv, and either
calls the module's main() (each such module runs main() under `if __name__ ==
"__main__"`, so this is what `python -m MODULE` does, without re-executing
the module: runpy would cost ~3 ms) or, for any other image, execs the
binary. The template reaps its children and reports their exit status on
stdout, one JSON line each.

The template is also the supervisor that keeps pods from outliving skiff: it
knows every child it forked (it is their parent, so a child's pid cannot be
reused before the template reaps it) and kills all their groups when its
stdin reaches EOF (skiff closed it, or skiff died, even by SIGKILL) or when
it gets SIGTERM (its parent-death signal, and what a sweep sends). Each child
has SIGKILL as its own parent-death signal, should the template itself be
killed. When a child exits, the rest of its group is killed while its pid is
still held by the zombie. A request skiff gives up on (timed out, cancelled)
is cancelled through the same pipe, so the template, handling lines in
order, kills the child it made for it: no child is ever untracked.

ForkServer is the runtime's side (process.spawn() calls it as a Forker):
it starts the template, matches replies, and resolves each child's exit
future. If the template dies, its children die with it (their parent-death
signal; exit code unknown: 255) and later pods start with plain fork/exec.
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

from skiff.node.network import sandbox
from skiff.node.process import (
    PYTHON_NAMES,
    SpawnError,
    die_with_parent,
    python_path_env,
    record_pid,
)

log = logging.getLogger("skiff.runtime")

UNKNOWN_EXIT = 255


# ---- the template (a separate process) ---------------------------------------------------

PARENT_ENV = "SKIFF_FORKSERVER_PARENT"     # skiff's pid, for the parent-death check


def _send(msg: dict[str, Any]) -> None:
    try:
        os.write(1, json.dumps(msg).encode() + b"\n")   # short lines: atomic on a pipe
    except OSError:
        pass    # skiff is gone; the EOF on stdin ends the template


def _setup_child(req: dict[str, Any], template: int) -> None:
    """In a fresh child: own session, default signals, die with the template, fds 0/1/2."""
    os.setsid()
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    # Checked after setting it: had the template died in between, the signal would never come.
    if not die_with_parent(signal.SIGKILL, template):
        os._exit(UNKNOWN_EXIT)
    devnull = os.open(os.devnull, os.O_RDONLY)
    out = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.umask(0o022)   # the log is skiff's and private; what the container makes is its own
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    if req.get("sandbox"):
        sandbox.enter(req["sandbox"])    # the pod's network, mounts and hostname


def _child(req: dict[str, Any], main: Callable[[], object], template: int) -> None:
    code: int = 1
    try:
        _setup_child(req, template)
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


def _run_script(path: str) -> object:
    """`python3 SCRIPT ARGS...` in a child of the template: the script runs as __main__ with
    its own folder first on sys.path, as the interpreter would run it, but with the
    interpreter already started and the template's modules already imported."""
    import atexit
    import runpy
    import threading
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        runpy.run_path(path, run_name="__main__")
    finally:
        # as the interpreter ends a program: its other threads run to their end, then atexit
        for t in threading.enumerate():
            if t is not threading.current_thread() and not t.daemon:
                t.join()
        atexit._run_exitfuncs()
    return 0


def _exec_child(req: dict[str, Any], err_w: int, template: int) -> None:
    """Become the container's binary; on failure, tell the template the errno (err_w)."""
    try:
        _setup_child(req, template)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):   # Python ignores these; exec keeps that
            signal.signal(sig, signal.SIG_DFL)
        os.chdir(req["cwd"])
        os.execve(req["exec"], list(req["argv"]), dict(req["env"]))
    except OSError as e:
        with contextlib.suppress(OSError):
            os.write(err_w, str(e.errno or 0).encode())
    except BaseException:
        pass
    os._exit(127)


class _Template:
    """The template's bookkeeping: every child it forked and has not reaped yet."""

    def __init__(self, mains: Mapping[str, Callable[[], object]],
                 sel: selectors.BaseSelector) -> None:
        self.mains = mains
        self.sel = sel
        self.pid = os.getpid()
        self.children: dict[int, int] = {}        # pid -> request id
        self.by_id: dict[int, int] = {}           # request id -> pid
        self.execs: dict[int, tuple[int, int]] = {}   # err pipe fd -> (request id, pid)

    def handle(self, req: dict[str, Any]) -> None:
        if "cancel" in req:
            self.cancel(int(req["cancel"]))
            return
        rid = int(req["id"])
        err_r = err_w = -1
        try:
            if "exec" in req:
                err_r, err_w = os.pipe2(os.O_CLOEXEC)
            pid = os.fork()
        except OSError as e:
            for fd in (err_r, err_w):
                if fd >= 0:
                    os.close(fd)
            _send({"id": rid, "error": str(e)})
            return
        if pid == 0:
            if "exec" in req:
                os.close(err_r)
                _exec_child(req, err_w, self.pid)
            if "script" in req:
                _child(req, lambda: _run_script(req["argv"][0]), self.pid)
            _child(req, self.mains[req["module"]], self.pid)
        self.children[pid] = rid
        self.by_id[rid] = pid
        if "exec" in req:
            # Reply once the exec is known to have worked (the pipe closes on exec) or not,
            # without waiting here: opening the log (a FIFO) may block the child for a while.
            os.close(err_w)
            self.execs[err_r] = (rid, pid)
            self.sel.register(err_r, selectors.EVENT_READ)
        else:
            _send({"id": rid, "pid": pid})

    def exec_result(self, err_r: int) -> None:
        rid, pid = self.execs.pop(err_r)
        self.sel.unregister(err_r)
        data = b""
        with contextlib.suppress(OSError):
            data = os.read(err_r, 64)
        os.close(err_r)
        if data:
            errno = int(data or b"0")
            _send({"id": rid, "error": os.strerror(errno), "errno": errno})
        else:
            _send({"id": rid, "pid": pid})

    def cancel(self, rid: int) -> None:
        """skiff gave up on request `rid`: kill its child, if it made one that still runs."""
        pid = self.by_id.get(rid)
        if pid is not None and pid in self.children:   # unreaped: the pid is still ours
            _kill_group(pid)

    def reap(self) -> None:
        while True:
            try:
                # WNOWAIT: the exited child stays a zombie while its group is killed, so its
                # pid (the group's id) cannot have been reused by then.
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid == 0:
                return
            pid = info.si_pid
            _kill_group(pid)
            for fd, (_, epid) in list(self.execs.items()):
                if epid == pid:
                    self.exec_result(fd)      # its reply goes before its exit
            _, status = os.waitpid(pid, 0)
            rid = self.children.pop(pid, None)
            if rid is not None:
                self.by_id.pop(rid, None)
            _send({"exit": pid, "returncode": os.waitstatus_to_exitcode(status)})

    def kill_all(self) -> None:
        """skiff is gone or closing: no child of ours outlives the template."""
        for pid in list(self.children):
            _kill_group(pid)
        for pid in list(self.children):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            self.children.pop(pid, None)


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):   # the group, and the leader should it have left it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)


def serve(modules: Sequence[str]) -> None:
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    parent = int(os.environ.get(PARENT_ENV) or os.getppid())
    if not die_with_parent(signal.SIGTERM, parent):
        return
    # "+name": imported only, for the scripts the template runs (a local image's app)
    mains = {m: importlib.import_module(m).main for m in modules if not m.startswith("+")}
    for m in modules:
        if m.startswith("+"):
            with contextlib.suppress(ImportError):
                importlib.import_module(m[1:])
    gc.freeze()     # keep the collector from touching (and so copying) the template's pages
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    t = _Template(mains, sel)
    _send({"ready": t.pid})
    buf = b""
    try:
        while not stopping:
            events = sel.select()
            # exec results first: a child's reply must precede its exit report
            for key, _ in events:
                if key.fd in t.execs:
                    t.exec_result(key.fd)
            for key, _ in events:
                if key.fd == wake_r:
                    os.read(wake_r, 4096)
                    t.reap()
                elif key.fd == 0:
                    data = os.read(0, 65536)
                    if not data:
                        return
                    buf += data
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        t.handle(json.loads(line))
    finally:
        t.kill_all()


# ---- the runtime's side ------------------------------------------------------------------

class ForkServer:
    """Starts the template and asks it for children; process.spawn()'s Forker."""

    def __init__(self, modules: Sequence[str], start_timeout: float = 30.0,
                 spawn_timeout: float = 5.0, pid_file: Path | None = None,
                 preload: Sequence[str] = ()) -> None:
        self.modules = tuple(modules)
        # Modules imported into the template for the Python scripts it runs; with none, it
        # runs no scripts (they start in a fresh interpreter).
        self.preload = tuple(preload)
        self.scripts = bool(preload)
        self.start_timeout = start_timeout
        self.spawn_timeout = spawn_timeout
        self.pid_file = pid_file
        self.proc: asyncio.subprocess.Process | None = None
        self.ready = False
        self._starting: asyncio.Future[None] | None = None
        self._ids = itertools.count(1)
        # request id -> (pid, exit future): the future is made when the pid is read, as the
        # exit may be read right after it, before the requester runs again
        self._replies: dict[int, asyncio.Future[tuple[int, asyncio.Future[int]]]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._orphan_watch: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._starting = asyncio.get_running_loop().create_future()
        try:
            await self._start()
        finally:
            self._starting.set_result(None)

    async def _start(self) -> None:
        env = dict(os.environ)
        python_path_env(env)
        env[PARENT_ENV] = str(os.getpid())
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", __name__, *self.modules, *("+" + m for m in self.preload),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, env=env, start_new_session=True)
        if self.pid_file is not None:
            record_pid(self.pid_file, self.proc.pid)
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

    async def wait_ready(self) -> bool:
        """Whether children can be asked for now; waits for a start under way."""
        if self._starting is not None and not self._starting.done():
            await asyncio.shield(self._starting)
        return self.ready

    def module_for(self, argv: Sequence[str]) -> str | None:
        """The preloaded module `argv` runs (python -m MODULE ...), if this server can fork it."""
        if (self.ready and len(argv) >= 3 and os.path.basename(argv[0]) in PYTHON_NAMES
                and argv[1] == "-m" and argv[2] in self.modules):
            return argv[2]
        return None

    def script_for(self, argv: Sequence[str], cwd: Path) -> str | None:
        """The Python script `argv` runs (python3 SCRIPT.py ARGS...: no interpreter option
        before it), as a path, if this server can fork it: a local image's app started in a
        warm interpreter instead of a fresh one."""
        if not (self.ready and self.scripts and len(argv) >= 2
                and os.path.basename(argv[0]) in PYTHON_NAMES
                and argv[1].endswith(".py") and not argv[1].startswith("-")):
            return None
        path = cwd / argv[1]
        return str(path) if path.is_file() else None

    async def spawn_script(self, script: str, argv: Sequence[str], env: Mapping[str, str],
                           cwd: Path, log_file: Path, sandbox: Mapping[str, str] | None = None,
                           ) -> tuple[int, asyncio.Future[int]]:
        """Fork a child that runs `script` as __main__ with sys.argv = argv[1:]."""
        return await self._request({"script": script, "argv": list(argv[1:]), "env": dict(env),
                                    "cwd": str(cwd), "log": str(log_file),
                                    **({"sandbox": dict(sandbox)} if sandbox else {})})

    async def spawn(self, module: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path,
                    log_file: Path, sandbox: Mapping[str, str] | None = None,
                    ) -> tuple[int, asyncio.Future[int]]:
        """Fork a child that runs `module`'s main() with argv[3:] (argv is python -m MODULE ...),
        inside the pod's sandbox (sandbox.Sandbox.wire()) when there is one."""
        return await self._request({"module": module, "argv": [module, *argv[3:]],
                                    "env": dict(env), "cwd": str(cwd), "log": str(log_file),
                                    **({"sandbox": dict(sandbox)} if sandbox else {})})

    async def spawn_exec(self, exe: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path,
                         log_file: Path, sandbox: Mapping[str, str] | None = None,
                         ) -> tuple[int, asyncio.Future[int]]:
        """Fork a child that execs `exe`; a failed exec raises SpawnError (kubelet's StartError)."""
        try:
            return await self._request({"exec": exe, "argv": list(argv), "env": dict(env),
                                        "cwd": str(cwd), "log": str(log_file),
                                        **({"sandbox": dict(sandbox)} if sandbox else {})})
        except SpawnError as e:
            raise SpawnError(f'exec: "{argv[0]}": {e}') from None

    async def _request(self, req: dict[str, Any]) -> tuple[int, asyncio.Future[int]]:
        if not self.ready or self.proc is None or self.proc.stdin is None:
            raise RuntimeError("fork server is not running")
        stdin = self.proc.stdin
        rid = req["id"] = next(self._ids)
        reply: asyncio.Future[tuple[int, asyncio.Future[int]]] = \
            asyncio.get_running_loop().create_future()
        self._replies[rid] = reply
        try:
            stdin.write(json.dumps(req).encode() + b"\n")
            await stdin.drain()
            return await asyncio.wait_for(asyncio.shield(reply), self.spawn_timeout)
        except SpawnError:
            raise
        except BaseException:
            # Timed out or cancelled: the template may have forked, or may yet fork, a child
            # nobody will track. Cancelling through the same pipe is atomic: the template
            # handles lines in order, so it has handled the request when it reads this, and
            # kills the child if it made one (its exit is reported like any other).
            with contextlib.suppress(Exception):
                stdin.write(json.dumps({"cancel": rid}).encode() + b"\n")
            raise
        finally:
            self._replies.pop(rid, None)

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
                exited = self._exit_future(int(msg["pid"])) if "pid" in msg else None
                if reply is not None and not reply.done():
                    if exited is not None:
                        reply.set_result((int(msg["pid"]), exited))
                    elif "errno" in msg:
                        reply.set_exception(SpawnError(msg.get("error", "exec failed")))
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
        """Close the template's stdin: it kills whatever children are left, then exits."""
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
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._reader, 1.0)


if __name__ == "__main__":
    serve(sys.argv[1:])
