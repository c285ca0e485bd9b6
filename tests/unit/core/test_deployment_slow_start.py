"""Deployments roll ReplicaSets; ReplicaSets create pods as upstream: slow start, capped (pure)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from skiff.core.reconcilers import replicaset as rsc
from skiff.core.reconcilers.deployment import (
    BURST_REPLICAS,
    HASH_LABEL,
    REVISION,
    fenceposts,
    plan,
    template_hash,
    with_deadline,
)
from skiff.core.reconcilers.replicaset import scale_down_order, slow_start_batches

Obj = dict[str, Any]


@pytest.mark.parametrize("count,initial,batches", [
    (0, 1, []),
    (-3, 1, []),
    (1, 1, [1]),
    (2, 1, [1, 1]),
    (3, 1, [1, 2]),
    (4, 1, [1, 2, 1]),
    (7, 1, [1, 2, 4]),
    (10, 1, [1, 2, 4, 3]),
    (500, 1, [1, 2, 4, 8, 16, 32, 64, 128, 245]),
    (10, 3, [3, 6, 1]),
    (2, 5, [2]),
    (5, 0, [1, 2, 2]),        # a batch is never empty
])
def test_slow_start_batches(count: int, initial: int, batches: list[int]) -> None:
    assert slow_start_batches(count, initial) == batches
    assert sum(batches) == max(count, 0)


TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "x"}]}}


def deployment(replicas: int, image: str = "x", **spec: Any) -> Obj:
    tmpl = copy.deepcopy(TEMPLATE)
    tmpl["spec"]["containers"][0]["image"] = image
    return {"metadata": {"name": "web", "namespace": "default", "uid": "d1", "generation": 1},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": tmpl, **spec}}


def replicaset(d: Obj, rev: int, spec_replicas: int, available: int, replicas: int | None = None,
               name: str = "") -> Obj:
    h = template_hash(d["spec"]["template"])
    rs = rsc_obj(name or f"web-{h}", h, rev, spec_replicas)
    rs["status"] = {"replicas": spec_replicas if replicas is None else replicas,
                    "readyReplicas": available, "availableReplicas": available}
    return rs


def rsc_obj(name: str, h: str, rev: int, replicas: int) -> Obj:
    return {"metadata": {"name": name, "namespace": "default", "uid": f"u-{name}",
                         "labels": {"app": "web", HASH_LABEL: h},
                         "annotations": {REVISION: str(rev)}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web", HASH_LABEL: h}},
                     "template": {"metadata": {"labels": {"app": "web", HASH_LABEL: h}},
                                  "spec": TEMPLATE["spec"]}}}


def test_a_new_deployment_gets_its_first_replicaset() -> None:
    p = plan(deployment(3), [])
    assert p.create is not None
    assert p.create["metadata"]["name"] == f"web-{template_hash(TEMPLATE)}"
    assert p.create["spec"]["replicas"] == 3
    assert p.create["metadata"]["annotations"][REVISION] == "1"
    assert p.create["spec"]["selector"]["matchLabels"][HASH_LABEL] == template_hash(TEMPLATE)
    assert p.create["metadata"]["ownerReferences"][0]["controller"] is True
    assert p.revision == "1"


@pytest.mark.parametrize("new_spec, new_avail, old_spec, old_avail, want_new, want_old", [
    # surge 25% of 4 -> 1, unavailable 25% of 4 -> 1
    (None, 0, 4, 4, 1, 3),     # the new one appears with the surge; the old may lose one
    (1, 0, 4, 4, 1, 3),        # (3 stay available: 4 - maxUnavailable)
    (1, 0, 3, 3, 2, 3),        # the new one grows to the surge; the old waits for it
    (1, 1, 3, 3, 2, 2),        # the new is available: both move on
    (4, 4, 1, 1, 4, 0),        # done: the old goes to zero
])
def test_rolling_update_steps(new_spec: int | None, new_avail: int, old_spec: int, old_avail: int,
                              want_new: int, want_old: int) -> None:
    d_old = deployment(4, image="v1")
    d = deployment(4, image="v2")
    rss = [replicaset(d_old, 1, old_spec, old_avail)]
    if new_spec is not None:
        rss.append(replicaset(d, 2, new_spec, new_avail))
    p = plan(d, rss)
    new_name = f"web-{template_hash(d['spec']['template'])}"
    old_name = rss[0]["metadata"]["name"]
    got_new = p.create["spec"]["replicas"] if p.create else p.replicas.get(new_name, new_spec)
    assert got_new == want_new
    assert p.replicas.get(old_name, old_spec) == want_old


def test_recreate_scales_the_old_down_first() -> None:
    d = deployment(2, image="v2", strategy={"type": "Recreate"})
    old = replicaset(deployment(2, image="v1"), 1, 2, 2)
    p = plan(d, [old])
    assert p.create is not None and p.create["spec"]["replicas"] == 0
    assert p.replicas[old["metadata"]["name"]] == 0
    old["spec"]["replicas"], old["status"] = 0, {}
    new = replicaset(d, 2, 0, 0)
    assert plan(d, [old, new]).replicas[new["metadata"]["name"]] == 2


def test_rollback_reuses_the_old_replicaset_with_the_next_revision() -> None:
    d1, d2 = deployment(1, image="v1"), deployment(1, image="v2")
    rs1, rs2 = replicaset(d1, 1, 0, 0), replicaset(d2, 2, 1, 1)
    p = plan(d1, [rs1, rs2])   # the template is v1 again (kubectl rollout undo)
    assert p.create is None
    assert p.annotations[rs1["metadata"]["name"]][REVISION] == "3"
    assert p.revision == "3"


def test_revision_history_limit_deletes_the_oldest_idle() -> None:
    d = deployment(1, image="v9", revisionHistoryLimit=2)
    olds = [replicaset(deployment(1, image=f"v{i}"), i, 0, 0) for i in range(1, 6)]
    p = plan(d, [*olds, replicaset(d, 9, 1, 1)])
    assert p.delete_replicasets == [rs["metadata"]["name"] for rs in olds[:3]]


def test_paused_makes_no_new_replicaset() -> None:
    d = deployment(1, image="v2", paused=True)
    old = replicaset(deployment(1, image="v1"), 1, 1, 1)
    p = plan(d, [old])
    assert p.create is None and p.replicas == {}
    progressing = next(c for c in p.status["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "DeploymentPaused"


def test_status_and_conditions() -> None:
    d = deployment(2)
    p = plan(d, [replicaset(d, 1, 2, 2)])
    assert p.complete
    assert {k: p.status[k] for k in ("replicas", "updatedReplicas", "readyReplicas",
                                     "availableReplicas")} == {
        "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}
    conds = {c["type"]: c for c in p.status["conditions"]}
    assert conds["Available"]["reason"] == "MinimumReplicasAvailable"
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert conds["Progressing"]["message"] == \
        f'ReplicaSet "web-{template_hash(TEMPLATE)}" has successfully progressed.'


def test_progress_deadline() -> None:
    d = deployment(1, progressDeadlineSeconds=60)
    p = plan(d, [replicaset(d, 1, 1, 0)])
    status, requeue = with_deadline(d, p.status, p.complete, "2026-01-01T00:00:00Z")
    assert requeue == 60
    d["status"] = status
    status, requeue = with_deadline(d, plan(d, [replicaset(d, 1, 1, 0)]).status, False,
                                    "2026-01-01T00:01:01Z")
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert progressing["message"] == \
        f'ReplicaSet "web-{template_hash(TEMPLATE)}" has timed out progressing.'


def test_template_hash_ignores_nulls_and_the_hash_label() -> None:
    h = template_hash(TEMPLATE)
    undo = copy.deepcopy(TEMPLATE)
    undo["metadata"]["creationTimestamp"] = None
    undo["spec"]["containers"][0]["resources"] = {}
    assert template_hash(undo) == h
    labelled = copy.deepcopy(TEMPLATE)
    labelled["metadata"]["labels"][HASH_LABEL] = "abc"
    assert template_hash(labelled) == h


@pytest.mark.parametrize("spec, expect", [
    ({"replicas": 4}, (1, 1)),
    ({"replicas": 10, "strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}, (0, 1)),
    ({"replicas": 10, "strategy": {"rollingUpdate": {"maxSurge": "50%", "maxUnavailable": "15%"}}},
     (5, 1)),
    ({"replicas": 3, "strategy": {"type": "Recreate"}}, (0, 3)),
])
def test_fenceposts(spec: Obj, expect: tuple[int, int]) -> None:
    assert fenceposts({"spec": spec}) == expect


def rs(replicas: int) -> Obj:
    return {"metadata": {"name": "web-h", "namespace": "default", "uid": "r1", "generation": 1},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": TEMPLATE}}


@pytest.mark.parametrize("replicas,create", [
    (0, 0), (3, 3), (BURST_REPLICAS, BURST_REPLICAS), (BURST_REPLICAS + 1, BURST_REPLICAS),
    (10**9, BURST_REPLICAS),
])
def test_replicaset_caps_creates_per_sync(replicas: int, create: int) -> None:
    assert rsc.plan(rs(replicas), []).create == create


def pod(name: str, created: str, phase: str = "Running", ready: bool = True,
        node: str = "skiff") -> Obj:
    return {"metadata": {"name": name, "creationTimestamp": created, "labels": {"app": "web"}},
            "spec": {"nodeName": node} if node else {},
            "status": {"phase": phase,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_scale_down_order() -> None:
    pods = [pod("old-ready", "2026-01-01T00:00:00Z"), pod("young-ready", "2026-01-01T00:05:00Z"),
            pod("unready", "2026-01-01T00:00:00Z", ready=False),
            pod("pending", "2026-01-01T00:00:00Z", phase="Pending", ready=False),
            pod("unscheduled", "2026-01-01T00:00:00Z", phase="Pending", ready=False, node="")]
    assert [p["metadata"]["name"] for p in scale_down_order(pods)] == [
        "unscheduled", "pending", "unready", "young-ready", "old-ready"]
    p = rsc.plan(rs(2), pods)
    assert p.delete == ["unscheduled", "pending", "unready"]


def test_replicaset_replaces_finished_pods() -> None:
    p = rsc.plan(rs(1), [pod("done", "2026-01-01T00:00:00Z", phase="Succeeded", ready=False)])
    assert p.delete == ["done"] and p.create == 1
