"""The node's pod capacity: kubelet's max-pods and the scheduler's answer. Pure.

skiff has one node and no separate scheduler: the node runtime (node.py)
admits the pods that belong here, at most `max_pods` at a time (kubelet's
--max-pods, 110 by default; `skiff up --max-pods`, SKIFF_MAX_PODS). admit()
decides which waiting pods get the free slots: pods already bound to the
node first (they ran before a restart), then the oldest. The others stay
Pending the way kube-scheduler leaves them: condition PodScheduled False,
reason Unschedulable, its message, and a FailedScheduling Warning Event
(unschedulable_status(), failed_scheduling_event()). When a pod goes away or
finishes, its slot goes to the next waiting pod.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from skiff.core.client import Obj

DEFAULT_MAX_PODS = 110          # kubelet's --max-pods default
SCHEDULER = "default-scheduler"
# kube-scheduler's words for one node that is full and has no lower-priority pod to preempt.
TOO_MANY_PODS = ("0/1 nodes are available: 1 Too many pods. preemption: 0/1 nodes are "
                 "available: 1 No preemption victims found for incoming pod.")


def occupies_slot(pod: Obj) -> bool:
    """A pod counts against max-pods until it is terminal (the scheduler skips those)."""
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def admission_order(pod: Obj, node_name: str) -> tuple[int, str, str, str]:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    bound = spec.get("nodeName") == node_name
    return (0 if bound else 1, meta.get("creationTimestamp") or "", meta.get("namespace") or "",
            meta.get("name") or "")


def admit(waiting: Iterable[Obj], used: int, max_pods: int,
          node_name: str) -> tuple[list[Obj], list[Obj]]:
    """(pods to start now, pods that stay Pending) for `used` slots of `max_pods` taken."""
    ordered = sorted(waiting, key=lambda p: admission_order(p, node_name))
    free = max(max_pods - used, 0)
    return ordered[:free], ordered[free:]


def unschedulable_condition(now: str, message: str = TOO_MANY_PODS) -> Obj:
    return {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": message, "lastProbeTime": None, "lastTransitionTime": now}


def is_marked_unschedulable(pod: Obj, message: str = TOO_MANY_PODS) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "PodScheduled":
            return bool(c.get("status") == "False" and c.get("reason") == "Unschedulable"
                        and c.get("message") == message)
    return False


def unschedulable_status(pod: Obj, now: str, message: str = TOO_MANY_PODS) -> Obj:
    """The status patch for a pod left Pending (other conditions it has are kept)."""
    others: Sequence[Obj] = [c for c in (pod.get("status") or {}).get("conditions") or []
                             if c.get("type") != "PodScheduled"]
    return {"phase": "Pending", "conditions": [unschedulable_condition(now, message), *others]}


def failed_scheduling_event(pod: Obj, now: str, suffix: str,
                            message: str = TOO_MANY_PODS) -> Obj:
    """A core/v1 Event as kube-scheduler records it for an unschedulable pod."""
    meta = pod.get("metadata") or {}
    name, namespace = meta.get("name", ""), meta.get("namespace", "")
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{name}.{suffix}", "namespace": namespace},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": namespace,
                           "name": name, "uid": meta.get("uid", ""),
                           "resourceVersion": meta.get("resourceVersion", "")},
        "reason": "FailedScheduling", "message": message, "type": "Warning",
        "source": {"component": SCHEDULER}, "reportingComponent": SCHEDULER,
        "reportingInstance": SCHEDULER, "action": "Scheduling",
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }
