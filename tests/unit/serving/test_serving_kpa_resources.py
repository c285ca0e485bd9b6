"""The KPA's children from their parents: Revision -> PodAutoscaler -> ServerlessService, Metric,
and the SKS's public and private Services (upstream's pa_test.go, sks_test.go, metric_test.go)."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.serving import resources
from skiff.serving.autoscaler.config import AutoscalerConfig, parse_config
from skiff.serving.config import effective_config

ACFG = AutoscalerConfig()
REV_OWNER = {"apiVersion": "serving.knative.dev/v1", "kind": "Revision", "name": "hello-00001",
             "uid": "rev-uid", "controller": True, "blockOwnerDeletion": True}
PA_OWNER = {"apiVersion": "autoscaling.internal.knative.dev/v1alpha1", "kind": "PodAutoscaler",
            "name": "hello-00001", "uid": "pa-uid", "controller": True, "blockOwnerDeletion": True}


def revision(state: str = "", annotations: dict[str, str] | None = None, cc: int = 0,
             port_name: str = "", conds: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    labels = {"serving.knative.dev/configuration": "hello", "serving.knative.dev/service": "hello"}
    if state:
        labels["serving.knative.dev/routingState"] = state
    c: dict[str, Any] = {"name": "user-container", "image": "img"}
    if port_name:
        c["ports"] = [{"name": port_name, "containerPort": 8080}]
    r: dict[str, Any] = {
        "apiVersion": "serving.knative.dev/v1", "kind": "Revision",
        "metadata": {"name": "hello-00001", "namespace": "default", "uid": "rev-uid",
                     "labels": labels,
                     "annotations": {"serving.knative.dev/routes": "hello",
                                     "serving.knative.dev/routingStateModified": "now",
                                     **(annotations or {})}},
        "spec": {"containerConcurrency": cc, "containers": [c]}}
    if conds:
        r["status"] = {"conditions": conds}
    return r


def test_make_pa() -> None:
    pa = resources.make_pa(revision("active", {"autoscaling.knative.dev/min-scale": "1"}, cc=10),
                           ACFG)
    assert pa == {
        "apiVersion": "autoscaling.internal.knative.dev/v1alpha1", "kind": "PodAutoscaler",
        "metadata": {
            "name": "hello-00001", "namespace": "default",
            "labels": {"serving.knative.dev/configuration": "hello",
                       "serving.knative.dev/service": "hello",
                       "serving.knative.dev/revision": "hello-00001",
                       "serving.knative.dev/revisionUID": "rev-uid", "app": "hello-00001"},
            # The revision's, less the routing bookkeeping; class and metric defaulted.
            "annotations": {"autoscaling.knative.dev/min-scale": "1",
                            "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
                            "autoscaling.knative.dev/metric": "concurrency"},
            "ownerReferences": [REV_OWNER]},
        "spec": {"containerConcurrency": 10,
                 "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                    "name": "hello-00001-deployment"},
                 "protocolType": "http1", "reachability": "Reachable"}}


@pytest.mark.parametrize("rev, want", [
    (revision("active"), "Reachable"),
    (revision("reserve"), "Unreachable"),
    (revision("pending"), None),                        # upstream's ReachabilityUnknown: ""
    (revision(), None),
    (revision("active", conds=[{"type": "ContainerHealthy", "status": "False"}]), "Unreachable"),
    (revision("active", conds=[{"type": "ResourcesAvailable", "status": "False"}]), "Unreachable"),
    (revision("active", conds=[{"type": "ResourcesAvailable", "status": "Unknown"}]), "Reachable"),
])
def test_pa_reachability(rev: dict[str, Any], want: str | None) -> None:
    assert resources.make_pa(rev, ACFG)["spec"].get("reachability") == want


def test_pa_keeps_the_users_class_and_metric_and_follows_the_config() -> None:
    hpa = resources.make_pa(revision(annotations={
        "autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev"}), ACFG)
    assert hpa["metadata"]["annotations"]["autoscaling.knative.dev/metric"] == "cpu"
    rps = resources.make_pa(revision(annotations={"autoscaling.knative.dev/metric": "rps"}), ACFG)
    assert rps["metadata"]["annotations"]["autoscaling.knative.dev/metric"] == "rps"
    other = resources.make_pa(revision(), AutoscalerConfig(pod_autoscaler_class="x.example.com"))
    assert other["metadata"]["annotations"] == {"autoscaling.knative.dev/class": "x.example.com"}
    assert resources.make_pa(revision(port_name="h2c"), ACFG)["spec"]["protocolType"] == "h2c"


def pa_obj() -> dict[str, Any]:
    pa = resources.make_pa(revision("active"), ACFG)
    pa["metadata"]["uid"] = "pa-uid"
    pa["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
    return pa


def test_make_sks() -> None:
    sks = resources.make_sks(pa_obj(), "Proxy", 3)
    assert sks["apiVersion"] == "networking.internal.knative.dev/v1alpha1"
    assert sks["kind"] == "ServerlessService"
    m = sks["metadata"]
    assert (m["name"], m["namespace"], m["ownerReferences"]) == ("hello-00001", "default",
                                                                 [PA_OWNER])
    assert m["labels"] == pa_obj()["metadata"]["labels"]
    assert "kubectl.kubernetes.io/last-applied-configuration" not in m["annotations"]
    assert sks["spec"] == {"protocolType": "http1", "mode": "Proxy", "numActivators": 3,
                           "objectRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                         "name": "hello-00001-deployment"}}
    assert resources.make_sks(pa_obj())["spec"]["mode"] == "Serve"


@pytest.mark.parametrize("data, window_ann, want", [
    ({}, None, (60_000_000_000, 6_000_000_000)),
    ({"stable-window": "6s"}, None, (6_000_000_000, 1_000_000_000)),   # at least one bucket
    ({"stable-window": "20s", "panic-window-percentage": "50"}, None,
     (20_000_000_000, 10_000_000_000)),
    ({}, "10s", (10_000_000_000, 1_000_000_000)),
])
def test_make_metric(data: dict[str, str], window_ann: str | None, want: tuple[int, int]) -> None:
    from skiff.serving.autoscaler.config import resolve
    pa = pa_obj()
    if window_ann:
        pa["metadata"]["annotations"]["autoscaling.knative.dev/window"] = window_ann
    s = resolve(pa["metadata"]["annotations"], 0, parse_config(data))
    metric = resources.make_metric(pa, s.stable_window, s.panic_window, "hello-00001-private")
    assert metric["kind"] == "Metric" and metric["metadata"]["ownerReferences"] == [PA_OWNER]
    assert metric["spec"] == {"stableWindow": want[0], "panicWindow": want[1],
                              "scrapeTarget": "hello-00001-private"}


def test_sks_services() -> None:
    sks = resources.make_sks(pa_obj())
    sks["metadata"]["uid"] = "sks-uid"
    sel = {"serving.knative.dev/revisionUID": "rev-uid"}
    pub = resources.make_public_service(sks, sel, 8080)
    priv = resources.make_private_service(sks, sel, 9000)
    assert pub["metadata"]["name"] == "hello-00001"
    assert priv["metadata"]["name"] == "hello-00001-private"
    assert pub["metadata"]["labels"]["networking.internal.knative.dev/serviceType"] == "Public"
    assert priv["metadata"]["labels"]["networking.internal.knative.dev/serviceType"] == "Private"
    assert priv["metadata"]["labels"]["networking.internal.knative.dev/serverlessservice"] == \
        "hello-00001"
    assert pub["metadata"]["ownerReferences"][0]["kind"] == "ServerlessService"
    assert pub["spec"] == {"type": "ClusterIP", "selector": sel, "ports": [
        {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]}
    assert priv["spec"]["ports"] == [{"name": "http", "protocol": "TCP", "port": 80,
                                      "targetPort": 9000}]
    sks["spec"]["protocolType"] = "h2c"
    assert resources.make_public_service(sks, sel, 8080)["spec"]["ports"][0] == {
        "name": "http2", "protocol": "TCP", "port": 81, "targetPort": 8080}


def test_autoscaler_config_from_the_knative_serving() -> None:
    ok = effective_config({"metadata": {}, "spec": {"config": {"autoscaler": {
        "stable-window": "6s", "scale-to-zero-grace-period": "6s"}}}}, "apps.example.com")
    acfg, err = resources.autoscaler_config_or_error(ok)
    assert (acfg.stable_window, acfg.scale_to_zero_grace_period, err) == (6.0, 6.0, "")
    bad = effective_config({"metadata": {}, "spec": {"config": {"autoscaler": {
        "stable-window": "2s"}}}}, "apps.example.com")
    acfg, err = resources.autoscaler_config_or_error(bad)
    assert acfg == AutoscalerConfig()
    assert err == "stable-window = 2s, must be in [6s; 1h0m0s] range"
