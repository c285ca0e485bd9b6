"""Snapshot update cost: a pod becomes ready -> the data plane routes to it, with 1,000 routes.

Not part of the test suite; everything on 127.0.0.1:

    python benchmarks/gateway/update_cost.py [--routes 1000] [--rounds 50] [--json FILE]

What runs: the control plane's GatewayController with its watch caches filled directly (1,000
KIngresses, each with its own revision and a ready pod, Kourier mode), the snapshot channel's
server, and a real data-plane process (`python -m skiff.dataplane`, started by the same
supervisor `skiff up` uses) in front of a hello-openshift backend. One more KIngress
("target") has no ready pod, so it answers 503. Each round makes its pod ready in the
controller's cache and calls what the pod watch calls (GatewayController.apply_endpoints:
endpoints recomputed from the pods, the changed clusters published), then polls the target
host over one keep-alive connection until it answers 200: that interval is "pod ready ->
routed". The pod then goes unready again (and the 503 is awaited) before the next round.
The API server's watch delivery (store write -> informer) is not in this figure.
It also reports the bytes and messages each pod change sends, the controller's work per pod
change, and for comparison what a full recompile of the same 1,000 routes costs.
Then routes-only changes: the target KIngress's traffic split flips between 50/50 and 90/10
over two revisions (what `kn service update --traffic` does), the controller recompiles and
publishes (GatewayController.compile_and_apply, which waits for the data plane's ack); the
figures are the bytes and message types sent per change (only "routes", only the target's
host) against the first, whole snapshot, compile -> ack, how many KIngresses each change
compiled (the controller's SnapshotCompiler compiles the changed one only) and its compile
timed alone; and, in this process, what the data plane's apply costs for a routes-only
message against a whole snapshot.
With --istio the same runs in Istio mode: a KnativeServing with ingress.istio.enabled, the
seed's knative-ingress-gateway (443 with a credential Secret, and 80 so that the plain HTTP
port serves the external hosts) and knative-local-gateway; each Gateway listener then has
a route configuration of its own, filtered by its servers' hosts, which a split change
patches too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from skiff.core.clock import utcnow
from skiff.dataplane import codec
from skiff.dataplane.channel import SnapshotServer
from skiff.dataplane.model import GatewaySettings
from skiff.dataplane.supervisor import DataPlaneSupervisor
from skiff.mesh.gateway.controller import GatewayController
from skiff.mesh.gateway.snapshot import compile_snapshot
from skiff.router.router import ensure_router_pki

DOMAIN = "bench.example.com"
TARGET = f"target-bench.{DOMAIN}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kingress(name: str, rev: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "bench", "generation": 1},
            "spec": {"rules": [{"hosts": [f"{name}-bench.{DOMAIN}"], "visibility": "ExternalIP",
                                "http": {"paths": [{"splits": [
                                    {"serviceName": rev, "serviceNamespace": "bench",
                                     "percent": 100}]}]}}]}}


def split_kingress(name: str, weights: tuple[int, int]) -> dict[str, Any]:
    """The target's KIngress with its traffic split over two revisions."""
    return {"metadata": {"name": name, "namespace": "bench", "generation": 2},
            "spec": {"rules": [{"hosts": [f"{name}-bench.{DOMAIN}"], "visibility": "ExternalIP",
                                "http": {"paths": [{"splits": [
                                    {"serviceName": f"{name}-00001", "serviceNamespace": "bench",
                                     "percent": weights[0]},
                                    {"serviceName": f"{name}-00002", "serviceNamespace": "bench",
                                     "percent": weights[1]}]}]}}]}}


def istio_objects(cert: tuple[bytes, bytes]) -> dict[str, list[dict[str, Any]]]:
    """Istio mode as the seed sets it up (1.3/1.4), with a port-80 server for the poller."""
    def gw(name: str, servers: list[dict[str, Any]]) -> dict[str, Any]:
        return {"kind": "Gateway", "metadata": {"name": name, "namespace": "knative-serving",
                                                "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"selector": {"istio": "ingressgateway"}, "servers": servers}}
    return {
        "servings": [{"kind": "KnativeServing", "metadata": {"name": "knative-serving",
                                                              "namespace": "knative-serving"},
                      "spec": {"ingress": {"istio": {"enabled": True}}}}],
        "gateways": [gw("knative-ingress-gateway", [
            {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["*"],
             "tls": {"mode": "SIMPLE", "credentialName": "wildcard-certs"}},
            {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]),
            gw("knative-local-gateway", [
                {"port": {"number": 8081, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}])],
        "secrets": [{"kind": "Secret", "metadata": {"name": "wildcard-certs",
                                                    "namespace": "istio-system"},
                     "data": {"tls.crt": base64.b64encode(cert[0]).decode(),
                              "tls.key": base64.b64encode(cert[1]).decode()}}],
    }


def pod(name: str, rev: str, port: int, ready: bool) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "bench",
                         "labels": {"serving.knative.dev/revision": rev},
                         "annotations": {"skiff.dev/port": str(port)}},
            "status": {"podIP": "127.0.0.1", "conditions": [
                {"type": "Ready", "status": "True" if ready else "False"}]}}


class Poller:
    """GET / for the target host over one keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def status(self) -> int:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(f"GET / HTTP/1.1\r\nhost: {TARGET}\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        n = 0
        close = False
        for line in lines[1:]:
            k, _, v = line.partition(":")
            if k.lower() == "content-length":
                n = int(v)
            elif k.lower() == "connection" and v.strip().lower() == "close":
                close = True
        if n:
            await self.reader.readexactly(n)
        if close:
            self.writer.close()
            self.writer = None
        return int(lines[0].split()[1])

    async def until(self, want: int, timeout: float = 5.0) -> float:
        t0 = time.perf_counter()
        while await self.status() != want:
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"the target never answered {want}")
        return time.perf_counter() - t0


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


async def run(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    backend_port, http = free_port(), free_port()
    backend = subprocess.Popen([sys.executable, "-m", "skiff.node.images.hello_openshift"],
                               env=dict(os.environ, PORT=str(backend_port)))
    try:
        pki = ensure_router_pki(home / "pki", DOMAIN, utcnow())
        settings = GatewaySettings(http_port=http, https_port=free_port(),
                                   local_gateway_port=free_port(), internal_https_port=free_port(),
                                   domain=DOMAIN)
        cert = (pki.ingress_cert.read_bytes(), pki.ingress_key.read_bytes())
        server = SnapshotServer(home / "dataplane.sock")
        await server.start()
        ctl = GatewayController(None, server, settings, cert)  # type: ignore[arg-type]
        sup = DataPlaneSupervisor(server, home, settings)
        await sup.start()
        try:
            for i in range(args.routes):
                ctl.ingresses.items[("bench", f"r{i}")] = kingress(f"r{i}", f"r{i}-00001")
                ctl.pods.items[("bench", f"r{i}-pod")] = pod(f"r{i}-pod", f"r{i}-00001",
                                                             backend_port, True)
            ctl.ingresses.items[("bench", "target")] = kingress("target", "target-00001")
            ctl.pods.items[("bench", "target-pod")] = pod("target-pod", "target-00001",
                                                          backend_port, False)
            ctl._write_status = _no_status  # type: ignore[method-assign,assignment]
            if args.istio:
                objs = istio_objects(cert)
                for kind, inf in (("servings", ctl.servings), ("gateways", ctl.gateways),
                                  ("secrets", ctl.secrets)):
                    for o in objs[kind]:
                        inf.items[inf.key(o)] = o

            # a full snapshot, as every change cost before endpoints were apart
            full_ms = []
            for _ in range(5):
                t0 = time.perf_counter()
                compile_snapshot(ctl.inputs()).dataplane()
                full_ms.append((time.perf_counter() - t0) * 1000)
            b0 = server.bytes_sent
            t0 = time.perf_counter()
            await ctl.compile_and_apply()         # publishes and waits for the ack
            full_acked_ms = (time.perf_counter() - t0) * 1000
            full_bytes = server.bytes_sent - b0

            poll = Poller(http)
            await poll.until(503)
            routed, work, sizes, msgs = [], [], [], []
            for _ in range(args.rounds):
                b0, m0 = server.bytes_sent, server.messages_sent
                t0 = time.perf_counter()
                # what the pod watch does with the event, then the round it schedules
                ctl.pods.apply("MODIFIED", pod("target-pod", "target-00001", backend_port, True))
                ctl.apply_endpoints()
                t1 = time.perf_counter()
                await poll.until(200)
                t2 = time.perf_counter()
                work.append((t1 - t0) * 1000)
                routed.append((t2 - t0) * 1000)
                sizes.append(server.bytes_sent - b0)
                msgs.append(server.messages_sent - m0)
                ctl.pods.apply("MODIFIED", pod("target-pod", "target-00001", backend_port, False))
                ctl.apply_endpoints()
                await poll.until(503)

            # routes-only changes: the target's traffic split flips (a KIngress change)
            route_bytes, route_msgs, route_ms, diff_ms, compiled = [], [], [], [], []
            kinds: set[str] = set()
            for i in range(args.rounds):
                c0 = ctl.compiler.ingress_compiles
                ctl.ingresses.items[("bench", "target")] = split_kingress(
                    "target", (90, 10) if i % 2 == 0 else (50, 50))
                before = dict(server.sent_by_type)
                b0, m0 = server.bytes_sent, server.messages_sent
                t0 = time.perf_counter()
                prev = server.snapshot
                await ctl.compile_and_apply()         # compile, diff, publish, wait for the ack
                route_ms.append((time.perf_counter() - t0) * 1000)
                compiled.append(ctl.compiler.ingress_compiles - c0)
                t0 = time.perf_counter()              # the diff and framing alone, again
                for m in codec.delta_messages(1, prev, server.snapshot):  # type: ignore[arg-type]
                    codec.frame(m)
                diff_ms.append((time.perf_counter() - t0) * 1000)
                route_bytes.append(server.bytes_sent - b0)
                route_msgs.append(server.messages_sent - m0)
                kinds |= {k for k, n in server.sent_by_type.items() if n != before.get(k, 0)}
            # the controller's compile alone (SnapshotCompiler: the changed KIngress only)
            inc_ms = []
            for i in range(args.rounds):
                ctl.ingresses.items[("bench", "target")] = split_kingress(
                    "target", (90, 10) if i % 2 == 0 else (50, 50))
                t0 = time.perf_counter()
                ctl.compiler.compile(ctl.inputs(endpoints=False), ctl.endpoints)
                inc_ms.append((time.perf_counter() - t0) * 1000)
            return {
                "mode": ctl.snapshot.mode if ctl.snapshot is not None else "",
                "routes": args.routes, "rounds": args.rounds,
                "routed_ms": {"p50": statistics.median(routed), "p99": pct(routed, 99),
                              "max": max(routed)},
                "controller_work_ms": {"p50": statistics.median(work), "max": max(work)},
                "bytes_per_pod_change": statistics.median(sizes),
                "messages_per_pod_change": statistics.median(msgs),
                "full_compile_ms": statistics.median(full_ms),
                "full_snapshot_bytes": full_bytes,
                "full_publish_to_ack_ms": full_acked_ms,
                "routes_only_bytes": statistics.median(route_bytes),
                "routes_only_messages": statistics.median(route_msgs),
                "routes_only_message_types": sorted(kinds),
                "routes_only_compile_publish_ack_ms": {"p50": statistics.median(route_ms),
                                                       "max": max(route_ms)},
                "routes_only_diff_and_frame_ms": statistics.median(diff_ms),
                "routes_only_kingresses_compiled": statistics.median(compiled),
                "incremental_compile_ms": {"p50": statistics.median(inc_ms), "max": max(inc_ms)},
                "full_assemblies": ctl.compiler.full_assemblies,
                "data_plane_apply_ms": data_plane_apply_ms(args.routes, cert),
            }
        finally:
            await sup.stop()
            await server.stop()
    finally:
        backend.terminate()
        backend.wait(5)


def data_plane_apply_ms(routes: int, cert: tuple[bytes, bytes], rounds: int = 40
                       ) -> dict[str, float]:
    """In this process: what the data plane does with a routes-only message (parse, check,
    patch, swap with split positions carried over) against a whole snapshot of the same
    routes (parse, decode, swap), p50 over `rounds` split flips."""
    from skiff.mesh.gateway.proxy import GatewayProxy
    from skiff.mesh.gateway.snapshot import Inputs

    def inputs(w: int) -> Inputs:
        ings = [kingress(f"r{i}", f"r{i}-00001") for i in range(routes)]
        return Inputs(ingresses=[*ings, split_kingress("target", (w, 100 - w))],
                      default_cert=cert)
    snaps = [compile_snapshot(inputs(w)).dataplane() for w in (50, 90)]
    gp = GatewayProxy(GatewaySettings(), cert)
    gp.swap(snaps[0])
    part, whole = [], []
    for i in range(rounds):
        old, new = snaps[i % 2], snaps[(i + 1) % 2]
        body = codec.frame(codec.delta_messages(i + 2, old, new)[0])[codec.HEADER.size:]
        t0 = time.perf_counter()
        update = codec.ReceiverState(version=i + 1).accept(codec.parse(body))
        gp.swap(update.on(gp.snapshot))
        part.append((time.perf_counter() - t0) * 1000)
        body = codec.frame(codec.snapshot_message(i + 2, new))[codec.HEADER.size:]
        t0 = time.perf_counter()
        update = codec.ReceiverState(version=i + 1).accept(codec.parse(body))
        gp.swap(update.on(gp.snapshot))
        whole.append((time.perf_counter() - t0) * 1000)
    return {"routes_only": statistics.median(part), "whole_snapshot": statistics.median(whole)}


async def _no_status(_snap: Any) -> bool:
    return False


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--routes", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--istio", action="store_true", help="Istio mode (the seed's Gateways)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="skiff-update-") as tmp:
        os.umask(0o077)
        r = asyncio.run(run(args, Path(tmp)))
    print(json.dumps(r, indent=2))
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
