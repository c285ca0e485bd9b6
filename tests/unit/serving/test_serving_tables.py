"""Service and Configuration reconcilers as knative/serving's tables: world + key -> writes."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.operator import crds as operator_crds
from skiff.serving import crds, resources
from skiff.serving.autoscaler.config import AutoscalerConfig
from skiff.serving.config import ConfigHolder, effective_config
from skiff.serving.reconcilers.configuration import ConfigurationReconciler
from skiff.serving.reconcilers.revision import RevisionReconciler
from skiff.serving.reconcilers.route import RouteReconciler
from skiff.serving.reconcilers.service import ServiceReconciler
from tabletest import Row, run

Obj = dict[str, Any]
IMAGE = "docker.io/openshift/hello-openshift"
DOMAIN = "apps.example.com"
TRAFFIC = [{"configurationName": "hello", "latestRevision": True, "percent": 100}]
SVC_OWNER = [{"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "hello",
              "uid": "svc-uid", "controller": True, "blockOwnerDeletion": True}]


def ksvc(**status: Any) -> Obj:
    # As the webhook leaves it: the default traffic target filled in.
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "hello", "namespace": "default", "uid": "svc-uid",
                         "generation": 1},
            "spec": {"template": {"spec": {"containers": [{"image": IMAGE}]}},
                     "traffic": TRAFFIC},
            **({"status": status} if status else {})}


def config(ready: str = "", **status: Any) -> Obj:
    st: Obj = {"observedGeneration": 1, **status}
    if ready:
        st["conditions"] = [{"type": "Ready", "status": ready}]
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Configuration",
            "metadata": {"name": "hello", "namespace": "default", "uid": "cfg-uid",
                         "generation": 1,
                         "labels": {"serving.knative.dev/service": "hello",
                                    "serving.knative.dev/serviceUID": "svc-uid"},
                         "annotations": {"serving.knative.dev/routes": "hello"},
                         "ownerReferences": SVC_OWNER},
            "spec": {"template": {"spec": {"containers": [{"image": IMAGE}]}}},
            "status": st}


def route(ready: str = "", **status: Any) -> Obj:
    st: Obj = {"observedGeneration": 1, **status}
    if ready:
        st["conditions"] = [{"type": "Ready", "status": ready}]
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Route",
            "metadata": {"name": "hello", "namespace": "default", "uid": "route-uid",
                         "generation": 1,
                         "labels": {"serving.knative.dev/service": "hello"},
                         "ownerReferences": SVC_OWNER},
            "spec": {"traffic": TRAFFIC},
            "status": st}


def conds(*triples: tuple[str, str, str]) -> list[Obj]:
    return [{"type": t, "status": s, **({"reason": r} if r else {})} for t, s, r in triples]


SERVICE_ROWS = [
    Row("a new Service gets its Configuration and Route", [ksvc()], "default/hello",
        want_creates=[{"kind": "Configuration", "metadata": {"name": "hello",
                                                            "ownerReferences": SVC_OWNER}},
                      {"kind": "Route", "metadata": {"name": "hello"},
                       "spec": {"traffic": TRAFFIC}}],
        want_status_updates=[{"status": {"conditions": conds(
            ("ConfigurationsReady", "Unknown", "OutOfDate"), ("Ready", "Unknown", "OutOfDate"),
            ("RoutesReady", "Unknown", "OutOfDate"))}}]),
    Row("ready children make the Service ready and copy their fields",
        [ksvc(), config("True", latestReadyRevisionName="hello-00001",
                        latestCreatedRevisionName="hello-00001"),
         route("True", url="https://hello-default.apps.example.com",
               traffic=[{"revisionName": "hello-00001", "percent": 100, "latestRevision": True}])],
        "default/hello",
        want_status_updates=[{"status": {
            "url": "https://hello-default.apps.example.com",
            "latestReadyRevisionName": "hello-00001",
            "conditions": conds(("ConfigurationsReady", "True", ""), ("Ready", "True", ""),
                                ("RoutesReady", "True", ""))}}]),
    Row("a Configuration the Service does not own stops it",
        [ksvc(), {**config(), "metadata": {**config()["metadata"], "ownerReferences": []}}],
        "default/hello",
        want_status_updates=[{"status": {"conditions": conds(
            ("ConfigurationsReady", "False", "NotOwned"), ("Ready", "False", "NotOwned"),
            ("RoutesReady", "Unknown", ""))}}]),
    # The status is written even when the reconcile fails (as knative's generated reconciler).
    Row("the Configuration cannot be created", [ksvc()], "default/hello",
        fail_on=[("create", "Configuration")], want_creates=[{"kind": "Configuration"}],
        want_status_updates=[{"status": {"observedGeneration": 1, "conditions": conds(
            ("ConfigurationsReady", "Unknown", ""), ("Ready", "Unknown", "NewObservedGenFailure"),
            ("RoutesReady", "Unknown", ""))}}],
        want_err="inducing failure"),
]


@pytest.mark.parametrize("row", SERVICE_ROWS, ids=str)
def test_service_reconciler(row: Row) -> None:
    run(row, ServiceReconciler, crds.KINDS)


CONFIG_ROWS = [
    Row("a new Configuration stamps out its first Revision", [config()], "default/hello",
        want_creates=[{"kind": "Revision",
                       "metadata": {"name": "hello-00001", "labels": {
                           "serving.knative.dev/configuration": "hello",
                           "serving.knative.dev/configurationGeneration": "1",
                           "serving.knative.dev/service": "hello"}}}],
        want_status_updates=[{"status": {"latestCreatedRevisionName": "hello-00001",
                                         "conditions": conds(("Ready", "Unknown", ""))}}]),
]


@pytest.mark.parametrize("row", CONFIG_ROWS, ids=str)
def test_configuration_reconciler(row: Row) -> None:
    run(row, ConfigurationReconciler, crds.KINDS)


# --- Revision and Route ------------------------------------------------------------------------

def revision(ready: bool = False, labels: dict[str, str] | None = None) -> Obj:
    # As the webhook leaves it: the container named.
    rev: Obj = {"apiVersion": "serving.knative.dev/v1", "kind": "Revision",
                "metadata": {"name": "hello-00001", "namespace": "default", "uid": "rev-uid",
                             "generation": 1,
                             "labels": {"serving.knative.dev/configuration": "hello",
                                        "serving.knative.dev/service": "hello",
                                        **(labels or {})}},
                "spec": {"containers": [{"name": "user-container", "image": IMAGE}]}}
    if ready:
        rev["status"] = {"observedGeneration": 1,
                         "conditions": [{"type": "Ready", "status": "True"}]}
    return rev


def deployment_of(replicas: int, image: str = IMAGE) -> Obj:
    """The revision's Deployment as the revision reconciler made it (for the image given)."""
    rev = revision()
    rev["spec"]["containers"][0]["image"] = image
    d = resources.make_deployment(rev, effective_config(None, DOMAIN))
    d["spec"]["replicas"] = replicas
    d["status"] = {"conditions": [{"type": "Progressing", "status": "True",
                                   "reason": "NewReplicaSetAvailable"}],
                   **({"readyReplicas": replicas, "availableReplicas": replicas}
                      if replicas else {})}
    return d


def pa_of(reachability: str = "", status: Obj | None = None) -> Obj:
    pa = resources.make_pa(revision(), AutoscalerConfig())
    if reachability:
        pa["spec"]["reachability"] = reachability
    if status:
        pa["status"] = status
    return pa


NOT_OURS = {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "hello-00001-deployment", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}},
                                  "spec": {"containers": [{"name": "c", "image": IMAGE}]}}}}

REVISION_ROWS = [
    Row("a new Revision gets its Deployment and says it is deploying", [revision()],
        "default/hello-00001",
        want_creates=[{"kind": "Deployment",
                       "metadata": {"name": "hello-00001-deployment",
                                    "labels": {"serving.knative.dev/revision": "hello-00001",
                                               "serving.knative.dev/revisionUID": "rev-uid"},
                                    "ownerReferences": [{"kind": "Revision", "uid": "rev-uid"}]},
                       "spec": {"replicas": 1}},
                      {"kind": "PodAutoscaler",
                       "metadata": {"name": "hello-00001",
                                    "annotations": {
                                        "autoscaling.knative.dev/class":
                                            "kpa.autoscaling.knative.dev",
                                        "autoscaling.knative.dev/metric": "concurrency"},
                                    "ownerReferences": [{"kind": "Revision", "uid": "rev-uid"}]},
                       "spec": {"containerConcurrency": 0, "protocolType": "http1",
                                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                                   "name": "hello-00001-deployment"}}}],
        want_status_updates=[{"status": {"conditions": conds(
            ("Active", "Unknown", "Deploying"), ("ContainerHealthy", "Unknown", "Deploying"),
            ("Ready", "Unknown", "Deploying"), ("ResourcesAvailable", "Unknown", "Deploying"))}}]),
    Row("a Deployment of that name that is not ours stops it", [revision(), NOT_OURS],
        "default/hello-00001",
        want_status_updates=[{"status": {"conditions": conds(
            ("ContainerHealthy", "Unknown", ""), ("Ready", "False", "NotOwned"),
            ("ResourcesAvailable", "False", "NotOwned"))}}]),
    Row("a PodAutoscaler of that name that is not ours stops it",
        [revision(), deployment_of(replicas=1), {**pa_of(), "metadata": {
            **pa_of()["metadata"], "ownerReferences": []}}],
        "default/hello-00001",
        want_status_updates=[{"status": {"conditions": conds(
            ("ContainerHealthy", "Unknown", ""), ("Ready", "False", "NotOwned"),
            ("ResourcesAvailable", "False", "NotOwned"))}}]),
    # The KPA owns spec.replicas: a changed Deployment keeps the scale it has, and the PA's
    # status is the revision's.
    Row("the Deployment keeps the KPA's replicas; the PA says scaled to zero",
        [revision(ready=True, labels={"serving.knative.dev/routingState": "reserve"}),
         deployment_of(replicas=0, image="old"), pa_of(reachability="Unreachable", status={
             "serviceName": "hello-00001", "desiredScale": 0, "actualScale": 0,
             "conditions": [
                 {"type": "Active", "status": "False", "reason": "NoTraffic",
                  "message": "The target is not receiving traffic."},
                 {"type": "Ready", "status": "False", "reason": "NoTraffic",
                  "message": "The target is not receiving traffic."},
                 {"type": "SKSReady", "status": "True"},
                 {"type": "ScaleTargetInitialized", "status": "True"}]})],
        "default/hello-00001",
        want_updates=[{"kind": "Deployment", "spec": {"replicas": 0, "template": {"spec": {
            "containers": [{"image": IMAGE}, {"name": "queue-proxy"}]}}}}],
        want_status_updates=[{"status": {
            "actualReplicas": 0, "desiredReplicas": 0,
            "conditions": [{"type": "Active", "status": "False", "reason": "NoTraffic",
                            "message": "The target is not receiving traffic."},
                           {"type": "ContainerHealthy", "status": "True"},
                           {"type": "Ready", "status": "True"},
                           {"type": "ResourcesAvailable", "status": "True"}]}}]),
]


@pytest.mark.parametrize("row", REVISION_ROWS, ids=str)
def test_revision_reconciler(row: Row) -> None:
    run(row, lambda c: RevisionReconciler(c, ConfigHolder(DOMAIN)), [*crds.KINDS, *operator_crds.KINDS])


ROUTE = {"apiVersion": "serving.knative.dev/v1", "kind": "Route",
         "metadata": {"name": "hello", "namespace": "default", "uid": "route-uid", "generation": 1},
         "spec": {"traffic": [{"revisionName": "hello-00001", "percent": 100}]}}
# Targeted by revisionName only: the Configuration carries no routes annotation of this Route.
CONFIG_READY = config("True", latestReadyRevisionName="hello-00001",
                      latestCreatedRevisionName="hello-00001")
CONFIG_READY["metadata"] = {k: v for k, v in CONFIG_READY["metadata"].items() if k != "annotations"}

ROUTE_ROWS = [
    Row("a ready Revision is routed: the KIngress, the status, the Revision marked active",
        [ROUTE, revision(ready=True), CONFIG_READY], "default/hello",
        want_creates=[{"kind": "Ingress", "metadata": {"name": "hello"},
                       "spec": {"rules": [
                           {"hosts": ["hello.default", "hello.default.svc",
                                      "hello.default.svc.cluster.local"],
                            "visibility": "ClusterLocal"},
                           {"hosts": [f"hello-default.{DOMAIN}"], "visibility": "ExternalIP"}]}}],
        want_status_updates=[{"status": {"url": f"https://hello-default.{DOMAIN}"}}],
        want_patches=[("Revision", "hello-00001",
                       {"metadata": {"labels": {"serving.knative.dev/routingState": "active"}}})]),
    Row("a Revision whose Configuration is gone is not routed", [ROUTE, revision(ready=True)],
        "default/hello",
        want_status_updates=[{"status": {"conditions": [
            {"type": "AllTrafficAssigned", "status": "False", "reason": "RevisionMissing",
             "message": 'Configuration "hello" referenced in traffic not found.'},
            {"type": "CertificateProvisioned"}, {"type": "IngressReady"},
            {"type": "Ready", "status": "False", "reason": "RevisionMissing"}]}}],
        want_patches=[("Revision", "hello-00001", {})]),
]


@pytest.mark.parametrize("row", ROUTE_ROWS, ids=str)
def test_route_reconciler(row: Row) -> None:
    run(row, lambda c: RouteReconciler(c, ConfigHolder(DOMAIN)), [*crds.KINDS, *operator_crds.KINDS])
