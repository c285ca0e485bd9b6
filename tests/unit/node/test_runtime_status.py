"""status.build_status: observations + now -> pod status, kubelet's way (table tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from skiff.node.status import (
    ContainerObs,
    PodObs,
    Running,
    Terminated,
    Waiting,
    build_status,
    phase,
    qos_class,
    settled,
)

Obj = dict[str, Any]
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=30)


def pod(policy: str = "Always", n: int = 1, inits: int = 0, **spec: Any) -> Obj:
    return {"metadata": {"name": "p"},
            "spec": {"restartPolicy": policy,
                     "containers": [{"name": f"c{i}", "image": "busybox"} for i in range(n)],
                     "initContainers": [{"name": f"i{i}", "image": "busybox"}
                                        for i in range(inits)], **spec}}


def c(state: Any = None, ready: bool = False, last: Terminated | None = None,
      name: str = "c0", restarts: int = 0) -> ContainerObs:
    return ContainerObs(name=name, image="busybox", state=state or Waiting(), ready=ready,
                        started=isinstance(state, Running), last_state=last,
                        restart_count=restarts)


RUN = Running(T0)
OK = Terminated(0, "Completed", T0, T1)
ERR = Terminated(3, "Error", T0, T1)
BACKOFF = Waiting("CrashLoopBackOff", "back-off 10s")


@pytest.mark.parametrize("policy, containers, inits, expect", [
    ("Always", [c()], [], "Pending"),
    ("Always", [c(RUN)], [], "Running"),
    ("Always", [c(BACKOFF, last=ERR)], [], "Running"),
    ("Always", [c(OK)], [], "Running"),
    ("Never", [c(OK)], [], "Succeeded"),
    ("Never", [c(ERR)], [], "Failed"),
    ("Never", [c(OK), c(ERR, name="c1")], [], "Failed"),
    ("Never", [c(OK), c(RUN, name="c1")], [], "Running"),
    ("OnFailure", [c(OK)], [], "Succeeded"),
    ("OnFailure", [c(ERR)], [], "Running"),
    ("OnFailure", [c(BACKOFF, last=ERR)], [], "Running"),
    ("Always", [c(Waiting("ImagePullBackOff"))], [], "Pending"),
    ("Always", [c(Waiting("PodInitializing"))], [c(RUN, name="i0")], "Pending"),
    ("Never", [c(Waiting("PodInitializing"))], [c(ERR, name="i0")], "Failed"),
    ("OnFailure", [c(Waiting("PodInitializing"))], [c(ERR, name="i0")], "Pending"),
    ("Always", [c(RUN)], [c(OK, name="i0")], "Running"),
])
def test_phase(policy: str, containers: list[ContainerObs], inits: list[ContainerObs],
               expect: str) -> None:
    p = pod(policy, n=len(containers), inits=len(inits))
    assert phase(p, PodObs(containers, inits)) == expect


def conds(status: Obj) -> dict[str, Obj]:
    return {x["type"]: x for x in status["conditions"]}


def test_running_ready_pod() -> None:
    s = build_status(pod(), PodObs([c(RUN, ready=True)], start_time=T0), T1)
    assert s["phase"] == "Running"
    assert {k: v["status"] for k, v in conds(s).items()} == {
        "PodScheduled": "True", "Initialized": "True", "ContainersReady": "True",
        "Ready": "True"}
    assert conds(s)["Ready"]["lastTransitionTime"] == "2024-05-01T12:00:30Z"
    assert (s["hostIP"], s["podIP"], s["podIPs"], s["startTime"], s["qosClass"]) == (
        "127.0.0.1", "127.0.0.1", [{"ip": "127.0.0.1"}], "2024-05-01T12:00:00Z", "BestEffort")
    cs = s["containerStatuses"][0]
    assert cs == {"name": "c0", "image": "busybox", "imageID": "", "ready": True,
                  "started": True, "restartCount": 0, "lastState": {},
                  "state": {"running": {"startedAt": "2024-05-01T12:00:00Z"}}}
    assert "initContainerStatuses" not in s


def test_unready_and_crash_loop() -> None:
    s = build_status(pod(), PodObs([c(BACKOFF, last=ERR, restarts=2)]), T1)
    assert conds(s)["Ready"]["status"] == "False"
    assert conds(s)["Ready"]["reason"] == "ContainersNotReady"
    assert conds(s)["Ready"]["message"] == "containers with unready status: [c0]"
    cs = s["containerStatuses"][0]
    assert cs["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}}
    assert cs["lastState"] == {"terminated": {"exitCode": 3, "reason": "Error",
                                              "startedAt": "2024-05-01T12:00:00Z",
                                              "finishedAt": "2024-05-01T12:00:30Z"}}
    assert cs["restartCount"] == 2 and cs["ready"] is False


def test_transition_time_kept_while_unchanged() -> None:
    first = build_status(pod(), PodObs([c(RUN, ready=True)]), T0)
    p = {**pod(), "status": first}
    later = build_status(p, PodObs([c(RUN, ready=True)]), T1)
    assert later == first
    flipped = build_status({**pod(), "status": later}, PodObs([c(RUN)]), T1)
    assert conds(flipped)["Ready"]["lastTransitionTime"] == "2024-05-01T12:00:30Z"
    assert conds(flipped)["PodScheduled"]["lastTransitionTime"] == "2024-05-01T12:00:00Z"


def test_completed_pod_conditions() -> None:
    s = build_status(pod("Never"), PodObs([c(OK)]), T1)
    assert s["phase"] == "Succeeded"
    assert conds(s)["Ready"]["reason"] == "PodCompleted"
    assert conds(s)["Initialized"] == {"type": "Initialized", "status": "True",
                                       "reason": "PodCompleted", "lastProbeTime": None,
                                       "lastTransitionTime": "2024-05-01T12:00:30Z"}
    assert s["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"


def test_init_containers_pending() -> None:
    s = build_status(pod(inits=1), PodObs([c(Waiting("PodInitializing"))],
                                          [c(RUN, name="i0")]), T1)
    assert s["phase"] == "Pending"
    assert conds(s)["Initialized"]["status"] == "False"
    assert conds(s)["Initialized"]["message"] == "containers with incomplete status: [i0]"
    assert s["initContainerStatuses"][0]["name"] == "i0"


def test_readiness_gates_and_foreign_conditions_are_kept() -> None:
    p = pod(readinessGates=[{"conditionType": "example.com/lb"}])
    p["status"] = {"conditions": [{"type": "example.com/lb", "status": "False"}]}
    s = build_status(p, PodObs([c(RUN, ready=True)]), T1)
    assert conds(s)["ContainersReady"]["status"] == "True"
    assert conds(s)["Ready"]["status"] == "False"
    assert conds(s)["Ready"]["reason"] == "ReadinessGatesNotReady"
    assert conds(s)["example.com/lb"]["status"] == "False"
    p["status"] = {"conditions": [{"type": "example.com/lb", "status": "True"}]}
    assert conds(build_status(p, PodObs([c(RUN, ready=True)]), T1))["Ready"]["status"] == "True"


def res(limits: Obj | None = None, requests: Obj | None = None) -> Obj:
    r: Obj = {}
    if limits:
        r["limits"] = limits
    if requests:
        r["requests"] = requests
    return {"name": "x", "resources": r}


@pytest.mark.parametrize("containers, qos", [
    ([res()], "BestEffort"),
    ([res(limits={"cpu": "1", "memory": "1Gi"})], "Guaranteed"),
    ([res(limits={"cpu": "1", "memory": "1Gi"}, requests={"cpu": "1000m", "memory": "1Gi"})],
     "Guaranteed"),
    ([res(limits={"cpu": "1", "memory": "1Gi"}, requests={"cpu": "500m"})], "Burstable"),
    ([res(requests={"cpu": "100m"})], "Burstable"),
    ([res(limits={"cpu": "1", "memory": "1Gi"}), res()], "Burstable"),
    ([res(limits={"nvidia.com/gpu": "1"})], "Burstable"),
])
def test_qos_class(containers: list[Obj], qos: str) -> None:
    assert qos_class({"spec": {"containers": containers}}) == qos


@pytest.mark.parametrize("sidecar, main, expect", [
    (c(RUN, name="proxy"), c(RUN), "Running"),
    (c(Waiting(), name="proxy"), c(Waiting("PodInitializing")), "Pending"),
    (c(Terminated(143, "Error", T0, T1), name="proxy"), c(OK), "Succeeded"),
    (c(Terminated(143, "Error", T0, T1), name="proxy"), c(ERR), "Failed"),
])
def test_phase_with_a_sidecar_init_container(sidecar: ContainerObs, main: ContainerObs,
                                             expect: str) -> None:
    p = pod("Never")
    p["spec"]["initContainers"] = [{"name": "proxy", "image": "x", "restartPolicy": "Always"}]
    assert phase(p, PodObs([main], [sidecar])) == expect


@pytest.mark.parametrize("containers, inits, expect", [
    ([c(Waiting())], [], False),                                   # ContainerCreating
    ([c(Running(T0))], [], False),                                 # running, not ready yet
    ([c(Running(T0), ready=True), c(Running(T0), name="c1")], [], False),
    ([c(Running(T0), ready=True), c(Running(T0), ready=True, name="c1")], [], True),
    ([c(Waiting("ErrImagePull"))], [], True),                     # a problem: shown at once
    ([c(Waiting("CreateContainerConfigError"))], [], True),
    ([c(Terminated(1, "Error", T0, T1))], [], True),
    ([c(Waiting("PodInitializing"))], [c(Running(T0), name="i0")], False),
    ([c(Waiting("PodInitializing"))], [c(Terminated(0, "Completed", T0, T1), name="i0")], True),
])
def test_settled(containers: list[ContainerObs], inits: list[ContainerObs], expect: bool) -> None:
    assert settled(PodObs(containers=containers, init_containers=inits)) is expect
