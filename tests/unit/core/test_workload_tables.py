"""Deployment and ReplicaSet reconcilers as tables: world + key -> the writes one reconcile makes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from skiff.core.reconcilers.deployment import (
    HASH_LABEL,
    REVISION,
    DeploymentReconciler,
    template_hash,
)
from skiff.core.reconcilers.replicaset import ReplicaSetReconciler
from tabletest import Row, run

Obj = dict[str, Any]
TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "docker.io/openshift/hello-openshift"}]}}


def deployment(replicas: int = 2, image: str = "docker.io/openshift/hello-openshift",
               **spec: Any) -> Obj:
    tmpl = copy.deepcopy(TEMPLATE)
    tmpl["spec"]["containers"][0]["image"] = image
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "dep-uid"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": tmpl, **spec}}


def hash_of(d: Obj) -> str:
    # the stored template is defaulted; hash what the reconciler will see
    from skiff.core.defaults import default_workload
    d = copy.deepcopy(d)
    default_workload("Deployment", d)
    return template_hash(d["spec"]["template"])


def replicaset(d: Obj, rev: int, replicas: int, available: int, uid: str = "rs-uid") -> Obj:
    from skiff.core.defaults import default_workload
    d = copy.deepcopy(d)
    default_workload("Deployment", d)
    h = template_hash(d["spec"]["template"])
    tmpl = copy.deepcopy(d["spec"]["template"])
    tmpl["metadata"]["labels"][HASH_LABEL] = h
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"web-{h}", "namespace": "default", "uid": uid,
                         "labels": dict(tmpl["metadata"]["labels"]),
                         "annotations": {REVISION: str(rev)},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                              "name": "web", "uid": "dep-uid", "controller": True}]},
            "spec": {"replicas": replicas,
                     "selector": {"matchLabels": {"app": "web", HASH_LABEL: h}},
                     "template": tmpl},
            "status": {"replicas": replicas, "readyReplicas": available,
                       "availableReplicas": available}}


def pod(rs: Obj, name: str, ready: bool = True) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default",
                         "labels": dict(rs["spec"]["template"]["metadata"]["labels"]),
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                              "name": rs["metadata"]["name"],
                                              "uid": rs["metadata"]["uid"], "controller": True}]},
            "spec": rs["spec"]["template"]["spec"],
            "status": {"phase": "Running",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


D = deployment()
V2 = deployment(image="docker.io/library/busybox")

DEPLOYMENT_ROWS = [
    Row("first ReplicaSet", [D], "default/web",
        want_creates=[{"kind": "ReplicaSet",
                       "metadata": {"name": f"web-{hash_of(D)}", "annotations": {REVISION: "1"}},
                       "spec": {"replicas": 2}}],
        want_patches=[("Deployment", "web", {"metadata": {"annotations": {REVISION: "1"}}})],
        want_status_updates=[{"status": {"conditions": [
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetCreated"}]}}]),
    Row("steady: nothing to write", [
        {**D, "metadata": {**D["metadata"], "annotations": {REVISION: "1"}},
         "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
                    "readyReplicas": 2, "availableReplicas": 2,
                    "conditions": [{"type": "Available", "status": "True",
                                    "reason": "MinimumReplicasAvailable",
                                    "message": "Deployment has minimum availability.",
                                    "lastUpdateTime": "2026-01-01T00:00:00Z",
                                    "lastTransitionTime": "2026-01-01T00:00:00Z"},
                                   {"type": "Progressing", "status": "True",
                                    "reason": "NewReplicaSetAvailable",
                                    "message": f'ReplicaSet "web-{hash_of(D)}" has successfully '
                                               "progressed.",
                                    "lastUpdateTime": "2026-01-01T00:00:00Z",
                                    "lastTransitionTime": "2026-01-01T00:00:00Z"}]}},
        {**replicaset(D, 1, 2, 2), "metadata": {**replicaset(D, 1, 2, 2)["metadata"],
                                                "annotations": {
            REVISION: "1", "deployment.kubernetes.io/desired-replicas": "2",
            "deployment.kubernetes.io/max-replicas": "3"}}}],
        "default/web"),
    # 2 replicas: maxSurge 25% rounds up to 1, maxUnavailable 25% down to 0
    Row("a new template surges one; the old keeps its pods until the new is available",
        [V2, replicaset(D, 1, 2, 2)], "default/web",
        want_creates=[{"kind": "ReplicaSet", "metadata": {"annotations": {REVISION: "2"}},
                       "spec": {"replicas": 1}}],
        want_patches=[("Deployment", "web", {"metadata": {"annotations": {REVISION: "2"}}})],
        want_status_updates=[{"status": {"replicas": 2, "availableReplicas": 2}}]),
    # one write per ReplicaSet (upstream's scaleReplicaSet), and the status as of it
    Row("a scale from zero: the ReplicaSet's replicas and annotations in one patch",
        [{**deployment(replicas=1), "metadata": {**D["metadata"],
                                                 "annotations": {REVISION: "1"}}},
         {**replicaset(D, 1, 0, 0), "metadata": {**replicaset(D, 1, 0, 0)["metadata"],
                                                 "annotations": {
             REVISION: "1", "deployment.kubernetes.io/desired-replicas": "0",
             "deployment.kubernetes.io/max-replicas": "0"}}}],
        "default/web",
        want_patches=[("ReplicaSet", f"web-{hash_of(D)}", {
            "metadata": {"annotations": {"deployment.kubernetes.io/desired-replicas": "1",
                                         "deployment.kubernetes.io/max-replicas": "2"}},
            "spec": {"replicas": 1}})],
        want_status_updates=[{"status": {"unavailableReplicas": 1, "conditions": [
            {"type": "Available", "status": "False"},
            {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]}}]),
    Row("the ReplicaSet cannot be created: the error is returned", [D], "default/web",
        fail_on=[("create", "ReplicaSet")],
        want_creates=[{"kind": "ReplicaSet"}], want_err="inducing failure"),
]


@pytest.mark.parametrize("row", DEPLOYMENT_ROWS, ids=str)
def test_deployment_reconciler(row: Row) -> None:
    run(row, DeploymentReconciler)


RS = replicaset(D, 1, 3, 0)

REPLICASET_ROWS = [
    # the status counts the pods it made (the next sync would, one more write later)
    Row("creates the missing pods", [RS], "default/" + RS["metadata"]["name"],
        want_creates=[{"kind": "Pod", "metadata": {"labels": {"app": "web"}}}] * 3,
        want_status_updates=[{"status": {"replicas": 3, "fullyLabeledReplicas": 3}}]),
    Row("a scale from zero: one pod, counted", [{**RS, "spec": {**RS["spec"], "replicas": 1},
                                                "status": {}}],
        "default/" + RS["metadata"]["name"],
        want_creates=[{"kind": "Pod"}],
        want_status_updates=[{"status": {"replicas": 1}}]),
    Row("scales down the unready first", [
        {**RS, "spec": {**RS["spec"], "replicas": 1}},
        pod(RS, "a-ready"), pod(RS, "b-unready", ready=False)],
        "default/" + RS["metadata"]["name"],
        want_deletes=[("Pod", "b-unready")],
        want_status_updates=[{"status": {"replicas": 2, "readyReplicas": 1}}]),
    Row("a failing create stops the batch", [RS], "default/" + RS["metadata"]["name"],
        fail_on=[("create", "Pod")], want_creates=[{"kind": "Pod"}], want_err="inducing failure"),
]


@pytest.mark.parametrize("row", REPLICASET_ROWS, ids=str)
def test_replicaset_reconciler(row: Row) -> None:
    run(row, ReplicaSetReconciler)
