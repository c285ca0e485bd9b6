"""CronJob scheduling with a fake clock: next times, missed runs, concurrency, history; and
the reconciler over the in-process client, requeued for the next time instead of polling."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from skiff.core import builtin_kinds
from skiff.core.admission import Admission
from skiff.core.apiserver.local_client import LocalClient
from skiff.core.apiserver.registry import Registry
from skiff.core.client import Ref
from skiff.core.kinds import Kinds
from skiff.core.reconcilers.cronjob import (
    CronJobReconciler,
    job_name,
    make_job,
    most_recent_schedule,
    next_time,
    parse_schedule,
    plan,
)
from skiff.core.store.sqlite import SQLiteStore
from skiff.core.workloadadmission import install, schedule_problem

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("schedule,after,want", [
    ("*/1 * * * *", T0, T0 + timedelta(minutes=1)),
    ("*/5 * * * *", T0 + timedelta(minutes=2), T0 + timedelta(minutes=5)),
    ("@hourly", T0 + timedelta(minutes=1), T0 + timedelta(hours=1)),
    ("@daily", T0, datetime(2024, 5, 2, tzinfo=UTC)),
    ("0 9 * * 1", T0, datetime(2024, 5, 6, 9, tzinfo=UTC)),      # 2024-05-01 is a Wednesday
])
def test_next_time(schedule: str, after: datetime, want: datetime) -> None:
    assert next_time(parse_schedule(schedule), UTC, after) == want


def test_time_zone() -> None:
    # 09:00 in Seoul is 00:00 UTC.
    assert next_time("0 9 * * *", ZoneInfo("Asia/Seoul"), T0) == datetime(2024, 5, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize("schedule,problem", [
    ("*/1 * * * *", ""), ("@weekly", ""),
    ("every minute", "expected exactly 5 fields, found 2: [every minute]"),
    ("61 * * * *", "failed to parse schedule: 61 * * * *"),
    ("@fortnightly", "unrecognized descriptor: @fortnightly"),
    ("TZ=UTC 0 * * * *", "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
])
def test_schedule_problem(schedule: str, problem: str) -> None:
    assert schedule_problem(schedule) == problem


@pytest.mark.parametrize("earliest,now,want,missed", [
    (T0, T0 + timedelta(seconds=30), None, 0),
    (T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=1), 1),
    (T0, T0 + timedelta(minutes=1, seconds=59), T0 + timedelta(minutes=1), 1),
    (T0, T0 + timedelta(minutes=10, seconds=5), T0 + timedelta(minutes=10), 10),
    (T0, T0 + timedelta(days=365), T0 + timedelta(days=365), 525600),   # no minute-by-minute walk
])
def test_most_recent_schedule(earliest: datetime, now: datetime, want: datetime | None,
                              missed: int) -> None:
    assert most_recent_schedule("*/1 * * * *", UTC, earliest, now) == (want, missed)


def cronjob(**spec: Any) -> dict[str, Any]:
    status = spec.pop("status", {})
    return {"metadata": {"name": "tick", "namespace": "default", "uid": "c1",
                         "creationTimestamp": ts(T0)},
            "spec": {"schedule": "*/1 * * * *", "concurrencyPolicy": "Allow",
                     "jobTemplate": {"metadata": {"labels": {"app": "t"}},
                                     "spec": {"template": {"spec": {"containers": []}}}},
                     **spec},
            "status": status}


def a_job(name: str, state: str = "", created: datetime = T0) -> dict[str, Any]:
    conds = [{"type": state, "status": "True"}] if state else []
    st: dict[str, Any] = {"conditions": conds, "startTime": ts(created)}
    if state == "Complete":
        st["completionTime"] = ts(created + timedelta(seconds=5))
    return {"metadata": {"name": name, "namespace": "default", "uid": f"u-{name}",
                         "creationTimestamp": ts(created)}, "status": st}


def test_first_run_names_the_job_by_minutes_since_epoch_and_requeues() -> None:
    now = T0 + timedelta(minutes=1, seconds=3)
    p = plan(cronjob(), [], now, UTC)
    assert p.create is not None
    scheduled = T0 + timedelta(minutes=1)
    assert p.create["metadata"]["name"] == f"tick-{int(scheduled.timestamp()) // 60}"
    assert p.create["metadata"]["annotations"] == {
        "batch.kubernetes.io/cronjob-scheduled-timestamp": ts(scheduled)}
    assert p.create["metadata"]["labels"] == {"app": "t"}
    assert p.create["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert p.status["lastScheduleTime"] == ts(scheduled)
    assert p.requeue_after == pytest.approx(57.1)
    assert plan(cronjob(), [], T0 + timedelta(seconds=20), UTC).create is None


def test_a_time_already_taken_is_not_run_twice() -> None:
    now = T0 + timedelta(minutes=1, seconds=3)
    taken = cronjob(status={"lastScheduleTime": ts(T0 + timedelta(minutes=1))})
    assert plan(taken, [], now, UTC).create is None
    running = a_job(job_name(cronjob(), T0 + timedelta(minutes=1)))
    assert plan(cronjob(), [running], now, UTC).create is None


def test_only_the_most_recent_missed_run_starts() -> None:
    p = plan(cronjob(), [], T0 + timedelta(minutes=7, seconds=1), UTC)
    assert p.status["lastScheduleTime"] == ts(T0 + timedelta(minutes=7))


def test_starting_deadline() -> None:
    now = T0 + timedelta(minutes=1, seconds=30)
    assert plan(cronjob(startingDeadlineSeconds=10), [], now, UTC).create is None
    assert plan(cronjob(startingDeadlineSeconds=60), [], now, UTC).create is not None


@pytest.mark.parametrize("policy,create,delete", [
    ("Allow", True, []), ("Forbid", False, []), ("Replace", True, ["old"]),
])
def test_concurrency_policy(policy: str, create: bool, delete: list[str]) -> None:
    p = plan(cronjob(concurrencyPolicy=policy), [a_job("old")], T0 + timedelta(minutes=1), UTC)
    assert (p.create is not None) == create and p.delete == delete


def test_suspend_still_requeues_but_creates_nothing() -> None:
    p = plan(cronjob(suspend=True), [], T0 + timedelta(minutes=5), UTC)
    assert p.create is None and p.requeue_after is not None


def test_status_and_history_limits() -> None:
    jobs = [a_job(f"ok{i}", "Complete", T0 + timedelta(minutes=i)) for i in range(5)]
    jobs += [a_job(f"bad{i}", "Failed", T0 + timedelta(minutes=i)) for i in range(2)]
    jobs += [a_job("run", "", T0 + timedelta(minutes=9))]
    cj = cronjob(successfulJobsHistoryLimit=3, failedJobsHistoryLimit=1,
                 status={"lastScheduleTime": ts(T0 + timedelta(minutes=9))})
    p = plan(cj, jobs, T0 + timedelta(minutes=9, seconds=10), UTC)
    assert p.delete == ["ok0", "ok1", "bad0"]
    assert [r["name"] for r in p.status["active"]] == ["run"]
    assert p.status["lastSuccessfulTime"] == ts(T0 + timedelta(minutes=4, seconds=5))


def test_make_job_in_time_zone() -> None:
    j = make_job(cronjob(timeZone="Asia/Seoul"), T0, ZoneInfo("Asia/Seoul"))
    assert j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] == \
        "2024-05-01T21:00:00+09:00"


CRONJOB = Ref("batch/v1", "CronJob")
JOB = Ref("batch/v1", "Job")


def test_reconciler_with_a_fake_clock(tmp_path: Path) -> None:
    kinds = Kinds()
    for k in builtin_kinds.KINDS:
        kinds.add(k)
    admission = Admission()
    install(admission)
    reg = Registry(SQLiteStore(tmp_path / "db"), kinds, admission, clock=lambda: T0)
    reg.create(kinds.for_api_version("v1", "Namespace"), "", {"metadata": {"name": "default"}})  # type: ignore[arg-type]
    client = LocalClient(reg)
    now = [T0]
    r = CronJobReconciler(client, clock=lambda: now[0], local=UTC)

    async def run() -> None:
        await client.create({"apiVersion": "batch/v1", "kind": "CronJob",
                             "metadata": {"name": "tick", "namespace": "default"},
                             "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {
                                 "template": {"spec": {"restartPolicy": "Never", "containers": [
                                     {"name": "c", "image": "busybox"}]}}}}}})
        now[0] = T0 + timedelta(seconds=10)
        assert await r.reconcile("default", "tick") == pytest.approx(50.1)
        assert await client.list(JOB, "default") == []
        now[0] = T0 + timedelta(minutes=1, seconds=1)
        assert await r.reconcile("default", "tick") == pytest.approx(59.1)
        jobs = await client.list(JOB, "default")
        assert [j["metadata"]["name"] for j in jobs] == [f"tick-{int(T0.timestamp()) // 60 + 1}"]
        # The Job got the Job defaults and its generated selector on create.
        assert jobs[0]["spec"]["backoffLimit"] == 6 and jobs[0]["spec"]["selector"]
        cj = await client.get(CRONJOB, "tick", "default")
        assert cj["status"]["lastScheduleTime"] == ts(T0 + timedelta(minutes=1))
        assert [a["name"] for a in cj["status"]["active"]] == [jobs[0]["metadata"]["name"]]
        # Idempotent: again at the same instant, nothing new.
        await r.reconcile("default", "tick")
        assert len(await client.list(JOB, "default")) == 1
    asyncio.run(run())
