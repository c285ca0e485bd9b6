"""EndpointSlice controller: a Service's pods as EndpointSlices and v1 Endpoints, as upstream's.

For each Service with a selector (not ExternalName), the pods of its
namespace that match it, have an IP and are not finished become endpoints:
conditions ready (the pod's Ready condition, or always with
publishNotReadyAddresses; never while terminating), serving, terminating
(deletionTimestamp set); targetRef to the pod, nodeName, and the hostname of
a pod whose spec.subdomain is the Service's name (ShouldSetHostname: only a
pod that sets spec.hostname). Ports are the Service's with each targetPort
resolved per pod (a named one from the pod's container ports), and pods
that resolve differently go into different slices (upstream's port map
key). Slices are made with generateName `<service>-`, the labels
kubernetes.io/service-name and endpointslice.kubernetes.io/managed-by, and a
controller ownerReference to the Service, so the garbage collector takes
them with it; at most MAX_ENDPOINTS_PER_SLICE endpoints each; endpoints stay
in the slice they are in (reconcileByPortMapping's idea), so one pod's change
rewrites one slice, and an unchanged slice is not written. A Service without
pods keeps one empty placeholder slice. Endpoints are keyed by pod, never by
address: in the shared-loopback mode every pod has the same IP.

The v1 Endpoints object of the same name mirrors it (subsets of addresses,
notReadyAddresses and ports, terminating pods left out unless
publishNotReadyAddresses), as the endpoints controller keeps it for
`kubectl get endpoints` and `kubectl describe svc`; truncated at
MAX_ENDPOINTS_ADDRESSES with upstream's over-capacity annotation.

plan() and desired_endpoints() are pure (table-tested); the reconciler is
the thin shell. Neighbours: core/controller.py (the runtime), gc.py (takes
the slices with their Service), the kube-proxy and cluster DNS (node/network/)
that read what this writes; core/apiserver/kubernetesservice.py keeps the
`kubernetes` Service's slice, which this controller never touches (it has no
selector).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.controller import Key, Mapper, owned_by
from skiff.core.reconcilers.podutil import is_ready, is_terminal

SERVICE = Ref("v1", "Service")
POD = Ref("v1", "Pod")
ENDPOINT_SLICE = Ref("discovery.k8s.io/v1", "EndpointSlice")
ENDPOINTS = Ref("v1", "Endpoints")

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
MAX_ENDPOINTS_PER_SLICE = 100      # kube-controller-manager's --max-endpoints-per-slice default
MAX_ENDPOINTS_ADDRESSES = 1000     # the endpoints controller's maxCapacity

PortsKey = tuple[tuple[str, int, str], ...]


# --- what a pod contributes ----------------------------------------------------------------


def _spec(o: Obj) -> Obj:
    s = o.get("spec")
    return s if isinstance(s, dict) else {}


def selects(svc: Obj, pod: Obj) -> bool:
    """A Service's selector (a map: every pair must match) against a pod's labels."""
    sel = _spec(svc).get("selector") or {}
    labels = pod["metadata"].get("labels") or {}
    return bool(sel) and all(labels.get(k) == v for k, v in sel.items())


def in_endpoints(pod: Obj, include_terminating: bool = True) -> bool:
    """endpointutil.ShouldPodBeInEndpoints: an address, not finished."""
    if is_terminal(pod):
        return False
    status = pod.get("status") or {}
    if not status.get("podIP") and not status.get("podIPs"):
        return False
    return include_terminating or not pod["metadata"].get("deletionTimestamp")


def find_port(pod: Obj, svc_port: Obj) -> int | None:
    """podutil.FindPort: a numeric targetPort as it is, a named one from the pod's containers
    (same name and protocol); None when the pod has no such port."""
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    proto = svc_port.get("protocol") or "TCP"
    for c in _spec(pod).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target and (p.get("protocol") or "TCP") == proto:
                return int(p["containerPort"])
    return None


def endpoint_ports(svc: Obj, pod: Obj) -> list[Obj]:
    """The Service's ports as this pod resolves them (ports it cannot resolve are left out)."""
    out: list[Obj] = []
    for sp in _spec(svc).get("ports") or []:
        num = find_port(pod, sp)
        if num is None:
            continue
        p: Obj = {"name": str(sp.get("name") or ""), "port": num,
                  "protocol": str(sp.get("protocol") or "TCP")}
        if sp.get("appProtocol"):
            p["appProtocol"] = sp["appProtocol"]
        out.append(p)
    return out


def ports_key(ports: list[Obj]) -> PortsKey:
    return tuple(sorted((str(p.get("name") or ""), int(p.get("port") or 0),
                         str(p.get("protocol") or "TCP")) for p in ports))


def _hostname(svc: Obj, pod: Obj) -> str:
    spec = _spec(pod)
    if spec.get("hostname") and spec.get("subdomain") == svc["metadata"]["name"]:
        return str(spec["hostname"])
    return ""


def _target_ref(pod: Obj) -> Obj:
    m = pod["metadata"]
    ref: Obj = {"kind": "Pod", "namespace": m.get("namespace", ""), "name": m["name"]}
    if m.get("uid"):
        ref["uid"] = m["uid"]
    return ref


def _addresses(pod: Obj) -> list[str]:
    status = pod.get("status") or {}
    ips = [str(i.get("ip")) for i in status.get("podIPs") or [] if i.get("ip")]
    return ips[:1] or [str(status.get("podIP"))]


def make_endpoint(svc: Obj, pod: Obj) -> Obj:
    """One discovery/v1 Endpoint for a pod (podEndpointChanged's fields)."""
    serving = is_ready(pod)
    terminating = bool(pod["metadata"].get("deletionTimestamp"))
    ready = bool(_spec(svc).get("publishNotReadyAddresses")) or (serving and not terminating)
    ep: Obj = {"addresses": _addresses(pod),
               "conditions": {"ready": ready, "serving": serving, "terminating": terminating}}
    if _hostname(svc, pod):
        ep["hostname"] = _hostname(svc, pod)
    ep["targetRef"] = _target_ref(pod)
    if _spec(pod).get("nodeName"):
        ep["nodeName"] = _spec(pod)["nodeName"]
    return ep


# --- slices --------------------------------------------------------------------------------


@dataclass
class Plan:
    creates: list[Obj] = field(default_factory=list)
    updates: list[Obj] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)


def manages(svc: Obj) -> bool:
    """Whether the controller keeps slices for `svc`: a selector, and not ExternalName."""
    return bool(_spec(svc).get("selector")) and _spec(svc).get("type") != "ExternalName"


def address_type(svc: Obj) -> str:
    families = _spec(svc).get("ipFamilies") or ["IPv4"]
    return "IPv6" if families[0] == "IPv6" else "IPv4"


def slice_labels(svc: Obj) -> dict[str, str]:
    """The Service's own labels, then the controller's (which win), as upstream's
    setEndpointSliceLabels; headless Services get service.kubernetes.io/headless."""
    labels = {k: v for k, v in (svc["metadata"].get("labels") or {}).items()
              if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL)}
    if _spec(svc).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    labels[SERVICE_NAME_LABEL] = svc["metadata"]["name"]
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    return labels


def owner_ref(svc: Obj) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "name": svc["metadata"]["name"],
            "uid": svc["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def new_slice(svc: Obj, ports: list[Obj], endpoints: list[Obj]) -> Obj:
    m = svc["metadata"]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"generateName": f"{m['name']}-", "namespace": m["namespace"],
                         "labels": slice_labels(svc), "ownerReferences": [owner_ref(svc)]},
            "addressType": address_type(svc), "endpoints": endpoints, "ports": ports}


def desired_endpoints_by_ports(svc: Obj, pods: list[Obj]) -> dict[PortsKey, tuple[list[Obj], dict[str, Obj]]]:
    """Per port map key: (the ports, {pod name: its endpoint})."""
    out: dict[PortsKey, tuple[list[Obj], dict[str, Obj]]] = {}
    ns = svc["metadata"].get("namespace", "")
    for pod in sorted(pods, key=lambda p: str(p["metadata"]["name"])):
        if pod["metadata"].get("namespace", "") != ns or not selects(svc, pod) \
                or not in_endpoints(pod):
            continue
        ports = endpoint_ports(svc, pod)
        key = ports_key(ports)
        group = out.setdefault(key, (sorted(ports, key=lambda p: (p["name"], p["port"])), {}))
        group[1][pod["metadata"]["name"]] = make_endpoint(svc, pod)
    return out


def _ep_pod(ep: Obj) -> str:
    return str((ep.get("targetRef") or {}).get("name", ""))


def _with_content(svc: Obj, old: Obj, ports: list[Obj], endpoints: list[Obj]) -> Obj:
    s = copy.deepcopy(old)
    s["metadata"]["labels"] = {**(old["metadata"].get("labels") or {}), **slice_labels(svc)}
    refs = [r for r in old["metadata"].get("ownerReferences") or []
            if r.get("uid") != svc["metadata"]["uid"]]
    s["metadata"]["ownerReferences"] = [owner_ref(svc), *refs]
    s["addressType"] = address_type(svc)
    s["endpoints"] = endpoints
    s["ports"] = ports
    return s


def _same(a: Obj, b: Obj) -> bool:
    fields = ("addressType", "endpoints", "ports")
    return all((a.get(f) or []) == (b.get(f) or []) for f in fields) and \
        a["metadata"].get("labels") == b["metadata"].get("labels") and \
        a["metadata"].get("ownerReferences") == b["metadata"].get("ownerReferences")


def plan(svc: Obj, pods: list[Obj], slices: list[Obj]) -> Plan:
    """The slice writes that converge `slices` (this Service's managed ones) on `pods`."""
    out = Plan()
    if not manages(svc):
        out.deletes = [s["metadata"]["name"] for s in slices]
        return out
    desired = desired_endpoints_by_ports(svc, pods)
    by_key: dict[PortsKey, list[Obj]] = {}
    for s in sorted(slices, key=lambda s: str(s["metadata"]["name"])):
        by_key.setdefault(ports_key(s.get("ports") or []), []).append(s)
    placeholder_kept = False
    for key, existing in by_key.items():
        group = desired.get(key)
        if group is None:
            for s in existing:
                # One empty slice stays while the Service has no endpoints at all.
                if not desired and not key and not placeholder_kept:
                    placeholder_kept = True
                    want = _with_content(svc, s, [], [])
                    if not _same(want, s):
                        out.updates.append(want)
                else:
                    out.deletes.append(s["metadata"]["name"])
            continue
        ports, remaining = group
        kept: list[tuple[Obj, list[Obj]]] = []
        for s in existing:
            eps = [remaining.pop(_ep_pod(e)) for e in s.get("endpoints") or []
                   if _ep_pod(e) in remaining]
            kept.append((s, eps[:MAX_ENDPOINTS_PER_SLICE]))
        rest = list(remaining.values())
        for s, eps in kept:
            room = MAX_ENDPOINTS_PER_SLICE - len(eps)
            eps += rest[:room]
            rest = rest[room:]
            if not eps:
                out.deletes.append(s["metadata"]["name"])
                continue
            want = _with_content(svc, s, ports, sorted(eps, key=_ep_pod))
            if not _same(want, s):
                out.updates.append(want)
        for i in range(0, len(rest), MAX_ENDPOINTS_PER_SLICE):
            out.creates.append(new_slice(svc, ports, rest[i:i + MAX_ENDPOINTS_PER_SLICE]))
    for key, (new_ports, new_eps) in desired.items():
        if key not in by_key:
            rest = list(new_eps.values())
            for i in range(0, len(rest), MAX_ENDPOINTS_PER_SLICE):
                out.creates.append(new_slice(svc, new_ports, rest[i:i + MAX_ENDPOINTS_PER_SLICE]))
    if not desired and not placeholder_kept:
        out.creates.append(new_slice(svc, [], []))
    return out


# --- v1 Endpoints ----------------------------------------------------------------------------


def _address(svc: Obj, pod: Obj) -> Obj:
    a: Obj = {"ip": _addresses(pod)[0]}
    if _hostname(svc, pod):
        a["hostname"] = _hostname(svc, pod)
    if _spec(pod).get("nodeName"):
        a["nodeName"] = _spec(pod)["nodeName"]
    a["targetRef"] = _target_ref(pod)
    return a


def desired_endpoints(svc: Obj, pods: list[Obj]) -> Obj:
    """The v1 Endpoints of `svc` (the endpoints controller's, repacked: one subset per set of
    resolved ports), keyed by pod so pods sharing an address stay apart."""
    m = svc["metadata"]
    publish = bool(_spec(svc).get("publishNotReadyAddresses"))
    groups: dict[PortsKey, tuple[list[Obj], list[Obj], list[Obj]]] = {}
    count = 0
    for pod in sorted(pods, key=lambda p: str(p["metadata"]["name"])):
        if pod["metadata"].get("namespace", "") != m.get("namespace", "") \
                or not selects(svc, pod) or not in_endpoints(pod, include_terminating=publish):
            continue
        if count >= MAX_ENDPOINTS_ADDRESSES:
            count += 1
            continue
        count += 1
        ports = endpoint_ports(svc, pod)
        key = ports_key(ports)
        group = groups.setdefault(key, (sorted(ports, key=lambda p: (p["name"], p["port"])), [], []))
        ready = publish or (is_ready(pod) and not pod["metadata"].get("deletionTimestamp"))
        (group[1] if ready else group[2]).append(_address(svc, pod))
    subsets: list[Obj] = []
    for key in sorted(groups):
        ports, ready_addrs, not_ready = groups[key]
        ss: Obj = {}
        if ready_addrs:
            ss["addresses"] = ready_addrs
        if not_ready:
            ss["notReadyAddresses"] = not_ready
        if ports:
            ss["ports"] = ports
        subsets.append(ss)
    labels = {k: v for k, v in (m.get("labels") or {}).items() if k != HEADLESS_LABEL}
    if _spec(svc).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    meta: Obj = {"name": m["name"], "namespace": m["namespace"]}
    if labels:
        meta["labels"] = labels
    if count > MAX_ENDPOINTS_ADDRESSES:
        meta["annotations"] = {OVER_CAPACITY: "truncated"}
    ep: Obj = {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta}
    if subsets:
        ep["subsets"] = subsets
    return ep


def endpoints_changed(want: Obj, have: Obj) -> bool:
    wm, hm = want["metadata"], have["metadata"]
    return (want.get("subsets") or []) != (have.get("subsets") or []) \
        or (wm.get("labels") or {}) != (hm.get("labels") or {}) \
        or (wm.get("annotations") or {}).get(OVER_CAPACITY) != \
        (hm.get("annotations") or {}).get(OVER_CAPACITY)


# --- the shell --------------------------------------------------------------------------------


class EndpointSliceReconciler:
    """Services -> EndpointSlices and Endpoints. Pod events map to the Services whose selector
    matches the pod now, and to those that listed it last time (a pod that lost its labels)."""
    name = "endpointslice"
    primary = SERVICE

    def __init__(self, client: Client) -> None:
        self.client = client
        self._selectors: dict[Key, dict[str, str]] = {}   # managed Services' selectors
        self._listed: dict[Key, set[Key]] = {}            # pod -> Services that list it

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        return [(POD, self._services_of_pod), (ENDPOINT_SLICE, owned_by("Service", "v1")),
                (ENDPOINTS, self._service_of_endpoints)]

    def _services_of_pod(self, pod: Obj) -> list[Key]:
        ns = pod["metadata"].get("namespace", "")
        labels = pod["metadata"].get("labels") or {}
        keys = {k for k, sel in self._selectors.items()
                if k[0] == ns and all(labels.get(a) == b for a, b in sel.items())}
        keys |= self._listed.get((ns, pod["metadata"]["name"]), set())
        return sorted(keys)

    def _service_of_endpoints(self, ep: Obj) -> list[Key]:
        key = (ep["metadata"].get("namespace", ""), ep["metadata"]["name"])
        return [key] if key in self._selectors else []

    def _remember(self, key: Key, svc: Obj | None, pods: list[Obj]) -> None:
        for services in self._listed.values():
            services.discard(key)
        self._listed = {p: s for p, s in self._listed.items() if s}
        if svc is None or not manages(svc):
            self._selectors.pop(key, None)
            return
        self._selectors[key] = dict(_spec(svc).get("selector") or {})
        for pod in pods:
            if selects(svc, pod):
                self._listed.setdefault((key[0], pod["metadata"]["name"]), set()).add(key)

    async def reconcile(self, namespace: str, name: str) -> float | None:
        key = (namespace, name)
        try:
            svc = await self.client.get(SERVICE, name, namespace)
        except ApiError as e:
            if e.code != 404:
                raise
            was_managed = key in self._selectors
            self._remember(key, None, [])
            if was_managed:   # the endpoints controller deletes the Endpoints of a gone Service
                await self.client.delete(ENDPOINTS, name, namespace)
            return None
        if svc["metadata"].get("deletionTimestamp"):
            return None
        slices = [s for s in await self.client.list(
            ENDPOINT_SLICE, namespace, label_selector=f"{SERVICE_NAME_LABEL}={name}")
            if (s["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY]
        pods = await self.client.list(POD, namespace) if manages(svc) else []
        self._remember(key, svc, pods)
        p = plan(svc, pods, slices)
        for slice_name in p.deletes:
            await self.client.delete(ENDPOINT_SLICE, slice_name, namespace)
        for s in p.updates:
            await self.client.update(s)
        for s in p.creates:
            await self.client.create(s)
        if manages(svc):
            await self._sync_endpoints(desired_endpoints(svc, pods))
        return None

    async def _sync_endpoints(self, want: Obj) -> None:
        m = want["metadata"]
        try:
            have = await self.client.get(ENDPOINTS, m["name"], m["namespace"])
        except ApiError as e:
            if e.code != 404:
                raise
            await self.client.create(want)
            return
        if endpoints_changed(want, have):
            have["metadata"]["labels"] = m.get("labels") or {}
            notes = {k: v for k, v in (have["metadata"].get("annotations") or {}).items()
                     if k != OVER_CAPACITY}
            have["metadata"]["annotations"] = {**notes, **(m.get("annotations") or {})}
            have.pop("subsets", None)
            if want.get("subsets"):
                have["subsets"] = want["subsets"]
            await self.client.update(have)
