"""Service and Configuration reconcilers as knative/serving's tables: world + key -> writes."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.serving import crds
from skiff.serving.reconcilers.configuration import ConfigurationReconciler
from skiff.serving.reconcilers.service import ServiceReconciler
from tabletest import Row, run

Obj = dict[str, Any]
IMAGE = "docker.io/openshift/hello-openshift"
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
