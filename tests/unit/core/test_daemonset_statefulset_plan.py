"""DaemonSet and StatefulSet decisions as tables: (object, pods, now) -> creates, deletes,
status; and the ControllerRevision history both keep."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from skiff.core.reconcilers import daemonset, podutil, statefulset
from skiff.core.workloadadmission import (
    default_daemonset,
    default_statefulset,
    validate_statefulset,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
TEMPLATE = {"metadata": {"labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def pod(name: str, rev: str, ready: bool = True, phase: str = "Running", node: str = "skiff",
        deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"app": "a", "controller-revision-hash": rev},
                            "creationTimestamp": "2024-05-01T11:00:00Z"}
    if deleting:
        meta["deletionTimestamp"] = "2024-05-01T12:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": node},
            "status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": "True" if ready else "False",
                 "lastTransitionTime": "2024-05-01T11:00:00Z"}]}}


NODE = {"metadata": {"name": "skiff", "labels": {"kubernetes.io/hostname": "skiff"}}}


def ds(**spec: Any) -> dict[str, Any]:
    o = {"metadata": {"name": "agent", "namespace": "default", "uid": "d1", "generation": 2},
         "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": TEMPLATE, **spec}}
    default_daemonset(o, None)
    return o


@pytest.mark.parametrize("pods,create,delete", [
    ([], ["skiff"], []),
    ([pod("p", "h1")], [], []),
    ([pod("p", "h0")], [], ["p"]),                          # rolling update: old pod goes
    ([pod("p", "h0", phase="Failed")], ["skiff"], ["p"]),   # failed daemon pods are replaced
    ([pod("p", "h1"), pod("q", "h1")], [], ["q"]),          # one per node
    ([pod("p", "h1", node="gone")], ["skiff"], ["p"]),      # not on an eligible node
])
def test_daemonset_plan(pods: list[dict[str, Any]], create: list[str], delete: list[str]) -> None:
    p = daemonset.plan(ds(), [NODE], pods, "h1", NOW)
    assert (p.create, p.delete) == (create, delete)


def test_daemonset_on_delete_and_node_selector_and_status() -> None:
    assert daemonset.plan(ds(updateStrategy={"type": "OnDelete"}), [NODE], [pod("p", "h0")],
                          "h1", NOW).delete == []
    picky = ds(template={**TEMPLATE, "spec": {**TEMPLATE["spec"], "nodeSelector": {"gpu": "yes"}}})
    assert daemonset.plan(picky, [NODE], [], "h1", NOW).status["desiredNumberScheduled"] == 0
    st = daemonset.plan(ds(), [NODE], [pod("p", "h1")], "h1", NOW).status
    assert st == {"currentNumberScheduled": 1, "numberMisscheduled": 0, "desiredNumberScheduled": 1,
                  "numberReady": 1, "observedGeneration": 2, "updatedNumberScheduled": 1,
                  "numberAvailable": 1}
    made = daemonset.make_pod(ds(), "skiff", "h1")
    assert daemonset.pod_node(made) == "skiff"
    assert made["metadata"]["labels"] == {"app": "a", "controller-revision-hash": "h1",
                                          "pod-template-generation": "2"}


def sts(replicas: int = 3, **spec: Any) -> dict[str, Any]:
    o = {"metadata": {"name": "web", "namespace": "default", "uid": "s1", "generation": 1},
         "spec": {"replicas": replicas, "serviceName": "web",
                  "selector": {"matchLabels": {"app": "a"}}, "template": TEMPLATE, **spec}}
    default_statefulset(o, None)
    return o


def web(i: int, rev: str = "web-r1", **kw: Any) -> dict[str, Any]:
    return pod(f"web-{i}", rev, **kw)


@pytest.mark.parametrize("obj,pods,create,delete", [
    (sts(), [], [(0, "web-r1")], []),
    (sts(), [web(0)], [(1, "web-r1")], []),
    (sts(), [web(0, ready=False)], [], []),                  # OrderedReady waits for Ready
    (sts(), [web(0), web(2)], [(1, "web-r1")], []),
    (sts(podManagementPolicy="Parallel"), [], [(0, "web-r1"), (1, "web-r1"), (2, "web-r1")], []),
    (sts(1), [web(0), web(1), web(2)], [], ["web-2"]),      # scale down: highest first, one
    (sts(1), [web(0), web(1), web(2, deleting=True)], [], []),   # ... waiting for it to go
    (sts(1, podManagementPolicy="Parallel"), [web(0), web(1), web(2)], [], ["web-2", "web-1"]),
    (sts(), [web(0, "web-r0"), web(1, "web-r0"), web(2, "web-r0")], [], ["web-2"]),  # rolling
    (sts(), [web(0, "web-r0"), web(1, "web-r0"), web(2)], [], ["web-1"]),
    (sts(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}),
     [web(0, "web-r0"), web(1, "web-r0"), web(2)], [], []),  # the partition holds
    (sts(updateStrategy={"type": "OnDelete"}), [web(0, "web-r0"), web(1, "web-r0"),
                                               web(2, "web-r0")], [], []),
    (sts(), [web(0), web(1, phase="Failed")], [], ["web-1"]),   # replaced on the next pass
])
def test_statefulset_plan(obj: dict[str, Any], pods: list[dict[str, Any]],
                          create: list[tuple[int, str]], delete: list[str]) -> None:
    p = statefulset.plan(obj, pods, "web-r1", NOW)
    assert (p.create, p.delete) == (create, delete)


def test_statefulset_huge_replicas_are_bounded() -> None:
    p = statefulset.plan(sts(10**9, podManagementPolicy="Parallel"), [], "web-r1", NOW)
    assert len(p.create) == statefulset.MAX_POD_CREATE_PER_SYNC


def test_statefulset_status_and_revisions() -> None:
    o = sts()
    o["status"] = {"currentRevision": "web-r0"}
    st = statefulset.plan(o, [web(0, "web-r0"), web(1), web(2)], "web-r1", NOW).status
    assert st == {"observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "currentReplicas": 1,
                  "updatedReplicas": 2, "currentRevision": "web-r0", "updateRevision": "web-r1",
                  "collisionCount": 0, "availableReplicas": 3}
    done = statefulset.plan(o, [web(0), web(1), web(2)], "web-r1", NOW).status
    assert done["currentRevision"] == "web-r1" and done["currentReplicas"] == 3
    # Below the partition, pods are made at the current revision.
    part = sts(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    part["status"] = {"currentRevision": "web-r0"}
    assert statefulset.plan(part, [], "web-r1", NOW).create == [(0, "web-r0")]
    made = statefulset.make_pod(o, 1, "web-r1", TEMPLATE)
    assert made["metadata"]["name"] == "web-1"
    assert made["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "web-1"
    assert made["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "1"
    assert (made["spec"]["hostname"], made["spec"]["subdomain"]) == ("web-1", "web")


def test_statefulset_defaults_and_forbidden_updates() -> None:
    o = sts()
    assert (o["spec"]["podManagementPolicy"], o["spec"]["updateStrategy"],
            o["spec"]["revisionHistoryLimit"]) == (
        "OrderedReady", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}, 10)
    changed = sts(serviceName="other")
    changed["spec"]["serviceName"] = "other"
    assert [c.field for c in validate_statefulset(changed, o)] == ["spec"]
    assert validate_statefulset(sts(5), o) == []


def test_revision_history() -> None:
    owner = sts()
    rp = podutil.plan_revisions(owner, "apps/v1", "StatefulSet", [], set())
    assert rp.create is not None and rp.create["revision"] == 1
    assert rp.create["metadata"]["name"] == rp.name == f"web-{rp.hash}"
    assert podutil.template_of(rp.create) == TEMPLATE
    old = [{"metadata": {"name": f"web-old{i}"}, "revision": i + 1} for i in range(12)]
    again = podutil.plan_revisions(owner, "apps/v1", "StatefulSet", old, {"web-old0"})
    assert again.create is not None and again.create["revision"] == 13
    assert again.prune == ["web-old1"]      # 11 spare beyond the in-use one; keep 10
    back = podutil.plan_revisions(owner, "apps/v1", "StatefulSet",
                                  [rp.create, {"metadata": {"name": "web-x"}, "revision": 2}], set())
    assert back.create is None and back.renumber == 3   # a rollback renumbers
