"""Gateway benchmark: one proxy hop through skiff's ingress path against nginx, on loopback.

Not part of the test suite. Needs wrk and nginx, which this script does not install:

    apt-get install -y wrk nginx
    python benchmarks/gateway/run.py                 # ~3 minutes; --quick for a short run
    python benchmarks/gateway/run.py --dataplane-workers 2   # 2 gateway workers vs 2 nginx workers
    python benchmarks/gateway/run.py --strace /tmp/sc   # + system calls per request (strace -c)

What runs, all on 127.0.0.1 and bounded in time:
- a backend: the built-in hello-openshift image server (the pods' own server);
- skiff's ingress path in its own process (this script with --serve-gateway): the router on
  an HTTP and an HTTPS port (edge TLS with the benchmark certificate) in front of the gateway
  (mesh/gateway/proxy.py) serving a compiled snapshot in Istio mode: a Gateway 443 with its
  credential Secret, a KIngress whose host routes 100% to the backend - the same code path as
  `skiff up`, without the API server;
- nginx, with a generated config: one worker (the gateway is one process), keep-alive upstream
  to the same backend, the same certificate, forwarding headers like the gateway's.
  --dataplane-workers N runs N gateway processes on the same ports with SO_REUSEPORT, as
  `skiff up --dataplane-workers N` does, against nginx with worker_processes N;
- wrk (closed loop, -t1 -c<connections>) against: the backend directly, nginx and the gateway
  over HTTP, nginx and the gateway over HTTPS (TLS terminated at the proxy). Rounds are
  interleaved and the median round is reported, because other processes share the machine;
- a fixed-rate latency run: a small open-loop client (this script) sends ~1,000 requests/s
  over 8 keep-alive connections to the backend directly, through nginx and through the gateway,
  and reports p50/p99; the gateway's added p50 is its p50 minus the direct p50.
- with --strace DIR, one more wrk run per proxy under `strace -f -c`: its system calls per
  request. Each wrk round also reports the proxy's involuntary context switches (preemptions)
  per request, from /proc.

Goals (the gateway issue, as revised): >= 0.85x nginx requests/s for one HTTP hop, with one
worker each and with two, >= 0.85x for TLS termination, <= +0.2 ms p50 added at ~1,000
requests/s. Results go to stdout (and --json).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

HOST = "hello.bench.example.com"
NS = "bench"
REV = "hello-00001"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


# --- the gateway process ---------------------------------------------------------------

def serve_gateway(cfg: dict[str, Any]) -> None:
    """The router + gateway of `skiff up`, fed a compiled snapshot instead of watches (one
    worker of several with cfg["reuse_port"], as the data plane's --reuse-port)."""
    import base64

    import uvloop

    from skiff.mesh.gateway.proxy import GatewayProxy
    from skiff.mesh.gateway.snapshot import GatewaySettings, Inputs, compile_snapshot
    from skiff.router.router import Router, RouterPKI

    cert = Path(cfg["cert"]).read_bytes()
    key = Path(cfg["key"]).read_bytes()

    async def main() -> None:
        settings = GatewaySettings(http_port=cfg["http"], https_port=cfg["https"],
                                   local_gateway_port=cfg["local"], domain="bench.example.com")
        reuse = bool(cfg.get("reuse_port"))
        proxy = GatewayProxy(settings, (cert, key), reuse_port=reuse)
        await proxy.start()
        settings = dataclasses.replace(settings, internal_https_port=proxy.internal_https_port)
        secret = {"metadata": {"name": "bench-certs", "namespace": "istio-system"},
                  "data": {"tls.crt": base64.b64encode(cert).decode(),
                           "tls.key": base64.b64encode(key).decode()}}
        gw = {"metadata": {"name": "knative-ingress-gateway", "namespace": "knative-serving",
                           "creationTimestamp": "2026-01-01T00:00:00Z"},
              "spec": {"servers": [{"port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                                    "hosts": ["*"], "tls": {"mode": "SIMPLE",
                                                            "credentialName": "bench-certs"}}]}}
        split = {"serviceName": REV, "serviceNamespace": NS, "servicePort": 80, "percent": 100,
                 "appendHeaders": {"Knative-Serving-Revision": REV,
                                   "Knative-Serving-Namespace": NS}}
        ing = {"metadata": {"name": "hello", "namespace": NS, "generation": 1},
               "spec": {"rules": [{"hosts": [HOST], "visibility": "ExternalIP",
                                   "http": {"paths": [{"splits": [split]}]}}]}}
        snap = compile_snapshot(Inputs(
            gateways=[gw], secrets={"bench-certs": secret}, ingresses=[ing],
            endpoints={(NS, REV): (("127.0.0.1", cfg["backend"]),)},
            knative_servings=[{"spec": {"ingress": {"istio": {"enabled": True}}}}],
            settings=settings, default_cert=(cert, key)))
        proxy.swap(snap.dataplane())
        pki = RouterPKI(Path(cfg["ca"]), Path(cfg["cert"]), Path(cfg["key"]), Path(cfg["cert"]),
                        Path(cfg["key"]))
        router = Router("127.0.0.1", cfg["http"], cfg["https"], proxy, pki, reuse_port=reuse)
        await router.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print("READY", flush=True)
        await stop.wait()
        await router.stop()
        await proxy.stop()

    uvloop.run(main())


# --- nginx -----------------------------------------------------------------------------

NGINX_CONF = """
worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream backend {{ server 127.0.0.1:{backend}; keepalive 256; }}
  server {{
    listen 127.0.0.1:{http};
    listen 127.0.0.1:{https} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Request-Id $request_id;
    }}
  }}
}}
"""


# --- wrk -------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(url: str, duration: int, connections: int, host: str | None) -> dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url]
    if host:
        cmd[1:1] = ["-H", f"Host: {host}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} non-2xx responses:\n{out}")
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99}


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def kernel_seconds(pid: int) -> float:
    """The process's system (kernel) CPU time so far, all its threads together."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[12]) / os.sysconf("SC_CLK_TCK")


def preemptions(pid: int) -> int:
    """The process's involuntary context switches so far (its main thread, where the event
    loop runs): each is a preemption by another runnable task."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("nonvoluntary_ctxt_switches:"):
                return int(line.split()[1])
    return 0


# --- the fixed-rate client -------------------------------------------------------------

class _Conn(asyncio.Protocol):
    def __init__(self, done: Any) -> None:
        import httptools
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.sent = 0.0
        self.done = done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.done(self, time.perf_counter() - self.sent)


async def fixed_rate(port: int, rate: float, seconds: float, host: str, tls: ssl.SSLContext | None,
                     conns: int = 8) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    free: deque[_Conn] = deque()
    lat: list[float] = []
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()

    def done(c: _Conn, took: float) -> None:
        lat.append(took)
        free.append(c)

    for _ in range(conns):
        _, proto = await loop.create_connection(lambda: _Conn(done), "127.0.0.1", port, ssl=tls,
                                                server_hostname=host if tls else None)
        free.append(proto)
    total = int(rate * seconds)
    warm = int(rate * 0.5)          # the first half second warms connections and caches up
    start = time.perf_counter()
    sent = late = 0
    while sent < total + warm:
        due = min(int((time.perf_counter() - start) * rate) + 1, total + warm)
        while sent < due:
            if not free:
                late += 1            # all connections busy: the request waits (not at 1k/s)
                break
            c = free.popleft()
            c.sent = time.perf_counter()
            assert c.transport is not None
            c.transport.write(request)
            sent += 1
        await asyncio.sleep(0.0005)
    while len(lat) < sent:
        await asyncio.sleep(0.01)
    for c in free:
        if c.transport is not None:
            c.transport.close()
    measured = sorted(lat[warm:])
    return {"rate": sent / (time.perf_counter() - start), "p50_ms": _pct(measured, 50) * 1e3,
            "p99_ms": _pct(measured, 99) * 1e3, "late": late}


def _pct(xs: list[float], p: float) -> float:
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


# --- main ------------------------------------------------------------------------------

def strace_targets(out_dir: Path, targets: dict[str, tuple[str, str | None, int | None]],
                   pids_of: dict[int, list[int]], duration: int,
                   connections: int) -> dict[str, dict[str, float]]:
    """System calls per request of each proxy: `strace -f -c` attached to its processes for
    one wrk run; {target: {syscall: calls per request}}, the raw tables kept in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    found: dict[str, dict[str, float]] = {}
    for name, (url, host, pid) in targets.items():
        if pid is None:
            continue
        out = out_dir / f"{name.replace(' ', '-')}.strace.txt"
        cmd = ["strace", "-f", "-c", "-o", str(out)]
        for p in pids_of[pid]:
            cmd += ["-p", str(p)]
        tracer = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)                           # attached before the first request
        res = run_wrk(url, duration, connections, host)
        tracer.send_signal(signal.SIGINT)         # strace -c writes its table on SIGINT
        tracer.wait(10)
        found[name] = per_request(out.read_text(), res["rps"] * duration)
        top = sorted(found[name].items(), key=lambda kv: -kv[1])[:8]
        print(f"strace {name:14s} " + ", ".join(f"{k} {v:.2f}" for k, v in top) + " per request",
              file=sys.stderr, flush=True)
    return found


def per_request(table: str, requests: float) -> dict[str, float]:
    """strace -c's table as calls per request, failed calls as '<syscall> errors'."""
    counts: dict[str, float] = {}
    for line in table.splitlines():
        cols = line.split()
        if len(cols) in (5, 6) and cols[3].isdigit() and cols[-1] != "total":
            counts[cols[-1]] = int(cols[3]) / requests
            if len(cols) == 6:
                counts[cols[-1] + " errors"] = int(cols[4]) / requests
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved wrk rounds (median kept)")
    ap.add_argument("--rate", type=float, default=1000.0, help="fixed-rate requests/s")
    ap.add_argument("--latency-seconds", type=float, default=6.0)
    ap.add_argument("--dataplane-workers", type=int, default=1,
                    help="gateway processes sharing the ports (SO_REUSEPORT)")
    ap.add_argument("--nginx-workers", type=int, default=None,
                    help="nginx worker_processes (default: as many as --dataplane-workers)")
    ap.add_argument("--quick", action="store_true", help="3 s runs, one round")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--strace", type=Path, metavar="DIR",
                    help="after the runs, `strace -f -c` of each proxy during one more wrk run per "
                         "target: system calls per request (DIR/<target>.strace.txt; strace slows "
                         "the traced process, so only the counts mean anything)")
    ap.add_argument("--serve-gateway", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_gateway:
        serve_gateway(json.loads(args.serve_gateway))
        return 0
    if args.quick:
        args.duration, args.rounds, args.latency_seconds = 3, 1, 3.0
    if args.nginx_workers is None:
        args.nginx_workers = args.dataplane_workers
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: apt-get install -y wrk nginx", file=sys.stderr)
            return 2

    from skiff.core.clock import utcnow
    from skiff.core.pki import issue, make_ca

    procs: list[subprocess.Popen[bytes]] = []
    tmp = Path(tempfile.mkdtemp(prefix="skiff-gw-bench-"))
    try:
        now = utcnow()
        ca, ca_key = make_ca("bench-ca", now)
        cert, key = issue(ca, ca_key, HOST, [HOST, "*.bench.example.com", "localhost"],
                          ["127.0.0.1"], now)
        for name, data in (("ca.crt", ca), ("tls.crt", cert), ("tls.key", key)):
            (tmp / name).write_bytes(data)
        ports = {k: free_port() for k in ("backend", "http", "https", "local", "nginx_http",
                                          "nginx_https")}
        env = dict(os.environ, PORT=str(ports["backend"]))
        procs.append(subprocess.Popen([sys.executable, "-m",
                                       "skiff.node.images.hello_openshift"], env=env,
                                      stdout=subprocess.DEVNULL))
        wait_port(ports["backend"])
        cfg = {"backend": ports["backend"], "http": ports["http"], "https": ports["https"],
               "local": ports["local"], "cert": str(tmp / "tls.crt"), "key": str(tmp / "tls.key"),
               "ca": str(tmp / "ca.crt"), "reuse_port": args.dataplane_workers > 1}
        gws = []
        for _ in range(args.dataplane_workers):
            gw = subprocess.Popen([sys.executable, __file__, "--serve-gateway", json.dumps(cfg)],
                                  stdout=subprocess.PIPE)
            procs.append(gw)
            gws.append(gw)
            assert gw.stdout is not None
            if gw.stdout.readline().strip() != b"READY":
                raise RuntimeError("the gateway did not start")
        gw = gws[0]
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (tmp / d).mkdir()
        (tmp / "nginx.conf").write_text(NGINX_CONF.format(
            workers=args.nginx_workers, dir=tmp, backend=ports["backend"],
            http=ports["nginx_http"], https=ports["nginx_https"], cert=tmp / "tls.crt",
            key=tmp / "tls.key"))
        ngx = subprocess.Popen(["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)],
                               stderr=subprocess.DEVNULL)
        procs.append(ngx)
        wait_port(ports["nginx_http"])
        wait_port(ports["http"])

        targets = {
            "direct": (f"http://127.0.0.1:{ports['backend']}/", None, None),
            "nginx http": (f"http://127.0.0.1:{ports['nginx_http']}/", HOST, ngx.pid),
            "gateway http": (f"http://127.0.0.1:{ports['http']}/", HOST, gw.pid),
            "nginx https": (f"https://127.0.0.1:{ports['nginx_https']}/", HOST, ngx.pid),
            "gateway https": (f"https://127.0.0.1:{ports['https']}/", HOST, gw.pid),
        }
        time.sleep(0.2)
        nginx_workers = [int(p) for p in subprocess.run(
            ["pgrep", "-P", str(ngx.pid)], capture_output=True, text=True).stdout.split()]
        gateway_pids = [g.pid for g in gws]
        for url, host, _ in targets.values():                  # warm caches and pools
            run_wrk(url, 1, args.connections, host)
        rounds: dict[str, list[dict[str, float]]] = {k: [] for k in targets}
        order = list(targets)
        for r in range(args.rounds):
            # pairs run back to back, their order alternating, so that a burst of load from
            # elsewhere on the machine hits both sides of a ratio alike
            for name in (order if r % 2 == 0 else order[:1] + order[:0:-1]):
                url, host, pid = targets[name]
                pids = ((nginx_workers or [pid]) if pid == ngx.pid else
                        gateway_pids if pid == gw.pid else [])
                c0 = sum(cpu_seconds(p) for p in pids)
                n0 = sum(preemptions(p) for p in pids)
                k0 = sum(kernel_seconds(p) for p in pids)
                res = run_wrk(url, args.duration, args.connections, host)
                c1 = sum(cpu_seconds(p) for p in pids)
                n1 = sum(preemptions(p) for p in pids)
                k1 = sum(kernel_seconds(p) for p in pids)
                if pids:
                    res["proxy_cpu_us_per_req"] = (c1 - c0) / (res["rps"] * args.duration) * 1e6
                    res["proxy_preemptions_per_req"] = (n1 - n0) / (res["rps"] * args.duration)
                    res["proxy_kernel_us_per_req"] = (k1 - k0) / (res["rps"] * args.duration) * 1e6
                rounds[name].append(res)
                print(f"round {r + 1} {name:14s} {res['rps']:9.0f} req/s  p50 {res['p50_ms']:.3f} ms"
                      f"  p99 {res['p99_ms']:.3f} ms", file=sys.stderr, flush=True)
        wrk = {name: sorted(rs, key=lambda x: x["rps"])[len(rs) // 2] for name, rs in rounds.items()}
        paired = {
            "http": statistics.median(g["rps"] / n["rps"] for g, n in
                                      zip(rounds["gateway http"], rounds["nginx http"], strict=True)),
            "https": statistics.median(g["rps"] / n["rps"] for g, n in
                                       zip(rounds["gateway https"], rounds["nginx https"],
                                           strict=True)),
        }
        cpu = {name: statistics.median(x["proxy_cpu_us_per_req"] for x in rs)
               for name, rs in rounds.items() if "proxy_cpu_us_per_req" in rs[0]}

        syscalls = strace_targets(args.strace, targets, {ngx.pid: nginx_workers or [ngx.pid],
                                                         gw.pid: gateway_pids},
                                  args.duration, args.connections) if args.strace else {}
        client_tls = ssl.create_default_context(cafile=str(tmp / "ca.crt"))
        lat: dict[str, dict[str, float]] = {}
        for name, port, tls in (("direct", ports["backend"], None),
                                ("nginx http", ports["nginx_http"], None),
                                ("gateway http", ports["http"], None),
                                ("nginx https", ports["nginx_https"], client_tls),
                                ("gateway https", ports["https"], client_tls)):
            lat[name] = asyncio.run(fixed_rate(port, args.rate, args.latency_seconds, HOST, tls))
        report = {"machine": {"cpus": os.cpu_count(), "load": os.getloadavg()},
                  "settings": {"duration_s": args.duration, "connections": args.connections,
                               "rounds": args.rounds, "nginx_workers": args.nginx_workers,
                               "dataplane_workers": args.dataplane_workers,
                               "rate": args.rate},
                  "wrk": wrk, "rounds": rounds, "fixed_rate": lat,
                  "proxy_cpu_us_per_req": cpu,
                  "syscalls_per_req": syscalls,
                  "ratios": {
                      "http_vs_nginx": paired["http"],
                      "https_vs_nginx": paired["https"],
                      "http_cpu_nginx_over_gateway": cpu["nginx http"] / cpu["gateway http"],
                      "https_cpu_nginx_over_gateway": cpu["nginx https"] / cpu["gateway https"],
                      "added_p50_ms_http": lat["gateway http"]["p50_ms"] - lat["direct"]["p50_ms"],
                      "added_p50_ms_https": lat["gateway https"]["p50_ms"] - lat["direct"]["p50_ms"],
                      "nginx_added_p50_ms_http": lat["nginx http"]["p50_ms"] - lat["direct"]["p50_ms"],
                  }}
        print_report(report)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
        return 0
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def print_report(r: dict[str, Any]) -> None:
    s = r["settings"]
    print(f"\nwrk -t1 -c{s['connections']} -d{s['duration_s']}s, median of {s['rounds']} "
          f"interleaved rounds; gateway workers {s.get('dataplane_workers', 1)}, "
          f"nginx worker_processes {s['nginx_workers']}; "
          f"{r['machine']['cpus']} CPUs")
    print(f"{'target':16s}{'req/s':>10s}{'p50 ms':>9s}{'p99 ms':>9s}{'proxy CPU us/req':>18s}"
          f"{'of it kernel':>14s}{'preempted/req':>15s}")
    for name, w in r["wrk"].items():
        cpu = f"{w['proxy_cpu_us_per_req']:.1f}" if "proxy_cpu_us_per_req" in w else "-"
        pre = f"{w['proxy_preemptions_per_req']:.2f}" if "proxy_preemptions_per_req" in w else "-"
        ker = f"{w['proxy_kernel_us_per_req']:.1f}" if "proxy_kernel_us_per_req" in w else "-"
        print(f"{name:16s}{w['rps']:10.0f}{w['p50_ms']:9.3f}{w['p99_ms']:9.3f}{cpu:>18s}{ker:>14s}"
              f"{pre:>15s}")
    print(f"\nfixed rate ~{s['rate']:.0f} req/s, 8 connections (open loop)")
    print(f"{'target':16s}{'rate':>8s}{'p50 ms':>9s}{'p99 ms':>9s}")
    for name, f in r["fixed_rate"].items():
        print(f"{name:16s}{f['rate']:8.0f}{f['p50_ms']:9.3f}{f['p99_ms']:9.3f}")
    q = r["ratios"]
    ok = {True: "meets", False: "MISSES"}
    print("\nreq/s ratios are the median over rounds of gateway/nginx measured back to back;"
          " CPU ratios compare the proxies' own CPU per request (median over rounds)")
    print(f"HTTP one hop:    {q['http_vs_nginx']:.2f}x nginx req/s  (goal >= 0.85: "
          f"{ok[q['http_vs_nginx'] >= 0.85]}); CPU per request {q['http_cpu_nginx_over_gateway']:.2f}x")
    print(f"TLS termination: {q['https_vs_nginx']:.2f}x nginx req/s  (goal >= 0.85: "
          f"{ok[q['https_vs_nginx'] >= 0.85]}); CPU per request "
          f"{q['https_cpu_nginx_over_gateway']:.2f}x")
    print(f"added p50 at ~{s['rate']:.0f}/s: HTTP {q['added_p50_ms_http']:+.3f} ms, HTTPS "
          f"{q['added_p50_ms_https']:+.3f} ms (goal <= +0.2 ms: "
          f"{ok[q['added_p50_ms_http'] <= 0.2]}); nginx adds {q['nginx_added_p50_ms_http']:+.3f} ms")


if __name__ == "__main__":
    sys.exit(main())
