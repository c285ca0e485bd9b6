"""Pod helpers the workload controllers share (Job, DaemonSet, StatefulSet, CronJob).

Pure: pod state as the upstream controllers read it (active, terminal,
ready, available), controller ownerReferences, the pods a controller owns,
conditions stamped with transition times, and the ControllerRevision a
template becomes (upstream's history package). The async helper
owned_pods() is the one read the reconcilers share. Neighbours:
core/reconcilers/{job,cronjob,daemonset,statefulset}.py,
core/reconcilers/deployment.py (the same slow start for Deployments).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.clock import parse_rfc3339, rfc3339
from skiff.core.jsoncopy import clone
from skiff.core.selectors import from_label_selector_object

POD = Ref("v1", "Pod")
CONTROLLER_REVISION = Ref("apps/v1", "ControllerRevision")


def slow_start_batches(count: int, initial: int = 1) -> list[int]:
    """Batch sizes for creating `count` pods: 1, 2, 4, ... (upstream's slowStartBatch: a
    batch runs only if every call of the one before succeeded). Pure."""
    out: list[int] = []
    remaining = max(count, 0)
    size = min(remaining, max(initial, 1))
    while size > 0:
        out.append(size)
        remaining -= size
        size = min(2 * size, remaining)
    return out


def revision_hash(data: Any) -> str:
    """A short, stable, label-safe hash of revision data (upstream: safe-encoded fnv32)."""
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    return "".join(c for c in digest if c in "bcdfghjklmnpqrstvwxz2456789")[:10] or digest[:10]


def phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def is_terminal(pod: Obj) -> bool:
    return phase(pod) in ("Succeeded", "Failed")


def is_deleting(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_active(pod: Obj) -> bool:
    """controller.FilterActivePods: neither finished nor being deleted."""
    return not is_terminal(pod) and not is_deleting(pod)


def is_ready(pod: Obj) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def ready_since(pod: Obj) -> datetime | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "True" and c.get("lastTransitionTime"):
            return parse_rfc3339(str(c["lastTransitionTime"]))
    return None


def is_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    """podutil.IsPodAvailable: Ready for at least minReadySeconds."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and (now - since).total_seconds() >= min_ready_seconds


def controller_ref(owner: Obj, api_version: str, kind: str) -> Obj:
    return {"apiVersion": api_version, "kind": kind, "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def controlled_by(obj: Obj, uid: str) -> bool:
    return any(r.get("uid") == uid and r.get("controller")
               for r in obj["metadata"].get("ownerReferences") or [])


def select_owned(owner: Obj, objs: list[Obj]) -> list[Obj]:
    """The objects `owner` controls whose labels its selector matches (claimed children)."""
    sel = from_label_selector_object(((owner.get("spec") or {}).get("selector")) or {})
    uid = owner["metadata"]["uid"]
    return [o for o in objs if controlled_by(o, uid)
            and sel.matches(o["metadata"].get("labels") or {})]


async def owned_pods(client: Client, owner: Obj) -> list[Obj]:
    return select_owned(owner, await client.list(POD, owner["metadata"]["namespace"]))


def condition(type_: str, status: str, reason: str, message: str, now: datetime,
              probe: bool = False) -> Obj:
    c: Obj = {"type": type_, "status": status}
    if probe:
        c["lastProbeTime"] = rfc3339(now)
    c.update({"lastTransitionTime": rfc3339(now), "reason": reason, "message": message})
    return c


def set_condition(conditions: list[Obj], new: Obj) -> list[Obj]:
    """Replace the condition of new's type, keeping its transition time when the status is
    unchanged (and its place in the list); append it otherwise."""
    out = []
    found = False
    for c in conditions:
        if c.get("type") == new["type"]:
            found = True
            if c.get("status") == new["status"] and c.get("reason") == new.get("reason"):
                out.append(c)
            else:
                out.append(new)
        else:
            out.append(c)
    if not found:
        out.append(new)
    return out


def condition_true(conditions: list[Any], type_: str) -> bool:
    return any(isinstance(c, dict) and c.get("type") == type_ and c.get("status") == "True"
               for c in conditions)


def get_condition(conditions: list[Any], type_: str) -> Obj | None:
    for c in conditions:
        if isinstance(c, dict) and c.get("type") == type_:
            return c
    return None


# --- ControllerRevision (k8s.io/kubernetes/pkg/controller/history) ---------------

def template_patch(template: Obj) -> Obj:
    """The revision data of a StatefulSet or DaemonSet: its template as a replacing patch."""
    tmpl = clone(template)
    tmpl["$patch"] = "replace"
    return {"spec": {"template": tmpl}}


def template_of(revision: Obj) -> Obj:
    tmpl = clone(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    tmpl.pop("$patch", None)
    return tmpl


def make_revision(owner: Obj, api_version: str, kind: str, name: str, hash_: str, number: int,
                  template: Obj) -> Obj:
    labels = dict(((template.get("metadata") or {}).get("labels")) or {})
    labels["controller.kubernetes.io/hash"] = hash_
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": name, "namespace": owner["metadata"]["namespace"],
                         "labels": labels,
                         "ownerReferences": [controller_ref(owner, api_version, kind)]},
            "data": template_patch(template), "revision": number}


def revisions_to_prune(revisions: list[Obj], keep: set[str], limit: int) -> list[str]:
    """history.Truncate: the oldest revisions beyond `limit`, never one still in use."""
    spare = sorted((r for r in revisions if r["metadata"]["name"] not in keep),
                   key=lambda r: int(r.get("revision") or 0))
    extra = len(spare) - max(limit, 0)
    return [r["metadata"]["name"] for r in spare[:extra]] if extra > 0 else []


@dataclass
class RevisionPlan:
    name: str                       # the update revision: the current template's
    hash: str
    create: Obj | None = None       # a new ControllerRevision
    renumber: int | None = None     # rolled back to an old template: its new number
    prune: list[str] = field(default_factory=list)


def plan_revisions(owner: Obj, api_version: str, kind: str, revisions: list[Obj],
                   keep: set[str]) -> RevisionPlan:
    """The ControllerRevision of owner's current template: reuse the one of the same hash
    (renumbered to the newest, as a rollback is), or make the next. Older ones beyond
    revisionHistoryLimit go, never one in `keep` (still used by pods or status). Pure."""
    spec = owner.get("spec") or {}
    tmpl = spec.get("template") or {}
    hash_ = revision_hash(template_patch(tmpl))
    name = f"{owner['metadata']['name']}-{hash_}"
    newest = max((int(r.get("revision") or 0) for r in revisions), default=0)
    out = RevisionPlan(name=name, hash=hash_)
    mine = next((r for r in revisions if r["metadata"]["name"] == name), None)
    if mine is None:
        out.create = make_revision(owner, api_version, kind, name, hash_, newest + 1, tmpl)
    elif int(mine.get("revision") or 0) < newest:
        out.renumber = newest + 1
    limit = int(spec.get("revisionHistoryLimit", 10))
    out.prune = revisions_to_prune(revisions, keep | {name}, limit)
    return out


async def apply_revisions(client: Client, namespace: str, rp: RevisionPlan,
                          revisions: list[Obj]) -> None:
    if rp.create is not None:
        try:
            await client.create(rp.create)
        except ApiError as e:
            if e.code != 409:
                raise
    if rp.renumber is not None:
        await client.patch(CONTROLLER_REVISION, rp.name, {"revision": rp.renumber}, namespace)
    for name in rp.prune:
        await client.delete(CONTROLLER_REVISION, name, namespace)


async def owned_revisions(client: Client, owner: Obj) -> list[Obj]:
    return [r for r in await client.list(CONTROLLER_REVISION, owner["metadata"]["namespace"])
            if controlled_by(r, owner["metadata"]["uid"])]
