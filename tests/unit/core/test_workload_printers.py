"""`kubectl get` Tables of the workload kinds (jobs, cronjobs, daemonsets, statefulsets,
controllerrevisions), cells as kube-apiserver v1.32's printers.go makes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from skiff.core.builtin_kinds import KINDS
from skiff.core.printers import column_definitions, row_cells

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def ago(**kw: float) -> str:
    return (NOW - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


def cells(kind: str, o: dict[str, Any]) -> list[Any]:
    k = next(x for x in KINDS if x.kind == kind)
    return row_cells(k, {"metadata": {"name": "x", "creationTimestamp": ago(minutes=5),
                                      **o.pop("metadata", {})}, **o}, NOW)


def names(kind: str, wide: bool = False) -> list[str]:
    k = next(x for x in KINDS if x.kind == kind)
    return [c["name"] for c in column_definitions(k) if wide or not c["priority"]]


def test_columns() -> None:
    assert names("Job") == ["Name", "Status", "Completions", "Duration", "Age"]
    assert names("Job", wide=True)[5:] == ["Containers", "Images", "Selector"]
    assert names("CronJob") == ["Name", "Schedule", "Timezone", "Suspend", "Active",
                                "Last Schedule", "Age"]
    assert names("DaemonSet") == ["Name", "Desired", "Current", "Ready", "Up-to-date",
                                  "Available", "Node Selector", "Age"]
    assert names("StatefulSet") == ["Name", "Ready", "Age"]
    assert names("ControllerRevision") == ["Name", "Controller", "Revision", "Age"]


TEMPLATE = {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}
SEL = {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}


def cond(t: str, status: str = "True") -> dict[str, str]:
    return {"type": t, "status": status}


@pytest.mark.parametrize("spec,status,meta,want", [
    ({"completions": 3, "parallelism": 2}, {}, {}, ["Running", "0/3", ""]),
    ({"completions": 3}, {"succeeded": 3, "startTime": ago(minutes=2),
                          "completionTime": ago(minutes=1, seconds=30),
                          "conditions": [cond("SuccessCriteriaMet"), cond("Complete")]}, {},
     ["Complete", "3/3", "30s"]),
    ({"parallelism": 4}, {"startTime": ago(seconds=10)}, {}, ["Running", "0/1 of 4", "10s"]),
    ({"parallelism": 1}, {}, {}, ["Running", "0/1", ""]),
    ({"completions": 1}, {"conditions": [cond("FailureTarget"), cond("Failed")]}, {},
     ["Failed", "0/1", ""]),
    ({"completions": 1}, {"conditions": [cond("FailureTarget")]}, {},
     ["FailureTarget", "0/1", ""]),
    ({"completions": 1}, {"conditions": [cond("SuccessCriteriaMet")]}, {},
     ["SuccessCriteriaMet", "0/1", ""]),
    ({"completions": 1}, {"conditions": [cond("Suspended")]}, {}, ["Suspended", "0/1", ""]),
    ({"completions": 1}, {"conditions": [cond("Suspended", "False")]}, {}, ["Running", "0/1", ""]),
    ({"completions": 1}, {}, {"deletionTimestamp": ago(seconds=1)}, ["Terminating", "0/1", ""]),
])
def test_job_rows(spec: dict[str, Any], status: dict[str, Any], meta: dict[str, Any],
                  want: list[str]) -> None:
    row = cells("Job", {"metadata": meta, "spec": {**spec, "template": TEMPLATE, "selector": SEL},
                        "status": status})
    assert row[1:4] == want
    assert row[4:] == ["5m", "c", "busybox", "batch.kubernetes.io/controller-uid=u1"]


def test_cronjob_rows() -> None:
    spec = {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": TEMPLATE}}}
    assert cells("CronJob", {"spec": spec}) == [
        "x", "*/1 * * * *", "<none>", "<unset>", 0, "<none>", "5m", "c", "busybox", "<none>"]
    row = cells("CronJob", {"spec": {**spec, "suspend": False, "timeZone": "Etc/UTC"},
                            "status": {"active": [{"name": "x-1"}],
                                       "lastScheduleTime": ago(seconds=42)}})
    assert row[2:6] == ["Etc/UTC", "False", 1, "42s"]


def test_daemonset_statefulset_revision_rows() -> None:
    ds = cells("DaemonSet", {"spec": {"selector": {"matchLabels": {"app": "a"}},
                                      "template": TEMPLATE},
                             "status": {"desiredNumberScheduled": 1, "currentNumberScheduled": 1,
                                        "numberReady": 1, "updatedNumberScheduled": 1,
                                        "numberAvailable": 1}})
    assert ds == ["x", 1, 1, 1, 1, 1, "<none>", "5m", "c", "busybox", "app=a"]
    sts = cells("StatefulSet", {"spec": {"replicas": 3, "template": TEMPLATE},
                                "status": {"readyReplicas": 2}})
    assert sts == ["x", "2/3", "5m", "c", "busybox"]
    cr = cells("ControllerRevision", {"metadata": {"ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": True}]},
        "revision": 2})
    assert cr == ["x", "statefulset.apps/web", 2, "5m"]
