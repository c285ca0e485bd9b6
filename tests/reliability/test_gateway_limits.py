"""The proxy's limits (dataplane/proxy/limits.py) against raw-socket and raw-h2 abusers, in process.

Each test starts the proxy primitives on 127.0.0.1 port 0 (HTTP/1.1, and HTTP/2 with prior
knowledge) in front of a tiny upstream, in a background event loop, with short timeouts. The
abuser must get the clear error or closure at the limit, a request just inside the limit must
pass untouched, and a normal client must still be served by the same proxy afterwards. No
timing assertions: every wait has a deadline, and only closure or answers are checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import httptools
import pytest

from rawhttp import read_response
from skiff.dataplane.proxy.h2 import H2ServerProtocol
from skiff.dataplane.proxy.http1 import Forward, ProxyConfig, RequestHead, UpstreamPool, h1_factory
from skiff.dataplane.proxy.limits import Limits

DEADLINE = 10.0
FAST = Limits(header_timeout=0.5, idle_timeout=0.5, request_timeout=0.8, drain_idle=0.2,
              drain_timeout=3.0)
LOOSE = Limits(header_timeout=30.0, idle_timeout=30.0, request_timeout=30.0, drain_idle=5.0,
               drain_timeout=8.0)
HEAD_ONLY = Limits(header_timeout=0.5, idle_timeout=30.0, request_timeout=30.0)


# --- a tiny upstream ---------------------------------------------------------------------------

class _Upstream(asyncio.Protocol):
    """HTTP/1.1: `/` answers "ok"; `/hold` answers once the test releases it; `/sink` reads the
    body only once released, then answers with its length and sha256."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body = hashlib.sha256()
        self.size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_headers_complete(self) -> None:
        if self.url == b"/sink" and not self.rig.release.is_set():
            assert self.transport is not None
            self.transport.pause_reading()
            self.rig.sink_paused += 1
            asyncio.get_running_loop().create_task(self._resume())

    async def _resume(self) -> None:
        await self.rig.release.wait()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def on_body(self, body: bytes) -> None:
        self.body.update(body)
        self.size += len(body)

    def on_message_complete(self) -> None:
        url, self.url = self.url, b""
        if url == b"/hold":
            self.rig.held += 1
            asyncio.get_running_loop().create_task(self._answer_later(b"held"))
            return
        if url == b"/sink":
            self._answer(f"{self.size} {self.body.hexdigest()}".encode())
        else:
            self._answer(b"ok")
        self.body = hashlib.sha256()
        self.size = 0

    async def _answer_later(self, body: bytes) -> None:
        await self.rig.release.wait()
        self._answer(body)

    def _answer(self, body: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s"
                                 % (len(body), body))


# --- the rig: upstream + proxy in a background loop ----------------------------------------------

@dataclass
class Rig:
    limits: Limits
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    h1_port: int = 0
    h2_port: int = 0
    cfg: ProxyConfig | None = None
    sink_paused: int = 0
    held: int = 0                   # /hold requests the upstream holds until release
    servers: list[asyncio.AbstractServer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.release = asyncio.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self._start())

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = DEADLINE) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def soon(self, fn: Callable[[], Any]) -> None:
        self.loop.call_soon_threadsafe(fn)

    async def _start(self) -> None:
        self.release = asyncio.Event()
        # a small, fixed receive buffer: a paused upstream must push back soon, not after the
        # kernel's autotuning has taken in megabytes
        us = socket.socket()
        us.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        us.bind(("127.0.0.1", 0))
        up = await self.loop.create_server(lambda: _Upstream(self), sock=us)
        ep = up.sockets[0].getsockname()[:2]

        def dispatch(_h: RequestHead) -> Forward:
            return Forward((str(ep[0]), int(ep[1])))
        self.cfg = cfg = ProxyConfig(dispatch, UpstreamPool(), server=b"istio-envoy",
                                     limits=self.limits)
        h1 = await self.loop.create_server(h1_factory(cfg), "127.0.0.1", 0)
        h2s = await self.loop.create_server(lambda: H2ServerProtocol(cfg, b"http"), "127.0.0.1", 0)
        self.servers = [h1, h2s, up]
        self.h1_port = int(h1.sockets[0].getsockname()[1])
        self.h2_port = int(h2s.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        assert self.cfg is not None
        for s in self.servers[:2]:
            s.close()
        await self.cfg.drain(2.0)
        self.cfg.pool.close()
        self.servers[2].close()
        self.release.set()
        me = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not me]
        for t in rest:
            t.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def release_upstream(self) -> None:
        self.soon(self.release.set)

    def drain(self) -> None:
        """Close the listening sockets, then drain (as GatewayProxy.stop does), in the loop."""
        async def go() -> None:
            assert self.cfg is not None
            for s in self.servers[:2]:
                s.close()
            await self.cfg.drain()
        asyncio.run_coroutine_threadsafe(go(), self.loop)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(DEADLINE)
        self.loop.close()


def _rig(lim: Limits) -> Iterator[Rig]:
    r = Rig(lim)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    """Every timeout short."""
    yield from _rig(FAST)


@pytest.fixture
def loose() -> Iterator[Rig]:
    """Timeouts out of the way."""
    yield from _rig(LOOSE)


@pytest.fixture
def head_rig() -> Iterator[Rig]:
    """Only the header timeout short."""
    yield from _rig(HEAD_ONLY)


# --- raw clients -----------------------------------------------------------------------------

def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def closed_by_peer(s: socket.socket, deadline: float = DEADLINE) -> bool:
    """Whether the peer closes the connection before the deadline (bytes before that ignored)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        s.settimeout(max(0.01, end - time.monotonic()))
        try:
            if not s.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
    return False


def get(port: int, path: str = "/", extra: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    with connect(port) as s:
        s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nhost: app.example.com\r\n" + extra
                  + b"\r\n")
        return read_response(s)


def assert_served(rig: Rig) -> None:
    """A normal client, on HTTP/1.1 and on HTTP/2, still gets its answer."""
    assert get(rig.h1_port)[::2] == (200, b"ok")
    c = H2Client(rig.h2_port)
    try:
        sid = c.request("/")
        status, body = c.response(sid)
        assert (status, body) == (200, b"ok")
    finally:
        c.close()


@dataclass(frozen=True)
class GoAway:
    last_stream_id: int
    error_code: int


class H2Client:
    """The `h2` library over a blocking socket, as a raw client (prior knowledge, no TLS).

    GOAWAY frames are taken out before h2 sees them: h2 closes its whole state machine on one,
    where a client must go on with the streams the GOAWAY says will be served (a drain)."""

    def __init__(self, port: int, read_settings: bool = True) -> None:
        self.sock = connect(port)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding=None))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.events: list[Any] = []
        self.goaways: list[GoAway] = []
        self.rbuf = b""
        self.closed = False
        if read_settings:
            self.pump_until(lambda: any(isinstance(e, h2.events.RemoteSettingsChanged)
                                        for e in self.events))

    def request(self, path: str, end: bool = True, send: bool = True) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "http"),
                                     (":authority", "app.example.com")], end_stream=end)
        if send:
            self.sock.sendall(self.conn.data_to_send())
        return sid

    def pump(self, timeout: float = 0.2) -> bool:
        """Read once; False when the server has closed."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            return True
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.closed = True
            return False
        self.rbuf += data
        frames = b""
        while len(self.rbuf) >= 9:
            n = 9 + int.from_bytes(self.rbuf[:3], "big")
            if len(self.rbuf) < n:
                break
            frame, self.rbuf = self.rbuf[:n], self.rbuf[n:]
            if frame[3] == 0x7:                  # GOAWAY
                self.goaways.append(GoAway(int.from_bytes(frame[9:13], "big") & 0x7FFFFFFF,
                                           int.from_bytes(frame[13:17], "big")))
            else:
                frames += frame
        try:
            self.events += self.conn.receive_data(frames)
        except h2.exceptions.ProtocolError:
            pass
        out = self.conn.data_to_send()
        if out:
            with contextlib.suppress(OSError):
                self.sock.sendall(out)
        return True

    def pump_until(self, cond: Callable[[], bool], deadline: float = DEADLINE) -> bool:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if cond():
                return True
            if not self.pump():
                return cond()
        return cond()

    def response(self, sid: int) -> tuple[int, bytes]:
        def ended() -> bool:
            return any(getattr(e, "stream_id", None) == sid and
                       isinstance(e, h2.events.StreamEnded | h2.events.StreamReset)
                       for e in self.events)
        assert self.pump_until(ended), f"stream {sid} did not end"
        status, body = 0, b""
        for e in self.events:
            if getattr(e, "stream_id", None) != sid:
                continue
            if isinstance(e, h2.events.ResponseReceived):
                status = int(dict(e.headers)[b":status"])
            elif isinstance(e, h2.events.DataReceived):
                body += e.data
                self.conn.acknowledge_received_data(e.flow_controlled_length, sid)
            elif isinstance(e, h2.events.StreamReset):
                status = -int(e.error_code)
        return status, body

    def resets(self, code: h2.errors.ErrorCodes) -> set[int]:
        return {e.stream_id for e in self.events
                if isinstance(e, h2.events.StreamReset) and e.error_code == code}

    def goaway(self) -> GoAway | None:
        return self.goaways[0] if self.goaways else None

    def close(self) -> None:
        self.sock.close()


# --- HTTP/1.1 --------------------------------------------------------------------------------

def test_a_header_over_60_kib_gets_431_and_the_connection_is_closed(rig: Rig) -> None:
    with connect(rig.h1_port) as s:
        s.sendall(b"GET / HTTP/1.1\r\nhost: app.example.com\r\nx-big: ")
        sent, refused = 0, False
        # keep sending (up to 4 MiB): the proxy must answer and close, not keep reading
        while sent < 4 << 20:
            try:
                s.sendall(b"a" * 16384)
            except (BrokenPipeError, ConnectionResetError):
                refused = True
                break
            sent += 16384
            if sent >= 256 * 1024:
                s.settimeout(0.05)
                with contextlib.suppress(TimeoutError):
                    if s.recv(1, socket.MSG_PEEK):
                        refused = True
                        break
        s.settimeout(DEADLINE)
        assert refused, "the proxy kept reading a header of 4 MiB"
        with contextlib.suppress(ConnectionResetError):
            status, headers, _ = read_response(s)
            assert status == 431 and headers.get("connection") == "close"
        assert closed_by_peer(s)
    assert_served(rig)


def test_headers_just_inside_60_kib_pass(rig: Rig) -> None:
    line = b"x-fill: " + b"f" * 1000 + b"\r\n"
    fill = line * 58                      # ~58.5 KiB with the request line and host
    status, _, body = get(rig.h1_port, extra=fill)
    assert (status, body) == (200, b"ok")
    status, _, _ = get(rig.h1_port, extra=fill + line * 3)
    assert status == 431


def test_more_than_100_headers_get_431(rig: Rig) -> None:
    ninety_nine = b"".join(b"x-h%d: v\r\n" % i for i in range(99))    # + host = 100
    assert get(rig.h1_port, extra=ninety_nine)[::2] == (200, b"ok")
    with connect(rig.h1_port) as s:
        s.sendall(b"GET / HTTP/1.1\r\nhost: app.example.com\r\n" + ninety_nine
                  + b"x-one-more: v\r\n\r\n")
        status, headers, _ = read_response(s)
        assert status == 431 and headers["connection"] == "close"
        assert closed_by_peer(s)
    assert_served(rig)


def test_slowloris_gets_408_and_silent_connections_are_closed(rig: Rig) -> None:
    loris = [connect(rig.h1_port) for _ in range(20)]
    silent = [connect(rig.h1_port) for _ in range(5)]
    try:
        for s in loris:
            s.sendall(b"GET / HTTP/1.1\r\nhost: app.example.com\r\n")
        answered = 0
        end = time.monotonic() + DEADLINE
        pending = list(loris)
        while pending and time.monotonic() < end:
            for s in list(pending):
                try:
                    s.sendall(b"x-a: b\r\n")            # a header line at a time, never the end
                except (BrokenPipeError, ConnectionResetError):
                    pending.remove(s)
                    continue
                s.settimeout(0.01)
                with contextlib.suppress(TimeoutError):
                    if s.recv(1, socket.MSG_PEEK):
                        pending.remove(s)
            # meanwhile a normal client is served
            assert get(rig.h1_port)[::2] == (200, b"ok")
            time.sleep(0.05)
        assert not pending, f"{len(pending)} slowloris connections still open"
        for s in loris:
            s.settimeout(DEADLINE)
            with contextlib.suppress(ConnectionError, OSError):
                status, _, body = read_response(s)
                assert status == 408
                answered += 1
            assert closed_by_peer(s)
        assert answered > 0
        for s in silent:
            assert closed_by_peer(s)
    finally:
        for s in loris + silent:
            s.close()
    assert_served(rig)


def test_an_idle_keep_alive_connection_is_closed(rig: Rig) -> None:
    with connect(rig.h1_port) as s:
        s.sendall(b"GET / HTTP/1.1\r\nhost: app.example.com\r\n\r\n")
        assert read_response(s)[::2] == (200, b"ok")
        assert closed_by_peer(s)
    assert_served(rig)


def test_a_request_over_its_timeout_gets_504_and_others_are_served(rig: Rig) -> None:
    with connect(rig.h1_port) as s:
        s.sendall(b"GET /hold HTTP/1.1\r\nhost: app.example.com\r\n\r\n")
        assert get(rig.h1_port)[::2] == (200, b"ok")
        status, _, body = read_response(s)
        assert (status, body) == (504, b"upstream request timeout")
    assert_served(rig)


def test_a_request_body_is_streamed_with_backpressure_and_arrives_whole(loose: Rig) -> None:
    """The upstream does not read: the client is held back (its send times out) instead of the
    proxy buffering the body; once the upstream reads, all of it arrives."""
    rig = loose
    body = bytes(range(256)) * (32 * 4096)            # 32 MiB
    with connect(rig.h1_port) as s:
        s.sendall(b"POST /sink HTTP/1.1\r\nhost: app.example.com\r\ncontent-length: %d\r\n\r\n"
                  % len(body))
        s.settimeout(0.5)
        sent = 0
        with contextlib.suppress(TimeoutError):
            while sent < len(body):
                sent += s.send(body[sent:sent + 65536])
        assert sent < len(body), "32 MiB went in while the upstream read nothing"
        rig.release_upstream()
        s.settimeout(DEADLINE)
        s.sendall(body[sent:])
        status, _, got = read_response(s)
        assert status == 200
        assert got == f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()


def test_drain_finishes_in_flight_requests_with_connection_close(loose: Rig) -> None:
    rig = loose
    busy = connect(rig.h1_port)
    idle = connect(rig.h1_port)
    try:
        idle.sendall(b"GET / HTTP/1.1\r\nhost: app.example.com\r\n\r\n")
        assert read_response(idle)[::2] == (200, b"ok")
        busy.sendall(b"GET /hold HTTP/1.1\r\nhost: app.example.com\r\n\r\n")
        h2c = H2Client(rig.h2_port)
        sid = h2c.request("/hold")
        deadline = time.monotonic() + DEADLINE        # both requests reach the upstream
        while rig.held < 2:
            assert time.monotonic() < deadline, "the held requests never reached the upstream"
            time.sleep(0.005)
        rig.drain()
        assert h2c.pump_until(lambda: h2c.goaway() is not None)
        assert h2c.goaway() == GoAway(sid, h2.errors.ErrorCodes.NO_ERROR)
        # the idle keep-alive connection still takes one more request, answered with close
        idle.sendall(b"GET / HTTP/1.1\r\nhost: app.example.com\r\n\r\n")
        status, headers, body = read_response(idle)
        assert (status, body, headers["connection"]) == (200, b"ok", "close")
        rig.release_upstream()
        status, headers, body = read_response(busy)
        assert (status, body, headers["connection"]) == (200, b"held", "close")
        assert h2c.response(sid) == (200, b"held")
        assert closed_by_peer(busy) and closed_by_peer(idle)
        assert h2c.pump_until(lambda: h2c.closed)
        with pytest.raises(OSError):
            connect(rig.h1_port).close()     # the listener is closed
        h2c.close()
    finally:
        busy.close()
        idle.close()


# --- HTTP/2 ----------------------------------------------------------------------------------

def test_h2_streams_over_100_are_refused_and_the_rest_served(loose: Rig) -> None:
    rig = loose
    # HEADERS sent before the server's SETTINGS are read: the client does not limit itself
    c = H2Client(rig.h2_port, read_settings=False)
    try:
        sids = [c.request("/hold") for _ in range(110)]
        assert c.pump_until(lambda: len(c.resets(h2.errors.ErrorCodes.REFUSED_STREAM)) >= 10)
        assert c.conn.remote_settings.max_concurrent_streams == 100
        refused = c.resets(h2.errors.ErrorCodes.REFUSED_STREAM)
        assert refused == set(sids[100:])
        rig.release_upstream()
        for sid in sids[:100]:
            assert c.response(sid) == (200, b"held")
        assert c.goaway() is None and not c.closed
    finally:
        c.close()
    assert_served(rig)


def test_h2_rapid_reset_gets_goaway_and_others_are_served(rig: Rig) -> None:
    c = H2Client(rig.h2_port)
    pairs = 0
    try:
        end = time.monotonic() + DEADLINE
        while pairs < 20_000 and time.monotonic() < end and not c.closed and c.goaway() is None:
            for _ in range(100):
                sid = c.request("/hold", send=False)
                c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                pairs += 1
            try:
                c.sock.sendall(c.conn.data_to_send())
            except (BrokenPipeError, ConnectionResetError):
                break
            c.pump(0.001)
        assert c.pump_until(lambda: c.closed)
        ga = c.goaway()
        assert ga is not None and ga.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        assert pairs < 20_000
    finally:
        c.close()
    rig.release_upstream()
    assert_served(rig)


def test_h2_headers_over_60_kib_get_431_then_the_connection_ends(rig: Rig) -> None:
    c = H2Client(rig.h2_port)
    try:
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                                  (":authority", "app.example.com"),
                                  *((f"x-fill-{i}", "f" * 1000) for i in range(62))],
                            end_stream=True)
        c.sock.sendall(c.conn.data_to_send())
        assert c.response(sid) == (431, b"")
        assert c.pump_until(lambda: c.closed)
    finally:
        c.close()
    c = H2Client(rig.h2_port)
    try:
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                                  (":authority", "app.example.com"),
                                  *((f"x-h{i}", "v") for i in range(101))], end_stream=True)
        c.sock.sendall(c.conn.data_to_send())
        assert c.response(sid) == (431, b"")
    finally:
        c.close()
    assert_served(rig)


def test_h2_a_trickled_frame_is_closed_at_the_header_timeout(head_rig: Rig) -> None:
    rig = head_rig
    trickle = H2Client(rig.h2_port)
    try:
        sid = trickle.conn.get_next_available_stream_id()
        trickle.conn.send_headers(sid, [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                                        (":authority", "app.example.com")], end_stream=True)
        frame = trickle.conn.data_to_send()
        end = time.monotonic() + DEADLINE
        for b in frame[:-1]:                 # never the last byte
            if time.monotonic() > end or not trickle.pump(0.05):
                break
            with contextlib.suppress(OSError):
                trickle.sock.sendall(bytes([b]))
        assert trickle.pump_until(lambda: trickle.closed)
        assert trickle.goaway() is not None
    finally:
        trickle.close()
    assert_served(rig)


def test_h2_an_idle_connection_gets_goaway_and_is_closed(rig: Rig) -> None:
    idle = H2Client(rig.h2_port)
    try:
        sid = idle.request("/")
        assert idle.response(sid) == (200, b"ok")
        assert idle.pump_until(lambda: idle.closed)
        ga = idle.goaway()
        assert ga is not None and ga.error_code == h2.errors.ErrorCodes.NO_ERROR
    finally:
        idle.close()
    assert_served(rig)


def test_h2_request_body_is_held_by_flow_control_and_arrives_whole(loose: Rig) -> None:
    rig = loose
    body = bytes(range(256)) * (16 * 4096)            # 16 MiB
    c = H2Client(rig.h2_port)
    try:
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "POST"), (":path", "/sink"), (":scheme", "http"),
                                  (":authority", "app.example.com")])
        c.sock.sendall(c.conn.data_to_send())
        sent = 0

        def send_what_the_window_allows() -> None:
            nonlocal sent
            while sent < len(body):
                n = min(c.conn.local_flow_control_window(sid), c.conn.max_outbound_frame_size,
                        len(body) - sent)
                if n <= 0:
                    return
                c.conn.send_data(sid, body[sent:sent + n], end_stream=sent + n == len(body))
                sent += n
                c.sock.sendall(c.conn.data_to_send())

        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            send_what_the_window_allows()
            c.pump(0.05)
        assert sent < len(body), "16 MiB went in while the upstream read nothing"
        rig.release_upstream()
        end = time.monotonic() + DEADLINE
        while sent < len(body) and time.monotonic() < end:
            send_what_the_window_allows()
            c.pump(0.05)
        assert sent == len(body)
        assert c.response(sid) == (200, f"{len(body)} {hashlib.sha256(body).hexdigest()}"
                                   .encode())
    finally:
        c.close()
