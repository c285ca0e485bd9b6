"""A real `skiff up` on free loopback ports, driven by the real kubectl (tests import Skiff and
new_skiff from here; tests/conftest.py makes the per-module `skiff` fixture of it).

One platform per test module (starting one takes about a second); every wait
has a deadline. Each Skiff has its own home and a fresh kubectl cache dir, so
discovery is never stale between modules.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Skiff:
    home: Path
    api_port: int
    proc: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)
    log_path: Path | None = None
    extra_args: list[str] = field(default_factory=list)   # more `skiff up` flags (--domain ...)

    @property
    def kubeconfig(self) -> Path:
        return self.home / "kubeconfig"

    def env(self) -> dict[str, str]:
        e = dict(os.environ)
        e["KUBECONFIG"] = str(self.kubeconfig)
        e["SKIFF_HOME"] = str(self.home)
        return e

    def start(self, timeout: float = 30) -> None:
        self.log_path = self.home.parent / f"{self.home.name}-skiff.log"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.up_argv(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"skiff up exited {self.proc.returncode}:\n{self.log()}")
            if self.kubeconfig.exists() and self.readyz() == "ok":
                return
            time.sleep(0.05)
        raise TimeoutError(f"skiff up not ready in {timeout}s:\n{self.log()}")

    def up_argv(self, *more: str) -> list[str]:
        """`skiff up` on this home and these ports, with extra_args and `more` flags."""
        cmd = [sys.executable, "-m", "skiff.cli.main", "up", "--home", str(self.home),
               "--api-port", str(self.api_port)]
        for flag, port in self.ports.items():
            cmd += [flag, str(port)]
        return cmd + self.extra_args + list(more)

    def readyz(self) -> str:
        ctx = ssl.create_default_context(cafile=str(self.home / "pki" / "ca.crt"))
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{self.api_port}/readyz", context=ctx,
                                        timeout=2) as r:
                return str(r.read().decode())
        except Exception:
            return ""

    def stop(self, timeout: float = 40) -> int:
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # where it hangs, into its log: every asyncio task's stack (SIGUSR2), every
            # thread's (SIGUSR1)
            self.proc.send_signal(signal.SIGUSR2)
            time.sleep(1)
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(1)
            left = process_tree(self.proc.pid)
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"skiff up did not stop within {timeout:.0f} s; its processes "
                                 f"then:\n{left}\n{self.log()}") from None
        finally:
            self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-20000:] if self.log_path else ""

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = ["kubectl", "--kubeconfig", str(self.kubeconfig),
               "--cache-dir", str(self.home / "kubectl-cache"), *args]
        r = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def skiff(self, *args: str, input: str | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "skiff.cli.main", *args], input=input,
                              capture_output=True, text=True, timeout=timeout, env=self.env())

    def wait_for(self, fn: Any, timeout: float = 20, interval: float = 0.1, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = fn()
            if last:
                return last
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what or fn}: last={last!r}")


def wait_pod_network_free(timeout: float = 180) -> None:
    """Only one skiff at a time owns the machine's pod network (a flock); a test that needs it
    waits for another run's skiff (a benchmark, say) to let it go."""
    import fcntl
    path = Path("/run/skiff/podnet.lock")
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        with path.open("rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                time.sleep(0.5)


def new_skiff(tmp: Path) -> Skiff:
    return Skiff(home=tmp / "home", api_port=free_port(),
                 ports={"--http-port": free_port(), "--https-port": free_port(),
                        "--local-gateway-port": free_port()})


def process_tree(pid: int) -> str:
    """One line per process under `pid`: pid, state, command line (for a stop that hung)."""
    import psutil
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error as e:
        return f"({e})"
    lines = []
    for p in procs:
        try:
            try:
                where = p.cwd()            # a container's: <home>/pods/<pod>/<container>/...
            except psutil.Error:
                where = "?"
            lines.append(f"  {p.pid} {p.status()} ppid {p.ppid()} in {where}: "
                         f"{' '.join(p.cmdline())[:160]}")
        except psutil.Error:
            continue
    return "\n".join(lines)
