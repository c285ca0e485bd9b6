"""The Job controller's decision, as tables: (job, pods, now) -> creates, deletes, status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from skiff.core.reconcilers.job import (
    MAX_ACTIVE_PODS,
    MAX_POD_CREATE_PER_SYNC,
    backoff_delay,
    format_indexes,
    make_pod,
    parse_indexes,
    plan,
)
from skiff.core.workloadadmission import default_job, validate_job

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def ts(**kw: float) -> str:
    return (NOW - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


def job(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    j: dict[str, Any] = {
        "metadata": {"name": "pi", "namespace": "default", "uid": "u1", "generation": 1},
        "spec": {**spec, "template": {"spec": {"restartPolicy": spec.pop("restart", "Never"),
                                               "containers": [{"name": "c", "image": "busybox"}]}}}}
    default_job(j, None)
    if status is not None:
        j["status"] = status
    return j


def pod(name: str, phase: str = "Running", ready: bool = False, finished: str = "",
        index: int | None = None, deleting: bool = False, restarts: int = 0,
        created: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "creationTimestamp": created or ts(minutes=1)}
    if index is not None:
        meta["annotations"] = {"batch.kubernetes.io/job-completion-index": str(index)}
    if deleting:
        meta["deletionTimestamp"] = ts(seconds=0)
    st: dict[str, Any] = {"phase": phase,
                          "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                          "lastTransitionTime": ts(minutes=1)}],
                          "containerStatuses": [{"name": "c", "restartCount": restarts}]}
    if finished:
        st["containerStatuses"][0]["state"] = {"terminated": {"finishedAt": finished}}
    return {"metadata": meta, "status": st}


def types(status: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["type"], c["status"], c["reason"]) for c in status.get("conditions") or []]


def test_defaults_and_generated_selector() -> None:
    j = job()
    spec = j["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"], spec["completionMode"],
            spec["suspend"], spec["manualSelector"], spec["podReplacementPolicy"]) == (
        1, 1, 6, "NonIndexed", False, False, "TerminatingOrFailed")
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}
    assert spec["template"]["metadata"]["labels"] == {
        "batch.kubernetes.io/controller-uid": "u1", "batch.kubernetes.io/job-name": "pi",
        "controller-uid": "u1", "job-name": "pi"}
    assert j["metadata"]["labels"] == spec["template"]["metadata"]["labels"]
    assert job(parallelism=3)["spec"].get("completions") is None


@pytest.mark.parametrize("policy,message", [
    ("Always", 'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: '
               '"OnFailure", "Never"'),
    ("Never", None), ("OnFailure", None),
])
def test_restart_policy_rule(policy: str, message: str | None) -> None:
    causes = validate_job(job(restart=policy), None)
    assert [c.message for c in causes] == ([message] if message else [])


def test_template_is_immutable_unless_suspended_and_never_started() -> None:
    old = job()
    new = job()
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "alpine"
    causes = validate_job(new, old)
    assert [c.field for c in causes] == ["spec.template"]
    assert causes[0].message.endswith("field is immutable")
    old_s, new_s = job(suspend=True), job(suspend=True)
    new_s["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
    assert validate_job(new_s, old_s) == []


@pytest.mark.parametrize("spec,pods,create,active", [
    ({"completions": 3, "parallelism": 2}, [], 2, 2),
    ({"completions": 3, "parallelism": 2}, ["S", "R"], 1, 2),
    ({"completions": 3, "parallelism": 2}, ["S", "S", "R"], 0, 1),
    ({"parallelism": 2}, [], 2, 2),                      # work queue: no completions
    ({"parallelism": 2}, ["S", "R"], 0, 1),              # one succeeded: start no more
    ({"completions": 10**9, "parallelism": 10**9}, [], MAX_POD_CREATE_PER_SYNC,
     MAX_POD_CREATE_PER_SYNC),
])
def test_how_many_pods(spec: dict[str, Any], pods: list[str], create: int, active: int) -> None:
    objs = [pod(f"p{i}", phase={"S": "Succeeded", "R": "Running"}[k], finished=ts(seconds=30)
                if k == "S" else "") for i, k in enumerate(pods)]
    p = plan(job(**spec), objs, NOW)
    assert p.create == create
    assert p.status.get("active", 0) == active
    assert p.delete == []


def test_active_pods_are_capped() -> None:
    running = [pod(f"p{i}") for i in range(MAX_ACTIVE_PODS)]
    assert plan(job(completions=10**9, parallelism=10**9), running, NOW).create == 0


def test_parallelism_decrease_deletes_unready_youngest_first() -> None:
    pods = [pod("old-ready", ready=True, created=ts(minutes=5)),
            pod("young-ready", ready=True, created=ts(minutes=1)),
            pod("unready", created=ts(minutes=3))]
    assert plan(job(completions=5, parallelism=1), pods, NOW).delete == ["unready", "young-ready"]


def test_success_goes_through_success_criteria_met_to_complete() -> None:
    j = job(completions=2, parallelism=2)
    p = plan(j, [pod("a", "Succeeded", finished=ts(seconds=5)),
                 pod("b", "Succeeded", finished=ts(seconds=4))], NOW)
    assert types(p.status) == [("SuccessCriteriaMet", "True", "CompletionsReached"),
                               ("Complete", "True", "CompletionsReached")]
    assert p.status["succeeded"] == 2 and p.status["completionTime"] == ts(seconds=0)
    assert p.status["conditions"][1]["message"] == "Reached expected number of succeeded pods"
    # Run again on its own output: nothing changes (level-triggered, idempotent).
    j["status"] = p.status
    again = plan(j, [pod("a", "Succeeded"), pod("b", "Succeeded")], NOW + timedelta(seconds=9))
    assert again.status == p.status and again.create == 0 and again.delete == []


def test_backoff_limit_then_failed_once_pods_are_gone() -> None:
    fails = [pod(f"f{i}", "Failed", finished=ts(seconds=10 - i)) for i in range(3)]
    p = plan(job(backoffLimit=2), fails + [pod("r")], NOW)
    assert types(p.status) == [("FailureTarget", "True", "BackoffLimitExceeded")]
    assert p.delete == ["r"] and p.create == 0
    assert p.status["terminating"] == 1
    j = job(backoffLimit=2, status=p.status)
    done = plan(j, fails, NOW)
    assert types(done.status)[-1] == ("Failed", "True", "BackoffLimitExceeded")
    assert done.status["conditions"][-1]["message"] == "Job has reached the specified backoff limit"
    assert "completionTime" not in done.status and done.status["failed"] == 3


def test_on_failure_counts_restarts() -> None:
    p = plan(job(backoffLimit=2, restart="OnFailure"), [pod("r", restarts=2)], NOW)
    assert types(p.status) == [("FailureTarget", "True", "BackoffLimitExceeded")]
    assert plan(job(backoffLimit=2, restart="OnFailure"), [pod("r", restarts=1)], NOW).status.get(
        "conditions") is None


@pytest.mark.parametrize("failures,delay", [(0, 0), (1, 10), (2, 20), (3, 40), (6, 320), (7, 360),
                                            (100, 360)])
def test_backoff_delay(failures: int, delay: float) -> None:
    assert backoff_delay(failures) == delay


def test_new_pod_waits_for_the_failure_backoff_and_requeues() -> None:
    j = job(backoffLimit=6)
    p = plan(j, [pod("f0", "Failed", finished=ts(seconds=4))], NOW)
    assert p.create == 0 and p.requeue_after == pytest.approx(6)
    later = plan(j, [pod("f0", "Failed", finished=ts(seconds=11))], NOW)
    assert later.create == 1
    # A success resets the count: failures before it do not delay.
    ok = plan(job(completions=3), [pod("f0", "Failed", finished=ts(seconds=5)),
                                   pod("s", "Succeeded", finished=ts(seconds=2))], NOW)
    assert ok.create == 1


def test_active_deadline() -> None:
    j = job(activeDeadlineSeconds=30, status={"startTime": ts(seconds=10)})
    p = plan(j, [pod("r")], NOW)
    assert p.requeue_after == pytest.approx(20) and p.status.get("conditions") is None
    late = plan(j, [pod("r")], NOW + timedelta(seconds=30))
    assert types(late.status) == [("FailureTarget", "True", "DeadlineExceeded")]
    assert late.status["conditions"][0]["message"] == "Job was active longer than specified deadline"
    assert late.delete == ["r"]


def test_ttl_after_finished() -> None:
    status = {"conditions": [{"type": "Complete", "status": "True", "reason": "CompletionsReached",
                              "lastTransitionTime": ts(seconds=5)}],
              "completionTime": ts(seconds=5)}
    p = plan(job(ttlSecondsAfterFinished=10, status=status), [], NOW)
    assert not p.delete_job and p.requeue_after == pytest.approx(5)
    assert plan(job(ttlSecondsAfterFinished=10, status=status), [], NOW + timedelta(seconds=5)).delete_job
    assert plan(job(status=status), [], NOW + timedelta(days=9)).delete_job is False


def test_suspend_and_resume() -> None:
    p = plan(job(suspend=True, status={"startTime": ts(minutes=1)}), [pod("r")], NOW)
    assert p.delete == ["r"] and types(p.status) == [("Suspended", "True", "JobSuspended")]
    assert "startTime" not in p.status and p.create == 0
    resumed = plan(job(status=p.status), [], NOW)
    assert types(resumed.status) == [("Suspended", "False", "JobResumed")]
    assert resumed.status["startTime"] == ts(seconds=0) and resumed.create == 1


def test_indexed_creates_missing_indexes() -> None:
    j = job(completions=4, parallelism=2, completionMode="Indexed")
    p = plan(j, [pod("a", "Succeeded", index=0, finished=ts(seconds=3)), pod("b", index=2)], NOW)
    assert p.create_indexes == [1]
    assert p.status["completedIndexes"] == "0"
    new = make_pod(j, 1)
    assert new["metadata"]["generateName"] == "pi-1-"
    assert new["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "1"
    assert new["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == "1"
    assert new["spec"]["hostname"] == "pi-1"
    assert new["spec"]["containers"][0]["env"] == [{"name": "JOB_COMPLETION_INDEX", "valueFrom": {
        "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}]


@pytest.mark.parametrize("text,indexes", [("", set()), ("0", {0}), ("0-2,5", {0, 1, 2, 5}),
                                          ("1,3-4,7-9", {1, 3, 4, 7, 8, 9})])
def test_completed_indexes_round_trip(text: str, indexes: set[int]) -> None:
    assert parse_indexes(text) == indexes and format_indexes(indexes) == text


def test_pods_are_owned_and_labelled() -> None:
    p = make_pod(job())
    assert p["metadata"]["generateName"] == "pi-"
    assert p["metadata"]["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job",
                                                 "name": "pi", "uid": "u1", "controller": True,
                                                 "blockOwnerDeletion": True}]
    assert p["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "pi"
