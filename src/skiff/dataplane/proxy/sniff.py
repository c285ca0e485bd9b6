"""After the listener (and TLS) let a connection in: HTTP or plain TCP, and the TCP proxy.

A sidecar's inbound port takes whatever its pod's Service ports carry. Envoy
picks a filter chain per connection: the HTTP connection manager, or a TCP
proxy with the RBAC network filter in front. With mTLS the client's ALPN says
which (Istio's client sidecars offer `istio-http/1.1` / `istio-h2` for HTTP and
`istio-peer-exchange`, `istio` for TCP); otherwise Envoy's http_inspector
reads the first bytes. This module is that choice and that TCP proxy:

- sniff(first bytes): the http_inspector's question (pure): an HTTP/1.x
  request line, the HTTP/2 preface (h2c), anything else, or not enough bytes;
- Sniff: a protocol that takes a new connection, reads its first bytes (at
  most SNIFF_MAX held), and hands the transport to the HTTP/1.1 protocol, the
  HTTP/2 one (h2c, when it has one; else h2c is TCP), or to a TCP handler
  with the bytes read so far. A client that sends nothing (a
  server-first protocol: MySQL, SMTP) is TCP after `detect_timeout` (Istio's
  meshConfig.protocolDetectionTimeout); without one, it is closed after
  `silent_timeout`, as an HTTP connection that never sends a request is;
- relay(): the TCP proxy: the downstream stops reading while the upstream
  connection is made (so at most the sniffed bytes wait), then bytes flow
  both ways with half-closes and back-pressure (listener.Pipe);
- reset(): close with a TCP RST (SO_LINGER 0), as Envoy's RBAC filter drops
  a denied connection.

Neighbours: listener.py (Pipe, upstream; the PeekingListener whose Terminate
or Plain action starts a Sniff), http1.py (the HTTP side, ConnContext),
mesh/sidecar/host.py (the user: authorization on TCP attributes before
relay).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from typing import cast

from skiff.dataplane.proxy.listener import Pipe, ProtocolFactory, upstream

__all__ = ["H2_PREFACE", "HTTP_METHODS", "SNIFF_MAX", "Sniff", "TcpHandler", "relay", "reset",
           "sniff", "sniff_http"]

# The request methods http_inspector's parser knows, each followed by its space.
HTTP_METHODS = (b"GET ", b"POST ", b"PUT ", b"DELETE ", b"HEAD ", b"OPTIONS ", b"PATCH ",
                b"CONNECT ", b"TRACE ")
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SNIFF_MAX = len(H2_PREFACE)    # bytes enough to tell; never more are held before deciding

# (accepted transport, the bytes read so far) -> the handler owns the transport from now on
TcpHandler = Callable[[asyncio.Transport, bytes], None]


def sniff(data: bytes) -> str | None:
    """What the first bytes of a connection begin: "h1" (an HTTP/1.x request line: a known
    method and its space), "h2" (the HTTP/2 connection preface: h2c with prior knowledge),
    "tcp" (anything else), or None while they are still a prefix of one of those."""
    if data.startswith(HTTP_METHODS):
        return "h1"
    if data.startswith(H2_PREFACE):
        return "h2"
    if not data or H2_PREFACE.startswith(data) or any(m.startswith(data) for m in HTTP_METHODS):
        return None
    return "tcp"


def sniff_http(data: bytes) -> bool | None:
    """True when `data` begins an HTTP/1.x request, None while it may still, else False."""
    what = sniff(data)
    return None if what is None else what == "h1"


class Sniff(asyncio.Protocol):
    """Hands a new connection to `http()` or to `tcp` by its first bytes (`first="tcp"` or
    "http": decided already, by ALPN). Holds at most SNIFF_MAX bytes, once."""

    def __init__(self, http: ProtocolFactory, tcp: TcpHandler, *, first: str = "sniff",
                 detect_timeout: float = 0.0, silent_timeout: float = 15.0,
                 h2: ProtocolFactory | None = None) -> None:
        self.http = http
        self.h2 = h2
        self.tcp = tcp
        self.first = first
        self.detect_timeout = detect_timeout
        self.silent_timeout = silent_timeout
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.timer: asyncio.TimerHandle | None = None
        self.done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.first == "tcp":
            self._to_tcp()
        elif self.first == "http":
            self._to_http()
        else:
            wait = self.detect_timeout if self.detect_timeout > 0 else self.silent_timeout
            self.timer = asyncio.get_running_loop().call_later(wait, self._quiet)

    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        buf = self.buf + data if self.buf else data
        what = sniff(buf[:SNIFF_MAX])
        self.buf = buf
        if what is None and len(buf) < SNIFF_MAX:
            return
        if what == "h1":
            self._to_http()
        elif what == "h2" and self.h2 is not None:
            self._to_http(self.h2)
        else:
            self._to_tcp()

    def eof_received(self) -> bool:
        # the client ended its side before its first bytes told what it speaks (nothing, or a
        # few that could still begin an HTTP method): closed, as http_inspector's end does
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self.done = True

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _quiet(self) -> None:
        self.timer = None
        if self.done or self.transport is None:
            return
        if self.detect_timeout > 0:
            self._to_tcp()            # Envoy: detection timed out, plain TCP
        else:
            self.done = True
            self.transport.close()

    def _to_http(self, factory: ProtocolFactory | None = None) -> None:
        self._stop_timer()
        self.done = True
        assert self.transport is not None
        p = (factory or self.http)()
        self.transport.set_protocol(p)
        p.connection_made(self.transport)
        if self.buf:
            buf, self.buf = self.buf, b""
            p.data_received(buf)

    def _to_tcp(self) -> None:
        self._stop_timer()
        self.done = True
        assert self.transport is not None
        buf, self.buf = self.buf, b""
        self.tcp(self.transport, buf)


_LINGER_RESET = struct.pack("ii", 1, 0)


def reset(transport: asyncio.Transport) -> None:
    """Close with a reset (RST, not FIN): the client sees its connection refused mid-way."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError, TypeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()


# Envoy's tcp_proxy idle_timeout default: a TCP connection with no byte either way this long
# is closed
TCP_IDLE_TIMEOUT = 3600.0


def relay(down: asyncio.Transport, early: bytes,
          connect: Callable[[], Awaitable[socket.socket]], *,
          tls: ssl.SSLContext | None = None,
          check: Callable[[asyncio.BaseTransport], None] | None = None,
          connect_timeout: float = 5.0,
          idle_timeout: float = TCP_IDLE_TIMEOUT,
          on_close: Callable[[], None] | None = None,
          on_fail: Callable[[BaseException], None] | None = None) -> asyncio.Task[None]:
    """Proxy `down` (already accepted, `early` bytes read from it) to the connection that
    `connect` makes, as TCP. Reading from `down` pauses until the upstream is there, so no
    more than `early` waits. `on_close` is called once when the pair is done (or the
    upstream could not be had: `down` is reset and `on_fail` told why). A pair quiet both
    ways for `idle_timeout` (checked once per period: between one and two of them) is
    closed. TLS has no half-close: a side's end of input is passed on to a plain peer, and
    held (not passed) toward a TLS one until the other side ends too, as asyncio's TLS
    transports cannot send it alone."""
    loop = asyncio.get_running_loop()
    pipe = Pipe()
    down.pause_reading()
    down.set_protocol(pipe)
    pipe.connection_made(down)
    watch: list[asyncio.TimerHandle] = []

    def lost() -> None:
        for h in watch:
            h.cancel()
        if on_close is not None:
            on_close()
    pipe.on_lost = lost
    if early:
        pipe.early.append(early)

    def idle_check(up: Pipe, seen: int) -> None:
        watch.clear()
        now = pipe.reads + up.reads
        if now == seen:
            down.close()
            if up.transport is not None:
                up.transport.close()
            return
        watch.append(loop.call_later(idle_timeout, idle_check, up, now))

    async def go() -> None:
        try:
            _, up = await asyncio.wait_for(upstream(("", 0), connect, tls, check),
                                           connect_timeout)
        except (OSError, TimeoutError, ssl.SSLError, EOFError) as e:
            if on_fail is not None:
                on_fail(e)
            reset(down)
            return
        except asyncio.CancelledError:
            reset(down)
            raise
        if down.is_closing():
            if up.transport is not None:
                up.transport.close()
            return
        pipe.link(up)
        up.link(pipe)
        down.resume_reading()
        if idle_timeout > 0:
            watch.append(loop.call_later(idle_timeout, idle_check, up, -1))
    return loop.create_task(go())
