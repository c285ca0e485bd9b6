"""Review of the sidecar's TCP proxy (commit 9f0dfea): relay() calls on_close exactly once
whatever way the pair ends, which is what keeps a pod's TCP connection count (host.py's
tcp_conns, capped at MAX_TCP_CONNECTIONS) from leaking: the upstream refused, the client
gone while the upstream connects. Loopback sockets only."""

from __future__ import annotations

import asyncio
import socket

from test_sniff import Http, _connector, _serve

from skiff.dataplane.proxy.sniff import Sniff, relay


async def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()                                   # nothing listens there now
    return port


def test_an_upstream_that_refuses_ends_the_pair_once() -> None:
    async def run() -> None:
        dead = await _closed_port()
        seen: dict[str, int] = {}

        def tcp(t: asyncio.Transport, early: bytes) -> None:
            relay(t, early, _connector(dead),
                  on_close=lambda: seen.__setitem__("closed", seen.get("closed", 0) + 1),
                  on_fail=lambda e: seen.__setitem__("failed", seen.get("failed", 0) + 1))
        front, port = await _serve(lambda: Sniff(Http, tcp, first="tcp"))
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"\x00hello")
        try:
            got = await asyncio.wait_for(r.read(), 5)
        except ConnectionResetError:              # the reset, as Envoy's RBAC filter does
            got = b""
        assert got == b""
        await asyncio.sleep(0.05)
        assert seen == {"closed": 1, "failed": 1}
        w.close()
        front.close()
    asyncio.run(run())


def test_a_client_that_leaves_while_the_upstream_connects_ends_the_pair_once() -> None:
    async def run() -> None:
        gate = asyncio.Event()
        seen: dict[str, int] = {}
        app, app_port = await _serve(asyncio.Protocol)

        async def slow() -> socket.socket:
            await gate.wait()
            return await _connector(app_port)()

        def tcp(t: asyncio.Transport, early: bytes) -> None:
            relay(t, early, slow,
                  on_close=lambda: seen.__setitem__("closed", seen.get("closed", 0) + 1))
        front, port = await _serve(lambda: Sniff(Http, tcp, first="tcp"))
        _r, w = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.05)
        w.transport.abort()                     # gone before the upstream is there
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.sleep(0.1)
        assert seen == {"closed": 1}
        front.close()
        app.close()
    asyncio.run(run())
