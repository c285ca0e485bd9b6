"""Pod status from the runtime's observations, as kubelet reports it. Pure.

pod.py keeps, per container, what it saw (ContainerObs: state, last state,
restart count, readiness); build_status() turns that plus the pod and `now`
into the pod's status: phase (kubelet's getPhase), the four conditions with
lastTransitionTime kept from the previous status while unchanged,
containerStatuses/initContainerStatuses, IPs, startTime and qosClass. The
result is compared with what was last written, so an unchanged pod is never
written twice; settled() says when a starting pod's first status is worth
writing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from skiff.core.client import Obj
from skiff.core.clock import rfc3339
from skiff.node.env import quantity


@dataclass(frozen=True)
class Waiting:
    reason: str = "ContainerCreating"
    message: str = ""


@dataclass(frozen=True)
class Running:
    started_at: datetime


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str
    started_at: datetime | None
    finished_at: datetime
    message: str = ""


State = Waiting | Running | Terminated


@dataclass(frozen=True)
class ContainerObs:
    name: str
    image: str
    state: State = Waiting()
    last_state: Terminated | None = None
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    image_id: str = ""
    container_id: str = ""


@dataclass(frozen=True)
class PodObs:
    containers: Sequence[ContainerObs]
    init_containers: Sequence[ContainerObs] = ()
    start_time: datetime | None = None
    host_ip: str = "127.0.0.1"
    pod_ip: str = "127.0.0.1"


def exit_reason(exit_code: int) -> str:
    return "Completed" if exit_code == 0 else "Error"


def terminal(phase: str) -> bool:
    return phase in ("Succeeded", "Failed")


def _restart_policy(pod: Obj) -> str:
    return str((pod.get("spec") or {}).get("restartPolicy") or "Always")


def _is_sidecar(spec: Obj) -> bool:
    return spec.get("restartPolicy") == "Always"


def _sidecars(pod: Obj) -> set[str]:
    return {c.get("name", "") for c in (pod.get("spec") or {}).get("initContainers") or []
            if _is_sidecar(c)}


def init_incomplete(pod: Obj, init: Sequence[ContainerObs]) -> list[str]:
    """Init containers not done: regular ones until they exit 0, sidecars until started."""
    sidecars = _sidecars(pod)
    out = []
    for c in init:
        if c.name in sidecars:
            done = (isinstance(c.state, Running) and c.started) or isinstance(c.state, Terminated)
        else:
            done = isinstance(c.state, Terminated) and c.state.exit_code == 0
        if not done:
            out.append(c.name)
    return out


STARTING = ("ContainerCreating", "PodInitializing")


def settled(obs: PodObs) -> bool:
    """Whether a starting pod is worth its first status write (pod.py holds that write a
    little while until it is): every container ready, or one waits for something other
    than its creation (an image, its config, a crash loop), or one ended."""
    for c in [*obs.init_containers, *obs.containers]:
        if isinstance(c.state, Terminated) or (
                isinstance(c.state, Waiting) and c.state.reason not in STARTING):
            return True
    return all(c.ready and isinstance(c.state, Running) for c in obs.containers)


def init_done(pod: Obj, init: Sequence[ContainerObs]) -> bool:
    return not init_incomplete(pod, init)


def init_failed(pod: Obj, init: Sequence[ContainerObs]) -> bool:
    """A regular init container failed for good (restartPolicy Never)."""
    sidecars = _sidecars(pod)
    return _restart_policy(pod) == "Never" and any(
        isinstance(c.state, Terminated) and c.state.exit_code != 0 and c.name not in sidecars
        for c in init)


def phase(pod: Obj, obs: PodObs) -> str:
    """kubelet's getPhase."""
    if init_failed(pod, obs.init_containers):
        return "Failed"
    if not init_done(pod, obs.init_containers):
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for c in obs.containers:
        if isinstance(c.state, Running):
            running += 1
        elif isinstance(c.state, Terminated):
            stopped += 1
            succeeded += c.state.exit_code == 0
        elif c.last_state is not None:
            stopped += 1
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if not stopped:
        return "Pending"
    policy = _restart_policy(pod)
    if policy == "Always":
        return "Running"
    if stopped == succeeded:
        return "Succeeded"
    return "Running" if policy == "OnFailure" else "Failed"


def qos_class(pod: Obj) -> str:
    spec = pod.get("spec") or {}
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        if limits or requests:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in limits:
                guaranteed = False
            elif r in requests and _q(requests[r]) != _q(limits[r]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _q(v: object) -> float:
    try:
        return quantity(v)
    except ValueError:
        return -1.0


def _state(s: State) -> Obj:
    if isinstance(s, Running):
        return {"running": {"startedAt": rfc3339(s.started_at)}}
    if isinstance(s, Terminated):
        return {"terminated": _terminated(s)}
    w: Obj = {"reason": s.reason}
    if s.message:
        w["message"] = s.message
    return {"waiting": w}


def _terminated(t: Terminated) -> Obj:
    out: Obj = {"exitCode": t.exit_code, "reason": t.reason}
    if t.message:
        out["message"] = t.message
    if t.started_at is not None:
        out["startedAt"] = rfc3339(t.started_at)
    out["finishedAt"] = rfc3339(t.finished_at)
    return out


def container_status(c: ContainerObs) -> Obj:
    out: Obj = {
        "name": c.name,
        "image": c.image,
        "imageID": c.image_id,
        "ready": c.ready and isinstance(c.state, Running),
        "started": c.started and isinstance(c.state, Running),
        "restartCount": c.restart_count,
        "state": _state(c.state),
        "lastState": {"terminated": _terminated(c.last_state)} if c.last_state else {},
    }
    if c.container_id:
        out["containerID"] = c.container_id
    return out


def _condition(ctype: str, ok: bool, previous: Obj, now: datetime, reason: str = "",
               message: str = "") -> Obj:
    status = "True" if ok else "False"
    before = next((c for c in previous.get("conditions") or [] if c.get("type") == ctype), None)
    if before is not None and before.get("status") == status and before.get("lastTransitionTime"):
        when = before["lastTransitionTime"]
    else:
        when = rfc3339(now)
    cond: Obj = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": when}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def build_status(pod: Obj, obs: PodObs, now: datetime) -> Obj:
    previous: Obj = pod.get("status") or {}
    spec = pod.get("spec") or {}
    ph = phase(pod, obs)
    done = terminal(ph)
    incomplete = init_incomplete(pod, obs.init_containers)
    inits_ok = not incomplete
    unready = [c.name for c in obs.containers if not (c.ready and isinstance(c.state, Running))]

    if done:
        init_cond = _condition("Initialized", True, previous, now, "PodCompleted")
        ok, reason, message = False, "PodCompleted", ""
    else:
        init_cond = (_condition("Initialized", True, previous, now) if inits_ok else
                     _condition("Initialized", False, previous, now, "ContainersNotInitialized",
                                f"containers with incomplete status: [{' '.join(incomplete)}]"))
        ok, reason, message = (True, "", "") if not unready else (
            False, "ContainersNotReady",
            f"containers with unready status: [{' '.join(unready)}]")
    containers_ready = _condition("ContainersReady", ok, previous, now, reason, message)

    gates = [g.get("conditionType", "") for g in spec.get("readinessGates") or []]
    prev_by_type = {c.get("type"): c for c in previous.get("conditions") or []}
    missing = [g for g in gates if (prev_by_type.get(g) or {}).get("status") != "True"]
    if ok and missing:
        ready = _condition("Ready", False, previous, now, "ReadinessGatesNotReady",
                           f"corresponding condition of pod readiness gate \"{missing[0]}\" "
                           f"does not exist." if missing[0] not in prev_by_type else
                           f"the status of pod readiness gate \"{missing[0]}\" is not \"True\", "
                           f"but {prev_by_type[missing[0]].get('status')}")
    else:
        ready = _condition("Ready", ok, previous, now, reason, message)

    ours = ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    conditions = [
        _condition("PodScheduled", True, previous, now),
        init_cond, containers_ready, ready,
        *[c for c in previous.get("conditions") or [] if c.get("type") not in ours],
    ]
    status: Obj = {
        "phase": ph,
        "conditions": conditions,
        "hostIP": obs.host_ip,
        "hostIPs": [{"ip": obs.host_ip}],
        "podIP": obs.pod_ip,
        "podIPs": [{"ip": obs.pod_ip}],
        "qosClass": qos_class(pod),
        "containerStatuses": [container_status(c) for c in obs.containers],
    }
    if obs.init_containers:
        status["initContainerStatuses"] = [container_status(c) for c in obs.init_containers]
    if obs.start_time is not None:
        status["startTime"] = rfc3339(obs.start_time)
    return status
