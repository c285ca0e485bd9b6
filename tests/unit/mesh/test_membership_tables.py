"""Membership reconcilers as tables (world + key -> writes), and the pure decisions behind them.

ServiceMeshControlPlane -> status and the member-of label of its namespace;
ServiceMeshMemberRoll -> ServiceMeshMembers created/deleted and the roll's status;
ServiceMeshMember -> the namespace's label and the member's status; then the MeshConfig
view, is_member and set_condition's Maistra time rule.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from skiff.core.memclient import MemoryClient
from skiff.mesh import crds
from skiff.mesh.membership import (
    CREATED_BY,
    FINALIZER,
    MEMBER_OF,
    MEMBER_ROLL_CONTROLLER,
    ControlPlaneReconciler,
    MemberReconciler,
    MemberRollReconciler,
    is_member,
    mesh_config,
    mesh_members,
    plan_member_roll,
    set_condition,
    smcp_status,
)
from tabletest import Row, run

Obj = dict[str, Any]
NOW = "2024-05-01T10:00:00Z"


def ns(name: str, **labels: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, **({"labels": labels} if labels else {})}}


def smcp(name: str = "basic", namespace: str = "istio-system", created: str = "",
         uid: str = "", generation: int = 1, status: Obj | None = None, **spec: Any) -> Obj:
    meta: Obj = {"name": name, "namespace": namespace, "generation": generation,
                 "uid": uid or f"{name}-uid"}
    if created:
        meta["creationTimestamp"] = created
    o: Obj = {"apiVersion": "maistra.io/v2", "kind": "ServiceMeshControlPlane",
              "metadata": meta, "spec": spec}
    if status is not None:
        o["status"] = status
    return o


RECONCILED = {"observedGeneration": 1, "operatorVersion": "2.4.6"}


def smmr(*members: str, name: str = "default", finalized: bool = True,
         status: Obj | None = None, **spec: Any) -> Obj:
    meta: Obj = {"name": name, "namespace": "istio-system"}
    if finalized:
        meta["finalizers"] = [FINALIZER]
    o: Obj = {"apiVersion": "maistra.io/v1", "kind": "ServiceMeshMemberRoll", "metadata": meta,
              "spec": {"members": list(members), **spec}}
    if status is not None:
        o["status"] = status
    return o


def smm(namespace: str, cp: str = "basic", cp_ns: str = "istio-system", by_roll: bool = True,
        finalized: bool = True, reconciled: bool | None = None, name: str = "default") -> Obj:
    meta: Obj = {"name": name, "namespace": namespace}
    if by_roll:
        meta["annotations"] = {CREATED_BY: MEMBER_ROLL_CONTROLLER}
    if finalized:
        meta["finalizers"] = [FINALIZER]
    o: Obj = {"apiVersion": "maistra.io/v1", "kind": "ServiceMeshMember", "metadata": meta,
              "spec": {"controlPlaneRef": {"name": cp, "namespace": cp_ns}}}
    if reconciled is not None:
        st = "True" if reconciled else "False"
        o["status"] = {"meshReconciledVersion": "2.4.6-1", "conditions": [
            {"type": "Reconciled", "status": st}, {"type": "Ready", "status": st}]}
    return o


def conds(*triples: tuple[str, str, str]) -> list[Obj]:
    return [{"type": t, "status": s, "reason": r} for t, s, r in triples]


# --- ServiceMeshControlPlane ------------------------------------------------------------------

SMCP_ROWS = [
    Row("a new SMCP is installed, ready, and labels its namespace",
        [smcp(profiles=None, security={"dataPlane": {"mtls": True}})], "istio-system/basic",
        want_patches=[("Namespace", "istio-system",
                       {"metadata": {"labels": {MEMBER_OF: "istio-system"}}})],
        want_status_updates=[{"status": {
            "conditions": [
                {"type": "Installed", "status": "True", "reason": "InstallSuccessful",
                 "message": "Successfully installed all mesh components"},
                {"type": "Reconciled", "status": "True", "reason": "InstallSuccessful",
                 "message": "Successfully installed version 2.4.6-1"},
                {"type": "Ready", "status": "True", "reason": "ComponentsReady",
                 "message": "All component deployments are Available"}],
            "observedGeneration": 1, "chartVersion": "2.4.6", "operatorVersion": "2.4.6",
            "appliedSpec": {"profiles": ["default"], "version": "v2.4",
                            "security": {"dataPlane": {"mtls": True}}},
            "readiness": {"components": {"ready": ["istio-ingressgateway", "istiod"],
                                         "unready": [], "pending": []}},
            "annotations": {"readyComponentCount": "2/2"}}}]),
    Row("a second SMCP in the namespace is skipped (ErrMultipleSMCPs)",
        [ns("istio-system", **{MEMBER_OF: "istio-system"}),
         smcp("basic", created="2024-01-01T00:00:00Z", status=RECONCILED),
         smcp("other", created="2024-02-01T00:00:00Z")], "istio-system/other",
        want_status_updates=[{"status": {"conditions": [
            {"type": "Ready", "status": "False", "reason": "ErrMultipleSMCPs",
             "message": "reconciliation skipped: error: multiple ServiceMeshControlPlane "
                        "resources exist in the namespace"},
            {"type": "Reconciled", "status": "False", "reason": "ErrMultipleSMCPs",
             "message": "reconciliation skipped: error: multiple ServiceMeshControlPlane "
                        "resources exist in the namespace"}]}}]),
    Row("a new generation is an update",
        [ns("istio-system", **{MEMBER_OF: "istio-system"}),
         smcp(generation=2, status={**RECONCILED, "conditions": conds(
             ("Installed", "True", "InstallSuccessful"),
             ("Reconciled", "True", "InstallSuccessful"),
             ("Ready", "True", "ComponentsReady"))})], "istio-system/basic",
        want_status_updates=[{"status": {"observedGeneration": 2, "conditions": [
            {"type": "Installed", "reason": "InstallSuccessful"},
            {"type": "Reconciled", "status": "True", "reason": "UpdateSuccessful",
             "message": "Successfully updated from version 2.4.6-1 to version 2.4.6-2"},
            {"type": "Ready", "reason": "ComponentsReady"}]}}]),
    Row("the SMCP gone: its namespace loses the label",
        [ns("istio-system", **{MEMBER_OF: "istio-system"})], "istio-system/basic",
        want_patches=[("Namespace", "istio-system",
                       {"metadata": {"labels": {MEMBER_OF: None}}})]),
]


@pytest.mark.parametrize("row", SMCP_ROWS, ids=str)
def test_control_plane(row: Row) -> None:
    run(row, ControlPlaneReconciler, crds.KINDS)


def test_control_plane_unready_component() -> None:
    st = smcp_status(smcp(), None, {"istiod": True, "istio-ingressgateway": False}, NOW)
    ready = [c for c in st["conditions"] if c["type"] == "Ready"][0]
    assert ready == {"type": "Ready", "status": "False", "reason": "ComponentsNotReady",
                     "message": "The following components are not fully available: "
                                "[istio-ingressgateway]", "lastTransitionTime": NOW}
    assert st["annotations"]["readyComponentCount"] == "1/2"
    assert st["readiness"]["components"]["unready"] == ["istio-ingressgateway"]


def test_control_plane_twice_writes_nothing() -> None:
    client = MemoryClient([smcp()], crds.KINDS)
    r = ControlPlaneReconciler(client)
    asyncio.run(r.reconcile("istio-system", "basic"))
    client.take_actions()
    asyncio.run(r.reconcile("istio-system", "basic"))
    assert client.take_actions() == []


# --- ServiceMeshMemberRoll -------------------------------------------------------------------

SMMR_ROWS = [
    Row("a new roll gets its finalizer and makes members in existing namespaces",
        [smcp(status=RECONCILED), ns("default"), ns("knative-serving"), ns("knative-eventing"),
         smmr("knative-serving", "knative-eventing", "default", finalized=False)],
        "istio-system/default",
        want_updates=[{"metadata": {"finalizers": [FINALIZER]}}],
        want_creates=[
            {"kind": "ServiceMeshMember", "metadata": {
                "name": "default", "namespace": ns_,
                "annotations": {CREATED_BY: MEMBER_ROLL_CONTROLLER}},
             "spec": {"controlPlaneRef": {"name": "basic", "namespace": "istio-system"}}}
            for ns_ in ("default", "knative-eventing", "knative-serving")],
        want_status_updates=[{"status": {
            "members": ["default", "knative-eventing", "knative-serving"],
            "configuredMembers": [],
            "pendingMembers": ["default", "knative-eventing", "knative-serving"],
            "terminatingMembers": [],
            "annotations": {"configuredMemberCount": "0/3"},
            "meshGeneration": 1, "meshReconciledVersion": "2.4.6-1",
            "conditions": [
                {"type": "KnativeMembers", "status": "True",
                 "reason": "KnativeNamespacesMembers"},
                {"type": "Ready", "status": "False", "reason": "ReconcileError",
                 "message": "The following namespaces are not yet configured: "
                            "[default knative-eventing knative-serving]"}]}}]),
    Row("configured members make the roll Ready (Configured)",
        [smcp(status=RECONCILED), ns("default"), smmr("knative-serving", "knative-eventing",
                                                        "default"),
         smm("default", reconciled=True), smm("knative-serving", reconciled=True),
         smm("knative-eventing", reconciled=True)],
        "istio-system/default",
        want_status_updates=[{"status": {
            "members": ["default", "knative-eventing", "knative-serving"],
            "configuredMembers": ["default", "knative-eventing", "knative-serving"],
            "pendingMembers": [], "terminatingMembers": [],
            "annotations": {"configuredMemberCount": "3/3"},
            "memberStatuses": [
                {"namespace": n, "conditions": [{"type": "Reconciled", "status": "True"}]}
                for n in ("default", "knative-eventing", "knative-serving")],
            "conditions": [
                {"type": "KnativeMembers", "status": "True"},
                {"type": "Ready", "status": "True", "reason": "Configured",
                 "message": "All namespaces have been configured successfully"}]}}]),
    Row("a namespace that does not exist stays pending (NamespaceNotExists)",
        [smcp(status=RECONCILED), smmr("knative-serving", "knative-eventing", "team-alpha-1"),
         smm("knative-serving", reconciled=True), smm("knative-eventing", reconciled=True)],
        "istio-system/default",
        want_status_updates=[{"status": {
            "members": ["knative-eventing", "knative-serving", "team-alpha-1"],
            "configuredMembers": ["knative-eventing", "knative-serving"],
            "pendingMembers": ["team-alpha-1"],
            "annotations": {"configuredMemberCount": "2/3"},
            "memberStatuses": [
                {"namespace": "knative-eventing", "conditions": [{"status": "True"}]},
                {"namespace": "knative-serving", "conditions": [{"status": "True"}]},
                {"namespace": "team-alpha-1", "conditions": [
                    {"type": "Reconciled", "status": "False", "reason": "NamespaceNotExists",
                     "message": "Namespace team-alpha-1 does not exist"}]}],
            "conditions": [
                {"type": "KnativeMembers", "status": "True"},
                {"type": "Ready", "status": "False", "reason": "ReconcileError",
                 "message": "The following namespaces are not yet configured: "
                            "[team-alpha-1]"}]}}]),
    Row("knative-serving and knative-eventing missing: the guide's warning, Ready unaffected",
        [smcp(status=RECONCILED), ns("default"), smmr("default"),
         smm("default", reconciled=True)],
        "istio-system/default",
        want_status_updates=[{"status": {"conditions": [
            {"type": "KnativeMembers", "status": "False", "reason": "KnativeNamespacesMissing",
             "message": "knative-serving and knative-eventing are not a member of the mesh: "
                        "OpenShift Serverless with Service Mesh needs knative-serving and "
                        "knative-eventing in the ServiceMeshMemberRoll (add them to "
                        "spec.members), or Knative's activator and gateways cannot reach "
                        "services in member namespaces under mTLS"},
            {"type": "Ready", "status": "True", "reason": "Configured"}]}}]),
    Row("a namespace removed from the roll: its member is deleted and terminating",
        [smcp(status=RECONCILED), ns("default"), ns("team-bravo-1"),
         smmr("knative-serving", "knative-eventing", "default"),
         smm("knative-serving", reconciled=True), smm("knative-eventing", reconciled=True),
         smm("default", reconciled=True), smm("team-bravo-1", reconciled=True)],
        "istio-system/default",
        want_deletes=[("ServiceMeshMember", "default")],
        want_status_updates=[{"status": {
            "members": ["default", "knative-eventing", "knative-serving", "team-bravo-1"],
            "terminatingMembers": ["team-bravo-1"],
            "pendingMembers": [],
            "conditions": [{"type": "KnativeMembers"},
                           {"type": "Ready", "status": "True"}]}}]),
    Row("a member a user made (not by the roll) is kept and counted",
        [smcp(status=RECONCILED), ns("team-x"), smmr("knative-serving", "knative-eventing"),
         smm("knative-serving", reconciled=True), smm("knative-eventing", reconciled=True),
         smm("team-x", by_roll=False, reconciled=True)],
        "istio-system/default",
        want_status_updates=[{"status": {
            "members": ["knative-eventing", "knative-serving", "team-x"],
            "configuredMembers": ["knative-eventing", "knative-serving", "team-x"],
            "conditions": [{"type": "KnativeMembers"},
                           {"type": "Ready", "status": "True", "reason": "Configured"}]}}]),
    Row("no control plane: ErrSMCPMissing and no members made",
        [ns("default"), smmr("default")], "istio-system/default",
        want_status_updates=[{"status": {
            "members": ["default"], "pendingMembers": ["default"], "meshGeneration": 0,
            "conditions": [{"type": "KnativeMembers", "status": "False"},
                           {"type": "Ready", "status": "False", "reason": "ErrSMCPMissing",
                            "message": "No ServiceMeshControlPlane exists in the namespace"}]}}]),
    Row("a member of another control plane is reported (ReferencesDifferentControlPlane)",
        [smcp(status=RECONCILED), ns("default"), smmr("default"),
         smm("default", cp="other", cp_ns="other-mesh", by_roll=False, reconciled=True)],
        "istio-system/default",
        want_status_updates=[{"status": {
            "members": ["default"], "pendingMembers": ["default"],
            "memberStatuses": [{"namespace": "default", "conditions": [
                {"type": "Reconciled", "status": "False",
                 "reason": "ReferencesDifferentControlPlane",
                 "message": "ServiceMeshMember default/default exists, but references "
                            "ServiceMeshControlPlane other-mesh/other"}]}],
            "conditions": [{"type": "KnativeMembers"},
                           {"type": "Ready", "status": "False",
                            "reason": "ReconcileError"}]}}]),
    Row("memberSelectors and kube-* exclusion",
        [smcp(status=RECONCILED), ns("shop", team="a"), ns("kube-x", team="a"), ns("other"),
         smmr(memberSelectors=[{"matchLabels": {"team": "a"}}])],
        "istio-system/default",
        want_creates=[{"kind": "ServiceMeshMember", "metadata": {"namespace": "shop"}}],
        want_status_updates=[{"status": {"members": ["shop"]}}]),
    Row("a roll not named default: ErrInvalidName",
        [smcp(status=RECONCILED), smmr("default", name="mine")], "istio-system/mine",
        want_status_updates=[{"status": {"conditions": [
            {"type": "Ready", "status": "False", "reason": "ErrInvalidName",
             "message": 'the ServiceMeshMemberRoll name is invalid; must be "default"'}]}}]),
]


@pytest.mark.parametrize("row", SMMR_ROWS, ids=str)
def test_member_roll(row: Row) -> None:
    run(row, MemberRollReconciler, crds.KINDS)


def test_member_roll_deleted_takes_its_members() -> None:
    client = MemoryClient([smcp(status=RECONCILED), ns("default"), smmr("default"),
                           smm("default", reconciled=True),
                           ], crds.KINDS)
    r = MemberRollReconciler(client)
    asyncio.run(client.delete(crds_ref("ServiceMeshMemberRoll"), "default", "istio-system"))
    client.take_actions()
    asyncio.run(r.reconcile("istio-system", "default"))
    acts = [(a.verb, a.kind, a.namespace) for a in client.take_actions()]
    assert acts == [("delete", "ServiceMeshMember", "default"),
                    ("update", "ServiceMeshMemberRoll", "istio-system")]


def crds_ref(kind: str) -> Any:
    from skiff.core.client import Ref
    return Ref("maistra.io/v1", kind)


def test_member_roll_twice_writes_nothing() -> None:
    client = MemoryClient([smcp(status=RECONCILED), ns("default"), smmr("default"),
                           smm("default", reconciled=True)], crds.KINDS)
    r = MemberRollReconciler(client)
    asyncio.run(r.reconcile("istio-system", "default"))
    client.take_actions()
    asyncio.run(r.reconcile("istio-system", "default"))
    assert client.take_actions() == []


# --- ServiceMeshMember -----------------------------------------------------------------------

SMM_ROWS = [
    Row("a member labels its namespace and is Reconciled/Ready",
        [smcp(status=RECONCILED), smmr("default"), ns("default"), smm("default")],
        "default/default",
        want_patches=[("Namespace", "default", {"metadata": {"labels": {
            MEMBER_OF: "istio-system"}}})],
        want_status_updates=[{"status": {
            "annotations": {"controlPlaneRef": "istio-system/basic"},
            "meshGeneration": 1, "meshReconciledVersion": "2.4.6-1",
            "conditions": [{"type": "Reconciled", "status": "True"},
                           {"type": "Ready", "status": "True"}]}}]),
    Row("a new member gets the finalizer first",
        [smcp(status=RECONCILED), smmr("default"), ns("default", **{MEMBER_OF: "istio-system"}),
         smm("default", finalized=False)],
        "default/default",
        want_updates=[{"metadata": {"finalizers": [FINALIZER]}}],
        want_status_updates=[{"status": {"conditions": [{"status": "True"},
                                                        {"status": "True"}]}}]),
    Row("a member of a control plane that does not exist",
        [smmr("default"), ns("default"), smm("default")], "default/default",
        want_status_updates=[{"status": {"conditions": [
            {"type": "Reconciled", "status": "False", "reason": "ErrorControlPlaneMissing",
             "message": "the referenced ServiceMeshControlPlane object does not exist"},
            {"type": "Ready", "status": "False", "reason": "ErrorControlPlaneMissing"}]}}]),
    Row("a namespace already in another mesh is refused",
        [smcp(status=RECONCILED), smmr("default"), ns("default", **{MEMBER_OF: "other-mesh"}),
         smm("default")], "default/default",
        want_status_updates=[{"status": {"conditions": [
            {"type": "Reconciled", "status": "False", "reason": "ErrorConfiguringNamespace",
             "message": "cannot reconcile namespace default in mesh istio-system, as it is "
                        "already a member of other-mesh"},
            {"type": "Ready", "status": "False"}]}}]),
    Row("a member without a roll creates the roll (as Maistra's member controller)",
        [smcp(status=RECONCILED), ns("default"), smm("default", by_roll=False)],
        "default/default",
        want_creates=[{"kind": "ServiceMeshMemberRoll",
                       "metadata": {"name": "default", "namespace": "istio-system",
                                    "annotations": {CREATED_BY:
                                                    "servicemeshmember-controller"}}}],
        want_patches=[("Namespace", "default", {"metadata": {"labels": {
            MEMBER_OF: "istio-system"}}})],
        want_status_updates=[{"status": {"conditions": [{"status": "True"},
                                                        {"status": "True"}]}}]),
    Row("a member not named default: InvalidName",
        [smcp(status=RECONCILED), smmr(), ns("default"), smm("default", name="mine")],
        "default/mine",
        want_status_updates=[{"status": {"conditions": [
            {"type": "Reconciled", "status": "False", "reason": "InvalidName",
             "message": 'the ServiceMeshMember name is invalid; must be "default"'},
            {"type": "Ready", "status": "False"}]}}]),
]


@pytest.mark.parametrize("row", SMM_ROWS, ids=str)
def test_member(row: Row) -> None:
    run(row, MemberReconciler, crds.KINDS)


def test_member_deleted_unlabels_namespace() -> None:
    client = MemoryClient([smcp(status=RECONCILED), smmr("default"),
                           ns("default", **{MEMBER_OF: "istio-system"}),
                           smm("default", reconciled=True)], crds.KINDS)
    asyncio.run(client.delete(crds_ref("ServiceMeshMember"), "default", "default"))
    client.take_actions()
    asyncio.run(MemberReconciler(client).reconcile("default", "default"))
    acts = client.take_actions()
    assert [(a.verb, a.kind, a.name) for a in acts] == [
        ("patch", "Namespace", "default"), ("update", "ServiceMeshMember", "default")]
    assert acts[0].object == {"metadata": {"labels": {MEMBER_OF: None}}}
    nso = asyncio.run(client.get(crds_ref_ns(), "default"))
    assert MEMBER_OF not in (nso["metadata"].get("labels") or {})


def crds_ref_ns() -> Any:
    from skiff.core.client import Ref
    return Ref("v1", "Namespace")


# --- the pure view and rules -----------------------------------------------------------------

GUIDE_SMCP = smcp(profiles=["default"], security={"dataPlane": {"mtls": True}},
                  techPreview={"meshConfig": {"defaultConfig":
                                              {"terminationDrainDuration": "35s"}}},
                  proxy={"networking": {"trafficControl": {"inbound": {
                      "excludedPorts": [8444, 8022]}}}})


def test_mesh_config_from_the_guide() -> None:
    objs = [GUIDE_SMCP, smmr("knative-serving", "knative-eventing", "default"),
            smm("team-x", by_roll=False)]
    cfg = mesh_config(objs)
    assert cfg is not None
    assert cfg.control_plane == cfg.root_namespace == "istio-system"
    assert cfg.trust_domain == "cluster.local"
    assert cfg.mtls and cfg.mtls_mode == "STRICT"
    assert cfg.excluded_inbound_ports == (8022, 8444)
    assert cfg.termination_drain_s == 35.0
    assert cfg.members == {"istio-system", "knative-serving", "knative-eventing", "default",
                           "team-x"}
    assert cfg.is_member("default") and not cfg.is_member("team-y")


def test_mesh_config_defaults_and_absence() -> None:
    assert mesh_config([smmr("default")]) is None
    cfg = mesh_config([smcp()])
    assert cfg is not None
    assert (cfg.mtls_mode, cfg.termination_drain_s, cfg.excluded_inbound_ports) == \
        ("PERMISSIVE", 5.0, ())
    assert mesh_config([smcp(techPreview={"meshConfig": {"defaultConfig": {
        "terminationDrainDuration": "1m30s"}}})]).termination_drain_s == 90.0  # type: ignore[union-attr]


@pytest.mark.parametrize("objects,want", [
    ([], set()),
    ([smmr("a")], set()),                                   # no control plane, no mesh
    ([smcp(), smmr("a", "b")], {"istio-system", "a", "b"}),
    ([smcp(), smmr("a", "b"), ns("a")], {"istio-system", "a"}),   # b does not exist
    ([smcp(), smmr("*"), ns("a"), ns("kube-system"), ns("openshift-x")], {"istio-system", "a"}),
    ([smcp(), smm("c", by_roll=False), smm("d", cp_ns="elsewhere")], {"istio-system", "c"}),
], ids=["nothing", "no-smcp", "listed", "existing-only", "wildcard", "members"])
def test_mesh_members(objects: list[Obj], want: set[str]) -> None:
    assert mesh_members(objects) == want


@pytest.mark.parametrize("namespace,want", [
    (ns("a"), True), (ns("b"), False), (ns("istio-system"), False), (ns("kube-a"), False),
    (ns("sel", env="prod"), True), (ns("sel2", env="dev"), False),
])
def test_is_member(namespace: Obj, want: bool) -> None:
    roll = smmr("a", "istio-system", "kube-a",
                memberSelectors=[{"matchExpressions": [{"key": "env", "operator": "In",
                                                        "values": ["prod"]}]}])
    assert is_member(roll, namespace) is want


def test_set_condition_keeps_time_unless_status_changes() -> None:
    c = set_condition([], "Ready", "False", "A", "a", "t1")
    c = set_condition(c, "Ready", "False", "B", "b", "t2")
    assert c == [{"type": "Ready", "status": "False", "reason": "B", "message": "b",
                  "lastTransitionTime": "t1"}]
    c = set_condition(c, "Ready", "True", "C", "c", "t3")
    assert c[0]["lastTransitionTime"] == "t3"


def test_plan_is_pure_and_stable() -> None:
    roll = smmr("default", status=None)
    world = ([smcp(status=RECONCILED)], [ns("default")], [smm("default", reconciled=True)])
    p1 = plan_member_roll(roll, *world, NOW)
    p2 = plan_member_roll({**roll, "status": p1.status}, *world, "2030-01-01T00:00:00Z")
    assert p1.status == p2.status and not p2.creates and not p2.deletes
