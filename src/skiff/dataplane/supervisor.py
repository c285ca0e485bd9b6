"""The platform's side of the data-plane process: start it, wait for it, restart it, stop it.

DataPlaneSupervisor.start() spawns `python -m skiff.dataplane` (main.py)
with asyncio's subprocess API, in a session of its own (a terminal's Ctrl-C
goes to the platform, which then stops the data plane gracefully), stdin a
pipe from the platform, stderr the platform's own, SIGKILL as its
parent-death signal (node/process.py's die_with_parent(), set in the
child before exec), and its pid recorded in <home>/dataplane.pid (dataplane-N.pid for
worker N) so that a later start can sweep one a crash left. With several
workers (--dataplane-workers) each is such a process, with --reuse-port. start() returns once the data plane's
hello has come over the snapshot channel, which it sends after binding its
listeners: ready means listening. A bind failure is raised as OSError.

If the process dies while the platform runs, it is started again at once (a
second crash within a second waits out that second), and the channel sends it
the current snapshot as soon as it says hello. stop() sends SIGTERM (the data
plane closes its listeners and drains) and SIGKILL past the bound.

Neighbours: channel.py (SnapshotServer: hellos), main.py, mesh/setup.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from skiff.dataplane.channel import SnapshotServer
from skiff.dataplane.model import GatewaySettings
from skiff.node.process import (
    UNKNOWN_PARENT_EXIT,
    die_with_parent,
    python_path_env,
    record_pid,
    sweep_supervisor,
)

log = logging.getLogger("skiff.dataplane.supervisor")

START_TIMEOUT = 20.0
RESTART_BACKOFF = 1.0
LAST_WORDS_GRACE = 1.0      # seconds a data plane that exited may still be heard from


def _child_setup(parent: int) -> None:
    """In the child, before exec: SIGKILL when the platform dies (even by SIGKILL)."""
    if not die_with_parent(signal.SIGKILL, parent):
        os._exit(UNKNOWN_PARENT_EXIT)


def dataplane_argv(home: Path, socket: Path, settings: GatewaySettings,
                   verbose: bool = False) -> list[str]:
    return [sys.executable, "-m", "skiff.dataplane", "--home", str(home), "--socket", str(socket),
            "--host", settings.host, "--http-port", str(settings.http_port),
            "--https-port", str(settings.https_port),
            "--local-gateway-port", str(settings.local_gateway_port),
            "--internal-https-port", str(settings.internal_https_port),
            "--domain", settings.domain, *(["--verbose"] if verbose else [])]


class DataPlaneSupervisor:
    """One data-plane process per worker (SO_REUSEPORT when more than one), each restarted
    on its own."""

    def __init__(self, server: SnapshotServer, home: Path, settings: GatewaySettings,
                 workers: int = 1, verbose: bool = False) -> None:
        self.server = server
        self.home = home
        self.settings = settings
        self.workers = max(1, workers)
        self.verbose = verbose
        self.procs: list[asyncio.subprocess.Process | None] = [None] * self.workers
        self.restarts = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def pid(self) -> int | None:
        p = self.procs[0]
        return p.pid if p is not None else None

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p is not None]

    def pid_file(self, worker: int) -> Path:
        return self.home / ("dataplane.pid" if worker == 0 else f"dataplane-{worker}.pid")

    async def start(self) -> None:
        await self.spawn()
        await self.ready()

    async def spawn(self) -> None:
        """Start the processes; ready() waits for them. Apart, so that the platform can start
        them first and do its own start-up while they start theirs."""
        # data planes a crashed platform left (their parent-death signal makes this rare)
        for f in sorted(self.home.glob("dataplane*.pid")):
            await asyncio.to_thread(sweep_supervisor, f)
        for i in range(self.workers):
            self.procs[i] = await self._spawn(i)

    async def ready(self) -> None:
        """Once every process listens (its hello came); OSError with why one does not."""
        errors = await asyncio.gather(*(self._await_hello(p, START_TIMEOUT)
                                        for p in self.procs if p is not None))
        error = next((e for e in errors if e), "")
        if error:
            await self.stop(5.0)
            raise OSError(error)
        self._tasks = [asyncio.create_task(self._watch(i)) for i in range(self.workers)]

    async def _spawn(self, worker: int) -> asyncio.subprocess.Process:
        env = dict(os.environ)
        python_path_env(env)
        argv = dataplane_argv(self.home, self.server.path, self.settings, self.verbose)
        if self.workers > 1:
            argv += ["--reuse-port", "--worker", f"{worker}/{self.workers}"]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
            stderr=None, env=env, start_new_session=True,
            preexec_fn=functools.partial(_child_setup, os.getpid()))
        record_pid(self.pid_file(worker), proc.pid)
        return proc

    async def _await_hello(self, proc: asyncio.subprocess.Process, timeout: float) -> str:
        """"" once the data plane listens; otherwise why it does not."""
        hello: asyncio.Future[Any] = self.server.hello_from(proc.pid)
        exited: asyncio.Future[Any] = asyncio.ensure_future(proc.wait())
        try:
            done, _ = await asyncio.wait({hello, exited}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if exited in done and hello not in done:
                # its last words (why it cannot listen) are sent before it exits, but may be
                # read after the exit is seen: a moment more for them
                done |= (await asyncio.wait({hello}, timeout=LAST_WORDS_GRACE))[0]
        finally:
            exited.cancel()
        if hello in done:
            msg: dict[str, Any] = hello.result()
            return str(msg.get("error") or "")
        hello.cancel()
        if exited in done or proc.returncode is not None:
            return f"the data plane exited with code {proc.returncode} before it listened"
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        return f"the data plane did not listen within {timeout:.0f} s"

    async def _watch(self, worker: int) -> None:
        while not self._stopping:
            proc = self.procs[worker]
            if proc is None:
                return
            rc = await proc.wait()
            if self._stopping:
                return
            started = time.monotonic()
            log.warning("data plane %d exited (code %s); restarting it", proc.pid, rc)
            self.restarts += 1
            while not self._stopping:
                proc = self.procs[worker] = await self._spawn(worker)
                error = await self._await_hello(proc, START_TIMEOUT)
                if not error:
                    break
                log.warning("data plane restart failed: %s", error)
                await self._reap(proc, 5.0)
                await asyncio.sleep(max(0.0, RESTART_BACKOFF - (time.monotonic() - started)))
                started = time.monotonic()

    async def _reap(self, proc: asyncio.subprocess.Process, timeout: float) -> None:
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def stop(self, timeout: float = 12.0) -> None:
        """SIGTERM (listeners close, connections drain), SIGKILL after `timeout`."""
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        procs = [p for p in self.procs if p is not None]
        self.procs = [None] * self.workers
        for p in procs:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
        await asyncio.gather(*(self._reap(p, timeout) for p in procs))
        for p in procs:
            if p.stdin is not None:
                p.stdin.close()
        for i in range(self.workers):
            self.pid_file(i).unlink(missing_ok=True)
