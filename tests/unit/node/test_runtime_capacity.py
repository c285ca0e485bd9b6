"""capacity.py: which waiting pods get the node's free slots, and what the rest are told."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.node import capacity

Obj = dict[str, Any]
NOW = "2026-01-01T00:00:00Z"


def pod(name: str, created: str = "2026-01-01T00:00:00Z", node: str = "",
        phase: str = "") -> Obj:
    p: Obj = {"metadata": {"name": name, "namespace": "default", "uid": f"u-{name}",
                           "creationTimestamp": created}, "spec": {}}
    if node:
        p["spec"]["nodeName"] = node
    if phase:
        p["status"] = {"phase": phase}
    return p


@pytest.mark.parametrize("waiting,used,max_pods,admitted", [
    ([], 0, 5, []),
    ([pod("a")], 0, 1, ["a"]),
    ([pod("a")], 1, 1, []),
    ([pod("a")], 3, 2, []),                                  # over capacity: nothing, not negative
    ([pod("b", "2026-01-01T00:00:02Z"), pod("a", "2026-01-01T00:00:01Z")], 0, 1, ["a"]),  # oldest
    ([pod("b"), pod("a")], 0, 1, ["a"]),                     # same age: by name
    ([pod("a", "2026-01-01T00:00:01Z"), pod("z", "2026-01-01T00:00:09Z", node="skiff")], 0, 1,
     ["z"]),                                                 # bound here before: first
    ([pod("a", "2026-01-01T00:00:05Z", node="other"), pod("b", "2026-01-01T00:00:01Z")], 0, 1,
     ["b"]),                                                 # bound elsewhere: not first
    ([pod(n) for n in "abcdef"], 2, 5, ["a", "b", "c"]),
])
def test_admit(waiting: list[Obj], used: int, max_pods: int, admitted: list[str]) -> None:
    start, stay = capacity.admit(waiting, used, max_pods, "skiff")
    assert [p["metadata"]["name"] for p in start] == admitted
    assert len(start) + len(stay) == len(waiting)
    assert not {id(p) for p in start} & {id(p) for p in stay}


@pytest.mark.parametrize("phase,occupies", [
    ("", True), ("Pending", True), ("Running", True), ("Succeeded", False), ("Failed", False),
])
def test_occupies_slot(phase: str, occupies: bool) -> None:
    assert capacity.occupies_slot(pod("a", phase=phase)) is occupies


def test_unschedulable_status_is_the_schedulers() -> None:
    p = pod("a")
    p["status"] = {"conditions": [{"type": "PodScheduled", "status": "True"},
                                  {"type": "Custom", "status": "True"}]}
    st = capacity.unschedulable_status(p, NOW)
    assert st["phase"] == "Pending"
    cond = st["conditions"][0]
    assert cond == {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Too many pods. preemption: 0/1 nodes "
                               "are available: 1 No preemption victims found for incoming pod.",
                    "lastProbeTime": None, "lastTransitionTime": NOW}
    assert [c["type"] for c in st["conditions"]] == ["PodScheduled", "Custom"]
    assert not capacity.is_marked_unschedulable(p)
    assert capacity.is_marked_unschedulable({"status": st})


def test_failed_scheduling_event() -> None:
    ev = capacity.failed_scheduling_event(pod("a"), NOW, "abc")
    assert ev["kind"] == "Event" and ev["apiVersion"] == "v1"
    assert ev["metadata"] == {"name": "a.abc", "namespace": "default"}
    assert ev["involvedObject"]["kind"] == "Pod" and ev["involvedObject"]["uid"] == "u-a"
    assert (ev["reason"], ev["type"]) == ("FailedScheduling", "Warning")
    assert ev["message"] == capacity.TOO_MANY_PODS
    assert ev["source"] == {"component": "default-scheduler"}
