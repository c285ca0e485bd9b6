"""HTTP/2 downstream for the proxy, on the `h2` library (sans-I/O), plus ALPN switching.

An H2ServerProtocol turns each client stream into an http1.Exchange: the
upstream half (pool, keep-alive HTTP/1.1 to the pod, retries) is shared
with HTTP/1.1 clients; H2Exchange writes the response as HEADERS + DATA
frames within the peer's flow-control windows, pausing the upstream read
when the window is exhausted and resuming on WINDOW_UPDATE. alpn_factory()
gives TLS listeners a protocol that becomes H1 or H2 after the handshake,
by the ALPN protocol negotiated (h2 preferred, http/1.1 otherwise).
Neighbours: http1.py (RequestHead, Exchange, ProxyConfig), listener.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from skiff.core.proxy.http1 import (
    Exchange,
    H1ServerProtocol,
    ProxyConfig,
    Reply,
    RequestHead,
    http_date,
)

log = logging.getLogger("skiff.proxy.h2")

_WINDOW = 1 << 20          # per-stream receive window we advertise
_HIGH_WATER = 256 * 1024   # buffered response bytes per stream before the upstream is paused


class H2Exchange(Exchange):
    def __init__(self, cfg: ProxyConfig, head: RequestHead, proto: H2ServerProtocol,
                 sid: int) -> None:
        super().__init__(cfg, head)
        self.proto = proto
        self.sid = sid
        self.buf: list[bytes] = []
        self.buf_size = 0
        self.end_pending = False
        self.ended = False
        self.paused_up = False

    def _headers(self, status: int, headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...],
                 service_time: bool) -> list[tuple[bytes, bytes]]:
        cfg = self.cfg
        out = [(b":status", b"%d" % status)]
        out += headers
        if cfg.server:
            out.append((b"server", cfg.server))
        if service_time:
            out.append((b"x-envoy-upstream-service-time", self.service_time_ms()))
        return out

    def send_head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]],
                  clen: bytes | None, no_body: bool) -> None:
        p = self.proto
        if p.closed:
            return
        try:
            p.conn.send_headers(self.sid, self._headers(status, headers, self.cfg.service_time),
                                end_stream=no_body)
        except h2.exceptions.H2Error:
            self.abort()
            return
        if no_body:
            self.ended = True
        p.flush()

    def send_body(self, data: bytes) -> None:
        if self.ended or not data:
            return
        self.buf.append(data)
        self.buf_size += len(data)
        self.pump()

    def send_end(self) -> None:
        self.end_pending = True
        self.pump()

    def pump(self) -> None:
        """Send buffered DATA as far as the flow-control windows allow."""
        p = self.proto
        if p.closed or self.ended:
            return
        conn = p.conn
        try:
            while self.buf:
                window = min(conn.local_flow_control_window(self.sid), conn.max_outbound_frame_size)
                if window <= 0:
                    break
                chunk = self.buf[0]
                if len(chunk) > window:
                    self.buf[0] = chunk[window:]
                    chunk = chunk[:window]
                else:
                    self.buf.pop(0)
                self.buf_size -= len(chunk)
                conn.send_data(self.sid, chunk)
            if self.end_pending and not self.buf:
                conn.end_stream(self.sid)
                self.ended = True
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.ended = True
            self.abort()
        p.flush()
        if self.ended:
            p.stream_done(self.sid)
        elif self.buf_size > _HIGH_WATER and not self.paused_up:
            self.paused_up = True
            self.pause_response()
        elif self.paused_up and self.buf_size <= _HIGH_WATER // 2:
            self.paused_up = False
            self.resume_response()

    def send_reply(self, r: Reply) -> None:
        p = self.proto
        if p.closed or self.ended:
            return
        headers = [(b"content-length", b"%d" % len(r.body)), (b"date", http_date()), *r.headers]
        try:
            p.conn.send_headers(self.sid, self._headers(r.status, headers, False),
                                end_stream=not r.body or self.head.method == b"HEAD")
        except h2.exceptions.H2Error:
            self.ended = True
            p.stream_done(self.sid)
            return
        if r.body and self.head.method != b"HEAD":
            self.buf = [r.body]
            self.buf_size = len(r.body)
            self.end_pending = True
            self.pump()
        else:
            self.ended = True
            p.flush()
            p.stream_done(self.sid)

    def abort_downstream(self) -> None:
        p = self.proto
        if not p.closed and not self.ended:
            self.ended = True
            try:
                p.conn.reset_stream(self.sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
            except h2.exceptions.H2Error:
                pass
            p.flush()
        p.stream_done(self.sid)


class H2ServerProtocol(asyncio.Protocol):
    """HTTP/2 server connection: streams in, HTTP/1.1 exchanges out."""

    def __init__(self, cfg: ProxyConfig, scheme: bytes = b"https") -> None:
        self.cfg = cfg
        self.scheme = scheme
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding=None))
        self.transport: asyncio.Transport | None = None
        self.client = b""
        self.streams: dict[int, H2Exchange] = {}
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]).encode() if peer else b""
        self.conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 256,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW,
        })
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(16 * _WINDOW)
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.closed:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.flush()
            if self.transport is not None:
                self.transport.close()
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                self._request(ev)
            elif isinstance(ev, h2.events.DataReceived):
                ex = self.streams.get(ev.stream_id)
                if ev.flow_controlled_length:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if ex is not None:
                    ex.body(ev.data)
            elif isinstance(ev, h2.events.StreamEnded):
                ex = self.streams.get(ev.stream_id)
                if ex is not None:
                    ex.end()
            elif isinstance(ev, h2.events.StreamReset):
                ex = self.streams.pop(ev.stream_id, None)
                if ex is not None:
                    ex.ended = True
                    ex.abort()
            elif isinstance(ev, h2.events.WindowUpdated):
                if ev.stream_id:
                    ex = self.streams.get(ev.stream_id)
                    if ex is not None:
                        ex.pump()
                else:
                    for ex in list(self.streams.values()):
                        if ex.buf or ex.end_pending:
                            ex.pump()
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.flush()
                if self.transport is not None:
                    self.transport.close()
                return
        self.flush()

    def _request(self, ev: h2.events.RequestReceived) -> None:
        cfg = self.cfg
        capture = cfg.capture
        strip = cfg.strip_prefix
        method = target = authority = b""
        lines: list[bytes] = []
        cap: dict[bytes, bytes] = {}
        cookies: list[bytes] = []
        for name, value in ev.headers or ():
            n = bytes(name)
            v = bytes(value)
            if n[:1] == b":":
                if n == b":method":
                    method = v
                elif n == b":path":
                    target = v
                elif n == b":authority":
                    authority = v
            elif n == b"cookie":
                cookies.append(v)          # HTTP/2 splits cookies; HTTP/1.1 wants one header
            elif n in capture:
                prev = cap.get(n)
                cap[n] = v if prev is None else prev + b", " + v
            elif strip and n.startswith(strip):
                continue
            else:
                lines.append(n + b": " + v + b"\r\n")
        if cookies:
            lines.append(b"cookie: " + b"; ".join(cookies) + b"\r\n")
        ended = ev.stream_ended is not None
        cl = cap.get(b"content-length")
        clen = int(cl) if cl is not None and cl.isdigit() else -1
        chunked = not ended and clen < 0
        head = RequestHead(method, target or b"/", authority or cap.get(b"host", b""), lines, cap,
                           self.client, self.scheme, "2", True, chunked, clen)
        sid = ev.stream_id
        assert sid is not None
        ex = H2Exchange(cfg, head, self, sid)
        self.streams[sid] = ex
        ex.begin()
        if ended:
            ex.end()

    def stream_done(self, sid: int) -> None:
        self.streams.pop(sid, None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for ex in list(self.streams.values()):
            ex.ended = True
            ex.abort()
        self.streams.clear()
        self.transport = None

    def pause_writing(self) -> None:
        for ex in self.streams.values():
            ex.pause_response()

    def resume_writing(self) -> None:
        for ex in self.streams.values():
            if not ex.paused_up:
                ex.resume_response()


class AlpnProtocol(asyncio.Protocol):
    """Becomes H2ServerProtocol or H1ServerProtocol once TLS has negotiated ALPN."""

    def __init__(self, cfg: ProxyConfig, scheme: bytes) -> None:
        self.cfg = cfg
        self.scheme = scheme

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_obj = transport.get_extra_info("ssl_object")
        alpn = ssl_obj.selected_alpn_protocol() if ssl_obj is not None else None
        inner: asyncio.Protocol = (H2ServerProtocol(self.cfg, self.scheme) if alpn == "h2"
                                   else H1ServerProtocol(self.cfg, self.scheme))
        transport.set_protocol(inner)
        inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:  # pragma: no cover - replaced before any data
        log.warning("data before the protocol switch; dropped %d bytes", len(data))


def alpn_factory(cfg: ProxyConfig, scheme: bytes = b"https") -> Callable[[], asyncio.Protocol]:
    return lambda: AlpnProtocol(cfg, scheme)
