"""A `skiff up` of its own for the network benchmarks (podstart.py, vip.py): a fresh home in a
temporary folder, free loopback ports, the pod network asked for by name, an HTTPS client of its
API (keep-alive, one connection per thread) and a watch stream read on a thread.

Only one skiff at a time can own a machine's pod network (a flock on /run/skiff/podnet.lock);
others may hold it while they run tests. `start()` of a `namespaces` skiff therefore waits, up to
a deadline, until the lock is free, and tries again if another skiff takes it first. Every
process started here is ended by its PID with SIGTERM, and `stop()` checks that it exited.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[2] / "src"
LOCK = Path("/run/skiff/podnet.lock")
HOST = "127.0.0.1"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def pct(xs: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def lock_free() -> bool:
    if not LOCK.exists():
        return True
    return subprocess.run(["flock", "-n", str(LOCK), "true"], capture_output=True,
                          timeout=10).returncode == 0


def wait_lock(deadline: float) -> None:
    told = False
    while not lock_free():
        if time.monotonic() > deadline:
            raise SystemExit("the pod network stayed owned by another skiff until the deadline")
        if not told:
            holder = LOCK.read_text().strip() if LOCK.exists() else "?"
            log(f"waiting for the pod network lock (held by pid {holder})")
            told = True
        time.sleep(1.0)


class Skiff:
    def __init__(self, mode: str, root: Path | None = None) -> None:
        self.mode = mode
        self.root = root or Path(tempfile.mkdtemp(prefix=f"skiff-bench-{mode}-"))
        self.home = self.root / "home"
        self.api_port = free_port()
        self.ports = {"--http-port": free_port(), "--https-port": free_port(),
                      "--local-gateway-port": free_port()}
        self.log_path = self.root / "skiff.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._tls = threading.local()

    # -- process

    def start(self, lock_deadline_s: float = 300, timeout: float = 60) -> None:
        deadline = time.monotonic() + lock_deadline_s
        while True:
            if self.mode == "namespaces":
                wait_lock(deadline)
            try:
                self._start_once(timeout)
                return
            except RuntimeError as e:
                if "another skiff owns" in str(e) and time.monotonic() < deadline:
                    log("another skiff took the pod network first; waiting again")
                    time.sleep(2.0)
                    continue
                raise

    def _start_once(self, timeout: float) -> None:
        cmd = [sys.executable, "-m", "skiff.cli.main", "up", "--home", str(self.home),
               "--api-port", str(self.api_port), "--pod-network", self.mode]
        for flag, port in self.ports.items():
            cmd += [flag, str(port)]
        env = dict(os.environ, PYTHONPATH=f"{SRC}:{os.environ.get('PYTHONPATH', '')}".rstrip(":"),
                   COLUMNS="250", PYTHONUNBUFFERED="1")
        with self.log_path.open("ab") as logf:
            self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError(f"skiff up ({self.mode}) exited:\n{self.log_tail()}")
            if (self.home / "token").exists() and self._readyz():
                return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"skiff up ({self.mode}) not ready in {timeout}s:\n{self.log_tail()}")

    def _readyz(self) -> bool:
        try:
            st, body = self.request("GET", "/readyz", raw=True)
            return st == 200 and body == b"ok"
        except (OSError, ssl.SSLError, http.client.HTTPException):
            self._tls.conn = None
            return False

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def stop(self, timeout: float = 40) -> None:
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)      # our own child, by its PID
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"skiff pid {p.pid} did not exit {timeout}s after SIGTERM; SIGKILL")
            p.kill()
            p.wait(10)
        if p.poll() is None:
            raise RuntimeError(f"skiff pid {p.pid} is still running")
        log(f"skiff ({self.mode}) pid {p.pid} exited with {p.returncode}")

    # -- API

    @property
    def token(self) -> str:
        return (self.home / "token").read_text().strip()

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.home / "pki" / "ca.crt"))

    def _conn(self) -> http.client.HTTPSConnection:
        c = getattr(self._tls, "conn", None)
        if c is None:
            c = http.client.HTTPSConnection(HOST, self.api_port, timeout=30,
                                            context=self.ssl_context())
            self._tls.conn = c
        return c

    def request(self, method: str, path: str, body: Any = None,
                raw: bool = False) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            c = self._conn()
            try:
                c.request(method, path, body=data, headers=headers)
                r = c.getresponse()
                out = r.read()
                break
            except (OSError, http.client.HTTPException):
                c.close()
                self._tls.conn = None
                if attempt:
                    raise
        return r.status, (out if raw else (json.loads(out) if out else None))

    def must(self, method: str, path: str, body: Any = None) -> Any:
        st, out = self.request(method, path, body)
        if st >= 300:
            raise RuntimeError(f"{method} {path}: {st} {out}")
        return out

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 120) -> str:
        r = subprocess.run(["kubectl", "--kubeconfig", str(self.home / "kubeconfig"), *args],
                           input=input, capture_output=True, text=True, timeout=timeout)
        if r.returncode:
            raise RuntimeError(f"kubectl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def watch(self, path: str, on_event: Callable[[float, dict[str, Any]], None],
              stop: threading.Event) -> threading.Thread:
        """Stream `path?watch=1...` on a thread; on_event(perf_counter at arrival, event)."""
        ready = threading.Event()

        def run() -> None:
            c = http.client.HTTPSConnection(HOST, self.api_port, timeout=3600,
                                            context=self.ssl_context())
            c.request("GET", path, headers={"Authorization": f"Bearer {self.token}",
                                            "Accept": "application/json"})
            r = c.getresponse()
            ready.set()
            try:
                while not stop.is_set():
                    line = r.readline()
                    if not line:
                        break
                    t = time.perf_counter()
                    on_event(t, json.loads(line))
            except (OSError, http.client.HTTPException, ValueError):
                pass
            finally:
                c.close()

        th = threading.Thread(target=run, daemon=True)
        th.start()
        ready.wait(30)
        return th


def netns_of_ip(ip: str) -> str | None:
    """The skiff-<id> network namespace whose eth0 carries `ip`."""
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                           timeout=10).stdout.split()
    for name in names:
        if not name.startswith("skiff-"):
            continue
        out = subprocess.run(["ip", "-n", name, "-4", "-o", "addr", "show", "dev", "eth0"],
                             capture_output=True, text=True, timeout=10).stdout
        if f" {ip}/" in out:
            return name
    return None
