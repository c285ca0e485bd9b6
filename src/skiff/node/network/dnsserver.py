"""DnsServer: cluster DNS on UDP and TCP, answering from a ClusterView and forwarding the rest.

The shell around dns.py's answer(): it parses each message (dnslib), answers
names in the cluster zone and the apps domain at once, and forwards every
other name, verbatim, to the upstream resolvers (by default the nameservers
of the host's /etc/resolv.conf, as CoreDNS's `forward . /etc/resolv.conf`)
over UDP from a fresh socket per query, with a 2 s deadline (SERVFAIL after
it). An ExternalName CNAME that leaves the zone is resolved upstream and
appended, as CoreDNS does. Every resource is bounded: UDP replies fit the
client's size (512, or its EDNS size) or come back truncated with TC; at most
256 forwards are in flight (beyond them SERVFAIL at once); TCP connections are
capped, idle-timed and answered one message at a time (RFC 7766 framing);
messages over 4 KiB are refused. No input ends the server: a message that
does not parse gets FORMERR (or nothing, when even its header is missing).
In-zone replies are memoised by the message's bytes after its ID until the
view changes (at most 2,048 small ones): that is what keeps the in-zone p99
far under 1 ms (benchmarks/dns/run.py).
Neighbours: dns.py (answers), dnsview.py (the view and its watch), node/network
(the bridge address it listens on).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
from dataclasses import dataclass
from typing import cast

from dnslib import QTYPE, RCODE, DNSRecord

from skiff.node.network.dns import answer, external_target, failure, formerr, pack_udp, udp_limit
from skiff.node.network.dnsview import ClusterView

log = logging.getLogger("skiff.dns")

FORWARD_TIMEOUT = 2.0
MAX_FORWARDS = 256
MAX_TCP_CONNECTIONS = 128
TCP_IDLE = 10.0                 # RFC 7766 suggests seconds, not minutes
MAX_QUERY = 4096                # a query is a name and an OPT record: far below this
MAX_REPLY = 65535               # what an upstream may send back (TCP framing's limit)
CACHE_ENTRIES = 2048            # memoised in-zone replies; small ones only (below), so <= ~10 MiB
CACHE_MAX_KEY = 512
CACHE_MAX_REPLY = 4096


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int = 53


def parse_upstream(text: str) -> Upstream:
    """'1.2.3.4', '1.2.3.4:5353', '::1' or '[::1]:5353'."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return Upstream(str(ipaddress.ip_address(host)), int(rest[1:]) if rest.startswith(":") else 53)
    if text.count(":") == 1:
        host, port = text.split(":")
        return Upstream(str(ipaddress.ip_address(host)), int(port))
    return Upstream(str(ipaddress.ip_address(text)))


def resolv_conf_nameservers(text: str) -> list[str]:
    """The `nameserver` lines of a resolv.conf (glibc reads at most 3)."""
    out: list[str] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            with contextlib.suppress(ValueError):
                out.append(str(ipaddress.ip_address(parts[1].split("%")[0])))
    return out[:3]


class _UdpServer(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport: no isinstance.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self.server._on_datagram(data, addr)
        except Exception:               # never let one datagram end the endpoint
            log.exception("dns: datagram from %s", addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("dns: udp error %s", exc)


class _UpstreamReply(asyncio.DatagramProtocol):
    """One forwarded query's socket: the first datagram that answers its ID wins."""

    def __init__(self, ident: bytes) -> None:
        self.ident = ident
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) >= 12 and data[:2] == self.ident and data[2] & 0x80 and not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


class DnsServer:
    """Cluster DNS on host:port (UDP and TCP). `port` is the bound port once started."""

    def __init__(self, view: ClusterView, host: str = "127.0.0.1", port: int = 53,
                 upstreams: list[str] | None = None, zone: str = "cluster.local",
                 apps_domain: str | None = None, apps_ip: str | None = None,
                 forward_timeout: float = FORWARD_TIMEOUT, max_forwards: int = MAX_FORWARDS,
                 max_tcp_connections: int = MAX_TCP_CONNECTIONS, tcp_idle: float = TCP_IDLE,
                 cache_entries: int = CACHE_ENTRIES) -> None:
        self.view = view
        self.host = host
        self.port = port
        self.zone = zone
        self.apps_domain = apps_domain
        self.apps_ip = apps_ip
        self._upstream_texts = upstreams
        self.upstreams: list[Upstream] = []
        self.forward_timeout = forward_timeout
        self.max_forwards = max_forwards
        self.max_tcp_connections = max_tcp_connections
        self.tcp_idle = tcp_idle
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._forwards = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._conns: set[asyncio.StreamWriter] = set()
        # answer() is a pure function of the message after its ID and of the view, so an
        # in-zone reply is memoised by those bytes (and the transport, for truncation) until
        # the view changes: a hit costs a dict lookup instead of a parse, answer and pack.
        self.cache_entries = cache_entries
        self._cache: dict[tuple[bool, bytes], bytes] = {}
        self._cache_generation = -1

    @property
    def forwards_in_flight(self) -> int:
        return self._forwards

    @property
    def tcp_connections(self) -> int:
        return len(self._conns)

    # --- life ------------------------------------------------------------------------------
    async def start(self) -> None:
        texts = self._upstream_texts
        if texts is None:
            try:
                with open("/etc/resolv.conf") as f:
                    texts = resolv_conf_nameservers(f.read())
            except OSError:
                texts = []
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # UDP first (port 0 picks one), then TCP on the same number; a clash retries afresh.
        for attempt in range(8):
            udp, _ = await loop.create_datagram_endpoint(lambda: _UdpServer(self),
                                                         local_addr=(self.host, self.port),
                                                         family=family)
            port = udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._on_tcp, self.host, port,
                                                       family=family, reuse_address=True,
                                                       limit=MAX_QUERY + 2)
            except OSError:
                udp.close()
                if self.port != 0 or attempt == 7:
                    raise
                continue
            self._udp, self.port = udp, port
            break
        me = {(self.host, self.port)}
        self.upstreams = [u for u in map(parse_upstream, texts) if (u.host, u.port) not in me]

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
        for w in list(self._conns):
            w.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()
            self._tcp = None

    # --- UDP -------------------------------------------------------------------------------
    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) > MAX_QUERY:
            return
        request, reply, out = self._decide(data, tcp=False)
        if out is not None:
            if self._udp is not None:
                self._udp.sendto(out, addr)
            return
        if request is None:
            return
        task = asyncio.get_running_loop().create_task(self._udp_slow(request, reply, data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _udp_slow(self, request: DNSRecord, reply: DNSRecord | None, data: bytes,
                        addr: tuple[str, int]) -> None:
        out = await self._slow(request, reply, data, tcp=False)
        if self._udp is not None:
            self._udp.sendto(out, addr)

    # --- the decision ----------------------------------------------------------------------
    def _decide(self, data: bytes, tcp: bool
                ) -> tuple[DNSRecord | None, DNSRecord | None, bytes | None]:
        """(_, _, bytes): the reply, at once (the name is ours, or the message is bad).
        (request, reply or None, None): the slow path (forward, or chase a CNAME upstream).
        (None, None, None): drop it."""
        if self._cache_generation != self.view.generation:
            self._cache.clear()
            self._cache_generation = self.view.generation
        key = (tcp, bytes(data[2:]))
        hit = self._cache.get(key)
        if hit is not None:
            return None, None, bytes(data[:2]) + hit
        try:
            request = DNSRecord.parse(data)
        except Exception:
            return None, None, formerr(data)
        if request.header.qr:
            return None, None, None
        limit = MAX_REPLY if tcp else udp_limit(request)
        try:
            reply = answer(request, self.view, self.zone, self.apps_domain, self.apps_ip)
        except Exception:
            log.exception("dns: answering %s", request.q.qname if request.questions else "?")
            return request, None, pack_udp(failure(request, RCODE.SERVFAIL), limit)
        if reply is None or external_target(request, reply, self.zone, self.apps_domain):
            return request, reply, None
        out = pack_udp(reply, limit)
        if self.cache_entries > 0 and len(data) <= CACHE_MAX_KEY and len(out) <= CACHE_MAX_REPLY:
            if len(self._cache) >= self.cache_entries:
                del self._cache[next(iter(self._cache))]    # the oldest entry
            self._cache[key] = out[2:]
        return request, reply, out

    async def _slow(self, request: DNSRecord, reply: DNSRecord | None, data: bytes,
                    tcp: bool) -> bytes:
        """Forward (or chase) within the in-flight bound; SERVFAIL beyond it or on failure."""
        limit = MAX_REPLY if tcp else udp_limit(request)
        if self._forwards >= self.max_forwards:
            return pack_udp(failure(request, RCODE.SERVFAIL), limit)
        self._forwards += 1
        try:
            if reply is None:
                out = await self._forward(data, tcp)
                return out if out is not None else pack_udp(failure(request, RCODE.SERVFAIL), limit)
            target = external_target(request, reply, self.zone, self.apps_domain)
            if target is not None:
                q = DNSRecord.question(target, QTYPE[request.q.qtype])
                got = await self._forward(q.pack(), tcp)
                if got is not None:
                    with contextlib.suppress(Exception):
                        more = DNSRecord.parse(got)
                        for rr in more.rr:
                            reply.add_answer(rr)
                        if more.header.rcode == RCODE.NXDOMAIN:
                            reply.header.rcode = RCODE.NXDOMAIN
            return pack_udp(reply, limit)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("dns: forwarding")
            return pack_udp(failure(request, RCODE.SERVFAIL), limit)
        finally:
            self._forwards -= 1

    async def _forward(self, data: bytes, tcp: bool) -> bytes | None:
        """The upstreams in order, sharing one deadline; a UDP reply with TC is asked again
        over TCP when the client came over TCP (a UDP client asks us again itself)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.forward_timeout
        for i, up in enumerate(self.upstreams):
            left = deadline - loop.time()
            if left <= 0:
                break
            budget = left / (len(self.upstreams) - i)
            try:
                async with asyncio.timeout(budget):
                    got = await self._ask_udp(up, data)
                    if tcp and len(got) > 2 and got[2] & 0x02:
                        got = await self._ask_tcp(up, data)
                    return got
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as e:
                log.debug("dns: upstream %s:%d: %r", up.host, up.port, e)
        return None

    async def _ask_udp(self, up: Upstream, data: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(
            lambda: _UpstreamReply(data[:2]), remote_addr=(up.host, up.port))
        try:
            transport.sendto(data)
            return await proto.reply
        finally:
            transport.close()

    async def _ask_tcp(self, up: Upstream, data: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(up.host, up.port, limit=MAX_REPLY + 2)
        try:
            writer.write(struct.pack("!H", len(data)) + data)
            await writer.drain()
            (n,) = struct.unpack("!H", await reader.readexactly(2))
            return await reader.readexactly(n)
        finally:
            writer.close()

    # --- TCP -------------------------------------------------------------------------------
    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._conns) >= self.max_tcp_connections:
            writer.close()
            return
        self._conns.add(writer)
        try:
            while True:
                async with asyncio.timeout(self.tcp_idle):
                    (n,) = struct.unpack("!H", await reader.readexactly(2))
                    if n == 0 or n > MAX_QUERY:
                        return
                    data = await reader.readexactly(n)
                out = await self._tcp_message(data)
                if out is None:
                    return
                writer.write(struct.pack("!H", len(out)) + out)
                async with asyncio.timeout(self.tcp_idle):
                    await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            log.exception("dns: tcp connection")
        finally:
            self._conns.discard(writer)
            writer.close()

    async def _tcp_message(self, data: bytes) -> bytes | None:
        request, reply, out = self._decide(data, tcp=True)
        if out is not None or request is None:
            return out
        return await self._slow(request, reply, data, tcp=True)
