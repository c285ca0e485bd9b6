"""The ingress gateway's data plane: Envoy's job for Knative traffic, on dataplane/proxy/.

GatewayProxy holds the current Snapshot (the generic model of dataplane/model.py,
compiled by snapshot.py in the control plane) and serves it inside the
data-plane process (dataplane/main.py):
- dispatch: Host (case-insensitive, port stripped; exact, then the most
  specific wildcard) -> the KIngress rule -> its first matching path
  (prefix, exact header matches) -> a split by percent (smooth weighted
  round robin, deterministic per request count) -> one of the revision's
  ready endpoints (round robin). Unknown host: 404 with an empty body, as
  Envoy; no ready endpoint: 503 "no healthy upstream".
- request headers as an Istio ingress gateway sets them: x-forwarded-for
  (appended), x-forwarded-proto, forwarded, x-request-id (kept or made),
  x-envoy-attempt-count, x-envoy-decorator-operation; x-envoy-* headers from
  clients are dropped; the KIngress appendHeaders (path, then split) added.
  Responses get `server: istio-envoy` (mesh mode; `envoy` under Kourier)
  and x-envoy-upstream-service-time.
- listeners: the ingress gateway's own TLS listener (Gateway port 443) on
  a loopback port behind the router, with one ssl context per Gateway server
  chosen by SNI (the most specific host; the first server by default) and
  ALPN h2/http/1.1; the local gateway (8081) on settings.local_gateway_port,
  plain HTTP or TLS as its Gateway says. The router (router/router.py)
  calls edge_factory() for its HTTP port and edge-terminated TLS, and
  splices passthrough hosts to passthrough_address.

Limits (dataplane/proxy/limits.py) are Envoy's defaults except the request timeout:
Knative lets a revision take up to max-revision-timeout-seconds (600 s by
default) and enforces a revision's timeoutSeconds itself; a KIngress path
carries no timeout (net-kourier and net-istio set none on the route), so
the gateway's own request timeout is a backstop above that: 630 s.
stop() is the graceful one: listeners close first, then every connection of
the gateway's and the router's (they share these ProxyConfigs) drains at
once, within drain_timeout.

swap() replaces the snapshot atomically (a whole one, or one with new
routes or listeners from a "routes"/"listeners" update): one reference, read once per
request, so in-flight requests finish on the endpoint they were given; new
TLS connections pick up new certificates (a rotated Secret) from the SNI
callback, which reads the current snapshot. Round-robin counters and host
caches live with each snapshot's runtime and start afresh with it.
update_endpoints() is the endpoints-only update (a pod became ready or went
away): it changes the runtime's cluster -> endpoints map in place, so the
split schedules' positions survive it.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import random
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from skiff.dataplane.model import (
    EMPTY,
    EMPTY_TABLE,
    GatewaySettings,
    HttpPath,
    Listener,
    Server,
    Snapshot,
    Split,
    VirtualHost,
)
from skiff.dataplane.proxy.alloc import tune_allocator
from skiff.dataplane.proxy.cluster import Cluster
from skiff.dataplane.proxy.h2 import alpn_factory
from skiff.dataplane.proxy.http1 import (
    Defer,
    Endpoint,
    Forward,
    ProxyConfig,
    Reply,
    RequestHead,
    RequestHooks,
    UpstreamPool,
    h1_factory,
)
from skiff.dataplane.proxy.limits import Limits
from skiff.dataplane.proxy.listener import (
    Action,
    PeekingListener,
    Plain,
    Reject,
    Terminate,
    server_on,
)
from skiff.dataplane.proxy.tls import ClientHello, note_sni, server_context

log = logging.getLogger("skiff.gateway")

ProtocolFactory = Callable[[], asyncio.Protocol]

# Headers the gateway rewrites rather than passes along.
POLICY_CAPTURE = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"forwarded",
                            b"x-request-id"})
NOT_FOUND = Reply(404)
NO_HEALTHY_UPSTREAM = Reply(503, b"no healthy upstream", ((b"content-type", b"text/plain"),))
_HOST_CACHE_MAX = 4096
GATEWAY_LIMITS = Limits(request_timeout=600.0 + 30.0)
_ID_MASK = 0xFFFFFFFFFFFF
new_forward = object.__new__


class _RequestIds:
    """x-request-id values in UUID v4 layout: 80 random bits drawn once per process, then a
    48-bit counter. Envoy draws a fresh UUID per request; ids must be unique, not secret, and
    this costs one format per request instead of a random draw and two."""

    def __init__(self) -> None:
        h = os.urandom(10).hex()
        self.prefix = f"{h[:8]}-{h[8:12]}-4{h[12:15]}-{'89ab'[int(h[15], 16) & 3]}{h[16:19]}-"\
            .encode()
        self.count = itertools.count(random.getrandbits(40) + 1)

    def next(self) -> bytes:
        return b"%s%012x" % (self.prefix, next(self.count) & _ID_MASK)


_ids = _RequestIds()
request_id = _ids.next


def _host_key(raw: bytes) -> str:
    h = raw.decode("latin-1").strip().lower()
    if h.startswith("["):
        end = h.find("]")
        return h[:end + 1] if end > 0 else h
    i = h.find(":")
    if i >= 0:
        h = h[:i]
    return h.rstrip(".")


# A host whose route needs no per-request choice: (endpoint, route header lines, Host rewrite).
_Simple = tuple[Endpoint, bytes, "bytes | None", str]     # endpoint, headers, host, cluster
_NOT_SIMPLE: _Simple = (("", 0), b"", None, "")


# On a request the activator sent to a pod (upstream's activator sets it): the activator
# counts it for the autoscaler, so the pod's queue-proxy reports it as proxied and the
# collector subtracts it; each request is counted once.
ACTIVATOR_PROXIED = b"k-proxy-request: activator\r\n"


class _Cold:
    """A route whose revision cluster has no ready endpoint or no free capacity (the activator
    holds it), with what the route chose for it: the request goes on to this revision, with
    these headers and host, once released (_resume)."""
    __slots__ = ("cluster", "headers", "rewrite")

    def __init__(self, cluster: str, headers: bytes = b"", rewrite: bytes | None = None) -> None:
        self.cluster = cluster
        self.headers = headers
        self.rewrite = rewrite


class ActivatorSeam(RequestHooks, Protocol):
    """What the gateway asks of the activator (serving/activator.py), which the data plane
    plugs in: whether it fronts a revision cluster, holding a request for one without a ready
    pod, choosing the pod while it is in the path (a RequestHooks: told when that request
    ends), and the endpoints updates that release held requests."""

    def in_path(self, cluster: str) -> bool: ...

    def hold(self, cluster: str, redispatch: Callable[[], Forward | Reply | Defer],
             ) -> Reply | Defer: ...

    def pick(self, cluster: str, eps: Sequence[Endpoint]) -> tuple[str, Endpoint] | None: ...

    def endpoints_changed(self, changes: Mapping[str, tuple[Any, ...]]) -> None: ...


class ActivatorMesh(Protocol):
    """The activator as a mesh workload (mesh/sidecar/activator.py): the policies that select
    it, for a request from `source` (a SPIFFE ID; None: this gateway), and its own mTLS to a
    meshed pod (None: no SVID, or no sidecar there)."""

    def admits(self, head: RequestHead, source: str | None) -> Reply | None: ...

    def cluster(self, ep: Endpoint) -> Cluster | None: ...


def _never(_cluster: str) -> bool:
    return False


class _Runtime:
    """What a snapshot needs while it serves: counters, host caches, ssl contexts."""

    def __init__(self, snap: Snapshot, contexts: dict[bytes, ssl.SSLContext]) -> None:
        self.snap = snap
        self.endpoints = snap.endpoints
        # dispatcher -> the route configuration it serves: the router's edge every external
        # host, a listener the one it names (none of that name: every host 404, Envoy's NR)
        self.tables = {"external": snap.external, "local": snap.local}
        for bind, li in snap.listeners.items():
            if bind != "http":
                self.tables[bind] = snap.routes.get(li.route_config, EMPTY_TABLE)
        self.host_cache: dict[str, dict[bytes, VirtualHost | None]] = {t: {} for t in self.tables}
        self.simple: dict[str, dict[bytes, _Simple]] = {t: {} for t in self.tables}
        # clusters whose requests the activator routes (never cached as simple routes)
        self.in_path: Callable[[str], bool] = _never
        self.counters: dict[int, int] = {}          # per path: its split schedule's position
        self.ep_counters: dict[str, int] = {}       # per cluster: its endpoints' round robin
        self.extra: dict[int, bytes] = {}
        self.contexts: dict[str, list[tuple[Server, ssl.SSLContext]]] = {}
        self.sni_cache: dict[tuple[str, str | None], ssl.SSLContext | None] = {}
        for bind, li in snap.listeners.items():
            pairs = []
            for s in li.servers:
                if not s.terminates_tls:
                    continue
                ctx = _context_for(s, contexts)
                if ctx is not None:
                    pairs.append((s, ctx))
            self.contexts[bind] = pairs

    def lookup(self, table: str, raw_host: bytes) -> VirtualHost | None:
        cache = self.host_cache[table]
        try:
            return cache[raw_host]
        except KeyError:
            pass
        vh = self.tables[table].lookup(_host_key(raw_host))
        if len(cache) >= _HOST_CACHE_MAX:
            cache.clear()             # random Host headers must not grow memory without bound
        cache[raw_host] = vh
        return vh

    def simple_route(self, table: str, raw_host: bytes) -> _Simple:
        """The route of a host with one trivially matching path, one split and one endpoint
        (the usual Knative service), decided once per snapshot; _NOT_SIMPLE otherwise."""
        vh = self.lookup(table, raw_host)
        r = _NOT_SIMPLE
        if vh is not None and not vh.redirect_http and len(vh.paths) == 1:
            path = vh.paths[0]
            if not path.headers and len(path.prefix) <= 1 and len(path.schedule) == 1:
                split = path.splits[path.schedule[0]]
                eps = self.endpoints.get(split.cluster, ())
                if len(eps) == 1 and not self.in_path(split.cluster):
                    r = (eps[0], self.route_headers(path, split),
                         path.rewrite_host.encode() if path.rewrite_host else None, split.cluster)
        cache = self.simple[table]
        if len(cache) >= _HOST_CACHE_MAX:
            cache.clear()
        cache[raw_host] = r
        return r

    def route_headers(self, path: HttpPath, split: Split) -> bytes:
        extra = self.extra.get(id(split))        # a Split belongs to one path
        if extra is None:
            extra = self.extra[id(split)] = _route_headers(path, split)
        return extra

    def carry_over(self, old: _Runtime) -> None:
        """A full swap keeps the state of what did not change: each path whose match and
        splits are the same (in the same table, for the same host) continues its split
        schedule where it was, and each cluster its endpoints' round robin. So split
        percentages stay exact when a snapshot is recompiled for an unrelated reason (another
        service, a certificate), as they do under endpoint-only updates. Counters are keyed by
        the path objects' identity on the hot path; this maps them across the two snapshots."""
        positions: dict[tuple[str, str, HttpPath], int] = {}
        for name, table in old.tables.items():
            for host, vh in table.items():
                for path in vh.paths:
                    n = old.counters.get(id(path))
                    if n:
                        positions[(name, host, path)] = n
        if positions:
            for name, table in self.tables.items():
                for host, vh in table.items():
                    for path in vh.paths:
                        n = positions.get((name, host, path))
                        if n:
                            self.counters[id(path)] = n
        for cluster, n in old.ep_counters.items():
            if cluster in self.endpoints:
                self.ep_counters[cluster] = n

    def next(self, key: int) -> int:
        n = self.counters.get(key, 0)
        self.counters[key] = n + 1
        return n

    def next_endpoint(self, cluster: str) -> int:
        n = self.ep_counters.get(cluster, 0)
        self.ep_counters[cluster] = n + 1
        return n

    def update_endpoints(self, changes: Mapping[str, tuple[Endpoint, ...]]) -> None:
        """EDS: new endpoints for some clusters. Routes, ssl contexts and the split counters
        stay (so traffic splits keep their exact proportions under pod churn); only the host
        caches that hold a chosen endpoint are dropped."""
        self.snap = self.snap.with_endpoints(changes)
        self.endpoints = self.snap.endpoints
        self.simple = {t: {} for t in self.tables}

    def sni_context(self, bind: str, sni: str | None) -> ssl.SSLContext | None:
        key = (bind, sni)
        try:
            return self.sni_cache[key]
        except KeyError:
            pass
        ctx: ssl.SSLContext | None = None
        li = self.snap.listeners.get(bind)
        pairs = self.contexts.get(bind) or []
        if li is not None and pairs:
            server = li.server_for_sni(sni)
            ctx = next((c for s, c in pairs if s is server), pairs[0][1])
        if len(self.sni_cache) < _HOST_CACHE_MAX:
            self.sni_cache[key] = ctx
        return ctx


def _context_for(s: Server, cache: dict[bytes, ssl.SSLContext]) -> ssl.SSLContext | None:
    key = hashlib.sha256(s.cert_pem + b"\0" + s.key_pem).digest()
    ctx = cache.get(key)
    if ctx is None:
        try:
            ctx = server_context(s.cert_pem, s.key_pem)
        except (ssl.SSLError, ValueError) as e:
            log.warning("gateway %s server %d: certificate %s does not load: %s", s.gateway,
                        s.index, s.secret, e)
            return None
        cache[key] = ctx
    return ctx


def _header_lines(headers: tuple[tuple[str, str], ...]) -> bytes:
    return b"".join(f"{k.lower()}: {v}\r\n".encode() for k, v in headers)


class GatewayProxy:
    """The gateway's listeners and request dispatch over the current snapshot."""

    def __init__(self, settings: GatewaySettings, fallback_cert: tuple[bytes, bytes],
                 limits: Limits = GATEWAY_LIMITS, reuse_port: bool = False) -> None:
        self.settings = settings
        self.reuse_port = reuse_port     # several data-plane workers bind the same ports
        self.limits = limits
        self.pool = UpstreamPool()
        self._contexts: dict[bytes, ssl.SSLContext] = {}
        self.rt = _Runtime(EMPTY, self._contexts)
        self._hops: dict[bytes, dict[bytes, tuple[bytes, bytes]]] = {}
        self.configs: dict[str, ProxyConfig] = {}
        for table in ("external", "local", "https"):
            self.configs[table] = ProxyConfig(self._dispatcher(table), self.pool,
                                              server=EMPTY.server_header.encode(),
                                              service_time=True, capture=POLICY_CAPTURE,
                                              strip_prefix=b"x-envoy-", limits=limits)
        # The TLS listener's base context only carries the SNI callback (and a certificate,
        # which ssl requires); the callback switches each connection to its server's context.
        self._base_ctx = server_context(*fallback_cert)
        self._base_ctx.sni_callback = self._sni_https
        self._https: asyncio.AbstractServer | None = None
        self._local: PeekingListener | None = None
        self.internal_https_port = settings.internal_https_port
        # How to reach an endpoint a sidecar guards (mTLS with the gateway's own identity);
        # set by the data plane when the mesh is on, None: every upstream is plain.
        self.mesh_cluster: Callable[[Endpoint], Cluster | None] | None = None
        # The activator (serving/activator.py): holds requests for revisions without a ready
        # pod (and counts them while it does); None: no ready endpoint is a 503.
        self.activator: ActivatorSeam | None = None
        self.activator_mesh: ActivatorMesh | None = None
        # a sidecar's request the activator released, while route_local() routes it again
        self._resuming: tuple[RequestHead, _Cold] | None = None
        # The gateway's mesh identity as a server (ISTIO_MUTUAL on the local gateway).
        self.mesh_server_context: Callable[[], ssl.SSLContext | None] | None = None

    @property
    def snapshot(self) -> Snapshot:
        return self.rt.snap

    # --- the snapshot ----------------------------------------------------------------
    def swap(self, snap: Snapshot) -> None:
        missing = snap.missing_routes
        if missing:
            log.warning("gateway: listeners name route configurations %s that the snapshot "
                        "lacks: their hosts answer 404 (route not found)", sorted(missing))
        rt = _Runtime(snap, self._contexts)
        rt.in_path = self.rt.in_path
        rt.carry_over(self.rt)
        live = {hashlib.sha256(s.cert_pem + b"\0" + s.key_pem).digest()
                for li in snap.listeners.values() for s in li.servers if s.terminates_tls}
        for k in list(self._contexts):
            if k not in live:
                del self._contexts[k]      # a rotated-away certificate: new connections no longer use it
        server = snap.server_header.encode()
        for cfg in self.configs.values():
            cfg.server = server
        old_endpoints, self.rt = self.rt.endpoints, rt
        if self.activator is not None:
            # a whole snapshot lists only clusters with endpoints: one that lost its last is
            # said so, or the activator would go on counting its pods (no poke for demand at
            # zero; held requests released for pods the routes no longer have, again and again)
            gone = {c: () for c, eps in old_endpoints.items() if eps and c not in snap.endpoints}
            self.activator.endpoints_changed({**snap.endpoints, **gone} if gone
                                             else snap.endpoints)

    def activator_path_changed(self) -> None:
        """The activator's Proxy-mode clusters changed: routes cached as simple are chosen
        again (a cluster the activator fronts is never one)."""
        rt = self.rt
        if self.activator is not None:
            rt.in_path = self.activator.in_path
        rt.simple = {t: {} for t in rt.tables}

    def update_endpoints(self, changes: Mapping[str, tuple[Endpoint, ...]]) -> None:
        """An endpoints-only update (EDS): the current routes keep serving, with their state."""
        self.rt.update_endpoints(changes)
        if self.activator is not None:
            self.activator.endpoints_changed(changes)

    # --- dispatch --------------------------------------------------------------------
    def _dispatcher(self, table: str) -> Callable[[RequestHead], Forward | Reply | Defer]:
        count = _ids.count
        hop_headers = self._hop_headers

        def dispatch(head: RequestHead, held: _Cold | None = None) -> Forward | Reply | Defer:
            rt = self.rt
            route = rt.simple[table].get(head.host) if held is None else _NOT_SIMPLE
            if route is None:
                route = rt.simple_route(table, head.host)
            if route is not _NOT_SIMPLE:
                ep, extra, rewrite, cluster = route
            else:
                # a request the activator held goes on to its revision (_resume)
                r = self._route(rt, table, head) if held is None else self._resume(held, head)
                if isinstance(r, Reply):
                    return r
                if isinstance(r, _Cold):
                    assert self.activator is not None     # _Cold only comes with one
                    cold = r
                    return self.activator.hold(cold.cluster, lambda: dispatch(head, cold))
                ep, extra, rewrite, cluster = r
            cap = head.captured
            if len(cap) == 1 and head.host:
                xff = fwd = rid = None     # Host is the only header held back: none of these
            else:
                xff = cap.get(b"x-forwarded-for")
                fwd = cap.get(b"forwarded")
                rid = cap.get(b"x-request-id")
            if xff is None and fwd is None:
                client = head.client
                hops = self._hops.get(head.scheme)
                hop = hops.get(client) if hops is not None else None
                if hop is None:
                    hop = hop_headers(client, head.scheme)
                if rid is None:
                    lines = b"%s%012x\r\n%s" % (hop[1], next(count) & _ID_MASK, extra)
                else:
                    lines = b"".join((hop[0], rid, b"\r\n", extra))
            else:
                client = head.client
                scheme = head.scheme
                this_hop = _forwarded_for(client, scheme)
                lines = b"".join((
                    b"x-forwarded-for: ", xff + b", " + client if xff else client,
                    b"\r\nx-forwarded-proto: ", scheme,
                    b"\r\nforwarded: ", fwd + b", " + this_hop if fwd else this_hop,
                    b"\r\nx-request-id: ", rid or request_id(), b"\r\n", extra))
            mesh = self.mesh_cluster
            # Forward(ep, lines, rewrite, cluster), without the __init__ call (once a request)
            out = new_forward(Forward)
            out.endpoint = ep
            out.extra = lines
            out.host = rewrite
            out.cluster = mesh(ep) if mesh is not None else None
            if head.tag is not None:
                # the activator chose the pod: its identity (in the mesh), and it hears the end
                am = self.activator_mesh
                if am is not None:
                    out.cluster = am.cluster(ep) or out.cluster
                out.hook = self.activator
            else:
                out.hook = None
            return out
        return dispatch

    def route_local(self, head: RequestHead, redispatch: Callable[[], Forward | Reply | Defer],
                    source: str | None = None) -> _Simple | Reply | Defer:
        """Where the local gateway's table sends this request (endpoint, route headers, host
        rewrite, cluster), for a sidecar that routes cluster-local Knative hosts itself; a
        revision without a ready pod is held by the activator, which calls `redispatch` once
        it has one. `source`: the caller's SPIFFE ID (the activator's policies read it).
        Called again by that redispatch, it goes on to the revision it was held for (_resume)."""
        resuming = self._resuming
        if resuming is not None and resuming[0] is head:
            self._resuming = None
            r = self._resume(resuming[1], head)
        else:
            r = self._route(self.rt, "local", head, source)
        if isinstance(r, _Cold):
            assert self.activator is not None
            cold = r
            return self.activator.hold(cold.cluster,
                                       lambda: self._redispatch_local(head, cold, redispatch))
        return r

    def _redispatch_local(self, head: RequestHead, cold: _Cold,
                          redispatch: Callable[[], Forward | Reply | Defer],
                          ) -> Forward | Reply | Defer:
        # the sidecar's redispatch calls route_local() again, at once: it resumes `cold`
        self._resuming = (head, cold)
        try:
            return redispatch()
        finally:
            self._resuming = None

    def _resume(self, cold: _Cold, head: RequestHead) -> _Simple | Reply | _Cold:
        """A request the activator held, dispatched again once released: to the revision it
        was held for, with the route's headers. Upstream, Envoy chose the split before the
        request reached the activator, whose sidecar decided it once; so the split is not
        rolled again (that would also skew the others' weights) nor the activator's policies
        asked again."""
        return self._to_cluster(self.rt, cold.cluster, cold.headers, cold.rewrite, head)

    def _to_cluster(self, rt: _Runtime, cluster: str, headers: bytes, rewrite: bytes | None,
                    head: RequestHead) -> _Simple | Reply | _Cold:
        """The endpoint for a request the route sent to `cluster`: the activator's pick while it
        fronts the revision (held, _Cold, when it has no room), else round robin."""
        eps = rt.endpoints.get(cluster, ())
        activator = self.activator
        if activator is not None and activator.in_path(cluster):
            picked = activator.pick(cluster, eps) if eps else None
            if picked is None:          # no ready pod, or every pod at its concurrency
                return _Cold(cluster, headers, rewrite)
            head.tag, ep = picked
            return (ep, headers + ACTIVATOR_PROXIED, rewrite, cluster)
        if not eps:
            return NO_HEALTHY_UPSTREAM
        ep = eps[0] if len(eps) == 1 else eps[rt.next_endpoint(cluster) % len(eps)]
        return (ep, headers, rewrite, cluster)

    def _route(self, rt: _Runtime, table: str, head: RequestHead, source: str | None = None,
               ) -> _Simple | Reply | _Cold:
        """The general route choice: paths by prefix and headers, splits by weight, endpoints
        round robin. A revision the activator fronts: the activator's policies (in the mesh;
        `source` is the caller, None this gateway), then its pick or its hold."""
        vh = rt.lookup(table, head.host)
        if vh is None:
            return NOT_FOUND
        if vh.redirect_http and head.scheme == b"http":
            return Reply(301, b"", ((b"location", b"https://" + head.host + head.target),))
        paths = vh.paths
        path: HttpPath | None = None
        if len(paths) == 1 and not paths[0].headers and len(paths[0].prefix) <= 1:
            path = paths[0]
        else:
            target = head.target.decode("latin-1")
            for p in paths:
                if p.matches(target, lambda n: _str(head.header(n.encode()))):
                    path = p
                    break
            if path is None:
                return NOT_FOUND
        sched = path.schedule
        if not sched:
            return NO_HEALTHY_UPSTREAM
        if len(sched) == 1:
            split = path.splits[sched[0]]
        else:
            split = path.splits[sched[rt.next(id(path)) % len(sched)]]
        if self.activator_mesh is not None and self.activator is not None \
                and self.activator.in_path(split.cluster):
            denied = self.activator_mesh.admits(head, source)
            if denied is not None:
                return denied
        return self._to_cluster(rt, split.cluster, rt.route_headers(path, split),
                                path.rewrite_host.encode() if path.rewrite_host else None, head)

    def _hop_headers(self, client: bytes, scheme: bytes) -> tuple[bytes, bytes]:
        """The forwarding headers for a client that sent none, up to x-request-id's value; and
        the same with this process's request-id prefix."""
        hops = self._hops.get(scheme)
        if hops is None:
            hops = self._hops[scheme] = {}
        v = (b"x-forwarded-for: " + client + b"\r\nx-forwarded-proto: " + scheme +
             b"\r\nforwarded: " + _forwarded_for(client, scheme) + b"\r\nx-request-id: ")
        if len(hops) >= _HOST_CACHE_MAX:
            hops.clear()
        hops[client] = pair = (v, v + _ids.prefix)
        return pair

    # --- listeners -------------------------------------------------------------------
    def edge_factory(self, scheme: bytes, tls: bool) -> ProtocolFactory:
        """Protocols serving every external host (the router's HTTP port and its edge TLS)."""
        cfg = self.configs["external"]
        return alpn_factory(cfg, scheme) if tls else h1_factory(cfg, scheme)

    def is_passthrough(self, host: str) -> bool:
        return host in self.rt.snap.passthrough_hosts

    @property
    def passthrough_address(self) -> tuple[str, int]:
        return (self.settings.host, self.internal_https_port)

    def _sni_https(self, sslobj: Any, name: str | None, _base: ssl.SSLContext) -> int | None:
        note_sni(sslobj, name)           # for the requests' ConnContext (head.conn.sni)
        ctx = self.rt.sni_context("https", name)
        if ctx is None:
            return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE   # no Gateway server binds 443
        sslobj.context = ctx
        return None

    def _decide_local(self, hello: ClientHello | None) -> Action:
        rt = self.rt
        li: Listener | None = rt.snap.listeners.get("local")
        cfg = self.configs["local"]
        if li is not None and any(s.tls_mode == "ISTIO_MUTUAL" for s in li.servers):
            # mesh mTLS: the gateway's own SVID, and only callers with a mesh certificate
            if hello is None:
                return Reject("the local gateway requires mesh mTLS (ISTIO_MUTUAL)")
            ctx = self.mesh_server_context() if self.mesh_server_context is not None else None
            if ctx is None:
                return Reject("ISTIO_MUTUAL: the mesh has issued the gateway no certificate")
            return Terminate(ctx, alpn_factory(cfg, b"https"))
        if li is None or not li.tls:
            if hello is not None:
                return Reject("the local gateway serves plain HTTP")
            return Plain(h1_factory(cfg, b"http"))
        if hello is None:
            return Reject("the local gateway serves TLS")
        ctx = rt.sni_context("local", hello.sni)
        if ctx is None:
            return Reject("no certificate")
        return Terminate(ctx, alpn_factory(cfg, b"https"))

    async def start(self, accept: bool = True) -> None:
        """Bind and listen; accept now, or from accept() on (a data plane waits for its first
        snapshot: until then connections wait in the backlog instead of meeting no route)."""
        tune_allocator()
        s = self.settings
        self._https = await server_on(alpn_factory(self.configs["https"], b"https"), s.host,
                                      s.internal_https_port, self.reuse_port,
                                      ssl=self._base_ctx, ssl_handshake_timeout=10)
        self.internal_https_port = int(self._https.sockets[0].getsockname()[1])
        self._local = PeekingListener(s.host, s.local_gateway_port, self._decide_local,
                                      name="knative-local-gateway", reuse_port=self.reuse_port)
        try:
            await self._local.start(accept=False)
        except OSError:
            self._https.close()
            raise
        if accept:
            await self.accept()

    async def accept(self) -> None:
        if self._https is not None:
            await self._https.start_serving()
        if self._local is not None:
            self._local.accept()

    async def stop(self) -> None:
        """Close the listeners, drain every connection (the router's too), close the pool."""
        if self._https is not None:
            self._https.close()
            self._https = None
        local, self._local = self._local, None
        if local is not None:
            await local.close()
        forced = await asyncio.gather(*(cfg.drain() for cfg in self.configs.values()))
        if sum(forced):
            log.info("gateway stop: %d connections still busy after %.1f s were closed",
                     sum(forced), self.limits.drain_timeout)
        if local is not None:
            await local.stop()
        self.pool.close()


def _forwarded_for(client: bytes, scheme: bytes) -> bytes:
    """RFC 7239: for=<ip>;proto=<scheme>, IPv6 addresses quoted and bracketed."""
    node = b'"[' + client + b']"' if b":" in client else client
    return b"for=" + node + b";proto=" + scheme


def _str(b: bytes | None) -> str | None:
    return b.decode("latin-1") if b is not None else None


def _route_headers(path: HttpPath, split: Split) -> bytes:
    """x-envoy-* and the KIngress appendHeaders for this path and split, formatted once."""
    return (b"x-envoy-attempt-count: 1\r\n"
            + (f"x-envoy-decorator-operation: {split.operation}\r\n".encode()
               if split.operation else b"")
            + _header_lines(path.append_headers) + _header_lines(split.append_headers))
