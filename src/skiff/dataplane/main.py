"""The data-plane process: the router and the ingress gateway, apart from the control plane.

`python -m skiff.dataplane --home H --socket S --host ... --http-port ...` is
started by the platform (supervisor.py) and runs what used to share the API
server's event loop: the router (router/router.py: --http-port, and
--https-port with edge TLS or passthrough) and the gateway proxy
(mesh/gateway/proxy.py: its 443 listener on the loopback port the control
plane picked, and the knative-local-gateway). It binds every listener first,
then connects to the control plane's socket (channel.run_client): the hello
tells the platform it listens (or why it could not bind: exit code 3), and
snapshots and their listener, route and endpoint updates arrive over the
same connection. It starts accepting once the first snapshot is applied
(at most FIRST_SNAPSHOT_WAIT later): until then connections wait in the
kernel's backlog rather than meet an empty route table. It never reads the
store.

With --reuse-port, several such processes (workers, `skiff up
--dataplane-workers N`) bind the same ports with SO_REUSEPORT and the kernel
spreads connections over them; each gets the same snapshots and keeps its own
split counters (each worker's share is exact, so the sum is within a period).

Lifetime: it dies with the platform. The supervisor sets SIGKILL as its
parent-death signal, and an EOF on stdin (the platform's pipe; the platform
closes it, or the kernel does when the platform dies) stops it like SIGTERM
does: listeners close, connections drain (dataplane/proxy/limits.py's drain
timeout), exit 0. If the control plane's socket goes away, it keeps serving
the last snapshot and reconnects.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skiff.dataplane import channel, codec
from skiff.dataplane.model import GatewaySettings

log = logging.getLogger("skiff.dataplane")

BIND_FAILED = 3
STATS_PERIOD = 1.0          # queue-proxy's reporting period
# How long connections wait in the backlog for the first snapshot (the control plane sends
# its current one right after the hello; at the platform's own start it compiles one first)
FIRST_SNAPSHOT_WAIT = 5.0


def _worker(text: str) -> tuple[int, int]:
    i, sep, n = text.partition("/")
    if not sep or not i.isdigit() or not n.isdigit() or not 0 <= int(i) < int(n) <= 64:
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N with 0 <= I < N <= 64")
    return int(i), int(n)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m skiff.dataplane")
    ap.add_argument("--home", required=True, type=Path)
    ap.add_argument("--socket", required=True, type=Path)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--https-port", type=int, required=True)
    ap.add_argument("--local-gateway-port", type=int, required=True)
    ap.add_argument("--internal-https-port", type=int, required=True)
    ap.add_argument("--domain", default="apps.127.0.0.1.sslip.io")
    ap.add_argument("--reuse-port", action="store_true",
                    help="SO_REUSEPORT on every listener: one of several workers")
    ap.add_argument("--worker", type=_worker, default=(0, 1), metavar="I/N",
                    help="this process is worker I of N (the activators share capacity)")
    ap.add_argument("--verbose", action="store_true")
    return ap.parse_args(argv)


class _StdinWatch(asyncio.Protocol):
    """Sets `gone` when the platform's end of the stdin pipe closes."""

    def __init__(self, gone: asyncio.Event) -> None:
        self.gone = gone

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone.set()


async def serve(args: argparse.Namespace) -> int:
    from skiff.core.home import private_file
    from skiff.mesh.gateway.proxy import GatewayProxy
    from skiff.mesh.sidecar.activator import ACTIVATOR_LOG
    from skiff.mesh.sidecar.config import PART
    from skiff.mesh.sidecar.host import AccessLog, SidecarHost
    from skiff.router.router import Router, router_pki_paths
    from skiff.serving.activator import Activator

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    if not sys.stdin.closed:
        await loop.connect_read_pipe(lambda: _StdinWatch(stop), sys.stdin)

    settings = GatewaySettings(host=args.host, http_port=args.http_port,
                               https_port=args.https_port,
                               local_gateway_port=args.local_gateway_port,
                               internal_https_port=args.internal_https_port, domain=args.domain)
    pki = router_pki_paths(args.home / "pki")
    proxy = GatewayProxy(settings, (pki.ingress_cert.read_bytes(), pki.ingress_key.read_bytes()),
                         reuse_port=args.reuse_port)
    router = Router(args.host, args.http_port, args.https_port, proxy, pki,
                    reuse_port=args.reuse_port)
    try:
        # listening, but not accepting until the first snapshot is here: a fresh worker beside
        # others (SO_REUSEPORT) or a restarted one must not answer 404 for want of routes
        await proxy.start(accept=False)
        await router.start(accept=False)
    except OSError as e:
        await router.stop()
        await proxy.stop()
        await channel.say_hello_and_close(args.socket, f"the data plane cannot listen on {e.strerror or e}")
        return BIND_FAILED

    # The activator: holds requests for revisions at zero and counts them while it does
    # (queue-proxy counts them once they reach a pod).
    outbox = channel.Outbox()
    activator = Activator(poke=lambda cluster: outbox.send(codec.poke_message(cluster)),
                          worker=args.worker)
    proxy.activator = activator
    activator.on_path_change = proxy.activator_path_changed
    # The mesh's sidecars (a node proxy: each meshed pod's listeners live in its namespace).
    sidecars = SidecarHost()
    sidecars.activator_hook = activator
    sidecars.route_local = proxy.route_local
    proxy.mesh_cluster = sidecars.gateway_cluster
    proxy.mesh_server_context = sidecars.gateway_server_context
    proxy.activator_mesh = sidecars.activator
    activator_log = args.home / ACTIVATOR_LOG
    private_file(activator_log)         # the home's files are private from their creation
    sidecars.activator.access_log = AccessLog(str(activator_log))
    parts: dict[str, Callable[[Any], None]] = {PART: sidecars.apply_data,
                                               "activator": activator.apply_part}
    receiver = codec.ReceiverState()
    first = asyncio.Event()

    def apply(update: codec.Update) -> None:
        if update.part is not None:
            name, data = update.part
            handler = parts.get(name)
            if handler is None:
                raise codec.CodecError(f"no consumer for the part {name!r}")
            try:
                handler(data)
            except ValueError as e:
                raise codec.CodecError(f"part {name}: {e}") from None
        elif update.snapshot is not None:
            proxy.swap(update.snapshot)
            first.set()
        elif update.routes is not None or update.listeners is not None:
            # RDS or LDS alone: the other parts stay; split positions carry over (swap)
            proxy.swap(update.on(proxy.snapshot))
        else:
            proxy.update_endpoints(update.endpoints)

    client = asyncio.create_task(channel.run_client(args.socket, receiver, apply,
                                                    outbox=outbox))

    failed = False

    async def accept() -> None:
        nonlocal failed
        try:
            await asyncio.wait_for(first.wait(), FIRST_SNAPSHOT_WAIT)
        except TimeoutError:
            log.warning("no snapshot from the control plane after %.0f s: serving without one",
                        FIRST_SNAPSHOT_WAIT)
        try:
            await proxy.accept()
            await router.accept()
        except Exception:
            # listening but never accepting would look ready and serve nobody: exit, and the
            # supervisor starts a fresh data plane
            log.exception("the data plane cannot accept connections")
            failed = True
            stop.set()
    accepting = asyncio.create_task(accept())

    async def report_stats() -> None:
        while True:
            await asyncio.sleep(STATS_PERIOD)
            report = activator.report()
            if report:
                outbox.send(codec.stats_message(report))
    reporter = asyncio.create_task(report_stats())
    await stop.wait()
    client.cancel()
    reporter.cancel()
    accepting.cancel()
    await asyncio.gather(client, reporter, accepting, return_exceptions=True)
    await router.stop()
    await sidecars.stop()
    await proxy.stop()
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format=f"%(asctime)s dataplane[{os.getpid()}] %(name)s %(levelname)s "
                               "%(message)s")
    logging.getLogger("skiff.sidecar").setLevel(logging.INFO)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve(args))
    return uvloop.run(serve(args))
