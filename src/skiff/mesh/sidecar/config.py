"""The mesh's part of the data-plane configuration: what every sidecar needs, as plain data.

The control plane (controller.py) compiles it from pods, Services,
EndpointSlices, AuthorizationPolicies and the mesh CA; it travels over the
snapshot channel as a "part" named "mesh" (dataplane/codec.py carries it
without reading it); the data plane's SidecarHost (host.py) decodes it here
and serves it. Like Envoy's xDS for a sidecar, it holds:
- workloads: each meshed pod (its network namespace, IP, identity and SVID,
  labels, inbound mTLS mode per port, rewritten app probes);
- services: ClusterIP:port -> endpoints, for outbound routing (Envoy's EDS
  by VIP, so the caller's sidecar can pick a pod and speak mTLS to it);
- local_gateways: the VIPs whose Host-routed traffic follows Knative's mesh
  VirtualService (cluster-local Knative hosts go straight to the revision's
  pods with the caller's identity, as net-istio's `<route>-mesh` does);
- policies: the AuthorizationPolicy objects (compiled once per part in the
  data plane by mesh/authz), and the DestinationRules whose tls mode the
  caller's sidecar follows (mesh/peerauth.outbound_tls; auto mTLS without);
- the root certificate and the ingress gateway's own SVID (the gateway
  speaks mTLS to meshed pods), and the activator's when knative-serving is a
  member (it forwards with its own identity, and the policies that select it
  decide what reaches it).

Pure: encode() and decode() only; decode checks every field and raises
ValueError, so a bad part is refused (nack) and the last one keeps serving.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from skiff.mesh.authz.request import Workload

PART = "mesh"
PROXY_MARK = 1337            # the sidecar's sockets carry it; the capture rules let it pass
INBOUND_PORT = 15006
OUTBOUND_PORT = 15001
HEALTH_PORT = 15021          # /healthz/ready (the istio-proxy container's readiness probe)
PROBE_PORT = 15020           # /app-health/<container>/<kind> (rewritten app probes)
MODES = ("STRICT", "PERMISSIVE", "DISABLE")
MAX_WORKLOADS = 10_000
MAX_SERVICES = 50_000
MAX_POLICIES = 20_000
# istiod's identities for Knative's system components: the gateways' pods run as this service
# account, the activator as knative-serving/activator (its Deployment's labels select the
# guide's allow-traffic-to-activator and the tenants' allow-<tenant>-to-activator policies;
# it listens on 8012 for HTTP/1)
GATEWAY_IDENTITY = ("istio-system", "istio-ingressgateway-service-account")
ACTIVATOR_IDENTITY = ("knative-serving", "activator")
ACTIVATOR_LABELS = (("app", "activator"), ("app.kubernetes.io/component", "activator"),
                    ("app.kubernetes.io/name", "knative-serving"), ("role", "activator"))
ACTIVATOR_PORT = 8012
ACTIVATOR_WORKLOAD = Workload(ACTIVATOR_IDENTITY[0], tuple(sorted(ACTIVATOR_LABELS)))


@dataclass(frozen=True)
class SidecarWorkload:
    uid: str
    namespace: str
    name: str
    service_account: str
    ip: str
    netns: str                                   # /run/netns/skiff-...
    labels: tuple[tuple[str, str], ...] = ()
    cert_pem: bytes = b""
    key_pem: bytes = b""
    mtls: str = "PERMISSIVE"                     # the workload's inbound mode (PeerAuthentication)
    port_mtls: tuple[tuple[int, str], ...] = ()  # portLevelMtls
    app_probers: tuple[tuple[str, str], ...] = ()   # /app-health/... -> probe JSON
    trust_domain: str = "cluster.local"
    access_log: str = ""                         # file the sidecar's access log lines go to

    @property
    def spiffe_id(self) -> str:
        return f"spiffe://{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"

    def mode_for(self, port: int) -> str:
        for p, m in self.port_mtls:
            if p == port:
                return m
        return self.mtls


@dataclass(frozen=True)
class ServiceVip:
    vip: str
    port: int
    service: str                                 # namespace/name
    endpoints: tuple[tuple[str, int], ...] = ()
    # Istio's protocol of the port (appProtocol or name prefix; protocol.py), "" undeclared
    protocol: str = ""


@dataclass(frozen=True)
class MeshPart:
    root_pem: bytes = b""
    trust_domain: str = "cluster.local"
    root_namespace: str = "istio-system"
    workloads: tuple[SidecarWorkload, ...] = ()
    services: tuple[ServiceVip, ...] = ()
    local_gateways: tuple[tuple[str, int], ...] = ()
    policies: tuple[Mapping[str, Any], ...] = ()
    destination_rules: tuple[Mapping[str, Any], ...] = ()
    auto_mtls: bool = True
    gateway_cert: bytes = b""
    gateway_key: bytes = b""
    # the activator's SVID, when knative-serving is a member (else it is no mesh workload)
    activator_cert: bytes = b""
    activator_key: bytes = b""
    # meshConfig.protocolDetectionTimeout in seconds (SMCP proxy.networking.protocol.
    # detectionTimeout): a client silent this long is proxied as TCP; 0 (Istio's default): none
    protocol_detection_timeout: float = 0.0
    extra: Mapping[str, Any] = field(default_factory=dict)


EMPTY = MeshPart()


def inbound_treatment(mode: str, tls: bool, alpn: tuple[str, ...] = ()) -> str:
    """How a sidecar treats an inbound connection, from the port's mTLS mode and what the
    client's first bytes were (a TLS ClientHello and its ALPN, or not):
    "mtls" (terminate, a mesh client certificate required), "mtls-optional" (terminate, a
    certificate asked for), "passthrough" (the app's own TLS, relayed to it as TCP, undecrypted),
    "plaintext" (served as HTTP), "reject" (STRICT, and the client spoke plaintext).
    A mesh client offers ALPN istio-*; under PERMISSIVE other TLS is the app's."""
    if tls:
        if mode == "STRICT":
            return "mtls"
        if mode == "PERMISSIVE" and any(p.startswith("istio") for p in alpn):
            return "mtls-optional"
        return "passthrough"
    return "reject" if mode == "STRICT" else "plaintext"


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def encode(part: MeshPart) -> dict[str, Any]:
    return {
        "rootPem": _b64(part.root_pem), "trustDomain": part.trust_domain,
        "rootNamespace": part.root_namespace,
        "workloads": [{
            "uid": w.uid, "namespace": w.namespace, "name": w.name,
            "serviceAccount": w.service_account, "ip": w.ip, "netns": w.netns,
            "labels": dict(w.labels), "cert": _b64(w.cert_pem), "key": _b64(w.key_pem),
            "mtls": w.mtls, "portMtls": [[p, m] for p, m in w.port_mtls],
            "appProbers": dict(w.app_probers), "trustDomain": w.trust_domain,
            "accessLog": w.access_log} for w in part.workloads],
        "services": [[s.vip, s.port, s.service, [list(e) for e in s.endpoints]]
                     + ([s.protocol] if s.protocol else []) for s in part.services],
        "localGateways": [list(g) for g in part.local_gateways],
        "policies": [dict(p) for p in part.policies],
        "destinationRules": [dict(p) for p in part.destination_rules],
        "autoMtls": part.auto_mtls,
        "protocolDetectionTimeout": part.protocol_detection_timeout,
        "gatewayCert": _b64(part.gateway_cert), "gatewayKey": _b64(part.gateway_key),
        "activatorCert": _b64(part.activator_cert), "activatorKey": _b64(part.activator_key),
    }


def _str(d: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    v = d.get(key, default)
    if not isinstance(v, str):
        raise ValueError(f"{where}.{key} must be a string")
    return v


def _bytes(d: Mapping[str, Any], key: str, where: str) -> bytes:
    try:
        return base64.b64decode(_str(d, key, where, ""), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"{where}.{key} is not base64: {e}") from None


def _list(v: Any, where: str, limit: int) -> list[Any]:
    if not isinstance(v, list):
        raise ValueError(f"{where} must be a list")
    if len(v) > limit:
        raise ValueError(f"{where} has {len(v)} entries, more than {limit}")
    return v


def _port(v: Any, where: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 < v < 65536:
        raise ValueError(f"{where} must be a port number")
    return v


def _endpoint(v: Any, where: str) -> tuple[str, int]:
    if not isinstance(v, list) or len(v) != 2 or not isinstance(v[0], str):
        raise ValueError(f"{where} must be [ip, port]")
    return v[0], _port(v[1], where)


def _pairs(v: Any, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(v, dict) or not all(isinstance(k, str) and isinstance(x, str)
                                          for k, x in v.items()):
        raise ValueError(f"{where} must map strings to strings")
    return tuple(sorted(v.items()))


def _mode(v: Any, where: str) -> str:
    if v not in MODES:
        raise ValueError(f"{where} must be one of {', '.join(MODES)}")
    return str(v)


def _workload(d: Any, i: int) -> SidecarWorkload:
    where = f"workloads[{i}]"
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be an object")
    port_mtls = []
    for j, pm in enumerate(_list(d.get("portMtls", []), f"{where}.portMtls", 1024)):
        if not isinstance(pm, list) or len(pm) != 2:
            raise ValueError(f"{where}.portMtls[{j}] must be [port, mode]")
        port_mtls.append((_port(pm[0], f"{where}.portMtls[{j}]"),
                          _mode(pm[1], f"{where}.portMtls[{j}]")))
    return SidecarWorkload(
        uid=_str(d, "uid", where), namespace=_str(d, "namespace", where),
        name=_str(d, "name", where), service_account=_str(d, "serviceAccount", where),
        ip=_str(d, "ip", where), netns=_str(d, "netns", where),
        labels=_pairs(d.get("labels", {}), f"{where}.labels"),
        cert_pem=_bytes(d, "cert", where), key_pem=_bytes(d, "key", where),
        mtls=_mode(d.get("mtls"), f"{where}.mtls"), port_mtls=tuple(port_mtls),
        app_probers=_pairs(d.get("appProbers", {}), f"{where}.appProbers"),
        trust_domain=_str(d, "trustDomain", where, "cluster.local"),
        access_log=_str(d, "accessLog", where, ""))


def decode(d: Any) -> MeshPart:
    if not isinstance(d, dict):
        raise ValueError("the mesh part must be an object")
    services = []
    for i, s in enumerate(_list(d.get("services", []), "services", MAX_SERVICES)):
        where = f"services[{i}]"
        if not isinstance(s, list) or len(s) not in (4, 5) or not isinstance(s[0], str) \
                or not isinstance(s[2], str) or (len(s) == 5 and not isinstance(s[4], str)):
            raise ValueError(f"{where} must be [vip, port, service, endpoints(, protocol)]")
        eps = tuple(_endpoint(e, f"{where}.endpoints[{j}]")
                    for j, e in enumerate(_list(s[3], f"{where}.endpoints", 10_000)))
        services.append(ServiceVip(s[0], _port(s[1], where), s[2], eps,
                                   s[4] if len(s) == 5 else ""))
    policies = _list(d.get("policies", []), "policies", MAX_POLICIES)
    if not all(isinstance(p, dict) for p in policies):
        raise ValueError("policies must be objects")
    rules = _list(d.get("destinationRules", []), "destinationRules", MAX_POLICIES)
    if not all(isinstance(p, dict) for p in rules):
        raise ValueError("destinationRules must be objects")
    auto = d.get("autoMtls", True)
    if not isinstance(auto, bool):
        raise ValueError("autoMtls must be a boolean")
    detect = d.get("protocolDetectionTimeout", 0.0)
    if not isinstance(detect, (int, float)) or isinstance(detect, bool) \
            or not 0 <= detect <= 3600:
        raise ValueError("protocolDetectionTimeout must be seconds from 0 to 3600")
    return MeshPart(
        root_pem=_bytes(d, "rootPem", "mesh"), trust_domain=_str(d, "trustDomain", "mesh"),
        root_namespace=_str(d, "rootNamespace", "mesh"),
        workloads=tuple(_workload(w, i) for i, w in
                        enumerate(_list(d.get("workloads", []), "workloads", MAX_WORKLOADS))),
        services=tuple(services),
        local_gateways=tuple(_endpoint(g, f"localGateways[{i}]") for i, g in
                             enumerate(_list(d.get("localGateways", []), "localGateways", 64))),
        policies=tuple(policies), destination_rules=tuple(rules), auto_mtls=auto,
        protocol_detection_timeout=float(detect),
        gateway_cert=_bytes(d, "gatewayCert", "mesh"), gateway_key=_bytes(d, "gatewayKey", "mesh"),
        activator_cert=_bytes(d, "activatorCert", "mesh"),
        activator_key=_bytes(d, "activatorKey", "mesh"))
