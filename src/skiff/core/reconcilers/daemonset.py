"""DaemonSet reconciler (apps/v1): one pod of the template on every eligible node.

skiff has one node ("skiff", a Node object the node runtime registers); the
decision is written for any list of nodes all the same. plan(daemonset,
nodes, pods, revision, now) is pure: the pods to create (pinned to their
node with the required node affinity upstream's controller uses, and its
default tolerations), the ones to delete (extra pods on a node, pods on
nodes the nodeSelector no longer picks, finished pods, and old-template pods
during a RollingUpdate, at most maxUnavailable at a time, or after the new
one is available when maxSurge > 0; OnDelete waits for the user), and the
status (desired/current/misscheduled/ready/updated/available/unavailable,
observedGeneration). Templates are kept as ControllerRevisions (podutil), so
`kubectl rollout history/status daemonset/x` work. Neighbours:
core/controller.py, podutil.py, node/ (runs the pods).
"""

from __future__ import annotations

import asyncio
import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.clock import utcnow
from skiff.core.controller import Mapper, owned_by
from skiff.core.reconcilers import podutil
from skiff.core.selectors import from_label_selector_object

DAEMONSET = Ref("apps/v1", "DaemonSet")
NODE = Ref("v1", "Node")
POD = podutil.POD
NO_NODE_RETRY = 1.0     # the Node registers just after the controllers start

# The tolerations upstream's daemon controller adds to every daemon pod.
DEFAULT_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]


def pod_node(pod: Obj) -> str:
    """The node a daemon pod is for: spec.nodeName, else its metadata.name node affinity."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    terms = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
             .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    for term in terms:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("values"):
                return str(f["values"][0])
    return ""


def should_run(ds: Obj, node: Obj) -> bool:
    """nodeSelector (and a required node affinity on labels, when simple) match the node."""
    spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    selector = spec.get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return False
    return True


def _int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        try:
            pct = float(value[:-1]) * total / 100
        except ValueError:
            return 0
        return math.ceil(pct) if round_up else math.floor(pct)
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


@dataclass
class Plan:
    create: list[str] = field(default_factory=list)     # node names
    delete: list[str] = field(default_factory=list)     # pod names
    status: Obj = field(default_factory=dict)


def plan(ds: Obj, nodes: list[Obj], pods: list[Obj], revision_hash: str, now: datetime) -> Plan:
    """What the DaemonSet controller does now. `pods` are the ones the DaemonSet owns. Pure."""
    spec = ds.get("spec") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    strategy = spec.get("updateStrategy") or {}
    out = Plan()
    by_node: dict[str, list[Obj]] = {}
    for p in pods:
        if podutil.is_terminal(p) and not podutil.is_deleting(p):
            out.delete.append(p["metadata"]["name"])   # failed daemon pods are replaced
            continue
        by_node.setdefault(pod_node(p), []).append(p)

    def updated(p: Obj) -> bool:
        return (p["metadata"].get("labels") or {}).get("controller-revision-hash") == revision_hash

    wanted = [n for n in nodes if should_run(ds, n)]
    wanted_names = {n["metadata"]["name"] for n in wanted}
    desired = len(wanted)
    max_unavailable = max(_int_or_percent((strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1),
                                          desired, True), 0)
    max_surge = _int_or_percent((strategy.get("rollingUpdate") or {}).get("maxSurge", 0), desired, True)
    rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"

    current = ready = available = updated_n = misscheduled = 0
    unavailable_now = 0
    old_candidates: list[tuple[str, list[Obj]]] = []
    for node_name, node_pods in by_node.items():
        live = [p for p in node_pods if not podutil.is_deleting(p)]
        if node_name not in wanted_names:
            if live:
                misscheduled += 1
            out.delete += [p["metadata"]["name"] for p in live]
    for node in wanted:
        name = node["metadata"]["name"]
        live = sorted((p for p in by_node.get(name, []) if not podutil.is_deleting(p)),
                      key=lambda p: str(p["metadata"].get("creationTimestamp", "")))
        if not live:
            if not by_node.get(name):          # none terminating either: make one
                out.create.append(name)
            unavailable_now += 1
            continue
        current += 1
        if len(live) > 1 and not (rolling and max_surge > 0):
            # Keep the oldest (of the current template if any), as upstream does.
            keep = next((p for p in live if updated(p)), live[0])
            out.delete += [p["metadata"]["name"] for p in live if p is not keep]
            live = [keep]
        if any(podutil.is_ready(p) for p in live):
            ready += 1
        if any(podutil.is_available(p, min_ready, now) for p in live):
            available += 1
        else:
            unavailable_now += 1
        if any(updated(p) for p in live):
            updated_n += 1
        olds = [p for p in live if not updated(p)]
        if olds:
            old_candidates.append((name, live))

    if rolling:
        budget = max_unavailable - unavailable_now
        for name, live in old_candidates:
            news = [p for p in live if updated(p)]
            olds = [p for p in live if not updated(p)]
            if max_surge > 0:
                if not news:
                    out.create.append(name)     # surge: the new pod first
                elif any(podutil.is_available(p, min_ready, now) for p in news):
                    out.delete += [p["metadata"]["name"] for p in olds]
                continue
            old_available = any(podutil.is_available(p, min_ready, now) for p in olds)
            if not old_available:
                out.delete += [p["metadata"]["name"] for p in olds]   # costs no availability
            elif budget > 0:
                budget -= 1
                out.delete += [p["metadata"]["name"] for p in olds]

    st: Obj = {"currentNumberScheduled": current, "numberMisscheduled": misscheduled,
               "desiredNumberScheduled": desired, "numberReady": ready,
               "observedGeneration": ds["metadata"].get("generation", 1)}
    if updated_n:
        st["updatedNumberScheduled"] = updated_n
    if available:
        st["numberAvailable"] = available
    if desired - available > 0:
        st["numberUnavailable"] = desired - available
    out.status = st
    out.delete = list(dict.fromkeys(out.delete))
    return out


def make_pod(ds: Obj, node_name: str, revision_hash: str) -> Obj:
    """A daemon pod for one node. Pure."""
    tmpl = copy.deepcopy((ds.get("spec") or {}).get("template") or {})
    meta = tmpl.get("metadata") or {}
    labels = dict(meta.get("labels") or {})
    labels["controller-revision-hash"] = revision_hash
    labels["pod-template-generation"] = str(ds["metadata"].get("generation", 1))
    spec = tmpl.get("spec") or {}
    affinity = spec.setdefault("affinity", {})
    affinity["nodeAffinity"] = {**(affinity.get("nodeAffinity") or {}),
                                "requiredDuringSchedulingIgnoredDuringExecution": {
                                    "nodeSelectorTerms": [{"matchFields": [
                                        {"key": "metadata.name", "operator": "In",
                                         "values": [node_name]}]}]}}
    tolerations = list(spec.get("tolerations") or [])
    for t in DEFAULT_TOLERATIONS:
        if not any(x.get("key") == t["key"] and x.get("effect") == t["effect"] for x in tolerations):
            tolerations.append(dict(t))
    spec["tolerations"] = tolerations
    pod_meta: dict[str, Any] = {
        "generateName": f"{ds['metadata']['name']}-", "namespace": ds["metadata"]["namespace"],
        "labels": labels, "ownerReferences": [podutil.controller_ref(ds, "apps/v1", "DaemonSet")]}
    if meta.get("annotations"):
        pod_meta["annotations"] = dict(meta["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


class DaemonSetReconciler:
    name = "daemonset"
    primary = DAEMONSET

    def __init__(self, client: Client, clock: Callable[[], datetime] = utcnow) -> None:
        self.client = client
        self.clock = clock

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        return [(POD, owned_by("DaemonSet", "apps"))]

    async def reconcile(self, namespace: str, name: str) -> float | None:
        try:
            ds = await self.client.get(DAEMONSET, name, namespace)
        except ApiError as e:
            if e.code == 404:
                return None
            raise
        if ds["metadata"].get("deletionTimestamp"):
            return None
        pods = await podutil.owned_pods(self.client, ds)
        revisions = await podutil.owned_revisions(self.client, ds)
        in_use = {f"{name}-{(p['metadata'].get('labels') or {}).get('controller-revision-hash')}"
                  for p in pods}
        rp = podutil.plan_revisions(ds, "apps/v1", "DaemonSet", revisions, in_use)
        await podutil.apply_revisions(self.client, namespace, rp, revisions)
        nodes = await self.client.list(NODE)
        sel = from_label_selector_object((ds.get("spec") or {}).get("selector") or {})
        p = plan(ds, nodes, [x for x in pods if sel.matches(x["metadata"].get("labels") or {})],
                 rp.hash, self.clock())
        for pod_name in p.delete:
            await self.client.delete(POD, pod_name, namespace)
        results = await asyncio.gather(*(self.client.create(make_pod(ds, n, rp.hash))
                                         for n in p.create), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]
        if p.status != (ds.get("status") or {}):
            ds["status"] = p.status
            await self.client.update_status(ds)
        if not nodes:
            return NO_NODE_RETRY
        # minReadySeconds: look again when a ready pod becomes available.
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        return float(min_ready) if min_ready and p.status.get("numberAvailable", 0) < p.status[
            "numberReady"] else None
