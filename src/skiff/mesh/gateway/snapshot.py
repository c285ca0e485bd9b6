"""The ingress data-plane compiler: objects in, one immutable Snapshot out (Istio's xDS idea).

compile_snapshot(Inputs) is a pure function of
- the Istio Gateways (networking.istio.io) and the Secrets of istio-system
  their servers name by tls.credentialName (tls.crt/tls.key, or cert/key),
- the KIngresses (networking.internal.knative.dev/v1alpha1 Ingress) the
  Knative Routes produce,
- the ready endpoints of each (namespace, revision) (endpoints_from_pods),
- the KnativeServing objects (spec.ingress.istio.enabled picks the mode),
- GatewaySettings (where the listeners are bound) and skiff's own
  certificate for the Kourier-mode HTTPS listener.
It comes in parts: compile_ingress (one KIngress, alone), assemble_ingresses
(who owns each host), compile_servers (the Gateways and their Secrets) and
assemble_snapshot (listeners and route configurations), so that compiler.py
can compile again only what changed and still give this function's result.
It never reads the clock or a socket; the controller (controller.py) feeds
it from watches and pushes Snapshot.dataplane() (the generic model of
dataplane/model.py) to the data-plane process, whose proxy (proxy.py) swaps
it in atomically. Listeners name route configurations (Envoy's LDS and RDS):
"external" and "local" hold every ExternalIP and ClusterLocal host (the
router and, in Kourier mode, every listener serve them), and in Istio mode
each Gateway listener gets its own, "<bind>.<port>", filtered by its
servers' hosts; a KIngress change alters only route configurations, so the
channel sends only those (dataplane/codec.delta_messages). Routes name clusters (cluster_name: "ns/revision"); the
ready endpoints are a part of their own (cluster_endpoints), so a pod change
is sent as an endpoints-only update without recompiling routes. The same Snapshot carries the status the controller
writes back: Gateway conditions and KIngress conditions/load balancers.

Listeners ("binds"): a Gateway server on port 443 binds the ingress
gateway's TLS listener (reached through the router, router/router.py, on
settings.https_port: passthrough hosts go there raw); port 80 binds the
plain HTTP port (settings.http_port, where the router also serves every
external host, as OpenShift routes with insecure "Allow" do); port 8081 and
every server of knative-serving/knative-local-gateway bind the local
gateway (settings.local_gateway_port). External (ExternalIP) hosts are
routed only through knative-serving/knative-ingress-gateway, ClusterLocal
hosts only through knative-serving/knative-local-gateway (config-istio's
defaults); other Gateways bind ports and certificates but route nothing, as
in Istio, where no VirtualService of Knative's names them.

The local gateway's ISTIO_MUTUAL servers (seed 1.4.2) carry no credential:
the data plane terminates them with the gateway's mesh SVID and asks callers
for a certificate of the mesh (mesh/sidecar/host.py gives both).

Errors are the upstream way: a server whose credential Secret is missing or
malformed is skipped and its Gateway says so (Ready=False, reason
CredentialMissing / CredentialInvalid, the message names the Secret); two
servers binding the same listener with a host in common conflict, and the
older Gateway (creationTimestamp, then namespace/name) keeps it while the
loser reports Conflict. (Different hosts on one port coexist: like Envoy's
filter chains, the most specific SNI match wins.) Without
spec.ingress.istio.enabled=true (Kourier mode) Gateways are not programmed;
a default ingress serves every host: plain HTTP, HTTPS with skiff's own
certificate, and the local gateway.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from skiff.core.client import Obj
from skiff.dataplane import model
from skiff.dataplane.model import (  # noqa: F401  # the generic model, re-exported
    ClusterEndpoints,
    Endpoint,
    GatewaySettings,
    HttpPath,
    Listener,
    RouteTable,
    Server,
    Split,
    VirtualHost,
    build_table,
    filter_table,
    host_match_score,
    host_matches,
    http_path,
    normalize_host,
    patterns_intersect,
    swrr_schedule,
)

NsName = tuple[str, str]

ISTIO_CLASS = "istio.ingress.networking.knative.dev"
KOURIER_CLASS = "kourier.ingress.networking.knative.dev"
CLASS_ANNOTATION = "networking.knative.dev/ingress.class"
CLASS_ANNOTATION_ALIAS = "networking.knative.dev/ingress-class"
PASSTHROUGH_ANNOTATION = "serving.knative.openshift.io/enablePassthrough"
REVISION_LABEL = "serving.knative.dev/revision"
PORT_ANNOTATION = "skiff.dev/port"
PORTS_ANNOTATION = "skiff.dev/ports"
QUEUE_SERVING_PORTS = ("8012", "8013")      # queue-proxy's http1 and h2c serving ports
SECRET_NAMESPACE = "istio-system"
EXTERNAL_GATEWAY: NsName = ("knative-serving", "knative-ingress-gateway")
LOCAL_GATEWAY: NsName = ("knative-serving", "knative-local-gateway")

# The Services net-istio / net-kourier report as the Ingress's load balancers (OpenShift names).
LOAD_BALANCERS = {
    "istio": ("istio-ingressgateway.istio-system.svc.cluster.local",
              "knative-local-gateway.istio-system.svc.cluster.local"),
    "kourier": ("kourier.knative-serving-ingress.svc.cluster.local",
                "kourier-internal.knative-serving-ingress.svc.cluster.local"),
}
SERVER_HEADER = {"istio": "istio-envoy", "kourier": "envoy"}
PORT_BINDS = {443: "https", 80: "http", 8081: "local"}
BINDS = ("http", "https", "local")


# --- data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    type: str
    status: str               # "True" | "False" | "Unknown"
    reason: str = ""
    message: str = ""

    def as_dict(self) -> dict[str, str]:
        d = {"type": self.type, "status": self.status}
        if self.reason:
            d["reason"] = self.reason
        if self.message:
            d["message"] = self.message
        return d


@dataclass(frozen=True)
class IngressStatus:
    conditions: tuple[Condition, ...]
    public: str
    private: str
    observed_generation: int


@dataclass(frozen=True)
class Snapshot:
    mode: str                                           # istio | kourier
    listeners: Mapping[str, Listener]                   # each names its route configuration
    routes: Mapping[str, RouteTable]                    # route configurations by name (RDS)
    passthrough_hosts: frozenset[str]
    gateway_status: Mapping[NsName, tuple[Condition, ...]]
    ingress_status: Mapping[NsName, IngressStatus]
    endpoints: ClusterEndpoints = field(default_factory=lambda: model.EMPTY_ENDPOINTS)  # EDS

    @property
    def server_header(self) -> str:
        return SERVER_HEADER[self.mode]

    @property
    def external(self) -> RouteTable:
        """Every ExternalIP host (the router, the http port)."""
        return self.routes.get(model.EXTERNAL, model.EMPTY_TABLE)

    @property
    def local(self) -> RouteTable:
        """Every ClusterLocal host."""
        return self.routes.get(model.LOCAL, model.EMPTY_TABLE)

    def dataplane(self) -> model.Snapshot:
        """The part the data plane serves: no status, no Istio vocabulary."""
        return model.Snapshot(self.server_header, self.listeners, self.routes,
                              self.passthrough_hosts, self.endpoints)

    def describe(self) -> dict[str, Any]:
        """Plain data for golden tests and `skiff` diagnostics (certificates by Secret name)."""
        return {
            "mode": self.mode,
            "listeners": {b: _describe_listener(li, self.routes)
                          for b, li in sorted(self.listeners.items())},
            "external": _describe_table(self.external, self.endpoints),
            "local": _describe_table(self.local, self.endpoints),
            "passthrough": sorted(self.passthrough_hosts),
            "gateways": {f"{ns}/{n}": [c.as_dict() for c in cs]
                         for (ns, n), cs in sorted(self.gateway_status.items())},
            "ingresses": {f"{ns}/{n}": {"conditions": [c.as_dict() for c in st.conditions],
                                        "public": st.public, "private": st.private}
                          for (ns, n), st in sorted(self.ingress_status.items())},
        }


EMPTY = Snapshot("kourier", MappingProxyType({}), MappingProxyType({}), frozenset(),
                 MappingProxyType({}), MappingProxyType({}))


@dataclass(frozen=True)
class Inputs:
    gateways: Sequence[Obj] = ()
    secrets: Mapping[str, Obj] = field(default_factory=dict)   # name -> Secret in istio-system
    ingresses: Sequence[Obj] = ()
    endpoints: Mapping[NsName, tuple[Endpoint, ...]] = field(default_factory=dict)
    knative_servings: Sequence[Obj] = ()
    settings: GatewaySettings = GatewaySettings()
    default_cert: tuple[bytes, bytes] | None = None  # Kourier mode's HTTPS certificate (PEM)


# --- host matching ---------------------------------------------------------------------


def gateway_host(h: str) -> str:
    """A Gateway server host without its namespace part ("*/x.com", "./x.com", "ns/x.com")."""
    return h.split("/", 1)[1].lower() if "/" in h else h.lower()


# --- endpoints -------------------------------------------------------------------------


def pod_endpoint(p: Obj) -> tuple[NsName, Endpoint] | None:
    """((namespace, revision), endpoint) of a Ready pod with a skiff.dev/port, not deleting."""
    m = p.get("metadata") or {}
    rev = (m.get("labels") or {}).get(REVISION_LABEL)
    ann = m.get("annotations") or {}
    port = _queue_port(ann.get(PORTS_ANNOTATION)) or ann.get(PORT_ANNOTATION)
    if not rev or not port or m.get("deletionTimestamp") or not _pod_ready(p):
        return None
    try:
        ep = ((p.get("status") or {}).get("podIP") or "127.0.0.1", int(port))
    except ValueError:
        return None
    return (str(m.get("namespace", "")), str(rev)), ep


def _queue_port(ports: str | None) -> int | None:
    """Where the pod's queue-proxy serves (8012, or 8013 for h2c; the host port it got on the
    shared loopback), as the revision's Services target it; None: the pod has none."""
    if not ports or '"801' not in ports:
        return None
    try:
        mapping = json.loads(ports)
        for key in QUEUE_SERVING_PORTS:
            if key in mapping:
                return int(mapping[key])
    except (ValueError, TypeError, AttributeError):
        return None
    return None


def endpoints_from_pods(pods: Iterable[Obj]) -> dict[NsName, tuple[Endpoint, ...]]:
    """Ready endpoints per (namespace, revision) (pod_endpoint), each set sorted."""
    out: dict[NsName, set[Endpoint]] = {}
    for p in pods:
        pe = pod_endpoint(p)
        if pe is not None:
            out.setdefault(pe[0], set()).add(pe[1])
    return {k: tuple(sorted(v)) for k, v in out.items()}


def _pod_ready(p: Obj) -> bool:
    for c in (p.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


# --- credentials -----------------------------------------------------------------------


def secret_pems(secret: Obj) -> tuple[bytes, bytes] | None:
    """(cert, key) PEM from a TLS Secret (tls.crt/tls.key, or Istio's cert/key); None if absent."""
    data = secret.get("data") or {}
    plain = secret.get("stringData") or {}

    def get(name: str) -> bytes | None:
        if name in plain:
            return str(plain[name]).encode()
        if name in data:
            try:
                return base64.b64decode(str(data[name]), validate=True)
            except (binascii.Error, ValueError):
                return b""
        return None

    for crt, key in (("tls.crt", "tls.key"), ("cert", "key")):
        c, k = get(crt), get(key)
        if c is not None or k is not None:
            return c or b"", k or b""
    return None


@functools.lru_cache(maxsize=128)
def credential_problem(cert_pem: bytes, key_pem: bytes) -> str:
    """"" when the chain and key load and belong together; otherwise what is wrong."""
    if not cert_pem.strip():
        return "the certificate is empty"
    if not key_pem.strip():
        return "the private key is empty"
    try:
        with warnings.catch_warnings():
            # The guide's own recipe signs with `-set_serial 0`, which OpenSSL (and so the
            # data plane) accepts; cryptography only warns that RFC 5280 disallows it.
            warnings.simplefilter("ignore")
            certs = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as e:
        return f"the certificate does not parse as PEM: {e}"
    try:
        key = serialization.load_pem_private_key(key_pem, None)
    except (ValueError, TypeError) as e:
        return f"the private key does not parse as PEM: {e}"
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if certs[0].public_key().public_bytes(*fmt) != key.public_key().public_bytes(*fmt):
        return "the private key does not match the certificate"
    return ""


# --- the compiler ----------------------------------------------------------------------


def ingress_mode(knative_servings: Iterable[Obj]) -> str:
    for ks in knative_servings:
        if (((ks.get("spec") or {}).get("ingress") or {}).get("istio") or {}).get("enabled") is True:
            return "istio"
    return "kourier"


def _age_key(o: Obj) -> tuple[str, str, str]:
    m = o.get("metadata") or {}
    return (str(m.get("creationTimestamp") or ""), str(m.get("namespace") or ""), str(m.get("name")))


def _nsname(o: Obj) -> NsName:
    m = o.get("metadata") or {}
    return (str(m.get("namespace") or ""), str(m.get("name")))


def _sorted_headers(h: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in (h or {}).items()))


@dataclass(frozen=True)
class IngressRoutes:
    """One KIngress compiled on its own (compile_ingress): its virtual hosts, before the hosts
    of every KIngress are put together (assemble_ingresses decides who owns a host)."""
    key: NsName
    ident: str                                          # namespace/name
    age: tuple[str, str, str]                           # _age_key: the older one keeps a host
    generation: int
    passthrough: bool
    rules: tuple[tuple[str, VirtualHost], ...]          # (visibility, vhost) per rule


def compile_ingress(ing: Obj) -> IngressRoutes | None:
    """A KIngress's routes, a function of that object alone (so a compiler may keep them while
    the object is the same); None when it is another implementation's (Contour...) or is going
    away. Routes name clusters (cluster_name); endpoints are not part of them."""
    meta = ing.get("metadata") or {}
    ann = meta.get("annotations") or {}
    cls = ann.get(CLASS_ANNOTATION) or ann.get(CLASS_ANNOTATION_ALIAS) or ""
    if cls not in ("", ISTIO_CLASS, KOURIER_CLASS) or meta.get("deletionTimestamp"):
        return None
    ns, name = _nsname(ing)
    ident = f"{ns}/{name}"
    redirect = (ing.get("spec") or {}).get("httpOption") == "Redirected"
    rules: list[tuple[str, VirtualHost]] = []
    for rule in (ing.get("spec") or {}).get("rules") or []:
        visibility = rule.get("visibility") or "ExternalIP"
        hosts = tuple(normalize_host(str(h)) for h in rule.get("hosts") or [])
        paths = tuple(_compile_path(p, ns) for p in (rule.get("http") or {}).get("paths") or [])
        rules.append((visibility, VirtualHost(ident, hosts, paths,
                                              redirect and visibility != "ClusterLocal")))
    return IngressRoutes((ns, name), ident, _age_key(ing), int(meta.get("generation") or 0),
                         str(ann.get(PASSTHROUGH_ANNOTATION, "")).lower() == "true",
                         tuple(rules))


def assemble_ingresses(compiled: Iterable[IngressRoutes], mode: str
                       ) -> tuple[RouteTable, RouteTable, frozenset[str], dict[NsName, IngressStatus]]:
    """(external table, local table, passthrough hosts, status per Ingress) from the KIngresses
    compiled one by one: in age order, the first to claim a host keeps it and a later one
    reports DomainConflict."""
    public, private = LOAD_BALANCERS[mode]
    external: list[tuple[str, VirtualHost]] = []
    local: list[tuple[str, VirtualHost]] = []
    owner: dict[tuple[str, str], str] = {}     # (visibility, host) -> ingress
    passthrough: set[str] = set()
    status: dict[NsName, IngressStatus] = {}
    for ing in sorted(compiled, key=lambda c: c.age):
        conflicts: list[str] = []
        for visibility, vh in ing.rules:
            target = local if visibility == "ClusterLocal" else external
            for h in vh.hosts:
                prev = owner.get((visibility, h))
                if prev is not None and prev != ing.ident:
                    conflicts.append(f'host "{h}" is already served by Ingress {prev}')
                    continue
                owner[(visibility, h)] = ing.ident
                target.append((h, vh))
                if ing.passthrough and visibility != "ClusterLocal":
                    passthrough.add(h)
        if conflicts:
            msg = "; ".join(conflicts)
            conds = (Condition("LoadBalancerReady", "False", "DomainConflict", msg),
                     Condition("NetworkConfigured", "True"),
                     Condition("Ready", "False", "DomainConflict", msg))
        else:
            conds = READY_CONDITIONS
        status[ing.key] = IngressStatus(conds, public, private, ing.generation)
    return build_table(external), build_table(local), frozenset(passthrough), status


READY_CONDITIONS = (Condition("LoadBalancerReady", "True"), Condition("NetworkConfigured", "True"),
                    Condition("Ready", "True"))


def cluster_name(namespace: str, revision: str) -> str:
    """A revision's cluster (Istio names it outbound|80||<rev>.<ns>.svc.cluster.local)."""
    return f"{namespace}/{revision}"


def cluster_endpoints(endpoints: Mapping[NsName, tuple[Endpoint, ...]]) -> dict[str, tuple[Endpoint, ...]]:
    """The EDS part: endpoints_from_pods() keyed by cluster name."""
    return {cluster_name(ns, rev): eps for (ns, rev), eps in endpoints.items() if eps}


def _compile_path(p: Obj, ns: str) -> HttpPath:
    raw = [s for s in p.get("splits") or []]
    splits: list[Split] = []
    for s in raw:
        percent = s.get("percent")
        pct = int(percent) if percent is not None else (100 if len(raw) == 1 else 0)
        if pct <= 0:
            continue
        sns = str(s.get("serviceNamespace") or ns)
        rev = str(s.get("serviceName") or "")
        splits.append(Split(cluster_name(sns, rev), pct, _sorted_headers(s.get("appendHeaders")),
                            f"{rev}.{sns}.svc.cluster.local:80/*"))
    headers = tuple(sorted((str(k).lower(), str((v or {}).get("exact", "")))
                           for k, v in (p.get("headers") or {}).items()))
    return http_path(prefix=str(p.get("path") or ""), headers=headers, splits=tuple(splits),
                     append_headers=_sorted_headers(p.get("appendHeaders")),
                     rewrite_host=str(p.get("rewriteHost") or ""))


@dataclass
class _GatewayReport:
    problems: list[tuple[str, str]] = field(default_factory=list)   # (reason, message)


def compile_servers(gateways: Sequence[Obj], secrets: Mapping[str, Obj]
                    ) -> tuple[dict[str, list[Server]], dict[NsName, _GatewayReport]]:
    """Accepted servers per bind (age order), and each Gateway's problems."""
    reports: dict[NsName, _GatewayReport] = {}
    candidates: list[Server] = []
    for gw in sorted(gateways, key=_age_key):
        key = _nsname(gw)
        if (gw.get("metadata") or {}).get("deletionTimestamp"):
            continue
        report = reports.setdefault(key, _GatewayReport())
        ident = f"{key[0]}/{key[1]}"
        for i, s in enumerate((gw.get("spec") or {}).get("servers") or []):
            port = s.get("port") or {}
            number = int(port.get("number") or 0)
            protocol = str(port.get("protocol") or "HTTP").upper()
            hosts = tuple(sorted({gateway_host(str(h)) for h in s.get("hosts") or []}))
            where = f"server {i} (port {number}, hosts {list(hosts)})"
            bind = "local" if key == LOCAL_GATEWAY else PORT_BINDS.get(number)
            if bind is None:
                report.problems.append(("PortNotExposed", f"{where}: port {number} is not exposed "
                                        "by the ingress gateway (skiff exposes 80, 443 and 8081)"))
                continue
            if not hosts:
                report.problems.append(("InvalidServer", f"{where}: hosts must not be empty"))
                continue
            tls = s.get("tls") or {}
            mode = str(tls.get("mode") or "")
            if protocol in ("HTTP", "HTTP2", "GRPC", "GRPC-WEB") and not mode:
                candidates.append(Server(ident, i, number, protocol, hosts, bind))
                continue
            if protocol not in ("HTTPS", "TLS", "HTTP", "HTTP2"):
                report.problems.append(("UnsupportedProtocol",
                                        f"{where}: protocol {protocol} is not served"))
                continue
            if mode == "ISTIO_MUTUAL":
                # mesh mTLS: the certificate is the gateway's SVID, which the data plane holds
                candidates.append(Server(ident, i, number, protocol, hosts, bind, mode))
                continue
            if mode not in ("SIMPLE", "MUTUAL"):
                reason = "InvalidServer" if not mode else "UnsupportedTLSMode"
                report.problems.append((reason, f"{where}: tls.mode {mode or '(none)'} is not "
                                        "supported for an HTTPS server (use SIMPLE)"))
                continue
            cred = str(tls.get("credentialName") or "")
            if not cred:
                report.problems.append(("CredentialMissing", f"{where}: tls.credentialName is "
                                        "required (file-mounted certificates are not supported)"))
                continue
            secret_ref = f"{SECRET_NAMESPACE}/{cred}"
            secret = secrets.get(cred)
            if secret is None:
                report.problems.append(("CredentialMissing",
                                        f"{where}: secret {secret_ref} not found"))
                continue
            pems = secret_pems(secret)
            if pems is None:
                report.problems.append(("CredentialInvalid", f"{where}: secret {secret_ref} has "
                                        "neither tls.crt/tls.key nor cert/key"))
                continue
            problem = credential_problem(*pems)
            if problem:
                report.problems.append(("CredentialInvalid", f"{where}: secret {secret_ref}: "
                                        f"{problem}"))
                continue
            candidates.append(Server(ident, i, number, protocol, hosts, bind, mode, secret_ref,
                                     pems[0], pems[1]))
    accepted: dict[str, list[Server]] = {}
    for s in candidates:
        taken = accepted.setdefault(s.bind, [])
        clash = None
        for other in taken:
            if other.terminates_tls != s.terminates_tls:
                clash = (other, f"port is bound {'with' if other.terminates_tls else 'without'} "
                                "TLS")
                break
            common = sorted(set(other.hosts) & set(s.hosts))
            if common:
                clash = (other, f"hosts {common} are already bound")
                break
        if clash is None:
            taken.append(s)
            continue
        other, why = clash
        gns, gname = s.gateway.split("/", 1)
        reports[(gns, gname)].problems.append(
            ("Conflict", f"server {s.index} (port {s.port}, hosts {list(s.hosts)}) is not bound: "
                         f"{why} by the older Gateway {other.gateway} (server {other.index})"))
    return accepted, reports


def compile_snapshot(inp: Inputs) -> Snapshot:
    """The whole snapshot from scratch (compiler.SnapshotCompiler keeps the parts of the last
    one that did not change, and must equal this)."""
    mode = ingress_mode(inp.knative_servings)
    compiled = [c for c in map(compile_ingress, inp.ingresses) if c is not None]
    servers = compile_servers(inp.gateways, inp.secrets) if mode == "istio" else ({}, {})
    return assemble_snapshot(mode, assemble_ingresses(compiled, mode), servers, inp,
                             cluster_endpoints(inp.endpoints))


AssembledIngresses = tuple[RouteTable, RouteTable, frozenset[str], dict[NsName, IngressStatus]]
CompiledServers = tuple[dict[str, list[Server]], dict[NsName, _GatewayReport]]


def assemble_snapshot(mode: str, ingresses: AssembledIngresses, servers: CompiledServers,
                      inp: Inputs, endpoints: Mapping[str, tuple[Endpoint, ...]],
                      gateway_routes: Mapping[str, RouteTable] | None = None) -> Snapshot:
    """The snapshot from its compiled parts: the KIngresses' tables (assemble_ingresses), the
    Gateways' servers (compile_servers, Istio mode), the listeners and their route
    configurations (inp gives the Gateways, settings and default certificate).
    `gateway_routes`, when given, are the Gateway listeners' route configurations already
    known (by name) for these tables and servers, so their hosts are not filtered again."""
    external, local, passthrough, ingress_status = ingresses
    st = inp.settings
    listeners: dict[str, Listener] = {}
    routes: dict[str, RouteTable] = {model.EXTERNAL: external, model.LOCAL: local}
    gateway_status: dict[NsName, tuple[Condition, ...]] = {}
    if mode == "istio":
        accepted, reports = servers
        for bind, servs in accepted.items():
            # Istio names a gateway's route configuration by its port ("https.443")
            name = route_config_name(bind, servs[0].port)
            known = gateway_routes.get(name) if gateway_routes is not None else None
            routes[name] = known if known is not None else _gateway_table(servs, external, local)
            listeners[bind] = Listener(bind, (st.host, st.port_of(bind)), tuple(servs), name)
        for gw_key, report in reports.items():
            if report.problems:
                reason = report.problems[0][0]
                msg = "; ".join(m for _, m in report.problems)
                gateway_status[gw_key] = (Condition("Ready", "False", reason, msg),)
            else:
                gateway_status[gw_key] = (Condition("Ready", "True"),)
    else:
        for gw in inp.gateways:
            if not (gw.get("metadata") or {}).get("deletionTimestamp"):
                gateway_status[_nsname(gw)] = (Condition(
                    "Ready", "False", "IstioIngressDisabled",
                    "not programmed: KnativeServing spec.ingress.istio.enabled is not true, so "
                    "Kourier (skiff's default ingress) serves Knative traffic"),)
        kourier = "knative-serving-ingress/kourier"
        listeners["http"] = Listener("http", (st.host, st.http_port),
                                     (Server(kourier, 0, 80, "HTTP", ("*",), "http"),),
                                     model.EXTERNAL)
        if inp.default_cert is not None:
            cert_pem, key_pem = inp.default_cert
            listeners["https"] = Listener(
                "https", (st.host, st.internal_https_port),
                (Server(kourier, 1, 443, "HTTPS", ("*",), "https", "SIMPLE", "skiff/ingress",
                        cert_pem, key_pem),), model.EXTERNAL)
        listeners["local"] = Listener("local", (st.host, st.local_gateway_port),
                                      (Server("knative-serving-ingress/kourier-internal", 0, 8081,
                                              "HTTP", ("*",), "local"),), model.LOCAL)
    return Snapshot(mode, MappingProxyType(listeners), MappingProxyType(routes), passthrough,
                    MappingProxyType(gateway_status), MappingProxyType(ingress_status),
                    MappingProxyType(dict(endpoints)))


def _gateway_table(servers: Sequence[Server], external: RouteTable, local: RouteTable
                   ) -> RouteTable:
    """A Gateway listener's route configuration: the hosts of knative-ingress-gateway's
    servers from the external table, knative-local-gateway's from the local one, filtered by
    the servers' hosts; other Gateways route nothing."""
    pairs: list[tuple[str, VirtualHost]] = []
    for s in servers:
        owner = tuple(s.gateway.split("/", 1))
        table = (external if owner == EXTERNAL_GATEWAY else
                 local if owner == LOCAL_GATEWAY else None)
        if table is not None:
            pairs += filter_table(table, s.hosts)
    return build_table(pairs)


def route_config_name(bind: str, port: int) -> str:
    """A Gateway listener's own route configuration ("https.443", "local.8081")."""
    return f"{bind}.{port}"


# --- describe --------------------------------------------------------------------------


def _describe_table(t: RouteTable, endpoints: ClusterEndpoints) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for host, vh in t.items():
        out[host] = {"ingress": vh.ingress, "paths": [_describe_path(p, endpoints) for p in vh.paths],
                     **({"redirectHTTP": True} if vh.redirect_http else {})}
    return out


def _describe_path(p: HttpPath, endpoints: ClusterEndpoints) -> dict[str, Any]:
    d: dict[str, Any] = {"splits": [
        {"revision": s.cluster, "percent": s.weight,
         "endpoints": [f"{h}:{port}" for h, port in endpoints.get(s.cluster, ())],
         **({"appendHeaders": dict(s.append_headers)} if s.append_headers else {})}
        for s in p.splits]}
    if p.prefix:
        d["path"] = p.prefix
    if p.headers:
        d["headers"] = dict(p.headers)
    if p.append_headers:
        d["appendHeaders"] = dict(p.append_headers)
    if p.rewrite_host:
        d["rewriteHost"] = p.rewrite_host
    return d


def _describe_listener(li: Listener, routes: Mapping[str, RouteTable]) -> dict[str, Any]:
    return {
        "address": f"{li.address[0]}:{li.address[1]}",
        "tls": li.tls,
        "servers": [{"gateway": s.gateway, "index": s.index, "port": s.port,
                     "hosts": list(s.hosts),
                     **({"tls": s.tls_mode} if s.tls_mode else {}),
                     **({"secret": s.secret} if s.secret else {})} for s in li.servers],
        "routeConfig": li.route_config,
        "hosts": routes.get(li.route_config, model.EMPTY_TABLE).hosts(),
    }
