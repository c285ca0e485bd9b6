"""mesh/gateway/controller.py's pure helpers: which changes recompile (fingerprints) and how
status is written (conditions keep their lastTransitionTime while their status holds)."""

from __future__ import annotations

import copy
from typing import Any

from skiff.mesh.gateway.controller import (
    _condition_dicts,
    _same_status,
    fp_gateway,
    fp_ingress,
    fp_pod,
    fp_secret,
    ingress_status,
)
from skiff.mesh.gateway.snapshot import Condition, IngressStatus

INGRESS: dict[str, Any] = {
    "metadata": {"name": "hello", "namespace": "default", "generation": 1,
                 "creationTimestamp": "2026-01-01T00:00:00Z",
                 "annotations": {"networking.knative.dev/ingress.class":
                                 "istio.ingress.networking.knative.dev"}},
    "spec": {"rules": [{"hosts": ["a"], "http": {"paths": [{"splits": []}]}}]},
}


def test_status_only_writes_do_not_recompile() -> None:
    with_status = copy.deepcopy(INGRESS)
    with_status["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    with_status["metadata"]["resourceVersion"] = "99"
    assert fp_ingress(with_status) == fp_ingress(INGRESS)
    passthrough = copy.deepcopy(INGRESS)
    passthrough["metadata"]["annotations"]["serving.knative.openshift.io/enablePassthrough"] = "true"
    assert fp_ingress(passthrough) != fp_ingress(INGRESS)
    respec = copy.deepcopy(INGRESS)
    respec["spec"]["rules"][0]["hosts"] = ["b"]
    assert fp_ingress(respec) != fp_ingress(INGRESS)
    gw = {"metadata": {"creationTimestamp": "t"}, "spec": {"servers": []}}
    assert fp_gateway({**gw, "status": {"conditions": []}}) == fp_gateway(gw)
    assert fp_secret({"data": {"tls.crt": "a"}}) != fp_secret({"data": {"tls.crt": "b"}})


def pod(ready: bool, port: str = "31001", rev: str | None = "hello-00001") -> dict[str, Any]:
    labels = {"serving.knative.dev/revision": rev} if rev else {}
    return {"metadata": {"labels": labels, "annotations": {"skiff.dev/port": port}},
            "status": {"podIP": "127.0.0.1", "phase": "Running",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_pod_fingerprint_is_about_endpoints_only() -> None:
    assert fp_pod(pod(True)) != fp_pod(pod(False))
    assert fp_pod(pod(True)) != fp_pod(pod(True, port="31002"))
    moved = pod(True)
    moved["status"]["containerStatuses"] = [{"restartCount": 1}]
    assert fp_pod(moved) == fp_pod(pod(True))
    assert fp_pod(pod(True, rev=None)) is None


def test_conditions_keep_their_transition_time_while_status_holds() -> None:
    old = [{"type": "Ready", "status": "True", "lastTransitionTime": "T0"},
           {"type": "LoadBalancerReady", "status": "False", "lastTransitionTime": "T0"}]
    out = _condition_dicts((Condition("Ready", "True"), Condition("LoadBalancerReady", "True"),
                            Condition("NetworkConfigured", "True")), old, "T1")
    assert [(c["type"], c["lastTransitionTime"]) for c in out] == [
        ("Ready", "T0"), ("LoadBalancerReady", "T1"), ("NetworkConfigured", "T1")]


def test_ingress_status_shape_and_comparison() -> None:
    st = IngressStatus((Condition("Ready", "True"),), "pub.svc", "priv.svc", 3)
    want = ingress_status(st, {}, "T1")
    assert want == {"observedGeneration": 3,
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "T1"}],
                    "publicLoadBalancer": {"ingress": [{"domainInternal": "pub.svc"}]},
                    "privateLoadBalancer": {"ingress": [{"domainInternal": "priv.svc"}]}}
    later = ingress_status(st, want, "T2")
    assert _same_status(want, later)               # nothing to write a second time
    assert not _same_status(want, ingress_status(
        IngressStatus((Condition("Ready", "False", "DomainConflict"),), "pub.svc", "priv.svc", 3),
        want, "T2"))
