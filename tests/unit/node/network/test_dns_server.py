"""DnsServer on 127.0.0.1 with real UDP and TCP sockets; forwarding to a real dnslib server as the upstream peer."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from dnslib import EDNS0, QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

from skiff.node.network.dnsserver import (
    DnsServer,
    Upstream,
    parse_upstream,
    resolv_conf_nameservers,
)
from skiff.node.network.dnsview import ClusterView

DEADLINE = 5.0


def build_view() -> ClusterView:
    v = ClusterView()
    v.apply("Service", {"kind": "Service", "metadata": {"namespace": "team-alpha-1", "name": "test-webapp"},
                        "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                                 "ports": [{"name": "http", "protocol": "TCP", "port": 80}]}})
    v.apply("Service", {"kind": "Service", "metadata": {"namespace": "team-alpha-1", "name": "ext"},
                        "spec": {"type": "ExternalName", "externalName": "upstream.example"}})
    v.apply("Service", {"kind": "Service", "metadata": {"namespace": "team-alpha-1", "name": "big"},
                        "spec": {"clusterIP": "None"}})
    v.apply("EndpointSlice", {
        "kind": "EndpointSlice",
        "metadata": {"namespace": "team-alpha-1", "name": "big-1",
                     "labels": {"kubernetes.io/service-name": "big"}},
        "endpoints": [{"addresses": [f"10.244.1.{i}"], "conditions": {"ready": True}}
                      for i in range(1, 101)]})
    return v


class Resolver(BaseResolver):  # type: ignore[misc]
    """The upstream peer: a zone of its own, answered by dnslib's own server."""

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).lower()
        if name == "upstream.example." and request.q.qtype == QTYPE.A:
            reply.add_answer(RR(request.q.qname, QTYPE.A, ttl=60, rdata=A("192.0.2.7")))
        elif name == "many.upstream.example.":
            for i in range(60):
                reply.add_answer(RR(request.q.qname, QTYPE.A, ttl=60, rdata=A(f"192.0.2.{i + 1}")))
        else:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


@contextlib.contextmanager
def upstream_peer() -> Iterator[str]:
    quiet = DNSLogger(logf=lambda *_: None)
    # dnslib's server binds UDP and TCP separately: the TCP one takes the same number, which
    # another process may hold already (a free UDP port says nothing of TCP): try another.
    for _ in range(20):
        udp = DNSServer(Resolver(), address="127.0.0.1", port=0, logger=quiet)
        port = udp.server.server_address[1]
        try:
            tcp = DNSServer(Resolver(), address="127.0.0.1", port=port, tcp=True, logger=quiet)
            break
        except OSError:
            udp.server.server_close()
    else:
        raise RuntimeError("no port free for both UDP and TCP")
    udp.start_thread()
    tcp.start_thread()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        udp.stop()
        tcp.stop()
        udp.server.server_close()
        tcp.server.server_close()


@contextlib.contextmanager
def silent_upstream() -> Iterator[str]:
    """A real UDP socket that reads and never answers: a resolver that is down."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{s.getsockname()[1]}"
    finally:
        s.close()


@contextlib.asynccontextmanager
async def dns_server(upstreams: list[str], **kw: Any) -> AsyncIterator[DnsServer]:
    srv = DnsServer(build_view(), "127.0.0.1", 0, upstreams=upstreams,
                    apps_domain="apps.example.test", apps_ip="10.244.0.1", **kw)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


async def udp_raw(port: int, data: bytes, timeout: float = DEADLINE) -> bytes:
    loop = asyncio.get_running_loop()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
        await loop.sock_sendall(s, data)
        return await asyncio.wait_for(loop.sock_recv(s, 65535), timeout)
    finally:
        s.close()


async def udp_query(port: int, q: DNSRecord, timeout: float = DEADLINE) -> DNSRecord:
    r = DNSRecord.parse(await udp_raw(port, q.pack(), timeout))
    assert r.header.id == q.header.id
    return r


async def tcp_query(port: int, *qs: DNSRecord) -> list[DNSRecord]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        out = []
        for q in qs:
            data = q.pack()
            writer.write(struct.pack("!H", len(data)) + data)
            (n,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), DEADLINE))
            out.append(DNSRecord.parse(await reader.readexactly(n)))
        return out
    finally:
        writer.close()


def run(fn: Callable[[], Any], loop: str = "asyncio") -> None:
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(asyncio.wait_for(fn(), 30))
        return
    asyncio.run(asyncio.wait_for(fn(), 30))


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])   # `skiff up` runs on uvloop
def test_udp_in_zone_and_apps_domain(loop: str) -> None:
    async def main() -> None:
        async with dns_server([]) as srv:
            assert srv.port != 0
            r = await udp_query(srv.port, DNSRecord.question("test-webapp.team-alpha-1.svc.cluster.local"))
            assert [str(rr.rdata) for rr in r.rr] == ["10.96.0.20"]
            r = await udp_query(srv.port, DNSRecord.question("x.apps.example.test"))
            assert [str(rr.rdata) for rr in r.rr] == ["10.244.0.1"]
            r = await udp_query(srv.port, DNSRecord.question("nope.team-alpha-1.svc.cluster.local"))
            assert r.header.rcode == RCODE.NXDOMAIN
            (r,) = await tcp_query(srv.port, DNSRecord.question("x.apps.example.test"))
            assert [str(rr.rdata) for rr in r.rr] == ["10.244.0.1"]
    run(main, loop)


def test_tcp_answers_several_messages_on_one_connection() -> None:
    async def main() -> None:
        async with dns_server([]) as srv:
            rs = await tcp_query(srv.port, DNSRecord.question("test-webapp.team-alpha-1.svc.cluster.local"),
                                 DNSRecord.question("_http._tcp.test-webapp.team-alpha-1.svc.cluster.local",
                                                    "SRV"))
            assert [str(rr.rdata) for rr in rs[0].rr] == ["10.96.0.20"]
            assert [str(rr.rdata) for rr in rs[1].rr] == ["0 100 80 test-webapp.team-alpha-1.svc.cluster.local."]
    run(main)


def test_a_large_answer_is_truncated_on_udp_and_whole_on_tcp() -> None:
    async def main() -> None:
        async with dns_server([]) as srv:
            q = DNSRecord.question("big.team-alpha-1.svc.cluster.local")
            r = await udp_query(srv.port, q)
            assert r.header.tc == 1 and not r.rr
            (r,) = await tcp_query(srv.port, q)
            assert r.header.tc == 0 and len(r.rr) == 100
            q.add_ar(EDNS0(udp_len=4096))        # the client's EDNS size lifts the UDP limit
            r = await udp_query(srv.port, q)
            assert r.header.tc == 0 and len(r.rr) == 100
    run(main)


def test_garbage_gets_formerr_or_nothing_and_the_server_keeps_answering() -> None:
    async def main() -> None:
        async with dns_server([]) as srv:
            good = DNSRecord.question("test-webapp.team-alpha-1.svc.cluster.local")
            header = good.pack()[:12]
            r = DNSRecord.parse(await udp_raw(srv.port, header + b"\x07garbage\xff\xff\xff"))
            assert r.header.rcode == RCODE.FORMERR and r.header.id == good.header.id
            loop = asyncio.get_running_loop()
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            s.connect(("127.0.0.1", srv.port))
            # Too short for a header, a response, a compression loop, 64 KiB of noise, two
            # questions: none ends the endpoint.
            loop_name = header[:4] + b"\x00\x01\x00\x00\x00\x00\x00\x00" + b"\xc0\x0c\x00\x01\x00\x01"
            two = good.pack()[:4] + b"\x00\x02" + good.pack()[6:] + good.pack()[12:]
            resp = bytearray(good.pack())
            resp[2] |= 0x80
            for junk in (b"\x00", bytes(resp), loop_name, b"\xff" * 65000, two, b"\x00" * 12):
                await loop.sock_sendall(s, junk)
            s.close()
            r = await udp_query(srv.port, good)
            assert [str(rr.rdata) for rr in r.rr] == ["10.96.0.20"]
            # TCP: a garbage message gets FORMERR on its connection; an oversized length
            # closes it; the server still answers a fresh connection.
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            writer.write(struct.pack("!H", 15) + header + b"\x07ab")
            (n,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), DEADLINE))
            assert DNSRecord.parse(await reader.readexactly(n)).header.rcode == RCODE.FORMERR
            writer.write(struct.pack("!H", 60000) + b"x" * 100)
            assert await asyncio.wait_for(reader.read(), DEADLINE) == b""
            writer.close()
            (r,) = await tcp_query(srv.port, good)
            assert [str(rr.rdata) for rr in r.rr] == ["10.96.0.20"]
    run(main)


def test_tcp_connections_are_capped_and_idle_ones_closed() -> None:
    async def main() -> None:
        async with dns_server([], max_tcp_connections=2, tcp_idle=0.3) as srv:
            conns = [await asyncio.open_connection("127.0.0.1", srv.port) for _ in range(2)]
            # Wait until the server holds both, then a third is closed at once.
            loop = asyncio.get_running_loop()
            end = loop.time() + DEADLINE
            while srv.tcp_connections < 2 and loop.time() < end:
                await asyncio.sleep(0.01)
            r3, w3 = await asyncio.open_connection("127.0.0.1", srv.port)
            assert await asyncio.wait_for(r3.read(), DEADLINE) == b""
            w3.close()
            # The idle ones are closed by the server (EOF well before our deadline).
            for r, w in conns:
                assert await asyncio.wait_for(r.read(), DEADLINE) == b""
                w.close()
            (r,) = await tcp_query(srv.port, DNSRecord.question("test-webapp.team-alpha-1.svc.cluster.local"))
            assert r.rr
    run(main)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_names_not_ours_are_forwarded_to_the_upstream(loop: str) -> None:
    async def main() -> None:
        with upstream_peer() as up:
            async with dns_server([up]) as srv:
                r = await udp_query(srv.port, DNSRecord.question("upstream.example"))
                assert r.header.rcode == RCODE.NOERROR
                assert [str(rr.rdata) for rr in r.rr] == ["192.0.2.7"]
                r = await udp_query(srv.port, DNSRecord.question("nothing.example"))
                assert r.header.rcode == RCODE.NXDOMAIN
                (r,) = await tcp_query(srv.port, DNSRecord.question("upstream.example"))
                assert [str(rr.rdata) for rr in r.rr] == ["192.0.2.7"]
                # Too big for the upstream's UDP: a TCP client gets it all (asked again over TCP).
                (r,) = await tcp_query(srv.port, DNSRecord.question("many.upstream.example"))
                assert len(r.rr) == 60
                # An ExternalName's target outside the zone is resolved upstream and appended.
                r = await udp_query(srv.port, DNSRecord.question("ext.team-alpha-1.svc.cluster.local"))
                assert [(QTYPE[rr.rtype], str(rr.rdata)) for rr in r.rr] == [
                    ("CNAME", "upstream.example."), ("A", "192.0.2.7")]
                assert srv.forwards_in_flight == 0
    run(main, loop)


def test_a_silent_upstream_is_servfail_within_the_deadline() -> None:
    async def main() -> None:
        with silent_upstream() as up:
            async with dns_server([up], forward_timeout=0.5) as srv:
                # Our wait is bounded by the deadline plus a margin: a hang fails here.
                r = await udp_query(srv.port, DNSRecord.question("example.org"), timeout=2.5)
                assert r.header.rcode == RCODE.SERVFAIL
                (r,) = await tcp_query(srv.port, DNSRecord.question("example.org"))
                assert r.header.rcode == RCODE.SERVFAIL
    run(main)


def test_forwards_beyond_the_bound_are_servfail_at_once() -> None:
    async def main() -> None:
        with silent_upstream() as up:
            async with dns_server([up], max_forwards=1, forward_timeout=3.0) as srv:
                first = asyncio.ensure_future(udp_query(srv.port, DNSRecord.question("a.example"),
                                                        timeout=DEADLINE))
                loop = asyncio.get_running_loop()
                end = loop.time() + DEADLINE
                while srv.forwards_in_flight < 1 and loop.time() < end:
                    await asyncio.sleep(0.01)
                assert srv.forwards_in_flight == 1
                # Answered while the first still waits on the upstream.
                r = await udp_query(srv.port, DNSRecord.question("b.example"), timeout=2.0)
                assert r.header.rcode == RCODE.SERVFAIL
                assert not first.done()
                assert (await first).header.rcode == RCODE.SERVFAIL
    run(main)


def test_no_upstream_is_servfail() -> None:
    async def main() -> None:
        async with dns_server([]) as srv:
            r = await udp_query(srv.port, DNSRecord.question("example.org"))
            assert r.header.rcode == RCODE.SERVFAIL
    run(main)


def test_upstream_and_resolv_conf_parsing() -> None:
    assert parse_upstream("10.0.0.1") == Upstream("10.0.0.1", 53)
    assert parse_upstream("127.0.0.1:5353") == Upstream("127.0.0.1", 5353)
    assert parse_upstream("::1") == Upstream("::1", 53)
    assert parse_upstream("[::1]:5353") == Upstream("::1", 5353)
    with pytest.raises(ValueError):
        parse_upstream("not-an-address")
    text = "# comment\nsearch example\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\n" \
           "nameserver bogus\nnameserver 1.1.1.1\nnameserver 8.8.8.8\noptions edns0\n"
    assert resolv_conf_nameservers(text) == ["127.0.0.53", "fe80::1", "1.1.1.1"]


def test_memoised_replies_carry_each_querys_id_and_follow_the_view() -> None:
    async def main() -> None:
        async with dns_server([]) as srv:
            name = "test-webapp.team-alpha-1.svc.cluster.local"
            for _ in range(3):      # udp_query checks each reply's ID against its query's
                r = await udp_query(srv.port, DNSRecord.question(name))
                assert [str(rr.rdata) for rr in r.rr] == ["10.96.0.20"]
            srv.view.apply("Service", {"metadata": {"namespace": "team-alpha-1", "name": "test-webapp"},
                                       "spec": {"clusterIP": "10.96.0.21"}})
            r = await udp_query(srv.port, DNSRecord.question(name))
            assert [str(rr.rdata) for rr in r.rr] == ["10.96.0.21"]
            srv.view.delete("Service", {"metadata": {"namespace": "team-alpha-1", "name": "test-webapp"}})
            (r,) = await tcp_query(srv.port, DNSRecord.question(name))
            assert r.header.rcode == RCODE.NXDOMAIN
    run(main)
