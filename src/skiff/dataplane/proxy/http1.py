"""HTTP/1.1 reverse-proxy primitives on asyncio Protocols + httptools (uvloop when present).

The data plane's hot path (DESIGN.md, Conventions): a server protocol that
parses requests with httptools, asks a `dispatch` function where each one
goes, and streams it to an upstream over a keep-alive connection pool, then
streams the response back. Everything policy-like (routing, X-Forwarded-*,
request ids) is the dispatcher's: mesh/gateway/proxy.py for the ingress
gateway, later the sidecar and the activator. h2.py serves HTTP/2 clients
with the same Exchange/upstream machinery; listener.py accepts connections.

Shapes, chosen for speed (one Python object per request, header lines
formatted once, one write per direction when a message fits in one read):
- RequestHead: method, target, host, end-to-end header lines (lower-cased,
  already "name: value\\r\\n"), and the `captured` headers held back from
  pass-through (framing, hop-by-hop, and those the dispatcher rewrites).
- dispatch(head) -> Forward(endpoint, extra header lines[, cluster]) | Reply(local
  answer) | Defer(awaitable of a Forward or Reply): the activator's seam, a request
  held (its body too, by backpressure) until a pod is ready, bounded by a timeout
  (503 as Knative's activator answers) and cancelled when the client goes away.
- head.conn: the ConnContext of the request's downstream connection (peer and
  local address, SNI, ALPN, the client certificate chain and its SPIFFE ID).
- ProxyConfig.hooks: RequestHooks whose start() and end() run exactly once per
  dispatched request, however it ends (access logs, metrics, concurrency); with
  none set the per-request cost is one truthiness test.
- Forward.cluster (cluster.py): an upstream with TLS settings; the pool keys
  connections by (address, UpstreamTlsContext), verifies the peer's SAN and
  answers Envoy's 503 when the connection (or its TLS) fails or times out.
- Exchange: one request/response crossing the proxy; owns the upstream half
  (pool, retry of a reused connection that died before answering, body
  framing, flow control). H1Exchange and h2.H2Exchange write the downstream half.

Like Envoy, header names are lower-cased on both sides, hop-by-hop headers
are dropped, `Expect: 100-continue` is answered by the proxy itself, and
response framing is rebuilt (chunked toward HTTP/1.1 clients when the
upstream closes to delimit). Not done yet: protocol upgrades (WebSocket)
are proxied as plain requests and the client connection is closed after.

Limits (limits.py decides, this module enforces): a request head over
max_header_bytes or max_headers gets 431 before more of it is buffered; each
ProxyConfig runs one sweeper task while it has connections, which checks
header, idle and request timeouts against a coarse clock (`cfg.now`, one
loop.time() per sweep instead of one per request). ProxyConfig.drain() is the
graceful stop: `connection: close` on each connection's next response, idle
connections closed once idle for drain_idle, the rest closed at the deadline.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Protocol, cast

import httptools

from skiff.dataplane.proxy.cluster import (
    Cluster,
    Origin,
    UpstreamTlsContext,
    connect_failure_body,
    peer_names,
    san_matches,
    san_mismatch_reason,
)
from skiff.dataplane.proxy.limits import (
    Limits,
    Phase,
    Verdict,
    defer_timeout,
    exchange_verdict,
    head_fits,
    sweep_period,
    verdict,
)
from skiff.dataplane.proxy.tls import client_context, peer_chain, requested_sni

log = logging.getLogger("skiff.proxy")

HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                        b"te", b"trailer", b"upgrade"})
# Request headers the core interprets itself; they are never passed through as they came.
CORE_CAPTURE = HOP_BY_HOP | {b"host", b"content-length", b"expect"}
# Response headers rebuilt by the proxy (framing, hop-by-hop; Envoy overwrites Server).
_RESP_DROP = HOP_BY_HOP | {b"server"}

Endpoint = tuple[str, int]
# What the upstream pool keys connections by: a plain endpoint, or an endpoint with the TLS
# settings the connection was made with (never shared with other settings), or an endpoint
# with those settings (or none) and the Origin its socket was made in (a pod's namespace).
PoolKey = (Endpoint | tuple[Endpoint, UpstreamTlsContext]
           | tuple[Endpoint, UpstreamTlsContext | None, Origin])
# Makes an unconnected, non-blocking TCP socket for an Origin (the sidecar host supplies it).
OriginSocket = Callable[[Origin], Awaitable[socket.socket]]
_perf = time.perf_counter
# Client SSLContexts an UpstreamPool keeps (one per distinct UpstreamTlsContext). A
# certificate rotation brings new settings while the old ones are never asked for again, so
# the oldest made go first; one evicted while still in use is only made again.
MAX_SSL_CONTEXTS = 4096
# Keys (endpoints, with their TLS settings) the pool keeps an idle list for: pods come and go
# with autoscaling, and each new address is a key; past this, keys with no idle and no live
# connection are forgotten.
MAX_POOL_KEYS = 8192
# Request headers that on_headers_complete must look at (framing; Expect: 100-continue).
_SPECIAL = frozenset({b"transfer-encoding", b"content-length", b"expect"})
_new = object.__new__
# Response headers that send a response down the parser's path (they need rewriting); a
# Server header is taken out by the fast path itself (_fast_head), unless a space comes
# before its colon (the parser judges that).
_REWRITTEN = re.compile(rb"\n(?:transfer-encoding|connection|server[ \t]|keep-alive|upgrade|"
                        rb"proxy-connection|te|trailer)[ \t]*:")


def pool_key(endpoint: Endpoint, cluster: Cluster) -> PoolKey:
    """What the pool keys a cluster's connections to `endpoint` by (PoolKey)."""
    if cluster.origin is not None:
        return (endpoint, cluster.tls, cluster.origin)
    return endpoint if cluster.tls is None else (endpoint, cluster.tls)


_POOL_KEYS_MAX = 1024


_NOT_FAST = (-1, b"")


def _fast_head(head: bytes) -> tuple[int, bytes]:
    """The Content-Length of a response head that the fast path may pass on (HTTP/1.1, a final
    status with a body, Content-Length framing, no header the proxy rewrites but Server), and
    the head to pass on: as it came, without its Server lines (the proxy sends its own, as
    Envoy overwrites Server); (-1, b"") for any other head. `head` ends with its last header
    line's CRLF."""
    if not head.startswith(b"HTTP/1.1 "):
        return _NOT_FAST
    low = head.lower()
    i = low.find(b"\ncontent-length:")
    if i < 0 or _REWRITTEN.search(low) is not None:
        return _NOT_FAST
    try:
        status = int(head[9:12])
        clen = int(low[i + 16:low.find(b"\r", i + 16)])
    except ValueError:
        return _NOT_FAST
    if status < 200 or status == 204 or status == 304 or clen < 0:
        return _NOT_FAST
    if low.find(b"\ncontent-length:", i + 16) >= 0:
        return _NOT_FAST               # a repeated Content-Length: the parser decides
    if low.find(b"\nserver:") < 0:
        return clen, head
    if b"\n " in head or b"\n\t" in head:
        return _NOT_FAST               # a folded line: the parser decides what it belongs to
    lines = head.split(b"\r\n")
    kept = [line for line in lines if not line[:7].lower() == b"server:"]
    return clen, b"\r\n".join(kept)


# Response heads already judged by _fast_head. A backend sends the same head again and
# again (only Date changes, once a second), so most responses skip the judging: a connection
# first compares with its own last head (UpstreamConnection.fast_head), then this map gives
# one hash and one lookup instead of a lower(), two finds, a regex scan and two int()s.
# Bounded: cleared when full; heads longer than _FAST_HEAD_MAX are judged every time.
_fast_heads: dict[bytes, tuple[int, bytes]] = {}
_FAST_HEADS = 512
_FAST_HEAD_MAX = 2048


class _Date:
    """The Date header value, formatted at most once a second."""
    second = -1
    value = b""

    @classmethod
    def get(cls) -> bytes:
        now = int(time.time())
        if now != cls.second:
            cls.second = now
            cls.value = formatdate(now, usegmt=True).encode()
        return cls.value


def http_date() -> bytes:
    return _Date.get()


_status_lines: dict[tuple[int, bytes], bytes] = {}


def _status_line(status: int, reason: bytes) -> bytes:
    key = (status, reason)
    line = _status_lines.get(key)
    if line is None:
        if not reason:
            try:
                reason = HTTPStatus(status).phrase.encode()
            except ValueError:
                reason = b"Unknown"
        line = b"HTTP/1.1 %d %s\r\n" % (status, reason)
        if len(_status_lines) < 1024:
            _status_lines[key] = line
    return line


class ConnContext:
    """What a request knows of its downstream connection: one per connection, shared by its
    requests. Addresses are taken when the connection is made; the TLS facts (SNI, ALPN, the
    client's certificate chain and SPIFFE ID) are read on first use, so plain requests that
    never ask pay nothing for them."""
    __slots__ = ("peer", "local", "_ssl", "_tls_read", "_sni", "_alpn", "_chain", "_spiffe",
                 "_transport", "_odst", "_odst_read")

    def __init__(self, transport: asyncio.BaseTransport | None) -> None:
        get = transport.get_extra_info if transport is not None else None
        self.peer: tuple[str, int] | None = get("peername") if get else None
        self.local: tuple[str, int] | None = get("sockname") if get else None
        self._ssl = get("ssl_object") if get else None
        self._transport = transport
        self._odst: tuple[str, int] | None = None
        self._odst_read = False
        self._tls_read = False
        self._sni: str | None = None
        self._alpn: str | None = None
        self._chain: tuple[bytes, ...] = ()
        self._spiffe: str | None = None

    @property
    def tls(self) -> bool:
        return self._ssl is not None

    def _read_tls(self) -> None:
        self._tls_read = True
        o = self._ssl
        if o is None:
            return
        self._sni = requested_sni(o)
        self._alpn = o.selected_alpn_protocol()
        self._chain = peer_chain(o)
        if self._chain:
            self._spiffe = peer_names(self._chain[0]).spiffe_id

    @property
    def sni(self) -> str | None:
        if not self._tls_read:
            self._read_tls()
        return self._sni

    @property
    def alpn(self) -> str | None:
        if not self._tls_read:
            self._read_tls()
        return self._alpn

    @property
    def peer_certificates(self) -> tuple[bytes, ...]:
        """The client's certificate chain, DER, leaf first (() without a client certificate)."""
        if not self._tls_read:
            self._read_tls()
        return self._chain

    @property
    def spiffe_id(self) -> str | None:
        """The client certificate's SPIFFE ID (its spiffe:// URI SAN), as Istio's source.principal
        is derived from it."""
        if not self._tls_read:
            self._read_tls()
        return self._spiffe


    @property
    def original_dst(self) -> tuple[str, int] | None:
        """Where the client meant to connect before a NAT redirect sent it here (the
        sidecar's captured connections: SO_ORIGINAL_DST); None when it was not redirected
        or the socket cannot tell. Read on first use."""
        if not self._odst_read:
            self._odst_read = True
            sock = self._transport.get_extra_info("socket") if self._transport else None
            self._odst = original_dst(sock) if sock is not None else None
        return self._odst


SO_ORIGINAL_DST = 80


def original_dst(sock: Any) -> tuple[str, int] | None:
    """The pre-NAT destination of an accepted IPv4 socket (netfilter's SO_ORIGINAL_DST)."""
    try:
        raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    except (OSError, AttributeError):
        return None
    port = int.from_bytes(raw[2:4], "big")
    return socket.inet_ntoa(raw[4:8]), port


NO_CONN = ConnContext(None)


class RequestHead:
    """A parsed request head, as a dispatcher sees it."""
    __slots__ = ("method", "target", "host", "lines", "captured", "client", "scheme", "version",
                 "keep_alive", "chunked", "content_length", "conn", "tag")

    def __init__(self, method: bytes, target: bytes, host: bytes, lines: list[bytes],
                 captured: dict[bytes, bytes], client: bytes, scheme: bytes, version: str,
                 keep_alive: bool, chunked: bool, content_length: int,
                 conn: ConnContext = NO_CONN) -> None:
        self.method = method
        self.target = target
        self.host = host                  # Host / :authority as sent (may carry a port)
        self.lines = lines                # pass-through header lines, b"name: value\r\n"
        self.captured = captured          # lower-case name -> value, held back from pass-through
        self.client = client              # peer address, as bytes
        self.scheme = scheme              # b"http" | b"https"
        self.version = version            # "1.0" | "1.1" | "2"
        self.keep_alive = keep_alive
        self.chunked = chunked            # request body framed by chunked encoding
        self.content_length = content_length   # -1: none given
        self.conn = conn                  # the downstream connection's context
        self.tag: str | None = None       # the dispatcher's note for its hooks (a cluster)

    @property
    def has_body(self) -> bool:
        return self.chunked or self.content_length > 0

    def header(self, name: bytes) -> bytes | None:
        """A header's value by lower-case name (the slow path: header-based route matches)."""
        v = self.captured.get(name)
        if v is not None:
            return v
        prefix = name + b": "
        for line in self.lines:
            if line.startswith(prefix):
                return line[len(prefix):-2]
        return None


class Forward:
    """Send the request to `endpoint`, adding `extra` header lines (and maybe another Host);
    `cluster` names TLS settings and a connect timeout (None: plain, the pool's timeout).
    `hook`: told when this request ends, as the listener's hooks are (an activator that
    chose the pod counts its requests in flight)."""
    __slots__ = ("endpoint", "extra", "host", "cluster", "hook")

    def __init__(self, endpoint: Endpoint, extra: bytes = b"", host: bytes | None = None,
                 cluster: Cluster | None = None, hook: RequestHooks | None = None) -> None:
        self.endpoint = endpoint
        self.extra = extra
        self.host = host
        self.cluster = cluster
        self.hook = hook


class Reply:
    """Answer locally (404 for an unknown host, 503 with no healthy upstream...)."""
    __slots__ = ("status", "body", "headers")

    def __init__(self, status: int, body: bytes = b"",
                 headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        self.status = status
        self.body = body
        self.headers = headers


class Defer:
    """Decide later: `awaitable` resolves to a Forward or a Reply (or another Defer). The
    request is held meanwhile; its body is buffered up to Exchange.PENDING_LIMIT, then read
    no further (HTTP/2: not acknowledged), so backpressure reaches the client. After `timeout`
    seconds (None: the listener's request timeout; 0: none) the client gets `timeout_reply`.
    A client that goes away cancels the wait: a coroutine is cancelled; a Future is not (it
    may be shared by many held requests, as an activator's "pod ready" signal), only this
    request stops waiting for it."""
    __slots__ = ("awaitable", "timeout", "timeout_reply")

    def __init__(self, awaitable: Awaitable[Forward | Reply | Defer], timeout: float | None = None,
                 timeout_reply: Reply | None = None) -> None:
        self.awaitable = awaitable
        self.timeout = timeout
        self.timeout_reply = timeout_reply


Decision = Forward | Reply | Defer
Dispatch = Callable[[RequestHead], Decision]


class RequestHooks(Protocol):
    """Per-request callbacks (concurrency counting, metrics, access logs). start() runs when
    the request is dispatched; end() exactly once after it, however the request ended.
    `status` is what the client got (0: nothing, its connection was reset), `bytes_sent` the
    response body bytes written, `duration` seconds since start, `error` an Envoy response
    flag or None: UF upstream connection failure, UC upstream reset, UT timeout (a deferred
    wait's too), DC downstream went away. Exceptions are logged and do not touch the request."""

    def start(self, ctx: ConnContext, head: RequestHead) -> None: ...

    def end(self, ctx: ConnContext, head: RequestHead, status: int, bytes_sent: int,
            duration: float, error: str | None) -> None: ...

_TEXT = ((b"content-type", b"text/plain"),)
CONNECT_FAILURE = Reply(503, connect_failure_body("connection failure"), _TEXT)
CONNECT_TIMEOUT = Reply(503, connect_failure_body("connection timeout"), _TEXT)
# Knative's activator answers a request whose wait for capacity ran out with 503 and the
# error's text (context.DeadlineExceeded).
DEFER_TIMEOUT = Reply(503, b"context deadline exceeded\n", _TEXT)
RESET_BEFORE_HEADERS = Reply(503, b"upstream connect error or disconnect/reset before headers. "
                                  b"reset reason: connection termination",
                             ((b"content-type", b"text/plain"),))
INTERNAL_ERROR = Reply(500, b"internal error", ((b"content-type", b"text/plain"),))
UPSTREAM_TIMEOUT = Reply(504, b"upstream request timeout", ((b"content-type", b"text/plain"),))
HEADERS_TOO_LARGE = Reply(431)
HEADER_TIMEOUT = Reply(408, b"request header timeout", ((b"content-type", b"text/plain"),))


class ServerConnection(Protocol):
    """What ProxyConfig needs of a downstream connection (H1ServerProtocol, h2.H2ServerProtocol)."""

    def check(self, now: float) -> None:
        """Apply the timeouts, `now` being the sweeper's clock."""

    def drain(self) -> None:
        """Finish what is in flight, take nothing new, then close."""

    def abort(self) -> None:
        """Close now."""


class ProxyConfig:
    """What every connection of one listener shares: the dispatcher, the pool, response policy.

    `server`, `service_time` and `hooks` may be changed at any time (a snapshot swap); they
    are read per response (hooks: per request, at its start).
    """

    def __init__(self, dispatch: Dispatch, pool: UpstreamPool, *, server: bytes = b"",
                 service_time: bool = False, capture: frozenset[bytes] = frozenset(),
                 strip_prefix: bytes = b"", limits: Limits | None = None,
                 hooks: Sequence[RequestHooks] = ()) -> None:
        self.dispatch = dispatch
        self.hooks: tuple[RequestHooks, ...] = tuple(hooks)   # may be replaced at any time
        self.pool = pool
        self.limits = limits or Limits()
        self.conns: set[ServerConnection] = set()
        self.now = 0.0                   # the sweeper's clock: loop.time() at its last sweep
        self.draining = False
        self._sweeper: asyncio.Task[None] | None = None
        self.capture = CORE_CAPTURE | capture
        self.strip_prefix = strip_prefix   # request headers dropped by prefix (Envoy: x-envoy-)
        self.service_time = service_time
        self.server_line = b""
        self.server_line_st0 = b""      # server_line + a service time of 0 ms, the usual one
        self.server = server

    @property
    def server(self) -> bytes:
        return self._server

    @server.setter
    def server(self, value: bytes) -> None:
        self._server = value
        self.server_line = b"server: " + value + b"\r\n" if value else b""
        self.server_line_st0 = self.server_line + b"x-envoy-upstream-service-time: 0\r\n"

    # connections and their timeouts
    def register(self, c: ServerConnection) -> None:
        self.conns.add(c)
        if self._sweeper is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:         # no loop (a protocol driven by hand): no timeouts
                return
            self.now = loop.time()
            self._sweeper = loop.create_task(self._sweep())

    def unregister(self, c: ServerConnection) -> None:
        self.conns.discard(c)

    async def _sweep(self) -> None:
        """Check every connection once a period; ends with the last connection."""
        loop = asyncio.get_running_loop()
        try:
            while self.conns:
                await asyncio.sleep(sweep_period(self.limits, self.draining))
                self.now = now = loop.time()
                for c in list(self.conns):
                    try:
                        c.check(now)
                    except Exception:
                        log.exception("connection check failed")
        finally:
            self._sweeper = None

    async def drain(self, timeout: float | None = None) -> int:
        """Graceful stop of every connection: in-flight requests finish, HTTP/1.1 answers with
        `connection: close`, HTTP/2 sends GOAWAY; what is left at the deadline is closed.
        Returns how many connections had to be closed that way."""
        loop = asyncio.get_running_loop()
        self.draining = True
        self.now = loop.time()
        for c in list(self.conns):
            c.drain()
        deadline = loop.time() + (self.limits.drain_timeout if timeout is None else timeout)
        while self.conns and loop.time() < deadline:
            await asyncio.sleep(0.02)
        left = list(self.conns)
        for c in left:
            c.abort()
        return len(left)


# --- the upstream half --------------------------------------------------------------


class Exchange:
    """One request/response through the proxy. Subclasses write the downstream side:
    send_head / send_body / send_end / send_reply / abort_downstream / pause/resume_downstream."""

    PENDING_LIMIT = 256 * 1024   # request body buffered before the upstream is ready

    # Class-level defaults: an exchange is made per request, so __init__ sets only what varies.
    up: UpstreamConnection | None = None
    pending: list[bytes] | None = None
    pending_size = 0
    req_done = False
    started = False      # response head sent downstream
    finished = False
    endpoint: PoolKey = ("", 0)
    cluster: Cluster | None = None
    head_bytes = b""
    retried = False
    reused = False
    t0 = 0.0
    since = 0.0          # cfg.now when the request head arrived (the request timeout's start)
    connecting: asyncio.Task[None] | None = None
    deferred: asyncio.Task[None] | None = None
    # what the hooks are told (RequestHooks); `hooks` is set at start and emptied at end
    hooks: tuple[RequestHooks, ...] = ()
    t_start = 0.0
    status = 0
    sent = 0
    sent_seen = 0        # `sent` at the sweep that last saw it move, and when (idle timeout)
    quiet_since = 0.0
    error: str | None = None

    def __init__(self, cfg: ProxyConfig, head: RequestHead) -> None:
        self.cfg = cfg
        self.head = head

    # downstream hooks
    def send_head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]],
                  clen: bytes | None, no_body: bool) -> None:
        raise NotImplementedError

    def send_body(self, data: bytes) -> None:
        raise NotImplementedError

    def send_end(self) -> None:
        raise NotImplementedError

    def send_reply(self, r: Reply) -> None:
        raise NotImplementedError

    def abort_downstream(self) -> None:
        raise NotImplementedError

    def pause_downstream(self) -> None:
        """Stop reading the request body (the upstream cannot take more now)."""

    def resume_downstream(self) -> None:
        pass

    def flush(self) -> None:
        """Write what send_head/send_body buffered (called after each upstream read)."""

    fast = False     # accepts fast_response/send_raw (an HTTP/1.1 downstream)

    def fast_response(self, head: bytes, body: bytes) -> None:
        """A response head as the upstream wrote it, up to its last header line's CRLF."""
        raise NotImplementedError

    def send_raw(self, data: bytes) -> None:
        raise NotImplementedError

    # request side
    def begin(self) -> None:
        """Dispatch and start the upstream request (the request body may still be arriving)."""
        cfg = self.cfg
        if cfg.hooks:
            self.start_hooks(cfg.hooks)
        try:
            d = cfg.dispatch(self.head)
        except Exception:
            log.exception("dispatch failed for %r", self.head.host)
            d = INTERNAL_ERROR
        if d.__class__ is Forward:
            self.forward(d)
        else:
            self.act(d)

    def act(self, d: Decision) -> None:
        """Carry out a dispatch decision: forward, reply, or hold the request until it resolves."""
        if isinstance(d, Forward):
            self.forward(d)
        elif isinstance(d, Reply):
            self.reply(d)
        else:
            self.defer(d)

    def defer(self, d: Defer) -> None:
        self.deferred = asyncio.get_running_loop().create_task(self._wait(d))

    async def _wait(self, d: Defer) -> None:
        aw = d.awaitable
        if asyncio.isfuture(aw):
            aw = asyncio.shield(aw)        # possibly shared: leaving must not cancel it for others
        r: Decision
        try:
            async with asyncio.timeout(defer_timeout(d.timeout, self.cfg.limits)):
                r = await aw
        except TimeoutError:
            self.error = "UT"
            r = d.timeout_reply or DEFER_TIMEOUT
        except Exception:
            log.exception("deferred dispatch failed for %r", self.head.host)
            r = INTERNAL_ERROR
        self.deferred = None
        if not self.finished:
            self.act(r)

    def forward(self, fwd: Forward) -> None:
        head = self.head
        if head.chunked:
            framing = b"transfer-encoding: chunked\r\n"
        elif head.content_length >= 0:
            framing = b"content-length: %d\r\n" % head.content_length
        else:
            framing = b""
        cluster = fwd.cluster
        pool = self.cfg.pool
        if cluster is None:
            ep: PoolKey = fwd.endpoint
            idle = pool.idle.get(ep)
        else:
            self.cluster = cluster
            # the key and idle list of this cluster's connections to the endpoint, looked up
            # once: hashing (endpoint, tls, origin) calls the dataclasses' __hash__ in Python
            slots = cluster.pool_keys
            slot = slots.get(fwd.endpoint)
            if slot is None or slot[0] is not pool:
                slot = pool.slot(pool_key(fwd.endpoint, cluster))
                if len(slots) >= _POOL_KEYS_MAX:
                    slots.clear()
                slots[fwd.endpoint] = slot
            ep = slot[1]
            idle = slot[2]
        self.endpoint = ep
        if fwd.hook is not None:
            if not self.hooks:
                self.t_start = _perf()
            self.hooks = (*self.hooks, fwd.hook)
        self.head_bytes = data = b"".join((head.method, b" ", head.target, b" HTTP/1.1\r\nhost: ",
                                           fwd.host or head.host, b"\r\n", b"".join(head.lines),
                                           fwd.extra, framing, b"\r\n"))
        conn = idle.pop() if idle else None
        if conn is None or conn.closed or self.pending or conn.transport is None \
                or conn.transport.is_closing():
            self._acquire(fresh=False, conn=conn)
            return
        # the hot path, inlined: a pooled connection and no body buffered yet
        self.up = conn
        self.reused = True
        conn.exchange = self
        conn.is_head = conn.slow = head.method == b"HEAD"
        self.t0 = _perf()
        conn.transport.write(data)

    def _acquire(self, fresh: bool, conn: UpstreamConnection | None = None) -> None:
        if conn is not None and (conn.closed or conn.transport is None
                                 or conn.transport.is_closing()):
            conn = None
        if conn is None and not fresh:
            conn = self.cfg.pool.take(self.endpoint)
        if conn is not None:
            self._attach(conn, True)
        else:
            self.connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        pool = self.cfg.pool
        cluster = self.cluster
        try:
            if cluster is None:
                conn = await pool.connect(self.endpoint)
            else:
                conn = await pool.connect(self.endpoint, cluster.connect_timeout)
        except (TimeoutError, OSError) as e:
            self.connecting = None
            if not self.finished:
                self.error = "UF"
                self.reply(connect_failure_reply(e))
            return
        self.connecting = None
        if self.finished:
            self.cfg.pool.put(conn)
            return
        self._attach(conn, False)

    def _attach(self, conn: UpstreamConnection, reused: bool) -> None:
        self.up = conn
        self.reused = reused
        conn.attach(self, self.head.method == b"HEAD")
        data = self.head_bytes
        if self.pending:
            data += b"".join(self.pending)
            self.pending = None      # a request body is sent once only (no retry with a body)
            if self.pending_size > self.PENDING_LIMIT:
                self.resume_downstream()
            self.pending_size = 0
        self.t0 = _perf()
        assert conn.transport is not None
        conn.transport.write(data)

    def body(self, data: bytes) -> None:
        if self.finished:
            return
        if self.head.chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        up = self.up
        if up is not None and up.transport is not None:
            up.transport.write(data)
        else:
            if self.pending is None:
                self.pending = []
            self.pending.append(data)
            self.pending_size += len(data)
            if self.pending_size > self.PENDING_LIMIT:
                self.pause_downstream()

    def end(self) -> None:
        self.req_done = True
        if self.head.chunked and not self.finished:
            self.body_raw(b"0\r\n\r\n")

    def body_raw(self, data: bytes) -> None:
        up = self.up
        if up is not None and up.transport is not None:
            up.transport.write(data)
        else:
            if self.pending is None:
                self.pending = []
            self.pending.append(data)

    # upstream events (called by UpstreamConnection)
    def response_head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]],
                      clen: bytes | None, no_body: bool) -> None:
        self.started = True
        self.status = status
        self.send_head(status, reason, headers, clen, no_body)

    def response_end(self) -> None:
        self.up = None
        self.finished = True
        self.send_end()

    def upstream_lost(self) -> None:
        self.up = None
        if self.finished:
            return
        if not self.started:
            if self.reused and not self.retried and not self.head.has_body:
                # a pooled keep-alive connection the upstream had closed: try once on a new one
                self.retried = True
                self._acquire(fresh=True)
                return
            self.error = "UC"
            self.reply(RESET_BEFORE_HEADERS)
            return
        self.error = "UC"
        self.finished = True
        self.abort_downstream()

    def reply(self, r: Reply) -> None:
        if self.finished:
            return
        self.finished = True
        self.status = r.status
        self.send_reply(r)

    def overdue(self, now: float) -> bool:
        """Whether a timeout has run out (the sweeper asks, `now` its clock): the request's,
        the response's start, or the response's idle time (measured from the last sweep
        that saw its byte count move, so the hot path keeps no clock)."""
        lim = self.cfg.limits
        if self.sent != self.sent_seen or self.quiet_since == 0.0:
            self.sent_seen = self.sent
            self.quiet_since = now
        return exchange_verdict(now - self.since, self.started, now - self.quiet_since,
                                lim) is Verdict.REQUEST_TIMEOUT

    def expire(self) -> None:
        """The request timeout: 504 if no response has begun, else the downstream is reset.
        A deferred dispatch is left to its own deadline (Defer.timeout, 503)."""
        if self.finished or self.deferred is not None:
            return
        self.error = "UT"
        self._drop_upstream()            # the upstream connection is mid-message: closed
        if self.started:
            self.finished = True
            self.abort_downstream()
        else:
            self.reply(UPSTREAM_TIMEOUT)

    def abort(self) -> None:
        """The downstream went away: drop the upstream connection (it is mid-message)."""
        self.finished = True
        self._drop_upstream()
        if self.hooks:
            if self.error is None:
                self.error = "DC"
            self.end_hooks()

    def _drop_upstream(self) -> None:
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
        if self.deferred is not None:
            self.deferred.cancel()
            self.deferred = None
        up = self.up
        self.up = None
        if up is not None:
            up.detach_and_close()

    # hooks
    def start_hooks(self, hooks: tuple[RequestHooks, ...]) -> None:
        self.hooks = hooks
        self.t_start = _perf()
        head = self.head
        for h in hooks:
            try:
                h.start(head.conn, head)
            except Exception:
                log.exception("request hook %r failed at start", h)

    def end_hooks(self) -> None:
        """Tell the hooks the request is over (once: `hooks` is emptied)."""
        hooks = self.hooks
        self.hooks = ()
        head = self.head
        duration = _perf() - self.t_start
        for h in hooks:
            try:
                h.end(head.conn, head, self.status, self.sent, duration, self.error)
            except Exception:
                log.exception("request hook %r failed at end", h)

    def pause_response(self) -> None:
        up = self.up
        if up is not None and up.transport is not None:
            up.transport.pause_reading()

    def resume_response(self) -> None:
        up = self.up
        if up is not None and up.transport is not None:
            up.transport.resume_reading()

    def service_time_ms(self) -> bytes:
        """Envoy's x-envoy-upstream-service-time: request sent to response head, in ms."""
        return b"%d" % int((_perf() - self.t0) * 1000)

    def service_time_line(self) -> bytes:
        return b"x-envoy-upstream-service-time: " + self.service_time_ms() + b"\r\n"


def connect_failure_reply(e: BaseException) -> Reply:
    """Envoy's 503 for an upstream connection that failed before the request was sent."""
    if isinstance(e, TimeoutError):
        return CONNECT_TIMEOUT
    if isinstance(e, UpstreamTlsError):
        return Reply(503, connect_failure_body("connection failure", f"TLS error: {e}"), _TEXT)
    if isinstance(e, ssl.SSLError):
        reason = e.reason or type(e).__name__
        if isinstance(e, ssl.SSLCertVerificationError) and e.verify_message:
            reason = f"{reason}: {e.verify_message}"
        return Reply(503, connect_failure_body("connection failure", f"TLS error: {reason}"),
                     _TEXT)
    return CONNECT_FAILURE


class UpstreamTlsError(ConnectionError):
    """The upstream's TLS identity is not the one its cluster expects (a SAN mismatch)."""


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection to an endpoint; serves one Exchange at a time."""

    def __init__(self, pool: UpstreamPool, key: PoolKey) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.clen: bytes | None = None
        self.chunked = False
        self.is_head = False
        self.interim = False
        self.head_done = False       # a HEAD response's headers ended the message
        self.head_keep = False
        self.closed = False
        self.slow = False            # this response goes through the parser
        self.fast_left = 0           # body bytes still due on a fast-path response
        # the last response head the fast path took on this connection, its length and the
        # head passed on in its place (without Server lines)
        self.fast_head = b""
        self.fast_clen = 0
        self.fast_out = b""
        # the pool's idle list for this key, once the pool has held this connection
        self.idle: list[UpstreamConnection] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.pool.opened(self)

    def attach(self, ex: Exchange, is_head: bool) -> None:
        self.exchange = ex
        self.is_head = is_head
        self.slow = is_head          # a HEAD response has a Content-Length but no body

    def detach_and_close(self) -> None:
        self.exchange = None
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        ex = self.exchange
        left = self.fast_left
        if left:
            # the rest of a fast-path body: pass it on as it is
            n = len(data)
            if ex is None or n > left:
                self._broken()
                return
            self.fast_left = left - n
            ex.send_raw(data)
            if n == left:
                self._finish(True)
            return
        if ex is not None and ex.fast and not self.slow:
            # The common response, handled without the parser: its whole head in this read,
            # Content-Length framing, keep-alive, no header the proxy must rewrite but Server
            # (_fast_head takes it out). Written out here in one piece on purpose: it runs
            # once per request (benchmarks/gateway).
            head = self.fast_head
            n = len(head)
            if n and data[:n] == head and data[n:n + 2] == b"\r\n":
                end = n - 2                    # the same head as last time: no search
                clen = self.fast_clen
                head = self.fast_out
            else:
                end = data.find(b"\r\n\r\n")
                clen = -1
                if end >= 0:
                    raw = data[:end + 2]
                    known = _fast_heads.get(raw)
                    if known is None:
                        known = _fast_head(raw)
                        if len(raw) <= _FAST_HEAD_MAX:
                            if len(_fast_heads) >= _FAST_HEADS:
                                _fast_heads.clear()
                            _fast_heads[raw] = known
                    clen, head = known
                    if clen >= 0:
                        self.fast_head = raw
                        self.fast_clen = clen
                        self.fast_out = head
            blen = len(data) - end - 4
            if 0 <= blen <= clen:              # clen < 0: not a head for the fast path
                h1: H1Exchange = ex            # type: ignore[assignment]  # ex.fast: HTTP/1.1
                rest = data[end + 2:]          # the blank line and the body bytes that came
                cfg = h1.cfg
                rh = h1.head
                proto = h1.proto
                if cfg.service_time:
                    took = _perf() - h1.t0
                    tail = cfg.server_line_st0 if took < 0.001 else \
                        cfg.server_line + b"x-envoy-upstream-service-time: %d\r\n" % int(took * 1000)
                else:
                    tail = cfg.server_line
                if not rh.keep_alive or proto.closing:
                    h1.close_after = True
                    tail += b"connection: close\r\n"
                elif rh.version == "1.0":
                    tail += b"connection: keep-alive\r\n"
                h1.started = True
                t = proto.transport
                if t is not None:
                    t.write(b"".join((head, tail, rest)))
                if h1.hooks:
                    h1.status = int(head[9:12])
                    h1.sent = blen
                if blen < clen:
                    self.fast_left = clen - blen
                    return
                # the whole response is here: finish without the general path's calls
                self.exchange = None
                h1.up = None
                h1.finished = True
                if h1.hooks:
                    h1.end_hooks()
                if h1.req_done:
                    idle = self.idle
                    if idle is not None and len(idle) < self.pool.max_idle and not self.closed:
                        idle.append(self)
                    else:
                        self.pool.put(self)
                elif self.transport is not None:
                    self.transport.close()
                q = proto.queue
                if len(q) == 1 and q[0] is h1 and not h1.close_after and not proto.closing \
                        and not proto.paused:
                    q.popleft()                # exchange_done's common case
                    proto.since = cfg.now      # idle from now
                else:
                    proto.exchange_done(h1)
                return
        self.slow = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._broken()
            return
        if self.head_done:
            # llhttp cannot be told that a HEAD response has no body: start a fresh parser
            self.head_done = False
            self.parser = httptools.HttpResponseParser(self)
            self._finish(self.head_keep)
        elif ex is not None and ex is self.exchange:
            ex.flush()

    def _broken(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname in _RESP_DROP:
            if lname == b"transfer-encoding":
                self.chunked = True
            return
        if lname == b"content-length":
            self.clen = value
        self.headers.append((lname, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200 and status != 101:
            self.interim = True       # 100 Continue and friends: the proxy answered those itself
            self.headers = []
            return
        ex = self.exchange
        headers = self.headers
        self.headers = []            # the next response's (there is no on_message_begin)
        if ex is None:
            return
        ex.response_head(status, b"", headers, self.clen, self.is_head or status in (204, 304))
        if self.is_head:
            self.head_done = True
            self.head_keep = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        ex = self.exchange
        if ex is not None and not self.head_done:
            ex.send_body(body)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        if self.head_done:
            return
        self._finish(self.parser.should_keep_alive())

    def _finish(self, keep_alive: bool) -> None:
        ex = self.exchange
        self.exchange = None
        self.clen = None
        self.chunked = False
        self.slow = False
        if ex is None:
            return
        # back to the pool before the exchange ends: ending it may start the next request
        # (pipelined, or a keep-alive client already waiting), which should reuse this one
        if keep_alive and ex.req_done:
            self.pool.put(self)
        elif self.transport is not None:
            self.transport.close()
        ex.response_end()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.lost(self)
        ex = self.exchange
        self.exchange = None
        if ex is None:
            return
        if ex.started and self.slow and self.clen is None and not self.chunked \
                and not self.head_done:
            ex.response_end()           # a body delimited by the connection's end
        else:
            ex.upstream_lost()

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.pause_downstream()

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.resume_downstream()


def check_peer(tr: asyncio.BaseTransport, tls: UpstreamTlsContext) -> None:
    """The peer of a TLS connection just made must show one of the SANs the cluster expects
    (none expected: any peer); else UpstreamTlsError says what it showed. The caller closes
    the connection (the pool here; listener.upstream() for a `check` that raises): closing
    an asyncio TLS transport twice is not harmless."""
    if tls.match_san:
        der = peer_chain(tr.get_extra_info("ssl_object"))[:1]
        names = peer_names(der[0]) if der else peer_names(b"")
        if not san_matches(tls.match_san, names):
            raise UpstreamTlsError(san_mismatch_reason(tls.match_san, names))


class UpstreamPool:
    """Idle keep-alive connections per endpoint (LIFO, so a warm connection is reused first).

    A key is an endpoint, or (endpoint, UpstreamTlsContext) for a TLS cluster: connections
    made with one client identity or trust are reused only for the same settings. A TLS
    connection is handed out only after its peer showed a certificate with one of the
    expected SANs (tls.match_san); else it is closed and connect() raises UpstreamTlsError."""

    def __init__(self, max_idle_per_endpoint: int = 512, connect_timeout: float = 5.0,
                 max_ssl_contexts: int = MAX_SSL_CONTEXTS,
                 max_keys: int = MAX_POOL_KEYS) -> None:
        self.max_idle = max_idle_per_endpoint
        self.max_keys = max_keys
        self.connect_timeout = connect_timeout      # Envoy's cluster connect_timeout default
        self.idle: dict[PoolKey, list[UpstreamConnection]] = {}
        self.live: set[UpstreamConnection] = set()
        self.ssl_contexts: dict[UpstreamTlsContext, ssl.SSLContext] = {}
        self.max_ssl_contexts = max_ssl_contexts
        self.origin_socket: OriginSocket | None = None

    def context_for(self, tls: UpstreamTlsContext) -> ssl.SSLContext:
        """The client SSLContext for `tls`: made once, kept among the newest max_ssl_contexts
        (connections made with an evicted one keep it)."""
        ctx = self.ssl_contexts.get(tls)
        if ctx is None:
            if len(self.ssl_contexts) >= self.max_ssl_contexts:
                del self.ssl_contexts[next(iter(self.ssl_contexts))]
            ctx = self.ssl_contexts[tls] = client_context(tls)
        return ctx

    def slot(self, key: PoolKey) -> tuple[UpstreamPool, PoolKey, list[UpstreamConnection]]:
        """This pool, `key`, and the list of idle connections for it (made if there is none
        yet; it stays that key's list until close()): what a Cluster remembers per endpoint."""
        idle = self.idle.get(key)
        if idle is None:
            idle = self._new_key(key)
        return self, key, idle

    def _new_key(self, key: PoolKey) -> list[UpstreamConnection]:
        if len(self.idle) >= self.max_keys:
            # forget the keys nothing is pooled or open for (gone pods, rotated settings); a
            # Cluster still remembering one of their lists finds it empty and asks take()
            busy = {c.key for c in self.live}
            for k in [k for k, v in self.idle.items() if not v and k not in busy]:
                del self.idle[k]
        idle: list[UpstreamConnection] = []
        self.idle[key] = idle
        return idle

    def take(self, key: PoolKey) -> UpstreamConnection | None:
        idle = self.idle.get(key)
        while idle:
            c = idle.pop()
            if not c.closed and c.transport is not None and not c.transport.is_closing():
                return c
        return None

    def put(self, c: UpstreamConnection) -> None:
        if c.closed:
            return
        idle = self.idle.get(c.key)
        if idle is None:
            idle = self._new_key(c.key)
        c.idle = idle
        if len(idle) < self.max_idle:
            idle.append(c)
        elif c.transport is not None:
            c.transport.close()

    async def connect(self, key: PoolKey, timeout: float | None = None) -> UpstreamConnection:
        """A new connection for `key`, within `timeout` (None: the pool's connect_timeout; 0:
        none) including the TLS handshake. Raises TimeoutError, OSError (ssl.SSLError for a
        failed handshake) or UpstreamTlsError."""
        loop = asyncio.get_running_loop()
        t = self.connect_timeout if timeout is None else timeout
        if len(key) == 3:
            return await asyncio.wait_for(self._connect_from(key), t or None)
        if isinstance(key[1], int):
            host, port = key
            _, proto = await asyncio.wait_for(
                loop.create_connection(lambda: UpstreamConnection(self, key), host, port),
                t or None)
            return proto
        (host, port), tls = key
        tr, proto = await asyncio.wait_for(
            loop.create_connection(lambda: UpstreamConnection(self, key), host, port,
                                   ssl=self.context_for(tls),
                                   server_hostname=tls.sni or "",
                                   ssl_handshake_timeout=t or None),
            t or None)
        return self._checked(tr, proto, tls)

    async def _connect_from(self, key: tuple[Endpoint, UpstreamTlsContext | None, Origin],
                            ) -> UpstreamConnection:
        """A connection whose socket is made where its Origin says (inside a pod's network
        namespace, marked so that the pod's own capture rules let it pass)."""
        (host, port), tls, origin = key
        if self.origin_socket is None:
            raise OSError(f"no socket factory for origin {origin.netns}")
        loop = asyncio.get_running_loop()
        sock = await self.origin_socket(origin)
        try:
            await loop.sock_connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        if tls is None:
            _, proto = await loop.create_connection(lambda: UpstreamConnection(self, key),
                                                    sock=sock)
            return proto
        tr, proto = await loop.create_connection(lambda: UpstreamConnection(self, key),
                                                 sock=sock, ssl=self.context_for(tls),
                                                 server_hostname=tls.sni or "")
        return self._checked(tr, proto, tls)

    @staticmethod
    def _checked(tr: asyncio.BaseTransport, proto: UpstreamConnection, tls: UpstreamTlsContext,
                 ) -> UpstreamConnection:
        """`proto` once its peer passed check_peer; else the connection is closed."""
        try:
            check_peer(tr, tls)
        except UpstreamTlsError:
            tr.close()
            raise
        return proto

    def opened(self, c: UpstreamConnection) -> None:
        self.live.add(c)

    def lost(self, c: UpstreamConnection) -> None:
        self.live.discard(c)
        idle = self.idle.get(c.key)
        if idle and c in idle:
            idle.remove(c)

    def close(self) -> None:
        for c in list(self.live):
            if c.transport is not None:
                c.transport.close()
        self.idle.clear()


# --- the HTTP/1.1 downstream half -----------------------------------------------------


def format_reply(r: Reply, server_line: bytes, close: bool, head_only: bool = False) -> bytes:
    parts = [_status_line(r.status, b""), b"content-length: %d\r\n" % len(r.body),
             b"date: ", http_date(), b"\r\n", server_line]
    for name, value in r.headers:
        parts += (name, b": ", value, b"\r\n")
    if close:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    if not head_only:
        parts.append(r.body)
    return b"".join(parts)


class H1Exchange(Exchange):
    out = b""
    resp_chunked = False
    close_after = False
    fast = True

    def __init__(self, cfg: ProxyConfig, head: RequestHead, proto: H1ServerProtocol) -> None:
        self.cfg = cfg
        self.head = head
        self.proto = proto

    def send_head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]],
                  clen: bytes | None, no_body: bool) -> None:
        cfg = self.cfg
        head = self.head
        parts = [_status_line(status, reason)]
        parts += [n + b": " + v + b"\r\n" for n, v in headers]
        parts.append(cfg.server_line)
        if cfg.service_time:
            parts.append(self.service_time_line())
        if not no_body and clen is None:
            if head.version == "1.1":
                self.resp_chunked = True
                parts.append(b"transfer-encoding: chunked\r\n")
            else:
                self.close_after = True        # an HTTP/1.0 client: the close delimits the body
        if not head.keep_alive or self.close_after or self.proto.closing:
            self.close_after = True
            parts.append(b"connection: close\r\n")
        elif head.version == "1.0":
            parts.append(b"connection: keep-alive\r\n")
        parts.append(b"\r\n")
        self.out = b"".join(parts)

    def fast_response(self, head: bytes, body: bytes) -> None:
        self.started = True
        h = self.head
        cfg = self.cfg
        tail = cfg.server_line
        if cfg.service_time:
            tail += self.service_time_line()
        if not h.keep_alive or self.proto.closing:
            self.close_after = True
            tail += b"connection: close\r\n"
        elif h.version == "1.0":
            tail += b"connection: keep-alive\r\n"
        t = self.proto.transport
        if t is not None:
            t.write(b"".join((head, tail, b"\r\n", body)))

    def send_raw(self, data: bytes) -> None:
        self.sent += len(data)
        t = self.proto.transport
        if t is not None:
            t.write(data)

    def send_body(self, data: bytes) -> None:
        self.sent += len(data)
        if self.resp_chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        if self.out:
            data = self.out + data
            self.out = b""
        t = self.proto.transport
        if t is not None:
            t.write(data)

    def flush(self) -> None:
        if self.out:
            t = self.proto.transport
            if t is not None:
                t.write(self.out)
            self.out = b""

    def send_end(self) -> None:
        tail = self.out + b"0\r\n\r\n" if self.resp_chunked else self.out
        self.out = b""
        t = self.proto.transport
        if tail and t is not None:
            t.write(tail)
        self.proto.exchange_done(self)

    def send_reply(self, r: Reply) -> None:
        if self.head.has_body and not self.req_done:
            self.close_after = True    # the unread body would be taken for the next request
        close = self.close_after or not self.head.keep_alive or self.proto.closing
        self.close_after = close
        head_only = self.head.method == b"HEAD"
        if not head_only:
            self.sent = len(r.body)
        t = self.proto.transport
        if t is not None:
            t.write(format_reply(r, self.cfg.server_line, close, head_only))
        self.proto.exchange_done(self)

    def abort_downstream(self) -> None:
        t = self.proto.transport
        if t is not None:
            t.close()

    def pause_downstream(self) -> None:
        self.proto.pause_reading()

    def resume_downstream(self) -> None:
        self.proto.resume_reading()


class _HeadTooLarge(Exception):
    """Raised from a parser callback: the request head is over the limits."""


class H1ServerProtocol(asyncio.Protocol):
    """The downstream side of HTTP/1.1: parse, dispatch, keep requests in order (pipelining).

    Limits: bytes read while no request body is being read belong to a request head and are
    counted before they reach the parser, so an oversized head is refused (431) with at most
    max_header_bytes of it held. `since` marks when the connection's current phase began (its
    phase is derived: a request queued, a head begun or the connection new, or idle)."""

    MAX_QUEUED = 16
    head_size = 0        # bytes of the request head being received
    nheaders = 0
    fresh = True         # no request head completed yet on this connection
    since = 0.0
    # The head being received starts with "... HTTP/1.1\r\n" (read off the bytes when it
    # began): its version without asking the parser, whose get_http_version() formats a str.
    v11 = False
    special = False      # the head has a framing header or Expect (on_header saw one)

    def __init__(self, cfg: ProxyConfig, scheme: bytes = b"http") -> None:
        self.cfg = cfg
        self.scheme = scheme
        self.capture = cfg.capture
        self.strip = cfg.strip_prefix
        self.max_headers = cfg.limits.max_headers
        self.max_header_bytes = cfg.limits.max_header_bytes
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client = b""
        self.conn = NO_CONN
        self.queue: deque[H1Exchange] = deque()
        self.current: H1Exchange | None = None
        self.paused = False
        self.closing = False
        self.url = b""
        self.lines: list[bytes] = []
        self.captured: dict[bytes, bytes] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.conn = conn = ConnContext(transport)
        peer = conn.peer
        self.client = str(peer[0]).encode() if peer else b""
        cfg = self.cfg
        cfg.register(self)
        self.since = cfg.now
        if cfg.draining:
            self.closing = True

    def data_received(self, data: bytes) -> None:
        if self.current is None:
            # not inside a request body: these bytes start or continue a request head
            size = self.head_size
            if not size:
                if not self.queue:
                    self.since = self.cfg.now
                eol = data.find(b"\r\n")
                self.v11 = eol > 8 and data[eol - 9:eol] == b" HTTP/1.1"
            size += len(data)
            if size > self.max_header_bytes and not head_fits(
                    self.head_size, len(data), data.find(b"\r\n\r\n"), self.cfg.limits):
                self._refuse(HEADERS_TOO_LARGE)
                return
            self.head_size = size
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # proxied as a plain request (Upgrade is hop-by-hop); the stream cannot go on after
            self.closing = True
        except httptools.HttpParserCallbackError as e:
            if isinstance(e.__context__, _HeadTooLarge):
                self._refuse(HEADERS_TOO_LARGE)
            else:
                raise
        except httptools.HttpParserError:
            if self.queue:
                self.closing = True
                if self.transport is not None:
                    self.transport.close()
            elif self.transport is not None:
                self.transport.write(format_reply(Reply(400, b"Bad Request"), self.cfg.server_line,
                                                  True))
                self.transport.close()

    def _refuse(self, r: Reply) -> None:
        """Answer `r` and close: a head over the limits, or one too slow to arrive. Behind a
        pipelined request still in flight the answer would be out of order: just close."""
        self.closing = True
        t = self.transport
        if t is None:
            return
        if not self.queue:
            t.write(format_reply(r, self.cfg.server_line, True))
        t.close()

    # limits
    def check(self, now: float) -> None:
        q = self.queue
        if q:
            if q[0].overdue(now):
                q[0].expire()
            return
        phase = Phase.HEAD if self.head_size or self.fresh else Phase.IDLE
        v = verdict(phase, now - self.since, self.cfg.limits, self.cfg.draining)
        if v is Verdict.HEADER_TIMEOUT:
            if self.head_size:
                self._refuse(HEADER_TIMEOUT)
            else:
                self.abort()           # a connection that never said anything
        elif v is Verdict.CLOSE:
            self.abort()

    def drain(self) -> None:
        self.closing = True            # the next response says `connection: close`, then closes

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    # httptools callbacks (no on_message_begin: the state is reset when a head is taken)
    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        n = self.nheaders + 1
        self.nheaders = n
        if n > self.max_headers:        # limits.too_many_headers, inlined (once per header)
            raise _HeadTooLarge         # becomes HttpParserCallbackError in data_received
        lname = name.lower()
        if lname in self.capture:
            c = self.captured
            prev = c.get(lname)
            c[lname] = value if prev is None else prev + b", " + value
            if lname in _SPECIAL:
                self.special = True
        elif self.strip and lname.startswith(self.strip):
            return
        else:
            self.lines.append(b"".join((lname, b": ", value, b"\r\n")))

    def on_headers_complete(self) -> None:
        # The per-request hot path (benchmarks/gateway): the head and the exchange are built
        # without their __init__ calls, and a request with no framing header, no Expect and
        # nothing queued ahead of it is dispatched here directly.
        p = self.parser
        cap = self.captured
        cfg = self.cfg
        head = _new(RequestHead)
        head.method = p.get_method()
        head.target = self.url
        head.host = cap.get(b"host", b"")
        head.lines = self.lines
        head.captured = cap
        head.client = self.client
        head.scheme = self.scheme
        if self.v11:
            head.version = "1.1"
            self.v11 = False             # a second head in the same read asks the parser
        else:
            head.version = p.get_http_version()
        head.keep_alive = p.should_keep_alive()
        head.conn = self.conn
        head.tag = None
        special = self.special
        if special:
            self.special = False
            te = cap.get(b"transfer-encoding")
            chunked = te is not None and b"chunked" in te.lower()
            head.chunked = chunked
            cl = cap.get(b"content-length")
            # llhttp has already rejected a malformed Content-Length
            head.content_length = int(cl) if cl is not None and not chunked else -1
        else:
            head.chunked = False
            head.content_length = -1
        self.url = b""
        self.lines = []
        self.captured = {}
        self.head_size = self.nheaders = 0
        self.fresh = False
        ex = _new(H1Exchange)
        ex.cfg = cfg
        ex.head = head
        ex.proto = self
        ex.since = cfg.now
        self.current = ex
        q = self.queue
        q.append(ex)
        if len(q) == 1:
            if special:
                self._begin(ex)
                return
            # ex.begin(), inlined
            if cfg.hooks:
                ex.start_hooks(cfg.hooks)
            try:
                d = cfg.dispatch(head)
            except Exception:
                log.exception("dispatch failed for %r", head.host)
                d = INTERNAL_ERROR
            if d.__class__ is Forward:
                ex.forward(d)
            else:
                ex.act(d)
        elif len(q) > self.MAX_QUEUED:
            self.pause_reading()

    def _begin(self, ex: H1Exchange) -> None:
        cap = ex.head.captured
        if b"expect" in cap and cap[b"expect"].lower() == b"100-continue" and not ex.req_done \
                and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        ex.begin()

    def on_body(self, body: bytes) -> None:
        if self.current is not None:
            self.current.body(body)

    def on_message_complete(self) -> None:
        ex = self.current
        if ex is not None:
            if ex.head.chunked:
                ex.end()
            else:
                ex.req_done = True       # Exchange.end without a chunked body
            self.current = None

    # exchange bookkeeping
    def exchange_done(self, ex: H1Exchange) -> None:
        if ex.hooks:
            ex.end_hooks()
        q = self.queue
        if q and q[0] is ex:
            q.popleft()
        if not q:
            self.since = self.cfg.now
        if ex.close_after or self.closing and not q:
            self.closing = True
            if self.transport is not None:
                self.transport.close()
            return
        if q:
            self._begin(q[0])
        if self.paused and len(q) <= self.MAX_QUEUED // 2:
            self.resume_reading()

    def pause_reading(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.paused and self.transport is not None and not self.transport.is_closing():
            self.paused = False
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.cfg.unregister(self)
        for ex in self.queue:
            ex.abort()
        self.queue.clear()
        self.transport = None

    def pause_writing(self) -> None:
        if self.queue:
            self.queue[0].pause_response()

    def resume_writing(self) -> None:
        if self.queue:
            self.queue[0].resume_response()


def h1_factory(cfg: ProxyConfig, scheme: bytes = b"http") -> Callable[[], asyncio.Protocol]:
    return lambda: H1ServerProtocol(cfg, scheme)
