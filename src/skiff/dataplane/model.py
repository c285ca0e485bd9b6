"""The generic data-plane model: what a proxy serves, with no Istio or Knative in it.

Envoy's xDS resources, kept as separate parts of one immutable Snapshot:
- Listener (LDS): a bound address, its servers (TLS certificates chosen by
  SNI) and the name of the route configuration it serves (route_config), as
  an Envoy listener's HTTP connection manager names its RDS route_config_name;
- route configurations (RDS): Snapshot.routes, name -> RouteTable (Envoy's
  RouteConfiguration): host -> VirtualHost -> HttpPath (prefix, exact header
  matches) -> weighted Splits. "external" and "local" hold every external and
  cluster-local host; a listener may name one of them or its own. A name
  with no configuration behind it routes nothing (404, Envoy's NR). A route
  change travels alone (route_changes -> Snapshot.with_routes: only the hosts
  whose virtual host changed), a listener change alone (with_listeners);
- Cluster (CDS): a Split names one by `cluster`; Snapshot.clusters lists them;
- endpoints (EDS, Envoy's ClusterLoadAssignment): cluster -> ready
  (host, port) pairs, the only part a pod change touches
  (Snapshot.with_endpoints).
Also host matching (exact, then the most specific wildcard) and nginx's smooth
weighted round robin (swrr_schedule) that splits traffic by weight.

Pure: no sockets, no clock, no asyncio. Filled by the Istio/KIngress compiler
(mesh/gateway/snapshot.py), carried over the wire by dataplane/codec.py, served
by mesh/gateway/proxy.py inside the data-plane process (dataplane/main.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

Endpoint = tuple[str, int]
ClusterEndpoints = Mapping[str, tuple[Endpoint, ...]]


@dataclass(frozen=True)
class GatewaySettings:
    """Where the listeners are bound (decided by the control plane, passed to the data plane)."""
    host: str = "127.0.0.1"
    http_port: int = 8080
    https_port: int = 8443            # the router's; passthrough lands on internal_https_port
    local_gateway_port: int = 8081
    internal_https_port: int = 0      # the ingress gateway's own 443 listener (loopback)
    domain: str = "apps.127.0.0.1.sslip.io"

    def port_of(self, bind: str) -> int:
        return {"http": self.http_port, "https": self.internal_https_port,
                "local": self.local_gateway_port}[bind]


@dataclass(frozen=True)
class Split:
    cluster: str                                        # whose endpoints serve it ("ns/revision")
    weight: int
    append_headers: tuple[tuple[str, str], ...] = ()
    operation: str = ""                                 # x-envoy-decorator-operation


@dataclass(frozen=True)
class HttpPath:
    prefix: str = ""                                    # "" or "/": every path
    headers: tuple[tuple[str, str], ...] = ()           # exact matches, lower-case names
    splits: tuple[Split, ...] = ()
    schedule: tuple[int, ...] = ()                      # smooth weighted round robin over splits
    append_headers: tuple[tuple[str, str], ...] = ()
    rewrite_host: str = ""

    def matches(self, path: str, header: Callable[[str], str | None]) -> bool:
        """Used by the proxy only when a path has conditions (a prefix, header matches)."""
        if self.prefix and self.prefix != "/" and not path.startswith(self.prefix):
            return False
        return all(header(n) == v for n, v in self.headers)


def http_path(prefix: str = "", headers: tuple[tuple[str, str], ...] = (),
              splits: tuple[Split, ...] = (), append_headers: tuple[tuple[str, str], ...] = (),
              rewrite_host: str = "") -> HttpPath:
    """An HttpPath with its schedule derived from the splits' weights."""
    return HttpPath(prefix, headers, splits, swrr_schedule([s.weight for s in splits]),
                    append_headers, rewrite_host)


@dataclass(frozen=True)
class VirtualHost:
    ingress: str                                        # who asked for it (namespace/name)
    hosts: tuple[str, ...]
    paths: tuple[HttpPath, ...]
    redirect_http: bool = False                         # plain HTTP -> 301 to https


@dataclass(frozen=True)
class RouteTable:
    exact: Mapping[str, VirtualHost] = field(default_factory=lambda: MappingProxyType({}))
    wildcard: tuple[tuple[str, VirtualHost], ...] = ()  # (".suffix" or "*", vhost), most specific first

    def lookup(self, host: str) -> VirtualHost | None:
        vh = self.exact.get(host)
        if vh is not None:
            return vh
        for suffix, wvh in self.wildcard:
            if suffix == "*" or host.endswith(suffix):
                return wvh
        return None

    def items(self) -> list[tuple[str, VirtualHost]]:
        """(host pattern, vhost): exact hosts sorted, then wildcards most specific first."""
        return sorted(self.exact.items()) + [("*" + s if s != "*" else s, vh)
                                             for s, vh in self.wildcard]

    def hosts(self) -> list[str]:
        return [h for h, _ in self.items()]


@dataclass(frozen=True)
class Server:
    gateway: str                                        # namespace/name
    index: int
    port: int
    protocol: str
    hosts: tuple[str, ...]
    bind: str
    tls_mode: str = ""                                  # SIMPLE | MUTUAL | ISTIO_MUTUAL | ""
    secret: str = ""                                    # namespace/name of the credential
    cert_pem: bytes = b""
    key_pem: bytes = b""

    @property
    def terminates_tls(self) -> bool:
        return bool(self.cert_pem)


@dataclass(frozen=True)
class Listener:
    bind: str                                           # http | https | local
    address: tuple[str, int]
    servers: tuple[Server, ...]
    route_config: str                                   # a name in Snapshot.routes (RDS)

    @property
    def tls(self) -> bool:
        return any(s.terminates_tls for s in self.servers)

    def server_for_sni(self, sni: str | None) -> Server | None:
        """The TLS server whose hosts match `sni` most specifically; the first one by default."""
        tls = [s for s in self.servers if s.terminates_tls]
        if not tls:
            return None
        if sni:
            best: tuple[int, int] | None = None
            pick: Server | None = None
            for i, s in enumerate(tls):
                for h in s.hosts:
                    score = host_match_score(h, sni)
                    if score >= 0 and (best is None or (score, -i) > best):
                        best, pick = (score, -i), s
            if pick is not None:
                return pick
        return tls[0]


EMPTY_ENDPOINTS: ClusterEndpoints = MappingProxyType({})
EMPTY_TABLE = RouteTable()
EXTERNAL = "external"                                   # the route configuration of every external host
LOCAL = "local"                                         # ... and of every cluster-local host
RouteConfigs = Mapping[str, RouteTable]


@dataclass(frozen=True)
class RoutePatch:
    """RDS for one route configuration: the hosts whose virtual host changed (None: gone)
    on top of the configuration the receiver has, or (whole) every host of a new one. The
    wildcard list is always whole: it is short, and its order is its meaning."""
    exact: Mapping[str, VirtualHost | None]
    wildcard: tuple[tuple[str, VirtualHost], ...] = ()
    whole: bool = True


RouteChanges = Mapping[str, RoutePatch | None]          # name -> patch, None: the configuration is gone


@dataclass(frozen=True)
class Snapshot:
    """What the data plane serves, in parts that change apart: listeners (with the server
    header), route configurations (with the passthrough hosts, which also come from the
    KIngresses) and endpoints (with_listeners, with_routes, with_endpoints); each keeps the
    other parts' identity."""
    server_header: str
    listeners: Mapping[str, Listener]                   # LDS
    routes: RouteConfigs                                # RDS, by name
    passthrough_hosts: frozenset[str]
    endpoints: ClusterEndpoints = field(default_factory=lambda: EMPTY_ENDPOINTS)  # EDS

    @property
    def external(self) -> RouteTable:
        """Every external host (the router's HTTP port and edge TLS serve this one)."""
        return self.routes.get(EXTERNAL, EMPTY_TABLE)

    @property
    def local(self) -> RouteTable:
        """Every cluster-local host."""
        return self.routes.get(LOCAL, EMPTY_TABLE)

    def table_of(self, listener: Listener) -> RouteTable | None:
        """The route configuration a listener names; None when there is none of that name."""
        return self.routes.get(listener.route_config)

    @property
    def missing_routes(self) -> frozenset[str]:
        """Route configuration names a listener gives that no configuration has."""
        return frozenset(li.route_config for li in self.listeners.values()
                         if li.route_config not in self.routes)

    @property
    def clusters(self) -> frozenset[str]:
        """Every cluster a route sends traffic to (CDS)."""
        out: set[str] = set()
        for table in self.routes.values():
            for _, vh in table.items():
                for p in vh.paths:
                    out.update(s.cluster for s in p.splits)
        return frozenset(out)

    def with_endpoints(self, changes: Mapping[str, tuple[Endpoint, ...]]) -> Snapshot:
        """The same routes with some clusters' endpoints replaced (an empty tuple drops one)."""
        eps = dict(self.endpoints)
        for cluster, e in changes.items():
            if e:
                eps[cluster] = tuple(e)
            else:
                eps.pop(cluster, None)
        return replace(self, endpoints=MappingProxyType(eps))

    def with_routes(self, changes: RouteChanges,
                    passthrough_hosts: frozenset[str] | None = None) -> Snapshot:
        """The same listeners and endpoints with some route configurations patched
        (apply_route_changes; ValueError when a patch has nothing to apply to)."""
        return replace(self, routes=MappingProxyType(apply_route_changes(self.routes, changes)),
                       passthrough_hosts=(self.passthrough_hosts if passthrough_hosts is None
                                          else passthrough_hosts))

    def with_listeners(self, server_header: str, listeners: Mapping[str, Listener]) -> Snapshot:
        """The same routes and endpoints under other listeners."""
        return replace(self, server_header=server_header,
                       listeners=MappingProxyType(dict(listeners)))


EMPTY = Snapshot("envoy", MappingProxyType({}), MappingProxyType({}), frozenset())


def endpoint_changes(old: ClusterEndpoints, new: ClusterEndpoints) -> dict[str, tuple[Endpoint, ...]]:
    """The EDS update that turns `old` into `new`: changed clusters, () for removed ones."""
    out: dict[str, tuple[Endpoint, ...]] = {c: e for c, e in new.items() if old.get(c) != e}
    for c in old:
        if c not in new:
            out[c] = ()
    return out


def route_changes(old: RouteConfigs, new: RouteConfigs) -> dict[str, RoutePatch | None]:
    """The RDS update that turns `old` into `new`: per changed configuration, the hosts whose
    virtual host differs (a patch), the whole of a new one, None for a removed one."""
    out: dict[str, RoutePatch | None] = {}
    for name, table in new.items():
        prev = old.get(name)
        if prev is None:
            out[name] = RoutePatch(table.exact, table.wildcard, whole=True)
            continue
        if prev is table:
            continue
        exact: dict[str, VirtualHost | None] = {}
        for host, vh in table.exact.items():
            pv = prev.exact.get(host)
            if pv is not vh and pv != vh:
                exact[host] = vh
        for host in prev.exact:
            if host not in table.exact:
                exact[host] = None
        if exact or prev.wildcard != table.wildcard:
            out[name] = RoutePatch(MappingProxyType(exact), table.wildcard, whole=False)
    for name in old:
        if name not in new:
            out[name] = None
    return out


def apply_route_changes(routes: RouteConfigs, changes: RouteChanges) -> dict[str, RouteTable]:
    """`routes` with `changes` applied; ValueError when a patch names a configuration that
    is not there (the receiver missed an update: it must be sent the whole snapshot)."""
    out = dict(routes)
    for name, patch in changes.items():
        if patch is None:
            out.pop(name, None)
            continue
        if patch.whole:
            exact = {h: vh for h, vh in patch.exact.items() if vh is not None}
        else:
            prev = routes.get(name)
            if prev is None:
                raise ValueError(f"route configuration {name!r}: a patch, but there is none")
            exact = dict(prev.exact)
            for h, maybe in patch.exact.items():
                if maybe is None:
                    exact.pop(h, None)
                else:
                    exact[h] = maybe
        out[name] = RouteTable(MappingProxyType(exact), tuple(patch.wildcard))
    return out


# --- host matching ---------------------------------------------------------------------


def normalize_host(host: str) -> str:
    """Lower case, port and trailing dot removed ("Hello.Example.com:443" -> "hello.example.com")."""
    h = host.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        return h[:end + 1] if end > 0 else h
    if h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h.rstrip(".")


def host_match_score(pattern: str, host: str) -> int:
    """-1: no match; otherwise higher is more specific ("*" 0, "*.a.b" by suffix length, exact max)."""
    if pattern == "*":
        return 0
    if pattern.startswith("*."):
        return len(pattern) if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1 else -1
    return 10_000 if pattern == host else -1


def host_matches(pattern: str, host: str) -> bool:
    return host_match_score(pattern, host) >= 0


def patterns_intersect(a: str, b: str) -> bool:
    """Whether some host name matches both patterns."""
    if a == "*" or b == "*":
        return True
    if a.startswith("*.") and b.startswith("*."):
        return a.endswith(b[1:]) or b.endswith(a[1:])
    if a.startswith("*."):
        return host_matches(a, b)
    if b.startswith("*."):
        return host_matches(b, a)
    return a == b


def build_table(vhosts: Iterable[tuple[str, VirtualHost]]) -> RouteTable:
    """A table from (host pattern, vhost) pairs; the first pair for a host wins."""
    exact: dict[str, VirtualHost] = {}
    wild: dict[str, VirtualHost] = {}
    for host, vh in vhosts:
        if host == "*":
            wild.setdefault("*", vh)
        elif host.startswith("*."):
            wild.setdefault(host[1:], vh)
        else:
            exact.setdefault(host, vh)
    order = sorted(wild.items(), key=lambda kv: (kv[0] == "*", -len(kv[0]), kv[0]))
    return RouteTable(MappingProxyType(exact), tuple(order))


def filter_table(table: RouteTable, patterns: Sequence[str]) -> list[tuple[str, VirtualHost]]:
    """The (host, vhost) pairs of `table` that a server with these hosts accepts."""
    out: list[tuple[str, VirtualHost]] = []
    for host, vh in table.exact.items():
        if any(host_matches(p, host) for p in patterns):
            out.append((host, vh))
    for suffix, vh in table.wildcard:
        pat = suffix if suffix == "*" else "*" + suffix
        if any(patterns_intersect(p, pat) for p in patterns):
            out.append((pat, vh))
    return out


# --- splits ----------------------------------------------------------------------------


def swrr_schedule(weights: Sequence[int]) -> tuple[int, ...]:
    """nginx's smooth weighted round robin, unrolled over one period: indices into weights.

    Weights are reduced by their gcd, so [50, 50] -> (0, 1) and [90, 10] has period 10;
    the proxy picks schedule[n % len] for the n-th request of a path.
    """
    ws = [max(0, int(w)) for w in weights]
    if not any(ws):
        return ()
    g = 0
    for w in ws:
        g = math.gcd(g, w)
    ws = [w // g for w in ws]
    total = sum(ws)
    current = [0] * len(ws)
    out: list[int] = []
    for _ in range(total):
        best = 0
        for i, w in enumerate(ws):
            current[i] += w
            if current[i] > current[best]:
                best = i
        current[best] -= total
        out.append(best)
    return tuple(out)
