"""mesh/authz/check.py, the pure core of `skiff authz check|matrix`: objects in, verdicts out.

The world is the guide's chapter 2: knative-default-authz-policies + the team-alpha and
team-bravo tenant policies (examples/tenant-isolation), the two test-webapp Knative
Services with a revision pod each, and a few plain Services. The 2.4 matrix: same tenant
by the cluster-local name ALLOW, the other tenant DENY (403), either through the ingress
gateway ALLOW. With one pod and the default target-burst-capacity the activator fronts
the revisions (no SKS known: assumed), so each request is decided twice: by the
activator's policies, then by the pod's with the activator's identity; with the SKS in
Serve mode, by the pod's alone with the caller's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from skiff.mesh.authz.check import (
    KNATIVE_POD_PORT,
    CheckError,
    RequestSpec,
    Source,
    Target,
    check,
    destinations,
    matrix,
    merge_objects,
    parse_source,
    parse_target,
    resolve,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "tenant-isolation"


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]


POLICIES = [*_docs("01-knative-default-authz-policies.yaml"), *_docs("02-team-alpha.yaml"),
            *_docs("03-team-bravo.yaml")]


def ksvc(ns: str, name: str = "test-webapp", latest: str = "") -> dict[str, Any]:
    o: dict[str, Any] = {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                         "metadata": {"name": name, "namespace": ns},
                         "spec": {"template": {"metadata": {"labels": {"team": ns}}}}}
    o["status"] = {"url": f"https://{name}-{ns}.apps.example.com"}
    if latest:
        o["status"]["latestReadyRevisionName"] = latest
    return o


def pod(ns: str, name: str, labels: dict[str, str], phase: str = "Running",
        ports: list[dict[str, Any]] | None = None, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "labels": labels}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "app", "ports": ports or []}]},
            "status": {"phase": phase}}


def rev_pod(ns: str, rev: str = "test-webapp-00001", **kw: Any) -> dict[str, Any]:
    return pod(ns, f"{rev}-deployment-abc", {"serving.knative.dev/service": "test-webapp",
                                              "serving.knative.dev/revision": rev, "app": rev},
               **kw)


def service(ns: str, name: str, selector: dict[str, str] | None, ports: list[dict[str, Any]],
            labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"ports": ports, **spec}
    if selector is not None:
        s["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}}, "spec": s}


WORLD = [
    *POLICIES,
    ksvc("team-alpha-1"), rev_pod("team-alpha-1"),
    ksvc("team-bravo-1"), rev_pod("team-bravo-1"),
    # Knative's own Services for the route and revision: not destinations of their own
    service("team-bravo-1", "test-webapp-00001", None, [{"port": 80}],
            {"serving.knative.dev/revision": "test-webapp-00001"}),
    service("team-bravo-1", "test-webapp-00001-private", {"app": "test-webapp-00001"},
            [{"port": 80}], {"serving.knative.dev/revision": "test-webapp-00001"}),
    # a plain workload in team-alpha-2
    service("team-alpha-2", "api", {"app": "api"},
            [{"name": "http", "port": 80, "targetPort": "web"}, {"port": 9090}]),
    pod("team-alpha-2", "api-1", {"app": "api", "version": "v1"},
        ports=[{"name": "web", "containerPort": 8080}]),
]

ALPHA = Source("team-alpha-1")
ACTIVATOR = "cluster.local/ns/knative-serving/sa/activator"


def sks(ns: str, mode: str, rev: str = "test-webapp-00001") -> dict[str, Any]:
    return {"apiVersion": "networking.internal.knative.dev/v1alpha1",
            "kind": "ServerlessService",
            "metadata": {"name": rev, "namespace": ns,
                         "labels": {"serving.knative.dev/service": "test-webapp"}},
            "spec": {"mode": mode}}


# the revisions have pods enough that the activator leaves the path
SERVE = [*WORLD, sks("team-alpha-1", "Serve"), sks("team-bravo-1", "Serve")]


# --- the guide's 2.4 matrix ----------------------------------------------------------------

def test_same_tenant_by_local_name_is_allowed() -> None:
    v = check(WORLD, ALPHA, parse_target("test-webapp.team-alpha-1", "team-alpha-1"))
    assert v.allowed and v.word == "ALLOW" and v.at == "destination"
    # the activator's sidecar first (the tenant's allow-team-alpha-to-activator) ...
    (at, first), = v.hops
    assert (at, first.allowed, first.policy, first.rule) == (
        "activator", True, "knative-serving/allow-team-alpha-to-activator", 0)
    # ... then the pod's, which sees the activator
    assert (v.decision.policy, v.decision.rule) == ("team-alpha-1/allow-from-knative-and-istio", 0)
    assert v.request.source_principal == ACTIVATOR
    assert "via the activator: allowed by ALLOW policy" in v.line()
    assert any("activator assumed in the path" in n for n in v.notes)
    assert v.request.host == "test-webapp.team-alpha-1"
    assert v.request.port == KNATIVE_POD_PORT == 8012
    assert v.destination.workload_from == "pod test-webapp-00001-deployment-abc"
    assert v.deciding() == "policy: team-alpha-1/allow-from-knative-and-istio rule: 0"
    # out of the activator's path (SKS Serve), straight to the pod with the caller's identity
    v = check(SERVE, ALPHA, parse_target("test-webapp.team-alpha-1", "team-alpha-1"))
    assert v.allowed and v.hops == () and v.decision.rule == 0
    assert v.request.source_principal == "cluster.local/ns/team-alpha-1/sa/default"
    assert "Serve mode" in " ".join(v.notes)


def test_other_tenant_by_local_name_is_denied_403() -> None:
    v = check(WORLD, ALPHA, parse_target("test-webapp.team-bravo-1", "team-alpha-1"))
    assert not v.allowed and v.at == "activator"
    assert v.decision.status == 403 and v.decision.action == "NONE" and v.decision.policy is None
    assert v.request.destination.namespace == "knative-serving"
    assert v.line() == (
        "DENY  team-alpha-1/default -> test-webapp.team-bravo-1 GET / : at the activator "
        "(knative-serving/activator): denied: no ALLOW policy matched (4 select the workload: "
        "knative-serving/allow-team-alpha-to-activator, "
        "knative-serving/allow-team-bravo-to-activator, "
        "knative-serving/allow-traffic-to-activator, knative-serving/deny-all-by-default); "
        "knative-serving/deny-all-by-default has no rules and allows nothing")
    # straight to the pod, bravo's own policies deny it
    v = check(SERVE, ALPHA, parse_target("test-webapp.team-bravo-1", "team-alpha-1"))
    assert not v.allowed and v.at == "destination" and v.decision.status == 403
    assert v.line() == (
        "DENY  team-alpha-1/default -> test-webapp.team-bravo-1 GET / : denied: no ALLOW policy "
        "matched (2 select the workload: team-bravo-1/allow-from-knative-and-istio, "
        "team-bravo-1/allow-wait-for-drain)")
    assert v.deciding() == ""


@pytest.mark.parametrize("ns", ["team-alpha-1", "team-bravo-1"])
def test_any_tenant_by_the_external_url_is_allowed(ns: str) -> None:
    src = Source("team-alpha-1", via_ingress=True)
    v = check(WORLD, src, Target("test-webapp", ns))
    assert v.allowed
    assert v.hops[0][1].policy == "knative-serving/allow-traffic-to-activator"
    assert v.decision.policy == f"{ns}/allow-from-knative-and-istio"
    assert v.request.source_principal == ACTIVATOR
    direct = check(SERVE, src, Target("test-webapp", ns))
    assert direct.allowed and direct.request.source_principal == \
        "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
    assert v.request.host == f"test-webapp-{ns}.apps.example.com"   # from status.url
    assert v.line().startswith("ALLOW ingress (istio-system/istio-ingressgateway-service-account)")


def test_wait_for_drain_port_is_open_to_anyone() -> None:
    v = check(WORLD, ALPHA, Target("test-webapp", "team-bravo-1"), RequestSpec(port=8022))
    assert v.allowed and v.decision.policy == "team-bravo-1/allow-wait-for-drain"
    assert v.request.port == 8022 and v.request.host == "test-webapp.team-bravo-1:8022"
    assert v.hops == ()            # queue-proxy's admin port: the activator is not on the way


def test_eventing_delivery_with_kn_namespace() -> None:
    src = Source("knative-eventing", "mt-broker-filter")
    ok = check(WORLD, src, Target("test-webapp", "team-alpha-1"),
               RequestSpec(method="POST", headers=(("Kn-Namespace", "team-alpha-2"),)))
    assert ok.allowed and (ok.hops[0][1].policy, ok.hops[0][1].rule) == (
        "knative-serving/allow-team-alpha-to-activator", 1)
    direct = check(SERVE, src, Target("test-webapp", "team-alpha-1"),
                   RequestSpec(method="POST", headers=(("Kn-Namespace", "team-alpha-2"),)))
    assert direct.allowed and (direct.decision.policy, direct.decision.rule) == (
        "team-alpha-1/allow-from-knative-and-istio", 1)
    no = check(WORLD, src, Target("test-webapp", "team-alpha-1"),
               RequestSpec(method="POST", headers=(("Kn-Namespace", "team-bravo-1"),)))
    assert not no.allowed


def test_a_policy_file_replaces_the_live_one() -> None:
    opened = {"apiVersion": "security.istio.io/v1beta1", "kind": "AuthorizationPolicy",
              "metadata": {"name": "allow-from-knative-and-istio", "namespace": "team-bravo-1"},
              "spec": {"rules": [{"from": [{"source": {"namespaces": ["team-alpha-1"]}}]}]}}
    objs = merge_objects(SERVE, [opened])
    assert len(objs) == len(SERVE)
    v = check(objs, ALPHA, Target("test-webapp", "team-bravo-1"))
    assert v.allowed and v.decision.policy == "team-bravo-1/allow-from-knative-and-istio"
    # while the activator fronts bravo's revision its own policies still keep alpha out
    v = check(merge_objects(WORLD, [opened]), ALPHA, Target("test-webapp", "team-bravo-1"))
    assert not v.allowed and v.at == "activator"
    deny_all = {**opened, "metadata": {"name": "deny", "namespace": "team-alpha-1"},
                "spec": {"action": "DENY", "rules": [{}]}}
    v = check(merge_objects(WORLD, [deny_all]), ALPHA, Target("test-webapp", "team-alpha-1"))
    assert not v.allowed and (v.decision.action, v.decision.policy, v.decision.rule) == (
        "DENY", "team-alpha-1/deny", 0)


# --- resolution ----------------------------------------------------------------------------

def test_not_found_is_one_clear_line() -> None:
    with pytest.raises(CheckError, match="^service nope not found in namespace team-bravo-1$"):
        check(WORLD, ALPHA, Target("nope", "team-bravo-1"))


def test_plain_service_named_target_port_and_pod_labels() -> None:
    d = resolve(WORLD, Target("api", "team-alpha-2"))
    assert (d.kind, d.port, d.workload_from) == ("Service", 8080, "pod api-1")
    assert d.workload.label_map() == {"app": "api", "version": "v1"}
    assert resolve(WORLD, Target("api", "team-alpha-2"), 9090).port == 9090
    with pytest.raises(CheckError, match=r"has no port 81 \(ports: 80, 9090\)"):
        resolve(WORLD, Target("api", "team-alpha-2"), 81)


def test_pod_choice_running_first_not_deleting_latest_revision() -> None:
    ns = "team-alpha-1"
    objs = [ksvc(ns, latest="test-webapp-00002"),
            rev_pod(ns, "test-webapp-00001"),
            rev_pod(ns, "test-webapp-00002", deleting=True),
            pod(ns, "test-webapp-00002-deployment-b", {"serving.knative.dev/service": "test-webapp",
                "serving.knative.dev/revision": "test-webapp-00002"}, phase="Pending"),
            pod(ns, "test-webapp-00002-deployment-c", {"serving.knative.dev/service": "test-webapp",
                "serving.knative.dev/revision": "test-webapp-00002"})]
    assert resolve(objs, Target("test-webapp", ns)).workload_from == \
        "pod test-webapp-00002-deployment-c"


def test_without_pods_the_labels_they_would_carry() -> None:
    d = resolve([ksvc("x")], Target("test-webapp", "x"))
    assert d.workload.label_map() == {"team": "x", "serving.knative.dev/service": "test-webapp",
                                      "serving.knative.dev/configuration": "test-webapp"}
    assert d.notes
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "web", "namespace": "x"},
              "spec": {"template": {"metadata": {"labels": {"app": "web", "tier": "f"}}}}}
    svc = service("x", "web", {"app": "web"}, [{"port": 80, "targetPort": 8080}])
    d = resolve([deploy, svc], Target("web", "x"))
    assert d.workload.label_map() == {"app": "web", "tier": "f"} and d.port == 8080
    assert d.workload_from == "deployment web's pod template"
    d = resolve([svc], Target("web", "x"))
    assert d.workload.label_map() == {"app": "web"}
    assert d.workload_from == "the service's selector (no pods)"


def test_services_that_cannot_be_checked() -> None:
    ext = service("x", "ext", None, [{"port": 80}], type="ExternalName", externalName="a.b")
    with pytest.raises(CheckError, match="is an ExternalName to a.b"):
        resolve([ext], Target("ext", "x"))
    bare = service("x", "bare", None, [{"port": 80}])
    with pytest.raises(CheckError, match="has no selector"):
        resolve([bare], Target("bare", "x"))


def test_labels_given_skip_the_lookup() -> None:
    d = resolve([], Target("w", "x", labels=(("app", "w"),)))
    assert (d.kind, d.port, d.workload.label_map()) == ("Workload", 8012, {"app": "w"})
    assert resolve([], Target("w", "x", labels=()), 8022).port == 8022


# --- parsing -------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "name", "ns"), [
    ("test-webapp", "test-webapp", "dflt"),
    ("test-webapp.team-bravo-1", "test-webapp", "team-bravo-1"),
    ("test-webapp.team-bravo-1:80", "test-webapp", "team-bravo-1"),
    ("test-webapp.team-bravo-1.svc", "test-webapp", "team-bravo-1"),
    ("test-webapp.team-bravo-1.svc.cluster.local", "test-webapp", "team-bravo-1"),
])
def test_parse_target(text: str, name: str, ns: str) -> None:
    t = parse_target(text, "dflt")
    assert (t.name, t.namespace, t.text) == (name, ns, text)


@pytest.mark.parametrize("text", ["", ".ns", "a.b.example.com"])
def test_parse_target_errors(text: str) -> None:
    with pytest.raises(CheckError):
        parse_target(text, "d")


def test_parse_source() -> None:
    assert parse_source("team-alpha-1/default") == Source("team-alpha-1", "default")
    assert parse_source("team-alpha-1") == Source("team-alpha-1", "default")
    for bad in ("", "/sa", "ns/", "a/b/c"):
        with pytest.raises(CheckError, match="is not NAMESPACE/SERVICEACCOUNT"):
            parse_source(bad)


# --- matrix --------------------------------------------------------------------------------

def test_destinations_skip_knatives_own_services() -> None:
    got = [t.display for t in destinations(WORLD, ["team-alpha-1", "team-alpha-2",
                                                   "team-bravo-1"])]
    assert got == ["test-webapp.team-alpha-1", "api.team-alpha-2", "test-webapp.team-bravo-1"]


def test_matrix_is_the_guides_table() -> None:
    entries = matrix(WORLD, ["team-alpha-1", "team-bravo-1"], ingress=True)
    table = {(e.source.label, e.target.display): e.verdict.word if e.verdict else "ERROR"
             for e in entries}
    gw = "ingress (istio-system/istio-ingressgateway-service-account)"
    assert table == {
        ("team-alpha-1/default", "test-webapp.team-alpha-1"): "ALLOW",
        ("team-alpha-1/default", "test-webapp.team-bravo-1"): "DENY",
        ("team-bravo-1/default", "test-webapp.team-alpha-1"): "DENY",
        ("team-bravo-1/default", "test-webapp.team-bravo-1"): "ALLOW",
        (gw, "test-webapp.team-alpha-1"): "ALLOW",
        (gw, "test-webapp.team-bravo-1"): "ALLOW",
    }
    d = entries[1].to_dict()
    assert (d["from"], d["to"], d["verdict"], d["status"]) == (
        "team-alpha-1/default", "test-webapp.team-bravo-1", "DENY", 403)


def test_matrix_reports_unresolvable_destinations() -> None:
    svc = service("x", "web", {"app": "web"}, [{"port": 80}])
    (e,) = matrix([svc], ["x"], RequestSpec(port=81))
    assert e.verdict is None and e.error and "has no port 81" in e.error
    assert e.to_dict()["verdict"] == "ERROR"


def test_verdict_json_shape() -> None:
    d = check(WORLD, ALPHA, Target("test-webapp", "team-bravo-1")).to_dict()
    assert d["verdict"] == "DENY" and d["allowed"] is False and d["status"] == 403
    assert d["source"] == {"namespace": "team-alpha-1", "serviceAccount": "default",
                           "viaIngress": False,
                           "principal": "cluster.local/ns/team-alpha-1/sa/default"}
    assert d["destination"]["workload"]["labels"]["serving.knative.dev/service"] == "test-webapp"
    assert d["request"] == {"host": "test-webapp.team-bravo-1", "port": 8012, "method": "GET",
                            "path": "/", "headers": {}}


def test_the_activator_is_no_mesh_workload_when_knative_serving_is_not_a_member() -> None:
    roll = {"apiVersion": "maistra.io/v1", "kind": "ServiceMeshMemberRoll",
            "metadata": {"name": "default", "namespace": "istio-system"},
            "spec": {"members": ["team-alpha-1", "team-bravo-1"]}}
    v = check([*WORLD, roll], ALPHA, Target("test-webapp", "team-alpha-1"))
    assert v.allowed and v.hops == ()
    assert v.request.source_principal == "cluster.local/ns/team-alpha-1/sa/default"
    assert any("not a mesh member" in n for n in v.notes)
    member = {**roll, "spec": {"members": ["knative-serving", "team-alpha-1"]}}
    assert check([*WORLD, member], ALPHA, Target("test-webapp", "team-alpha-1")).hops


def test_an_sks_in_proxy_mode_puts_the_activator_in_the_path() -> None:
    proxy = [*WORLD, sks("team-bravo-1", "Proxy")]
    v = check(proxy, ALPHA, Target("test-webapp", "team-bravo-1"))
    assert v.at == "activator" and any("Proxy mode" in n for n in v.notes)
    assert v.to_dict()["decidedAt"] == "activator" and v.to_dict()["hops"][0]["at"] == "activator"
