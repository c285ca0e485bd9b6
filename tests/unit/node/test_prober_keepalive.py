"""prober.http_check's connection has TCP keep-alive as the kubelet's Go dialer does (15 s), so a
hook whose peer is gone without a close ends within the keep-alive probes, not the whole grace
period. A real loopback server; the option is read back from the check's own socket."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import uvloop

from skiff.node import prober
from skiff.node.probes import ProbeSpec


def test_keep_alive_sets_the_options_on_a_tcp_socket() -> None:
    with socket.create_server(("127.0.0.1", 0)) as srv, \
            socket.create_connection(srv.getsockname()) as c:
        prober.keep_alive(c)
        assert c.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert c.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == prober.KEEPALIVE_S
        assert c.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == prober.KEEPALIVE_S
    prober.keep_alive(None)                     # no socket (a test transport): nothing to do


def test_an_http_check_connection_has_keep_alive(monkeypatch: Any) -> None:
    seen: list[int] = []
    real = prober.keep_alive

    def spy(sock: Any) -> None:
        real(sock)
        seen.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
    monkeypatch.setattr(prober, "keep_alive", spy)

    async def main() -> bool:
        async def answer(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await r.readuntil(b"\r\n\r\n")
            w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            await w.drain()
            w.close()
        srv = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        try:
            spec = ProbeSpec("http", port=port, path="/wait-for-drain", host="127.0.0.1",
                             timeout=5)
            return await prober.check(spec, {}, Path("."), False)
        finally:
            srv.close()
    assert uvloop.run(main()) is True            # the event loop skiff runs
    assert seen == [1]
