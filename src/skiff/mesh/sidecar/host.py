"""The node proxy: every meshed pod's sidecar, hosted in the data-plane process (ztunnel's way).

Each meshed pod gets the listeners an Envoy sidecar has, opened INSIDE the
pod's network namespace (a socket stays in the namespace it was made in, so
one process serves them all; a pod costs a few sockets, not a process):
- 15006 inbound: the pod's capture rules (node/network/capture.py, applied
  by its istio-init container) redirect every inbound TCP connection here;
  the original port comes from SO_ORIGINAL_DST. TLS is terminated with the
  pod's SVID and the client's certificate checked against the mesh root;
  under STRICT a plaintext or certificate-less client is refused (the reason
  logged), under PERMISSIVE plaintext passes. Then HTTP or TCP, as Envoy's
  filter chains: a mesh client's ALPN says which (istio-http/* or istio),
  else the first bytes do (dataplane/proxy/sniff.py). Each HTTP request is
  decided by mesh/authz (the decision names the policy and rule, and goes
  into the access log); denied: 403 "RBAC: access denied"; allowed: forwarded
  to the app on the pod's own localhost. A TCP connection is decided once,
  when it is made, on what TCP shows (source principal, namespace and IP,
  destination port and IP, SNI; mesh/authz compiles every rule for TCP as
  Istio does); denied: reset and logged the same way; allowed: proxied to the
  app byte for byte (at most MAX_TCP_CONNECTIONS at a time per pod). The
  app's own TLS under PERMISSIVE is decided the same way and proxied within the
  same cap.
- 15001 outbound: the app's connections, captured. A Knative cluster-local
  host sent to the local gateway's VIP is routed by the gateway's local
  route table straight to a revision pod (net-istio's mesh VirtualService);
  a ClusterIP is resolved to an endpoint (EDS); a meshed destination gets
  mTLS with the caller's SVID (its SAN checked), anything else passes
  through. That holds for HTTP and for TCP (anything not HTTP: its mTLS
  offers Istio's TCP ALPN, so the far side proxies it as TCP at once; a
  Service port declared TCP is not even peeked at, so server-first protocols
  work). Connections leave from inside the pod's namespace (its IP is the
  source) with the proxy's socket mark, which the capture rules exempt.
- 15021 /healthz/ready (the istio-proxy container's readiness) and 15020
  /app-health/<container>/<kind> (Istio's rewritten app probes, run against
  the app on the pod's localhost).
Responses carry `server: envoy` and x-envoy-upstream-service-time.

apply(part) takes a new MeshPart (config.py): pods that left lose their
listeners, new pods get theirs, a new certificate is used by new handshakes
(connections already open keep theirs: rotation drops nothing). Neighbours:
config.py (the part), controller.py (compiles it in the control plane),
dataplane/main.py (runs this), mesh/gateway/proxy.py (its local route table
and its mTLS towards meshed pods come from here).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from skiff.dataplane.proxy.cluster import (
    Cluster,
    Origin,
    UpstreamTlsContext,
)
from skiff.dataplane.proxy.h2 import H2ServerProtocol
from skiff.dataplane.proxy.http1 import (
    ConnContext,
    Defer,
    Forward,
    ProxyConfig,
    Reply,
    RequestHead,
    RequestHooks,
    UpstreamPool,
    check_peer,
    h1_factory,
    original_dst,
)
from skiff.dataplane.proxy.limits import Limits
from skiff.dataplane.proxy.listener import (
    Action,
    PeekingListener,
    Plain,
    Reject,
    Terminate,
)
from skiff.dataplane.proxy.sniff import Sniff, relay, reset, sniff_http
from skiff.dataplane.proxy.tls import ClientHello, server_context
from skiff.mesh.authz import (
    DENIED_BODY,
    Decision,
    PolicySet,
    Request,
    Workload,
    compile_policies,
    decide,
)
from skiff.mesh.ca import principal_of
from skiff.mesh.peerauth import outbound_tls
from skiff.mesh.sidecar.activator import ActivatorIdentity
from skiff.mesh.sidecar.config import (
    EMPTY,
    HEALTH_PORT,
    INBOUND_PORT,
    OUTBOUND_PORT,
    PROBE_PORT,
    PROXY_MARK,
    MeshPart,
    ServiceVip,
    SidecarWorkload,
    inbound_treatment,
)
from skiff.mesh.sidecar.protocol import ALPN_MESH_TCP, TCP_PROTOCOLS, inbound_protocol
from skiff.node.network.sandbox import inside

log = logging.getLogger("skiff.sidecar")
access = logging.getLogger("skiff.sidecar.access")

SIDECAR_LIMITS = Limits(request_timeout=600.0 + 30.0)
ALPN_MESH = ("istio-http/1.1", "istio", "http/1.1")
# TCP connections one pod's sidecar proxies at a time, inbound to its app and outbound from it
# together (one count); more are reset and logged (Envoy's circuit breaker overflow, "UO").
MAX_TCP_CONNECTIONS = 4096
MAX_SVID_CLUSTERS = 10_000     # upstream clusters kept per data-plane identity
_DENIED_HEADERS = ((b"content-type", b"text/plain"),)
_DENIED = DENIED_BODY.encode()
NO_HEALTHY = Reply(503, b"no healthy upstream", ((b"content-type", b"text/plain"),))
_netns_threads = ThreadPoolExecutor(2, thread_name_prefix="skiff-sidecar-netns")


# --- sockets inside a pod's namespace -------------------------------------------------------


def _listen_in(netns: str, port: int) -> socket.socket:
    with inside(netns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)   # data-plane workers share it
        s.bind(("0.0.0.0", port))
        s.listen(1024)
        s.setblocking(False)
        return s
    except BaseException:
        s.close()
        raise


def _socket_in(netns: str, mark: int) -> socket.socket:
    with inside(netns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setblocking(False)
    return s


async def origin_socket(origin: Origin) -> socket.socket:
    return await asyncio.get_running_loop().run_in_executor(
        _netns_threads, _socket_in, origin.netns, origin.mark)


def _peek(conn: socket.socket) -> bytes:
    """The first bytes waiting on an accepted socket, not consumed (b"" when none yet)."""
    try:
        return conn.recv(24, socket.MSG_PEEK)
    except OSError:
        return b""


def _peer(conn: socket.socket) -> str:
    try:
        return str(conn.getpeername()[0])
    except OSError:
        return ""


def _never_http() -> asyncio.Protocol:
    raise AssertionError("a TCP-only sniffer never hands over to HTTP")


_PLAIN_PATH = re.compile(rb"/[A-Za-z0-9_\-./]*(?:\?[^#%]*)?")


def _plain_path(target: bytes) -> bool:
    """A request target that Istio's path normalization leaves as it is and would not reject:
    an absolute path of plain characters with no dot segment and no percent-escape."""
    known = _plain_paths.get(target)
    if known is None:
        known = (_PLAIN_PATH.fullmatch(target) is not None and b"/." not in target
                 and b"//" not in target)
        if len(_plain_paths) >= _PLAIN_PATHS_MAX:
            _plain_paths.clear()
        _plain_paths[target] = known
    return known


# targets already judged by _plain_path (the same few recur); bounded, cleared when full
_plain_paths: dict[bytes, bool] = {}
_PLAIN_PATHS_MAX = 4096
_new = object.__new__


def _forward(ep: tuple[str, int], extra: bytes, host: bytes | None, cluster: Cluster) -> Forward:
    """Forward(ep, extra, host, cluster) without the class call's __init__ (once a request)."""
    f = _new(Forward)
    f.endpoint = ep
    f.extra = extra
    f.host = host
    f.cluster = cluster
    f.hook = None
    return f


async def connect_from(origin: Origin, address: tuple[str, int], timeout: float = 5.0,
                       ) -> socket.socket:
    sock = await origin_socket(origin)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, address), timeout)
    except BaseException:
        sock.close()
        raise
    return sock


def _headers(head: RequestHead) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in head.lines:
        name, _, value = line[:-2].partition(b":")
        out[name.decode("latin-1")] = value.strip().decode("latin-1")
    for name, value in head.captured.items():
        out.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return out


class RequestHeaders(Mapping[str, str]):
    """A request's headers as authorization reads them (lower-case str name -> str value),
    made into a dict only when a policy first looks at one: most rules never do, and the
    dict cost a pass over every header line for each request. Names are lower-case
    already (the proxy lower-cases them), which `lower_case` tells authz's Request."""
    __slots__ = ("_head", "_d")
    lower_case = True

    def __init__(self, head: RequestHead) -> None:
        self._head = head
        self._d: dict[str, str] | None = None

    def _dict(self) -> dict[str, str]:
        d = self._d
        if d is None:
            d = self._d = _headers(self._head)
        return d

    def __getitem__(self, name: str) -> str:
        return self._dict()[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self._dict().get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._dict()

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())


def _host(raw: bytes) -> str:
    return raw.decode("latin-1")


# --- the access log --------------------------------------------------------------------------

ACCESS_LOG_MAX = 10 * 1024 * 1024      # the kubelet's containerLogMaxSize default
ACCESS_LINE_MAX = 16 * 1024            # containerd's cut for one line


class AccessLog:
    """The sidecar's access log, appended to the istio-proxy container's log file in the
    container log's CRI format (so `kubectl logs -c istio-proxy` shows it). Bounded: lines are
    cut at ACCESS_LINE_MAX, and a file that reaches ACCESS_LOG_MAX starts over with a line
    that says so (nothing else rotates it: the container itself writes next to nothing)."""

    def __init__(self, path: str, limit: int = ACCESS_LOG_MAX) -> None:
        self.path = path
        self.limit = limit
        self._f: Any = None

    def write(self, line: str) -> None:
        line = line.replace("\n", " ")[:ACCESS_LINE_MAX]
        try:
            if self._f is None:
                self._f = open(self.path, "a", buffering=1)  # noqa: SIM115 (kept open)
            if self._f.tell() + len(line) + 64 > self.limit:
                self._f.close()
                self._f = open(self.path, "w", buffering=1)  # noqa: SIM115
                self._write(f"access log started over: it reached {self.limit} bytes")
            self._write(line)
        except OSError:
            self.close()

    def _write(self, line: str) -> None:
        ns = time.time_ns()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
        self._f.write(f"{stamp}.{ns % 1_000_000_000:09d}Z stdout F {line}\n")

    def close(self) -> None:
        if self._f is not None:
            with contextlib.suppress(OSError):
                self._f.close()
            self._f = None


# --- one pod's sidecar ---------------------------------------------------------------------


class PodSidecar:
    """The listeners and contexts of one meshed pod."""

    def __init__(self, host: SidecarHost, w: SidecarWorkload) -> None:
        self.host = host
        self.w = w
        self.origin = Origin(w.netns, PROXY_MARK)
        self.local = Cluster(name=f"inbound|{w.name}", origin=self.origin)
        self.plain_out = Cluster(name=f"passthrough|{w.name}", origin=self.origin)
        self.listeners: list[PeekingListener] = []
        self.servers: list[asyncio.AbstractServer] = []
        self.ready = False
        self.closed = False
        self.tcp_conns = 0                    # TCP connections proxied now, both ways
        self.max_tcp = MAX_TCP_CONNECTIONS
        self._set_identity(w)
        # Only the caller's side times its upstream (Envoy's router overwrites the header
        # the server side's sidecar set), so the inbound side adds none.
        self.inbound_cfg = ProxyConfig(self._inbound, host.pool, server=b"envoy",
                                       limits=SIDECAR_LIMITS)
        self.outbound_cfg = ProxyConfig(self._outbound, host.pool, server=b"envoy",
                                        service_time=True, limits=SIDECAR_LIMITS)
        self.health_cfg = ProxyConfig(self._health, host.pool, limits=SIDECAR_LIMITS)
        self._log_file: AccessLog | None = None

    def _set_identity(self, w: SidecarWorkload) -> None:
        root = self.host.part.root_pem
        self.w = w
        self.workload = Workload.of(w.namespace, dict(w.labels))
        self._policies_of: PolicySet | None = None     # the set _no_policy was read from
        self._no_policy = False
        self.ctx_strict = server_context(w.cert_pem, w.key_pem, ALPN_MESH, client_ca=root,
                                         require_client_cert=True)
        self.ctx_permissive = server_context(w.cert_pem, w.key_pem, ALPN_MESH, client_ca=root)
        self._mtls: dict[str, Cluster] = {}
        self._tcp_tls_of: dict[UpstreamTlsContext, UpstreamTlsContext] = {}
        self._tls_modes: dict[tuple[str, int, str, int], str] = {}
        # per request, decided once: an outbound destination (not a Service VIP) -> its
        # cluster; (port, client SPIFFE ID, TLS) -> the app's endpoint and the added headers.
        # The host empties _direct when the mesh part changes (apply).
        self._direct: dict[tuple[str, int], Cluster] = {}
        self._app_routes: dict[tuple[int, str | None, bool], tuple[tuple[str, int], bytes]] = {}
        self.probers = {path: json.loads(spec) for path, spec in w.app_probers}

    def update(self, w: SidecarWorkload) -> None:
        if (w.cert_pem, w.key_pem, w.labels, w.app_probers) != \
                (self.w.cert_pem, self.w.key_pem, self.w.labels, self.w.app_probers):
            self._set_identity(w)
        self.w = w

    # --- listeners ---------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        netns = self.w.netns
        socks = {}
        try:
            for port in (INBOUND_PORT, OUTBOUND_PORT, HEALTH_PORT, PROBE_PORT):
                socks[port] = await loop.run_in_executor(_netns_threads, _listen_in, netns, port)
        except OSError:
            for s in socks.values():
                s.close()
            raise
        name = f"{self.w.namespace}/{self.w.name}"
        inbound = PeekingListener("0.0.0.0", INBOUND_PORT, lambda _h: Reject(),
                                  sock=socks[INBOUND_PORT], decide_conn=self._decide_inbound,
                                  name=f"{name} inbound", on_drop=self._dropped,
                                  detect_timeout=self.host.detect_timeout)
        outbound = PeekingListener("0.0.0.0", OUTBOUND_PORT, lambda _h: Reject(),
                                   sock=socks[OUTBOUND_PORT], decide_conn=self._decide_outbound,
                                   name=f"{name} outbound", hello_timeout=5.0,
                                   decide_early=self._early_outbound,
                                   detect_timeout=self.host.detect_timeout)
        for li in (inbound, outbound):
            await li.start()
            self.listeners.append(li)
        for port in (HEALTH_PORT, PROBE_PORT):
            self.servers.append(await loop.create_server(
                h1_factory(self.health_cfg), sock=socks[port]))
        self.ready = True

    async def stop(self) -> None:
        self.closed = True
        self.ready = False
        for s in self.servers:
            s.close()
        for li in self.listeners:
            await li.close()
        await asyncio.gather(self.inbound_cfg.drain(1.0), self.outbound_cfg.drain(1.0),
                             return_exceptions=True)
        for li in self.listeners:
            await li.stop()
        if self._log_file is not None:
            self._log_file.close()

    # --- the access log ----------------------------------------------------------------
    def log_access(self, line: str) -> None:
        access.debug("%s/%s %s", self.w.namespace, self.w.name, line)
        if self.w.access_log:
            if self._log_file is None or self._log_file.path != self.w.access_log:
                self._log_file = AccessLog(self.w.access_log)
            self._log_file.write(line)

    def _dropped(self, reason: str) -> None:
        self.log_access(f"inbound connection refused: {reason}")

    # --- inbound -----------------------------------------------------------------------
    def _decide_inbound(self, hello: ClientHello | None, conn: socket.socket) -> Action:
        odst = original_dst(conn)
        if odst is None:
            return Reject("not a captured connection")
        port = odst[1]
        how = inbound_treatment(self.w.mode_for(port), hello is not None,
                                hello.alpn if hello is not None else ())
        if how in ("mtls", "mtls-optional"):
            ctx = self.ctx_strict if how == "mtls" else self.ctx_permissive
            chain = inbound_protocol(hello.alpn if hello is not None else ())
            if chain == "http":      # a mesh HTTP client (the usual case): no sniffing
                return Terminate(ctx, h1_factory(self.inbound_cfg, b"https"))
            return Terminate(ctx, self._sniffer(b"https", chain))
        if how == "passthrough":
            # the app's own TLS (PERMISSIVE): TCP as far as authorization can tell
            peer = _peer(conn)
            d = self.tcp_decision(port, None, peer, hello.sni if hello is not None else "")
            self._log_tcp(d, port, None, peer)
            if not d.allowed:
                return Reject(d.reason)
            return self._passthrough(port)
        if how == "reject":
            self.log_access(f"inbound plaintext connection to port {port} refused: "
                            "STRICT mTLS requires a client certificate")
            return Reject("plaintext under STRICT mTLS")
        sent = _peek(conn)
        if sniff_http(sent):                  # plaintext HTTP (PERMISSIVE), the usual case
            return Plain(h1_factory(self.inbound_cfg, b"http"))
        # nothing sent within the detection timeout (a server-first protocol): TCP at once
        return Plain(self._sniffer(b"http", "sniff" if sent else "tcp"))

    def _passthrough(self, port: int) -> Plain:
        """The app's own TLS, let through: the same bounded TCP proxy as every other TCP
        chain (MAX_TCP_CONNECTIONS, the idle timeout). The hello was only peeked, so the app
        reads it whole."""
        app = ("127.0.0.1", port)
        return Plain(lambda: Sniff(_never_http, lambda t, b: self._relay(
            t, b, app, None, None, "inbound"), first="tcp"))

    def _sniffer(self, scheme: bytes, first: str) -> Callable[[], asyncio.Protocol]:
        # h2c (prior knowledge) is served as HTTP/2, each request decided as HTTP; the app is
        # reached over HTTP/1.1, as every upstream of skiff's proxy is
        cfg = self.inbound_cfg
        http = h1_factory(cfg, scheme)
        detect = self.host.detect_timeout
        silent = SIDECAR_LIMITS.header_timeout
        return lambda: Sniff(http, self._inbound_tcp, first=first, detect_timeout=detect,
                             silent_timeout=silent, h2=lambda: H2ServerProtocol(cfg, scheme))

    # --- inbound TCP ---------------------------------------------------------------------
    def tcp_decision(self, port: int, spiffe: str | None, peer: str, sni: str | None,
                     ) -> Decision:
        """The verdict on a TCP connection to `port` of this pod, from what a TCP filter chain
        can see: the peer's certificate (its SPIFFE ID: source principal, namespace and
        service account), the peer's IP, the destination port and IP, the SNI. Rules with
        HTTP-only fields follow Istio (mesh/authz/model.py compiles each rule for TCP too):
        an ALLOW rule using one never matches TCP ("Istio ignores the invalid ALLOW rule"),
        a DENY rule drops them and so matches more ("due to its restrictive nature it denies
        all the traffic to the tcp ports"), istio.io docs/tasks/security/authorization/
        authz-tcp."""
        principal = principal_of(spiffe) if spiffe else None
        return decide(self.host.policies, Request(
            destination=self.workload, port=port, http=False, source_principal=principal,
            source_ip=peer, destination_ip=self.w.ip, sni=sni or ""))

    def _log_tcp(self, d: Decision, port: int, spiffe: str | None, peer: str) -> None:
        who = principal_of(spiffe) if spiffe else "-"
        if not d.allowed:
            self.log_access(f'"TCP" rbac_access_denied source={who} ip={peer} port={port}: '
                            f"{d.reason}")
        elif d.policy:
            self.log_access(f'"TCP" allowed source={who} ip={peer} port={port}: '
                            f"{d.action} policy {d.policy} rule {d.rule}")

    def _inbound_tcp(self, transport: asyncio.Transport, early: bytes) -> None:
        """A connection on the TCP chain: decided once, then proxied to the app (or reset)."""
        conn = ConnContext(transport)
        odst = conn.original_dst
        port = odst[1] if odst else 0
        peer = str(conn.peer[0]) if conn.peer else ""
        spiffe = conn.spiffe_id
        d = self.tcp_decision(port, spiffe, peer, conn.sni)
        self._log_tcp(d, port, spiffe, peer)
        if not d.allowed or not port:
            reset(transport)
            return
        self._relay(transport, early, ("127.0.0.1", port), None, None, "inbound")

    def _relay(self, transport: asyncio.Transport, early: bytes, ep: tuple[str, int],
               tls: UpstreamTlsContext | None, ctx: ssl.SSLContext | None, way: str) -> None:
        """Proxy an accepted connection to `ep` as TCP, from inside this pod's namespace (with
        mTLS when `tls`), within MAX_TCP_CONNECTIONS."""
        if self.tcp_conns >= self.max_tcp:
            self.log_access(f'"TCP" {way} connection to {ep[0]}:{ep[1]} reset: upstream_overflow '
                            f"({self.max_tcp} TCP connections open)")
            reset(transport)
            return
        self.tcp_conns += 1

        def done() -> None:
            self.tcp_conns -= 1

        def failed(e: BaseException) -> None:
            self.log_access(f'"TCP" {way} connection to {ep[0]}:{ep[1]} failed: '
                            f"{type(e).__name__}: {e}")
        check = None if tls is None else functools.partial(check_peer, tls=tls)
        task = relay(transport, early, lambda: connect_from(self.origin, ep), tls=ctx,
                     check=check, on_close=done, on_fail=failed)
        self.host.keep(task)

    def _inbound(self, head: RequestHead) -> Forward | Reply:
        conn = head.conn
        odst = conn.original_dst
        port = odst[1] if odst else 0
        spiffe = conn.spiffe_id
        policies = self.host.policies
        if self._policies_of is not policies:      # a new policy set: ask once per sidecar
            self._policies_of = policies
            self._no_policy = policies.for_workload(self.workload).none
        if self._no_policy and _plain_path(head.target):
            # no policy selects this pod and the path needs no normalizing: nothing to decide
            # (decide() would allow it with no policy named, and nothing goes to the log)
            return self._to_app(port, spiffe, conn.tls)
        principal = principal_of(spiffe) if spiffe else None
        peer = conn.peer
        req = Request(destination=self.workload, port=port, host=_host(head.host),
                      method=head.method.decode("latin-1"),
                      path=head.target.decode("latin-1"), headers=RequestHeaders(head),
                      source_principal=principal, source_ip=str(peer[0]) if peer else "",
                      destination_ip=self.w.ip, sni=conn.sni or "")
        d = decide(self.host.policies, req)
        who = principal or "-"
        if not d.allowed:
            self.log_access(f'"{req.method} {req.path}" {d.status or 403} rbac_access_denied '
                            f"source={who} port={port}: {d.reason}")
            return Reply(d.status or 403, _DENIED, _DENIED_HEADERS)
        if d.policy:
            self.log_access(f'"{req.method} {req.path}" allowed source={who} port={port}: '
                            f"{d.action} policy {d.policy} rule {d.rule}")
        return self._to_app(port, spiffe, conn.tls)

    def _to_app(self, port: int, spiffe: str | None, tls: bool) -> Forward:
        key = (port, spiffe, tls)
        route = self._app_routes.get(key)
        if route is None:
            xfcc = b""
            if spiffe:
                xfcc = (b"x-forwarded-client-cert: By=" + self.w.spiffe_id.encode() +
                        b";URI=" + spiffe.encode() + b"\r\n")
            route = (("127.0.0.1", port),
                     xfcc + b"x-forwarded-proto: " + (b"https" if tls else b"http") + b"\r\n")
            if len(self._app_routes) >= 1024:
                self._app_routes.clear()
            self._app_routes[key] = route
        return _forward(route[0], route[1], None, self.local)

    # --- outbound ----------------------------------------------------------------------
    def _decide_outbound(self, hello: ClientHello | None, conn: socket.socket) -> Action:
        odst = original_dst(conn)
        if odst is None:
            return Reject("not a captured connection")
        if hello is None:
            first = _peek(conn)
            if first and sniff_http(first) is not False:
                # HTTP/1.x (or a few bytes that may begin it); h2c and all else go as TCP
                return Plain(h1_factory(self.outbound_cfg, b"http"))
        return self._outbound_tcp(odst)

    def _early_outbound(self, conn: socket.socket) -> Action | None:
        """A connection to a Service port declared TCP (tcp-*, mysql, appProtocol: tcp...)
        is TCP before any byte: the client's first bytes are not awaited, so a server-first
        protocol is not kept waiting (Istio wants such ports declared; its detection timeout
        is off by default). None: the first bytes decide."""
        declared = self.host.tcp_declared
        if not declared:                      # no Service port says TCP: no syscall either
            return None
        odst = original_dst(conn)
        if odst is None or odst not in declared:
            return None
        return self._outbound_tcp(odst)

    def _outbound_tcp(self, odst: tuple[str, int]) -> Action:
        """The app's connection that is not HTTP (its own TLS, or any other bytes): to an
        endpoint of the Service (a ClusterIP) or to the address it dialled, wrapped in mTLS
        with Istio's TCP ALPN when the destination is meshed (the same choice as for HTTP)."""
        svc = self.host.vips.get(odst)
        if svc is not None:
            eps = svc.endpoints
            if not eps:
                self.log_access(f'"TCP" outbound to {odst[0]}:{odst[1]} ({svc.service}) reset: '
                                "no healthy upstream")
                return Reject("no healthy upstream")
            ep = self.host.next_endpoint(odst, eps)
            cluster = self._cluster_for(ep, svc)
        else:
            ep = odst
            cluster = self._direct_cluster(ep)
        if self.tcp_conns >= self.max_tcp:
            self.log_access(f'"TCP" outbound connection to {ep[0]}:{ep[1]} reset: '
                            f"upstream_overflow ({self.max_tcp} TCP connections open)")
            return Reject("upstream overflow")
        if cluster.tls is None:
            return Plain(self._outbound_relay(ep, None))
        return Plain(self._outbound_relay(ep, self._tcp_tls(cluster.tls)))

    def _outbound_relay(self, ep: tuple[str, int], tls: UpstreamTlsContext | None,
                        ) -> Callable[[], asyncio.Protocol]:
        ctx = None if tls is None else self.host.pool.context_for(tls)
        return lambda: Sniff(_never_http, lambda t, b: self._relay(t, b, ep, tls, ctx,
                                                                   "outbound"), first="tcp")

    def _tcp_tls(self, tls: UpstreamTlsContext) -> UpstreamTlsContext:
        """The mTLS settings of a TCP stream to the same peer: Istio's TCP ALPN instead of
        istio-http (so the far side takes its TCP chain without waiting for bytes)."""
        t = self._tcp_tls_of.get(tls)
        if t is None:
            if len(self._tcp_tls_of) >= 1024:
                self._tcp_tls_of.clear()
            t = self._tcp_tls_of[tls] = dataclasses.replace(tls, alpn=ALPN_MESH_TCP)
        return t

    def _outbound(self, head: RequestHead) -> Forward | Reply | Defer:
        odst = head.conn.original_dst
        if odst is None:
            return Reply(404)
        host = self.host
        if odst in host.local_gateways and host.route_local is not None:
            r = host.route_local(head, lambda: self._outbound(head), self.w.spiffe_id)
            if isinstance(r, (Reply, Defer)):
                return r
            ep, extra, rewrite, _cluster = r
            if head.tag is None:
                return self._to(ep, extra, rewrite)
            # the activator chose the pod: it goes with the activator's identity (when it has
            # one), and the activator hears the end
            cluster = host.activator.cluster(ep)
            fwd = self._to(ep, extra, rewrite) if cluster is None else \
                _forward(ep, extra, rewrite, cluster)
            fwd.hook = host.activator_hook
            return fwd
        svc = host.vips.get(odst)
        if svc is not None:
            eps = svc.endpoints
            if not eps:
                return NO_HEALTHY
            return self._to(host.next_endpoint(odst, eps), service=svc)
        return self._to(odst)

    def _to(self, ep: tuple[str, int], extra: bytes = b"", rewrite: bytes | None = None,
            service: ServiceVip | None = None) -> Forward:
        if service is not None:
            return _forward(ep, extra, rewrite, self._cluster_for(ep, service))
        return _forward(ep, extra, rewrite, self._direct_cluster(ep))

    def _direct_cluster(self, ep: tuple[str, int]) -> Cluster:
        cluster = self._direct.get(ep)         # a pod address: decided once per mesh part
        if cluster is None:
            cluster = self._cluster_for(ep, None)
            if len(self._direct) >= 4096:
                self._direct.clear()
            self._direct[ep] = cluster
        return cluster

    def _cluster_for(self, ep: tuple[str, int], service: ServiceVip | None) -> Cluster:
        """How this pod reaches `ep`: mTLS with its SVID when a sidecar guards it and the
        mesh says so, else plain from the pod's namespace."""
        dest = self.host.by_ip.get(ep[0])
        if dest is None:
            return self.plain_out
        if service is not None and self.host.part.destination_rules:
            mode = self._tls_mode(service, dest, ep[1])
            if mode != "ISTIO_MUTUAL":
                # DISABLE (and the app-level SIMPLE/MUTUAL, which the app speaks itself)
                return self.plain_out
        elif dest.mode_for(ep[1]) == "DISABLE" or not self.host.part.auto_mtls:
            return self.plain_out
        return self._mtls_to(dest)

    def _tls_mode(self, svc: ServiceVip, dest: SidecarWorkload, port: int) -> str:
        """What the caller's DestinationRules say for this service port (auto mTLS without)."""
        key = (svc.service, svc.port, dest.uid, port)
        mode = self._tls_modes.get(key)
        if mode is None:
            ns, _, name = svc.service.partition("/")
            part = self.host.part
            mode = outbound_tls(part.destination_rules, f"{name}.{ns}.svc.cluster.local",
                                svc.port, self.w.namespace, root_namespace=part.root_namespace,
                                auto_mtls=part.auto_mtls, destination_has_sidecar=True,
                                destination_mtls=dest.mode_for(port),
                                client_labels=dict(self.w.labels))
            if len(self._tls_modes) > 4096:
                self._tls_modes.clear()
            self._tls_modes[key] = mode
        return mode

    def _mtls_to(self, dest: SidecarWorkload) -> Cluster:
        c = self._mtls.get(dest.spiffe_id)
        if c is None:
            tls = UpstreamTlsContext(sni=None, cert_pem=self.w.cert_pem, key_pem=self.w.key_pem,
                                     ca_pem=self.host.part.root_pem, match_san=(dest.spiffe_id,),
                                     alpn=("istio-http/1.1", "http/1.1"))
            c = self._mtls[dest.spiffe_id] = Cluster(name=f"outbound|{dest.spiffe_id}", tls=tls,
                                                    origin=self.origin)
        return c

    # --- 15021 and 15020 ---------------------------------------------------------------
    def _health(self, head: RequestHead) -> Forward | Reply | Defer:
        path = head.target.split(b"?", 1)[0].decode("latin-1")
        if path == "/healthz/ready":
            return Reply(200) if self.ready else Reply(503)
        spec = self.probers.get(path)
        if spec is None:
            return Reply(404)
        return Defer(self._probe(spec), timeout=float(spec.get("timeoutSeconds") or 1) + 1,
                     timeout_reply=Reply(503))

    async def _probe(self, spec: dict[str, Any]) -> Reply:
        timeout = float(spec.get("timeoutSeconds") or 1)
        get = spec.get("httpGet")
        tcp = spec.get("tcpSocket")
        port = int((get or tcp or {}).get("port") or 0)
        if not port:
            return Reply(503)
        try:
            sock = await connect_from(self.origin, ("127.0.0.1", port), timeout)
        except (OSError, TimeoutError):
            return Reply(503)
        if get is None:
            sock.close()
            return Reply(200)
        try:
            reader, writer = await asyncio.open_connection(sock=sock)
            path = str(get.get("path") or "/")
            headers = "".join(f"{h['name']}: {h['value']}\r\n" for h in get.get("httpHeaders") or []
                              if isinstance(h, dict) and "name" in h and "value" in h)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                         f"User-Agent: kube-probe/1.28\r\n{headers}Connection: close\r\n\r\n"
                         .encode())
            line = await asyncio.wait_for(reader.readline(), timeout)
            writer.close()
            status = int(line.split()[1]) if line.startswith(b"HTTP/") else 0
        except (OSError, TimeoutError, ValueError, IndexError):
            return Reply(503)
        return Reply(200 if 200 <= status < 400 else 503)


# --- all of them ---------------------------------------------------------------------------

# the gateway's local table for a caller (its SPIFFE ID, for the activator's policies)
RouteLocal = Callable[[RequestHead, Callable[[], "Forward | Reply | Defer"], "str | None"],
                      "tuple[tuple[str, int], bytes, bytes | None, str] | Reply | Defer"]


class SidecarHost:
    """Every meshed pod's sidecar, and what they share (policies, EDS by VIP, the pool)."""

    def __init__(self) -> None:
        self.part: MeshPart = EMPTY
        self.pool = UpstreamPool()
        self.pool.origin_socket = origin_socket
        self.pods: dict[str, PodSidecar] = {}
        self.policies: PolicySet = compile_policies([])
        self.by_ip: dict[str, SidecarWorkload] = {}
        self.vips: dict[tuple[str, int], ServiceVip] = {}
        # the VIP:ports of self.vips whose Service port is declared TCP (TCP_PROTOCOLS): the
        # one answer to "is this original destination a TCP port", made once per part
        self.tcp_declared: frozenset[tuple[str, int]] = frozenset()
        self.rr: dict[tuple[str, int], int] = {}
        self.local_gateways: frozenset[tuple[str, int]] = frozenset()
        self.route_local: RouteLocal | None = None     # the gateway's local table (main.py)
        self.activator_hook: RequestHooks | None = None  # told when a request it routed ends
        self.activator = ActivatorIdentity(self)          # its SVID and policies, as a workload
        self.gateway_clusters: dict[str, Cluster] = {}
        self._gateway_ctx: ssl.SSLContext | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._relays: set[asyncio.Task[None]] = set()    # TCP proxies still connecting
        # meshConfig.protocolDetectionTimeout in seconds (0: Istio's default, none): a client
        # silent this long is taken for a server-first protocol and proxied as TCP
        self.detect_timeout = 0.0
        self._lock = asyncio.Lock()

    def keep(self, task: asyncio.Task[None]) -> None:
        """Hold a reference to a sidecar's task until it ends (the loop keeps only weak ones)."""
        self._relays.add(task)
        task.add_done_callback(self._relays.discard)

    def apply_data(self, data: Any) -> None:
        """The channel's handler: decode (ValueError refuses it), then apply."""
        from skiff.mesh.sidecar.config import decode
        self.apply(decode(data))

    def apply(self, part: MeshPart) -> None:
        self.part = part
        self.detect_timeout = part.protocol_detection_timeout
        self.policies = compile_policies(part.policies, part.root_namespace)
        self.by_ip = {w.ip: w for w in part.workloads}
        self.vips = {(s.vip, s.port): s for s in part.services}
        self.tcp_declared = frozenset(k for k, s in self.vips.items()
                                      if s.protocol in TCP_PROTOCOLS)
        for sc in self.pods.values():
            sc._tls_modes.clear()
            sc._direct.clear()
            for li in sc.listeners:
                li.detect_timeout = self.detect_timeout
        self.local_gateways = frozenset(part.local_gateways)
        self.gateway_clusters = {}
        self._gateway_ctx = None
        self.activator.reset()
        task = asyncio.get_running_loop().create_task(self._converge(part))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def next_endpoint(self, vip: tuple[str, int], eps: tuple[tuple[str, int], ...],
                      ) -> tuple[str, int]:
        """A Service VIP's next endpoint (`eps` non-empty), round robin."""
        n = self.rr.get(vip, 0)
        self.rr[vip] = n + 1
        return eps[n % len(eps)]

    def gateway_cluster(self, ep: tuple[str, int]) -> Cluster | None:
        """How the ingress and local gateways reach `ep`: mTLS with the gateway's identity
        when a sidecar guards it, else None (plain)."""
        return self.svid_cluster(self.gateway_clusters, self.part.gateway_cert,
                                 self.part.gateway_key, ep)

    def svid_cluster(self, cache: dict[str, Cluster], cert: bytes, key: bytes,
                     ep: tuple[str, int]) -> Cluster | None:
        """mTLS from the data plane's own namespace with the SVID (cert, key) to the sidecar
        that guards `ep`, one per destination identity in `cache`; None when no sidecar
        guards it or there is no SVID."""
        dest = self.by_ip.get(ep[0])
        if dest is None or not cert:
            return None
        c = cache.get(dest.spiffe_id)
        if c is None:
            tls = UpstreamTlsContext(cert_pem=cert, key_pem=key, ca_pem=self.part.root_pem,
                                     match_san=(dest.spiffe_id,),
                                     alpn=("istio-http/1.1", "http/1.1"))
            if len(cache) >= MAX_SVID_CLUSTERS:
                cache.clear()
            c = cache[dest.spiffe_id] = Cluster(name=f"outbound|{dest.spiffe_id}", tls=tls)
        return c

    def gateway_server_context(self) -> ssl.SSLContext | None:
        """The gateway's SVID as a server that requires a mesh client certificate (the local
        gateway's ISTIO_MUTUAL), None before the mesh has issued one."""
        p = self.part
        if self._gateway_ctx is None and p.gateway_cert and p.root_pem:
            try:
                self._gateway_ctx = server_context(p.gateway_cert, p.gateway_key,
                                                   client_ca=p.root_pem, require_client_cert=True)
            except (ssl.SSLError, ValueError) as e:
                log.warning("the gateway's mesh certificate is not usable: %s", e)
        return self._gateway_ctx

    async def _converge(self, part: MeshPart) -> None:
        async with self._lock:
            if part is not self.part:
                return                  # a newer part is on its way
            want = {w.uid: w for w in part.workloads}
            for uid in [u for u in self.pods if u not in want or
                        (want[u].netns, want[u].ip) != (self.pods[u].w.netns, self.pods[u].w.ip)]:
                await self.pods.pop(uid).stop()
            for uid, w in want.items():
                sc = self.pods.get(uid)
                if sc is not None:
                    try:
                        sc.update(w)
                    except (ssl.SSLError, ValueError) as e:
                        log.warning("sidecar %s/%s: certificate not usable: %s", w.namespace,
                                    w.name, e)
                    continue
                try:
                    sc = PodSidecar(self, w)
                    await sc.start()
                except (OSError, ssl.SSLError, ValueError) as e:
                    log.warning("sidecar %s/%s: cannot open its listeners in %s: %s",
                                w.namespace, w.name, w.netns, e)
                    continue
                self.pods[uid] = sc

    async def stop(self) -> None:
        for t in [*self._tasks, *self._relays]:
            t.cancel()
        await asyncio.gather(*self._tasks, *self._relays, return_exceptions=True)
        await asyncio.gather(*(sc.stop() for sc in self.pods.values()), return_exceptions=True)
        self.pods.clear()
        self.pool.close()
