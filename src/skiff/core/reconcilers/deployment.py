"""Deployment reconciler: keep `replicas` pods of the current template.

skiff has no ReplicaSet kind; a Deployment owns its pods directly, named
`<deployment>-<template-hash>-<suffix>` with the label pod-template-hash, as
upstream names them through the ReplicaSet. Rolling updates surge: pods of a
new template start first and old ones are deleted once enough new ones are
ready. Pods are created as the ReplicaSet controller creates them: at most
BURST_REPLICAS per sync, in slow-start batches of 1, 2, 4, 8 ... that stop at
the first failure (slow_start_batches()), so a runaway replica count cannot
flood the API or the node in one go; the node runs at most its max-pods and
leaves the rest Pending. plan() and slow_start_batches() are the pure
decisions (table-tested); DeploymentReconciler is the thin shell that reads
the world and applies the plan. Neighbours:
core/controller.py (runtime), core/runtime/ (the node that runs the pods).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.clock import rfc3339, utcnow
from skiff.core.controller import Mapper, owned_by
from skiff.core.selectors import from_label_selector_object

DEPLOYMENT = Ref("apps/v1", "Deployment")
POD = Ref("v1", "Pod")
BURST_REPLICAS = 500                # upstream replicaset controller's burstReplicas
SLOW_START_INITIAL_BATCH_SIZE = 1   # upstream controller.SlowStartInitialBatchSize


def slow_start_batches(count: int, initial: int = SLOW_START_INITIAL_BATCH_SIZE) -> list[int]:
    """The sizes of the batches that create `count` pods: initial, then doubling. Pure.

    As upstream's slowStartBatch: each batch runs only if every call of the one before
    succeeded, so a failing create (quota, a bad template, a full store) costs a few calls,
    not `count`.
    """
    out: list[int] = []
    remaining = max(count, 0)
    size = min(remaining, max(initial, 1))
    while size > 0:
        out.append(size)
        remaining -= size
        size = min(2 * size, remaining)
    return out


def template_hash(template: Obj) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    # Upstream's hash is a safe-encoded fnv32 of the template; any stable short hash serves.
    return "".join(c for c in digest if c in "bcdfghjklmnpqrstvwxz2456789")[:10] or digest[:10]


def _ready(pod: Obj) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def _alive(pod: Obj) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and \
        (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


@dataclass
class Plan:
    create: int = 0                 # new pods of the current template
    delete: list[str] = field(default_factory=list)
    status: Obj = field(default_factory=dict)


def plan(deploy: Obj, pods: list[Obj]) -> Plan:
    """What to create and delete now, and the status to report. Pure."""
    spec = deploy.get("spec") or {}
    want = int(spec.get("replicas", 1))
    h = template_hash(spec.get("template") or {})
    alive = [p for p in pods if _alive(p)]
    current = [p for p in alive if (p["metadata"].get("labels") or {}).get("pod-template-hash") == h]
    old = [p for p in alive if p not in current]
    # Terminal pods of a Deployment are replaced (restartPolicy Always makes this rare).
    dead = [p["metadata"]["name"] for p in pods
            if not p["metadata"].get("deletionTimestamp") and p not in alive]
    out = Plan(delete=list(dead))
    if len(current) < want:
        out.create = min(want - len(current), BURST_REPLICAS)   # the rest on the next sync
    elif len(current) > want:
        # Scale down: unready pods go first, then the youngest.
        extra = sorted(current, key=lambda p: (_ready(p), p["metadata"].get("creationTimestamp", "")),
                       reverse=False)[: len(current) - want]
        out.delete += [p["metadata"]["name"] for p in extra]
    ready_current = sum(1 for p in current if _ready(p))
    if old and ready_current >= min(want, len(current)):
        out.delete += [p["metadata"]["name"] for p in old]
    ready = sum(1 for p in alive if _ready(p))
    available = ready >= want if want else True
    gen = deploy["metadata"].get("generation", 1)
    out.status = {
        "observedGeneration": gen,
        "replicas": len(alive),
        "updatedReplicas": len(current),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "unavailableReplicas": max(len(alive) - ready, 0),
        "conditions": [
            {"type": "Available", "status": "True" if available else "False",
             "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
             "message": "Deployment has minimum availability." if available
             else "Deployment does not have minimum availability."},
            {"type": "Progressing", "status": "True",
             "reason": "NewReplicaSetAvailable" if ready_current >= want else "ReplicaSetUpdated",
             "message": f'ReplicaSet "{deploy["metadata"]["name"]}-{h}" '
                        + ("has successfully progressed." if ready_current >= want else "is progressing.")},
        ],
    }
    for k in ("readyReplicas", "availableReplicas", "unavailableReplicas"):
        if not out.status[k]:
            del out.status[k]   # upstream omits zero counts
    return out


def make_pod(deploy: Obj, h: str, suffix: str) -> Obj:
    """A pod of the Deployment's current template (pure; the suffix is chosen by the caller)."""
    tmpl = copy.deepcopy((deploy.get("spec") or {}).get("template") or {})
    meta = tmpl.get("metadata") or {}
    labels = dict(meta.get("labels") or {})
    labels["pod-template-hash"] = h
    name = deploy["metadata"]["name"]
    pod_meta: dict[str, Any] = {
        "name": f"{name}-{h}-{suffix}", "namespace": deploy["metadata"]["namespace"],
        "labels": labels,
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                             "uid": deploy["metadata"]["uid"], "controller": True,
                             "blockOwnerDeletion": True}],
    }
    if meta.get("annotations"):
        pod_meta["annotations"] = dict(meta["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": tmpl.get("spec") or {}}


def _without_times(status: Obj) -> Obj:
    return {**status, "conditions": [{k: v for k, v in c.items() if "Time" not in k}
                                     for c in status.get("conditions") or []]}


def _conditions_equal(a: Obj, b: Obj) -> bool:
    return _without_times(a) == _without_times(b)


def _stamp(new: Obj, old: Obj, now: str) -> Obj:
    """Keep lastTransitionTime when a condition's status did not change."""
    prev = {c["type"]: c for c in old.get("conditions") or []}
    for c in new.get("conditions") or []:
        p = prev.get(c["type"])
        same = p is not None and p.get("status") == c["status"]
        c["lastTransitionTime"] = p.get("lastTransitionTime", now) if same and p else now
        c["lastUpdateTime"] = now
    return new


class DeploymentReconciler:
    name = "deployment"
    primary = DEPLOYMENT

    def __init__(self, client: Client) -> None:
        self.client = client

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        return [(POD, owned_by("Deployment", "apps"))]

    async def reconcile(self, namespace: str, name: str) -> float | None:
        try:
            d = await self.client.get(DEPLOYMENT, name, namespace)
        except ApiError as e:
            if e.code == 404:
                return None
            raise
        if d["metadata"].get("deletionTimestamp"):
            return None
        sel = from_label_selector_object((d.get("spec") or {}).get("selector") or {})
        pods = [p for p in await self.client.list(POD, namespace)
                if any(r.get("uid") == d["metadata"]["uid"]
                       for r in p["metadata"].get("ownerReferences") or [])
                and sel.matches(p["metadata"].get("labels") or {})]
        p = plan(d, pods)
        h = template_hash((d.get("spec") or {}).get("template") or {})
        for size in slow_start_batches(p.create):
            results = await asyncio.gather(
                *(self.client.create(make_pod(d, h, secrets.token_hex(3)[:5]))
                  for _ in range(size)), return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                raise failed[0]   # skip the rest; the controller retries with backoff
        for pod_name in p.delete:
            await self.client.delete(POD, pod_name, namespace)
        old_status = d.get("status") or {}
        if not _conditions_equal(p.status, old_status):
            d["status"] = _stamp(p.status, old_status, rfc3339(utcnow()))
            await self.client.update_status(d)
        return None
