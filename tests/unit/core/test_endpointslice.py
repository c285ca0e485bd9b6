"""The EndpointSlice controller: plan() and desired_endpoints() as pure functions, and the
reconciler as knative-style tables (world + key -> creates, updates, deletes)."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.core.printers import row_cells
from skiff.core.reconcilers.endpointslice import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MAX_ENDPOINTS_PER_SLICE,
    SERVICE_NAME_LABEL,
    EndpointSliceReconciler,
    desired_endpoints,
    plan,
)
from tabletest import Row, run

Obj = dict[str, Any]
NOW_PODS = "2026-01-01T00:00:00Z"


def service(name: str = "web", **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "uid": f"{name}-uid"},
            "spec": {"selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "targetPort": "http",
                                "protocol": "TCP"}], **spec}}


def pod(name: str, ready: bool = True, port: int = 8080, ip: str = "127.0.0.1",
        **extra: Any) -> Obj:
    meta = {"name": name, "namespace": "default", "uid": f"{name}-uid",
            "labels": {"app": "web"}, **extra.pop("meta", {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": "skiff", **extra,
                     "containers": [{"name": "c", "image": "hello",
                                     "ports": [{"name": "http", "containerPort": port}]}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def endpoint(name: str, ready: bool = True, terminating: bool = False) -> Obj:
    return {"addresses": ["127.0.0.1"],
            "conditions": {"ready": ready, "serving": ready, "terminating": terminating},
            "targetRef": {"kind": "Pod", "namespace": "default", "name": name,
                          "uid": f"{name}-uid"}, "nodeName": "skiff"}


HTTP = [{"name": "http", "port": 8080, "protocol": "TCP"}]


def managed(name: str, endpoints: list[Obj], ports: list[Obj] | None = None,
            svc: str = "web") -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default",
                         "labels": {SERVICE_NAME_LABEL: svc, MANAGED_BY_LABEL: MANAGED_BY},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": svc,
                                              "uid": f"{svc}-uid", "controller": True,
                                              "blockOwnerDeletion": True}]},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": HTTP if ports is None else ports}


# --- pure ---------------------------------------------------------------------------------------

def test_pods_sharing_an_address_stay_two_endpoints() -> None:
    p = plan(service(), [pod("a"), pod("b")], [])
    assert len(p.creates) == 1
    s = p.creates[0]
    assert [e["targetRef"]["name"] for e in s["endpoints"]] == ["a", "b"]
    assert s["ports"] == HTTP and s["metadata"]["generateName"] == "web-"
    assert s["metadata"]["ownerReferences"][0]["controller"] is True


def test_conditions_follow_readiness_termination_and_publish_not_ready() -> None:
    dying = pod("c", meta={"deletionTimestamp": NOW_PODS})
    eps = plan(service(), [pod("a", ready=False), dying], []).creates[0]["endpoints"]
    assert [e["conditions"] for e in eps] == [
        {"ready": False, "serving": False, "terminating": False},
        {"ready": False, "serving": True, "terminating": True}]
    eps = plan(service(publishNotReadyAddresses=True), [pod("a", ready=False)], []).creates[0][
        "endpoints"]
    assert eps[0]["conditions"]["ready"] is True


def test_pods_without_an_ip_finished_or_unselected_are_left_out() -> None:
    no_ip = pod("a")
    no_ip["status"] = {"phase": "Pending"}
    done = pod("b")
    done["status"]["phase"] = "Succeeded"
    other = pod("c", meta={"labels": {"app": "other"}})
    assert plan(service(), [no_ip, done, other], []).creates[0]["endpoints"] == []


def test_named_target_ports_resolve_per_pod_into_separate_slices() -> None:
    p = plan(service(), [pod("a", port=8080), pod("b", port=9090)], [])
    assert sorted(s["ports"][0]["port"] for s in p.creates) == [8080, 9090]


def test_hostname_only_for_pods_of_the_services_subdomain() -> None:
    eps = plan(service(), [pod("a", hostname="a", subdomain="web"),
                           pod("b", hostname="b", subdomain="other")], []).creates[0]["endpoints"]
    assert [e.get("hostname") for e in eps] == ["a", None]


def test_at_most_100_endpoints_per_slice() -> None:
    pods = [pod(f"p{i:03}") for i in range(MAX_ENDPOINTS_PER_SLICE + 1)]
    p = plan(service(), pods, [])
    assert [len(s["endpoints"]) for s in p.creates] == [MAX_ENDPOINTS_PER_SLICE, 1]


def test_unchanged_slices_are_not_written_and_a_new_pod_joins_its_slice() -> None:
    have = managed("web-abcde", [endpoint("a")])
    assert plan(service(), [pod("a")], [have]).__dict__ == {"creates": [], "updates": [],
                                                           "deletes": []}
    p = plan(service(), [pod("a"), pod("b")], [have])
    assert not p.creates and not p.deletes
    assert [e["targetRef"]["name"] for e in p.updates[0]["endpoints"]] == ["a", "b"]


def test_no_selector_no_slices_and_no_pods_a_placeholder() -> None:
    assert plan(service(selector=None), [pod("a")], [managed("web-x", [])]).deletes == ["web-x"]
    p = plan(service(), [], [managed("web-x", [endpoint("a")])])
    assert p.deletes == ["web-x"] and p.creates[0]["endpoints"] == [] and \
        p.creates[0]["ports"] == []


def test_endpoints_mirror_the_slices() -> None:
    ep = desired_endpoints(service(), [pod("a"), pod("b", ready=False),
                                       pod("c", meta={"deletionTimestamp": NOW_PODS})])
    assert [[a["targetRef"]["name"] for a in ss.get("addresses", [])] for ss in ep["subsets"]] == \
        [["a"]]
    assert [a["targetRef"]["name"] for a in ep["subsets"][0]["notReadyAddresses"]] == ["b"]
    assert ep["subsets"][0]["ports"] == HTTP
    assert "subsets" not in desired_endpoints(service(), [])


# --- printers --------------------------------------------------------------------------------------

def test_kubectl_columns() -> None:
    from datetime import UTC, datetime

    from skiff.core import builtin_kinds
    kinds = {k.kind: k for k in builtin_kinds.KINDS}
    now = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    s = managed("web-abcde", [endpoint(f"p{i}") for i in range(5)])
    s["metadata"]["creationTimestamp"] = NOW_PODS
    assert row_cells(kinds["EndpointSlice"], s, now) == [
        "web-abcde", "IPv4", "8080", "127.0.0.1,127.0.0.1,127.0.0.1 + 2 more...", "5m"]
    empty = managed("web-x", [], ports=[])
    empty["metadata"]["creationTimestamp"] = NOW_PODS
    assert row_cells(kinds["EndpointSlice"], empty, now)[2:4] == ["<unset>", "<unset>"]
    ep = desired_endpoints(service(), [pod("a")])
    ep["metadata"]["creationTimestamp"] = NOW_PODS
    assert row_cells(kinds["Endpoints"], ep, now) == ["web", "127.0.0.1:8080", "5m"]
    assert row_cells(kinds["Endpoints"], {"metadata": {"name": "x"}}, now)[1] == "<none>"


# --- tables ----------------------------------------------------------------------------------------

ENDPOINTS_OBJ = {"apiVersion": "v1", "kind": "Endpoints",
                 "metadata": {"name": "web", "namespace": "default"},
                 "subsets": [{"addresses": [{"ip": "127.0.0.1", "nodeName": "skiff",
                                             "targetRef": {"kind": "Pod", "namespace": "default",
                                                           "name": "a", "uid": "a-uid"}}],
                              "ports": HTTP}]}

ROWS = [
    Row("a Service and a ready pod: a slice and Endpoints", [service(), pod("a")], "default/web",
        want_creates=[{"kind": "EndpointSlice", "metadata": {"generateName": "web-"},
                       "endpoints": [endpoint("a")], "ports": HTTP},
                      {"kind": "Endpoints", "subsets": ENDPOINTS_OBJ["subsets"]}]),
    Row("steady: nothing written",
        [service(), pod("a"), managed("web-abcde", [endpoint("a")]), ENDPOINTS_OBJ],
        "default/web"),
    Row("the pod became unready: its slice and the Endpoints are updated",
        [service(), pod("a", ready=False), managed("web-abcde", [endpoint("a")]), ENDPOINTS_OBJ],
        "default/web",
        want_updates=[{"metadata": {"name": "web-abcde"},
                       "endpoints": [endpoint("a", ready=False)]},
                      {"kind": "Endpoints", "subsets": [{"notReadyAddresses": [
                          ENDPOINTS_OBJ["subsets"][0]["addresses"][0]], "ports": HTTP}]}]),
    Row("selector removed: the managed slices go, Endpoints are left to the user",
        [service(selector=None), managed("web-abcde", [endpoint("a")]), ENDPOINTS_OBJ],
        "default/web", want_deletes=[("EndpointSlice", "web-abcde")]),
    Row("an ExternalName Service gets no slices",
        [service(type="ExternalName", externalName="example.com"), pod("a")], "default/web"),
    Row("the service is gone: nothing to do (the GC takes owned slices)", [pod("a")],
        "default/web"),
    Row("slice writes fail: the error is returned", [service(), pod("a")], "default/web",
        fail_on=[("create", "EndpointSlice")],
        want_creates=[{"kind": "EndpointSlice"}], want_err="inducing failure"),
]


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_endpointslice_reconciler(row: Row) -> None:
    run(row, EndpointSliceReconciler)
