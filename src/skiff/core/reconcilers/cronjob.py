"""CronJob reconciler (batch/v1): start Jobs on a cron schedule, as upstream's cronjob
controller v2 does in v1.32.

The decision is pure: plan(cronjob, its jobs, now) says which Job to create
(named `<cronjob>-<scheduled time in minutes since the epoch>`, so a time is
never run twice), which to delete (concurrencyPolicy Replace, and finished
jobs past successfulJobsHistoryLimit / failedJobsHistoryLimit), the status
(active, lastScheduleTime, lastSuccessfulTime) and when the next schedule
falls, which is when the shell looks again: it requeues for that time and
never polls. Missed runs follow upstream: only the most recent missed time is
started, and not at all once startingDeadlineSeconds has passed; Forbid skips
a time while a Job runs (the time is taken when that Job ends, if still
within the deadline). Schedules are cron expressions with the @hourly-style
descriptors, parsed by croniter, in spec.timeZone or the host's local zone
(upstream: the controller manager's). Neighbours: job.py (runs the Jobs),
core/workloadadmission.py (validates schedules with parse_schedule),
core/controller.py.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.clock import parse_rfc3339, rfc3339, utcnow
from skiff.core.controller import Mapper, owned_by
from skiff.core.reconcilers import podutil

CRONJOB = Ref("batch/v1", "CronJob")
JOB = Ref("batch/v1", "Job")
SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
MANUAL_INSTANTIATE = "cronjob.kubernetes.io/instantiate"
TOO_MANY_MISSED = 100

# robfig/cron's predefined schedules.
DESCRIPTORS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def parse_schedule(schedule: str) -> str:
    """The five-field expression of a schedule; ValueError with the reason it is not one."""
    from croniter import croniter  # imported on use: only CronJobs need it

    text = schedule.strip()
    if text.startswith("@"):
        if text not in DESCRIPTORS:
            raise ValueError(f"unrecognized descriptor: {text}")
        return DESCRIPTORS[text]
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    if not croniter.is_valid(text):
        raise ValueError(f"failed to parse schedule: {text}")
    return text


def next_time(expr: str, tz: tzinfo, after: datetime) -> datetime:
    """The first scheduled time strictly after `after` (robfig's Schedule.Next), in UTC."""
    from croniter import croniter

    t = croniter(expr, after.astimezone(tz)).get_next(datetime)
    assert isinstance(t, datetime)
    return t.astimezone(UTC)


def zone(cronjob: Obj, local: tzinfo | None = None) -> tzinfo:
    """spec.timeZone, or the controller's own zone when unset. KeyError for an unknown one."""
    import zoneinfo

    name = (cronjob.get("spec") or {}).get("timeZone")
    if not name:
        return local or datetime.now().astimezone().tzinfo or UTC
    try:
        return zoneinfo.ZoneInfo(str(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise KeyError(name) from None


def most_recent_schedule(expr: str, tz: tzinfo, earliest: datetime,
                         now: datetime) -> tuple[datetime | None, int]:
    """(the latest scheduled time in (earliest, now], how many were missed). Pure.

    As upstream's mostRecentScheduleTime; the count beyond two is an estimate from the
    interval, so a CronJob down for a year is not walked minute by minute."""
    t1 = next_time(expr, tz, earliest)
    if now < t1:
        return None, 0
    t2 = next_time(expr, tz, t1)
    if now < t2:
        return t1, 1
    from croniter import croniter

    latest = croniter(expr, (now + timedelta(seconds=1)).astimezone(tz)).get_prev(datetime)
    assert isinstance(latest, datetime)
    interval = max((t2 - t1).total_seconds(), 1.0)
    missed = int((now - t1).total_seconds() // interval) + 1
    return latest.astimezone(UTC), missed


def job_name(cronjob: Obj, scheduled: datetime) -> str:
    return f"{cronjob['metadata']['name']}-{int(scheduled.timestamp()) // 60}"


def make_job(cronjob: Obj, scheduled: datetime, tz: tzinfo | None = None) -> Obj:
    """getJobFromTemplate2: the Job of one scheduled time. Pure."""
    tmpl = (cronjob.get("spec") or {}).get("jobTemplate") or {}
    meta = tmpl.get("metadata") or {}
    annotations = dict(meta.get("annotations") or {})
    local = scheduled.astimezone(tz or UTC)
    annotations[SCHEDULED_TIMESTAMP] = (local.strftime("%Y-%m-%dT%H:%M:%SZ") if local.utcoffset() == timedelta(0)
                                        else local.isoformat(timespec="seconds"))
    job_meta: Obj = {"name": job_name(cronjob, scheduled),
                     "namespace": cronjob["metadata"]["namespace"],
                     "annotations": annotations,
                     "ownerReferences": [podutil.controller_ref(cronjob, "batch/v1", "CronJob")]}
    if meta.get("labels"):
        job_meta["labels"] = dict(meta["labels"])
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta,
            "spec": copy.deepcopy(tmpl.get("spec") or {})}


def job_finished(job: Obj) -> str:
    """"Complete", "Failed" or "" (still running)."""
    conds = (job.get("status") or {}).get("conditions") or []
    for t in ("Complete", "Failed"):
        if podutil.condition_true(conds, t):
            return t
    return ""


def job_ref(job: Obj) -> Obj:
    # No resourceVersion: it changes with every status write of the Job, and the list would
    # churn with it.
    m = job["metadata"]
    return {"kind": "Job", "namespace": m.get("namespace", ""), "name": m["name"],
            "uid": m.get("uid", ""), "apiVersion": "batch/v1"}


@dataclass
class Plan:
    create: Obj | None = None
    delete: list[str] = field(default_factory=list)     # Job names
    status: Obj = field(default_factory=dict)
    requeue_after: float | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)   # (type, reason, message)


def _start_key(job: Obj) -> str:
    return str((job.get("status") or {}).get("startTime") or job["metadata"].get("creationTimestamp", ""))


def plan(cronjob: Obj, jobs: list[Obj], now: datetime, local: tzinfo | None = None) -> Plan:
    """What the CronJob controller does now. `jobs` are the Jobs this CronJob controls. Pure."""
    spec = cronjob.get("spec") or {}
    old = cronjob.get("status") or {}
    out = Plan()
    running = sorted((j for j in jobs if not job_finished(j)
                      and not j["metadata"].get("deletionTimestamp")),
                     key=lambda j: str(j["metadata"].get("creationTimestamp", "")))
    last_success = old.get("lastSuccessfulTime")
    for j in jobs:
        done = (j.get("status") or {}).get("completionTime")
        if job_finished(j) == "Complete" and done and (not last_success or str(done) > str(last_success)):
            last_success = done
    last_schedule = old.get("lastScheduleTime")

    # History: the oldest finished Jobs past their limits go.
    for kind, limit_key, default in (("Complete", "successfulJobsHistoryLimit", 3),
                                     ("Failed", "failedJobsHistoryLimit", 1)):
        limit = spec.get(limit_key)
        limit = default if limit is None else int(limit)
        done_jobs = sorted((j for j in jobs if job_finished(j) == kind
                            and not j["metadata"].get("deletionTimestamp")), key=_start_key)
        out.delete += [j["metadata"]["name"] for j in done_jobs[: max(len(done_jobs) - limit, 0)]]

    def finish() -> Plan:
        st: Obj = {}
        if running:
            st["active"] = [job_ref(j) for j in running if j["metadata"]["name"] not in out.delete]
            if not st["active"]:
                del st["active"]
        if last_schedule:
            st["lastScheduleTime"] = last_schedule
        if last_success:
            st["lastSuccessfulTime"] = last_success
        out.status = st
        return out

    if cronjob["metadata"].get("deletionTimestamp"):
        return finish()
    try:
        expr = parse_schedule(str(spec.get("schedule", "")))
        tz = zone(cronjob, local)
    except ValueError as e:
        out.events.append(("Warning", "UnparseableSchedule", f"unparseable schedule: {e}"))
        return finish()
    except KeyError:
        out.events.append(("Warning", "UnknownTimeZone", f"invalid timeZone: {spec.get('timeZone')!r}"))
        return finish()
    out.requeue_after = max((next_time(expr, tz, now) - now).total_seconds(), 0.0) + 0.1
    if spec.get("suspend"):
        return finish()

    earliest = parse_rfc3339(str(last_schedule or cronjob["metadata"]["creationTimestamp"]))
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None:
        earliest = max(earliest, now - timedelta(seconds=int(deadline)))
    scheduled, missed = most_recent_schedule(expr, tz, earliest, now)
    if scheduled is None:
        return finish()
    if missed > TOO_MANY_MISSED:
        out.events.append(("Warning", "TooManyMissedTimes",
                           "too many missed start times. Set or decrease .spec.startingDeadlineSeconds "
                           "or check clock skew"))
    if deadline is not None and scheduled + timedelta(seconds=int(deadline)) < now:
        out.events.append(("Warning", "MissedSchedule",
                           f"Missed scheduled time to start a job: {rfc3339(scheduled)}"))
        return finish()
    name = job_name(cronjob, scheduled)
    if any(j["metadata"]["name"] == name for j in jobs) or last_schedule == rfc3339(scheduled):
        return finish()   # this time was taken already
    policy = spec.get("concurrencyPolicy", "Allow")
    if policy == "Forbid" and running:
        return finish()   # taken when the running Job ends, if the deadline still allows
    if policy == "Replace":
        out.delete += [j["metadata"]["name"] for j in running]
        running = []
    out.create = make_job(cronjob, scheduled, tz)
    last_schedule = rfc3339(scheduled)
    return finish()


class CronJobReconciler:
    name = "cronjob"
    primary = CRONJOB

    def __init__(self, client: Client, clock: Callable[[], datetime] = utcnow,
                 local: tzinfo | None = None) -> None:
        self.client = client
        self.clock = clock
        self.local = local

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        return [(JOB, owned_by("CronJob", "batch"))]

    async def reconcile(self, namespace: str, name: str) -> float | None:
        try:
            cj = await self.client.get(CRONJOB, name, namespace)
        except ApiError as e:
            if e.code == 404:
                return None
            raise
        jobs = [j for j in await self.client.list(JOB, namespace)
                if podutil.controlled_by(j, cj["metadata"]["uid"])]
        p = plan(cj, jobs, self.clock(), self.local)
        for job_name_ in p.delete:
            await self.client.delete(JOB, job_name_, namespace)
        status: dict[str, Any] = p.status
        if p.create is not None:
            try:
                created = await self.client.create(p.create)
            except ApiError as e:
                if e.code != 409:
                    raise
                created = await self.client.get(JOB, p.create["metadata"]["name"], namespace)
            status.setdefault("active", []).append(job_ref(created))
        if status != (cj.get("status") or {}):
            cj["status"] = status
            await self.client.update_status(cj)
        return p.requeue_after
