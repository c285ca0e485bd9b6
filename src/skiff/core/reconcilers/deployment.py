"""Deployment reconciler: ReplicaSets per template, rolled as kube-controller-manager rolls them.

A Deployment owns one ReplicaSet per pod template it has had, named
`<deployment>-<pod-template-hash>` (replicaset.py keeps each one's pods). The
current template's ReplicaSet is "new", the others "old"; each carries the
revision it was made (or rolled back to) in deployment.kubernetes.io/revision,
so `kubectl rollout history|undo|restart|status|pause|resume` work as on a
cluster. RollingUpdate scales the new one up by maxSurge and the old ones down
while at least replicas - maxUnavailable pods stay available; Recreate scales
the old ones to zero first. Old ReplicaSets at zero beyond
revisionHistoryLimit are deleted. Conditions Available and Progressing carry
upstream's reasons, ProgressDeadlineExceeded included. plan() is the pure
decision (table-tested); DeploymentReconciler is the thin shell. Neighbours:
replicaset.py, core/controller.py, serving's revision reconciler (reads the
conditions), gc.py (deleting a Deployment cascades to its ReplicaSets and pods).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.clock import parse_time, rfc3339, utcnow
from skiff.core.controller import Mapper, owned_by
from skiff.core.jsoncopy import clone
from skiff.core.lanes import LANES
from skiff.core.reconcilers.podutil import is_active, revision_hash
from skiff.core.reconcilers.replicaset import (
    BURST_REPLICAS,  # noqa: F401 - re-exported: the cap is the ReplicaSet controller's
    POD,
    REPLICASET,
    owned_pods,
)

DEPLOYMENT = Ref("apps/v1", "Deployment")
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"


def _normalized(value: Any) -> Any:
    """The template as Go's typed encoding sees it: nulls and empty maps/lists are absent
    (kubectl sends `creationTimestamp: null` back with `rollout undo`)."""
    if isinstance(value, dict):
        out = {k: _normalized(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    return value


def template_hash(template: Obj) -> str:
    """A stable, DNS-safe hash of a pod template (upstream: a safe-encoded fnv32)."""
    meta = template.get("metadata") or {}
    labels = meta.get("labels") or {}
    if HASH_LABEL in labels:     # (no deep copy: _normalized builds the hashed value anew)
        template = {**template, "metadata": {
            **meta, "labels": {k: v for k, v in labels.items() if k != HASH_LABEL}}}
    return revision_hash(_normalized(template))


def _int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        try:
            frac = float(value[:-1]) * total / 100
        except ValueError:
            return 0
        return math.ceil(frac) if round_up else math.floor(frac)
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def fenceposts(deploy: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as numbers; surge rounds up, unavailable down, and both zero
    means one unavailable (upstream ResolveFenceposts)."""
    spec = deploy.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0, replicas
    ru = strategy.get("rollingUpdate") or {}
    surge = _int_or_percent(ru.get("maxSurge", "25%"), replicas, True)
    unavailable = _int_or_percent(ru.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def revision(rs: Obj) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _spec_replicas(rs: Obj) -> int:
    return int((rs.get("spec") or {}).get("replicas", 0) or 0)


def _st(rs: Obj, key: str) -> int:
    return int((rs.get("status") or {}).get(key, 0) or 0)


def new_replicaset(deploy: Obj, h: str, rev: int, replicas: int) -> Obj:
    """The ReplicaSet for the Deployment's current template (pure)."""
    spec = deploy.get("spec") or {}
    tmpl = clone(spec.get("template") or {})
    tmeta = tmpl.setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), HASH_LABEL: h}
    selector = clone(spec.get("selector") or {})
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: h}
    meta = deploy["metadata"]
    rs_spec: Obj = {"replicas": replicas, "selector": selector, "template": tmpl}
    if spec.get("minReadySeconds"):
        rs_spec["minReadySeconds"] = spec["minReadySeconds"]
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": f"{meta['name']}-{h}", "namespace": meta["namespace"],
            "labels": dict(tmeta["labels"]),
            "annotations": {REVISION: str(rev)},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                 "name": meta["name"], "uid": meta["uid"], "controller": True,
                                 "blockOwnerDeletion": True}],
        },
        "spec": rs_spec,
    }


@dataclass
class Plan:
    create: Obj | None = None                          # the new ReplicaSet, when there is none
    replicas: dict[str, int] = field(default_factory=dict)        # ReplicaSet -> spec.replicas
    annotations: dict[str, dict[str, str]] = field(default_factory=dict)   # ReplicaSet -> set
    delete_replicasets: list[str] = field(default_factory=list)
    delete_pods: list[str] = field(default_factory=list)   # pods an older skiff made directly
    revision: str = ""                                 # the Deployment's revision annotation
    status: Obj = field(default_factory=dict)
    complete: bool = False


def plan(deploy: Obj, replicasets: list[Obj], legacy_pods: list[Obj] | None = None) -> Plan:
    """What to create, scale, annotate and delete now, and the status to report. Pure."""
    spec = deploy.get("spec") or {}
    meta = deploy["metadata"]
    want = int(spec.get("replicas", 1))
    paused = bool(spec.get("paused"))
    h = template_hash(spec.get("template") or {})
    surge, unavailable = fenceposts(deploy)
    new = next((rs for rs in replicasets
                if (rs["metadata"].get("labels") or {}).get(HASH_LABEL) == h), None)
    old = sorted((rs for rs in replicasets if rs is not new), key=revision)
    max_old = max((revision(rs) for rs in old), default=0)
    out = Plan()
    replicas = {rs["metadata"]["name"]: _spec_replicas(rs) for rs in replicasets}
    created = False
    if new is None and not paused:
        new = new_replicaset(deploy, h, max_old + 1, 0)
        out.create, created = new, True
        replicas[new["metadata"]["name"]] = 0
    if new is not None:
        name = new["metadata"]["name"]
        # A template rolled back to (an old ReplicaSet again current) gets the next revision.
        rev = revision(new) if revision(new) > max_old else max_old + 1
        notes = {REVISION: str(rev), DESIRED: str(want), MAX_REPLICAS: str(want + surge)}
        cause = (meta.get("annotations") or {}).get(CHANGE_CAUSE)
        if cause:
            notes[CHANGE_CAUSE] = cause
        have = new["metadata"].get("annotations") or {}
        if any(have.get(k) != v for k, v in notes.items()):
            out.annotations[name] = notes
        out.revision = notes[REVISION]
        if out.create is not None:
            out.create["metadata"]["annotations"] = {**have, **notes}

    recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
    legacy = [p for p in legacy_pods or [] if is_active(p)]
    if new is not None and not paused:
        name = new["metadata"]["name"]
        if recreate:
            for rs in old:
                replicas[rs["metadata"]["name"]] = 0
            if all(_st(rs, "replicas") == 0 for rs in old) and not legacy:
                replicas[name] = want
        else:
            total = sum(replicas.values())
            if replicas[name] < want:
                replicas[name] = min(want, replicas[name] + max(0, want + surge - total))
            elif replicas[name] > want:
                replicas[name] = want
            all_pods = sum(replicas.values())
            new_available = 0 if created else _st(new, "availableReplicas")
            budget = all_pods - (want - unavailable) - (replicas[name] - new_available)
            for rs in old:   # oldest revision first
                if budget <= 0:
                    break
                take = min(replicas[rs["metadata"]["name"]], budget)
                replicas[rs["metadata"]["name"]] -= take
                budget -= take
    # (a paused Deployment keeps its ReplicaSets as they are: kubectl rollout pause)
    out.replicas = {rs["metadata"]["name"]: replicas[rs["metadata"]["name"]] for rs in replicasets
                    if _spec_replicas(rs) != replicas[rs["metadata"]["name"]]}
    if out.create is not None:
        out.create["spec"]["replicas"] = replicas[out.create["metadata"]["name"]]

    # Pods an older skiff made without a ReplicaSet go as old pods would: at once under
    # Recreate, once the new ReplicaSet is available under RollingUpdate.
    new_available = 0 if new is None or created else _st(new, "availableReplicas")
    if legacy and (recreate or new_available >= want):
        out.delete_pods = [p["metadata"]["name"] for p in legacy]

    limit = int(spec.get("revisionHistoryLimit", 10))
    idle_old = [rs for rs in old if replicas[rs["metadata"]["name"]] == 0
                and _st(rs, "replicas") == 0 and not rs["metadata"].get("deletionTimestamp")]
    if len(idle_old) > limit:
        out.delete_replicasets = [rs["metadata"]["name"] for rs in idle_old[: len(idle_old) - limit]]

    out.status, out.complete = _status(deploy, replicasets, new, created, legacy, unavailable)
    return out


def _status(deploy: Obj, replicasets: list[Obj], new: Obj | None, created: bool,
            legacy: list[Obj], unavailable: int) -> tuple[Obj, bool]:
    spec = deploy.get("spec") or {}
    want = int(spec.get("replicas", 1))
    total = sum(_st(rs, "replicas") for rs in replicasets) + len(legacy)
    updated = 0 if new is None or created else _st(new, "replicas")
    ready = sum(_st(rs, "readyReplicas") for rs in replicasets)
    available = sum(_st(rs, "availableReplicas") for rs in replicasets)
    spec_total = sum(_spec_replicas(rs) for rs in replicasets)
    gen = deploy["metadata"].get("generation", 1)
    complete = updated == want and total == want and available >= want
    rs_name = new["metadata"]["name"] if new is not None else ""
    is_available = available >= want - unavailable
    if spec.get("paused"):
        progressing = ("Unknown", "DeploymentPaused", "Deployment is paused")
    elif complete:
        progressing = ("True", "NewReplicaSetAvailable",
                       f'ReplicaSet "{rs_name}" has successfully progressed.')
    elif created:
        progressing = ("True", "NewReplicaSetCreated", f'Created new replica set "{rs_name}"')
    else:
        progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
    status: Obj = {
        "observedGeneration": gen, "replicas": total, "updatedReplicas": updated,
        "readyReplicas": ready, "availableReplicas": available,
        "unavailableReplicas": max(spec_total - available, 0),
        "conditions": [
            {"type": "Available", "status": "True" if is_available else "False",
             "reason": "MinimumReplicasAvailable" if is_available else "MinimumReplicasUnavailable",
             "message": "Deployment has minimum availability." if is_available
             else "Deployment does not have minimum availability."},
            {"type": "Progressing", "status": progressing[0], "reason": progressing[1],
             "message": progressing[2]},
        ],
    }
    for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
              "unavailableReplicas"):
        if not status[k]:
            del status[k]   # upstream omits zero counts
    return status, complete


_COUNTS = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")


def with_deadline(deploy: Obj, status: Obj, complete: bool, now: str) -> tuple[Obj, float | None]:
    """Stamp the conditions' times and apply progressDeadlineSeconds: Progressing turns False
    (ProgressDeadlineExceeded) when a rollout has made no progress for that long. Returns the
    status and the seconds after which to look again (None: nothing to wait for). Pure."""
    old = deploy.get("status") or {}
    prev = {c.get("type"): c for c in old.get("conditions") or []}
    progressed = any(old.get(k) != status.get(k) for k in _COUNTS) or \
        (prev.get("Progressing") or {}).get("reason") not in (
            next(c["reason"] for c in status["conditions"] if c["type"] == "Progressing"),
            "ProgressDeadlineExceeded")
    requeue: float | None = None
    deadline = (deploy.get("spec") or {}).get("progressDeadlineSeconds")
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    if not complete and progressing["status"] == "True" and deadline:
        last_s = (prev.get("Progressing") or {}).get("lastUpdateTime")
        last = parse_time(now if progressed or not last_s else last_s)
        now_t = parse_time(now)
        assert last is not None and now_t is not None
        left = (last + timedelta(seconds=int(deadline)) - now_t).total_seconds()
        if left <= 0:
            rs_name = progressing["message"].split('"')[1] if '"' in progressing["message"] else ""
            progressing.update(status="False", reason="ProgressDeadlineExceeded",
                               message=f'ReplicaSet "{rs_name}" has timed out progressing.')
        else:
            requeue = left
    for c in status["conditions"]:
        p = prev.get(c["type"])
        same = p is not None and p.get("status") == c["status"]
        c["lastTransitionTime"] = (p or {}).get("lastTransitionTime", now) if same else now
        keep = same and not progressed and p is not None and p.get("reason") == c["reason"]
        c["lastUpdateTime"] = (p or {}).get("lastUpdateTime", now) if keep else now
    return status, requeue


def _without_times(status: Obj) -> Obj:
    return {**status, "conditions": [{k: v for k, v in c.items() if "Time" not in k}
                                     for c in status.get("conditions") or []]}


def _progress_stamp(status: Obj) -> str | None:
    """When the rollout last progressed (a change here is worth a write: the deadline reads it)."""
    return next((c.get("lastUpdateTime") for c in status.get("conditions") or []
                 if c.get("type") == "Progressing"), None)


class DeploymentReconciler:
    name = "deployment"
    primary = DEPLOYMENT
    lane = "pod"   # core/lanes.py: a scale from zero waits on this controller

    def __init__(self, client: Client) -> None:
        self.client = client

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        return [(REPLICASET, owned_by("Deployment", "apps")),
                (POD, owned_by("Deployment", "apps"))]   # pods an older skiff made directly

    async def reconcile(self, namespace: str, name: str) -> float | None:
        try:
            d = await self.client.get(DEPLOYMENT, name, namespace)
        except ApiError as e:
            if e.code == 404:
                return None
            raise
        if d["metadata"].get("deletionTimestamp"):
            return None
        uid = d["metadata"]["uid"]
        rss = [rs for rs in await self.client.list(REPLICASET, namespace)
               if any(r.get("uid") == uid and r.get("controller")
                      for r in rs["metadata"].get("ownerReferences") or [])]
        legacy = owned_pods(d, await self.client.list(POD, namespace))
        p = plan(d, rss, legacy)
        if p.create is not None:
            try:
                await self.client.create(p.create)
            except ApiError as e:
                if e.code != 409:
                    raise
                return 0.1   # created by an earlier pass we have not seen yet: look again
        # one write per ReplicaSet, its annotations and replicas together (upstream's
        # scaleReplicaSet): each write wakes the ReplicaSet controller and the watches
        created = p.create["metadata"]["name"] if p.create is not None else None
        patched: dict[str, Obj] = {}
        for rs_name in [*p.annotations, *(n for n in p.replicas if n not in p.annotations)]:
            body: Obj = {}
            if rs_name in p.annotations and rs_name != created:
                body["metadata"] = {"annotations": p.annotations[rs_name]}
            if rs_name in p.replicas:
                body["spec"] = {"replicas": p.replicas[rs_name]}
            if body:
                patched[rs_name] = await self.client.patch(REPLICASET, rs_name, body, namespace)
        for rs_name in p.delete_replicasets:
            await self.client.delete(REPLICASET, rs_name, namespace)
        for pod_name in p.delete_pods:
            await self.client.delete(POD, pod_name, namespace)
        if p.revision and (d["metadata"].get("annotations") or {}).get(REVISION) != p.revision:
            d = await self.client.patch(DEPLOYMENT, name,
                                        {"metadata": {"annotations": {REVISION: p.revision}}},
                                        namespace)
        if patched or p.create is not None:
            # the ReplicaSet controller and the node first (core/lanes.py); then this status
            await LANES.after_spec_writes()
            d = await self.client.get(DEPLOYMENT, name, namespace)
        if patched and p.create is None:
            # the status as of the ReplicaSets just scaled (their next event would bring it,
            # one write of the Deployment later)
            after = plan(d, [patched.get(rs["metadata"]["name"], rs) for rs in rss], legacy)
            p.status, p.complete = after.status, after.complete
        status, requeue = with_deadline(d, p.status, p.complete, rfc3339(utcnow()))
        old = d.get("status") or {}
        if _without_times(status) != _without_times(old) or \
                _progress_stamp(status) != _progress_stamp(old):
            d["status"] = status
            await self.client.update_status(d)
        return requeue
