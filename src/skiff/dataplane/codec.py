"""The snapshot channel's wire format: versioned, length-prefixed JSON messages (pure).

A frame is a 4-byte big-endian length, then that many bytes of UTF-8 JSON.
Every message is an object with "type" and, for updates, a "version":
- control plane -> data plane:
  "snapshot" (version, snapshot: listeners, route configurations,
  endpoints; the whole of dataplane/model.py's Snapshot; PEMs base64), sent
  when a data plane connects, when listeners and routes change together (so
  a listener never names a configuration that has not arrived), and after a
  data plane refused a delta; the deltas, each a part alone as Envoy's xDS
  sends them: "listeners" (version, serverHeader, every listener: LDS; a
  listener names its route configuration), "routes" (version, the changed
  route configurations: per configuration the hosts whose virtual host
  changed, null for a host gone, or every host of a new one; null for a
  configuration gone; and the passthrough hosts: RDS) and "endpoints"
  (version, clusters: {cluster: [[host, port], ...]}, only the changed ones,
  [] for none ready: EDS); delta_messages() decides which a new snapshot
  needs (endpoints first, as Envoy's make-before-break order asks: a
  route to a cluster finds its endpoints there); and "part" (version, name,
  data: a domain's own part of the configuration, e.g. the mesh's sidecars;
  the data plane hands `data` to the consumer registered for `name`, which
  decodes and checks it: this module only carries it);
- data plane -> control plane: "hello" (pid, the version it serves, and the
  error that stopped it binding its listeners, if one did), "ack" (version)
  and "nack" (version, error); "stats" (per revision cluster: requests in
  flight and started, every second) and "poke" (a request waits for a
  revision with no ready pod): the autoscaler's inputs.
Versions increase monotonically; ReceiverState.accept() refuses a message
older than or equal to the one applied, so a data plane never goes back.
Decoding checks every field's type and bounds frames by MAX_FRAME: a bad
message raises CodecError and the receiver keeps the last good snapshot.
A route configuration refers to its virtual hosts by index into the
message's one list, so a vhost shared by several configurations (the
external one and the 443 listener's) is sent once and stays one object
after decoding.

Pure: no sockets, no asyncio. channel.py does the I/O on both ends.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from skiff.dataplane.model import (
    Endpoint,
    HttpPath,
    Listener,
    RouteChanges,
    RoutePatch,
    RouteTable,
    Server,
    Snapshot,
    Split,
    VirtualHost,
    endpoint_changes,
    http_path,
    route_changes,
)

PROTOCOL = 2                    # 2: listeners name route configurations (LDS apart from RDS)
MAX_FRAME = 32 * 1024 * 1024    # a snapshot of 1,000 routes is about 0.3 MB
HEADER = struct.Struct(">I")


class CodecError(ValueError):
    """A message that cannot be applied: malformed, oversized or of an unknown type."""


# --- frames ----------------------------------------------------------------------------


def frame(msg: Mapping[str, Any]) -> bytes:
    body = json.dumps(msg, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME:
        raise CodecError(f"message of {len(body)} bytes exceeds {MAX_FRAME}")
    return HEADER.pack(len(body)) + body


def frame_length(header: bytes) -> int:
    """The body length a frame header announces; CodecError when it is over the bound."""
    (n,) = HEADER.unpack(header)
    if n > MAX_FRAME:
        raise CodecError(f"frame of {n} bytes exceeds {MAX_FRAME}")
    return int(n)


def parse(body: bytes) -> dict[str, Any]:
    """A frame body as a message object with a known type."""
    try:
        msg = json.loads(body)
    except (UnicodeDecodeError, ValueError) as e:
        raise CodecError(f"not JSON: {e}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise CodecError("not a message object with a type")
    if msg["type"] not in ("snapshot", "listeners", "routes", "endpoints", "part", "hello",
                           "ack", "nack", "stats", "poke"):
        raise CodecError(f"unknown message type {msg['type']!r}")
    if msg["type"] != "hello" and not _is_int(msg.get("version")):
        raise CodecError("version must be an integer")
    return msg


# --- messages --------------------------------------------------------------------------


def snapshot_message(version: int, snap: Snapshot) -> dict[str, Any]:
    return {"type": "snapshot", "protocol": PROTOCOL, "version": version,
            "snapshot": encode_snapshot(snap)}


def listeners_message(version: int, snap: Snapshot) -> dict[str, Any]:
    """LDS: the server header and every listener of `snap` (each names its routes)."""
    return {"type": "listeners", "protocol": PROTOCOL, "version": version,
            "serverHeader": snap.server_header, "listeners": _encode_listeners(snap)}


def routes_message(version: int, changes: RouteChanges,
                   passthrough_hosts: frozenset[str]) -> dict[str, Any]:
    """RDS: the changed route configurations (model.route_changes) and the passthrough hosts."""
    refs = _VhostRefs()
    routes: dict[str, Any] = {}
    for name, patch in sorted(changes.items()):
        routes[name] = None if patch is None else {
            "exact": {h: (None if vh is None else refs(vh)) for h, vh in patch.exact.items()},
            "wildcard": [[w, refs(vh)] for w, vh in patch.wildcard],
            "patch": not patch.whole}
    return {"type": "routes", "protocol": PROTOCOL, "version": version, "vhosts": refs.vhosts,
            "routes": routes, "passthroughHosts": sorted(passthrough_hosts)}


def delta_messages(version: int, old: Snapshot | None, new: Snapshot) -> list[dict[str, Any]]:
    """What turns a data plane serving `old` into one serving `new`, numbered from `version`:
    nothing when they are equal; the whole snapshot when there is no `old` or when listeners
    and routes both changed (one atomic swap, so no listener names routes still on their
    way); otherwise each changed part alone, endpoints first."""
    if old is None:
        return [snapshot_message(version, new)]
    listeners_changed = (old.server_header != new.server_header
                         or old.listeners != new.listeners)
    routes = route_changes(old.routes, new.routes)
    passthrough_changed = old.passthrough_hosts != new.passthrough_hosts
    if listeners_changed and (routes or passthrough_changed):
        return [snapshot_message(version, new)]
    out: list[dict[str, Any]] = []
    eps = endpoint_changes(old.endpoints, new.endpoints)
    if eps:
        out.append(endpoints_message(version + len(out), eps))
    if routes or passthrough_changed:
        out.append(routes_message(version + len(out), routes, new.passthrough_hosts))
    if listeners_changed:
        out.append(listeners_message(version + len(out), new))
    return out


def endpoints_message(version: int, changes: Mapping[str, tuple[Endpoint, ...]]) -> dict[str, Any]:
    return {"type": "endpoints", "protocol": PROTOCOL, "version": version,
            "clusters": {c: [[h, p] for h, p in eps] for c, eps in sorted(changes.items())}}


def part_message(version: int, name: str, data: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "part", "protocol": PROTOCOL, "version": version, "name": name,
            "data": dict(data)}


def hello_message(pid: int, version: int, error: str = "") -> dict[str, Any]:
    return {"type": "hello", "protocol": PROTOCOL, "pid": pid, "version": version,
            "error": error}


def ack_message(version: int) -> dict[str, Any]:
    return {"type": "ack", "version": version}


def nack_message(version: int, error: str) -> dict[str, Any]:
    return {"type": "nack", "version": version, "error": error}


MAX_STAT_CLUSTERS = 10_000


def stats_message(clusters: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """Data plane -> control plane, every second: per revision cluster, requests in flight
    (averaged over the period) and requests started (the autoscaler's metrics)."""
    return {"type": "stats", "version": 0, "clusters": {k: dict(v) for k, v in clusters.items()}}


def poke_message(cluster: str) -> dict[str, Any]:
    """Data plane -> control plane: a request waits for a revision that has no ready pod."""
    return {"type": "poke", "version": 0, "cluster": cluster}


def decode_stats(d: Any) -> dict[str, dict[str, float]]:
    """A stats message's clusters, checked (CodecError when malformed or too many)."""
    clusters = _obj(d, "clusters")
    if len(clusters) > MAX_STAT_CLUSTERS:
        raise CodecError(f"clusters: {len(clusters)} entries, more than {MAX_STAT_CLUSTERS}")
    out: dict[str, dict[str, float]] = {}
    for k, v in clusters.items():
        vals = _obj(v, f"clusters[{k}]")
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0
                   for x in vals.values()):
            raise CodecError(f"clusters[{k}]: values must be non-negative numbers")
        out[str(k)] = {str(n): float(x) for n, x in vals.items()}
    return out


# --- the receiver's decision -----------------------------------------------------------


@dataclass(frozen=True)
class Update:
    """A decoded update: a whole snapshot, or one part's changes on top of the current one
    (routes, listeners or endpoints: on() makes the snapshot they give), or a domain's part."""
    version: int
    snapshot: Snapshot | None = None
    endpoints: Mapping[str, tuple[Endpoint, ...]] = field(default_factory=dict)
    part: tuple[str, Mapping[str, Any]] | None = None     # (name, data) of a "part" message
    routes: RouteChanges | None = None                    # RDS
    passthrough_hosts: frozenset[str] | None = None       # with the routes
    listeners: tuple[str, Mapping[str, Listener]] | None = None   # LDS: (server header, listeners)

    def on(self, current: Snapshot) -> Snapshot:
        """The snapshot this update makes of `current`; CodecError when a route patch has
        no configuration to apply to (the sender's and the receiver's views differ)."""
        if self.snapshot is not None:
            return self.snapshot
        if self.routes is not None:
            try:
                return current.with_routes(self.routes, self.passthrough_hosts)
            except ValueError as e:
                raise CodecError(str(e)) from None
        if self.listeners is not None:
            return current.with_listeners(*self.listeners)
        return current.with_endpoints(self.endpoints)


@dataclass
class ReceiverState:
    """The data plane's side: the version it serves. accept() decides, the caller applies."""
    version: int = 0

    def accept(self, msg: Mapping[str, Any]) -> Update:
        """The update a message asks for; CodecError (and nothing changes) when it is
        malformed, of another protocol, or not newer than what is served."""
        if msg.get("type") not in ("snapshot", "listeners", "routes", "endpoints", "part"):
            raise CodecError(f"a data plane does not take {msg.get('type')!r} messages")
        if msg.get("protocol") != PROTOCOL:
            raise CodecError(f"protocol {msg.get('protocol')!r}, want {PROTOCOL}")
        version = msg.get("version")
        if not _is_int(version):
            raise CodecError("version must be an integer")
        assert isinstance(version, int)
        if version <= self.version:
            raise CodecError(f"version {version} is not newer than {self.version} (out of order)")
        if msg["type"] == "snapshot":
            return Update(version, snapshot=decode_snapshot(msg.get("snapshot")))
        if msg["type"] == "routes":
            changes, passthrough = decode_routes(msg)
            return Update(version, routes=changes, passthrough_hosts=passthrough)
        if msg["type"] == "listeners":
            return Update(version, listeners=(_str(msg.get("serverHeader"), "serverHeader"),
                                              decode_listeners(msg.get("listeners"))))
        if msg["type"] == "part":
            name = msg.get("name")
            if not isinstance(name, str) or not name:
                raise CodecError("a part needs a name")
            return Update(version, part=(name, _obj(msg.get("data"), "data")))
        return Update(version, endpoints=decode_endpoints(msg.get("clusters")))

    def applied(self, update: Update) -> None:
        self.version = update.version


# --- the snapshot as plain data --------------------------------------------------------


class _VhostRefs:
    """Virtual hosts by index into one list: one shared by two configurations is sent once."""

    def __init__(self) -> None:
        self.vhosts: list[dict[str, Any]] = []
        self.index: dict[int, int] = {}

    def __call__(self, vh: VirtualHost) -> int:
        i = self.index.get(id(vh))
        if i is None:
            i = self.index[id(vh)] = len(self.vhosts)
            self.vhosts.append(_encode_vhost(vh))
        return i


def encode_snapshot(snap: Snapshot) -> dict[str, Any]:
    refs = _VhostRefs()
    routes = {name: {"exact": {h: refs(vh) for h, vh in t.exact.items()},
                     "wildcard": [[s, refs(vh)] for s, vh in t.wildcard]}
              for name, t in snap.routes.items()}
    return {"serverHeader": snap.server_header, "vhosts": refs.vhosts, "routes": routes,
            "listeners": _encode_listeners(snap),
            "passthroughHosts": sorted(snap.passthrough_hosts),
            "endpoints": {c: [[h, p] for h, p in eps] for c, eps in snap.endpoints.items()}}


def _encode_listeners(snap: Snapshot) -> dict[str, Any]:
    return {b: {"address": [li.address[0], li.address[1]],
                "servers": [_encode_server(s) for s in li.servers],
                "routeConfig": li.route_config} for b, li in snap.listeners.items()}


def _encode_vhost(vh: VirtualHost) -> dict[str, Any]:
    return {"ingress": vh.ingress, "hosts": list(vh.hosts), "redirectHTTP": vh.redirect_http,
            "paths": [{"prefix": p.prefix, "headers": [list(h) for h in p.headers],
                       "appendHeaders": [list(h) for h in p.append_headers],
                       "rewriteHost": p.rewrite_host,
                       "splits": [{"cluster": s.cluster, "weight": s.weight,
                                   "appendHeaders": [list(h) for h in s.append_headers],
                                   "operation": s.operation} for s in p.splits]}
                      for p in vh.paths]}


def _encode_server(s: Server) -> dict[str, Any]:
    return {"gateway": s.gateway, "index": s.index, "port": s.port, "protocol": s.protocol,
            "hosts": list(s.hosts), "bind": s.bind, "tlsMode": s.tls_mode, "secret": s.secret,
            "cert": base64.b64encode(s.cert_pem).decode(),
            "key": base64.b64encode(s.key_pem).decode()}


def decode_snapshot(d: Any) -> Snapshot:
    o = _obj(d, "snapshot")
    vhosts = [_decode_vhost(v) for v in _list(o.get("vhosts"), "vhosts")]
    routes: dict[str, RouteTable] = {}
    for name, t in _obj(o.get("routes"), "routes").items():
        where = f"routes {name}"
        exact = {_str(h, where): _ref(vhosts, i, where)
                 for h, i in _obj(_obj(t, where).get("exact"), where).items()}
        routes[name] = RouteTable(MappingProxyType(exact), _wildcard(t.get("wildcard"), vhosts,
                                                                     where))
    return Snapshot(
        server_header=_str(o.get("serverHeader"), "serverHeader"),
        listeners=MappingProxyType(decode_listeners(o.get("listeners"))),
        routes=MappingProxyType(routes),
        passthrough_hosts=_hosts(o.get("passthroughHosts")),
        endpoints=MappingProxyType({c: eps for c, eps in
                                    decode_endpoints(o.get("endpoints")).items() if eps}))


def decode_listeners(d: Any) -> dict[str, Listener]:
    listeners: dict[str, Listener] = {}
    for bind, li in _obj(d, "listeners").items():
        lo = _obj(li, f"listener {bind}")
        host, port = _pair(lo.get("address"), f"listener {bind} address")
        route_config = _str(lo.get("routeConfig"), f"listener {bind} routeConfig")
        listeners[bind] = Listener(
            bind, (_str(host, "address"), _int(port, "address")),
            tuple(_decode_server(s) for s in _list(lo.get("servers"), f"listener {bind}")),
            route_config)
    return listeners


def decode_routes(msg: Mapping[str, Any]) -> tuple[dict[str, RoutePatch | None], frozenset[str]]:
    """A routes message's changes and passthrough hosts, checked."""
    vhosts = [_decode_vhost(v) for v in _list(msg.get("vhosts"), "vhosts")]
    changes: dict[str, RoutePatch | None] = {}
    for name, t in _obj(msg.get("routes"), "routes").items():
        where = f"routes {name}"
        if t is None:
            changes[name] = None
            continue
        to = _obj(t, where)
        patch = to.get("patch")
        if not isinstance(patch, bool):
            raise CodecError(f"{where}: patch must be a boolean")
        exact: dict[str, VirtualHost | None] = {}
        for h, i in _obj(to.get("exact"), where).items():
            if i is None and not patch:
                raise CodecError(f"{where}: a host removed ({h}) from a whole configuration")
            exact[_str(h, where)] = None if i is None else _ref(vhosts, i, where)
        changes[name] = RoutePatch(MappingProxyType(exact),
                                   _wildcard(to.get("wildcard"), vhosts, where), whole=not patch)
    return changes, _hosts(msg.get("passthroughHosts"))


def _wildcard(v: Any, vhosts: list[VirtualHost], where: str) -> tuple[tuple[str, VirtualHost], ...]:
    return tuple((_str(_pair(w, where)[0], where), _ref(vhosts, _pair(w, where)[1], where))
                 for w in _list(v, where))


def _hosts(v: Any) -> frozenset[str]:
    return frozenset(_str(h, "passthroughHosts") for h in _list(v, "passthroughHosts"))


def decode_endpoints(d: Any) -> dict[str, tuple[Endpoint, ...]]:
    out: dict[str, tuple[Endpoint, ...]] = {}
    for cluster, eps in _obj(d, "endpoints").items():
        where = f"endpoints of {cluster}"
        out[_str(cluster, where)] = tuple(
            (_str(_pair(e, where)[0], where), _int(_pair(e, where)[1], where))
            for e in _list(eps, where))
    return out


def _decode_vhost(d: Any) -> VirtualHost:
    o = _obj(d, "vhost")
    paths: list[HttpPath] = []
    for p in _list(o.get("paths"), "paths"):
        po = _obj(p, "path")
        splits = tuple(Split(_str(so.get("cluster"), "cluster"), _int(so.get("weight"), "weight"),
                             _headers(so.get("appendHeaders")), _str(so.get("operation"), "operation"))
                       for so in (_obj(s, "split") for s in _list(po.get("splits"), "splits")))
        paths.append(http_path(_str(po.get("prefix"), "prefix"), _headers(po.get("headers")),
                               splits, _headers(po.get("appendHeaders")),
                               _str(po.get("rewriteHost"), "rewriteHost")))
    redirect = o.get("redirectHTTP")
    if not isinstance(redirect, bool):
        raise CodecError("redirectHTTP must be a boolean")
    return VirtualHost(_str(o.get("ingress"), "ingress"),
                       tuple(_str(h, "hosts") for h in _list(o.get("hosts"), "hosts")),
                       tuple(paths), redirect)


def _decode_server(d: Any) -> Server:
    o = _obj(d, "server")
    try:
        cert = base64.b64decode(_str(o.get("cert"), "cert"), validate=True)
        key = base64.b64decode(_str(o.get("key"), "key"), validate=True)
    except (binascii.Error, ValueError):
        raise CodecError("server certificate or key is not base64") from None
    return Server(_str(o.get("gateway"), "gateway"), _int(o.get("index"), "index"),
                  _int(o.get("port"), "port"), _str(o.get("protocol"), "protocol"),
                  tuple(_str(h, "hosts") for h in _list(o.get("hosts"), "hosts")),
                  _str(o.get("bind"), "bind"), _str(o.get("tlsMode"), "tlsMode"),
                  _str(o.get("secret"), "secret"), cert, key)


# --- checked access --------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _obj(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise CodecError(f"{where}: want an object")
    return v


def _list(v: Any, where: str) -> list[Any]:
    if not isinstance(v, list):
        raise CodecError(f"{where}: want a list")
    return v


def _str(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise CodecError(f"{where}: want a string")
    return v


def _int(v: Any, where: str) -> int:
    if not _is_int(v):
        raise CodecError(f"{where}: want an integer")
    return int(v)


def _pair(v: Any, where: str) -> tuple[Any, Any]:
    if not isinstance(v, list) or len(v) != 2:
        raise CodecError(f"{where}: want a pair")
    return v[0], v[1]


def _ref(vhosts: list[VirtualHost], i: Any, where: str) -> VirtualHost:
    if not _is_int(i) or not 0 <= int(i) < len(vhosts):
        raise CodecError(f"{where}: no vhost {i!r}")
    return vhosts[int(i)]


def _headers(v: Any) -> tuple[tuple[str, str], ...]:
    return tuple((_str(k, "header"), _str(x, "header"))
                 for k, x in (_pair(h, "header") for h in _list(v, "headers")))
