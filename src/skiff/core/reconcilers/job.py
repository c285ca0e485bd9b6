"""Job reconciler (batch/v1): run pods to completion, as kube-controller-manager's job
controller does in v1.32.

plan() is the whole decision, a pure function of (job, its pods, now): how
many pods to create (or which completion indexes, for Indexed jobs), which to
delete, the status to write (active, ready, terminating, succeeded, failed,
startTime, completionTime, completedIndexes, and the conditions Suspended,
FailureTarget then Failed, SuccessCriteriaMet then Complete, with upstream's
reasons BackoffLimitExceeded, DeadlineExceeded, CompletionsReached), whether
the finished Job's ttlSecondsAfterFinished has run out, and when to look
again (a deadline, a pod-failure backoff, a TTL: requeued, never polled).

Bounds: at most MAX_POD_CREATE_PER_SYNC creations per sync, in the
ReplicaSet controller's slow-start batches (1, 2, 4, ...), and at most
MAX_ACTIVE_PODS active pods per Job whatever its parallelism; the node runs
at most its max-pods and leaves the rest Pending.

Differences from upstream, on purpose: pods carry no job-tracking finalizer;
succeeded/failed never go down (the larger of the stored count and the pods
seen), so deleting a finished pod does not make the Job run it again; no
podFailurePolicy/successPolicy/backoffLimitPerIndex (accepted, the default
counting applies). The pod-failure backoff (10 s doubling to 6 min upstream)
has a configurable base (SKIFF_JOB_BACKOFF_BASE_SECONDS, read by
platform.py) so that tests need not wait. JobReconciler is the thin shell.
Neighbours: core/controller.py, podutil.py, core/workloadadmission.py
(defaults, generated selector), node/ (runs the pods).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.clock import parse_rfc3339, rfc3339, utcnow
from skiff.core.controller import Mapper, owned_by
from skiff.core.reconcilers import podutil

JOB = Ref("batch/v1", "Job")
POD = podutil.POD

MAX_POD_CREATE_PER_SYNC = 500       # upstream MaxPodCreateDeletePerSync
MAX_ACTIVE_PODS = 500               # skiff's own bound on one Job's active pods
BACKOFF_BASE = 10.0                 # upstream DefaultJobPodFailureBackOff
BACKOFF_MAX = 360.0                 # upstream MaxJobPodFailureBackOff
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"

MSG_BACKOFF = "Job has reached the specified backoff limit"
MSG_DEADLINE = "Job was active longer than specified deadline"
MSG_COMPLETIONS = "Reached expected number of succeeded pods"


@dataclass
class Plan:
    create: int = 0                                      # NonIndexed pods to create
    create_indexes: list[int] = field(default_factory=list)   # Indexed: one pod per index
    delete: list[str] = field(default_factory=list)      # pod names
    status: Obj = field(default_factory=dict)
    delete_job: bool = False                             # ttlSecondsAfterFinished ran out
    requeue_after: float | None = None


def backoff_delay(failures: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_MAX) -> float:
    """The wait before a new pod after `failures` consecutive pod failures. Pure."""
    if failures <= 0:
        return 0.0
    return float(min(base * 2 ** min(failures - 1, 32), cap))


def _finished_at(pod: Obj) -> datetime:
    """When a terminal pod finished: its containers' finishedAt, else its last transition."""
    times: list[str] = []
    st = pod.get("status") or {}
    for cs in st.get("containerStatuses") or []:
        t = ((cs.get("state") or {}).get("terminated") or {}).get("finishedAt")
        if t:
            times.append(str(t))
    if not times:
        times = [str(c["lastTransitionTime"]) for c in st.get("conditions") or []
                 if c.get("lastTransitionTime")]
    if not times:
        times = [str(pod["metadata"].get("creationTimestamp") or "1970-01-01T00:00:00Z")]
    return max(parse_rfc3339(t) for t in times)


def _restarts(pod: Obj) -> int:
    st = pod.get("status") or {}
    return sum(int(cs.get("restartCount") or 0)
               for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []))


def pod_index(pod: Obj) -> int | None:
    meta = pod["metadata"]
    raw = (meta.get("annotations") or {}).get(COMPLETION_INDEX, (meta.get("labels") or {}).get(COMPLETION_INDEX))
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def parse_indexes(text: str) -> set[int]:
    """status.completedIndexes ("1,3-5,7") as a set. Pure."""
    out: set[int] = set()
    for part in (text or "").split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            out.update(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            continue
    return out


def format_indexes(indexes: set[int]) -> str:
    """The compressed interval form upstream writes: "1,3-5,7"."""
    out: list[str] = []
    run: list[int] = []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [i]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(out)


def _finish_time(status: Obj) -> datetime | None:
    for c in status.get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return parse_rfc3339(str(status.get("completionTime") or c["lastTransitionTime"]))
    return None


def _scale_down_order(pods: list[Obj]) -> list[Obj]:
    """Which active pods go first when parallelism drops: not ready, then the youngest."""
    youngest_first = sorted(pods, key=lambda p: str(p["metadata"].get("creationTimestamp", "")),
                            reverse=True)
    return sorted(youngest_first, key=podutil.is_ready)   # stable: age order kept within


def plan(job: Obj, pods: list[Obj], now: datetime, backoff_base: float = BACKOFF_BASE) -> Plan:
    """What the job controller does now for `job`, whose pods are `pods`. Pure."""
    spec = job.get("spec") or {}
    old = job.get("status") or {}
    conditions: list[Obj] = copy.deepcopy(old.get("conditions") or [])
    indexed = spec.get("completionMode") == "Indexed"
    completions = spec.get("completions")
    parallelism = int(spec.get("parallelism", 1))
    backoff_limit = int(spec.get("backoffLimit", 6))
    out = Plan()
    requeue: list[float] = []

    active = [p for p in pods if podutil.is_active(p)]
    terminating = [p for p in pods if podutil.is_deleting(p) and not podutil.is_terminal(p)]
    succeeded_pods = [p for p in pods if podutil.phase(p) == "Succeeded"]
    failed_pods = [p for p in pods if podutil.phase(p) == "Failed"]

    done_indexes: set[int] = set()
    if indexed:
        done_indexes = parse_indexes(str(old.get("completedIndexes") or ""))
        done_indexes |= {i for p in succeeded_pods if (i := pod_index(p)) is not None}
        done_indexes = {i for i in done_indexes if completions is None or 0 <= i < int(completions)}
        succeeded = len(done_indexes)
    else:
        succeeded = max(int(old.get("succeeded") or 0), len(succeeded_pods))
    failed = max(int(old.get("failed") or 0), len(failed_pods))
    start = old.get("startTime")
    completion_time = old.get("completionTime")

    def status() -> Obj:
        remaining = [p for p in active if p["metadata"]["name"] not in out.delete]
        st: Obj = {}
        if conditions:
            st["conditions"] = conditions
        if start:
            st["startTime"] = start
        if completion_time:
            st["completionTime"] = completion_time
        n_active = len(remaining) + out.create + len(out.create_indexes)
        for key, val in (("active", n_active), ("succeeded", succeeded), ("failed", failed)):
            if val:
                st[key] = val
        if indexed and done_indexes:
            st["completedIndexes"] = format_indexes(done_indexes)
        deleting = len(terminating) + len(active) - len(remaining)
        st["terminating"] = deleting
        st["ready"] = sum(1 for p in remaining if podutil.is_ready(p))
        st["uncountedTerminatedPods"] = {}
        return st

    def finish_if_idle(final: str, interim: str, reason: str, message: str) -> None:
        """FailureTarget/SuccessCriteriaMet first; Failed/Complete once no pod still runs."""
        nonlocal conditions, completion_time
        conditions = podutil.set_condition(
            conditions, podutil.condition(interim, "True", reason, message, now, probe=True))
        out.delete = [p["metadata"]["name"] for p in active]
        if not active and not terminating:
            conditions = podutil.set_condition(
                conditions, podutil.condition(final, "True", reason, message, now, probe=True))
            if final == "Complete":
                completion_time = rfc3339(now)

    # A finished Job: only the TTL is left to watch.
    finished = _finish_time(old)
    if finished is not None:
        ttl = spec.get("ttlSecondsAfterFinished")
        if ttl is not None:
            expires = finished + timedelta(seconds=int(ttl))
            if now >= expires:
                out.delete_job = True
            else:
                requeue.append((expires - now).total_seconds())
        out.delete = [p["metadata"]["name"] for p in active]
        out.status = status()
        out.requeue_after = min(requeue) if requeue else None
        return out

    # Interim conditions set earlier: wait for the pods to go, then finish.
    for interim, final in (("FailureTarget", "Failed"), ("SuccessCriteriaMet", "Complete")):
        c = podutil.get_condition(conditions, interim)
        if c is not None and c.get("status") == "True":
            finish_if_idle(final, interim, str(c.get("reason", "")), str(c.get("message", "")))
            out.status = status()
            return out

    # Suspend: no pods, no start time (the deadline restarts on resume).
    if spec.get("suspend"):
        if not podutil.condition_true(conditions, "Suspended"):
            conditions = podutil.set_condition(conditions, podutil.condition(
                "Suspended", "True", "JobSuspended", "Job suspended", now, probe=True))
        out.delete = [p["metadata"]["name"] for p in active]
        start = None
        out.status = status()
        return out
    if podutil.condition_true(conditions, "Suspended"):
        conditions = podutil.set_condition(conditions, podutil.condition(
            "Suspended", "False", "JobResumed", "Job resumed", now, probe=True))
    if not start:
        start = rfc3339(now)

    # Failure: the backoff limit (pod failures, or restarts with OnFailure), then the deadline.
    restart_policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
    restarts = sum(_restarts(p) for p in active if podutil.phase(p) in ("Running", "Pending"))
    past_on_failure = restart_policy == "OnFailure" and (
        restarts > 0 if backoff_limit == 0 else restarts >= backoff_limit)
    deadline = spec.get("activeDeadlineSeconds")
    if failed > backoff_limit or past_on_failure:
        finish_if_idle("Failed", "FailureTarget", "BackoffLimitExceeded", MSG_BACKOFF)
        out.status = status()
        return out
    if deadline is not None:
        ends = parse_rfc3339(start) + timedelta(seconds=int(deadline))
        if now >= ends:
            finish_if_idle("Failed", "FailureTarget", "DeadlineExceeded", MSG_DEADLINE)
            out.status = status()
            return out
        requeue.append((ends - now).total_seconds())

    # Success.
    if completions is None:
        complete = succeeded > 0 and not active
    else:
        complete = succeeded >= int(completions)
    if complete:
        finish_if_idle("Complete", "SuccessCriteriaMet", "CompletionsReached", MSG_COMPLETIONS)
        out.status = status()
        return out

    # How many pods should run now.
    if completions is None:
        # A work queue: after one success, leave whatever runs running, start nothing new.
        want = len(active) if succeeded > 0 else parallelism
    else:
        want = min(parallelism, int(completions) - succeeded)
    want = max(min(want, MAX_ACTIVE_PODS), 0)
    busy = len(active) + (len(terminating) if spec.get("podReplacementPolicy") == "Failed" else 0)
    if busy > want:
        out.delete = [p["metadata"]["name"] for p in _scale_down_order(active)[: busy - want]]
    elif busy < want:
        last_success = max((_finished_at(p) for p in succeeded_pods), default=None)
        recent = [t for p in failed_pods if (t := _finished_at(p)) and
                  (last_success is None or t > last_success)]
        wait = 0.0
        if recent:
            ready_at = max(recent) + timedelta(seconds=backoff_delay(len(recent), backoff_base))
            wait = (ready_at - now).total_seconds()
        if wait > 0:
            requeue.append(wait)
        else:
            n = min(want - busy, MAX_POD_CREATE_PER_SYNC)
            if indexed:
                running = {i for p in active + terminating if (i := pod_index(p)) is not None}
                free = (i for i in range(int(completions or 0))
                        if i not in done_indexes and i not in running)
                out.create_indexes = [i for i, _ in zip(free, range(n), strict=False)]
            else:
                out.create = n
    out.status = status()
    out.requeue_after = min(requeue) if requeue else None
    return out


def make_pod(job: Obj, index: int | None = None, suffix: str = "") -> Obj:
    """A pod of the Job's template, owned by it; Indexed pods carry their completion index in
    an annotation, a label, the hostname and JOB_COMPLETION_INDEX. Pure."""
    tmpl = copy.deepcopy((job.get("spec") or {}).get("template") or {})
    meta = tmpl.get("metadata") or {}
    name = job["metadata"]["name"]
    labels = dict(meta.get("labels") or {})
    annotations = dict(meta.get("annotations") or {})
    pod_spec = tmpl.get("spec") or {}
    pod_meta: dict[str, Any] = {"namespace": job["metadata"]["namespace"],
                                "ownerReferences": [podutil.controller_ref(job, "batch/v1", "Job")]}
    if index is None:
        pod_meta["generateName"] = f"{name}-"
    else:
        annotations[COMPLETION_INDEX] = str(index)
        labels[COMPLETION_INDEX] = str(index)
        pod_meta["generateName" if not suffix else "name"] = (
            f"{name}-{index}-" if not suffix else f"{name}-{index}-{suffix}")
        pod_spec.setdefault("hostname", f"{name}-{index}")
        for c in (pod_spec.get("initContainers") or []) + (pod_spec.get("containers") or []):
            env = c.setdefault("env", [])
            if not any(e.get("name") == COMPLETION_INDEX_ENV for e in env):
                env.append({"name": COMPLETION_INDEX_ENV, "valueFrom": {"fieldRef": {
                    "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}})
    if labels:
        pod_meta["labels"] = labels
    if annotations:
        pod_meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": pod_spec}


def _status_equal(a: Obj, b: Obj) -> bool:
    return a == b


class JobReconciler:
    name = "job"
    primary = JOB

    def __init__(self, client: Client, clock: Callable[[], datetime] = utcnow,
                 backoff_base: float = BACKOFF_BASE) -> None:
        self.client = client
        self.clock = clock
        self.backoff_base = backoff_base

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        return [(POD, owned_by("Job", "batch"))]

    async def reconcile(self, namespace: str, name: str) -> float | None:
        try:
            job = await self.client.get(JOB, name, namespace)
        except ApiError as e:
            if e.code == 404:
                return None
            raise
        if job["metadata"].get("deletionTimestamp"):
            return None
        managed_by = (job.get("spec") or {}).get("managedBy")
        if managed_by and managed_by != "kubernetes.io/job-controller":
            return None   # another controller's Job, as upstream skips it
        pods = await podutil.owned_pods(self.client, job)
        p = plan(job, pods, self.clock(), self.backoff_base)
        if p.delete_job:
            await self.client.delete(JOB, name, namespace)
            return None
        for pod_name in p.delete:
            await self.client.delete(POD, pod_name, namespace)
        todo: list[Obj] = [make_pod(job) for _ in range(p.create)]
        todo += [make_pod(job, i) for i in p.create_indexes]
        at = 0
        for size in podutil.slow_start_batches(len(todo)):
            results = await asyncio.gather(*(self.client.create(o) for o in todo[at:at + size]),
                                           return_exceptions=True)
            at += size
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                raise failed[0]   # the rest wait; the controller retries with backoff
        if not _status_equal(p.status, job.get("status") or {}):
            job["status"] = p.status
            await self.client.update_status(job)
        return p.requeue_after
