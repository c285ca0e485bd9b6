"""dataplane/proxy/sniff.py: HTTP or TCP by the first bytes (a table), and the TCP proxy over
loopback sockets: bytes both ways with half-close, HTTP handed to its protocol with the bytes
read so far, a server-first protocol after the detection timeout, a silent client closed
without one, at most SNIFF_MAX bytes held before deciding, and the downstream not read while
the upstream connection is being made."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from skiff.dataplane.proxy.sniff import H2_PREFACE, SNIFF_MAX, Sniff, relay, sniff, sniff_http


@pytest.mark.parametrize(("data", "want"), [
    (b"GET / HTTP/1.1\r\n", "h1"),
    (b"POST /x HTTP/1.0\r\n", "h1"),
    (b"OPTIONS * HTTP/1.1\r\n", "h1"),
    (H2_PREFACE, "h2"),                   # h2c with prior knowledge
    (H2_PREFACE + b"\x00\x00", "h2"),
    (b"", None),
    (b"G", None),
    (b"GET", None),                       # "GET" could still be "GET "
    (b"PRI * HTTP/2", None),
    (b"DELE", None),
    (b"GETX", "tcp"),
    (b"get / HTTP/1.1", "tcp"),           # methods are case-sensitive
    (b"PRI * HTTP/2.0\r\n\r\nXX", "tcp"),
    (b"hello\n", "tcp"),
    (b"\x16\x03\x01", "tcp"),             # TLS would have been told apart before
    (b"*1\r\n$4\r\nPING\r\n", "tcp"),     # redis
    (b"\x00\x00\x00\x08", "tcp"),
])
def test_sniff(data: bytes, want: str | None) -> None:
    assert sniff(data) == want
    assert sniff_http(data) is (None if want is None else want == "h1")


class Echo(asyncio.Protocol):
    """The upstream app: says hello first when `greet`, echoes with a prefix, and closes its
    side after the client closed its own."""

    def __init__(self, greet: bytes = b"") -> None:
        self.greet = greet

    def connection_made(self, transport: Any) -> None:
        self.t = transport
        if self.greet:
            transport.write(self.greet)

    def data_received(self, data: bytes) -> None:
        self.t.write(b"hello " + data)

    def eof_received(self) -> bool:
        self.t.write(b"bye\n")
        return False


class Http(asyncio.Protocol):
    """Stands in for the HTTP protocol: answers once it has seen a whole request head."""

    seen: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        self.t = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if b"\r\n\r\n" in self.buf:
            Http.seen.append(self.buf)
            self.t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            self.t.close()


async def _serve(factory: Callable[[], asyncio.Protocol]) -> tuple[asyncio.Server, int]:
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _connector(port: int) -> Callable[[], Awaitable[socket.socket]]:
    async def connect() -> socket.socket:
        s = socket.socket()
        s.setblocking(False)
        await asyncio.get_running_loop().sock_connect(s, ("127.0.0.1", port))
        return s
    return connect


async def _front(app_port: int, *, detect: float = 0.0, silent: float = 5.0,
                 stats: dict[str, int] | None = None,
                 idle: float = 3600.0) -> tuple[asyncio.Server, int]:
    stats = stats if stats is not None else {}

    def tcp(t: asyncio.Transport, early: bytes) -> None:
        stats["tcp"] = stats.get("tcp", 0) + 1
        stats["early"] = len(early)
        relay(t, early, _connector(app_port), idle_timeout=idle,
              on_close=lambda: stats.__setitem__("closed", stats.get("closed", 0) + 1))
    return await _serve(lambda: Sniff(Http, tcp, detect_timeout=detect, silent_timeout=silent))


async def _read_all(r: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(r.read(), 5)


def test_tcp_is_proxied_both_ways_with_half_close() -> None:
    async def run() -> None:
        app, app_port = await _serve(Echo)
        stats: dict[str, int] = {}
        front, port = await _front(app_port, stats=stats)
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"world\n")
        assert await asyncio.wait_for(r.readline(), 5) == b"hello world\n"
        w.write_eof()                          # the client is done: the app says bye and ends
        assert await _read_all(r) == b"bye\n"
        w.close()
        await asyncio.sleep(0.05)
        assert stats == {"tcp": 1, "early": 6, "closed": 1}
        front.close()
        app.close()
    asyncio.run(run())


def test_a_quiet_tcp_connection_is_closed_after_the_idle_timeout() -> None:
    async def run() -> None:
        app, app_port = await _serve(Echo)
        stats: dict[str, int] = {}
        front, port = await _front(app_port, stats=stats, idle=0.1)
        loop = asyncio.get_running_loop()
        r, w = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):                     # busy: kept past several idle periods
            w.write(b"x\n")
            assert await asyncio.wait_for(r.readline(), 5) == b"hello x\n"
            await asyncio.sleep(0.08)
        start = loop.time()
        assert await _read_all(r) == b""      # then quiet: closed within two periods
        assert loop.time() - start < 0.5 and stats["closed"] == 1
        w.close()
        front.close()
        app.close()
    asyncio.run(run())


def test_http_goes_to_the_http_protocol_with_what_was_read() -> None:
    async def run() -> None:
        app, app_port = await _serve(Echo)
        stats: dict[str, int] = {}
        front, port = await _front(app_port, stats=stats)
        r, w = await asyncio.open_connection("127.0.0.1", port)
        for piece in (b"G", b"E", b"T / HTTP/1.1\r\nhost: x\r\n\r\n"):   # trickled
            w.write(piece)
            await w.drain()
            await asyncio.sleep(0.01)
        assert (await _read_all(r)).endswith(b"\r\n\r\nok")
        assert Http.seen[-1] == b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
        assert stats == {}
        w.close()
        front.close()
        app.close()
    asyncio.run(run())


def test_a_server_first_protocol_after_the_detection_timeout() -> None:
    async def run() -> None:
        app, app_port = await _serve(lambda: Echo(greet=b"220 smtp ready\r\n"))
        front, port = await _front(app_port, detect=0.05)
        loop = asyncio.get_running_loop()
        start = loop.time()
        r, w = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(r.readline(), 5) == b"220 smtp ready\r\n"
        assert loop.time() - start < 1.0
        w.close()
        front.close()
        app.close()
    asyncio.run(run())


def test_without_a_detection_timeout_a_silent_client_is_closed() -> None:
    async def run() -> None:
        app, app_port = await _serve(lambda: Echo(greet=b"220 smtp ready\r\n"))
        stats: dict[str, int] = {}
        front, port = await _front(app_port, silent=0.1, stats=stats)
        r, w = await asyncio.open_connection("127.0.0.1", port)
        assert await _read_all(r) == b""          # closed, the app never reached
        assert stats == {}
        w.close()
        front.close()
        app.close()
    asyncio.run(run())


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.protocol: Any = None
        self.reading = True
        self.closed = False

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closed

    def abort(self) -> None:
        self.closed = True

    def write(self, data: Any) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def test_h2c_goes_to_the_h2_protocol_if_there_is_one_else_tcp() -> None:
    made: list[str] = []

    class H2(Http):
        def connection_made(self, transport: Any) -> None:
            made.append("h2")
            super().connection_made(transport)
    for h2, want in ((H2, ["h2"]), (None, ["tcp"])):
        made.clear()
        s = Sniff(Http, lambda _t, _b: made.append("tcp"), silent_timeout=5, h2=h2)
        s.transport = FakeTransport()
        s.data_received(H2_PREFACE + b"\x00\x00\x12\x04")
        assert made == want


def test_at_most_sniff_max_bytes_are_held_before_deciding() -> None:
    got: list[bytes] = []
    s = Sniff(Http, lambda _t, early: got.append(early), silent_timeout=5)
    s.transport = FakeTransport()                  # no timer: fed by hand
    for b in H2_PREFACE[:SNIFF_MAX - 1]:
        s.data_received(bytes([b]))
    assert len(s.buf) == SNIFF_MAX - 1 and not got
    s.data_received(b"Z")                          # the preface is broken at its last byte
    assert got == [H2_PREFACE[:SNIFF_MAX - 1] + b"Z"] and s.buf == b""
    s.data_received(b"more")                       # not read here any longer
    assert got == [H2_PREFACE[:SNIFF_MAX - 1] + b"Z"]


def test_the_downstream_is_not_read_until_the_upstream_is_there() -> None:
    async def run() -> None:
        gate = asyncio.Event()
        lost: list[str] = []

        async def slow() -> socket.socket:
            await gate.wait()
            raise OSError("no route to the app")
        down = FakeTransport()
        task = relay(down, b"first", slow, on_close=lambda: lost.append("closed"),
                     on_fail=lambda e: lost.append(str(e)))
        await asyncio.sleep(0.01)
        assert not down.reading and down.protocol.early == [b"first"]
        gate.set()
        await task
        assert down.closed and lost == ["no route to the app"]
    asyncio.run(run())


def _listener(detect: float, early: bool, app_port: int, hello_timeout: float = 5.0) -> Any:
    from skiff.dataplane.proxy.listener import PeekingListener, Splice
    decided: list[str] = []

    def decide(hello: Any, conn: socket.socket) -> Any:
        decided.append("peeked")
        return Splice(("127.0.0.1", app_port))

    def decide_early(conn: socket.socket) -> Any:
        decided.append("early")
        return Splice(("127.0.0.1", app_port))
    li = PeekingListener("127.0.0.1", 0, lambda _h: Splice(("127.0.0.1", app_port)),
                         decide_conn=decide, decide_early=decide_early if early else None,
                         detect_timeout=detect, hello_timeout=hello_timeout)
    return li, decided


@pytest.mark.parametrize(("detect", "early", "hello_timeout", "want", "decided", "within"), [
    (0.05, False, 5.0, b"220 smtp ready\r\n", ["peeked"], 1.0),   # after the detection timeout
    (0.0, True, 5.0, b"220 smtp ready\r\n", ["early"], 0.5),      # a port declared TCP
    (0.0, False, 0.2, b"", [], 2.0),                              # no timeout: dropped
])
def test_a_silent_client_at_the_listener(detect: float, early: bool, hello_timeout: float,
                                         want: bytes, decided: list[str], within: float) -> None:
    async def run() -> None:
        app, app_port = await _serve(lambda: Echo(greet=b"220 smtp ready\r\n"))
        li, seen = _listener(detect, early, app_port, hello_timeout)
        await li.start()
        loop = asyncio.get_running_loop()
        start = loop.time()
        r, w = await asyncio.open_connection(*li.address)
        got = await asyncio.wait_for(r.readline(), 5)
        assert got == want and loop.time() - start < within
        assert seen == decided
        w.close()
        await li.stop()
        app.close()
    asyncio.run(run())
