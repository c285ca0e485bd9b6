"""Workload kinds end to end: a real `skiff up`, the real kubectl, pods as real processes.

Jobs (completions/parallelism, backoffLimit, activeDeadlineSeconds,
ttlSecondsAfterFinished, `kubectl create job`, `kubectl wait`, `kubectl logs
job/x`), CronJobs through `kubectl create job --from=cronjob/x` (the schedule
itself is unit-tested with a fake clock), a DaemonSet's one pod, a
StatefulSet's ordered pods, scale down and `rollout status`. The Job
pod-failure backoff base is shortened (SKIFF_JOB_BACKOFF_BASE_SECONDS) so a
failing Job needs no minutes. Every wait has a deadline; nothing asserts on
timings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skiffproc import Skiff, new_skiff

BUSYBOX = "docker.io/library/busybox"


@pytest.fixture(scope="module")
def skiff(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Skiff]:
    s = new_skiff(tmp_path_factory.mktemp("skiff"))
    old = os.environ.get("SKIFF_JOB_BACKOFF_BASE_SECONDS")
    os.environ["SKIFF_JOB_BACKOFF_BASE_SECONDS"] = "0.2"
    try:
        s.start()
    finally:
        if old is None:
            os.environ.pop("SKIFF_JOB_BACKOFF_BASE_SECONDS", None)
        else:
            os.environ["SKIFF_JOB_BACKOFF_BASE_SECONDS"] = old
    try:
        yield s
    finally:
        if s.proc is not None:
            s.stop()


def apply(s: Skiff, doc: dict[str, Any]) -> str:
    return s.kubectl("apply", "-f", "-", input=json.dumps(doc)).stdout


def job(name: str, command: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {**spec, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": BUSYBOX,
                                "command": ["sh", "-c", command]}]}}}}


def condition(o: dict[str, Any], t: str) -> dict[str, Any] | None:
    return next((c for c in (o.get("status") or {}).get("conditions") or []
                 if c.get("type") == t and c.get("status") == "True"), None)


def test_job_completes_with_parallelism(skiff: Skiff) -> None:
    apply(skiff, job("echo", "echo done", completions=3, parallelism=2))
    r = skiff.kubectl("wait", "--for=condition=complete", "job/echo", "--timeout=60s")
    assert "condition met" in r.stdout
    j = skiff.kubectl_json("get", "job", "echo")
    assert j["status"]["succeeded"] == 3
    assert j["status"].get("active") is None and j["status"]["completionTime"]
    assert condition(j, "SuccessCriteriaMet")["reason"] == "CompletionsReached"   # type: ignore[index]
    uid = j["metadata"]["uid"]
    assert j["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    pods = skiff.kubectl_json("get", "pods", "-l", "job-name=echo")["items"]
    assert len(pods) == 3 and {p["status"]["phase"] for p in pods} == {"Succeeded"}
    labels = pods[0]["metadata"]["labels"]
    assert labels["batch.kubernetes.io/job-name"] == "echo" and labels["controller-uid"] == uid
    ref = pods[0]["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["controller"], ref["blockOwnerDeletion"]) == ("Job", True, True)
    assert skiff.kubectl("logs", "job/echo").stdout.strip() == "done"
    table = skiff.kubectl("get", "jobs", "echo").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert table[1].split()[:3] == ["echo", "Complete", "3/3"]
    # Deleting the Job takes its pods (ownerReferences, garbage collection).
    skiff.kubectl("delete", "job", "echo")
    skiff.wait_for(lambda: not skiff.kubectl_json("get", "pods", "-l", "job-name=echo")["items"],
                   timeout=30, what="the job's pods to be collected")


def test_kubectl_create_job_and_template_rules(skiff: Skiff) -> None:
    skiff.kubectl("create", "job", "hello", f"--image={BUSYBOX}", "--", "sh", "-c", "echo hi")
    skiff.kubectl("wait", "--for=condition=complete", "job/hello", "--timeout=60s")
    assert skiff.kubectl("logs", "job/hello").stdout.strip() == "hi"
    bad = job("always", "true")
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    r = skiff.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert r.returncode != 0
    assert ('spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: '
            '"OnFailure", "Never"') in r.stderr
    r = skiff.kubectl("patch", "job", "hello", "--type=merge", "-p",
                      json.dumps({"spec": {"template": {"spec": {"containers": [
                          {"name": "hello", "image": BUSYBOX, "command": ["true"]}]}}}}),
                      check=False)
    assert r.returncode != 0 and "spec.template: Invalid value" in r.stderr
    assert "field is immutable" in r.stderr


def test_failing_job_hits_backoff_limit(skiff: Skiff) -> None:
    apply(skiff, job("fails", "exit 1", backoffLimit=1))
    j = skiff.wait_for(lambda: (o := skiff.kubectl_json("get", "job", "fails"))
                       and condition(o, "Failed") and o, timeout=60, what="job/fails Failed")
    failed = condition(j, "Failed")
    assert failed is not None and failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"] == "Job has reached the specified backoff limit"
    assert condition(j, "FailureTarget") is not None
    assert j["status"]["failed"] == 2 and "completionTime" not in j["status"]
    assert skiff.kubectl("get", "job", "fails", "--no-headers").stdout.split()[1] == "Failed"


def test_active_deadline_then_ttl_deletes(skiff: Skiff) -> None:
    apply(skiff, job("slow", "sleep 60", activeDeadlineSeconds=2, ttlSecondsAfterFinished=1))
    seen: dict[str, Any] = {}

    def failed() -> bool:
        r = skiff.kubectl("get", "job", "slow", "-o", "json", check=False)
        if r.returncode != 0:
            return bool(seen)       # already deleted by its TTL: seen Failed before, or not
        o = json.loads(r.stdout)
        c = condition(o, "Failed")
        if c is not None:
            seen.update(c)
        return c is not None
    skiff.wait_for(failed, timeout=60, what="job/slow to fail")
    if seen:
        assert seen["reason"] == "DeadlineExceeded"
        assert seen["message"] == "Job was active longer than specified deadline"
    skiff.wait_for(lambda: skiff.kubectl("get", "job", "slow", check=False).returncode != 0,
                   timeout=30, what="ttlSecondsAfterFinished to delete job/slow")


def test_indexed_job(skiff: Skiff) -> None:
    apply(skiff, job("idx", "echo index=$JOB_COMPLETION_INDEX", completions=2, parallelism=2,
                     completionMode="Indexed"))
    skiff.kubectl("wait", "--for=condition=complete", "job/idx", "--timeout=60s")
    j = skiff.kubectl_json("get", "job", "idx")
    assert j["status"]["completedIndexes"] == "0-1"
    pods = skiff.kubectl_json("get", "pods", "-l", "job-name=idx")["items"]
    idx = sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
                 for p in pods)
    assert idx == ["0", "1"]
    logs = {skiff.kubectl("logs", p["metadata"]["name"]).stdout.strip() for p in pods}
    assert logs == {"index=0", "index=1"}


def test_cronjob_create_job_from(skiff: Skiff) -> None:
    apply(skiff, {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
                  "spec": {"schedule": "@hourly", "jobTemplate": {"spec": {"template": {"spec": {
                      "restartPolicy": "OnFailure",
                      "containers": [{"name": "c", "image": BUSYBOX,
                                      "command": ["sh", "-c", "echo tick"]}]}}}}}})
    cj = skiff.kubectl_json("get", "cronjob", "tick")
    assert (cj["spec"]["concurrencyPolicy"], cj["spec"]["successfulJobsHistoryLimit"],
            cj["spec"]["failedJobsHistoryLimit"], cj["spec"]["suspend"]) == ("Allow", 3, 1, False)
    header = skiff.kubectl("get", "cronjobs").stdout.splitlines()[0]
    assert header.split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST",
                              "SCHEDULE", "AGE"]
    skiff.kubectl("create", "job", "tick-manual", "--from=cronjob/tick")
    j = skiff.kubectl_json("get", "job", "tick-manual")
    assert j["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert j["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    skiff.kubectl("wait", "--for=condition=complete", "job/tick-manual", "--timeout=60s")
    assert skiff.kubectl("logs", "job/tick-manual").stdout.strip() == "tick"
    r = skiff.kubectl("apply", "-f", "-", check=False, input=json.dumps(
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "bad"},
         "spec": {"schedule": "every minute", "jobTemplate": {"spec": {"template": {"spec": {
             "restartPolicy": "Never", "containers": [{"name": "c", "image": BUSYBOX}]}}}}}}))
    assert r.returncode != 0 and "spec.schedule: Invalid value" in r.stderr


def test_daemonset_runs_one_ready_pod(skiff: Skiff) -> None:
    apply(skiff, {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
                  "spec": {"selector": {"matchLabels": {"app": "agent"}},
                           "template": {"metadata": {"labels": {"app": "agent"}},
                                        "spec": {"containers": [{"name": "c", "image": BUSYBOX,
                                                                 "command": ["sleep", "3600"]}]}}}})
    r = skiff.kubectl("rollout", "status", "daemonset/agent", "--timeout=60s")
    assert "successfully rolled out" in r.stdout
    ds = skiff.kubectl_json("get", "ds", "agent")
    st = ds["status"]
    assert (st["desiredNumberScheduled"], st["currentNumberScheduled"], st["numberReady"],
            st["updatedNumberScheduled"], st["numberAvailable"]) == (1, 1, 1, 1, 1)
    pods = skiff.kubectl_json("get", "pods", "-l", "app=agent")["items"]
    assert len(pods) == 1 and pods[0]["spec"]["nodeName"] == "skiff"
    row = skiff.kubectl("get", "ds", "agent", "--no-headers").stdout.split()
    assert row[:6] == ["agent", "1", "1", "1", "1", "1"]
    history = skiff.kubectl("rollout", "history", "daemonset/agent").stdout
    assert "REVISION" in history and "1" in history


def test_statefulset_ordered_scale_down_reverse(skiff: Skiff, tmp_path: Path) -> None:
    apply(skiff, {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
                  "spec": {"replicas": 3, "serviceName": "web",
                           "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "c", "image": BUSYBOX,
                                                                 "command": ["sleep", "3600"]}]}}}})
    r = skiff.kubectl("rollout", "status", "statefulset/web", "--timeout=90s")
    assert "roll out complete" in r.stdout or "rolling update complete" in r.stdout
    pods = skiff.kubectl_json("get", "pods", "-l", "app=web")["items"]
    by_name = {p["metadata"]["name"]: p for p in pods}
    assert sorted(by_name) == ["web-0", "web-1", "web-2"]
    # Ordered: each pod was created only once the one before it was Ready.
    created = [by_name[f"web-{i}"]["metadata"]["creationTimestamp"] for i in range(3)]
    assert created == sorted(created)
    p1 = by_name["web-1"]
    assert p1["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "web-1"
    assert p1["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "1"
    assert (p1["spec"]["hostname"], p1["spec"]["subdomain"]) == ("web-1", "web")
    sts = skiff.kubectl_json("get", "sts", "web")
    assert sts["status"]["readyReplicas"] == 3
    assert sts["status"]["currentRevision"] == sts["status"]["updateRevision"]
    assert skiff.kubectl("get", "sts", "web", "--no-headers").stdout.split()[:2] == ["web", "3/3"]
    # Scale down goes in reverse: web-2 leaves while web-1 stays.
    skiff.kubectl("scale", "statefulset/web", "--replicas=1")
    gone: list[str] = []

    def shrunk() -> bool:
        names = {p["metadata"]["name"] for p in
                 skiff.kubectl_json("get", "pods", "-l", "app=web")["items"]}
        assert "web-1" in names or "web-2" not in names, "web-1 went before web-2"
        for n in ("web-2", "web-1"):
            if n not in names and n not in gone:
                gone.append(n)
        return names == {"web-0"}
    skiff.wait_for(shrunk, timeout=60, what="web scaled to 1")
    assert gone[0] == "web-2"
