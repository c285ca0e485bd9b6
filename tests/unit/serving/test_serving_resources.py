"""The children the serving reconcilers make, from their parents (old/new objects -> children)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from skiff.serving import resources, traffic
from skiff.serving.config import effective_config

CFG = effective_config(None, "apps.example.com")

SERVICE: dict[str, Any] = {
    "apiVersion": "serving.knative.dev/v1", "kind": "Service",
    "metadata": {"name": "hello", "namespace": "default", "uid": "svc-uid", "generation": 1,
                 "labels": {"team": "a"},
                 "annotations": {"serving.knative.openshift.io/enablePassthrough": "true",
                                 "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
    "spec": {
        "template": {"metadata": {"annotations": {"sidecar.istio.io/inject": "true"}},
                     "spec": {"containerConcurrency": 0, "timeoutSeconds": 300,
                              "containers": [{"name": "user-container", "image": "img",
                                              "readinessProbe": {"tcpSocket": {"port": 0},
                                                                 "successThreshold": 1}}]}},
        "traffic": [{"latestRevision": True, "percent": 90},
                    {"revisionName": "hello-00001", "latestRevision": False, "percent": 10,
                     "tag": "old"}],
    },
}


def test_make_configuration() -> None:
    c = resources.make_configuration(SERVICE)
    m = c["metadata"]
    assert (c["kind"], m["name"], m["namespace"]) == ("Configuration", "hello", "default")
    assert m["labels"] == {"team": "a", "serving.knative.dev/service": "hello",
                           "serving.knative.dev/serviceUID": "svc-uid"}
    assert m["annotations"] == {"serving.knative.openshift.io/enablePassthrough": "true",
                                "serving.knative.dev/routes": "hello"}
    assert m["ownerReferences"] == [{"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                                     "name": "hello", "uid": "svc-uid", "controller": True,
                                     "blockOwnerDeletion": True}]
    assert c["spec"] == {"template": SERVICE["spec"]["template"]}
    existing = {"metadata": {"annotations": {"serving.knative.dev/routes": "other"}}}
    assert resources.make_configuration(SERVICE, existing)["metadata"]["annotations"][
        "serving.knative.dev/routes"] == "hello,other"


def test_make_route_names_the_configuration_where_no_revision_is_pinned() -> None:
    r = resources.make_route(SERVICE)
    assert r["metadata"]["labels"] == {"team": "a", "serving.knative.dev/service": "hello"}
    assert "kubectl.kubernetes.io/last-applied-configuration" not in r["metadata"]["annotations"]
    assert r["spec"]["traffic"] == [
        {"latestRevision": True, "percent": 90, "configurationName": "hello"},
        {"revisionName": "hello-00001", "latestRevision": False, "percent": 10, "tag": "old"}]


def config_of(gen: int = 3, template_name: str = "") -> dict[str, Any]:
    c = resources.make_configuration(SERVICE)
    c["metadata"].update({"uid": "cfg-uid", "generation": gen})
    if template_name:
        c["spec"]["template"]["metadata"]["name"] = template_name
    return c


@pytest.mark.parametrize("gen, template_name, want", [
    (1, "", "hello-00001"), (3, "", "hello-00003"), (3, "hello-blue", "hello-blue")])
def test_make_revision_name(gen: int, template_name: str, want: str) -> None:
    assert resources.make_revision(config_of(gen, template_name), "now")["metadata"]["name"] == want


def test_make_revision_labels_and_annotations() -> None:
    r = resources.make_revision(config_of(), "2026-01-01T00:00:00Z")
    m = r["metadata"]
    assert m["labels"] == {
        "serving.knative.dev/configuration": "hello", "serving.knative.dev/service": "hello",
        "serving.knative.dev/configurationGeneration": "3",
        "serving.knative.dev/configurationUID": "cfg-uid",
        "serving.knative.dev/serviceUID": "svc-uid", "serving.knative.dev/routingState": "pending"}
    assert m["annotations"] == {"sidecar.istio.io/inject": "true",
                                "serving.knative.dev/routes": "hello",
                                "serving.knative.dev/routingStateModified": "2026-01-01T00:00:00Z"}
    assert m["ownerReferences"][0]["kind"] == "Configuration"
    assert r["spec"] == SERVICE["spec"]["template"]["spec"]


def revision(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
             containers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    r = resources.make_revision(config_of(), "now")
    r["metadata"]["uid"] = "rev-uid"
    r["metadata"]["labels"].update(labels or {})
    r["metadata"]["annotations"].update(annotations or {})
    if containers is not None:
        r["spec"]["containers"] = containers
    return r


def test_the_progress_deadline_annotation_wins_over_config_deployment() -> None:
    rev = revision(annotations={"serving.knative.dev/progress-deadline": "45s"})
    assert resources.make_deployment(rev, CFG)["spec"]["progressDeadlineSeconds"] == 45
    bad = revision(annotations={"serving.knative.dev/progress-deadline": "soon"})
    assert resources.make_deployment(bad, CFG)["spec"]["progressDeadlineSeconds"] == 600


def test_make_deployment() -> None:
    d = resources.make_deployment(revision(), CFG)
    m = d["metadata"]
    assert m["name"] == "hello-00003-deployment"
    assert m["ownerReferences"][0]["kind"] == "Revision"
    labels = m["labels"]
    assert labels["app"] == "hello-00003"
    assert labels["serving.knative.dev/revision"] == "hello-00003"
    assert labels["serving.knative.dev/revisionUID"] == "rev-uid"
    assert "serving.knative.dev/routingState" not in labels
    assert m["annotations"] == {"sidecar.istio.io/inject": "true"}
    spec = d["spec"]
    assert spec["selector"] == {"matchLabels": {"serving.knative.dev/revisionUID": "rev-uid"}}
    assert spec["replicas"] == 1 and spec["progressDeadlineSeconds"] == 600
    assert spec["template"]["metadata"]["labels"] == labels
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 300 and pod["enableServiceLinks"] is False
    assert "containerConcurrency" not in pod and "timeoutSeconds" not in pod
    c, q = pod["containers"]
    assert c["name"] == "user-container"
    assert c["ports"] == [{"name": "user-port", "containerPort": 8080}]
    assert c["env"] == [{"name": "PORT", "value": "8080"},
                        {"name": "K_REVISION", "value": "hello-00003"},
                        {"name": "K_CONFIGURATION", "value": "hello"},
                        {"name": "K_SERVICE", "value": "hello"}]
    # the readiness probe moved to queue-proxy; the app waits for its drain before it stops
    assert "readinessProbe" not in c
    assert c["lifecycle"] == {"preStop": {"httpGet": {"port": 8022, "path": "/wait-for-drain"}}}
    assert q["name"] == "queue-proxy"
    assert q["image"] == "gcr.io/knative-releases/knative.dev/serving/cmd/queue"
    assert [(p["name"], p["containerPort"]) for p in q["ports"]] == [
        ("http-queueadm", 8022), ("http-autometric", 9090), ("http-usermetric", 9091),
        ("queue-port", 8012)]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in q["env"]}
    assert env["SERVING_REVISION"] == "hello-00003" and env["USER_PORT"] == "8080"
    assert env["CONTAINER_CONCURRENCY"] == "0" and env["REVISION_TIMEOUT_SECONDS"] == "300"
    assert env["SERVING_POD"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert json.loads(env["SERVING_READINESS_PROBE"]) == {
        "tcpSocket": {"port": 8080}, "successThreshold": 1, "periodSeconds": 0}
    assert q["readinessProbe"]["httpGet"] == {
        "port": 8012, "httpHeaders": [{"name": "K-Network-Probe", "value": "queue"}]}
    assert q["resources"] == {"requests": {"cpu": "25m"}}


def test_queue_proxy_takes_the_users_probe_and_the_revisions_limits() -> None:
    r = revision(containers=[{"image": "a", "ports": [{"containerPort": 9000}],
                              "readinessProbe": {"httpGet": {"path": "/ready"},
                                                 "periodSeconds": 3}}])
    r["spec"]["containerConcurrency"] = 2
    r["spec"]["timeoutSeconds"] = 7
    q = resources.make_deployment(r, CFG)["spec"]["template"]["spec"]["containers"][1]
    env = {e["name"]: e.get("value") for e in q["env"]}
    assert env["CONTAINER_CONCURRENCY"] == "2" and env["REVISION_TIMEOUT_SECONDS"] == "7"
    assert env["USER_PORT"] == "9000"
    assert json.loads(env["SERVING_READINESS_PROBE"]) == {
        "httpGet": {"path": "/ready", "port": 9000}, "periodSeconds": 3, "successThreshold": 1}
    assert q["readinessProbe"]["periodSeconds"] == 3


def test_user_app_label_wins_and_port_follows_the_container() -> None:
    r = revision(labels={"app": "mine"}, containers=[
        {"name": "web", "image": "a", "ports": [{"containerPort": 9000, "name": "h2c"}],
         "env": [{"name": "A", "value": "1"}]},
        {"name": "side", "image": "b"}])
    d = resources.make_deployment(r, CFG)
    assert d["spec"]["template"]["metadata"]["labels"]["app"] == "mine"
    web, side, queue = d["spec"]["template"]["spec"]["containers"]
    assert queue["name"] == "queue-proxy"
    assert [p["name"] for p in queue["ports"]][-1] == "h2c"       # the port name says h2c
    assert web["ports"] == [{"name": "user-port", "containerPort": 9000}]
    assert [e["name"] for e in web["env"]] == ["A", "PORT", "K_REVISION", "K_CONFIGURATION",
                                               "K_SERVICE"]
    assert "ports" not in side and [e["name"] for e in side["env"]] == [
        "K_REVISION", "K_CONFIGURATION", "K_SERVICE"]


@pytest.mark.parametrize("annotations, state, config, want", [
    ({}, "pending", {}, 1),
    ({"autoscaling.knative.dev/initial-scale": "4"}, "pending", {}, 4),
    ({"autoscaling.knative.dev/initialScale": "2"}, "pending", {}, 2),
    # The KPA applies min-scale and the routing state afterwards; the Deployment starts at
    # the initial scale whatever they say.
    ({"autoscaling.knative.dev/min-scale": "3"}, "active", {}, 1),
    ({}, "reserve", {}, 1),
    ({}, "pending", {"autoscaler": {"initial-scale": "3"}}, 3),
    # 0 only where the cluster allows a zero initial scale.
    ({"autoscaling.knative.dev/initial-scale": "0"}, "pending", {}, 1),
    ({"autoscaling.knative.dev/initial-scale": "0"}, "pending",
     {"autoscaler": {"allow-zero-initial-scale": "true"}}, 0),
    # A config-autoscaler that does not parse: the defaults.
    ({}, "pending", {"autoscaler": {"initial-scale": "x"}}, 1),
])
def test_deployment_starts_at_the_initial_scale(annotations: dict[str, str], state: str,
                                                config: dict[str, Any], want: int) -> None:
    cfg = effective_config({"metadata": {}, "spec": {"config": config}}, "apps.example.com")
    r = revision(labels={"serving.knative.dev/routingState": state}, annotations=annotations)
    assert resources.make_deployment(r, cfg)["spec"]["replicas"] == want


def route_obj(labels: dict[str, str] | None = None,
              annotations: dict[str, str] | None = None) -> dict[str, Any]:
    r = resources.make_route(SERVICE)
    r["metadata"].update({"uid": "route-uid", "generation": 1})
    r["metadata"]["labels"].update(labels or {})
    r["metadata"]["annotations"].update(annotations or {})
    return r


def ready_rev(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "generation": 1,
                         "labels": {"serving.knative.dev/configuration": "hello"}},
            "spec": {}, "status": {"observedGeneration": 1,
                                   "conditions": [{"type": "Ready", "status": "True"}]}}


WORLD = ({"hello": {"metadata": {"name": "hello"},
                    "status": {"latestReadyRevisionName": "hello-00002"}}},
         {"hello-00001": ready_rev("hello-00001"), "hello-00002": ready_rev("hello-00002")})


def ingress_for(route: dict[str, Any], cfg: Any = CFG) -> dict[str, Any]:
    tc, err = traffic.build(route, *WORLD)
    assert err is None
    tc.visibility = traffic.visibility(route, cfg)
    return resources.make_ingress(route, tc, cfg)


def test_make_ingress() -> None:
    ing = ingress_for(route_obj())
    m = ing["metadata"]
    assert (m["name"], m["namespace"]) == ("hello", "default")
    assert m["labels"]["serving.knative.dev/route"] == "hello"
    assert m["labels"]["serving.knative.dev/routeNamespace"] == "default"
    assert m["annotations"] == {
        "networking.knative.dev/ingress.class": "kourier.ingress.networking.knative.dev",
        "serving.knative.openshift.io/enablePassthrough": "true"}
    assert m["ownerReferences"][0]["kind"] == "Route"
    spec = ing["spec"]
    assert spec["httpOption"] == "Enabled"
    assert [(r["visibility"], r["hosts"]) for r in spec["rules"]] == [
        ("ClusterLocal", ["hello.default", "hello.default.svc", "hello.default.svc.cluster.local"]),
        ("ExternalIP", ["hello-default.apps.example.com"]),
        ("ClusterLocal", ["old-hello.default", "old-hello.default.svc",
                          "old-hello.default.svc.cluster.local"]),
        ("ExternalIP", ["old-hello-default.apps.example.com"])]
    default_splits = spec["rules"][1]["http"]["paths"][0]["splits"]
    assert [(s["serviceName"], s["percent"]) for s in default_splits] == [
        ("hello-00002", 90), ("hello-00001", 10)]
    assert default_splits[0] == {
        "serviceNamespace": "default", "serviceName": "hello-00002", "servicePort": 80,
        "percent": 90, "appendHeaders": {"Knative-Serving-Revision": "hello-00002",
                                         "Knative-Serving-Namespace": "default"}}
    tag_splits = spec["rules"][3]["http"]["paths"][0]["splits"]
    assert [(s["serviceName"], s["percent"]) for s in tag_splits] == [("hello-00001", 100)]


def test_cluster_local_route_has_no_external_rule() -> None:
    ing = ingress_for(route_obj(labels={"networking.knative.dev/visibility": "cluster-local"}))
    assert {r["visibility"] for r in ing["spec"]["rules"]} == {"ClusterLocal"}


def test_route_annotations_choose_class_and_http_option() -> None:
    ing = ingress_for(route_obj(annotations={
        "networking.knative.dev/ingress.class": "istio.ingress.networking.knative.dev",
        "networking.knative.dev/http-protocol": "Redirected"}))
    assert ing["metadata"]["annotations"]["networking.knative.dev/ingress.class"] == \
        "istio.ingress.networking.knative.dev"
    assert ing["spec"]["httpOption"] == "Redirected"


def test_tag_header_based_routing() -> None:
    cfg = effective_config({"metadata": {}, "spec": {"config": {
        "features": {"tag-header-based-routing": "enabled"}}}}, "apps.example.com")
    rules = ingress_for(route_obj(), cfg)["spec"]["rules"]
    default_paths = rules[1]["http"]["paths"]
    assert default_paths[0]["headers"] == {"Knative-Serving-Tag": {"exact": "old"}}
    assert default_paths[1]["appendHeaders"] == {"Knative-Serving-Default-Route": "true"}
    assert rules[3]["http"]["paths"][0]["appendHeaders"] == {"Knative-Serving-Tag": "old"}


@pytest.mark.parametrize("routes, state, remove, is_rev, want", [
    ("", "pending", False, True, {"metadata": {
        "annotations": {"serving.knative.dev/routes": "r",
                        "serving.knative.dev/routingStateModified": "now"},
        "labels": {"serving.knative.dev/routingState": "active"}}}),
    ("r", "active", False, True, None),                    # already so: nothing to write
    ("r", "active", True, True, {"metadata": {
        "annotations": {"serving.knative.dev/routes": None,
                        "serving.knative.dev/routingStateModified": "now"},
        "labels": {"serving.knative.dev/routingState": "reserve"}}}),
    ("other,r", "active", True, True, {"metadata": {
        "annotations": {"serving.knative.dev/routes": "other"}}}),
    ("", "", False, False, {"metadata": {"annotations": {"serving.knative.dev/routes": "r"}}}),
    ("", "pending", True, True, None),                      # never ours: left alone
])
def test_routing_meta_patch(routes: str, state: str, remove: bool, is_rev: bool,
                            want: dict[str, Any] | None) -> None:
    obj: dict[str, Any] = {"metadata": {"labels": {}, "annotations": {}}}
    if routes:
        obj["metadata"]["annotations"]["serving.knative.dev/routes"] = routes
    if state:
        obj["metadata"]["labels"]["serving.knative.dev/routingState"] = state
    before = copy.deepcopy(obj)
    assert resources.routing_meta_patch(obj, "r", remove, is_rev, "now") == want
    assert obj == before
