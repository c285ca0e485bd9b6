"""Probes: the spec, read once, and kubelet's threshold rule. Pure.

parse() turns a container's readinessProbe/livenessProbe/startupProbe into a
ProbeSpec with the host port already translated (ports.port_for) and
kubelet's defaults (period 10 s, timeout 1 s, thresholds 1/3). periodSeconds
0, which Knative uses to ask for aggressive probing, means 50 ms; for a
readiness probe it means what Knative makes of it (period()): a network
check every 5 ms until the first success (the container's socket may not be
bound yet when it starts; a refused connect costs ~50 us), for at most a
second, then 50 ms, and 1 s once the container has been ready (upstream's
kubelet period for queue-proxy's probe, which probes the app aggressively
itself only until it first answers). observe() is kubelet's worker rule: a
result replaces the current one only after successThreshold successes or
failureThreshold failures in a row. prober.py runs the checks and the
ticker; pod.py acts on the results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from skiff.core.client import Obj
from skiff.node import ports

ProbeKind = Literal["tcp", "http", "exec", "grpc"]
AGGRESSIVE_PERIOD = 0.05
FIRST_RETRY = 0.005             # an aggressive readiness check's period until it first passes,
FIRST_RETRY_FOR = 1.0           # for at most this long after the container started
SOONEST_RETRY = 0.001           # and at first shorter: half the time since the probing began
RELAXED_PERIOD = 1.0            # an aggressive readiness probe's period once it has passed


@dataclass(frozen=True)
class ProbeSpec:
    kind: ProbeKind
    host: str = "127.0.0.1"
    port: int | None = None
    path: str = "/"
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()
    command: tuple[str, ...] = ()
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace: float | None = None
    user_agent: str = ""           # "" is the prober's kube-probe/; lifecycle.py sets its own
    aggressive: bool = False       # periodSeconds 0 (Knative's aggressive probing)


@dataclass(frozen=True)
class ProbeState:
    result: bool | None = None     # None until the first decision
    last: bool | None = None       # the last raw result
    run: int = 0                   # how many times in a row `last` came


def parse(probe: Obj | None, pod: Obj, container: Obj, mapping: dict[str, int],
          keys: list[str], host: str = "127.0.0.1", isolated: bool = False) -> ProbeSpec | None:
    if not probe:
        return None
    period_raw = probe.get("periodSeconds")
    timing: Obj = {
        "initial_delay": float(probe.get("initialDelaySeconds") or 0),
        "period": AGGRESSIVE_PERIOD if period_raw == 0 else float(period_raw or 10),
        "aggressive": period_raw == 0,
        "timeout": float(probe.get("timeoutSeconds") or 1),
        "success_threshold": int(probe.get("successThreshold") or 1),
        "failure_threshold": int(probe.get("failureThreshold") or 3),
        "termination_grace": (float(probe["terminationGracePeriodSeconds"])
                              if probe.get("terminationGracePeriodSeconds") is not None else None),
    }
    if probe.get("exec"):
        return ProbeSpec("exec", command=tuple(probe["exec"].get("command") or ()), **timing)
    for key, kind in (("httpGet", "http"), ("tcpSocket", "tcp"), ("grpc", "grpc")):
        h = probe.get(key)
        if h is None:
            continue
        port = ports.port_for(pod, container, h.get("port"), mapping, keys, isolated)
        # The kubelet probes the pod's IP (from the node), unless the probe names a host.
        host = h.get("host") or host
        if kind == "http":
            headers = tuple((str(x.get("name", "")), str(x.get("value", "")))
                            for x in h.get("httpHeaders") or [])
            return ProbeSpec("http", host=host, port=port, path=h.get("path") or "/",
                             scheme=(h.get("scheme") or "HTTP").upper(), headers=headers, **timing)
        return ProbeSpec("tcp" if kind == "tcp" else "grpc", host=host, port=port, **timing)
    return None


def observe(state: ProbeState, ok: bool, spec: ProbeSpec) -> ProbeState:
    run = state.run + 1 if state.last == ok else 1
    threshold = spec.success_threshold if ok else spec.failure_threshold
    result = ok if run >= threshold else state.result
    return ProbeState(result=result, last=ok, run=run)


def period(spec: ProbeSpec, readiness: bool, passed: bool, elapsed: float) -> float:
    """Seconds to the next check: spec.period, but for an aggressive readiness probe
    before its first pass (a network check, within FIRST_RETRY_FOR of the start: `elapsed`)
    half the time since the start, between SOONEST_RETRY and FIRST_RETRY (a fork of a warm
    template listens within milliseconds; the first check usually comes before it does),
    and RELAXED_PERIOD after it (`passed`)."""
    if not (readiness and spec.aggressive):
        return spec.period
    if passed:
        return RELAXED_PERIOD
    if spec.kind != "exec" and elapsed < FIRST_RETRY_FOR:
        return min(FIRST_RETRY, max(SOONEST_RETRY, elapsed / 2))
    return spec.period
