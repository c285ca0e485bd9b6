"""ClusterView: what cluster DNS knows of Services, EndpointSlices and Pods, and the watch that feeds it.

The view is CoreDNS's kubernetes-plugin cache, reduced to the fields the DNS
specification uses: a Service's ClusterIPs, type, externalName and named
ports; an EndpointSlice's addresses, readiness, hostnames and ports (joined to
its Service by the label kubernetes.io/service-name); a Pod's IPs in its
namespace. `apply`/`delete`/`replace` are pure bookkeeping on plain dicts as
the API holds them, and the lookups dns.py makes are dictionary reads, so an
answer costs no scan. `watch_into` is the thin shell: it lists and watches the
three kinds through core/client.py (as core/controller.py does, re-listing
with back-off on any error, and tolerating a kind the API does not serve yet)
and keeps the view current until it is cancelled. Neighbours: dns.py (the
answers), dnsserver.py (the sockets), core/client.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.controller import RELIST_MIN, relist_delay

log = logging.getLogger("skiff.dns")

SERVICE = Ref("v1", "Service")
ENDPOINT_SLICE = Ref("discovery.k8s.io/v1", "EndpointSlice")
POD = Ref("v1", "Pod")
KINDS = (SERVICE, ENDPOINT_SLICE, POD)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"

Key = tuple[str, str]                    # (namespace, name), lower case
K = TypeVar("K")


@dataclass(frozen=True)
class Port:
    name: str                            # lower case; "" for an unnamed port (no SRV record)
    protocol: str                        # lower case: tcp | udp | sctp
    port: int


@dataclass(frozen=True)
class ServiceInfo:
    namespace: str
    name: str
    cluster_ips: tuple[str, ...]         # empty for headless and ExternalName Services
    headless: bool                       # spec.clusterIP None
    external_name: str                   # type ExternalName: the CNAME target, else ""
    ports: tuple[Port, ...]
    publish_not_ready: bool


@dataclass(frozen=True)
class Endpoint:
    addresses: tuple[str, ...]
    ready: bool
    hostname: str                        # lower case; "" when the endpoint has none


@dataclass(frozen=True)
class SliceInfo:
    service: str                         # the label kubernetes.io/service-name
    endpoints: tuple[Endpoint, ...]
    ports: tuple[Port, ...]


def _key(obj: Obj) -> Key:
    m = obj.get("metadata") or {}
    return (str(m.get("namespace") or "").lower(), str(m.get("name") or "").lower())


def _ports(items: object) -> tuple[Port, ...]:
    out: list[Port] = []
    for p in items if isinstance(items, list) else []:
        if not isinstance(p, dict):
            continue
        number = p.get("port")
        if not isinstance(number, int) or isinstance(number, bool):
            continue
        out.append(Port(str(p.get("name") or "").lower(),
                        str(p.get("protocol") or "TCP").lower(), number))
    return tuple(out)


def service_info(obj: Obj) -> ServiceInfo:
    spec = obj.get("spec") or {}
    ns, name = _key(obj)
    kind = spec.get("type") or "ClusterIP"
    ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")])
           if isinstance(ip, str) and ip and ip != "None"]
    headless = spec.get("clusterIP") == "None"
    external = str(spec.get("externalName") or "").rstrip(".").lower() if kind == "ExternalName" else ""
    return ServiceInfo(ns, name, () if headless or external else tuple(ips), headless and not external,
                       external, _ports(spec.get("ports")),
                       bool(spec.get("publishNotReadyAddresses")))


def slice_info(obj: Obj) -> SliceInfo:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    eps: list[Endpoint] = []
    for e in obj.get("endpoints") or []:
        if not isinstance(e, dict):
            continue
        addrs = tuple(a for a in e.get("addresses") or [] if isinstance(a, str) and a)
        # EndpointConditions: a nil `ready` means ready (discovery.k8s.io/v1).
        ready = (e.get("conditions") or {}).get("ready") is not False
        eps.append(Endpoint(addrs, ready, str(e.get("hostname") or "").lower()))
    return SliceInfo(str(labels.get(SERVICE_NAME_LABEL) or "").lower(), tuple(eps),
                     _ports(obj.get("ports")))


def pod_ips(obj: Obj) -> tuple[str, ...]:
    status = obj.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return ()     # a finished pod's IP is free for the next pod
    ips = [p.get("ip") for p in status.get("podIPs") or [] if isinstance(p, dict)]
    if not ips and status.get("podIP"):
        ips = [status.get("podIP")]
    return tuple(ip for ip in ips if isinstance(ip, str) and ip)


class ClusterView:
    """An index of Services, EndpointSlices and Pods for DNS answers; apply/delete are pure."""

    def __init__(self) -> None:
        self.services: dict[Key, ServiceInfo] = {}
        self.slices: dict[Key, SliceInfo] = {}
        self.pods: dict[Key, tuple[str, ...]] = {}
        self._slices_of: dict[Key, set[Key]] = {}          # service key -> its slice keys
        self._namespaces: dict[str, int] = {}              # namespace -> Services and Pods in it
        self._pods_at: dict[tuple[str, str], int] = {}     # (namespace, ip) -> number of pods
        self._pod_ns_by_ip: dict[str, dict[str, int]] = {}  # ip -> namespace -> pods
        self._services_by_ip: dict[str, set[Key]] = {}     # ClusterIP -> services
        # Bumped on every change: the zone's SOA serial, so a cache can tell the data moved.
        self.generation = 0

    # --- feeding ----------------------------------------------------------------------------
    def apply(self, kind: str, obj: Obj) -> None:
        """An object was added or modified (or listed): index it, replacing what it was."""
        self.delete(kind, obj)
        self.generation += 1
        key = _key(obj)
        if kind == "Service":
            svc = service_info(obj)
            self.services[key] = svc
            self._namespaces[key[0]] = self._namespaces.get(key[0], 0) + 1
            for ip in svc.cluster_ips:
                self._services_by_ip.setdefault(ip, set()).add(key)
        elif kind == "EndpointSlice":
            sl = slice_info(obj)
            self.slices[key] = sl
            if sl.service:
                self._slices_of.setdefault((key[0], sl.service), set()).add(key)
        elif kind == "Pod":
            ips = pod_ips(obj)
            if ips:
                self.pods[key] = ips
                self._namespaces[key[0]] = self._namespaces.get(key[0], 0) + 1
                for ip in ips:
                    self._pods_at[(key[0], ip)] = self._pods_at.get((key[0], ip), 0) + 1
                    per_ns = self._pod_ns_by_ip.setdefault(ip, {})
                    per_ns[key[0]] = per_ns.get(key[0], 0) + 1

    def delete(self, kind: str, obj: Obj) -> None:
        """An object is gone: forget it (unknown objects are no error)."""
        key = _key(obj)
        if kind == "Service":
            svc = self.services.pop(key, None)
            if svc is None:
                return
            self.generation += 1
            _decrement(self._namespaces, key[0])
            for ip in svc.cluster_ips:
                keys = self._services_by_ip.get(ip)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._services_by_ip[ip]
        elif kind == "EndpointSlice":
            sl = self.slices.pop(key, None)
            if sl is None:
                return
            self.generation += 1
            if not sl.service:
                return
            owner = (key[0], sl.service)
            of = self._slices_of.get(owner)
            if of is not None:
                of.discard(key)
                if not of:
                    del self._slices_of[owner]
        elif kind == "Pod":
            ips = self.pods.pop(key, None)
            if ips is None:
                return
            self.generation += 1
            _decrement(self._namespaces, key[0])
            for ip in ips:
                _decrement(self._pods_at, (key[0], ip))
                per_ns = self._pod_ns_by_ip.get(ip)
                if per_ns is not None:
                    _decrement(per_ns, key[0])
                    if not per_ns:
                        del self._pod_ns_by_ip[ip]

    def replace(self, kind: str, objs: Iterable[Obj]) -> None:
        """A fresh list of `kind`: what it no longer holds was deleted while nobody watched."""
        held: list[Key] = list(self.services if kind == "Service" else
                               self.slices if kind == "EndpointSlice" else
                               self.pods if kind == "Pod" else ())
        fresh = list(objs)
        keep = {_key(o) for o in fresh}
        for ns, name in [k for k in held if k not in keep]:
            self.delete(kind, {"metadata": {"namespace": ns, "name": name}})
        for o in fresh:
            self.apply(kind, o)

    # --- lookups (names lower case) ----------------------------------------------------------
    def service(self, namespace: str, name: str) -> ServiceInfo | None:
        return self.services.get((namespace, name))

    def has_namespace(self, namespace: str) -> bool:
        """A namespace DNS knows of: one with a Service or a Pod (others are NXDOMAIN)."""
        return namespace in self._namespaces

    def endpoints(self, svc: ServiceInfo) -> list[tuple[Endpoint, tuple[Port, ...]]]:
        """The Service's endpoints that DNS publishes (ready, or all with
        publishNotReadyAddresses), each with its slice's ports, in a stable order."""
        out: list[tuple[Endpoint, tuple[Port, ...]]] = []
        for key in sorted(self._slices_of.get((svc.namespace, svc.name), ())):
            sl = self.slices[key]
            out.extend((e, sl.ports) for e in sl.endpoints
                       if e.addresses and (e.ready or svc.publish_not_ready))
        return out

    def has_pod(self, namespace: str, ip: str) -> bool:
        return (namespace, ip) in self._pods_at

    def services_at(self, ip: str) -> list[ServiceInfo]:
        return [self.services[k] for k in sorted(self._services_by_ip.get(ip, ()))]

    def pod_namespaces_at(self, ip: str) -> list[str]:
        return sorted(self._pod_ns_by_ip.get(ip, {}))

    def headless_endpoints_at(self, ip: str) -> list[tuple[ServiceInfo, Endpoint]]:
        """Headless Services publishing an endpoint with this address (for PTR). A scan of
        the slices: PTR queries for pod IPs are rare next to A queries."""
        out: list[tuple[ServiceInfo, Endpoint]] = []
        for key, sl in self.slices.items():
            svc = self.services.get((key[0], sl.service))
            if svc is None or not svc.headless:
                continue
            out.extend((svc, e) for e in sl.endpoints
                       if ip in e.addresses and (e.ready or svc.publish_not_ready))
        return out


def _decrement(counts: dict[K, int], key: K) -> None:
    n = counts.get(key, 0) - 1
    if n > 0:
        counts[key] = n
    else:
        counts.pop(key, None)


# --- the shell -------------------------------------------------------------------------------
async def watch_into(client: Client, view: ClusterView,
                     synced: asyncio.Event | None = None) -> None:
    """Keep `view` current from the API until cancelled. `synced` is set once every kind has
    been listed (a kind the API does not serve yet is retried with back-off and holds it)."""
    listed: set[str] = set()

    def mark(kind: str) -> None:
        listed.add(kind)
        if synced is not None and len(listed) == len(KINDS):
            synced.set()

    tasks = [asyncio.create_task(_watch_kind(client, view, ref, mark), name=f"dns-watch-{ref.kind}")
             for ref in KINDS]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _watch_kind(client: Client, view: ClusterView, ref: Ref,
                      mark: Callable[[str], None]) -> None:
    """List then watch one kind; on any error or a closed watch, re-list after a back-off."""
    delay = RELIST_MIN
    while True:
        try:
            items, rv = await client.list_with_version(ref)
            view.replace(ref.kind, items)
            del items
            mark(ref.kind)
            async for ev in client.watch(ref, resource_version=rv if rv != "0" else ""):
                delay = RELIST_MIN
                if ev.type in ("ADDED", "MODIFIED"):
                    view.apply(ref.kind, ev.object)
                elif ev.type == "DELETED":
                    view.delete(ref.kind, ev.object)
                elif ev.type == "ERROR":
                    break       # e.g. 410 Gone: the list below starts afresh
        except asyncio.CancelledError:
            raise
        except ApiError as e:
            log.debug("dns: watch %s restarts: %s", ref.kind, e.message)
        except Exception:
            log.exception("dns: watch %s failed", ref.kind)
        await asyncio.sleep(delay)
        delay = relist_delay(delay)
