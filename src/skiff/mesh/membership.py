"""Mesh membership: ServiceMeshControlPlane, ServiceMeshMemberRoll and ServiceMeshMember, as Maistra.

OpenShift Service Mesh 2.4's operator (maistra/istio-operator,
pkg/controller/servicemesh/{controlplane,memberroll,member}) is followed:
- the SMCP gets Installed/Reconciled/Ready with Maistra's reasons and
  messages (InstallSuccessful "Successfully installed version 2.4.6-1",
  UpdateSuccessful, ComponentsReady "All component deployments are
  Available", ErrMultipleSMCPs for any SMCP but the oldest in a namespace),
  status.appliedSpec (the spec with its profiles defaulted to ["default"]
  and version v2.4; Maistra merges the profiles' full contents here),
  chartVersion/operatorVersion, readiness.components (ready/unready/pending)
  of the components skiff plays (istiod: this process's mesh controllers and
  CA; istio-ingressgateway: the data-plane process) and the
  readyComponentCount annotation kubectl's READY column shows; its
  namespace is labelled maistra.io/member-of=<itself>;
- the SMMR `default` (in the SMCP's namespace) creates a ServiceMeshMember
  `default` (annotated maistra.io/created-by) in each existing namespace it
  names (spec.members, "*", memberSelectors; kube-*, openshift-*, ibm-* and
  the mesh's own namespace are never members), deletes those it made when a
  namespace leaves, and reports members/configuredMembers/pendingMembers
  (listed but not configured yet: a namespace that does not exist stays
  pending, NamespaceNotExists)/terminatingMembers/memberStatuses, Ready with
  Configured / ReconcileError / ErrSMCPMissing / ErrMultipleSMCPs /
  ErrInvalidName, and configuredMemberCount. skiff adds one condition of its
  own, KnativeMembers (never part of Ready): False with a message naming
  knative-serving or knative-eventing when the roll lacks them, which the
  Serverless guide (1.3 step 1, 1.4.2 step 2) says must be members;
- a ServiceMeshMember (made by the roll, or by a user) labels its namespace
  maistra.io/member-of=<mesh namespace> and reports Reconciled/Ready; a
  finalizer takes the label off when it goes. A namespace already in
  another mesh is refused, as Maistra does.
Maistra's NetworkPolicies, RoleBindings, Kiali and Prometheus wiring are not
made: skiff's pod network, RBAC and monitoring do not need them.

Pure: every status and plan (smcp_status, plan_member_roll, member_status),
is_member, mesh_members and mesh_config (the MeshConfig view the sidecar
work reads: root namespace, trust domain, mTLS mode, excluded ports, drain
duration). The reconcilers are thin shells over the Client. Neighbours:
mesh/crds.py (the kinds), mesh/ca.py (roots in member namespaces),
mesh/setup.py (registration).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.clock import rfc3339, utcnow
from skiff.core.controller import Key, Mapper
from skiff.core.reconcile import KeySet, get_or_none
from skiff.core.selectors import SelectorError, from_label_selector_object

MAISTRA = "maistra.io"
SMCP = Ref(f"{MAISTRA}/v2", "ServiceMeshControlPlane")
SMMR = Ref(f"{MAISTRA}/v1", "ServiceMeshMemberRoll")
SMM = Ref(f"{MAISTRA}/v1", "ServiceMeshMember")
NAMESPACE = Ref("v1", "Namespace")

# OpenShift Service Mesh 2.4 (Istio 1.16); the patch level is the one skiff reports.
OPERATOR_VERSION = "2.4.6"
CHART_VERSION = "2.4.6"
SMCP_VERSION = "v2.4"
DEFAULT_PROFILES = ["default"]

MEMBER_OF = f"{MAISTRA}/member-of"
CREATED_BY = f"{MAISTRA}/created-by"
FINALIZER = f"{MAISTRA}/istio-operator"
MEMBER_ROLL_NAME = "default"
MEMBER_NAME = "default"
MEMBER_ROLL_CONTROLLER = "servicemeshmemberroll-controller"
MEMBER_CONTROLLER = "servicemeshmember-controller"

# The Serverless guide: these must be members when Knative runs in the mesh.
KNATIVE_NAMESPACES = ("knative-serving", "knative-eventing")
KNATIVE_MEMBERS = "KnativeMembers"

TRUST_DOMAIN = "cluster.local"
DEFAULT_DRAIN_S = 5.0     # Istio's ProxyConfig terminationDrainDuration default

# Components skiff plays, by their Deployments' app.kubernetes.io/component (readiness) and
# their charts (status.components), as Maistra names them.
COMPONENT_CHARTS = {"istiod": "istio-discovery", "istio-ingressgateway": "istio-ingress"}

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"


# --- conditions, Maistra's way ---------------------------------------------------------------

def set_condition(conditions: list[Obj] | None, type_: str, status: str, reason: str,
                  message: str, now: str) -> list[Obj]:
    """Maistra's SetCondition: replace the condition of `type_`, keeping its
    lastTransitionTime unless its status changes (reason/message changes keep it). Pure."""
    out = [dict(c) for c in conditions or []]
    cond: Obj = {"type": type_, "status": status}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    for i, c in enumerate(out):
        if c.get("type") == type_:
            cond["lastTransitionTime"] = c.get("lastTransitionTime") or now \
                if c.get("status") == status else now
            out[i] = cond
            return out
    cond["lastTransitionTime"] = now
    out.append(cond)
    return out


def condition(status: Obj, type_: str) -> Obj:
    for c in status.get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {"type": type_, "status": UNKNOWN}


def _meta(o: Obj) -> Obj:
    m: Obj = o.get("metadata") or {}
    return m


def _gen(o: Obj) -> int:
    return int(_meta(o).get("generation") or 1)


def reconciled_version(smcp_status: Obj) -> str:
    """Maistra's GetReconciledVersion: <operatorVersion>-<observedGeneration>."""
    return f"{smcp_status.get('operatorVersion') or '0.0.0'}-" \
           f"{int(smcp_status.get('observedGeneration') or 0)}"


# --- ServiceMeshControlPlane ---------------------------------------------------------------

def earliest(smcps: Iterable[Obj]) -> Obj | None:
    """The SMCP that rules a namespace: the oldest, then by name (getEarliestSMCPInNamespace)."""
    items = [o for o in smcps if not _meta(o).get("deletionTimestamp")]
    return min(items, key=lambda o: (_meta(o).get("creationTimestamp") or "", _meta(o)["name"]),
               default=None)


def applied_spec(smcp: Obj) -> Obj:
    """status.appliedSpec: the spec with Maistra's defaults (profiles, version) filled in."""
    spec = copy.deepcopy(smcp.get("spec") or {})
    spec["profiles"] = list(spec.get("profiles") or DEFAULT_PROFILES)
    spec.setdefault("version", SMCP_VERSION)
    return spec


def smcp_status(smcp: Obj, ruling: Obj | None, components: Mapping[str, bool],
                now: str) -> Obj:
    """The SMCP's whole status after one reconcile. `components`: readiness by component
    name. Pure."""
    old: Obj = copy.deepcopy(smcp.get("status") or {})
    st = copy.deepcopy(old)
    conds: list[Obj] = st.get("conditions") or []
    if ruling is not None and _meta(ruling).get("uid") != _meta(smcp).get("uid"):
        msg = ("reconciliation skipped: error: multiple ServiceMeshControlPlane resources "
               "exist in the namespace")
        conds = set_condition(conds, "Reconciled", FALSE, "ErrMultipleSMCPs", msg, now)
        conds = set_condition(conds, "Ready", FALSE, "ErrMultipleSMCPs", msg, now)
        st["conditions"] = conds
        return st
    gen = _gen(smcp)
    prev_gen = int(old.get("observedGeneration") or 0)
    if prev_gen == 0:
        version = f"{OPERATOR_VERSION}-{gen}"
        conds = set_condition(conds, "Installed", TRUE, "InstallSuccessful",
                              "Successfully installed all mesh components", now)
        conds = set_condition(conds, "Reconciled", TRUE, "InstallSuccessful",
                              f"Successfully installed version {version}", now)
    elif prev_gen != gen:
        conds = set_condition(conds, "Reconciled", TRUE, "UpdateSuccessful",
                              f"Successfully updated from version {reconciled_version(old)} "
                              f"to version {OPERATOR_VERSION}-{gen}", now)
    ready = sorted(c for c, ok in components.items() if ok)
    unready = sorted(c for c, ok in components.items() if not ok)
    if unready:
        conds = set_condition(conds, "Ready", FALSE, "ComponentsNotReady",
                              "The following components are not fully available: "
                              f"[{' '.join(unready)}]", now)
    else:
        conds = set_condition(conds, "Ready", TRUE, "ComponentsReady",
                              "All component deployments are Available", now)
    order = {"Installed": 0, "Reconciled": 1, "Ready": 2}
    st["conditions"] = sorted(conds, key=lambda c: order.get(str(c.get("type")), 3))
    st["observedGeneration"] = gen
    st["operatorVersion"] = OPERATOR_VERSION
    st["chartVersion"] = CHART_VERSION
    st["appliedSpec"] = applied_spec(smcp)
    st["readiness"] = {"components": {"ready": ready, "unready": unready, "pending": []}}
    st["components"] = [
        {"resource": COMPONENT_CHARTS.get(c, c),
         "conditions": [{"type": "Installed", "status": TRUE, "reason": "InstallSuccessful",
                         "message": "Component installed successfully"},
                        {"type": "Reconciled", "status": TRUE, "reason": "InstallSuccessful",
                         "message": "Component installed successfully"}]}
        for c in sorted(components)]
    ann = dict(st.get("annotations") or {})
    ann["readyComponentCount"] = f"{len(ready)}/{len(components)}"
    st["annotations"] = ann
    return st


# --- ServiceMeshMemberRoll -----------------------------------------------------------------

EXCLUDED_PREFIXES = ("kube-", "openshift-", "ibm-")


def is_excluded(namespace: str, mesh_namespace: str) -> bool:
    """Namespaces Maistra never makes members (SMMR.isExcluded)."""
    return namespace in (mesh_namespace, "kube", "openshift") or \
        namespace.startswith(EXCLUDED_PREFIXES)


def is_member(smmr: Obj, namespace: Obj) -> bool:
    """Maistra's SMMR.IsMember: listed by name, or spec.members ["*"], or matched by a
    memberSelector; never an excluded namespace. Pure."""
    spec = smmr.get("spec") or {}
    members = list(spec.get("members") or [])
    meta = _meta(namespace)
    name = str(meta.get("name") or "")
    if is_excluded(name, str(_meta(smmr).get("namespace") or "")):
        return False
    if members == ["*"] or name in members:
        return True
    labels = meta.get("labels") or {}
    for sel in spec.get("memberSelectors") or []:
        try:
            if from_label_selector_object(sel or {}).matches(labels):
                return True
        except SelectorError:
            continue            # admission checks selectors; a bad one matches nothing
    return False


def required_namespaces(smmr: Obj, namespaces: Iterable[Obj]) -> set[str]:
    """spec.members by name (existing or not) plus every existing namespace that is a member."""
    spec = smmr.get("spec") or {}
    mesh_ns = str(_meta(smmr).get("namespace") or "")
    out = {m for m in spec.get("members") or [] if m != "*" and not is_excluded(m, mesh_ns)}
    out |= {_meta(n)["name"] for n in namespaces if is_member(smmr, n)}
    return out


def member_smm(namespace: str, smcp_name: str, mesh_namespace: str) -> Obj:
    """The ServiceMeshMember the roll makes in a member namespace."""
    return {"apiVersion": f"{MAISTRA}/v1", "kind": "ServiceMeshMember",
            "metadata": {"name": MEMBER_NAME, "namespace": namespace,
                         "annotations": {CREATED_BY: MEMBER_ROLL_CONTROLLER}},
            "spec": {"controlPlaneRef": {"name": smcp_name, "namespace": mesh_namespace}}}


def created_by_roll(smm: Obj) -> bool:
    return (_meta(smm).get("annotations") or {}).get(CREATED_BY) == MEMBER_ROLL_CONTROLLER


def knative_message(members: Iterable[str]) -> str:
    """The guide's warning, when knative-serving or knative-eventing is not listed; "" if both
    are."""
    missing = [n for n in KNATIVE_NAMESPACES if n not in set(members)]
    if not missing:
        return ""
    which = " and ".join(missing)
    return (f"{which} {'is' if len(missing) == 1 else 'are'} not a member of the mesh: "
            "OpenShift Serverless with Service Mesh needs knative-serving and knative-eventing "
            "in the ServiceMeshMemberRoll (add them to spec.members), or Knative's activator "
            "and gateways cannot reach services in member namespaces under mTLS")


@dataclass
class MemberRollPlan:
    creates: list[Obj] = field(default_factory=list)      # ServiceMeshMembers to create
    deletes: list[str] = field(default_factory=list)      # namespaces whose SMM `default` goes
    status: Obj = field(default_factory=dict)


def plan_member_roll(smmr: Obj, smcps: list[Obj], namespaces: list[Obj], members: list[Obj],
                     now: str) -> MemberRollPlan:
    """What one reconcile of the roll does: the SMMs to create and delete and the status.
    `members`: every ServiceMeshMember whose controlPlaneRef names the roll's namespace or that
    lives in a namespace the roll names. Pure."""
    plan = MemberRollPlan()
    st: Obj = copy.deepcopy(smmr.get("status") or {})
    meta = _meta(smmr)
    mesh_ns = str(meta.get("namespace") or "")
    conds: list[Obj] = st.get("conditions") or []

    def done(ready: bool, reason: str, message: str) -> MemberRollPlan:
        st["conditions"] = set_condition(conds, "Ready", TRUE if ready else FALSE, reason,
                                         message, now)
        ann = dict(st.get("annotations") or {})
        ann["configuredMemberCount"] = \
            f"{len(st.get('configuredMembers') or [])}/{len(st.get('members') or [])}"
        st["annotations"] = ann
        st["observedGeneration"] = _gen(smmr)
        plan.status = st
        return plan

    if meta.get("name") != MEMBER_ROLL_NAME:
        return done(False, "ErrInvalidName",
                    f'the ServiceMeshMemberRoll name is invalid; must be "{MEMBER_ROLL_NAME}"')
    live = [s for s in smcps if not _meta(s).get("deletionTimestamp")]
    if len(live) > 1:
        return done(False, "ErrMultipleSMCPs",
                    "Multiple ServiceMeshControlPlane resources exist in the namespace")
    mesh = live[0] if live else None
    existing = {_meta(n)["name"]: n for n in namespaces}
    required = required_namespaces(smmr, namespaces)
    smm_by_ns = {str(_meta(m).get("namespace")): m for m in members
                 if _meta(m).get("name") == MEMBER_NAME}
    statuses: dict[str, Obj] = {s.get("namespace"): copy.deepcopy(s)
                                for s in st.get("memberStatuses") or []}

    def member_condition(ns: str, c: Obj) -> None:
        s = statuses.setdefault(ns, {"namespace": ns, "conditions": []})
        s["conditions"] = set_condition(s.get("conditions"), str(c.get("type")),
                                        str(c.get("status")), str(c.get("reason") or ""),
                                        str(c.get("message") or ""), now)
        # A condition copied from the member keeps the member's own time.
        if c.get("lastTransitionTime"):
            for x in s["conditions"]:
                if x.get("type") == c.get("type"):
                    x["lastTransitionTime"] = c["lastTransitionTime"]

    if mesh is not None:
        for ns in sorted(required):
            smm = smm_by_ns.get(ns)
            if smm is None:
                nso = existing.get(ns)
                if nso is None or _meta(nso).get("deletionTimestamp"):
                    member_condition(ns, {"type": "Reconciled", "status": FALSE,
                                          "reason": "NamespaceNotExists",
                                          "message": f"Namespace {ns} does not exist"})
                    continue
                smm = member_smm(ns, _meta(mesh)["name"], mesh_ns)
                plan.creates.append(smm)
                smm_by_ns[ns] = smm
                continue
            ref = (smm.get("spec") or {}).get("controlPlaneRef") or {}
            if ref.get("name") != _meta(mesh)["name"] or ref.get("namespace") != mesh_ns:
                member_condition(ns, {
                    "type": "Reconciled", "status": FALSE,
                    "reason": "ReferencesDifferentControlPlane",
                    "message": f"ServiceMeshMember {ns}/{MEMBER_NAME} exists, but references "
                               f"ServiceMeshControlPlane {ref.get('namespace')}/{ref.get('name')}"})

    ours = {ns: m for ns, m in smm_by_ns.items()
            if ((m.get("spec") or {}).get("controlPlaneRef") or {}).get("namespace") == mesh_ns}
    for ns, m in sorted(ours.items()):
        if not _meta(m).get("deletionTimestamp") and created_by_roll(m) and \
                (mesh is None or ns not in required):
            plan.deletes.append(ns)

    known = (required | set(ours)) - {mesh_ns}
    configured: set[str] = set()
    up_to_date: set[str] = set()
    terminating: set[str] = set()
    mesh_version = reconciled_version((mesh or {}).get("status") or {})
    for ns, m in ours.items():
        mst = m.get("status") or {}
        if _meta(m).get("deletionTimestamp") or ns in plan.deletes:
            terminating.add(ns)
        elif mesh is not None:
            ref = (m.get("spec") or {}).get("controlPlaneRef") or {}
            if ref.get("name") == _meta(mesh)["name"] and \
                    condition(mst, "Reconciled").get("status") == TRUE:
                configured.add(ns)
                if mst.get("meshReconciledVersion") == mesh_version:
                    up_to_date.add(ns)
        member_condition(ns, condition(mst, "Reconciled"))
    st["members"] = sorted(known)
    st["configuredMembers"] = sorted(configured & known)
    st["pendingMembers"] = sorted(known - up_to_date - terminating)
    st["terminatingMembers"] = sorted(terminating & known)
    st["memberStatuses"] = [statuses.get(ns) or {"namespace": ns, "conditions": []}
                            for ns in sorted(known)]
    if mesh is None:
        st["meshGeneration"] = 0
        st.pop("meshReconciledVersion", None)
    else:
        mst = mesh.get("status") or {}
        st["meshGeneration"] = int(mst.get("observedGeneration") or 0)
        st["meshReconciledVersion"] = mesh_version
    if msg := knative_message(known):
        conds = set_condition(conds, KNATIVE_MEMBERS, FALSE, "KnativeNamespacesMissing", msg,
                              now)
    else:
        conds = set_condition(conds, KNATIVE_MEMBERS, TRUE, "KnativeNamespacesMembers",
                              "knative-serving and knative-eventing are members of the mesh",
                              now)
    if mesh is None:
        return done(False, "ErrSMCPMissing", "No ServiceMeshControlPlane exists in the namespace")
    if st["pendingMembers"]:
        return done(False, "ReconcileError", "The following namespaces are not yet configured: "
                                             f"[{' '.join(st['pendingMembers'])}]")
    return done(True, "Configured", "All namespaces have been configured successfully")


# --- ServiceMeshMember ---------------------------------------------------------------------

def member_status(smm: Obj, reconciled: bool, reason: str, message: str, now: str,
                  mesh: Obj | None = None) -> Obj:
    """The member's status: Reconciled and Ready together, as Maistra's updateStatus. Pure."""
    st: Obj = copy.deepcopy(smm.get("status") or {})
    ref = (smm.get("spec") or {}).get("controlPlaneRef") or {}
    ann = dict(st.get("annotations") or {})
    ann["controlPlaneRef"] = f"{ref.get('namespace', '')}/{ref.get('name', '')}"
    st["annotations"] = ann
    st["observedGeneration"] = _gen(smm)
    s = TRUE if reconciled else FALSE
    conds = set_condition(st.get("conditions"), "Reconciled", s, reason, message, now)
    st["conditions"] = set_condition(conds, "Ready", s, reason, message, now)
    if mesh is not None:
        mst = mesh.get("status") or {}
        st["meshGeneration"] = int(mst.get("observedGeneration") or 0)
        st["meshReconciledVersion"] = reconciled_version(mst)
    return st


def namespace_conflict(namespace: Obj, mesh_namespace: str) -> str:
    """Why `namespace` cannot join `mesh_namespace` ("" if it can)."""
    name = _meta(namespace).get("name")
    of = (_meta(namespace).get("labels") or {}).get(MEMBER_OF) or ""
    if of and of != mesh_namespace:
        return f"cannot reconcile namespace {name} in mesh {mesh_namespace}, as it is already " \
               f"a member of {of}"
    return ""


# --- the shared view --------------------------------------------------------------------

def _duration_s(text: Any, default: float) -> float:
    """A Go duration ("35s", "1m30s", "500ms") in seconds; `default` when absent or bad."""
    if text is None or text == "":
        return default
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        return default
    return sum(float(n) * units[u] for n, u in parts)


@dataclass(frozen=True)
class MeshConfig:
    """What a sidecar needs to know of its mesh, from the SMCP and the member roll."""
    control_plane: str = "istio-system"        # the SMCP's namespace
    name: str = ""                             # the SMCP's name
    root_namespace: str = "istio-system"       # Maistra: the control plane's namespace
    trust_domain: str = TRUST_DOMAIN
    mtls: bool = False                         # spec.security.dataPlane.mtls
    auto_mtls: bool = True                     # spec.security.dataPlane.automtls
    members: frozenset[str] = frozenset()      # member namespaces, the control plane's included
    excluded_inbound_ports: tuple[int, ...] = ()
    excluded_outbound_ports: tuple[int, ...] = ()
    termination_drain_s: float = DEFAULT_DRAIN_S
    workload_cert_ttl_s: float = 24 * 3600.0
    # meshConfig.protocolDetectionTimeout: proxy.networking.protocol.detectionTimeout (or
    # techPreview.meshConfig.protocolDetectionTimeout); Istio's default 0s, no timeout
    protocol_detection_s: float = 0.0

    @property
    def mtls_mode(self) -> str:
        """The mesh-wide PeerAuthentication mode Maistra installs: STRICT when
        dataPlane.mtls, else PERMISSIVE."""
        return "STRICT" if self.mtls else "PERMISSIVE"

    def is_member(self, namespace: str) -> bool:
        return namespace in self.members


def _dig(o: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(o, dict):
            return None
        o = o.get(p)
    return o


def mesh_members(objects: Iterable[Obj], control_plane: str = "") -> set[str]:
    """The member namespaces of the mesh whose SMCP rules `control_plane` (default: the
    namespace of the first SMCP found): the roll's spec.members (with "*" and memberSelectors
    resolved against the Namespace objects given), the namespaces of ServiceMeshMembers naming
    it, and the control plane's own namespace. Only existing namespaces count when Namespace
    objects are given. Empty when there is no SMCP. Pure."""
    objs = list(objects)
    smcps = [o for o in objs if o.get("kind") == "ServiceMeshControlPlane"
             and not _meta(o).get("deletionTimestamp")]
    if not control_plane:
        if not smcps:
            return set()
        control_plane = str(_meta(smcps[0]).get("namespace") or "")
    if not any(_meta(s).get("namespace") == control_plane for s in smcps):
        return set()
    nss = [o for o in objs if o.get("kind") == "Namespace"]
    out: set[str] = set()
    for r in objs:
        if r.get("kind") == "ServiceMeshMemberRoll" and _meta(r).get("name") == MEMBER_ROLL_NAME \
                and _meta(r).get("namespace") == control_plane \
                and not _meta(r).get("deletionTimestamp"):
            out |= required_namespaces(r, nss)
    for m in objs:
        if m.get("kind") == "ServiceMeshMember" and not _meta(m).get("deletionTimestamp") and \
                _dig(m, "spec", "controlPlaneRef", "namespace") == control_plane:
            out.add(str(_meta(m).get("namespace")))
    if nss:
        alive = {_meta(n)["name"] for n in nss if not _meta(n).get("deletionTimestamp")}
        out &= alive
    out.add(control_plane)
    return out


def mesh_config(objects: Iterable[Obj], control_plane: str = "") -> MeshConfig | None:
    """The MeshConfig of the mesh ruled from `control_plane` (default: the first SMCP's
    namespace), or None without an SMCP. Pure."""
    objs = list(objects)
    smcps = [o for o in objs if o.get("kind") == "ServiceMeshControlPlane"
             and (not control_plane or _meta(o).get("namespace") == control_plane)]
    if not control_plane and smcps:
        control_plane = str(_meta(smcps[0]).get("namespace") or "")
    smcp = earliest(s for s in smcps if _meta(s).get("namespace") == control_plane)
    if smcp is None:
        return None
    spec = smcp.get("spec") or {}
    dp = _dig(spec, "security", "dataPlane") or {}
    tc = _dig(spec, "proxy", "networking", "trafficControl") or {}
    drain = _dig(spec, "techPreview", "meshConfig", "defaultConfig", "terminationDrainDuration")
    ttl = _dig(spec, "security", "certificateAuthority", "istiod", "workloadCertTTLDefault")
    detect = _dig(spec, "proxy", "networking", "protocol", "detectionTimeout")
    if detect is None:
        detect = _dig(spec, "techPreview", "meshConfig", "protocolDetectionTimeout")
    return MeshConfig(
        control_plane=control_plane, name=str(_meta(smcp)["name"]),
        root_namespace=control_plane,
        trust_domain=str(_dig(spec, "security", "trust", "domain") or TRUST_DOMAIN),
        mtls=bool(dp.get("mtls")), auto_mtls=dp.get("automtls") is not False,
        members=frozenset(mesh_members(objs, control_plane)),
        excluded_inbound_ports=tuple(sorted({int(p) for p in
                                             _dig(tc, "inbound", "excludedPorts") or []})),
        excluded_outbound_ports=tuple(sorted({int(p) for p in
                                              _dig(tc, "outbound", "excludedPorts") or []})),
        termination_drain_s=_duration_s(drain, DEFAULT_DRAIN_S),
        workload_cert_ttl_s=_duration_s(ttl, 24 * 3600.0),
        protocol_detection_s=min(3600.0, _duration_s(detect, 0.0)))


# --- the shells ----------------------------------------------------------------------------

def _now() -> str:
    return rfc3339(utcnow())


async def _write_status(client: Client, obj: Obj, status: Obj) -> Obj:
    """Write `status` when it differs from the stored one (times are kept by set_condition,
    so an unchanged world writes nothing)."""
    if status == (obj.get("status") or {}):
        return obj
    out = copy.deepcopy(obj)
    out["status"] = status
    return await client.update_status(out)


async def _label_namespace(client: Client, name: str, value: str | None) -> None:
    """Set (or, with None, remove) maistra.io/member-of on a namespace (merge patch)."""
    try:
        await client.patch(NAMESPACE, name, {"metadata": {"labels": {MEMBER_OF: value}}})
    except ApiError as e:
        if e.code != 404:
            raise


async def _set_finalizer(client: Client, ref: Ref, obj: Obj, present: bool) -> Obj:
    meta = _meta(obj)
    fins = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
    if present:
        fins.append(FINALIZER)
    out = copy.deepcopy(obj)
    out["metadata"]["finalizers"] = fins
    return await client.update(out)


ComponentsFn = Callable[[], Mapping[str, bool]]


def _all_ready() -> Mapping[str, bool]:
    return {c: True for c in COMPONENT_CHARTS}


class ControlPlaneReconciler:
    """ServiceMeshControlPlane: status, and the member-of label on its own namespace."""
    name = "servicemeshcontrolplane"
    primary = SMCP

    def __init__(self, client: Client, components: ComponentsFn = _all_ready) -> None:
        self.client = client
        self.components = components

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        return []

    async def reconcile(self, namespace: str, name: str) -> float | None:
        smcps = await self.client.list(SMCP, namespace)
        ruling = earliest(smcps)
        ns = await get_or_none(self.client, NAMESPACE, namespace, "")
        if ns is not None and not _meta(ns).get("deletionTimestamp"):
            have = (_meta(ns).get("labels") or {}).get(MEMBER_OF)
            if ruling is not None and have != namespace:
                await _label_namespace(self.client, namespace, namespace)
            elif ruling is None and have == namespace:
                await _label_namespace(self.client, namespace, None)
        smcp = next((s for s in smcps if _meta(s)["name"] == name), None)
        if smcp is None or _meta(smcp).get("deletionTimestamp"):
            return None
        comps = dict(self.components())
        await _write_status(self.client, smcp, smcp_status(smcp, ruling, comps, _now()))
        return 1.0 if not all(comps.values()) else None


class MemberRollReconciler:
    """ServiceMeshMemberRoll: members' ServiceMeshMembers and the roll's status."""
    name = "servicemeshmemberroll"
    primary = SMMR

    def __init__(self, client: Client) -> None:
        self.client = client
        self.rolls = KeySet()

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        every = self.rolls.all()

        def of_smcp(o: Obj) -> list[Key]:
            return [(str(_meta(o).get("namespace") or ""), MEMBER_ROLL_NAME)]

        def of_member(o: Obj) -> list[Key]:
            ref_ns = str(_dig(o, "spec", "controlPlaneRef", "namespace") or "")
            return sorted({*every(o), (ref_ns, MEMBER_ROLL_NAME)})
        # A namespace's coming, going or relabelling can change any roll (selectors, "*").
        return [(NAMESPACE, every), (SMCP, of_smcp), (SMM, of_member)]

    async def reconcile(self, namespace: str, name: str) -> float | None:
        roll = await get_or_none(self.client, SMMR, name, namespace)
        if roll is None:
            self.rolls.gone((namespace, name))
            return None
        self.rolls.seen((namespace, name))
        members = [m for m in await self.client.list(SMM)
                   if _dig(m, "spec", "controlPlaneRef", "namespace") == namespace]
        if _meta(roll).get("deletionTimestamp"):
            # Maistra's finalizeObject: the members the roll made go with it.
            for m in members:
                if created_by_roll(m) and not _meta(m).get("deletionTimestamp"):
                    await self.client.delete(SMM, MEMBER_NAME, _meta(m)["namespace"])
            if FINALIZER in (_meta(roll).get("finalizers") or []):
                await _set_finalizer(self.client, SMMR, roll, False)
            return None
        if FINALIZER not in (_meta(roll).get("finalizers") or []):
            roll = await _set_finalizer(self.client, SMMR, roll, True)
        smcps = await self.client.list(SMCP, namespace)
        namespaces = await self.client.list(NAMESPACE)
        # Members living in listed namespaces but naming another mesh matter too (the
        # ReferencesDifferentControlPlane case).
        listed = set((roll.get("spec") or {}).get("members") or [])
        others = [m for m in await self.client.list(SMM)
                  if _meta(m).get("namespace") in listed and m not in members]
        plan = plan_member_roll(roll, smcps, namespaces, members + others, _now())
        for smm in plan.creates:
            try:
                await self.client.create(smm)
            except ApiError as e:
                if e.code not in (404, 409):   # namespace gone meanwhile / made meanwhile
                    raise
        for ns in plan.deletes:
            await self.client.delete(SMM, MEMBER_NAME, ns)
        await _write_status(self.client, roll, plan.status)
        # New members report back through their own status (a watch event); deleted ones too.
        return None


class MemberReconciler:
    """ServiceMeshMember: the member-of label on its namespace and the member's status."""
    name = "servicemeshmember"
    primary = SMM

    def __init__(self, client: Client) -> None:
        self.client = client
        self.members = KeySet()

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        def of_namespace(o: Obj) -> list[Key]:
            return [(str(_meta(o).get("name") or ""), MEMBER_NAME)]
        return [(NAMESPACE, of_namespace), (SMCP, self.members.all())]

    async def reconcile(self, namespace: str, name: str) -> float | None:
        smm = await get_or_none(self.client, SMM, name, namespace)
        if smm is None:
            self.members.gone((namespace, name))
            return None
        self.members.seen((namespace, name))
        ref = (smm.get("spec") or {}).get("controlPlaneRef") or {}
        mesh_ns = str(ref.get("namespace") or "")
        if _meta(smm).get("deletionTimestamp"):
            if FINALIZER in (_meta(smm).get("finalizers") or []):
                ns = await get_or_none(self.client, NAMESPACE, namespace, "")
                if ns is not None and not _meta(ns).get("deletionTimestamp") and \
                        (_meta(ns).get("labels") or {}).get(MEMBER_OF) == mesh_ns:
                    await _label_namespace(self.client, namespace, None)
                await _set_finalizer(self.client, SMM, smm, False)
            return None
        if FINALIZER not in (_meta(smm).get("finalizers") or []):
            smm = await _set_finalizer(self.client, SMM, smm, True)
        now = _now()
        if name != MEMBER_NAME:
            await _write_status(self.client, smm, member_status(
                smm, False, "InvalidName",
                f'the ServiceMeshMember name is invalid; must be "{MEMBER_NAME}"', now))
            return None
        if namespace == mesh_ns:
            return None
        mesh = await get_or_none(self.client, SMCP, str(ref.get("name") or ""), mesh_ns)
        if mesh is None:
            await _write_status(self.client, smm, member_status(
                smm, False, "ErrorControlPlaneMissing",
                "the referenced ServiceMeshControlPlane object does not exist", now))
            return None
        if await get_or_none(self.client, SMMR, MEMBER_ROLL_NAME, mesh_ns) is None:
            try:
                await self.client.create({
                    "apiVersion": f"{MAISTRA}/v1", "kind": "ServiceMeshMemberRoll",
                    "metadata": {"name": MEMBER_ROLL_NAME, "namespace": mesh_ns,
                                 "annotations": {CREATED_BY: MEMBER_CONTROLLER}},
                    "spec": {}})
            except ApiError as e:
                if e.code != 409:
                    await _write_status(self.client, smm, member_status(
                        smm, False, "CreateMemberRollFailed",
                        f"Could not create ServiceMeshMemberRoll {mesh_ns}/{MEMBER_ROLL_NAME}: "
                        f"{e.message}", now))
                    return None
        ns = await get_or_none(self.client, NAMESPACE, namespace, "")
        if ns is None or _meta(ns).get("deletionTimestamp"):
            return None
        if why := namespace_conflict(ns, mesh_ns):
            await _write_status(self.client, smm, member_status(
                smm, False, "ErrorConfiguringNamespace", why, now, mesh))
            return None
        if (_meta(ns).get("labels") or {}).get(MEMBER_OF) != mesh_ns:
            await _label_namespace(self.client, namespace, mesh_ns)
        await _write_status(self.client, smm, member_status(smm, True, "", "", now, mesh))
        return None


def reconcilers(client: Client, components: ComponentsFn = _all_ready) -> list[Any]:
    """The three membership reconcilers, for setup.py."""
    return [ControlPlaneReconciler(client, components), MemberRollReconciler(client),
            MemberReconciler(client)]

