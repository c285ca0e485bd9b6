"""`skiff authz check` and `skiff authz matrix`, as pure functions of a set of objects.

Answers "would this request be allowed?" without sending it: the destination is
resolved to the workload its sidecar belongs to, the request is built as that
sidecar would see it, and evaluate.decide() gives the verdict with the
deciding policy and rule. The objects are plain Kubernetes dicts, wherever
they came from (the live API, files not applied yet, or both): the
AuthorizationPolicies of the mesh, and the Knative Services, Services, Pods
and Deployments that locate the destination.

Mesh semantics followed (the Serverless guide, chapter 2.4):
- a Knative Service `name` is served by the revision pods labelled
  serving.knative.dev/service=<name>; a request to its cluster-local name
  (`name.ns`) is routed by the caller's sidecar straight to those pods (Istio's
  "mesh" VirtualService), so it arrives with the CALLER's identity, at the
  queue-proxy's port 8012;
- a request to its external URL arrives from the ingress gateway, with the
  identity cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account
  (Source.via_ingress);
- while the activator fronts the revision (its ServerlessService in Proxy mode:
  at zero, or with the default target-burst-capacity and few pods; assumed
  when no SKS is known), the request first reaches the activator, whose
  sidecar applies the policies that select it (knative-serving, its
  Deployment's labels, port 8012), and then the revision's pods with the
  ACTIVATOR's identity (knative-serving/activator): two decisions, the first
  denial answers. The activator is a mesh workload only while knative-serving
  is a member (the ServiceMeshMemberRoll, when one is known);
- a plain Service's request arrives at the pods its selector picks, at the
  port's targetPort (a named targetPort is looked up in the pod's containers).
When no pod exists (scaled to zero, or the objects come from files) the labels
the pods would carry are used (the Knative Service's template, a Deployment's
pod template, or the Service's selector) and the Verdict says so.

Pure: no I/O, no clock. Neighbours: evaluate.py (decide), model.py
(compile_policies), request.py (Request, Workload), cli/authz.py (the shell
that fetches objects from the API or reads files and prints Verdicts).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skiff.mesh.authz.evaluate import Decision, decide
from skiff.mesh.authz.model import DEFAULT_ROOT_NAMESPACE, PolicySet, compile_policies
from skiff.mesh.authz.request import Request, Workload, principal_for
from skiff.mesh.sidecar.config import ACTIVATOR_IDENTITY, ACTIVATOR_PORT, ACTIVATOR_WORKLOAD

__all__ = [
    "INGRESS_NAMESPACE", "INGRESS_SERVICE_ACCOUNT", "KNATIVE_POD_PORT", "CheckError",
    "Destination", "MatrixEntry", "RequestSpec", "Source", "Target", "Verdict", "check",
    "destinations", "kind_of", "matrix", "merge_objects", "parse_source", "parse_target",
    "resolve",
]

INGRESS_NAMESPACE = "istio-system"
INGRESS_SERVICE_ACCOUNT = "istio-ingressgateway-service-account"
KNATIVE_POD_PORT = 8012           # queue-proxy's HTTP/1 port: where mesh traffic enters a revision
KSVC_SERVICE_LABEL = "serving.knative.dev/service"
KSVC_REVISION_LABEL = "serving.knative.dev/revision"
KSVC_CONFIGURATION_LABEL = "serving.knative.dev/configuration"
ACTIVATOR = ACTIVATOR_WORKLOAD
_KNATIVE_OWNED = ("serving.knative.dev/route", "serving.knative.dev/revision",
                  "networking.internal.knative.dev/serverlessservice", KSVC_SERVICE_LABEL)

Obj = Mapping[str, Any]


class CheckError(LookupError):
    """The question cannot be answered: a destination not found, a bad name. One line."""


# --- inputs ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """Who sends: a service account's pod (through its sidecar), or the ingress gateway."""

    namespace: str
    service_account: str = "default"
    via_ingress: bool = False
    trust_domain: str = "cluster.local"

    @property
    def principal(self) -> str:
        if self.via_ingress:
            return principal_for(INGRESS_NAMESPACE, INGRESS_SERVICE_ACCOUNT, self.trust_domain)
        return principal_for(self.namespace, self.service_account, self.trust_domain)

    @property
    def label(self) -> str:
        if self.via_ingress:
            return f"ingress ({INGRESS_NAMESPACE}/{INGRESS_SERVICE_ACCOUNT})"
        return f"{self.namespace}/{self.service_account}"


@dataclass(frozen=True)
class Target:
    """What the caller names: a Service or Knative Service `name` in `namespace`. `text` is
    the name as written (the Host a client would send). `labels` given: the workload's
    labels are those, and nothing is looked up."""

    name: str
    namespace: str
    text: str = ""
    labels: tuple[tuple[str, str], ...] | None = None

    @property
    def display(self) -> str:
        return f"{self.name}.{self.namespace}"


@dataclass(frozen=True)
class RequestSpec:
    """The request's own fields; None means "what a client would send" (see check())."""

    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    port: int | None = None        # the Service port dialled (80 for a Knative Service)
    host: str | None = None


# --- outputs -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Destination:
    """The resolved destination: the workload whose sidecar decides, and its port."""

    kind: str                     # "KnativeService", "Service" or "Workload" (labels given)
    name: str
    namespace: str
    workload: Workload
    workload_from: str            # "pod NAME", "deployment NAME's pod template", ...
    port: int                     # the port the destination sidecar sees
    url_host: str = ""            # a Knative Service's external host, when known
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    source: Source
    destination: Destination
    request: Request
    decision: Decision
    notes: tuple[str, ...] = ()
    # the hops a request takes before the destination's sidecar, each (where, decision):
    # ("activator", its sidecar's decision) while the activator fronts the revision
    hops: tuple[tuple[str, Decision], ...] = ()
    at: str = "destination"       # whose decision answers: "activator" or "destination"

    @property
    def allowed(self) -> bool:
        return self.decision.allowed

    @property
    def word(self) -> str:
        return "ALLOW" if self.allowed else "DENY"

    def line(self) -> str:
        """`DENY  team-alpha-1/default -> test-webapp.team-bravo-1 GET / : <the engine's reason>`"""
        r = self.request
        what = f"{r.method} {r.path}" if r.http else f"TCP :{r.port}"
        where = "at the activator (knative-serving/activator): " if self.at == "activator" \
            else "via the activator: " if self.hops else ""
        return (f"{self.word:<5} {self.source.label} -> {self.destination.name}."
                f"{self.destination.namespace} {what} : {where}{self.decision.reason}")

    def deciding(self) -> str:
        """`policy: ns/name rule: N`, or "" when no policy decided (implicit allow/deny)."""
        d = self.decision
        if d.policy is None:
            return ""
        return f"policy: {d.policy} rule: {d.rule}"

    def to_dict(self) -> dict[str, Any]:
        d, r, dst = self.decision, self.request, self.destination
        return {
            "allowed": d.allowed, "verdict": self.word,
            "source": {"namespace": self.source.namespace,
                       "serviceAccount": None if self.source.via_ingress
                       else self.source.service_account,
                       "viaIngress": self.source.via_ingress, "principal": self.source.principal},
            "destination": {"kind": dst.kind, "name": dst.name, "namespace": dst.namespace,
                            "workload": {"namespace": dst.workload.namespace,
                                         "labels": dst.workload.label_map()},
                            "workloadFrom": dst.workload_from},
            "request": {"host": r.host, "port": r.port, "method": r.method, "path": r.path,
                        "headers": dict(r.headers)},
            "action": d.action, "policy": d.policy, "rule": d.rule, "reason": d.reason,
            "status": d.status, "decidedAt": self.at,
            "hops": [{"at": at, "allowed": h.allowed, "policy": h.policy, "rule": h.rule,
                      "reason": h.reason} for at, h in self.hops],
            "notes": [*dst.notes, *self.notes],
        }


# --- parsing -----------------------------------------------------------------------------

def parse_source(text: str) -> Source:
    """`NS/SA` (or `NS`, meaning service account default)."""
    ns, sep, sa = text.partition("/")
    if not ns or (sep and not sa) or "/" in sa:
        raise CheckError(f"--from {text!r} is not NAMESPACE/SERVICEACCOUNT")
    return Source(ns, sa or "default")


def parse_target(text: str, default_namespace: str) -> Target:
    """`name`, `name.ns`, `name.ns.svc` or `name.ns.svc.<cluster domain>` (a port suffix is
    dropped)."""
    host = text.strip()
    bare = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    parts = bare.split(".")
    if not parts[0]:
        raise CheckError(f"--to {text!r} is not SERVICE[.NAMESPACE]")
    if len(parts) == 1:
        return Target(parts[0], default_namespace, host)
    if len(parts) == 2 or parts[2] == "svc":
        return Target(parts[0], parts[1], host)
    raise CheckError(f"--to {text!r} is not SERVICE[.NAMESPACE] (external hosts: use --via "
                     "ingress with the Knative Service's name)")


# --- objects -----------------------------------------------------------------------------

def kind_of(o: Obj) -> str:
    """A short kind name: AuthorizationPolicy, KnativeService, Service, Pod, Deployment, or ""."""
    api, kind = str(o.get("apiVersion") or ""), str(o.get("kind") or "")
    group = api.rpartition("/")[0]
    if kind == "AuthorizationPolicy" and group == "security.istio.io":
        return kind
    if kind == "Service" and group == "serving.knative.dev":
        return "KnativeService"
    if kind in ("Service", "Pod") and group == "":
        return kind
    if kind == "Deployment" and group == "apps":
        return kind
    if kind == "ServerlessService" and group == "networking.internal.knative.dev":
        return kind
    if kind == "ServiceMeshMemberRoll" and group == "maistra.io":
        return kind
    return ""


def _meta(o: Obj) -> Mapping[str, Any]:
    m = o.get("metadata")
    return m if isinstance(m, Mapping) else {}


def _key(o: Obj) -> tuple[str, str, str]:
    m = _meta(o)
    return kind_of(o), str(m.get("namespace") or "default"), str(m.get("name") or "")


def merge_objects(live: Iterable[Obj], files: Iterable[Obj]) -> list[Obj]:
    """`live` with every object of `files` replacing the live one of the same kind, namespace
    and name (or added): policies not applied yet, checked against the rest as it is."""
    out: dict[tuple[str, str, str], Obj] = {}
    for o in live:
        out[_key(o)] = o
    for o in files:
        out[_key(o)] = o
    return list(out.values())


def _of(objects: Iterable[Obj], kind: str, namespace: str | None = None) -> list[Obj]:
    return sorted((o for o in objects if kind_of(o) == kind and (
        namespace is None or str(_meta(o).get("namespace") or "default") == namespace)),
        key=lambda o: str(_meta(o).get("name") or ""))


def _named(objects: Iterable[Obj], kind: str, namespace: str, name: str) -> Obj | None:
    return next((o for o in _of(objects, kind, namespace) if _meta(o).get("name") == name), None)


def _labels(o: Obj) -> dict[str, str]:
    raw = _meta(o).get("labels") or {}
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}


def _matches(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _live_pods(objects: Iterable[Obj], namespace: str,
               selector: Mapping[str, str]) -> list[Obj]:
    """Pods selected, not being deleted, Running ones first, then by name."""
    pods = [p for p in _of(objects, "Pod", namespace)
            if _matches(_labels(p), selector) and not _meta(p).get("deletionTimestamp")]
    return sorted(pods, key=lambda p: ((p.get("status") or {}).get("phase") != "Running",
                                       str(_meta(p).get("name"))))


def _template_labels(objects: Iterable[Obj], namespace: str,
                     selector: Mapping[str, str]) -> tuple[dict[str, str], str] | None:
    for d in _of(objects, "Deployment", namespace):
        tmpl = ((d.get("spec") or {}).get("template") or {})
        labels = {str(k): str(v) for k, v in ((tmpl.get("metadata") or {}).get("labels")
                                              or {}).items()}
        if labels and _matches(labels, selector):
            return labels, f"deployment {_meta(d).get('name')}'s pod template"
    return None


def _container_port(pod: Obj | None, name: str) -> int | None:
    for c in ((pod or {}).get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == name and isinstance(p.get("containerPort"), int):
                return int(p["containerPort"])
    return None


def _ksvc_host(ksvc: Obj) -> str:
    url = str((ksvc.get("status") or {}).get("url") or "")
    return url.partition("://")[2].split("/")[0] if "://" in url else ""


def resolve(objects: Sequence[Obj], target: Target, port: int | None = None) -> Destination:
    """The workload behind `target` and the port its sidecar sees. Raises CheckError."""
    ns, name = target.namespace, target.name
    if target.labels is not None:
        if port is None:
            return Destination("Workload", name, ns, Workload(ns, target.labels), "--label",
                               KNATIVE_POD_PORT, notes=(
                                   f"port {KNATIVE_POD_PORT} (a Knative revision's queue-proxy) "
                                   "assumed: pass --port for the pod's port",))
        return Destination("Workload", name, ns, Workload(ns, target.labels), "--label", port)
    ksvc = _named(objects, "KnativeService", ns, name)
    if ksvc is not None:
        notes: list[str] = []
        latest = str((ksvc.get("status") or {}).get("latestReadyRevisionName") or "")
        pods = _live_pods(objects, ns, {KSVC_SERVICE_LABEL: name})
        if latest:
            pods = sorted(pods, key=lambda p: _labels(p).get(KSVC_REVISION_LABEL) != latest)
        if pods:
            labels, where = _labels(pods[0]), f"pod {_meta(pods[0]).get('name')}"
        else:
            tmpl = ((ksvc.get("spec") or {}).get("template") or {}).get("metadata") or {}
            labels = {str(k): str(v) for k, v in (tmpl.get("labels") or {}).items()}
            labels.update({KSVC_SERVICE_LABEL: name, KSVC_CONFIGURATION_LABEL: name})
            where = "the Knative Service's revision template (no pods)"
            notes.append("no revision pod: the labels a revision pod would carry were used")
        pod_port = KNATIVE_POD_PORT if port in (None, 80) else port
        return Destination("KnativeService", name, ns, Workload.of(ns, labels), where, pod_port,
                           _ksvc_host(ksvc), tuple(notes))
    svc = _named(objects, "Service", ns, name)
    if svc is None:
        raise CheckError(f"service {name} not found in namespace {ns}")
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        raise CheckError(f"service {name} in namespace {ns} is an ExternalName to "
                         f"{spec.get('externalName')}: it has no pods to check (give the "
                         "workload's labels with --label K=V)")
    selector = {str(k): str(v) for k, v in (spec.get("selector") or {}).items()}
    if not selector:
        raise CheckError(f"service {name} in namespace {ns} has no selector (give the "
                         "workload's labels with --label K=V)")
    ports = [p for p in spec.get("ports") or [] if isinstance(p, Mapping)]
    if not ports:
        raise CheckError(f"service {name} in namespace {ns} has no ports")
    chosen = ports[0] if port is None else next((p for p in ports if p.get("port") == port), None)
    if chosen is None:
        have = ", ".join(str(p.get("port")) for p in ports)
        raise CheckError(f"service {name} in namespace {ns} has no port {port} (ports: {have})")
    pods = _live_pods(objects, ns, selector)
    notes = []
    pod: Obj | None = pods[0] if pods else None
    if pod is not None:
        labels, where = _labels(pod), f"pod {_meta(pod).get('name')}"
    elif (found := _template_labels(objects, ns, selector)) is not None:
        labels, where = found
        notes.append("no pod yet: the labels of a pod template were used")
    else:
        labels, where = selector, "the service's selector (no pods)"
        notes.append("no pod: the service's selector was used as the workload's labels")
    target_port = chosen.get("targetPort", chosen.get("port"))
    if isinstance(target_port, str) and not target_port.isdigit():
        resolved = _container_port(pod, target_port)
        if resolved is None:
            notes.append(f"named targetPort {target_port} not found in a pod: port "
                         f"{chosen.get('port')} used")
            resolved = int(chosen.get("port") or 0)
        target_port = resolved
    return Destination("Service", name, ns, Workload.of(ns, labels), where, int(target_port),
                       notes=tuple(notes))


def _lists_member(roll: Obj, namespace: str) -> bool:
    """Whether a ServiceMeshMemberRoll makes `namespace` a member: its status.members (what
    the operator resolved: names, "*" and memberSelectors) when it has one, else its
    spec.members by name or "*"; a roll that selects by label alone, without a status,
    counts as one that may (the namespace's labels are not known here)."""
    status = (roll.get("status") or {}).get("members")
    if isinstance(status, list):
        return namespace in status
    spec = roll.get("spec") or {}
    members = spec.get("members") or []
    return namespace in members or "*" in members or bool(spec.get("memberSelectors"))


def activator_in_path(objects: Sequence[Obj], dst: Destination) -> tuple[bool, str]:
    """Whether a request to `dst` passes the activator's sidecar first, and a note on why
    (or why not)."""
    if dst.kind != "KnativeService" or dst.port != KNATIVE_POD_PORT:
        return False, ""            # a plain Service, or a port other than the route's
    rolls = _of(objects, "ServiceMeshMemberRoll")
    if rolls and not any(_lists_member(r, ACTIVATOR_IDENTITY[0]) for r in rolls):
        return False, (f"{ACTIVATOR_IDENTITY[0]} is not a mesh member: the activator "
                       "checks nothing and the pods see the caller")
    sks = _of(objects, "ServerlessService", dst.namespace)
    mine = [p for p in sks if _labels(p).get(KSVC_SERVICE_LABEL) == dst.name]
    if not mine:
        return True, ("no ServerlessService known: the activator assumed in the path (at zero, "
                      "or with the default target-burst-capacity and few pods)")
    proxied = any((p.get("spec") or {}).get("mode") == "Proxy" for p in mine)
    if proxied:
        return True, "the revision's ServerlessService is in Proxy mode: the activator fronts it"
    return False, "the revision's ServerlessService is in Serve mode: straight to the pods"


# --- decisions ---------------------------------------------------------------------------

def _policies(objects: Sequence[Obj], root_namespace: str) -> PolicySet:
    return compile_policies(_of(objects, "AuthorizationPolicy"), root_namespace)


def _check(policies: PolicySet, objects: Sequence[Obj], source: Source, target: Target,
           spec: RequestSpec) -> Verdict:
    dst = resolve(objects, target, spec.port)
    notes: list[str] = []
    host = spec.host
    if host is None:
        if source.via_ingress:
            host = dst.url_host
            if not host:
                host = f"{dst.name}-{dst.namespace}.apps.example.com"
                notes.append(f"external host unknown: {host} assumed (pass --host)")
        else:
            base = target.text or target.display
            dialled = spec.port or 80
            host = base if dialled == 80 or ":" in base else f"{base}:{dialled}"
    via, why = activator_in_path(objects, dst)
    caller = source.principal
    hops: tuple[tuple[str, Decision], ...] = ()
    if via:
        notes.append(why)
        first = Request(destination=ACTIVATOR, port=ACTIVATOR_PORT, host=host,
                        method=spec.method, path=spec.path, headers=dict(spec.headers),
                        source_principal=caller)
        at_activator = decide(policies, first)
        if not at_activator.allowed:
            return Verdict(source, dst, first, at_activator, tuple(notes),
                           (("activator", at_activator),), "activator")
        hops = (("activator", at_activator),)
        caller = principal_for(*ACTIVATOR_IDENTITY, source.trust_domain)
    elif why:
        notes.append(why)
    req = Request(destination=dst.workload, port=dst.port, host=host, method=spec.method,
                  path=spec.path, headers=dict(spec.headers), source_principal=caller)
    return Verdict(source, dst, req, decide(policies, req), tuple(notes), hops)


def check(objects: Sequence[Obj], source: Source, target: Target,
          spec: RequestSpec = RequestSpec(),
          root_namespace: str = DEFAULT_ROOT_NAMESPACE) -> Verdict:
    """Would `source`'s request to `target` be allowed? Defaults are what a client sends:
    Host = the name as written (`test-webapp.team-bravo-1`; the external URL's host with
    via_ingress), port 80. Raises CheckError when the destination cannot be resolved."""
    return _check(_policies(objects, root_namespace), objects, source, target, spec)


def destinations(objects: Sequence[Obj], namespaces: Sequence[str]) -> list[Target]:
    """Every Knative Service, and every Service that is not Knative's own and has pods to
    select, in `namespaces` (in that order, then by name)."""
    out: list[Target] = []
    for ns in namespaces:
        names = [str(_meta(k).get("name")) for k in _of(objects, "KnativeService", ns)]
        for s in _of(objects, "Service", ns):
            m, spec = _meta(s), s.get("spec") or {}
            if any(lbl in _labels(s) for lbl in _KNATIVE_OWNED) or m.get("name") in names:
                continue
            if spec.get("type") == "ExternalName" or not spec.get("selector"):
                continue
            names.append(str(m.get("name")))
        out += [Target(n, ns, f"{n}.{ns}") for n in sorted(set(names))]
    return out


@dataclass(frozen=True)
class MatrixEntry:
    source: Source
    target: Target
    verdict: Verdict | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        base = {"from": self.source.label, "to": self.target.display}
        if self.verdict is None:
            return {**base, "verdict": "ERROR", "error": self.error}
        return {**base, **self.verdict.to_dict()}


def matrix(objects: Sequence[Obj], namespaces: Sequence[str], spec: RequestSpec = RequestSpec(),
           ingress: bool = False,
           root_namespace: str = DEFAULT_ROOT_NAMESPACE) -> list[MatrixEntry]:
    """Every (namespace/default, or the ingress gateway) x destination() verdict."""
    policies = _policies(objects, root_namespace)
    sources = [Source(ns) for ns in namespaces]
    if ingress:
        sources.append(Source(INGRESS_NAMESPACE, via_ingress=True))
    out: list[MatrixEntry] = []
    targets = destinations(objects, namespaces)
    for s in sources:
        for t in targets:
            try:
                out.append(MatrixEntry(s, t, _check(policies, objects, s, t, spec)))
            except CheckError as e:
                out.append(MatrixEntry(s, t, error=str(e)))
    return out
