"""ReplicaSet reconciler: keep `replicas` pods of the template, as kube-controller-manager's does.

Pods are named `<replicaset>-<5 characters>`, carry the template's labels
and a controller ownerReference to the ReplicaSet, and are created as the
upstream controller creates them: at most BURST_REPLICAS per sync, in
slow-start batches of 1, 2, 4, 8 ... that stop at the first failure
(podutil.slow_start_batches()), so a runaway replica count cannot flood the API or
the node in one go (the node runs at most its max-pods and leaves the rest
Pending). Scale-down deletes the least useful pods first (upstream's
ActivePods order: unscheduled, pending, not ready, then the youngest).
plan() and scale_down_order() are the pure decisions (table-tested);
ReplicaSetReconciler is the thin shell. Neighbours: deployment.py (owns
ReplicaSets), node/ (the node that runs the pods), gc.py (cascades).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any

from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.controller import Mapper, owned_by
from skiff.core.jsoncopy import clone
from skiff.core.lanes import LANES
from skiff.core.reconcilers.podutil import is_active, is_ready, slow_start_batches
from skiff.core.selectors import from_label_selector_object

REPLICASET = Ref("apps/v1", "ReplicaSet")
POD = Ref("v1", "Pod")
BURST_REPLICAS = 500                # upstream replicaset controller's burstReplicas
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"   # upstream's utilrand alphanumerics


def scale_down_order(pods: list[Obj]) -> list[Obj]:
    """The order to delete pods in when scaling down (upstream ActivePods.Less, simplified):
    unscheduled before scheduled, Pending before Unknown before Running, not ready before
    ready, then the youngest first."""
    youngest_first = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""),
                            reverse=True)

    def rank(pod: Obj) -> tuple[int, int, int]:
        phase = str((pod.get("status") or {}).get("phase"))
        return (1 if (pod.get("spec") or {}).get("nodeName") else 0,
                {"Pending": 0, "Unknown": 1, "Running": 2}.get(phase, 0),
                1 if is_ready(pod) else 0)
    return sorted(youngest_first, key=rank)   # stable: ties stay youngest first


@dataclass
class Plan:
    create: int = 0
    delete: list[str] = field(default_factory=list)
    status: Obj = field(default_factory=dict)


def plan(rs: Obj, pods: list[Obj]) -> Plan:
    """What to create and delete now, and the status to report, for the ReplicaSet's own pods.
    Finished pods are deleted and replaced (the node does not keep them: no pod GC here)."""
    want = int((rs.get("spec") or {}).get("replicas", 1))
    active = [p for p in pods if is_active(p)]
    out = Plan(delete=[p["metadata"]["name"] for p in pods
                       if not p["metadata"].get("deletionTimestamp") and not is_active(p)])
    if len(active) < want:
        out.create = min(want - len(active), BURST_REPLICAS)   # the rest on the next sync
    elif len(active) > want:
        extra = scale_down_order(active)[: min(len(active) - want, BURST_REPLICAS)]
        out.delete += [p["metadata"]["name"] for p in extra]
    ready = sum(1 for p in active if is_ready(p))
    labels = ((rs.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
    fully = sum(1 for p in active
                if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items()))
    status: Obj = {"replicas": len(active), "fullyLabeledReplicas": fully, "readyReplicas": ready,
                   "availableReplicas": ready,
                   "observedGeneration": rs["metadata"].get("generation", 1)}
    out.status = {k: v for k, v in status.items() if v or k in ("replicas", "observedGeneration")}
    return out


def make_pod(rs: Obj, suffix: str) -> Obj:
    """A pod of the ReplicaSet's template (pure; the suffix is chosen by the caller)."""
    tmpl = clone((rs.get("spec") or {}).get("template") or {})
    meta = tmpl.get("metadata") or {}
    name = rs["metadata"]["name"]
    pod_meta: dict[str, Any] = {
        "name": f"{name}-{suffix}", "namespace": rs["metadata"]["namespace"],
        "labels": dict(meta.get("labels") or {}),
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name,
                             "uid": rs["metadata"]["uid"], "controller": True,
                             "blockOwnerDeletion": True}],
    }
    if meta.get("annotations"):
        pod_meta["annotations"] = dict(meta["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": tmpl.get("spec") or {}}


def random_suffix() -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))


def owned_pods(owner: Obj, pods: list[Obj]) -> list[Obj]:
    """The pods whose controller is `owner` and that its selector still matches."""
    sel = from_label_selector_object((owner.get("spec") or {}).get("selector") or {})
    uid = owner["metadata"]["uid"]
    return [p for p in pods
            if any(r.get("uid") == uid and r.get("controller")
                   for r in p["metadata"].get("ownerReferences") or [])
            and sel.matches(p["metadata"].get("labels") or {})]


async def _create(client: Client, obj: Obj) -> Obj | BaseException:
    """client.create, its error returned as asyncio.gather(return_exceptions=True) would."""
    try:
        return await client.create(obj)
    except Exception as e:
        return e


class ReplicaSetReconciler:
    name = "replicaset"
    primary = REPLICASET
    lane = "pod"   # core/lanes.py: a scale from zero waits on this controller

    def __init__(self, client: Client) -> None:
        self.client = client

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        return [(POD, owned_by("ReplicaSet", "apps"))]

    async def reconcile(self, namespace: str, name: str) -> float | None:
        try:
            rs = await self.client.get(REPLICASET, name, namespace)
        except ApiError as e:
            if e.code == 404:
                return None
            raise
        if rs["metadata"].get("deletionTimestamp"):
            return None
        pods = owned_pods(rs, await self.client.list(POD, namespace))
        p = plan(rs, pods)
        created: list[Obj] = []
        for size in slow_start_batches(p.create):
            if size == 1:     # the usual case (a scale from zero): no task hop for it
                results: list[Any] = [await _create(self.client, make_pod(rs, random_suffix()))]
            else:
                results = await asyncio.gather(
                    *(self.client.create(make_pod(rs, random_suffix())) for _ in range(size)),
                    return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            created += [r for r in results if not isinstance(r, BaseException)]
            if failed:
                raise failed[0]   # skip the rest; the controller retries with backoff
        for pod_name in p.delete:
            await self.client.delete(POD, pod_name, namespace)
        # the status counts the pods just made (the next sync would, one write later)
        status = plan(rs, pods + created).status if created else p.status
        if created:
            await LANES.after_spec_writes()   # the node first (core/lanes.py)
            rs = await self.client.get(REPLICASET, name, namespace)
        if (rs.get("status") or {}) != status:
            rs["status"] = status
            await self.client.update_status(rs)
        return None
