"""Cluster DNS benchmark: query latency of skiff's DnsServer on 127.0.0.1, in-zone and forwarded.

Not part of the test suite:

    python benchmarks/dns/run.py            # ~15 s
    python benchmarks/dns/run.py --quick    # ~5 s, a smoke test of the benchmark itself

What runs, all on 127.0.0.1 and bounded in time and count:
- skiff's DnsServer (node/network/dnsserver.py) in a process of its own, with uvloop as
  `skiff up` runs it, and a second one with its reply memo off (every query parsed,
  answered and packed: the figure for names asked once), each over a ClusterView of --services Services (half ClusterIP, half headless
  with 3 endpoints each) and as many pods;
- an upstream peer in another process: a minimal resolver on asyncio + dnslib that answers
  every A query with one address (the same parsing and packing library, no cluster logic);
- this process as the client: one query outstanding at a time over UDP (closed loop), for
  --seconds per phase. Phases: in-zone A for ClusterIP Services, in-zone A for headless
  Services (both servers), a name outside the zone forwarded through skiff to the peer, and the peer asked
  directly (the forwarded path's floor). Names rotate over the whole view.

Goal (issue 11): in-zone p99 <= 1 ms. Results go to stdout (and --json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

MAX_QUERIES = 200_000           # per phase, whatever the duration


def _loop_policy() -> None:
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass


def serve_upstream(ready: Any) -> None:
    """The peer: every A query gets 192.0.2.1, everything else NXDOMAIN."""
    from dnslib import QTYPE, RCODE, RR, A, DNSRecord
    _loop_policy()

    class Proto(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.t = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            try:
                q = DNSRecord.parse(data)
            except Exception:
                return
            r = q.reply()
            if q.q.qtype == QTYPE.A:
                r.add_answer(RR(q.q.qname, QTYPE.A, ttl=60, rdata=A("192.0.2.1")))
            else:
                r.header.rcode = RCODE.NXDOMAIN
            self.t.sendto(r.pack(), addr)

    async def main() -> None:
        t, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            Proto, local_addr=("127.0.0.1", 0))
        ready.send(t.get_extra_info("sockname")[1])
        await asyncio.Event().wait()

    asyncio.run(main())


def serve_skiff(ready: Any, upstream: str, services: int, cache_entries: int) -> None:
    from skiff.node.network.dnsserver import DnsServer
    from skiff.node.network.dnsview import ClusterView
    _loop_policy()
    view = ClusterView()
    for i in range(services):
        ns, name = f"team-{i % 20}", f"svc-{i}"
        headless = i % 2 == 1
        ip = "None" if headless else f"10.96.{i // 250}.{i % 250 + 1}"
        view.apply("Service", {"metadata": {"namespace": ns, "name": name},
                               "spec": {"clusterIP": ip, "clusterIPs": [ip],
                                        "ports": [{"name": "http", "protocol": "TCP", "port": 80}]}})
        pod_ip = f"10.244.{i // 250}.{i % 250 + 1}"
        view.apply("Pod", {"metadata": {"namespace": ns, "name": f"pod-{i}"},
                           "status": {"phase": "Running", "podIP": pod_ip}})
        if headless:
            view.apply("EndpointSlice", {
                "metadata": {"namespace": ns, "name": f"{name}-1",
                             "labels": {"kubernetes.io/service-name": name}},
                "endpoints": [{"addresses": [f"10.{245 + k}.{i // 250}.{i % 250 + 1}"],
                               "conditions": {"ready": True}} for k in range(3)],
                "ports": [{"name": "http", "protocol": "TCP", "port": 8080}]})

    async def main() -> None:
        srv = DnsServer(view, "127.0.0.1", 0, upstreams=[upstream], cache_entries=cache_entries)
        await srv.start()
        ready.send(srv.port)
        await asyncio.Event().wait()

    asyncio.run(main())


def measure(port: int, names: list[str], seconds: float) -> dict[str, Any]:
    """Closed loop, one query at a time: latencies in microseconds."""
    from dnslib import RCODE, DNSRecord
    packets = [DNSRecord.question(n).pack() for n in names]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", port))
    s.settimeout(3.0)
    lat: list[float] = []
    errors = 0
    end = time.perf_counter() + seconds
    i = 0
    try:
        while time.perf_counter() < end and i < MAX_QUERIES:
            pkt = packets[i % len(packets)]
            t0 = time.perf_counter_ns()
            s.send(pkt)
            data = s.recv(4096)
            lat.append((time.perf_counter_ns() - t0) / 1000)
            if i < 50 and DNSRecord.parse(data).header.rcode != RCODE.NOERROR:
                errors += 1
            i += 1
    finally:
        s.close()
    lat.sort()

    def q(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))], 1)

    return {"queries": len(lat), "qps": round(len(lat) / seconds), "p50_us": q(0.50),
            "p99_us": q(0.99), "max_us": round(lat[-1], 1), "mean_us": round(statistics.mean(lat), 1),
            "errors_in_first_50": errors}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="per phase, over all rounds")
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.quick:
        args.seconds = 0.5
    args.services = max(2, min(args.services, 50_000))
    ctx = mp.get_context("spawn")
    procs = []
    try:
        r1, w1 = ctx.Pipe(duplex=False)
        up = ctx.Process(target=serve_upstream, args=(w1,), daemon=True)
        up.start()
        procs.append(up)
        if not r1.poll(30):
            raise SystemExit("the upstream peer did not start")
        up_port = r1.recv()
        ports = []
        for cache in (2048, 0):     # as `skiff up` runs it, and with the reply memo off
            r2, w2 = ctx.Pipe(duplex=False)
            sk = ctx.Process(target=serve_skiff,
                             args=(w2, f"127.0.0.1:{up_port}", args.services, cache), daemon=True)
            sk.start()
            procs.append(sk)
            if not r2.poll(60):
                raise SystemExit("skiff's DNS server did not start")
            ports.append(r2.recv())
        port, cold = ports
        n = args.services
        clusterip = [f"svc-{i}.team-{i % 20}.svc.cluster.local" for i in range(0, n, 2)]
        headless = [f"svc-{i}.team-{i % 20}.svc.cluster.local" for i in range(1, n, 2)]
        outside = [f"host-{i}.example.test" for i in range(100)]
        # Warm-up, not reported: imports, and the memo holds every in-zone name after it.
        for names in (clusterip, headless):
            measure(port, names, min(1.0, args.seconds))
        measure(port, outside[:20], min(0.3, args.seconds))
        measure(cold, clusterip[:100], min(0.3, args.seconds))
        phases = [("in-zone A, ClusterIP Service", port, clusterip),
                  ("in-zone A, headless Service (3 endpoints)", port, headless),
                  ("in-zone A, ClusterIP, reply memo off", cold, clusterip),
                  ("in-zone A, headless, reply memo off", cold, headless),
                  ("forwarded through skiff to the peer", port, outside),
                  ("the peer directly (floor of the forwarded path)", up_port, outside)]
        results: dict[str, Any] = {
            "date": time.strftime("%Y-%m-%d"), "python": platform.python_version(),
            "cpus": os.cpu_count(), "loadavg_start": os.getloadavg()[0],
            "services": n, "seconds": args.seconds, "phases": {}}
        print(f"DNS on 127.0.0.1, {n} Services + {n} pods, {args.seconds:g} s per phase, "
              f"one query outstanding, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
        # Interleaved rounds: the machine is shared, so a burst of other work lands in one
        # round of one phase rather than in a whole phase; the median round is reported.
        rounds = 1 if args.quick else 5
        per_round: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in phases}
        for _ in range(rounds):
            for label, p, names in phases:
                per_round[label].append(measure(p, names, args.seconds / rounds))
        print(f"{'phase (median of ' + str(rounds) + ' rounds)':<50} {'queries':>8} {'q/s':>7} "
              f"{'p50 us':>8} {'p99 us':>8} {'p99 range':>17}")
        for label, _, _ in phases:
            ms = per_round[label]
            m = {"queries": sum(x["queries"] for x in ms),
                 "qps": round(statistics.median(x["qps"] for x in ms)),
                 "p50_us": round(statistics.median(x["p50_us"] for x in ms), 1),
                 "p99_us": round(statistics.median(x["p99_us"] for x in ms), 1),
                 "p99_min_us": min(x["p99_us"] for x in ms), "p99_max_us": max(x["p99_us"] for x in ms),
                 "max_us": max(x["max_us"] for x in ms),
                 "errors_in_first_50": sum(x["errors_in_first_50"] for x in ms), "rounds": ms}
            results["phases"][label] = m
            rng = f"{m['p99_min_us']}..{m['p99_max_us']}"
            print(f"{label:<50} {m['queries']:>8} {m['qps']:>7} {m['p50_us']:>8} {m['p99_us']:>8} "
                  f"{rng:>17}" + (f"  ({m['errors_in_first_50']} errors)"
                                  if m["errors_in_first_50"] else ""))
        results["loadavg_end"] = os.getloadavg()[0]
        p99 = results["phases"]["in-zone A, ClusterIP Service"]["p99_us"]
        print(f"goal in-zone p99 <= 1000 us: {'met' if p99 <= 1000 else 'missed'} ({p99} us)")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        for pr in procs:          # only the processes this script started
            pr.terminate()
            pr.join(5)


if __name__ == "__main__":
    main()
