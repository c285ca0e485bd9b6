"""Job and CronJob reconcilers as tables: world + key -> the pods, Jobs, deletes and status one
reconcile makes, over the MemoryClient, with the clock fixed. The decisions alone are
test_job_plan.py's and test_cronjob_schedule.py's; these rows are the reconcile around them.
The worlds' Jobs are defaulted as the API server's admission leaves them (default_job)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from skiff.core.reconcilers import podutil
from skiff.core.reconcilers.cronjob import SCHEDULED_TIMESTAMP, CronJobReconciler, job_name
from skiff.core.reconcilers.job import COMPLETION_INDEX, JobReconciler
from skiff.core.workloadadmission import default_job
from tabletest import Row, run

Obj = dict[str, Any]
NOW = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
T_NOW = "2026-01-01T12:00:30Z"
T_START = "2026-01-01T11:59:00Z"
POD_SPEC = {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}


# --- Job ------------------------------------------------------------------------------------


def job(status: Obj | None = None, name: str = "pi", uid: str = "job-uid",
        owner: Obj | None = None, **spec: Any) -> Obj:
    j: Obj = {"apiVersion": "batch/v1", "kind": "Job",
              "metadata": {"name": name, "namespace": "default", "uid": uid, "generation": 1,
                           "creationTimestamp": T_START},
              "spec": {"template": {"spec": copy.deepcopy(POD_SPEC)}, **spec}}
    if owner is not None:
        j["metadata"]["ownerReferences"] = [podutil.controller_ref(owner, "batch/v1",
                                                                   "CronJob")]
    default_job(j, None)
    if status is not None:
        j["status"] = status
    return j


def pod(owner: Obj, name: str, phase: str = "Running", ready: bool = False,
        finished: str = "") -> Obj:
    st: Obj = {"phase": phase,
               "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                               "lastTransitionTime": T_START}],
               "containerStatuses": [{"name": "c", "restartCount": 0}]}
    if finished:
        st["containerStatuses"][0]["state"] = {"terminated": {"finishedAt": finished}}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": T_START,
                         "labels": dict(owner["spec"]["template"]["metadata"]["labels"]),
                         "ownerReferences": [podutil.controller_ref(owner, "batch/v1", "Job")]},
            "spec": copy.deepcopy(POD_SPEC), "status": st}


J = job()
RUNNING = {"startTime": T_START, "active": 1, "terminating": 0, "ready": 1,
           "uncountedTerminatedPods": {}}


def types(*conds: tuple[str, str]) -> list[Obj]:
    return [{"type": t, "status": "True", "reason": r} for t, r in conds]


JOB_ROWS = [
    Row("a new Job: its pod, startTime, counted active", [J], "default/pi",
        want_creates=[{"kind": "Pod", "metadata": {"generateName": "pi-", "labels": {
            "batch.kubernetes.io/job-name": "pi",
            "batch.kubernetes.io/controller-uid": "job-uid"}}}],
        want_status_updates=[{"status": {"startTime": T_NOW, "active": 1, "ready": 0}}],
        want_requeue=None),
    Row("running, its pod ready: nothing to write",
        [job(RUNNING), pod(J, "pi-a", ready=True)], "default/pi"),
    Row("the pod succeeded: SuccessCriteriaMet, Complete, completionTime",
        [job(RUNNING), pod(J, "pi-a", "Succeeded", finished="2026-01-01T12:00:10Z")],
        "default/pi",
        want_status_updates=[{"status": {
            "succeeded": 1, "completionTime": T_NOW,
            "conditions": types(("SuccessCriteriaMet", "CompletionsReached"),
                                ("Complete", "CompletionsReached"))}}]),
    Row("the pod failed and backoffLimit is 0: FailureTarget, Failed",
        [job(RUNNING, backoffLimit=0), pod(J, "pi-a", "Failed",
                                           finished="2026-01-01T12:00:10Z")],
        "default/pi",
        want_status_updates=[{"status": {
            "failed": 1,
            "conditions": types(("FailureTarget", "BackoffLimitExceeded"),
                                ("Failed", "BackoffLimitExceeded"))}}]),
    Row("suspended: its running pod is deleted, Suspended",
        [job(RUNNING, suspend=True), pod(J, "pi-a", ready=True)], "default/pi",
        want_deletes=[("Pod", "pi-a")],
        want_status_updates=[{"status": {"conditions": types(("Suspended", "JobSuspended"))}}]),
    Row("Indexed: a pod per completion index, up to parallelism",
        [job(completions=3, parallelism=2, completionMode="Indexed")], "default/pi",
        want_creates=[{"kind": "Pod", "metadata": {"annotations": {COMPLETION_INDEX: "0"}},
                       "spec": {"hostname": "pi-0"}},
                      {"kind": "Pod", "metadata": {"annotations": {COMPLETION_INDEX: "1"}},
                       "spec": {"hostname": "pi-1"}}],
        want_status_updates=[{"status": {"active": 2}}]),
    Row("finished, ttlSecondsAfterFinished run out: the Job is deleted",
        [job({"startTime": T_START, "completionTime": "2026-01-01T12:00:00Z", "succeeded": 1,
              "conditions": [{"type": "Complete", "status": "True"}]},
             ttlSecondsAfterFinished=10)], "default/pi",
        want_deletes=[("Job", "pi")]),
    Row("another controller's Job (managedBy): left alone",
        [job(managedBy="kueue.x-k8s.io/multikueue")], "default/pi"),
    Row("the pod cannot be created: the error is returned", [J], "default/pi",
        fail_on=[("create", "Pod")], want_creates=[{"kind": "Pod"}],
        want_err="inducing failure"),
    Row("gone: nothing to write", [], "default/pi"),
]


@pytest.mark.parametrize("row", JOB_ROWS, ids=str)
def test_job_reconciler(row: Row) -> None:
    run(row, lambda c: JobReconciler(c, lambda: NOW))


# --- CronJob --------------------------------------------------------------------------------


def cronjob(status: Obj | None = None, **spec: Any) -> Obj:
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": "default", "uid": "cj-uid",
                         "generation": 1, "creationTimestamp": "2026-01-01T11:40:00Z"},
            "spec": {"schedule": "*/5 * * * *", "timeZone": "Etc/UTC",
                     "jobTemplate": {"spec": {"template": {"spec": copy.deepcopy(POD_SPEC)}}},
                     **spec},
            **({"status": status} if status is not None else {})}


CJ = cronjob()
DUE = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
EARLIER = datetime(2026, 1, 1, 11, 55, tzinfo=UTC)
NEXT_IN = 270.1           # 12:05:00 - 12:00:30, and the tenth of a second it adds


def child(at: datetime, done: str = "", uid: str = "") -> Obj:
    status: Obj = {"startTime": at.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if done:
        status["conditions"] = [{"type": done, "status": "True"}]
        status["completionTime"] = at.strftime("%Y-%m-%dT%H:%M:10Z")
    return job(status, name=job_name(CJ, at), uid=uid or f"uid-{int(at.timestamp())}", owner=CJ)


def ref(j: Obj) -> Obj:
    m = j["metadata"]
    return {"kind": "Job", "namespace": "default", "name": m["name"], "uid": m["uid"],
            "apiVersion": "batch/v1"}


CRONJOB_ROWS = [
    Row("a time came due: its Job, lastScheduleTime, active", [CJ], "default/tick",
        want_creates=[{"kind": "Job", "metadata": {
            "name": job_name(CJ, DUE),
            "annotations": {SCHEDULED_TIMESTAMP: "2026-01-01T12:00:00Z"},
            "ownerReferences": [{"kind": "CronJob", "name": "tick", "uid": "cj-uid",
                                 "controller": True}]}}],
        want_status_updates=[{"status": {"lastScheduleTime": "2026-01-01T12:00:00Z",
                                         "active": [{"name": job_name(CJ, DUE)}]}}],
        want_requeue=NEXT_IN),
    Row("that time taken already: nothing to write",
        [cronjob({"lastScheduleTime": "2026-01-01T12:00:00Z", "active": [ref(child(DUE))]}),
         child(DUE)], "default/tick", want_requeue=NEXT_IN),
    Row("Forbid, the last one still running: this time is skipped",
        [cronjob({"lastScheduleTime": "2026-01-01T11:55:00Z", "active": [ref(child(EARLIER))]},
                 concurrencyPolicy="Forbid"), child(EARLIER)], "default/tick"),
    Row("Replace: the running one goes, the due one comes",
        [cronjob({"lastScheduleTime": "2026-01-01T11:55:00Z", "active": [ref(child(EARLIER))]},
                 concurrencyPolicy="Replace"), child(EARLIER)], "default/tick",
        want_deletes=[("Job", job_name(CJ, EARLIER))],
        want_creates=[{"kind": "Job", "metadata": {"name": job_name(CJ, DUE)}}],
        want_status_updates=[{"status": {"lastScheduleTime": "2026-01-01T12:00:00Z",
                                         "active": [{"name": job_name(CJ, DUE)}]}}]),
    Row("history: the oldest successful Job past the limit goes, lastSuccessfulTime kept",
        [cronjob({"lastScheduleTime": "2026-01-01T12:00:00Z"}, successfulJobsHistoryLimit=1),
         child(EARLIER, "Complete"), child(DUE, "Complete")], "default/tick",
        want_deletes=[("Job", job_name(CJ, EARLIER))],
        want_status_updates=[{"status": {"lastScheduleTime": "2026-01-01T12:00:00Z",
                                         "lastSuccessfulTime": "2026-01-01T12:00:10Z"}}]),
    Row("suspended: nothing created, the next time still looked at",
        [cronjob(suspend=True)], "default/tick", want_requeue=NEXT_IN),
    Row("the Job cannot be created: the error is returned", [CJ], "default/tick",
        fail_on=[("create", "Job")], want_creates=[{"kind": "Job"}],
        want_err="inducing failure"),
    Row("gone: nothing to write", [], "default/tick", want_requeue=None),
]


@pytest.mark.parametrize("row", CRONJOB_ROWS, ids=str)
def test_cronjob_reconciler(row: Row) -> None:
    run(row, lambda c: CronJobReconciler(c, lambda: NOW, UTC))
