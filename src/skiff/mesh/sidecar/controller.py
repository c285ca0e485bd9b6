"""The sidecars' control loop (istiod's job for sidecars): watch, issue SVIDs, compile, publish.

Informers (mesh/gateway/controller.py's) keep Pods, Services,
EndpointSlices, AuthorizationPolicies, PeerAuthentications and the mesh's
membership objects (SMCP, SMMR, SMM, Namespaces) in caches. A change that
matters schedules one compile a few milliseconds later (bursts batch):
compile_part() (pure) turns the caches into a MeshPart (config.py) and it
is published over the snapshot channel as the part "mesh"; the data plane's
SidecarHost (host.py) serves it.

A meshed pod is one with an `istio-proxy` container (injected by
inject.py), an IP, and a network namespace the node reports (netns_of).
Each gets an X.509 SVID for its service account from the mesh CA
(mesh/ca.py); SVIDs are kept per identity and reissued once half their
life is gone (pilot-agent's grace ratio), which publishes a new part: new
handshakes use the new certificate, open connections keep theirs. The
ingress gateway's own SVID (istio-system/istio-ingressgateway-service-account)
is issued the same way: the gateway speaks mTLS to meshed pods with it; so
is the activator's (knative-serving/activator) while knative-serving is a
member: requests the activator routes reach the pods with it.
Inbound mTLS modes come from PeerAuthentication (mesh/peerauth.py) with the
SMCP's dataPlane.mtls as the mesh default.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from skiff.core.client import Client, Obj, Ref
from skiff.core.clock import utcnow
from skiff.mesh import membership
from skiff.mesh.ca import CAHolder, issue_workload_cert, rotation_time
from skiff.mesh.gateway.controller import Informer
from skiff.mesh.peerauth import port_level_modes
from skiff.mesh.sidecar.config import (
    ACTIVATOR_IDENTITY,
    GATEWAY_IDENTITY,
    PART,
    MeshPart,
    ServiceVip,
    SidecarWorkload,
    encode,
)
from skiff.mesh.sidecar.protocol import service_port_protocol

log = logging.getLogger("skiff.sidecar.controller")

PROXY_CONTAINER = "istio-proxy"
LOCAL_GATEWAY_SERVICES = (("istio-system", "knative-local-gateway"),
                          ("knative-serving-ingress", "kourier-internal"))

NetnsOf = Callable[[str, str], "str | None"]
LogPathOf = Callable[[str, str], str]
Issue = Callable[[str, str], tuple[bytes, bytes]]


class Publisher(Protocol):
    def publish_part(self, name: str, data: Mapping[str, Any]) -> int: ...


def _meta(o: Obj) -> Obj:
    m = o.get("metadata")
    return m if isinstance(m, dict) else {}


def proxy_container(pod: Obj) -> Obj | None:
    for c in (pod.get("spec") or {}).get("containers") or []:
        if isinstance(c, dict) and c.get("name") == PROXY_CONTAINER:
            return c
    return None


def app_probers(proxy: Obj) -> tuple[tuple[str, str], ...]:
    """ISTIO_KUBE_APP_PROBERS of the istio-proxy container: rewritten probe path -> spec."""
    for e in proxy.get("env") or []:
        if isinstance(e, dict) and e.get("name") == "ISTIO_KUBE_APP_PROBERS":
            try:
                probers = json.loads(str(e.get("value") or "{}"))
            except ValueError:
                return ()
            if isinstance(probers, dict):
                return tuple(sorted((str(k), json.dumps(v)) for k, v in probers.items()
                                    if isinstance(v, dict)))
    return ()


def meshed_pod(pod: Obj) -> bool:
    """A pod with an istio-proxy container and an IP, not finished, whose proxy has not
    exited: a pod told to stop keeps its sidecar for terminationDrainDuration (the proxy
    container's drain, node/images/proxyv2.py); once that container has terminated its
    listeners close, as Envoy exits after the drain."""
    st = pod.get("status") or {}
    return (proxy_container(pod) is not None and bool(st.get("podIP"))
            and st.get("phase") not in ("Succeeded", "Failed") and not proxy_exited(pod))


def proxy_exited(pod: Obj) -> bool:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if isinstance(cs, dict) and cs.get("name") == PROXY_CONTAINER:
            return "terminated" in (cs.get("state") or {})
    return False


def service_vips(services: Iterable[Obj], slices: Iterable[Obj]) -> tuple[ServiceVip, ...]:
    """ClusterIP:port -> ready endpoints, from Services and their EndpointSlices (by port
    name, as kube-proxy matches them). Pure."""
    by_service: dict[tuple[str, str], list[Obj]] = {}
    for s in slices:
        m = _meta(s)
        svc = (m.get("labels") or {}).get("kubernetes.io/service-name")
        if svc:
            by_service.setdefault((str(m.get("namespace")), str(svc)), []).append(s)
    out: list[ServiceVip] = []
    for svc in services:
        m = _meta(svc)
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if not ip or ip == "None" or spec.get("type") == "ExternalName":
            continue
        key = (str(m.get("namespace")), str(m.get("name")))
        for p in spec.get("ports") or []:
            if not isinstance(p, dict) or not isinstance(p.get("port"), int):
                continue
            if str(p.get("protocol") or "TCP") != "TCP":
                continue        # UDP, SCTP: the sidecar proxies TCP only, as Istio's does
            name = str(p.get("name") or "")
            eps: list[tuple[str, int]] = []
            for sl in by_service.get(key, []):
                port = next((int(sp["port"]) for sp in sl.get("ports") or []
                             if isinstance(sp, dict) and str(sp.get("name") or "") == name
                             and isinstance(sp.get("port"), int)), None)
                if port is None:
                    continue
                for e in sl.get("endpoints") or []:
                    if (e.get("conditions") or {}).get("ready") is False:
                        continue
                    eps.extend((str(a), port) for a in e.get("addresses") or [])
            out.append(ServiceVip(str(ip), int(p["port"]), f"{key[0]}/{key[1]}",
                                  tuple(sorted(set(eps))),
                                  service_port_protocol(name, str(p.get("appProtocol") or ""))))
    return tuple(out)


def local_gateway_vips(services: Iterable[Obj]) -> tuple[tuple[str, int], ...]:
    out: list[tuple[str, int]] = []
    for svc in services:
        m = _meta(svc)
        if (m.get("namespace"), m.get("name")) not in LOCAL_GATEWAY_SERVICES:
            continue
        ip = (svc.get("spec") or {}).get("clusterIP")
        if not ip or ip == "None":
            continue
        out.extend((str(ip), int(p["port"])) for p in (svc.get("spec") or {}).get("ports") or []
                   if isinstance(p, dict) and isinstance(p.get("port"), int))
    return tuple(sorted(out))


def compile_part(pods: Iterable[Obj], services: Iterable[Obj], slices: Iterable[Obj],
                 policies: Iterable[Obj], cfg: membership.MeshConfig, root_pem: bytes,
                 issue: Issue, netns_of: NetnsOf, log_path_of: LogPathOf,
                 mtls_of: Callable[[Obj], tuple[str, tuple[tuple[int, str], ...]]],
                 destination_rules: Iterable[Obj] = (),
                 ) -> MeshPart:
    """The mesh part from the caches. `issue` gives an identity's (cert, key) (a cache in the
    shell), `netns_of` the pod's network namespace (None: not running on this node yet),
    `mtls_of` the pod's inbound mode and port-level modes (PeerAuthentication)."""
    services = list(services)
    workloads: list[SidecarWorkload] = []
    for pod in pods:
        if not meshed_pod(pod):
            continue
        m = _meta(pod)
        ns, name = str(m.get("namespace")), str(m.get("name"))
        if not cfg.is_member(ns):
            continue
        netns = netns_of(ns, name)
        if not netns:
            continue
        sa = str((pod.get("spec") or {}).get("serviceAccountName") or "default")
        cert, key = issue(ns, sa)
        mode, ports = mtls_of(pod)
        proxy = proxy_container(pod) or {}
        workloads.append(SidecarWorkload(
            uid=str(m.get("uid") or f"{ns}/{name}"), namespace=ns, name=name,
            service_account=sa, ip=str(pod["status"]["podIP"]), netns=netns,
            labels=tuple(sorted((str(k), str(v)) for k, v in (m.get("labels") or {}).items())),
            cert_pem=cert, key_pem=key, mtls=mode, port_mtls=ports,
            app_probers=app_probers(proxy), trust_domain=cfg.trust_domain,
            access_log=log_path_of(ns, name)))
    gw_cert, gw_key = issue(*GATEWAY_IDENTITY)
    act_cert, act_key = issue(*ACTIVATOR_IDENTITY) if cfg.is_member(ACTIVATOR_IDENTITY[0]) \
        else (b"", b"")
    return MeshPart(root_pem=root_pem, trust_domain=cfg.trust_domain,
                    root_namespace=cfg.root_namespace,
                    workloads=tuple(sorted(workloads, key=lambda w: w.uid)),
                    services=service_vips(services, slices),
                    local_gateways=local_gateway_vips(services),
                    policies=tuple(_policy_view(p) for p in policies),
                    destination_rules=tuple(_policy_view(r) for r in destination_rules),
                    auto_mtls=cfg.auto_mtls, gateway_cert=gw_cert, gateway_key=gw_key,
                    protocol_detection_timeout=cfg.protocol_detection_s,
                    activator_cert=act_cert, activator_key=act_key)


def inbound_mtls(peer_auths: list[Obj], cfg: membership.MeshConfig, pod: Obj,
                 ) -> tuple[str, tuple[tuple[int, str], ...]]:
    """The pod's inbound mTLS mode and its port-level modes (PeerAuthentication over the
    SMCP's mesh default)."""
    m = _meta(pod)
    default, ports = port_level_modes(
        peer_auths, str(m.get("namespace")), m.get("labels") or {},
        root_namespace=cfg.root_namespace, mesh_default=cfg.mtls_mode)
    return default.mode, tuple(sorted((p, mm.mode) for p, mm in ports.items()))


def _policy_view(p: Obj) -> Obj:
    """What the data plane needs of a policy or rule (no managedFields or status)."""
    m = _meta(p)
    return {"apiVersion": p.get("apiVersion"), "kind": p.get("kind"),
            "metadata": {k: m[k] for k in ("name", "namespace", "annotations",
                                           "creationTimestamp") if k in m},
            "spec": p.get("spec") or {}}


def _fp_pod(o: Obj) -> Any:
    m = _meta(o)
    st = o.get("status") or {}
    return (m.get("uid"), m.get("labels"), st.get("podIP"), st.get("phase"),
            proxy_container(o) is not None, (o.get("spec") or {}).get("serviceAccountName"),
            proxy_exited(o))


def _fp_spec(o: Obj) -> Any:
    m = _meta(o)
    return (m.get("labels"), m.get("annotations"), o.get("spec"), o.get("endpoints"),
            o.get("ports"), m.get("deletionTimestamp"))


class SidecarController:
    DEBOUNCE = 0.02

    def __init__(self, client: Client, publisher: Publisher, ca: CAHolder, netns_of: NetnsOf,
                 log_path_of: LogPathOf,
                 mtls_for: Callable[[list[Obj], membership.MeshConfig, Obj],
                                    tuple[str, tuple[tuple[int, str], ...]]]) -> None:
        self.client = client
        self.publisher = publisher
        self.ca = ca
        self.netns_of = netns_of
        self.log_path_of = log_path_of
        self.mtls_for = mtls_for
        # per identity: (certificate, key, when it is due for renewal), the time read once
        self.svids: dict[tuple[str, str], tuple[bytes, bytes, dt.datetime]] = {}
        self.informers: dict[str, Informer] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()
        self.published: MeshPart | None = None
        self.version = 0
        for key, ref, fp in (
                ("pods", Ref("v1", "Pod"), _fp_pod),
                ("services", Ref("v1", "Service"), _fp_spec),
                ("slices", Ref("discovery.k8s.io/v1", "EndpointSlice"), _fp_spec),
                ("authz", Ref("security.istio.io/v1beta1", "AuthorizationPolicy"), _fp_spec),
                ("peerauth", Ref("security.istio.io/v1beta1", "PeerAuthentication"), _fp_spec),
                ("destrules", Ref("networking.istio.io/v1beta1", "DestinationRule"), _fp_spec),
                ("smcp", membership.SMCP, _fp_spec),
                ("smmr", membership.SMMR, _fp_spec),
                ("smm", membership.SMM, _fp_spec),
                ("namespaces", membership.NAMESPACE, _fp_spec)):
            self.informers[key] = Informer(client, ref, "", fp, self.changed)

    def changed(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for inf in self.informers.values():
            self._tasks.append(loop.create_task(inf.run()))
        self._tasks.append(loop.create_task(self._run()))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def refresh(self) -> None:
        """Look again (the node started or stopped a pod's sandbox)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_rotation())
            self._wake.clear()
            await asyncio.sleep(self.DEBOUNCE)
            try:
                await self.compile_and_publish()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the mesh part could not be compiled")
                await asyncio.sleep(1.0)

    def _next_rotation(self) -> float:
        now = utcnow()
        waits = [(due - now).total_seconds() for _, _, due in self.svids.values()]
        return max(1.0, min(waits, default=3600.0))

    def _items(self, key: str) -> list[Obj]:
        return list(self.informers[key].items.values())

    async def compile_and_publish(self) -> MeshPart | None:
        objs = [*self._items("smcp"), *self._items("smmr"), *self._items("smm"),
                *self._items("namespaces")]
        cfg = membership.mesh_config(objs)
        if cfg is None:
            part = MeshPart()
        else:
            ca = await self.ca.ensure(self.client)
            now = utcnow()
            ttl = dt.timedelta(seconds=cfg.workload_cert_ttl_s)

            def issue(ns: str, sa: str) -> tuple[bytes, bytes]:
                have = self.svids.get((ns, sa))
                if have is None or now >= have[2]:
                    cert, key = issue_workload_cert(ca, ns, sa, now, ttl, cfg.trust_domain)
                    have = self.svids[(ns, sa)] = (cert, key, rotation_time(cert))
                return have[0], have[1]
            peer_auths = self._items("peerauth")
            part = compile_part(self._items("pods"), self._items("services"),
                                self._items("slices"), self._items("authz"), cfg, ca.root_pem,
                                issue, self.netns_of, self.log_path_of,
                                lambda pod: self.mtls_for(peer_auths, cfg, pod),
                                self._items("destrules"))
        if part == self.published:
            return part
        self.published = part
        self.version = self.publisher.publish_part(PART, encode(part))
        log.debug("mesh part %d: %d sidecars", self.version, len(part.workloads))
        return part
