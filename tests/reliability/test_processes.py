"""No process outlives the platform, and a runaway Deployment cannot fork the machine full.

Real `skiff up`, real kubectl. Pod processes are found by markers only they have: their
stdout (the log file or FIFO under the test's own skiff home) or an env var with a value unique
to the test (a fork of the warm template keeps the template's /proc environ, so the env alone
would miss those); only such processes are ever counted or (on cleanup) killed. No timing
assertions; every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from skiffproc import Skiff, new_skiff

MARKER_ENV = "SKIFF_TEST_MARKER"
IMAGE = "docker.io/openshift/hello-openshift"
TOO_MANY_PODS = ("0/1 nodes are available: 1 Too many pods. preemption: 0/1 nodes are "
                 "available: 1 No preemption victims found for incoming pod.")


def marked(marker: str, home: Path) -> list[psutil.Process]:
    """Live processes of the pods of the skiff at `home`."""
    pods_dir = str(home / "pods") + "/"
    out = []
    for p in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, OSError):
            if p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{p.pid}/fd/1").startswith(pods_dir):
                    out.append(p)
                    continue
            if p.environ().get(MARKER_ENV) == marker:
                out.append(p)
    return out


def kill_marked(marker: str, home: Path) -> None:
    for p in marked(marker, home):
        with contextlib.suppress(psutil.Error):
            p.kill()


def wait_for(fn: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}: last={last!r}")


def pod(name: str, marker: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": IMAGE,
                                     "env": [{"name": MARKER_ENV, "value": marker}]}]}}


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"k": name}}


def deployment(name: str, replicas: int, marker: str) -> dict[str, Any]:
    tmpl = pod("", marker)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": tmpl["spec"]}}}


def names(s: Skiff, kind: str, *args: str) -> set[str]:
    items = s.kubectl_json("get", kind, *args)["items"]
    return {i["metadata"]["name"] for i in items}


def test_kill_9_during_a_create_burst_leaves_no_pod_process(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    s = new_skiff(tmp_path)
    s.start()
    acked: list[tuple[str, str]] = []
    stop = threading.Event()

    def burst() -> None:
        """A bounded loop of creates; what kubectl acknowledged is recorded."""
        for i in range(60):
            if stop.is_set():
                return
            obj = pod(f"p{i}", marker) if i % 2 == 0 else configmap(f"c{i}")
            r = s.kubectl("create", "-f", "-", input=json.dumps(obj), check=False, timeout=30)
            if r.returncode == 0:
                acked.append((obj["kind"], obj["metadata"]["name"]))

    creator = threading.Thread(target=burst)
    try:
        creator.start()
        # mid-burst: some pods run, more creates are still coming
        wait_for(lambda: len(marked(marker, s.home)) >= 3 and len(acked) >= 8, 60, "pods running")
        assert s.proc is not None
        s.proc.kill()
        s.proc.wait(10)
        s.proc = None
        wait_for(lambda: not marked(marker, s.home), 20, "every pod process gone with skiff")
        stop.set()
        creator.join(120)
        assert not creator.is_alive()
        assert not marked(marker, s.home)

        s.start()
        pods, cms = names(s, "pods"), names(s, "configmaps")
        missing = [(k, n) for k, n in acked if n not in (pods if k == "Pod" else cms)]
        assert not missing, f"acknowledged but gone after the restart: {missing}"
        # the pods run again after the restart, and a graceful stop ends them too
        wait_for(lambda: marked(marker, s.home), 60, "pods running after the restart")
        s.stop()
        wait_for(lambda: not marked(marker, s.home), 20, "no pod process after a stop")
    finally:
        stop.set()
        creator.join(120)
        if s.proc is not None:
            s.stop()
        kill_marked(marker, s.home)


def test_a_runaway_deployment_stays_within_max_pods(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    max_pods = 5
    replicas = 1000
    s = new_skiff(tmp_path)
    s.extra_args = ["--max-pods", str(max_pods)]
    s.start()
    seen_most = 0

    def count() -> int:
        nonlocal seen_most
        n = len(marked(marker, s.home))
        seen_most = max(seen_most, n)
        return n

    def phases() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        items = s.kubectl_json("get", "pods", "-l", "app=many")["items"]
        running = [p for p in items if (p.get("status") or {}).get("phase") == "Running"
                   and not p["metadata"].get("deletionTimestamp")]
        return items, running

    try:
        s.kubectl("create", "-f", "-", input=json.dumps(deployment("many", replicas, marker)))

        def settled() -> bool:
            count()
            items, running = phases()
            return len(items) == replicas and len(running) == max_pods

        wait_for(settled, 180, f"{replicas} pods, {max_pods} of them running")
        items, running = phases()
        pending = [p for p in items if p not in running]
        assert len(pending) == replicas - max_pods
        assert all((p.get("status") or {}).get("phase") == "Pending" for p in pending)

        def unschedulable(p: dict[str, Any]) -> bool:
            conds = {c["type"]: c for c in (p.get("status") or {}).get("conditions") or []}
            c = conds.get("PodScheduled") or {}
            return bool(c.get("status") == "False" and c.get("reason") == "Unschedulable"
                        and c.get("message") == TOO_MANY_PODS)

        def all_marked() -> bool:
            items, running = phases()
            up = {r["metadata"]["name"] for r in running}
            return all(unschedulable(p) for p in items if p["metadata"]["name"] not in up)

        wait_for(all_marked, 60, "every Pending pod marked Unschedulable")
        one = pending[0]["metadata"]["name"]
        events = s.kubectl_json("get", "events", "--field-selector",
                                f"involvedObject.name={one}")["items"]
        if not events:   # a field selector the server may not index: filter here
            events = [e for e in s.kubectl_json("get", "events")["items"]
                      if e["involvedObject"].get("name") == one]
        assert any(e["reason"] == "FailedScheduling" and e["type"] == "Warning"
                   and e["involvedObject"]["kind"] == "Pod" and e["message"] == TOO_MANY_PODS
                   for e in events), events
        assert count() <= max_pods

        # a pod goes away: a Pending one gets its slot
        before = {p["metadata"]["name"] for p in running}
        gone = sorted(before)[0]
        s.kubectl("delete", "pod", gone, "--wait=false")

        def replaced() -> bool:
            count()
            now = {p["metadata"]["name"] for p in phases()[1]}
            return len(now) == max_pods and gone not in now and bool(now - before)

        wait_for(replaced, 60, "a Pending pod running in the freed slot")
        assert count() <= max_pods

        s.kubectl("delete", "deployment", "many", "--wait=false")
        wait_for(lambda: count() == 0 and not phases()[0], 180, "no pod and no process left")
        assert seen_most <= max_pods, f"{seen_most} pod processes at once, max-pods {max_pods}"
    finally:
        if s.proc is not None:
            s.stop()
        kill_marked(marker, s.home)
