"""The platform's side of the data-plane process: start it, wait for it, restart it, stop it.

DataPlaneSupervisor.start() spawns `python -m skiff.dataplane` (main.py)
with asyncio's subprocess API, in a session of its own (a terminal's Ctrl-C
goes to the platform, which then stops the data plane gracefully), stdin a
pipe from the platform, stderr the platform's own, SIGKILL as its
parent-death signal (core/runtime/process.py's die_with_parent(), set in the
child before exec), and its pid recorded in <home>/dataplane.pid so that a
later start can sweep one a crash left. start() returns once the data plane's
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

from skiff.core.runtime.process import (
    UNKNOWN_PARENT_EXIT,
    die_with_parent,
    python_path_env,
    record_pid,
    sweep_supervisor,
)
from skiff.dataplane.channel import SnapshotServer
from skiff.dataplane.model import GatewaySettings

log = logging.getLogger("skiff.dataplane.supervisor")

START_TIMEOUT = 20.0
RESTART_BACKOFF = 1.0


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
    def __init__(self, server: SnapshotServer, home: Path, settings: GatewaySettings,
                 verbose: bool = False) -> None:
        self.server = server
        self.home = home
        self.settings = settings
        self.verbose = verbose
        self.pid_file = home / "dataplane.pid"
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def start(self) -> None:
        # a data plane a crashed platform left (its parent-death signal makes this rare)
        await asyncio.to_thread(sweep_supervisor, self.pid_file)
        self.proc = await self._spawn()
        error = await self._await_hello(self.proc, START_TIMEOUT)
        if error:
            await self._reap(self.proc, 5.0)
            self.proc = None
            raise OSError(error)
        self._task = asyncio.create_task(self._watch())

    async def _spawn(self) -> asyncio.subprocess.Process:
        env = dict(os.environ)
        python_path_env(env)
        proc = await asyncio.create_subprocess_exec(
            *dataplane_argv(self.home, self.server.path, self.settings, self.verbose),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=None,
            env=env, start_new_session=True,
            preexec_fn=functools.partial(_child_setup, os.getpid()))
        record_pid(self.pid_file, proc.pid)
        return proc

    async def _await_hello(self, proc: asyncio.subprocess.Process, timeout: float) -> str:
        """"" once the data plane listens; otherwise why it does not."""
        hello: asyncio.Future[Any] = self.server.hello_from(proc.pid)
        exited: asyncio.Future[Any] = asyncio.ensure_future(proc.wait())
        try:
            done, _ = await asyncio.wait({hello, exited}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
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

    async def _watch(self) -> None:
        while not self._stopping and self.proc is not None:
            rc = await self.proc.wait()
            if self._stopping:
                return
            started = time.monotonic()
            log.warning("data plane %d exited (code %s); restarting it", self.proc.pid, rc)
            self.restarts += 1
            while not self._stopping:
                self.proc = await self._spawn()
                error = await self._await_hello(self.proc, START_TIMEOUT)
                if not error:
                    break
                log.warning("data plane restart failed: %s", error)
                await self._reap(self.proc, 5.0)
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
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            await self._reap(proc, timeout)
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()
        self.pid_file.unlink(missing_ok=True)
