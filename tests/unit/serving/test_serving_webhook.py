"""Serving admission: upstream's defaults and validation messages (object + old -> result)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from skiff.serving import webhook
from skiff.serving.config import effective_config

CFG = effective_config(None, "apps.example.com")


def svc(spec: dict[str, Any] | None = None, name: str = "hello",
        labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
        template_meta: dict[str, Any] | None = None) -> dict[str, Any]:
    tmpl: dict[str, Any] = {"spec": spec if spec is not None else {"containers": [{"image": "img"}]}}
    if template_meta:
        tmpl["metadata"] = template_meta
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "labels": labels or {},
                         "annotations": annotations or {}},
            "spec": {"template": tmpl}}


def defaulted(obj: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    webhook.default_service(obj, old, CFG)
    return obj


def test_service_defaults() -> None:
    s = defaulted(svc())
    assert s["spec"]["traffic"] == [{"percent": 100, "latestRevision": True}]
    assert s["spec"]["template"]["spec"] == {
        "timeoutSeconds": 300, "containerConcurrency": 0, "enableServiceLinks": False,
        "containers": [{"image": "img", "name": "user-container", "resources": {},
                        "readinessProbe": {"tcpSocket": {"port": 0}, "successThreshold": 1}}]}
    assert defaulted(s) == s                                   # idempotent


def test_defaults_keep_what_the_user_set() -> None:
    s = defaulted(svc({"timeoutSeconds": 60, "containerConcurrency": 5, "containers": [
        {"name": "app", "image": "img", "readinessProbe": {
            "httpGet": {"path": "/healthz"}, "periodSeconds": 2}}]}))
    spec = s["spec"]["template"]["spec"]
    assert (spec["timeoutSeconds"], spec["containerConcurrency"]) == (60, 5)
    assert spec["containers"][0]["name"] == "app"
    assert spec["containers"][0]["readinessProbe"] == {
        "httpGet": {"path": "/healthz"}, "periodSeconds": 2, "successThreshold": 1,
        "failureThreshold": 3, "timeoutSeconds": 1}


def test_multi_container_names_and_probe_only_on_the_serving_one() -> None:
    s = defaulted(svc({"containers": [{"image": "a", "ports": [{"containerPort": 8000}]},
                                      {"image": "b"}, {"name": "user-container-1", "image": "c"}]}))
    cs = s["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in cs] == ["user-container-0", "user-container-2", "user-container-1"]
    assert "readinessProbe" in cs[0] and "readinessProbe" not in cs[1]


def test_enable_service_links_only_on_create() -> None:
    old = defaulted(svc())
    assert "enableServiceLinks" not in defaulted(svc(), old)["spec"]["template"]["spec"]


def messages(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    obj = defaulted(obj, old)
    # As kubectl prints causes: `field: message`.
    return [f"{c.field}: {c.message}" if c.field else c.message
            for c in webhook.validate_service(obj, old, CFG)]


@pytest.mark.parametrize("spec, want", [
    ({"containers": [{"image": "img"}], "timeoutSeconds": 700},
     ["spec.template.spec.timeoutSeconds: expected 0 <= 700 <= 600"]),
    ({"containers": [{"image": "img"}], "containerConcurrency": 1001},
     ["spec.template.spec.containerConcurrency: expected 0 <= 1001 <= 1000"]),
    ({"containers": [{"image": "img"}], "timeoutSeconds": 10, "responseStartTimeoutSeconds": 11},
     ["spec.template.spec.responseStartTimeoutSeconds: expected 0 <= 11 <= 10"]),
    ({"containers": [{"image": "img"}], "idleTimeoutSeconds": 601},
     ["spec.template.spec.idleTimeoutSeconds: expected 0 <= 601 <= 600"]),
    ({"containers": [{"image": "img"}], "idleTimeoutSeconds": -1},
     ["spec.template.spec.idleTimeoutSeconds: expected 0 <= -1 <= 600"]),
    # Defaulting runs first (name, probe), so an empty container misses its image.
    ({"containers": [{}]}, ["spec.template.spec.containers[0].image: missing field(s)"]),
    ({"containers": [{"name": "x"}]}, ["spec.template.spec.containers[0].image: missing field(s)"]),
    ({"containers": []}, ["spec.template.spec.containers: missing field(s)"]),
    ({"containers": [{"image": "a"}, {"image": "b"}]},
     ["spec.template.spec.containers[*].ports: missing field(s)"]),
    ({"containers": [{"image": "a", "ports": [{"containerPort": 1}]},
                     {"image": "b", "ports": [{"containerPort": 2}]}]},
     ["spec.template.spec.containers[*].ports: more than one container port is set\n"
      "Only a single port is allowed across all containers"]),
    ({"containers": [{"image": "a", "env": [{"name": "K_SERVICE", "value": "x"}]}]},
     ['spec.template.spec.containers[0].env[0].name: "K_SERVICE" is a reserved environment '
      "variable"]),
    ({"containers": [{"image": "a", "name": "queue-proxy"}]},
     ['spec.template.spec.containers[0].name: "queue-proxy" is a reserved container name']),
    ({"containers": [{"image": "a", "ports": [{"containerPort": 8012}]}]},
     ["spec.template.spec.containers[0].ports.containerPort: invalid value: 8012 is a reserved "
      "port\n8012 is a reserved port, please use a different value"]),
    ({"containers": [{"image": "a", "ports": [{"containerPort": 80, "name": "web"}]}]},
     ["spec.template.spec.containers[0].ports: Port name web is not allowed\n"
      "Name must be empty, or one of: 'h2c', 'http1'"]),
    ({"containers": [{"image": "a", "readinessProbe": {"tcpSocket": {"port": 0},
                                                         "failureThreshold": 3}}]},
     ["spec.template.spec.containers[0].readinessProbe.failureThreshold: failureThreshold is "
      "disallowed when periodSeconds is zero"]),
])
def test_revision_spec_validation(spec: dict[str, Any], want: list[str]) -> None:
    assert messages(svc(spec)) == want


@pytest.mark.parametrize("meta, want", [
    ({"name": "hello-v1"}, []),
    ({"name": "other-v1"},
     ['spec.template.metadata.name: invalid value: "other-v1" must have prefix "hello-"']),
    ({"name": "hello_v1"}, ["spec.template.metadata.name: invalid value: not a DNS 1035 label: "]),
    ({"annotations": {"autoscaling.knative.dev/min-scale": "-1"}},
     ["spec.template.metadata.annotations.autoscaling.knative.dev/min-scale: "
      "expected 0 <= -1 <= 2147483647"]),
    ({"annotations": {"autoscaling.knative.dev/min-scale": "3",
                      "autoscaling.knative.dev/max-scale": "2"}},
     ["spec.template.metadata.annotations.autoscaling.knative.dev/max-scale: "
      "max-scale=2 is less than min-scale=3: "
      "spec.template.metadata.annotations.autoscaling.knative.dev/max-scale, "
      "spec.template.metadata.annotations.autoscaling.knative.dev/min-scale"]),
    # Upstream folds the reason into the path here.
    ({"annotations": {"autoscaling.knative.dev/initial-scale": "0"}},
     ["spec.template.metadata.annotations.autoscaling.knative.dev/initial-scale=0 not allowed "
      "by cluster: invalid value: 0"]),
    ({"annotations": {"autoscaling.knative.dev/window": "2s"}},
     ["spec.template.metadata.annotations.autoscaling.knative.dev/window: "
      "expected 6s <= 2s <= 1h0m0s"]),
    ({"annotations": {"autoscaling.knative.dev/target": "0"}},
     ["spec.template.metadata.annotations.autoscaling.knative.dev/target: "
      "target 0 should be at least 0.01"]),
    ({"annotations": {"autoscaling.knative.dev/metric": "cpu"}},
     ["spec.template.metadata.annotations.autoscaling.knative.dev/metric: invalid value: cpu"]),
    ({"annotations": {"autoscaling.knative.dev/class": "foo.autoscaling.knative.dev"}},
     ["spec.template.metadata.annotations.autoscaling.knative.dev/class: "
      "invalid value: foo.autoscaling.knative.dev"]),
    ({"annotations": {"autoscaling.knative.dev/activation-scale": "1"}},
     ["spec.template.metadata.annotations.autoscaling.knative.dev/activation-scale: "
      "activation-scale=1 must be greater than 1"]),
    ({"annotations": {"autoscaling.knative.dev/scale-down-delay": "1.5s"}},
     ["spec.template.metadata.annotations.autoscaling.knative.dev/scale-down-delay: "
      "must be specified with at most second precision"]),
    ({"annotations": {"autoscaling.knative.dev/panic-window-percentage": "0.5"}},
     ["spec.template.metadata.annotations.autoscaling.knative.dev/panic-window-percentage: "
      "expected 1 <= 0.5 <= 100"]),
])
def test_template_metadata_validation(meta: dict[str, Any], want: list[str]) -> None:
    got = messages(svc(template_meta=meta))
    assert len(got) == len(want) and all(g.startswith(w) for g, w in zip(got, want, strict=True))


def test_service_labels_and_annotations() -> None:
    assert messages(svc(labels={"networking.knative.dev/visibility": "public"})) == [
        "metadata.labels.networking.knative.dev/visibility: invalid value: public"]
    assert messages(svc(labels={"serving.knative.dev/route": "x"})) == [
        'metadata.labels: invalid key name "serving.knative.dev/route"']
    assert messages(svc(annotations={"autoscaling.knative.dev/min-scale": "1"})) == [
        'metadata.annotations: invalid key name "autoscaling.knative.dev/min-scale"\n'
        'autoscaling annotations must be put under "spec.template.metadata.annotations" to work']


def test_byo_name_must_change_with_the_template() -> None:
    old = defaulted(svc(template_meta={"name": "hello-v1"}))
    changed = svc({"containers": [{"image": "other"}]}, template_meta={"name": "hello-v1"})
    (msg,) = messages(changed, old)
    assert msg.startswith("spec.template.metadata.name: Saw the following changes without a name "
                          "change (-old +new)\n")
    assert 'spec.containers[0].image:\n\t-: "img"\n\t+: "other"' in msg
    renamed = svc({"containers": [{"image": "other"}]}, template_meta={"name": "hello-v2"})
    assert messages(renamed, old) == []
    # Traffic alone may change under the same name.
    same = copy.deepcopy(old)
    same["spec"]["traffic"] = [{"latestRevision": True, "percent": 100, "tag": "t"}]
    assert messages(same, old) == []


def test_status_updates_are_not_revalidated() -> None:
    # Admitted before the limit was lowered: a status write must still go through.
    old = defaulted(svc({"containers": [{"image": "img"}], "timeoutSeconds": 500}))
    new = copy.deepcopy(old)
    new["status"] = {"observedGeneration": 1}
    strict = effective_config({"metadata": {}, "spec": {"config": {"defaults": {
        "max-revision-timeout-seconds": "400"}}}}, "apps.example.com")
    assert webhook.validate_service(new, old, strict) == []
    assert webhook.validate_service(new, None, strict) != []


def revision(spec: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "hello-00001", "namespace": "default", "labels": labels or {},
                         "ownerReferences": [{"kind": "Configuration", "name": "hello"}]},
            "spec": spec}


def test_revision_spec_is_immutable_and_labels_are_checked() -> None:
    old = revision({"containers": [{"image": "a"}]})
    new = revision({"containers": [{"image": "b"}]})
    (c,) = webhook.validate_revision(new, old, CFG)
    assert c.field == "spec"
    assert c.message.startswith("Immutable fields changed (-old +new)\n")
    assert webhook.validate_revision(revision({"containers": [{"image": "a"}]},
                                              {"serving.knative.dev/configuration": "hello",
                                               "serving.knative.dev/routingState": "active"}),
                                     old, CFG) == []
    (c,) = webhook.validate_revision(revision({"containers": [{"image": "a"}]},
                                              {"serving.knative.dev/configuration": "other"}),
                                     old, CFG)
    assert (c.field, c.message) == ("metadata.labels.serving.knative.dev/configuration",
                                    "missing field(s)")


def test_route_traffic_needs_a_target() -> None:
    route: dict[str, Any] = {"metadata": {"name": "r", "namespace": "default"},
             "spec": {"traffic": [{"percent": 100}]}}
    webhook.default_route(route, None, CFG)
    assert route["spec"]["traffic"] == [{"percent": 100, "latestRevision": True}]
    (c,) = webhook.validate_route(route, None, CFG)
    assert (c.field, c.message) == ("spec.traffic[0].revisionName",
                                    "expected exactly one, got neither: spec.traffic[0].revisionName, "
                                    "spec.traffic[0].configurationName")


def test_configuration_validation() -> None:
    cfg: dict[str, Any] = {"metadata": {"name": "c", "namespace": "default",
                        "labels": {"serving.knative.dev/service": "s"}},
           "spec": {"template": {"spec": {"containers": [{"image": "i"}]}}}}
    webhook.default_configuration(cfg, None, CFG)
    (c,) = webhook.validate_configuration(cfg, None, CFG)
    assert (c.field, c.message) == ("metadata.labels.serving.knative.dev/service",
                                    "missing field(s)")
    cfg["metadata"]["ownerReferences"] = [{"kind": "Service", "name": "s"}]
    assert webhook.validate_configuration(cfg, None, CFG) == []


def test_annotations_follow_the_live_config_autoscaler() -> None:
    ann = {"autoscaling.knative.dev/initial-scale": "0", "autoscaling.knative.dev/max-scale": "20"}
    cfg = effective_config({"metadata": {}, "spec": {"config": {"autoscaler": {
        "allow-zero-initial-scale": "true", "max-scale-limit": "10", "max-scale": "5"}}}},
        "apps.example.com")
    got = [f"{c.field}: {c.message}" for c in webhook.validate_service(
        defaulted(svc(template_meta={"annotations": ann})), None, cfg)]
    assert got == ["spec.template.metadata.annotations.autoscaling.knative.dev/max-scale: "
                   "expected 1 <= 20 <= 10"]


def pa(annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "autoscaling.internal.knative.dev/v1alpha1", "kind": "PodAutoscaler",
            "metadata": {"name": "hello-00001", "namespace": "default",
                         "annotations": annotations or {}},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": "hello-00001-deployment"},
                     "protocolType": "http1", **spec}}


@pytest.mark.parametrize("obj, want", [
    (pa(), []),
    (pa({"autoscaling.knative.dev/min-scale": "x"}),
     ["metadata.annotations.autoscaling.knative.dev/min-scale: invalid value: x"]),
    (pa(scaleTargetRef={"kind": "Deployment"}),
     ["spec.scaleTargetRef.apiVersion: missing field(s): spec.scaleTargetRef.apiVersion, "
      "spec.scaleTargetRef.name"]),
    (pa(containerConcurrency=1001),
     ["spec.containerConcurrency: expected 0 <= 1001 <= 1000"]),
    (pa(protocolType="http3"), ["spec.protocolType: invalid value: http3"]),
])
def test_pod_autoscaler_validation(obj: dict[str, Any], want: list[str]) -> None:
    got = [f"{c.field}: {c.message}" for c in webhook.validate_pod_autoscaler(obj, None, CFG)]
    assert got == want
    # A status update does not re-validate.
    assert webhook.validate_pod_autoscaler(obj, copy.deepcopy(obj), CFG) == []
