"""dataplane/proxy/listener.py's Pipe on a TLS-terminated downstream (a sidecar's inbound mTLS
relayed to its app as TCP, sniff.relay): the client's end of input is passed on to the plain
app, and the Pipe does not ask the TLS transport to stay half-open, which it cannot (asyncio's
and uvloop's close it after eof_received whatever it returns, and log a warning for each
connection whose protocol asked). Real sockets on 127.0.0.1, both event loops."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import ssl
from collections.abc import Callable

import pytest
import uvloop

from skiff.core.pki import issue, make_ca
from skiff.dataplane.proxy.sniff import relay
from skiff.dataplane.proxy.tls import server_context

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CA_CERT, CA_KEY = make_ca("test-ca", NOW)
CERT, KEY = issue(CA_CERT, CA_KEY, "app", ["app.example.com"], ["127.0.0.1"], NOW)
LOOPS: list[Callable[[], asyncio.AbstractEventLoop]] = [asyncio.new_event_loop,
                                                        uvloop.new_event_loop]


class _Relay(asyncio.Protocol):
    def __init__(self, app_port: int) -> None:
        self.app_port = app_port

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        async def connect() -> socket.socket:
            s = socket.socket()
            s.setblocking(False)
            await asyncio.get_running_loop().sock_connect(s, ("127.0.0.1", self.app_port))
            return s
        relay(transport, b"", connect)     # type: ignore[arg-type]


async def _exchange() -> list[bytes]:
    """The client sends "ping" over TLS and ends its side; what the app (plain TCP) read up to
    the end of its input."""
    read: list[bytes] = []

    async def app(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        read.append(await asyncio.wait_for(r.read(), 5))
        w.close()
    app_srv = await asyncio.start_server(app, "127.0.0.1", 0)
    app_port = app_srv.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: _Relay(app_port), "127.0.0.1", 0,
                                   ssl=server_context(CERT, KEY, alpn=()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cadata=CA_CERT.decode())
    r, w = await asyncio.open_connection("127.0.0.1", srv.sockets[0].getsockname()[1], ssl=ctx)
    w.write(b"ping")
    await w.drain()
    w.transport.close()                       # close_notify: TLS's end of input
    for _ in range(100):
        if read:
            break
        await asyncio.sleep(0.02)
    for s in (srv, app_srv):
        s.close()
        await s.wait_closed()
    return read


@pytest.mark.parametrize("new_loop", LOOPS, ids=["asyncio", "uvloop"])
def test_a_tls_clients_end_is_passed_on_without_a_warning(
        new_loop: Callable[[], asyncio.AbstractEventLoop],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    with asyncio.Runner(loop_factory=new_loop) as runner:
        assert runner.run(_exchange()) == [b"ping"]
    assert not [r for r in caplog.records if "eof_received" in r.getMessage()]
