"""HTTP/2 downstream for the proxy, on the `h2` library (sans-I/O), plus ALPN switching.

An H2ServerProtocol turns each client stream into an http1.Exchange: the
upstream half (pool, keep-alive HTTP/1.1 to the pod, retries) is shared
with HTTP/1.1 clients; H2Exchange writes the response as HEADERS + DATA
frames within the peer's flow-control windows, pausing the upstream read
when the window is exhausted and resuming on WINDOW_UPDATE. alpn_factory()
gives TLS listeners a protocol that becomes H1 or H2 after the handshake,
by the ALPN protocol negotiated (h2 preferred, http/1.1 otherwise).
Neighbours: http1.py (RequestHead, Exchange, ProxyConfig), listener.py.

Limits (limits.py): SETTINGS_MAX_CONCURRENT_STREAMS is advertised and a
stream over it is refused with RST_STREAM REFUSED_STREAM (h2's own, higher
cap ends the connection); a request whose headers are over the limits gets
431 and the connection drains; a client that resets most of its streams
before their response begins (Envoy's premature-reset rule) gets GOAWAY
ENHANCE_YOUR_CALM and is closed. Input is fed to h2 a slice per turn of the
event loop (reading paused meanwhile), so neither a flood nor a big read
holds the loop for long, and such a verdict stops the work within a slice;
a stream opened and reset within one slice is never dispatched. h2 is given
whole frames only; a HEADERS followed at once by its RST_STREAM (the
rapid-reset flood's pair) does not reach h2 at all: its header block only
updates the HPACK table, which halves the data plane's CPU under that flood.
Request bodies are acknowledged (WINDOW_UPDATE) only as the upstream takes
them, so flow control, not a buffer, holds a fast uploader back. Drain sends
GOAWAY written by hand: h2's close_connection() would end the in-flight
streams too.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from collections.abc import Callable
from typing import cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h2.stream
import hpack.exceptions
from hyperframe.frame import GoAwayFrame

from skiff.dataplane.proxy.http1 import (
    HEADERS_TOO_LARGE,
    NO_CONN,
    ConnContext,
    Exchange,
    H1ServerProtocol,
    ProxyConfig,
    Reply,
    RequestHead,
    http_date,
)
from skiff.dataplane.proxy.limits import (
    Phase,
    Verdict,
    header_list_too_large,
    premature_reset_abuse,
    verdict,
)

log = logging.getLogger("skiff.proxy.h2")

_WINDOW = 1 << 20          # per-stream receive window we advertise
_HIGH_WATER = 256 * 1024   # buffered response bytes per stream before the upstream is paused
_SLICE = 4 * 1024          # input fed to h2 per turn of the loop (see the module docstring)
_PREFACE = len(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
_FRAME = struct.Struct(">IBI")   # a frame header: length << 8 | type, flags, R bit + stream id
_HEADERS, _PUSH_PROMISE, _CONTINUATION = 0x1, 0x5, 0x9
_RST_4 = 4 << 8 | 0x3            # the first word of an RST_STREAM frame (4 bytes long)
_END_HEADERS, _PADDED, _PRIORITY = 0x4, 0x8, 0x20
_STATIC = 61                     # entries in HPACK's static table (RFC 7541 Appendix A)


def _block(data: bytes, start: int, end: int, flags: int) -> bytes | None:
    """The header block of the HEADERS frame payload data[start:end], without its padding
    and priority fields; None if they do not fit (h2 is then given the frame)."""
    if flags & _PADDED:
        if start >= end:
            return None
        end -= data[start]
        start += 1
    if flags & _PRIORITY:
        start += 5
    return data[start:end] if start <= end else None


_PAIR, _WAIT, _OTHER = "pair", "wait", "other"


def reset_after(data: bytes, end: int, sid: int) -> str:
    """What follows a whole HEADERS of stream `sid` that ends at data[end]: _PAIR when the
    next frame is that stream's RST_STREAM, whole; _WAIT when it has begun but is not whole
    and may be one (the read is held back until it is); _OTHER otherwise, the end of the
    read included (a request whose read ends with its HEADERS goes to h2 at once)."""
    left = len(data) - end
    if left == 0:
        return _OTHER
    if left < 9:
        return _WAIT
    rl, _, rsid = _FRAME.unpack_from(data, end)
    if rl != _RST_4 or rsid & 0x7FFFFFFF != sid:
        return _OTHER
    return _PAIR if left >= 13 else _WAIT


def changes_nothing(block: bytes, dynamic: int) -> bool:
    """Whether an HPACK header block is only one-byte indexed fields (RFC 7541 6.1) that all
    name an entry of the table (1..61 + `dynamic`): decoding it would change no state and
    find no error, so a forgotten stream's block like that (the flood's repeated one) is
    not decoded. Its header list's size is not summed either: the list is never built."""
    if not block:
        return False
    hi = max(block)
    return min(block) > 0x80 and hi < 0xFF and hi - 0x80 <= _STATIC + dynamic


class _Settings(h2.settings.Settings):
    """Local settings that advertise one stream limit and let h2 enforce a higher one: the
    proxy refuses streams over the advertised limit itself, as a stream error."""

    hard_cap = 0

    @property
    def max_concurrent_streams(self) -> int:
        return self.hard_cap

    @max_concurrent_streams.setter
    def max_concurrent_streams(self, value: int) -> None:
        self[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = value


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
        self.blocked = False         # the upstream takes no more request body for now
        self.unacked = 0             # request body bytes received but not yet acknowledged

    def credit(self, n: int) -> None:
        """Acknowledge `n` received request body bytes once the upstream can take more."""
        if self.blocked:
            self.unacked += n
        else:
            self.proto.ack(n, self.sid)

    def pause_downstream(self) -> None:
        self.blocked = True

    def resume_downstream(self) -> None:
        self.blocked = False
        n = self.unacked
        if n:
            self.unacked = 0
            self.proto.ack(n, self.sid)
            self.proto.flush()

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
        self.sent += len(data)
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
            self.sent = len(r.body)
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
        self.conn_ctx = NO_CONN
        self.streams: dict[int, H2Exchange] = {}
        self.closed = False
        self.since = 0.0               # cfg.now when the connection last became idle
        self.partial_since = -1.0      # cfg.now since when bytes have made no whole frame
        self.draining = False
        self.goaway_last = 0           # the last stream id a drain's GOAWAY promised to serve
        self.closed_streams = 0
        self.premature_resets = 0      # client resets before the response began
        self.paused_read = False
        self.backlog: deque[bytes] = deque()   # input still to feed h2, a slice a turn
        self.preface = _PREFACE        # bytes of the client's preface not yet passed to h2
        self.carry = b""               # the start of a frame not yet whole (h2 gets whole ones)
        self.in_block = False          # h2 holds a header block that CONTINUATION must end

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.conn_ctx = ConnContext(transport)
        peer = self.conn_ctx.peer
        self.client = str(peer[0]).encode() if peer else b""
        lim = self.cfg.limits
        settings = _Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: lim.max_concurrent_streams,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW,
        })
        settings.hard_cap = lim.h2_stream_hard_cap
        self.conn.local_settings = settings
        self.conn.decoder.max_header_list_size = lim.h2_header_list_hard_cap
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(16 * _WINDOW)
        self.flush()
        self.cfg.register(self)
        self.since = self.cfg.now
        if self.cfg.draining:
            self.drain()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.closed:
            self.transport.write(data)

    def ack(self, n: int, sid: int) -> None:
        try:
            self.conn.acknowledge_received_data(n, sid)
        except h2.exceptions.H2Error:
            pass                       # the stream is gone; its bytes no longer matter

    def data_received(self, data: bytes) -> None:
        if self.backlog:
            self.backlog.append(data)      # arrived before the pause took: keep the order
            return
        if len(data) <= _SLICE:
            self._receive(data)
            return
        # one slice now, the rest on later turns of the loop: other connections' events run
        # in between (h2 parses a read of small frames in one go, tens of ms for 64 KiB)
        self._receive(data[:_SLICE])
        self.backlog.append(data[_SLICE:])
        t = self.transport
        if t is not None and not self.closed:
            t.pause_reading()
            asyncio.get_running_loop().call_soon(self._next_slice)

    def _next_slice(self) -> None:
        t = self.transport
        if self.closed or t is None or t.is_closing():
            self.backlog.clear()
            return
        data = self.backlog.popleft()
        if len(data) > _SLICE:
            self.backlog.appendleft(data[_SLICE:])
            data = data[:_SLICE]
        self._receive(data)
        if self.backlog:
            asyncio.get_running_loop().call_soon(self._next_slice)
        elif not self.closed and not self.paused_read:
            t.resume_reading()

    def _receive(self, data: bytes) -> None:
        """Feed h2 whole frames only, so that what h2 holds between reads is known (nothing,
        or an open header block), and take out the streams a client opens and resets in the
        same read without waking h2's stream machinery for them (_forget)."""
        got = 0
        if self.preface:                          # the client's preface is h2's to check
            n = min(self.preface, len(data))
            self.preface -= n
            got = self._feed(data[:n])
            if got < 0:
                return
            data = data[n:]
        if self.carry:
            data = self.carry + data
            self.carry = b""
        size = len(data)
        limit = self.conn.max_inbound_frame_size
        i = start = 0
        # a HEADERS among the frames not yet fed: then no pair is taken out of this read, lest
        # those frames go to h2 apart from an RST_STREAM of theirs after the pair (a stream
        # opened and reset within one read is never dispatched: _feed's `reset`)
        opened = False
        while size - i >= 9:
            lt, flags, sid = _FRAME.unpack_from(data, i)
            n = lt >> 8
            if n > limit:          # refused as h2 would, but before it comes whole
                if start < i and self._feed(data[start:i]) < 0:
                    return
                self.goaway(h2.errors.ErrorCodes.FRAME_SIZE_ERROR)
                return
            end = i + 9 + n
            if end > size:
                break
            kind = lt & 0xFF
            if kind == _HEADERS and not self.in_block and flags & _END_HEADERS:
                sid &= 0x7FFFFFFF
                after = reset_after(data, end, sid)
                if after is _WAIT:
                    break
                if after is _PAIR and not opened:
                    if start < i:                 # the frames before it go first, in order
                        n = self._feed(data[start:i])
                        if n < 0:
                            return
                        got += n
                    block = _block(data, i + 9, end, flags)
                    if block is not None and self._new_stream(sid):
                        if not self._forget(sid, block):
                            return
                        got += 1
                    else:
                        # h2 takes the pair, as a pair (never dispatched), and its verdict;
                        # the connection's first stream opens h2's state
                        n = self._feed(data[i:end + 13])
                        if n < 0:
                            return
                        got += n
                    i = start = end + 13
                    continue
            if kind == _HEADERS or kind == _CONTINUATION or kind == _PUSH_PROMISE:
                self.in_block = not flags & _END_HEADERS
                opened = opened or kind == _HEADERS
            i = end
        self.carry = data[i:]
        if start < i:
            n = self._feed(data[start:i])
            if n < 0:
                return
            got += n
        if got:
            self.partial_since = -1.0
        elif self.partial_since < 0:
            self.partial_since = self.cfg.now     # part of a frame: nothing to act on yet
        self.flush()

    def _new_stream(self, sid: int) -> bool:
        """Whether h2 would open stream `sid` from the client now (else h2 is given the frame,
        and its verdict)."""
        return sid & 1 == 1 and sid > self.conn.highest_inbound_stream_id and \
            not self.draining and not self.closed and \
            self.conn.state_machine.state is h2.connection.ConnectionState.SERVER_OPEN

    def _forget(self, sid: int, block: bytes) -> bool:
        """A stream the client opened (HEADERS, block) and reset (RST_STREAM) in the same read,
        the rapid-reset pattern: its header block only updates the HPACK table, as it must;
        it counts as a premature reset; h2 never sees it (no stream, no validation, no
        events). False when the connection ended."""
        decoder = self.conn.decoder
        try:
            if not changes_nothing(block, len(decoder.header_table.dynamic_entries)):
                decoder.decode(block, raw=True)
        except hpack.exceptions.OversizedHeaderListError:   # as h2 answers each
            self.goaway(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
            return False
        except (hpack.exceptions.HPACKError, IndexError, TypeError, UnicodeDecodeError):
            self.goaway(h2.errors.ErrorCodes.PROTOCOL_ERROR)
            return False
        self.conn.highest_inbound_stream_id = sid
        # as h2 records the streams it saw reset: a later frame on it is then a stream error
        # (RST_STREAM STREAM_CLOSED, RFC 9113 5.1), not one that ends the connection
        self.conn._closed_streams[sid] = h2.stream.StreamClosedBy.RECV_RST_STREAM
        return self._count_reset(premature=True)

    def _count_reset(self, premature: bool) -> bool:
        """One more stream reset by the client (premature: before its response began), for
        Envoy's rule: False when that ended the connection with GOAWAY."""
        self.closed_streams += 1
        if premature:
            self.premature_resets += 1
        if premature_reset_abuse(self.closed_streams, self.premature_resets, self.cfg.limits):
            self._abuse()
            return False
        if not self.streams:
            self._idle()
        return True

    def _abuse(self) -> None:
        log.warning("%s: HTTP/2 rapid reset (%d of %d streams reset early): closing",
                    self.client.decode(), self.premature_resets, self.closed_streams)
        self.goaway(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)

    def _feed(self, data: bytes) -> int:
        """Whole frames to h2, and its events acted on: how many, or -1 if the connection
        ended."""
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.flush()
            self.abort()
            return -1
        if not events:
            return 0
        reset = {ev.stream_id for ev in events if isinstance(ev, h2.events.StreamReset)} \
            if len(events) > 1 else set()
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                if ev.stream_id in reset:
                    continue
                self._request(ev)
            elif isinstance(ev, h2.events.DataReceived):
                ex = self.streams.get(ev.stream_id)
                n = ev.flow_controlled_length
                if ex is not None:
                    ex.body(ev.data)
                    if n:
                        ex.credit(n)
                elif n:
                    self.ack(n, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                ex = self.streams.get(ev.stream_id)
                if ex is not None:
                    ex.end()
            elif isinstance(ev, h2.events.StreamReset):
                ex = self.streams.pop(ev.stream_id, None)
                if ex is not None or ev.stream_id in reset:
                    if ex is not None:
                        ex.ended = True
                        ex.abort()
                    if not self._count_reset(premature=ex is None or not ex.started):
                        return -1
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
                self.abort()
                return -1
        return -1 if self.closed else len(events)

    # limits and drain
    def _idle(self) -> None:
        self.since = self.cfg.now
        if self.draining:
            self.flush()
            self.abort()

    def check(self, now: float) -> None:
        lim = self.cfg.limits
        for ex in [ex for ex in self.streams.values() if ex.overdue(now)]:
            ex.expire()
        # bytes that have made no whole frame (or header block) for that long: the slowloris
        # of HTTP/2, a frame trickled in
        if self.partial_since >= 0 and verdict(Phase.HEAD, now - self.partial_since, lim) \
                is Verdict.HEADER_TIMEOUT:
            self.goaway(h2.errors.ErrorCodes.NO_ERROR)
            return
        if not self.streams and \
                verdict(Phase.IDLE, now - self.since, lim, self.draining) is Verdict.CLOSE:
            self.goaway(h2.errors.ErrorCodes.NO_ERROR)

    def goaway(self, code: h2.errors.ErrorCodes) -> None:
        """End the connection now: GOAWAY, then close (in-flight streams end with it)."""
        if self.closed:
            return
        try:
            self.conn.close_connection(code)
        except h2.exceptions.H2Error:
            pass
        self.flush()
        self.abort()

    def drain(self) -> None:
        """GOAWAY(NO_ERROR) naming the last stream taken; later streams are refused, and the
        connection closes when its last stream ends. Written past h2, whose own GOAWAY would
        close the connection's state machine to the streams still running."""
        if self.draining or self.closed:
            return
        self.draining = True
        self.goaway_last = self.conn.highest_inbound_stream_id
        self.flush()
        if self.transport is not None:
            self.transport.write(GoAwayFrame(0, last_stream_id=self.goaway_last,
                                             error_code=0).serialize())
        if not self.streams:
            self.abort()

    def abort(self) -> None:
        t = self.transport
        if t is not None:
            t.close()

    def _refuse(self, sid: int) -> None:
        try:
            self.conn.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
        except h2.exceptions.H2Error:
            pass

    def _request(self, ev: h2.events.RequestReceived) -> None:
        cfg = self.cfg
        lim = cfg.limits
        sid = ev.stream_id
        assert sid is not None
        if self.draining and sid > self.goaway_last or len(self.streams) >= \
                lim.max_concurrent_streams:
            self._refuse(sid)          # never processed: the client may retry it elsewhere
            return
        capture = cfg.capture
        strip = cfg.strip_prefix
        method = target = authority = b""
        lines: list[bytes] = []
        cap: dict[bytes, bytes] = {}
        cookies: list[bytes] = []
        size = pseudo = 0
        headers = ev.headers or ()
        for name, value in headers:
            n = bytes(name)
            v = bytes(value)
            size += len(n) + len(v)
            if n[:1] == b":":
                pseudo += 1
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
        # pseudo-headers count toward the size (as :path does in HTTP/1.1's request line) but
        # not toward the number of headers
        if header_list_too_large(size, len(headers) - pseudo, lim):
            ex0 = H2Exchange(cfg, RequestHead(method, target, authority, [], {}, self.client,
                                              self.scheme, "2", True, False, -1, self.conn_ctx),
                             self, sid)
            self.streams[sid] = ex0
            ex0.reply(HEADERS_TOO_LARGE)
            self.drain()               # as HTTP/1.1 does: the connection ends after the 431
            return
        if cookies:
            lines.append(b"cookie: " + b"; ".join(cookies) + b"\r\n")
        ended = ev.stream_ended is not None
        cl = cap.get(b"content-length")
        clen = int(cl) if cl is not None and cl.isdigit() else -1
        chunked = not ended and clen < 0
        head = RequestHead(method, target or b"/", authority or cap.get(b"host", b""), lines, cap,
                           self.client, self.scheme, "2", True, chunked, clen, self.conn_ctx)
        ex = H2Exchange(cfg, head, self, sid)
        ex.since = cfg.now
        self.streams[sid] = ex
        ex.begin()
        if ended:
            ex.end()

    def stream_done(self, sid: int) -> None:
        ex = self.streams.pop(sid, None)
        if ex is not None:
            if ex.hooks:
                ex.end_hooks()
            self.closed_streams += 1
            if not self.streams:
                self._idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.cfg.unregister(self)
        for ex in list(self.streams.values()):
            ex.ended = True
            ex.abort()
        self.streams.clear()
        self.transport = None

    def pause_writing(self) -> None:
        # the client is not reading: stop reading it too, or the answers to what it keeps
        # sending (responses, resets, pings) would pile up here without bound
        if self.transport is not None and not self.paused_read:
            self.paused_read = True
            self.transport.pause_reading()
        for ex in self.streams.values():
            ex.pause_response()

    def resume_writing(self) -> None:
        if self.transport is not None and self.paused_read:
            self.paused_read = False
            if not self.backlog:           # else the slicer resumes when it is done
                self.transport.resume_reading()
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
