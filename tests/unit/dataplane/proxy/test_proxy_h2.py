"""dataplane/proxy/h2.py: an in-memory h2 client talks to H2ServerProtocol, whose upstream is a fake
HTTP/1.1 connection: headers both ways, request bodies, local replies, flow control. No sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import h2.config
import h2.connection
import h2.events

from skiff.dataplane.proxy.h2 import H2ServerProtocol
from skiff.dataplane.proxy.http1 import (
    Forward,
    ProxyConfig,
    Reply,
    RequestHead,
    UpstreamConnection,
    UpstreamPool,
)


class FakeTransport:
    def __init__(self) -> None:
        self.buf = bytearray()
        self.closed = False
        self.paused = False

    def write(self, data: bytes) -> None:
        self.buf += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("10.0.0.7", 4444) if name == "peername" else default

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def take(self) -> bytes:
        b = bytes(self.buf)
        self.buf.clear()
        return b


class H2Rig:
    def __init__(self) -> None:
        self.pool = UpstreamPool()
        self.ups: list[tuple[UpstreamConnection, FakeTransport]] = []
        self.heads: list[RequestHead] = []

        async def connect(key: tuple[str, int]) -> UpstreamConnection:
            c = UpstreamConnection(self.pool, key)
            t = FakeTransport()
            c.connection_made(t)  # type: ignore[arg-type]
            self.ups.append((c, t))
            return c
        self.pool.connect = connect  # type: ignore[method-assign]

        def dispatch(h: RequestHead) -> Forward | Reply:
            self.heads.append(h)
            if h.host == b"missing.example.com":
                return Reply(404)
            return Forward(("127.0.0.1", 9), b"x-forwarded-proto: " + h.scheme + b"\r\n")
        self.cfg = ProxyConfig(dispatch, self.pool, server=b"istio-envoy", service_time=True)
        self.server = H2ServerProtocol(self.cfg, b"https")
        self.down = FakeTransport()
        self.server.connection_made(self.down)  # type: ignore[arg-type]
        self.client = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding=None))
        self.client.initiate_connection()
        self.events: list[Any] = []
        self.pump()

    def pump(self) -> None:
        for _ in range(5):
            out = self.client.data_to_send()
            if out:
                self.server.data_received(out)
            back = self.down.take()
            if back:
                self.events += self.client.receive_data(back)
            if not out and not back:
                return

    def request(self, method: str = "GET", path: str = "/", host: str = "hello.example.com",
                body: bytes = b"", extra: list[tuple[str, str]] | None = None) -> int:
        sid = self.client.get_next_available_stream_id()
        headers = [(":method", method), (":path", path), (":scheme", "https"),
                   (":authority", host), *(extra or [])]
        self.client.send_headers(sid, headers, end_stream=not body)
        if body:
            self.client.send_data(sid, body, end_stream=True)
        self.pump()
        return sid

    def response(self, sid: int) -> tuple[dict[bytes, bytes], bytes, bool]:
        headers: dict[bytes, bytes] = {}
        body = b""
        ended = False
        for ev in self.events:
            if getattr(ev, "stream_id", None) != sid:
                continue
            if isinstance(ev, h2.events.ResponseReceived):
                headers = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                body += ev.data
                self.client.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, h2.events.StreamEnded):
                ended = True
        return headers, body, ended


def run(fn: Any) -> None:
    async def main() -> None:
        await fn()
    asyncio.run(main())


async def tick() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def test_get_over_h2_to_an_http1_upstream() -> None:
    async def t() -> None:
        r = H2Rig()
        sid = r.request(extra=[("cookie", "a=1"), ("cookie", "b=2"), ("user-agent", "curl")])
        await tick()
        c, ut = r.ups[0]
        sent = ut.take()
        assert sent.startswith(b"GET / HTTP/1.1\r\nhost: hello.example.com\r\n")
        assert b"cookie: a=1; b=2\r\n" in sent and b"user-agent: curl\r\n" in sent
        assert b"x-forwarded-proto: https\r\n" in sent
        c.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\nConnection: keep-alive\r\n"
                        b"\r\nHello OpenShift!\n")
        r.pump()
        headers, body, ended = r.response(sid)
        assert headers[b":status"] == b"200" and headers[b"server"] == b"istio-envoy"
        assert headers[b"x-envoy-upstream-service-time"].isdigit()
        assert b"connection" not in headers
        assert body == b"Hello OpenShift!\n" and ended
        assert r.heads[0].version == "2"
    run(t)


def test_post_body_is_forwarded_chunked_without_content_length() -> None:
    async def t() -> None:
        r = H2Rig()
        r.request("POST", body=b"payload")
        await tick()
        _, ut = r.ups[0]
        sent = ut.take()
        assert b"transfer-encoding: chunked\r\n" in sent
        assert sent.endswith(b"\r\n\r\n7\r\npayload\r\n0\r\n\r\n")
    run(t)


def test_local_reply_over_h2() -> None:
    async def t() -> None:
        r = H2Rig()
        sid = r.request(host="missing.example.com")
        headers, body, ended = r.response(sid)
        assert headers[b":status"] == b"404" and headers[b"content-length"] == b"0"
        assert ended and body == b"" and not r.ups
    run(t)


def test_a_response_larger_than_the_window_waits_for_window_updates() -> None:
    async def t() -> None:
        r = H2Rig()
        sid = r.request()
        await tick()
        c, ut = r.ups[0]
        c.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + b"x" * 200_000)
        r.pump()
        got, ended, rounds = 0, False, 0
        first_round = None
        while not ended and rounds < 20:
            rounds += 1
            events, r.events = r.events, []
            for ev in events:
                if isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                    got += len(ev.data)
                    r.client.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, h2.events.StreamEnded):
                    ended = True
            if first_round is None:
                first_round = got
            r.pump()
        assert first_round == 65535          # the client's initial window, no more
        assert ended and got == 200_000 and rounds > 1
    run(t)


def test_two_concurrent_streams() -> None:
    async def t() -> None:
        r = H2Rig()
        a = r.request(path="/a")
        b = r.request(path="/b")
        await tick()
        assert len(r.ups) == 2
        for c, ut in r.ups:
            path = ut.take().split(b" ")[1]
            c.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" + path[-1:] * 2)
        r.pump()
        assert r.response(a)[1] == b"aa" and r.response(b)[1] == b"bb"
    run(t)
