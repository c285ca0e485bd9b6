"""StatefulSet reconciler (apps/v1): pods with stable names <name>-0..N-1, as upstream's
StatefulSet controller (v1.32) keeps them.

plan(statefulset, pods, revisions, now) is pure. OrderedReady (the default)
creates one pod at a time, each Running and Ready before the next, and
scales down from the highest ordinal, one pod at a time, only while the rest
are healthy; Parallel creates and deletes all at once. Pods carry the labels
statefulset.kubernetes.io/pod-name, apps.kubernetes.io/pod-index and
controller-revision-hash (the ControllerRevision of their template), and
hostname/subdomain (spec.serviceName). RollingUpdate replaces pods from the
highest ordinal down to the partition, one at a time, each Ready before the
next; pods below the partition are made (and remade) at the current
revision; OnDelete waits for the user to delete pods. Status counts replicas
/ready/available/current/updated and carries currentRevision/
updateRevision, which `kubectl rollout status statefulset/x` reads.

volumeClaimTemplates are accepted but no storage is provisioned (no
PersistentVolumeClaims are made): writes answer with a Warning
(core/notimplemented.py). Neighbours: core/controller.py, podutil.py
(revisions), node/ (runs the pods).
"""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.clock import utcnow
from skiff.core.controller import Mapper, owned_by
from skiff.core.reconcilers import podutil

STATEFULSET = Ref("apps/v1", "StatefulSet")
POD = podutil.POD
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"
MAX_POD_CREATE_PER_SYNC = 500       # as the ReplicaSet controller's burstReplicas


def ordinal(sts_name: str, pod: Obj) -> int | None:
    m = re.fullmatch(re.escape(sts_name) + r"-(\d+)", str(pod["metadata"].get("name", "")))
    return int(m.group(1)) if m else None


def running_and_ready(pod: Obj) -> bool:
    return podutil.phase(pod) == "Running" and podutil.is_ready(pod)


def revision(pod: Obj) -> str:
    return str((pod["metadata"].get("labels") or {}).get(REVISION_LABEL, ""))


@dataclass
class Plan:
    create: list[tuple[int, str]] = field(default_factory=list)   # (ordinal, revision name)
    delete: list[str] = field(default_factory=list)               # pod names
    status: Obj = field(default_factory=dict)


def plan(sts: Obj, pods: list[Obj], update_revision: str, now: datetime) -> Plan:
    """What the StatefulSet controller does now. `pods` are the ones it owns. Pure."""
    spec = sts.get("spec") or {}
    name = sts["metadata"]["name"]
    old = sts.get("status") or {}
    replicas = int(spec.get("replicas", 1))
    start = int((spec.get("ordinals") or {}).get("start") or 0)
    parallel = spec.get("podManagementPolicy") == "Parallel"
    strategy = spec.get("updateStrategy") or {}
    rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
    partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
    current_revision = str(old.get("currentRevision") or update_revision)
    min_ready = int(spec.get("minReadySeconds") or 0)
    out = Plan()

    by_ordinal: dict[int, Obj] = {}
    for p in pods:
        i = ordinal(name, p)
        if i is not None:
            by_ordinal[i] = p
    wanted = range(start, start + replicas)

    def revision_for(i: int) -> str:
        # newVersionedStatefulSetPod: below the partition, pods stay at the current revision.
        return current_revision if rolling and i < start + partition else update_revision

    # Finished pods are replaced (deleted now, made again on a later pass).
    for _, pod in sorted(by_ordinal.items()):
        if podutil.is_terminal(pod) and not podutil.is_deleting(pod):
            out.delete.append(pod["metadata"]["name"])

    # OrderedReady: the first pod missing or not yet Running and Ready ends the walk. The walk
    # also ends after MAX_POD_CREATE_PER_SYNC creations, so a huge replica count costs nothing.
    for i in wanted:
        if len(out.create) >= MAX_POD_CREATE_PER_SYNC:
            break
        cur = by_ordinal.get(i)
        if cur is None or cur["metadata"]["name"] in out.delete:
            if cur is None:
                out.create.append((i, revision_for(i)))
            if not parallel:
                break
            continue
        if not parallel and (podutil.is_deleting(cur) or not running_and_ready(cur)):
            break

    condemned = sorted((i for i in by_ordinal if i not in wanted), reverse=True)
    present = [p for i, p in by_ordinal.items() if i in wanted]
    all_healthy = len(present) == replicas and all(
        running_and_ready(p) and not podutil.is_deleting(p) for p in present)
    for i in condemned:
        p = by_ordinal[i]
        if podutil.is_deleting(p):
            if not parallel:
                break              # one at a time: wait for it to go
            continue
        if parallel:
            out.delete.append(p["metadata"]["name"])
        elif all_healthy and not out.create:
            out.delete.append(p["metadata"]["name"])
            break
        else:
            break

    if rolling and not out.create and not condemned and all_healthy:
        for i in range(start + replicas - 1, start + partition - 1, -1):
            p = by_ordinal[i]
            if revision(p) != update_revision:
                out.delete.append(p["metadata"]["name"])
                break

    # Status (as upstream's computeReplicaStatus).
    counted = [p for p in pods if ordinal(name, p) is not None]
    ready = [p for p in counted if running_and_ready(p)]
    live = [p for p in counted if not podutil.is_deleting(p)]
    current_n = sum(1 for p in live if revision(p) == current_revision)
    updated_n = sum(1 for p in live if revision(p) == update_revision)
    st: Obj = {"observedGeneration": sts["metadata"].get("generation", 1),
               "replicas": len(counted),
               "availableReplicas": sum(1 for p in ready if podutil.is_available(p, min_ready, now)),
               "currentRevision": current_revision, "updateRevision": update_revision,
               "collisionCount": int(old.get("collisionCount") or 0)}
    if rolling and updated_n == len(counted) == replicas and len(ready) == replicas:
        st["currentRevision"] = update_revision      # the roll-out is complete
        current_n = updated_n
    for key, val in (("readyReplicas", len(ready)), ("currentReplicas", current_n),
                     ("updatedReplicas", updated_n)):
        if val:
            st[key] = val
    out.status = dict(sorted(st.items(), key=lambda kv: _STATUS_ORDER.index(kv[0])))
    out.delete = list(dict.fromkeys(out.delete))
    return out


_STATUS_ORDER = ["observedGeneration", "replicas", "readyReplicas", "currentReplicas",
                 "updatedReplicas", "currentRevision", "updateRevision", "collisionCount",
                 "availableReplicas"]


def make_pod(sts: Obj, i: int, revision_name: str, template: Obj) -> Obj:
    """Pod <name>-<i> of `template` (the revision's), with its identity labels. Pure."""
    tmpl = copy.deepcopy(template)
    meta = tmpl.get("metadata") or {}
    name = f"{sts['metadata']['name']}-{i}"
    labels = dict(meta.get("labels") or {})
    labels[REVISION_LABEL] = revision_name
    labels[POD_NAME_LABEL] = name
    labels[POD_INDEX_LABEL] = str(i)
    spec = tmpl.get("spec") or {}
    spec["hostname"] = name
    service = (sts.get("spec") or {}).get("serviceName")
    if service:
        spec["subdomain"] = service
    pod_meta: dict[str, Any] = {
        "name": name, "namespace": sts["metadata"]["namespace"], "labels": labels,
        "ownerReferences": [podutil.controller_ref(sts, "apps/v1", "StatefulSet")]}
    if meta.get("annotations"):
        pod_meta["annotations"] = dict(meta["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


class StatefulSetReconciler:
    name = "statefulset"
    primary = STATEFULSET

    def __init__(self, client: Client, clock: Callable[[], datetime] = utcnow) -> None:
        self.client = client
        self.clock = clock

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        return [(POD, owned_by("StatefulSet", "apps"))]

    async def reconcile(self, namespace: str, name: str) -> float | None:
        try:
            sts = await self.client.get(STATEFULSET, name, namespace)
        except ApiError as e:
            if e.code == 404:
                return None
            raise
        if sts["metadata"].get("deletionTimestamp"):
            return None
        pods = await podutil.owned_pods(self.client, sts)
        revisions = await podutil.owned_revisions(self.client, sts)
        status = sts.get("status") or {}
        in_use = {revision(p) for p in pods} | {str(status.get("currentRevision") or "")}
        rp = podutil.plan_revisions(sts, "apps/v1", "StatefulSet", revisions, in_use)
        await podutil.apply_revisions(self.client, namespace, rp, revisions)
        p = plan(sts, pods, rp.name, self.clock())
        templates = {r["metadata"]["name"]: podutil.template_of(r) for r in revisions}
        templates[rp.name] = (sts.get("spec") or {}).get("template") or {}
        for pod_name in p.delete:
            await self.client.delete(POD, pod_name, namespace)
        creates = [make_pod(sts, i, rev, templates.get(rev, templates[rp.name]))
                   for i, rev in p.create]
        for size in podutil.slow_start_batches(len(creates)):
            batch, creates = creates[:size], creates[size:]
            results = await asyncio.gather(*(self.client.create(o) for o in batch),
                                           return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)
                      and not (isinstance(r, ApiError) and r.code == 409)]
            if failed:
                raise failed[0]
        if p.status != status:
            sts["status"] = p.status
            await self.client.update_status(sts)
        min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready and p.status.get("availableReplicas", 0) < p.status.get("readyReplicas", 0):
            return float(min_ready)
        return None
