"""The Service VIP hop against a direct pod connection: requests/s and latency to
http://<podIP>:8080/ and to http://<clusterIP>:80/ (kube-proxy's nftables DNAT), from the host and
from inside another pod's network namespace, in interleaved rounds.

Not part of the test suite (needs root: network namespaces, `ip netns exec`):

    apt-get install -y wrk                           # the script installs nothing
    python benchmarks/network/vip.py                 # ~3 minutes
    python benchmarks/network/vip.py --quick         # ~1 minute, a smoke test of the benchmark
    python benchmarks/network/vip.py --rounds 7 --duration 4 --json /tmp/vip.json

What runs: one `skiff up --pod-network namespaces` of this tree (PYTHONPATH=src) in a fresh home
on free loopback ports; it waits (--lock-wait) while another skiff owns the pod network. In it,
a Deployment of docker.io/openshift/hello-openshift (1 replica: the built-in image on uvloop +
httptools) with a Service port 80 -> 8080, and a Deployment of docker.io/curlimages/curl (the
client pod: its namespace is the one whose eth0 carries its podIP). Then, in rounds, with the
order of direct and VIP alternating from round to round (A B, B A, ...):
  - wrk -t1 -c<conns> -d<duration>s --latency (keep-alive): requests/s, p50, p99;
  - new connections: this script's own client connects, sends one request, reads the reply
    and closes, one at a time for <duration> s: p50 and p99 of the whole exchange. Every one
    of these is a new conntrack entry, so this is where a DNAT hop would cost (with keep-alive,
    only the first packet of a connection goes through the NAT lookup);
each from the host and from the client pod's namespace (`ip netns exec skiff-<id>`).
A ratio is VIP/direct, the median over rounds of each round's paired ratio.
Goal (issue 11): no measurable loss (the VIP is kernel DNAT).

Source ports. The new-connection client binds each connection to the next port of a range of
its target's own (PORTS: below the kernel's ephemeral range, so no other program's connections
land there either). Direct and VIP connections from one client reach the server as the same
4-tuple (client:port -> podIP:8080) once DNATed, but the client's kernel gives them different
TCP timestamp clocks and ISNs (both are hashed from the client's own 4-tuple, whose destination
is the VIP or the pod IP).
When one path reuses a source port that the other path's connection left in TIME_WAIT on the
server (60 s; the server closes first), the server's PAWS check rejects the SYN: it answers
with the old ACK, the client resets and resends the SYN ~10 ms later (2 jiffies), or after
1 s when the resent SYN meets another such TIME_WAIT (conntrack gives the resent SYN a new
source port when the old tuple clashes). Sharing the kernel's range measured that, not the
DNAT (--shared-ports brings it back). Each new-connection figure comes with the server's
TcpExt PAWSTimewait count over it, and the run with the host's conntrack statistics.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

NS = "vip-bench"
MANIFEST = """
apiVersion: v1
kind: Namespace
metadata: {name: vip-bench}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: vip-bench}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: web
          image: docker.io/openshift/hello-openshift
          readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: vip-bench}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: curl, namespace: vip-bench}
spec:
  replicas: 1
  selector: {matchLabels: {app: curl}}
  template:
    metadata: {labels: {app: curl}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: curl
          image: docker.io/curlimages/curl
          command: [sleep, infinity]
"""


# --- the new-connection client (also run inside a pod's namespace: --client) ---------------

# Source ports per target, below the kernel's ephemeral range (32768-60999 by default), where
# nothing else on the machine picks its ports: not wrk, not the kubelet's probes, not the
# kernel's NAT when it moves a clashing tuple (it does so only on a clash).
PORTS = {"direct": (20000, 25999), "vip": (26000, 31999)}


class SourcePorts:
    """Sockets bound to the next port of `ports` in turn (None: the kernel's choice)."""

    def __init__(self, ports: tuple[int, int] | None) -> None:
        self.ports = ports
        self.next = ports[0] if ports else 0

    def socket(self) -> socket.socket:
        s = socket.socket()
        if self.ports is None:
            return s
        lo, hi = self.ports
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for _ in range(hi - lo + 1):
            port, self.next = self.next, (lo if self.next >= hi else self.next + 1)
            try:
                s.bind(("0.0.0.0", port))
                return s
            except OSError:       # a listener holds it, or our own socket still does
                continue
        s.close()
        raise OSError(f"no free source port in {lo}-{hi}")


def _quantile(xs: list[float], p: float) -> float:
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


def client(host: str, port: int, seconds: float, ports: tuple[int, int] | None = None,
           max_n: int = 200_000) -> dict[str, Any]:
    req = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    source = SourcePorts(ports)
    lat: list[float] = []
    errors = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and len(lat) < max_n:
        t0 = time.perf_counter_ns()
        try:
            with source.socket() as s:
                s.settimeout(2)
                s.connect((host, port))
                s.sendall(req)
                # to the server's FIN (Connection: close), so the server closes first and its
                # TIME_WAITs, not the client's, hold the 4-tuples: a client that closed first
                # would find its own ports taken (TIME_WAIT) when it comes round to them
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
            if not data.startswith(b"HTTP/1.1 200"):
                errors += 1
                continue
        except OSError:
            errors += 1
            time.sleep(0.01)
            continue
        lat.append((time.perf_counter_ns() - t0) / 1000)
    lat.sort()
    return {"n": len(lat), "rps": len(lat) / seconds, "p50_us": _quantile(lat, 0.50),
            "p99_us": _quantile(lat, 0.99), "p999_us": _quantile(lat, 0.999),
            "max_us": lat[-1] if lat else float("nan"),
            "over_5ms": sum(1 for x in lat if x > 5_000),
            "over_200ms": sum(1 for x in lat if x > 200_000), "errors": errors,
            "ports": list(ports) if ports else None}


# --- what the kernels counted ------------------------------------------------------------------

def paws_timewait(netns: str) -> int:
    """TcpExt PAWSTimewait of a namespace: SYNs its TIME_WAIT sockets refused (PAWS)."""
    text = subprocess.run(["ip", "netns", "exec", netns, "cat", "/proc/net/netstat"],
                          capture_output=True, text=True, timeout=10).stdout
    rows = [line.split() for line in text.splitlines() if line.startswith("TcpExt:")]
    if len(rows) < 2:
        return -1
    return int(dict(zip(rows[0][1:], rows[1][1:], strict=True)).get("PAWSTimewait", -1))


CT_FIELDS = ("found", "invalid", "insert_failed", "drop", "early_drop", "clashres")


def conntrack_stats() -> dict[str, int]:
    """The host namespace's conntrack counters, summed over CPUs (/proc/net/stat/nf_conntrack)."""
    try:
        lines = Path("/proc/net/stat/nf_conntrack").read_text().split("\n")
    except OSError:
        return {}
    names = lines[0].split()
    total = dict.fromkeys(CT_FIELDS, 0)
    for line in lines[1:]:
        if line.strip():
            row = dict(zip(names, (int(x, 16) for x in line.split()), strict=True))
            for k in CT_FIELDS:
                total[k] += row.get(k, 0)
    return total


# --- wrk -------------------------------------------------------------------------------------

_UNITS = {"us": 1.0, "ms": 1000.0, "s": 1e6}


def _us(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url: str, conns: int, seconds: float, netns: str | None) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "2s", url]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 20).stdout
    except subprocess.TimeoutExpired:       # run() has killed wrk (our child) by then
        return {"failed": f"wrk {url} did not finish in {seconds + 20:g} s"}
    if "Requests/sec" not in out:
        return {"failed": f"wrk {url}: {out[-300:]!r}"}
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    return {"rps": rps, "p50_us": _us(lat["50"]), "p99_us": _us(lat["99"]),
            "errors": errs.group(0) if errs else ""}


def newconn(host: str, port: int, seconds: float, netns: str | None,
            ports: tuple[int, int] | None) -> dict[str, Any]:
    if not netns:
        r = client(host, port, seconds, ports)
        return r if r["n"] else {"failed": f"no answer from {host}:{port}"}
    cmd = ["ip", "netns", "exec", netns, sys.executable, str(Path(__file__).resolve()),
           "--client", host, str(port), str(seconds), "-" if ports is None else
           f"{ports[0]}-{ports[1]}"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 20)
    except subprocess.TimeoutExpired:
        return {"failed": f"client in {netns} to {host}:{port} did not finish"}
    if out.returncode:
        return {"failed": f"client in {netns}: {out.stderr[-300:]}"}
    r = dict(json.loads(out.stdout))
    return r if r["n"] else {"failed": f"client in {netns}: no answer from {host}:{port}"}


# --- main --------------------------------------------------------------------------------------

def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--client":
        lo, _, hi = sys.argv[5].partition("-")
        ports = (int(lo), int(hi)) if hi else None
        print(json.dumps(client(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), ports)))
        return
    from _skiff import Skiff, log, netns_of_ip
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    ap.add_argument("--conns", type=int, default=8, help="wrk connections")
    ap.add_argument("--lock-wait", type=float, default=300, help="seconds to wait for the lock")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--shared-ports", action="store_true",
                    help="direct and VIP connections share the whole ephemeral port range (the "
                         "method before 2026-12: it measures TIME_WAIT/PAWS collisions)")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration = 2, 1.0
    args.rounds = max(1, min(args.rounds, 20))
    args.duration = max(1.0, min(args.duration, 15.0))
    if os.geteuid() != 0:
        raise SystemExit("network namespaces need root")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")

    load0 = os.getloadavg()
    s = Skiff("namespaces")
    results: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    try:
        s.start(lock_deadline_s=args.lock_wait)
        log(f"skiff namespaces up (pid {s.proc.pid if s.proc else '?'}, home {s.home})")
        s.kubectl("apply", "-f", "-", input=MANIFEST)
        for d in ("web", "curl"):
            s.kubectl("rollout", "status", f"deployment/{d}", "-n", NS, "--timeout=90s", timeout=120)
        svc = s.must("GET", f"/api/v1/namespaces/{NS}/services/web")
        vip = svc["spec"]["clusterIP"]
        pods = {p["metadata"]["labels"]["app"]: p for p in
                s.must("GET", f"/api/v1/namespaces/{NS}/pods")["items"]}
        web_ip, curl_ip = pods["web"]["status"]["podIP"], pods["curl"]["status"]["podIP"]
        netns, web_ns = netns_of_ip(curl_ip), netns_of_ip(web_ip)
        if netns is None or web_ns is None:
            raise SystemExit(f"no skiff-* namespace carries the pod IP {curl_ip} or {web_ip}")
        targets = {"direct": (web_ip, 8080), "vip": (vip, 80)}
        # each target its own source ports (see the module doc)
        sources: dict[str, tuple[int, int] | None] = (
            {"direct": None, "vip": None} if args.shared_ports else dict(PORTS))
        # wait until the VIP answers from both places (EndpointSlice + nft rules in place)
        end = time.monotonic() + 60
        for where in (None, netns):
            while True:
                r = newconn(vip, 80, 0.3, where, sources["vip"])
                if "failed" not in r:
                    break
                if time.monotonic() > end:
                    raise SystemExit(f"the ClusterIP {vip}:80 did not answer\n{s.log_tail()}")
                time.sleep(0.5)
        log(f"web pod {web_ip}:8080, Service {vip}:80, client pod {curl_ip} in {netns}")
        # warm-up, not reported
        for t in targets.values():
            wrk(f"http://{t[0]}:{t[1]}/", args.conns, 1, None)
        ct0 = conntrack_stats()
        for rnd in range(args.rounds):
            order = ("direct", "vip") if rnd % 2 == 0 else ("vip", "direct")
            log(f"round {rnd + 1}/{args.rounds}: {' / '.join(order)}")
            for where, ns in (("host", None), ("pod", netns)):
                for kind in ("keepalive", "newconn"):
                    for tgt in order:
                        host, port = targets[tgt]
                        if kind == "keepalive":
                            r = wrk(f"http://{host}:{port}/", args.conns, args.duration, ns)
                        else:
                            paws0 = paws_timewait(web_ns)
                            r = newconn(host, port, args.duration, ns, sources[tgt])
                            r["paws_tw"] = paws_timewait(web_ns) - paws0
                        if "failed" in r:
                            log(f"  {where} {kind} {tgt}: {r['failed']}")
                        results.setdefault((where, kind, tgt), []).append(r)
        ct1 = conntrack_stats()
        after = s.must("GET", f"/api/v1/namespaces/{NS}/pods")["items"]
        restarts = {p["metadata"]["name"]: sum(c.get("restartCount", 0) for c in
                                               p["status"].get("containerStatuses") or [])
                    for p in after}
    finally:
        s.stop()
    load1 = os.getloadavg()

    print(f"\nService VIP ({vip}:80, nftables DNAT) vs direct pod ({web_ip}:8080); "
          f"{args.rounds} rounds of {args.duration:g} s, order alternating; "
          f"{os.cpu_count()} CPUs, load {load0[0]:.2f} -> {load1[0]:.2f}; source ports: "
          + ("the kernel's, shared by both targets" if args.shared_ports else
             " and ".join(f"{k} {lo}-{hi}" for k, (lo, hi) in PORTS.items())))
    print(f"{'from / client':36} {'direct':>22} {'VIP':>22}   {'VIP/direct (median of paired rounds)':>10}")
    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
                           "python": platform.python_version(), "load_start": load0,
                           "load_end": load1, "rounds": args.rounds, "duration": args.duration,
                           "conns": args.conns, "shared_ports": args.shared_ports, "rows": {}}
    for where in ("host", "pod"):
        for kind in ("keepalive", "newconn"):
            pairs = [(a, b) for a, b in zip(results[(where, kind, "direct")],
                                            results[(where, kind, "vip")], strict=True)
                     if "failed" not in a and "failed" not in b]
            failed = [x["failed"] for x in results[(where, kind, "direct")] + results[(where, kind, "vip")]
                      if "failed" in x]
            if not pairs:
                print(f"{where} {kind}: no complete round: {failed}")
                continue
            d, v = [a for a, _ in pairs], [b for _, b in pairs]
            label = (f"{where}: wrk -c{args.conns} keep-alive" if kind == "keepalive"
                     else f"{where}: new connection per request")
            if len(pairs) < args.rounds:
                label += f" ({len(pairs)} rds)"
            row: dict[str, Any] = {}
            for m in ("rps", "p50_us", "p99_us"):
                row[m] = {"direct": statistics.median(x[m] for x in d),
                          "vip": statistics.median(x[m] for x in v),
                          "ratio": statistics.median(b[m] / a[m] for a, b in zip(d, v, strict=True)),
                          "ratio_min": min(b[m] / a[m] for a, b in zip(d, v, strict=True)),
                          "ratio_max": max(b[m] / a[m] for a, b in zip(d, v, strict=True))}
            if kind == "newconn":
                row["over_200ms"] = {"direct": sum(x["over_200ms"] for x in d),
                                     "vip": sum(x["over_200ms"] for x in v),
                                     "n_direct": sum(x["n"] for x in d), "n_vip": sum(x["n"] for x in v),
                                     "max_ms_direct": max(x["max_us"] for x in d) / 1000,
                                     "max_ms_vip": max(x["max_us"] for x in v) / 1000}
                for k in ("over_5ms", "paws_tw"):
                    row[k] = {"direct": sum(x[k] for x in d), "vip": sum(x[k] for x in v)}
                row["p999_us"] = {"direct": statistics.median(x["p999_us"] for x in d),
                                  "vip": statistics.median(x["p999_us"] for x in v)}
            row["errors"] = [x["errors"] for x in d + v if x["errors"]] + failed
            row["rounds"] = len(pairs)
            out["rows"][f"{where}_{kind}"] = row
            print(f"{label:36} {row['rps']['direct']:8.0f} req/s, "
                  f"{row['p50_us']['direct']:5.0f}/{row['p99_us']['direct']:5.0f} us   "
                  f"{row['rps']['vip']:8.0f} req/s, "
                  f"{row['p50_us']['vip']:5.0f}/{row['p99_us']['vip']:5.0f} us   "
                  f"req/s {row['rps']['ratio']:.3f} ({row['rps']['ratio_min']:.2f}..{row['rps']['ratio_max']:.2f}), "
                  f"p50 {row['p50_us']['ratio']:.3f}, p99 {row['p99_us']['ratio']:.3f}"
                  + (f"  errors: {row['errors']}" if row["errors"] else ""))
    for where in ("host", "pod"):
        row = out["rows"].get(f"{where}_newconn", {})
        o = row.get("over_200ms")
        if o:
            print(f"{where}: new connections over 200 ms: direct {o['direct']} of {o['n_direct']} "
                  f"(max {o['max_ms_direct']:.0f} ms), VIP {o['vip']} of {o['n_vip']} "
                  f"(max {o['max_ms_vip']:.0f} ms); over 5 ms: direct {row['over_5ms']['direct']}, "
                  f"VIP {row['over_5ms']['vip']}; p99.9 {row['p999_us']['direct']:.0f} -> "
                  f"{row['p999_us']['vip']:.0f} us; SYNs the server's TIME_WAIT refused (PAWS): "
                  f"direct {row['paws_tw']['direct']}, VIP {row['paws_tw']['vip']}")
    ct = {k: ct1[k] - ct0[k] for k in ct0} if ct0 and ct1 else {}
    out["conntrack"] = ct
    print(f"host conntrack over the rounds: {ct or 'not readable'}")
    out["restarts"] = restarts
    print(f"container restarts during the run: {restarts}")
    print("(latencies: p50/p99 in microseconds; new-connection figures are this script's own "
          "Python client, one exchange at a time)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
