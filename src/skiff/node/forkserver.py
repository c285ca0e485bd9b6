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

Standbys: the template also holds STANDBY children forked ahead of need (two:
a revision pod's user-container and queue-proxy), each detached already and
waiting on a pipe of its own; a Python request (module or script) is written
to one, so a pod's start costs a pipe write instead of a fork and the child's
first page faults; each has also made one connection on the containers' event
loop (_rehearse) so that the pages this touches are its own already. Used
ones are replaced after STANDBY_REFILL_DELAY without requests, so the forks
never compete with the containers just started; execs are always fresh forks.
A standby is a child like any other: reaped, and killed with the rest.
(Forking a pod's hello-openshift and queue-proxy until queue-proxy answers the
kubelet's probe, on this loaded 2-CPU VM: 10-16 ms fresh, 6-15 ms from
standbys, 7-9 ms from rehearsed standbys.)

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
import socket
import sys
import time
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
STANDBY_ENV = "SKIFF_FORKSERVER_STANDBY"   # how many standby children to hold (below)


def _report(msg: dict[str, Any]) -> None:
    """A line for skiff on the template's stdout (ForkServer._read reads them)."""
    try:
        os.write(1, json.dumps(msg).encode() + b"\n")   # short lines: atomic on a pipe
    except OSError:
        pass    # skiff is gone; the EOF on stdin ends the template


def _detach(template: int) -> None:
    """In a fresh child, what needs no request: own session, default signals, die with the
    template."""
    os.setsid()
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    # Checked after setting it: had the template died in between, the signal would never come.
    if not die_with_parent(signal.SIGKILL, template):
        os._exit(UNKNOWN_EXIT)


def _setup_child(req: dict[str, Any], template: int) -> None:
    """In a fresh child: own session, default signals, die with the template, fds 0/1/2."""
    _detach(template)
    _attach(req)


def _attach(req: dict[str, Any]) -> None:
    """In a child, what the request says: fds 0/1/2 (the run's log), the pod's sandbox."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    out = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.umask(0o022)   # the log is skiff's and private; what the container makes is its own
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    for fd in {devnull, out} - {0, 1, 2}:
        os.close(fd)
    if req.get("sandbox"):
        sandbox.enter(req["sandbox"])    # the pod's network, mounts and hostname


def _child(req: dict[str, Any], main: Callable[[], object], template: int,
           standby: bool = False) -> None:
    code: int = 1
    try:
        if standby:
            # Detached when it was forked, and it closed the template's fds then: those it
            # holds now are its own state's (libuv's, from _rehearse), so they stay.
            _attach(req)
        else:
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


# ---- standbys: children forked ahead of need ------------------------------------------

STANDBY = 2                 # a revision pod's two containers (user-container, queue-proxy)
STANDBY_REFILL_DELAY = 0.5  # seconds without a request before used standbys are replaced
_HEADER = 10                # a request to a standby: its length in 10 ASCII digits, then JSON
MAX_STANDBY_REQUEST = 60 * 1024   # fits a pipe's buffer: handing one over never blocks


def frame(body: bytes) -> bytes | None:
    """A request's JSON text (the line skiff sent, passed on as it came) as a standby reads
    it; None when it is too large for one (a fresh fork takes it instead)."""
    if len(body) > MAX_STANDBY_REQUEST - _HEADER:
        return None
    return b"%010d" % len(body) + body


def frame_length(header: bytes) -> int:
    """The body length a frame's header announces; ValueError for anything but _HEADER
    digits within the bound."""
    if len(header) != _HEADER or not header.isdigit():
        raise ValueError(f"bad standby request header {header[:_HEADER]!r}")
    n = int(header)
    if n > MAX_STANDBY_REQUEST - _HEADER:
        raise ValueError(f"standby request of {n} bytes is over the bound")
    return n


def refill_timeout(have: int, want: int, due: float | None, now: float) -> float | None:
    """How long the template may wait for input before it must fork standbys: None when no
    refill is due (the pool is full, or no request has used one since), else the seconds
    left until `due` (0: now)."""
    if due is None or have >= want:
        return None
    return max(0.0, due - now)


def _read_exact(fd: int, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            raise EOFError("the template closed the standby's pipe")
        buf += chunk
    return buf


def _rehearse() -> None:
    """In a standby, before any request: one connection to a throwaway loopback server on the
    event loop the containers use (uvloop, when the template has it), so that the memory this
    touches (the loop's code and objects, the allocator's arenas) is copied now rather than
    during a pod's start: a fork's first write to each page it shares with the template is a
    copy-on-write fault (about 1,000 in each container's start). Sockets made here and handed
    to the loop: uvloop resolves addresses it is given on libuv's thread pool, and a standby
    must stay single-threaded (setns into a pod's mount namespace needs that; a test checks)."""
    uvloop = sys.modules.get("uvloop")
    factory = uvloop.new_event_loop if uvloop is not None else asyncio.new_event_loop

    async def once() -> None:
        loop = asyncio.get_running_loop()
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)
        lsock.setblocking(False)
        server = await loop.create_server(asyncio.Protocol, sock=lsock)
        csock = socket.socket()
        csock.connect(lsock.getsockname())   # at once: the kernel queues it (uvloop's
        csock.setblocking(False)             # sock_connect would resolve it on a thread)
        _, writer = await asyncio.open_connection(sock=csock)
        writer.write(b"GET / HTTP/1.1\r\n\r\n")
        await writer.drain()
        writer.close()
        server.close()
        await server.wait_closed()

    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(asyncio.wait_for(once(), 0.25))
    finally:
        signal.set_wakeup_fd(-1)      # the loop's, should it have left its own behind


def _standby(r: int, mains: Mapping[str, Callable[[], object]], template: int) -> None:
    """A child forked before it is needed: detached (own session, default signals, dies with
    the template) and holding no fd but its request pipe `r` (not skiff's pipes, not the other
    standbys'), it waits for one request and runs it as a child forked for it would. The
    fork and the child's first steps are then off a pod's start. Never returns."""
    try:
        _detach(template)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, r)
        os.closerange(r + 1, os.sysconf("SC_OPEN_MAX"))
        with contextlib.suppress(Exception):
            _rehearse()
        req = json.loads(_read_exact(r, frame_length(_read_exact(r, _HEADER))))
        os.close(r)
        main = ((lambda: _run_script(req["argv"][0])) if "script" in req
                else mains[req["module"]])
    except BaseException:
        os._exit(UNKNOWN_EXIT)
    _child(req, main, template, standby=True)


class _Template:
    """The template's bookkeeping: every child it forked and has not reaped yet."""

    def __init__(self, mains: Mapping[str, Callable[[], object]],
                 sel: selectors.BaseSelector, standby: int = 0) -> None:
        self.mains = mains
        self.sel = sel
        self.pid = os.getpid()
        self.children: dict[int, int] = {}        # pid -> request id
        self.by_id: dict[int, int] = {}           # request id -> pid
        self.execs: dict[int, tuple[int, int]] = {}   # err pipe fd -> (request id, pid)
        # Standbys (at most `want`): pid -> the write end of its request pipe. Each is a child
        # of ours too: reaped, and killed with the rest, like any other.
        self.want = standby
        self.standbys: dict[int, int] = {}
        self.refill_due: float | None = 0.0 if standby else None

    def refill(self) -> None:
        """Fork standbys up to `want`. Done only after STANDBY_REFILL_DELAY without requests,
        so that the forks never compete for the CPUs with the containers just started."""
        self.refill_due = None
        while len(self.standbys) < self.want:
            try:
                r, w = os.pipe()
            except OSError:
                return
            try:
                pid = os.fork()
            except OSError:
                os.close(r)
                os.close(w)
                return
            if pid == 0:
                _standby(r, self.mains, self.pid)
            os.close(r)
            os.set_blocking(w, False)
            self.standbys[pid] = w
            _report({"standby": pid})

    def _hand_over(self, line: bytes) -> int | None:
        """Give a Python request (`line`, its JSON text as skiff sent it) to a standby: its
        pid, or None (none left, the request too large, or the standby gone: then a fresh
        fork takes it)."""
        data = frame(line) if self.standbys else None
        while data is not None and self.standbys:
            pid, w = self.standbys.popitem()
            try:
                sent = os.write(w, data)     # never blocks: the frame fits the pipe's buffer
            except OSError:
                sent = -1
            finally:
                os.close(w)
            if sent == len(data):
                return pid
            _kill_group(pid)                 # dead, or half a request: reaped as any child
        return None

    def handle(self, req: dict[str, Any], line: bytes) -> None:
        """One request from skiff: `req`, parsed from `line`."""
        if "cancel" in req:
            self.cancel(int(req["cancel"]))
            return
        rid = int(req["id"])
        if self.want:
            self.refill_due = time.monotonic() + STANDBY_REFILL_DELAY
        if "exec" not in req:
            pid = self._hand_over(line)
            if pid is not None:
                self.children[pid] = rid
                self.by_id[rid] = pid
                _report({"id": rid, "pid": pid})
                return
        err_r = err_w = -1
        try:
            if "exec" in req:
                err_r, err_w = os.pipe2(os.O_CLOEXEC)
            pid = os.fork()
        except OSError as e:
            for fd in (err_r, err_w):
                if fd >= 0:
                    os.close(fd)
            _report({"id": rid, "error": str(e)})
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
            _report({"id": rid, "pid": pid})

    def exec_result(self, err_r: int) -> None:
        rid, pid = self.execs.pop(err_r)
        self.sel.unregister(err_r)
        data = b""
        with contextlib.suppress(OSError):
            data = os.read(err_r, 64)
        os.close(err_r)
        if data:
            errno = int(data or b"0")
            _report({"id": rid, "error": os.strerror(errno), "errno": errno})
        else:
            _report({"id": rid, "pid": pid})

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
            w = self.standbys.pop(pid, None)
            if w is not None:             # a standby died unused: replaced at the next request
                os.close(w)
            for fd, (_, epid) in list(self.execs.items()):
                if epid == pid:
                    self.exec_result(fd)      # its reply goes before its exit
            _, status = os.waitpid(pid, 0)
            rid = self.children.pop(pid, None)
            if rid is not None:
                self.by_id.pop(rid, None)
            _report({"exit": pid, "returncode": os.waitstatus_to_exitcode(status)})

    def kill_all(self) -> None:
        """skiff is gone or closing: no child of ours outlives the template."""
        standbys = list(self.standbys)
        for pid in [*self.children, *standbys]:
            _kill_group(pid)
        for pid in [*self.children, *standbys]:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            self.children.pop(pid, None)
        for w in self.standbys.values():
            os.close(w)
        self.standbys.clear()


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):   # the group, and the leader should it have left it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)


def serve(modules: Sequence[str], standby: int = 0) -> None:
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
    if any(m.startswith("+") for m in modules):
        # A Python web app's first host lookup (http.server's bind calls socket.getfqdn) loads
        # glibc's NSS modules and reads nsswitch.conf: 3.1 ms in a fork of a process that never
        # looked a name up, 0.2 ms in a fork of one that did. From /etc/hosts only ("files"
        # answers localhost): the resolver stays untouched, so a pod's child still reads its
        # own resolv.conf; glibc caches no answer, so it reads the pod's hosts file too.
        with contextlib.suppress(OSError):
            socket.gethostbyname("localhost")
    gc.freeze()     # keep the collector from touching (and so copying) the template's pages
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    t = _Template(mains, sel, standby)
    _report({"ready": t.pid})
    buf = b""
    try:
        while not stopping:
            timeout = refill_timeout(len(t.standbys), t.want, t.refill_due, time.monotonic())
            if timeout == 0:
                t.refill()
                continue
            events = sel.select(timeout)
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
                        t.handle(json.loads(line), line)
    finally:
        t.kill_all()


# ---- the runtime's side ------------------------------------------------------------------

class ForkServer:
    """Starts the template and asks it for children; process.spawn()'s Forker."""

    def __init__(self, modules: Sequence[str], start_timeout: float = 30.0,
                 spawn_timeout: float = 5.0, pid_file: Path | None = None,
                 preload: Sequence[str] = (), standby: int = STANDBY) -> None:
        self.modules = tuple(modules)
        # Children the template holds forked ahead of need (their pids, as it announces them);
        # each becomes the child of a Python spawn (module or script) with no fork on its path.
        self.standby = standby
        self.standbys: set[int] = set()
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
        self._outbox: list[bytes] = []       # lines for the template, written together
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
        env[STANDBY_ENV] = str(self.standby)
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
        rid = req["id"] = next(self._ids)
        reply: asyncio.Future[tuple[int, asyncio.Future[int]]] = \
            asyncio.get_running_loop().create_future()
        self._replies[rid] = reply
        try:
            self._send(json.dumps(req).encode() + b"\n")
            return await asyncio.wait_for(asyncio.shield(reply), self.spawn_timeout)
        except SpawnError:
            raise
        except BaseException:
            # Timed out or cancelled: the template may have forked, or may yet fork, a child
            # nobody will track. Cancelling through the same pipe is atomic: the template
            # handles lines in order, so it has handled the request when it reads this, and
            # kills the child if it made one (its exit is reported like any other).
            with contextlib.suppress(Exception):
                self._send(json.dumps({"cancel": rid}).encode() + b"\n")
            raise
        finally:
            self._replies.pop(rid, None)

    def _send(self, line: bytes) -> None:
        """Queue a line for the template; the lines queued in one turn of the event loop go in
        one write. A pod's containers ask in the same turn (pod.py gathers them), so the
        template reads their requests together: the first child it wakes cannot delay the
        second request (on a busy machine, a woken process often takes skiff's CPU)."""
        self._outbox.append(line)
        if len(self._outbox) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        lines, self._outbox = self._outbox, []
        if self.proc is not None and self.proc.stdin is not None and lines:
            with contextlib.suppress(Exception):   # the template is gone: the reader says so
                self.proc.stdin.write(b"".join(lines))

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
                if "standby" in msg:
                    self.standbys.add(int(msg["standby"]))
                    continue
                if "exit" in msg and int(msg["exit"]) in self.standbys:
                    self.standbys.discard(int(msg["exit"]))     # never handed out
                    continue
                if "exit" in msg:
                    fut = self._exit_future(int(msg["exit"]))
                    self._exits.pop(int(msg["exit"]), None)
                    if not fut.done():
                        fut.set_result(int(msg["returncode"]))
                    continue
                if "pid" in msg:
                    self.standbys.discard(int(msg["pid"]))
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
    serve(sys.argv[1:], int(os.environ.get(STANDBY_ENV) or 0))
