"""Shared parts of the mesh benchmarks (chain.py, memory.py): a `skiff up --pod-network
namespaces` of this tree with a mesh (SMCP with mTLS + an SMMR listing the benchmark's
namespace), pods' network namespaces by IP, wrk and a fixed-rate client run inside a pod's
namespace, and per-process memory from psutil.

The skiff itself is benchmarks/network/_skiff.py's: a fresh home in a temporary folder, free
loopback ports, and a wait (up to --lock-wait s) while another skiff owns the pod network
(/run/skiff/podnet.lock). Every process started here is ended by its PID.

Run as a script, this file is the fixed-rate client (`ip netns exec <ns> python _common.py
fixed-rate ...`): an open-loop sender over N keep-alive connections that prints one JSON line.
A client started by `ip netns exec` lives in that namespace, so a meshed pod's capture rules
apply to its connections exactly as to the app's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "network"))

from _skiff import SRC, Skiff, log, netns_of_ip, pct  # noqa: E402

__all__ = ["SRC", "Skiff", "log", "netns_of_ip", "pct", "mesh_manifest", "skiff_cli",
           "wrk_in", "fixed_rate_in", "wait_rollout", "pod_ips", "mem_of"]


def mesh_manifest(namespace: str) -> str:
    """The guide's SMCP (mTLS on, inbound 8444/8022 excluded) and a roll with `namespace`."""
    return f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {namespace}}}
---
apiVersion: maistra.io/v2
kind: ServiceMeshControlPlane
metadata: {{name: basic, namespace: istio-system}}
spec:
  security: {{dataPlane: {{mtls: true}}}}
  proxy:
    networking:
      trafficControl:
        inbound:
          excludedPorts: [8444, 8022]
---
apiVersion: maistra.io/v1
kind: ServiceMeshMemberRoll
metadata: {{name: default, namespace: istio-system}}
spec:
  members: [knative-serving, knative-eventing, {namespace}]
"""


def skiff_cli(s: Skiff, *args: str, input: str | None = None, timeout: float = 60) -> str:
    env = dict(os.environ, KUBECONFIG=str(s.home / "kubeconfig"), SKIFF_HOME=str(s.home),
               PYTHONPATH=f"{SRC}:{os.environ.get('PYTHONPATH', '')}".rstrip(":"))
    r = subprocess.run([sys.executable, "-m", "skiff.cli.main", *args], input=input,
                       capture_output=True, text=True, timeout=timeout, env=env)
    if r.returncode:
        raise RuntimeError(f"skiff {' '.join(args)}: {r.stdout}{r.stderr}")
    return r.stdout


def wait_rollout(s: Skiff, namespace: str, deployment: str, timeout: int = 90) -> None:
    try:
        s.kubectl("rollout", "status", f"deployment/{deployment}", "-n", namespace,
                  f"--timeout={timeout}s", timeout=timeout + 10)
    except RuntimeError:
        log(diagnose(s, namespace))
        raise


def diagnose(s: Skiff, namespace: str) -> str:
    """What a stuck rollout looks like: pods, their describe, the mesh's status, skiff's log."""
    out = []
    for args in (("get", "pods", "-n", namespace, "-o", "wide"),
                 ("describe", "pods", "-n", namespace),
                 ("get", "smmr,smcp", "-n", "istio-system", "-o", "yaml"),
                 ("get", "events", "-n", namespace)):
        try:
            out.append(f"$ kubectl {' '.join(args)}\n{s.kubectl(*args)}")
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            out.append(f"$ kubectl {' '.join(args)}: {e}")
    out.append(f"skiff log tail:\n{s.log_tail()}")
    return "\n".join(out)


def pod_ips(s: Skiff, namespace: str, selector: str) -> list[str]:
    out = s.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o",
                    "jsonpath={range .items[*]}{.status.podIP}{'\\n'}{end}")
    return [line for line in out.split() if line]


# --- load generators inside a namespace ---------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def netns_cmd(netns: str | None, cmd: list[str]) -> list[str]:
    return ["ip", "netns", "exec", netns, *cmd] if netns else cmd


def wrk_in(netns: str | None, url: str, duration: float, connections: int) -> dict[str, float]:
    """wrk -t1 -c<connections> --latency (closed loop, keep-alive), run in `netns`."""
    cmd = netns_cmd(netns, ["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s",
                            "--latency", url])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise RuntimeError(f"wrk {url} in {netns}: no result:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: (.*)", out)
    if bad:
        raise RuntimeError(f"{url}: {bad.group(1)} non-2xx responses:\n{out}")
    return {"rps": float(m.group(1)),
            "p50_ms": _ms(re.search(r"\s50%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
            "p99_ms": _ms(re.search(r"\s99%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
            "requests": float(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore
            "socket_errors": errs.group(1).strip() if errs else ""}  # type: ignore[dict-item]


def fixed_rate_in(netns: str | None, host: str, port: int, rate: float, seconds: float,
                  conns: int = 8) -> dict[str, float]:
    cmd = netns_cmd(netns, [sys.executable, str(Path(__file__).resolve()), "fixed-rate",
                            "--host", host, "--port", str(port), "--rate", str(rate),
                            "--seconds", str(seconds), "--conns", str(conns)])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    if r.returncode:
        raise RuntimeError(f"fixed-rate client {host}:{port} in {netns}: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


class _Conn(asyncio.Protocol):
    def __init__(self, done: Any) -> None:
        import httptools
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.sent = 0.0
        self.done = done
        self.status = 0
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.done(self, time.perf_counter() - self.sent)


async def fixed_rate(host: str, port: int, rate: float, seconds: float,
                     conns: int = 8) -> dict[str, Any]:
    """Open loop: request i is due at start + i/rate on the next free keep-alive connection.
    Latency is measured from the send; a request sent over 1 ms after its due time (every
    connection was busy: the target stalled) counts as `late`."""
    loop = asyncio.get_running_loop()
    free: deque[_Conn] = deque()
    lat: list[float] = []
    bad = 0
    request = f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()

    def done(c: _Conn, took: float) -> None:
        nonlocal bad
        lat.append(took)
        if c.status != 200:
            bad += 1
        free.append(c)

    async def connect() -> None:
        _, proto = await loop.create_connection(lambda: _Conn(done), host, port)
        free.append(proto)

    for _ in range(conns):
        await connect()
    total = int(rate * seconds)
    warm = int(rate * 0.5)          # the first half second warms connections and caches
    start = time.perf_counter()
    sent = late = reconnects = 0
    while sent < total + warm:
        now = time.perf_counter()
        due = min(int((now - start) * rate) + 1, total + warm)
        while sent < due and free:
            c = free.popleft()
            if c.lost:              # the server closed it (keep-alive request limit): replace
                reconnects += 1
                loop.create_task(connect())
                continue
            c.sent = time.perf_counter()
            if c.sent - (start + sent / rate) > 0.001 and sent >= warm:
                late += 1           # sent over 1 ms after its time: every connection was busy
            assert c.transport is not None
            c.transport.write(request)
            sent += 1
        await asyncio.sleep(0.0005)
    end = time.perf_counter() + 10
    while len(lat) < sent and time.perf_counter() < end:
        await asyncio.sleep(0.01)
    for c in free:
        if c.transport is not None:
            c.transport.close()
    measured = [x * 1e3 for x in lat[warm:]]
    return {"rate": sent / (time.perf_counter() - start), "n": len(measured),
            "p50_ms": pct(measured, 50), "p90_ms": pct(measured, 90),
            "p99_ms": pct(measured, 99), "max_ms": max(measured) if measured else float("nan"),
            "late": late, "reconnects": reconnects, "non_200": bad, "unanswered": sent - len(lat)}


# --- memory -------------------------------------------------------------------------------

def mem_of(pid: int) -> dict[str, float]:
    """RSS, PSS and USS in MiB (psutil's memory_full_info: /proc/PID/smaps_rollup)."""
    import psutil
    m = psutil.Process(pid).memory_full_info()
    return {"rss": m.rss / 2**20, "pss": m.pss / 2**20, "uss": m.uss / 2**20}


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    fr = sub.add_parser("fixed-rate")
    fr.add_argument("--host", required=True)
    fr.add_argument("--port", type=int, required=True)
    fr.add_argument("--rate", type=float, default=1000)
    fr.add_argument("--seconds", type=float, default=8)
    fr.add_argument("--conns", type=int, default=8)
    a = ap.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(fixed_rate(a.host, a.port, a.rate, a.seconds, a.conns))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
