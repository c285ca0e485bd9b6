"""dataplane/proxy/http1.py through in-memory transports: request and response framing, hop-by-hop
headers, keep-alive pooling, HEAD, 100-continue, pipelining, retries and failures. No sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from skiff.dataplane.proxy.http1 import (
    Forward,
    H1ServerProtocol,
    ProxyConfig,
    Reply,
    RequestHead,
    UpstreamConnection,
    UpstreamPool,
)


class FakeTransport:
    def __init__(self, peer: tuple[str, int] = ("10.0.0.1", 5555)) -> None:
        self.buf = bytearray()
        self.closed = False
        self.paused = False
        self.peer = peer

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.buf += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def take(self) -> bytes:
        b = bytes(self.buf)
        self.buf.clear()
        return b


class Rig:
    """A server protocol wired to a pool whose connections are fake upstreams."""

    def __init__(self, dispatch: Callable[[RequestHead], Forward | Reply] | None = None,
                 fail_connect: bool = False) -> None:
        self.heads: list[RequestHead] = []
        self.pool = UpstreamPool()
        self.ups: list[tuple[UpstreamConnection, FakeTransport]] = []
        self.fail_connect = fail_connect

        async def connect(key: tuple[str, int]) -> UpstreamConnection:
            if self.fail_connect:
                raise ConnectionRefusedError(111, "refused")
            c = UpstreamConnection(self.pool, key)
            t = FakeTransport()
            c.connection_made(t)  # type: ignore[arg-type]
            self.ups.append((c, t))
            return c
        self.pool.connect = connect  # type: ignore[method-assign]

        def default_dispatch(h: RequestHead) -> Forward | Reply:
            self.heads.append(h)
            if h.host == b"missing":
                return Reply(404)
            return Forward(("127.0.0.1", 9), b"x-added: 1\r\n")
        self.cfg = ProxyConfig(dispatch or default_dispatch, self.pool, server=b"istio-envoy",
                               service_time=True, strip_prefix=b"x-envoy-")
        self.proto = H1ServerProtocol(self.cfg)
        self.down = FakeTransport()
        self.proto.connection_made(self.down)  # type: ignore[arg-type]

    def send(self, data: bytes) -> None:
        self.proto.data_received(data)

    def upstream(self, i: int = -1) -> tuple[UpstreamConnection, FakeTransport]:
        return self.ups[i]

    def lose_upstream(self, i: int = -1) -> None:
        c, t = self.ups[i]
        t.closed = True
        c.connection_lost(None)


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro())  # type: ignore[arg-type]


async def tick() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


HELLO = (b"HTTP/1.1 200 OK\r\nDate: x\r\nContent-Length: 17\r\nContent-Type: text/plain\r\n\r\n"
         b"Hello OpenShift!\n")


def split_head(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, v = line.split(": ", 1)
        headers[k.lower()] = v
    return lines[0], headers, body


def test_get_is_forwarded_with_hop_by_hop_dropped_and_response_decorated() -> None:
    async def t() -> None:
        r = Rig()
        r.send(b"GET /x?y=1 HTTP/1.1\r\nHost: Hello.Example.com\r\nConnection: keep-alive, TE\r\n"
               b"Keep-Alive: 5\r\nTE: trailers\r\nProxy-Connection: x\r\nX-Envoy-Internal: true\r\n"
               b"User-Agent: curl\r\nAccept: */*\r\n\r\n")
        await tick()
        c, ut = r.upstream()
        line, h, body = split_head(ut.take())
        assert line == "GET /x?y=1 HTTP/1.1"
        assert h == {"host": "Hello.Example.com", "user-agent": "curl", "accept": "*/*",
                     "x-added": "1"}
        assert body == b""
        c.data_received(HELLO)
        line, h, body = split_head(r.down.take())
        assert line == "HTTP/1.1 200 OK"
        assert h["server"] == "istio-envoy" and h["x-envoy-upstream-service-time"].isdigit()
        assert h["content-length"] == "17" and body == b"Hello OpenShift!\n"
        assert "connection" not in h and not r.down.closed
        # keep-alive: the next request reuses the pooled upstream connection
        r.send(b"GET / HTTP/1.1\r\nHost: hello\r\n\r\n")
        await tick()
        assert len(r.ups) == 1 and ut.take().startswith(b"GET / HTTP/1.1\r\nhost: hello\r\n")
        c.data_received(HELLO)
        assert r.down.take().endswith(b"Hello OpenShift!\n")
    run(t)


@pytest.mark.parametrize("chunks", [
    [b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\nHello ", b"OpenShift!\n"],       # fast, split
    [b"HTTP/1.1 200 OK\r\nContent-", b"Length: 17\r\n\r\nHello OpenShift!\n"],       # head split
    [b"HTTP/1.1 200 OK\r\nServer: gunicorn\r\nContent-Length: 17\r\n\r\nHello OpenShift!\n"],
])
def test_content_length_responses_however_they_arrive(chunks: list[bytes]) -> None:
    async def t() -> None:
        r = Rig()
        r.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        await tick()
        c, _ = r.upstream()
        for ch in chunks:
            c.data_received(ch)
        _, h, body = split_head(r.down.take())
        assert body == b"Hello OpenShift!\n" and h["server"] == "istio-envoy"
        assert c in r.pool.idle[("127.0.0.1", 9)]          # back in the pool, reusable
    run(t)


def test_chunked_upstream_response_is_rechunked_for_http11_and_close_delimited_for_http10() -> None:
    async def t() -> None:
        resp = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nHello\r\n"
                b"6\r\n world\r\n0\r\n\r\n")
        r = Rig()
        r.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        await tick()
        r.upstream()[0].data_received(resp)
        _, h, body = split_head(r.down.take())
        assert h["transfer-encoding"] == "chunked"
        assert body == b"5\r\nHello\r\n6\r\n world\r\n0\r\n\r\n"
        r10 = Rig()
        r10.send(b"GET / HTTP/1.0\r\nHost: h\r\n\r\n")
        await tick()
        r10.upstream()[0].data_received(resp)
        _, h, body = split_head(r10.down.take())
        assert "transfer-encoding" not in h and h["connection"] == "close"
        assert body == b"Hello world" and r10.down.closed
    run(t)


def test_close_delimited_upstream_body_ends_with_the_connection() -> None:
    async def t() -> None:
        r = Rig()
        r.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        await tick()
        c, _ = r.upstream()
        c.data_received(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart one ")
        c.data_received(b"part two")
        r.lose_upstream()
        _, h, body = split_head(r.down.take())
        assert h["transfer-encoding"] == "chunked"
        assert body == b"9\r\npart one \r\n8\r\npart two\r\n0\r\n\r\n"
        assert not r.down.closed
    run(t)


def test_request_bodies_content_length_and_chunked() -> None:
    async def t() -> None:
        r = Rig()
        r.send(b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello")
        r.send(b" world")
        await tick()
        c, ut = r.upstream()
        _, h, body = split_head(ut.take())
        assert h["content-length"] == "11" and body == b"hello world"
        c.data_received(HELLO)
        r.down.take()
        r.send(b"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        r.send(b"2\r\nde\r\n0\r\n\r\n")
        await tick()
        _, h, body = split_head(ut.take())
        assert h["transfer-encoding"] == "chunked" and "content-length" not in h
        assert body == b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    run(t)


def test_expect_100_continue_is_answered_by_the_proxy() -> None:
    async def t() -> None:
        r = Rig()
        r.send(b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        assert r.down.take() == b"HTTP/1.1 100 Continue\r\n\r\n"
        r.send(b"abc")
        await tick()
        _, h, body = split_head(r.upstream()[1].take())
        assert "expect" not in h and body == b"abc"
        c = r.upstream()[0]
        c.data_received(b"HTTP/1.1 100 Continue\r\n\r\n" + HELLO)  # an upstream 1xx is absorbed
        line, _, _ = split_head(r.down.take())
        assert line == "HTTP/1.1 200 OK"
    run(t)


def test_head_response_has_no_body_and_the_connection_stays_usable() -> None:
    async def t() -> None:
        r = Rig()
        r.send(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
        await tick()
        c, ut = r.upstream()
        c.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n")
        _, h, body = split_head(r.down.take())
        assert h["content-length"] == "17" and body == b""
        r.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        await tick()
        assert len(r.ups) == 1
        c.data_received(HELLO)
        assert r.down.take().endswith(b"\r\n\r\nHello OpenShift!\n")
    run(t)


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_statuses(status: int) -> None:
    async def t() -> None:
        r = Rig()
        r.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        await tick()
        r.upstream()[0].data_received(b"HTTP/1.1 %d X\r\nETag: 1\r\n\r\n" % status)
        line, h, body = split_head(r.down.take())
        assert line.startswith(f"HTTP/1.1 {status} ") and body == b""
        assert "transfer-encoding" not in h
    run(t)


def test_pipelined_requests_are_answered_in_order() -> None:
    async def t() -> None:
        r = Rig()
        r.send(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: missing\r\n\r\n"
               b"GET /3 HTTP/1.1\r\nHost: h\r\n\r\n")
        await tick()
        assert [h.target for h in r.heads] == [b"/1"]          # one at a time
        c, ut = r.upstream()
        assert ut.take().startswith(b"GET /1 ")
        c.data_received(HELLO)
        await tick()
        out = r.down.take()
        assert out.index(b"200 OK") < out.index(b"404 Not Found")
        assert [h.target for h in r.heads] == [b"/1", b"/2", b"/3"]
        assert ut.take().startswith(b"GET /3 ")
        c.data_received(HELLO)
        assert r.down.take().endswith(b"Hello OpenShift!\n")
    run(t)


def test_local_reply_format() -> None:
    async def t() -> None:
        r = Rig()
        r.send(b"GET / HTTP/1.1\r\nHost: missing\r\n\r\n")
        line, h, body = split_head(r.down.take())
        assert line == "HTTP/1.1 404 Not Found"
        assert h["content-length"] == "0" and h["server"] == "istio-envoy" and "date" in h
        assert body == b"" and not r.down.closed
        r.send(b"GET / HTTP/1.1\r\nHost: missing\r\nConnection: close\r\n\r\n")
        _, h, _ = split_head(r.down.take())
        assert h["connection"] == "close" and r.down.closed
    run(t)


def test_malformed_request_is_400_and_closed() -> None:
    async def t() -> None:
        r = Rig()
        r.send(b"NOT HTTP AT ALL\r\n\r\n")
        assert r.down.take().startswith(b"HTTP/1.1 400 Bad Request\r\n") and r.down.closed
    run(t)


def test_a_dead_pooled_connection_is_retried_once_on_a_new_one() -> None:
    async def t() -> None:
        r = Rig()
        r.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        await tick()
        r.upstream()[0].data_received(HELLO)
        r.down.take()
        r.send(b"GET /again HTTP/1.1\r\nHost: h\r\n\r\n")
        await tick()
        r.lose_upstream(0)                      # the upstream had closed its idle connection
        await tick()
        assert len(r.ups) == 2
        assert r.ups[1][1].take().startswith(b"GET /again ")
        r.ups[1][0].data_received(HELLO)
        assert r.down.take().endswith(b"Hello OpenShift!\n")
    run(t)


def test_connect_failure_is_503() -> None:
    async def t() -> None:
        r = Rig(fail_connect=True)
        r.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        await tick()
        line, _, body = split_head(r.down.take())
        assert line == "HTTP/1.1 503 Service Unavailable"
        assert body.startswith(b"upstream connect error or disconnect/reset before headers")
    run(t)


def test_upstream_lost_mid_body_closes_the_client() -> None:
    async def t() -> None:
        r = Rig()
        r.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        await tick()
        r.upstream()[0].data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        r.lose_upstream()
        assert r.down.closed
    run(t)


def test_client_gone_mid_exchange_drops_the_upstream_connection() -> None:
    async def t() -> None:
        r = Rig()
        r.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        await tick()
        c, ut = r.upstream()
        r.proto.connection_lost(None)
        assert ut.closed and c.exchange is None
        assert c not in r.pool.idle.get(("127.0.0.1", 9), [])
    run(t)


def test_upstream_connection_close_is_not_pooled() -> None:
    async def t() -> None:
        r = Rig()
        r.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        await tick()
        c, ut = r.upstream()
        c.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        assert r.down.take().endswith(b"\r\n\r\nok") and ut.closed
        assert not r.pool.idle.get(("127.0.0.1", 9))
    run(t)


def test_backpressure_pauses_the_upstream_read() -> None:
    async def t() -> None:
        r = Rig()
        r.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        await tick()
        c, ut = r.upstream()
        r.proto.pause_writing()
        assert ut.paused
        r.proto.resume_writing()
        assert not ut.paused
    run(t)


def test_versions_of_pipelined_heads_in_one_read() -> None:
    """The version of a head that starts a read is taken from its request line; any other
    head's from the parser: an HTTP/1.0 request behind an HTTP/1.1 one in the same read is
    still answered as HTTP/1.0 (keep-alive said, chunked never used)."""
    async def t() -> None:
        r = Rig()
        r.send(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
               b"GET /2 HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n")
        await tick()
        c, ut = r.upstream()
        c.data_received(HELLO)
        await tick()
        c.data_received(HELLO)
        assert [h.version for h in r.heads] == ["1.1", "1.0"]
        out = r.down.take()
        first, second = out.split(b"Hello OpenShift!\n")[:2]
        assert b"connection: keep-alive" not in first
        assert b"connection: keep-alive" in second
        r.send(b"GET /3 HTTP/1.0\r\nHost: h\r\n\r\n")           # starts a read: not 1.1
        await tick()
        c.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        assert r.heads[-1].version == "1.0"
        line, h, body = split_head(r.down.take())
        assert "transfer-encoding" not in h and body == b"abc" and r.down.closed
    run(t)


def test_a_head_split_over_reads_keeps_the_version_of_its_first_read() -> None:
    async def t() -> None:
        r = Rig()
        r.send(b"GET / HTTP/1.0\r\nHo")
        r.send(b"st: h\r\n\r\n")
        await tick()
        assert r.heads[0].version == "1.0" and not r.heads[0].keep_alive
        r2 = Rig()
        r2.send(b"GET / HT")
        r2.send(b"TP/1.1\r\nHost: h\r\n\r\n")
        await tick()
        assert r2.heads[0].version == "1.1" and r2.heads[0].keep_alive
    run(t)


def test_the_fast_path_remembers_a_head_and_notices_a_new_one() -> None:
    """A response head the same as the last one on the connection is recognised by comparing
    bytes; a different one (another length, a header to rewrite) is judged afresh."""
    async def t() -> None:
        r = Rig()
        c = None
        for body in (b"one", b"two", b"three!", b"four"):
            r.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            await tick()
            c, _ = r.upstream()
            c.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            line, h, got = split_head(r.down.take())
            assert got == body and h["content-length"] == str(len(body))
        assert c is not None and len(r.ups) == 1
        r.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        await tick()
        c.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nfive")
        line, h, got = split_head(r.down.take())
        assert got == b"five" and "connection" not in h       # went through the parser
        r.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        await tick()
        c2, _ = r.upstream()
        c2.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")   # body comes later
        c2.data_received(b"six!")
        assert r.down.take().endswith(b"\r\n\r\nsix!")
    run(t)


def test_a_cluster_remembers_its_pool_slot_per_endpoint_and_pool() -> None:
    from skiff.dataplane.proxy.cluster import Cluster, Origin, UpstreamTlsContext

    async def t() -> None:
        cluster = Cluster(name="c", tls=UpstreamTlsContext(sni="x"), origin=Origin("/run/netns/a"))
        keys: list[Any] = []
        for _ in range(2):
            pool = UpstreamPool()

            async def connect(key: Any, timeout: float | None = None,
                              pool: UpstreamPool = pool) -> UpstreamConnection:
                keys.append(key)
                c = UpstreamConnection(pool, key)
                c.connection_made(FakeTransport())  # type: ignore[arg-type]
                return c
            pool.connect = connect  # type: ignore[method-assign]
            cfg = ProxyConfig(lambda h: Forward(("10.0.0.9", 8080), cluster=cluster), pool)
            proto = H1ServerProtocol(cfg)
            down = FakeTransport()
            proto.connection_made(down)  # type: ignore[arg-type]
            for _ in range(3):
                proto.data_received(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
                await tick()
                up = next(iter(pool.live))
                up.data_received(HELLO)
                assert down.take().endswith(b"Hello OpenShift!\n")
            assert len(pool.live) == 1                   # one connection, reused
            assert pool.idle[((("10.0.0.9", 8080)), cluster.tls, cluster.origin)] == [up]
        assert keys == [(("10.0.0.9", 8080), cluster.tls, cluster.origin)] * 2
    run(t)


@pytest.mark.parametrize("server_lines", [
    b"Server: gunicorn\r\n",
    b"server: envoy\r\nSERVER: twice\r\n",
    b"Server:\r\n",
])
def test_an_upstream_server_header_is_replaced_by_the_proxys(server_lines: bytes) -> None:
    """Envoy overwrites Server: whatever the upstream said, the client sees the proxy's, once,
    with the rest of the response as it came (a repeated head too)."""
    async def t() -> None:
        r = Rig()
        for _ in range(3):
            r.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            await tick()
            c, _ = r.upstream()
            c.data_received(b"HTTP/1.1 200 OK\r\nDate: x\r\n" + server_lines +
                            b"Content-Length: 5\r\nX-App: 1\r\n\r\nhello")
            raw = r.down.take()
            line, h, body = split_head(raw)
            assert line == "HTTP/1.1 200 OK" and body == b"hello"
            assert raw.lower().count(b"\r\nserver:") == 1 and h["server"] == "istio-envoy"
            assert h["x-app"] == "1" and h["date"] == "x" and h["content-length"] == "5"
        assert len(r.ups) == 1
    run(t)


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\nServer : spaced\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nServer: a\r\n folded\r\nContent-Length: 5\r\n\r\n",
])
def test_odd_server_lines_are_left_to_the_parser(head: bytes) -> None:
    """A space before the colon, or a folded line: not for the fast path; llhttp refuses the
    response and the upstream connection is closed (as before the fast path knew Server)."""
    async def t() -> None:
        r = Rig()
        r.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        await tick()
        c, ut = r.upstream()
        c.data_received(head + b"hello")
        await tick()
        assert ut.closed and b"200 OK" not in r.down.take()
    run(t)
