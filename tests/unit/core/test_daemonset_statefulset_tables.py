"""DaemonSet and StatefulSet reconcilers as tables: world + key -> the writes one reconcile makes
(the ControllerRevision, the pods, the status), over the MemoryClient. The decisions alone
are test_daemonset_statefulset_plan.py's; these rows are the reconcile around them."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from skiff.core.client import Ref
from skiff.core.memclient import MemoryClient
from skiff.core.reconcilers import podutil
from skiff.core.reconcilers.daemonset import DaemonSetReconciler
from skiff.core.reconcilers.statefulset import StatefulSetReconciler
from tabletest import Row, run

Obj = dict[str, Any]
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
BEFORE = "2026-01-01T11:00:00Z"
NODE: Obj = {"apiVersion": "v1", "kind": "Node",
             "metadata": {"name": "skiff", "labels": {"kubernetes.io/hostname": "skiff"}},
             "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def template(image: str = "busybox") -> Obj:
    return {"metadata": {"labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c", "image": image}]}}


def stored(obj: Obj) -> Obj:
    """`obj` as the API server keeps it (defaulted), for the names derived from its template."""
    c = MemoryClient([obj])
    m = obj["metadata"]
    return asyncio.run(c.get(Ref(obj["apiVersion"], obj["kind"]), m["name"], m["namespace"]))


def revision(owner: Obj, number: int = 1) -> Obj:
    """The ControllerRevision of owner's current template (what the controller makes)."""
    s = stored(owner)
    rp = podutil.plan_revisions(s, "apps/v1", s["kind"], [], set())
    assert rp.create is not None
    return {**rp.create, "revision": number}


def hash_of(owner: Obj) -> str:
    return str(revision(owner)["metadata"]["labels"]["controller.kubernetes.io/hash"])


def pod(owner: Obj, name: str, rev: str, ready: bool = True, node: str = "skiff",
        **labels: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": BEFORE,
                         "labels": {"app": "a", "controller-revision-hash": rev, **labels},
                         "ownerReferences": [podutil.controller_ref(owner, "apps/v1",
                                                                    owner["kind"])]},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True" if ready else "False",
                 "lastTransitionTime": BEFORE}]}}


# --- DaemonSet ------------------------------------------------------------------------------


def daemonset(image: str = "busybox", status: Obj | None = None, **spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "default", "uid": "ds-uid",
                         "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": template(image),
                     **spec},
            **({"status": status} if status is not None else {})}


DS = daemonset()
DS_HASH = hash_of(DS)
DS_REV = f"agent-{DS_HASH}"
DS_STEADY_STATUS = {"currentNumberScheduled": 1, "numberMisscheduled": 0,
                    "desiredNumberScheduled": 1, "numberReady": 1, "observedGeneration": 1,
                    "updatedNumberScheduled": 1, "numberAvailable": 1}
V2 = daemonset("docker.io/library/busybox:1.36", status=DS_STEADY_STATUS)

DAEMONSET_ROWS = [
    Row("first: the revision, and a pod pinned to the node", [DS, NODE], "default/agent",
        want_creates=[
            {"kind": "ControllerRevision", "metadata": {"name": DS_REV},
             "revision": 1},
            {"kind": "Pod", "metadata": {"generateName": "agent-", "labels": {
                "app": "a", "controller-revision-hash": DS_HASH,
                "pod-template-generation": "1"}},
             "spec": {"affinity": {"nodeAffinity": {
                 "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                     {"matchFields": [{"key": "metadata.name", "operator": "In",
                                       "values": ["skiff"]}]}]}}}}}],
        want_status_updates=[{"status": {"desiredNumberScheduled": 1,
                                         "currentNumberScheduled": 0,
                                         "numberUnavailable": 1}}],
        want_requeue=None),
    Row("steady: its pod ready on the node, nothing to write",
        [daemonset(status=DS_STEADY_STATUS), NODE, revision(DS), pod(DS, "agent-x", DS_HASH)],
        "default/agent", want_requeue=None),
    Row("no node registered yet: the revision and status, and a look again soon",
        [DS], "default/agent",
        want_creates=[{"kind": "ControllerRevision"}],
        want_status_updates=[{"status": {"desiredNumberScheduled": 0}}], want_requeue=1.0),
    Row("a new template: a new revision; the old pod goes (maxUnavailable 1), its new one next",
        [V2, NODE, revision(DS), pod(DS, "agent-x", DS_HASH)], "default/agent",
        want_creates=[{"kind": "ControllerRevision", "revision": 2}],
        want_deletes=[("Pod", "agent-x")],
        # the status as of the pods seen (the old one still ready; none updated)
        want_status_updates=[{"status": {"currentNumberScheduled": 1, "numberReady": 1,
                                         "observedGeneration": 1}}]),
    Row("a node it must not run on: its pod is deleted",
        [daemonset(status=DS_STEADY_STATUS, template={
            **template(), "spec": {**template()["spec"], "nodeSelector": {"disk": "ssd"}}}),
         NODE, pod(DS, "agent-x", DS_HASH)], "default/agent",
        want_creates=[{"kind": "ControllerRevision"}],
        want_deletes=[("Pod", "agent-x")],
        want_status_updates=[{"status": {"desiredNumberScheduled": 0,
                                         "numberMisscheduled": 1}}]),
    Row("the pod cannot be created: the error is returned", [DS, NODE, revision(DS)],
        "default/agent", fail_on=[("create", "Pod")], want_creates=[{"kind": "Pod"}],
        want_err="inducing failure"),
    Row("gone: nothing to write", [NODE], "default/agent"),
]


@pytest.mark.parametrize("row", DAEMONSET_ROWS, ids=str)
def test_daemonset_reconciler(row: Row) -> None:
    run(row, lambda c: DaemonSetReconciler(c, lambda: NOW))


# --- StatefulSet ----------------------------------------------------------------------------


def statefulset(replicas: int = 2, image: str = "busybox", status: Obj | None = None,
                **spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "default", "uid": "sts-uid",
                         "generation": 1},
            "spec": {"replicas": replicas, "serviceName": "web",
                     "selector": {"matchLabels": {"app": "a"}}, "template": template(image),
                     **spec},
            **({"status": status} if status is not None else {})}


STS = statefulset()
STS_REV = f"web-{hash_of(STS)}"


def member(i: int, ready: bool = True, rev: str = STS_REV, owner: Obj = STS) -> Obj:
    return pod(owner, f"web-{i}", rev, ready, **{"statefulset.kubernetes.io/pod-name": f"web-{i}",
                                                 "apps.kubernetes.io/pod-index": str(i)})


def sts_status(replicas: int, ready: int, **more: Any) -> Obj:
    return {"observedGeneration": 1, "replicas": replicas, "readyReplicas": ready,
            "currentReplicas": replicas, "updatedReplicas": replicas,
            "currentRevision": STS_REV, "updateRevision": STS_REV, "collisionCount": 0,
            "availableReplicas": ready, **more}


# The status is the one of the pods seen at the start of the sync: a pod created in it is
# counted by the next sync (upstream's updateStatefulSet counts it at once, status.replicas++).
STATEFULSET_ROWS = [
    Row("first: the revision and web-0 only (OrderedReady)", [STS], "default/web",
        want_creates=[{"kind": "ControllerRevision", "metadata": {"name": STS_REV}},
                      {"kind": "Pod", "metadata": {"name": "web-0", "labels": {
                          "statefulset.kubernetes.io/pod-name": "web-0",
                          "apps.kubernetes.io/pod-index": "0",
                          "controller-revision-hash": STS_REV}},
                       "spec": {"hostname": "web-0", "subdomain": "web"}}],
        want_status_updates=[{"status": {"replicas": 0, "currentRevision": STS_REV,
                                         "updateRevision": STS_REV}}]),
    Row("web-0 not ready yet: web-1 waits", [STS, revision(STS), member(0, ready=False)],
        "default/web",
        want_status_updates=[{"status": {"replicas": 1, "currentReplicas": 1,
                                         "availableReplicas": 0}}]),
    Row("web-0 ready: web-1 next", [STS, revision(STS), member(0)], "default/web",
        want_creates=[{"kind": "Pod", "metadata": {"name": "web-1"}}],
        want_status_updates=[{"status": {"replicas": 1, "readyReplicas": 1,
                                         "availableReplicas": 1}}]),
    Row("Parallel: every pod at once",
        [statefulset(3, podManagementPolicy="Parallel")], "default/web",
        want_creates=[{"kind": "ControllerRevision"},
                      {"kind": "Pod", "metadata": {"name": "web-0"}},
                      {"kind": "Pod", "metadata": {"name": "web-1"}},
                      {"kind": "Pod", "metadata": {"name": "web-2"}}],
        want_status_updates=[{"status": {"replicas": 0}}]),
    Row("steady: nothing to write",
        [statefulset(status=sts_status(2, 2)), revision(STS), member(0), member(1)],
        "default/web"),
    Row("scaled down: the highest ordinal goes first",
        [statefulset(1, status=sts_status(2, 2)), revision(STS), member(0), member(1)],
        "default/web", want_deletes=[("Pod", "web-1")]),     # the status seen is unchanged
    Row("the pod cannot be created: the error is returned", [STS, revision(STS)],
        "default/web", fail_on=[("create", "Pod")], want_creates=[{"kind": "Pod"}],
        want_err="inducing failure"),
    Row("gone: nothing to write", [], "default/web"),
]


@pytest.mark.parametrize("row", STATEFULSET_ROWS, ids=str)
def test_statefulset_reconciler(row: Row) -> None:
    run(row, lambda c: StatefulSetReconciler(c, lambda: NOW))


def test_the_rows_worlds_are_what_the_controllers_make() -> None:
    """The hand-made revisions and pods are what a reconcile creates (so the rows that start
    from them start from a world the controller could have made)."""
    c = run(DAEMONSET_ROWS[0], lambda c: DaemonSetReconciler(c, lambda: NOW))
    made = c.actions[0].object
    want = revision(DS)
    assert made["metadata"]["name"] == want["metadata"]["name"]
    assert made["data"] == want["data"]
    c = run(STATEFULSET_ROWS[0], lambda c: StatefulSetReconciler(c, lambda: NOW))
    assert copy.deepcopy(c.actions[0].object["data"]) == revision(STS)["data"]
