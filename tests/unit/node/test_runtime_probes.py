"""probes: spec parsing and kubelet's threshold rule (table tests)."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.node import probes
from skiff.node.probes import ProbeSpec, ProbeState

Obj = dict[str, Any]
C: Obj = {"name": "u", "ports": [{"containerPort": 8080, "name": "http"}]}
POD: Obj = {"spec": {"containers": [C]}}
MAP = {"8080": 41000}


def parse(probe: Obj | None) -> ProbeSpec | None:
    return probes.parse(probe, POD, C, MAP, ["8080"])


def test_defaults_and_aggressive_period() -> None:
    s = parse({"tcpSocket": {"port": 8080}})
    assert s == ProbeSpec("tcp", port=41000, period=10.0, timeout=1.0, success_threshold=1,
                          failure_threshold=3)
    fast = parse({"tcpSocket": {"port": 0}, "periodSeconds": 0})
    assert fast is not None and fast.period == 0.05 and fast.port == 41000


def test_http_exec_and_named_port() -> None:
    h = parse({"httpGet": {"port": "http", "path": "/ready", "scheme": "https",
                           "httpHeaders": [{"name": "K-Probe", "value": "1"}]},
               "initialDelaySeconds": 2, "timeoutSeconds": 3, "successThreshold": 2,
               "failureThreshold": 5})
    assert h == ProbeSpec("http", port=41000, path="/ready", scheme="HTTPS",
                          headers=(("K-Probe", "1"),), initial_delay=2, timeout=3,
                          success_threshold=2, failure_threshold=5)
    e = parse({"exec": {"command": ["cat", "/tmp/ok"]}})
    assert e is not None and e.kind == "exec" and e.command == ("cat", "/tmp/ok")
    assert parse(None) is None
    assert parse({"periodSeconds": 1}) is None


def run(spec: ProbeSpec, results: list[bool], state: ProbeState | None = None) -> list[bool | None]:
    state = state or ProbeState()
    out = []
    for ok in results:
        state = probes.observe(state, ok, spec)
        out.append(state.result)
    return out


S = ProbeSpec("tcp", success_threshold=2, failure_threshold=3)


@pytest.mark.parametrize("results, expect", [
    ([True], [None]),
    ([True, True], [None, True]),
    ([True, True, False, False, False], [None, True, True, True, False]),
    ([True, True, False, True, False, False], [None, True, True, True, True, True]),
    ([False, False, False], [None, None, False]),
    ([False, False, False, True, True], [None, None, False, False, True]),
])
def test_thresholds(results: list[bool], expect: list[bool | None]) -> None:
    assert run(S, results) == expect


def test_default_thresholds_flip_on_first_success() -> None:
    assert run(ProbeSpec("tcp"), [True]) == [True]


AGGRESSIVE = ProbeSpec("http", port=41000, period=probes.AGGRESSIVE_PERIOD, aggressive=True)


@pytest.mark.parametrize("spec, readiness, passed, elapsed, expect", [
    # an aggressive readiness probe: fine retries until it first passes, for at most a while
    (AGGRESSIVE, True, False, 0.0, probes.SOONEST_RETRY),
    (AGGRESSIVE, True, False, 0.006, 0.003),
    (AGGRESSIVE, True, False, 0.5, probes.FIRST_RETRY),
    (AGGRESSIVE, True, False, probes.FIRST_RETRY_FOR + 0.1, probes.AGGRESSIVE_PERIOD),
    # then relaxed, as upstream's kubelet probes queue-proxy once a second
    (AGGRESSIVE, True, True, 0.2, probes.RELAXED_PERIOD),
    # an exec check is a process: no fine retries
    (ProbeSpec("exec", period=probes.AGGRESSIVE_PERIOD, aggressive=True), True, False, 0.0,
     probes.AGGRESSIVE_PERIOD),
    # liveness and startup probes keep their period; so does a probe with a period of its own
    (AGGRESSIVE, False, False, 0.0, probes.AGGRESSIVE_PERIOD),
    (AGGRESSIVE, False, True, 0.0, probes.AGGRESSIVE_PERIOD),
    (ProbeSpec("http", period=10.0), True, False, 0.0, 10.0),
    (ProbeSpec("http", period=10.0), True, True, 0.0, 10.0),
])
def test_period(spec: ProbeSpec, readiness: bool, passed: bool, elapsed: float,
                expect: float) -> None:
    assert probes.period(spec, readiness, passed, elapsed) == expect


def test_parse_marks_period_zero_aggressive() -> None:
    fast = parse({"tcpSocket": {"port": 0}, "periodSeconds": 0})
    slow = parse({"tcpSocket": {"port": 0}, "periodSeconds": 1})
    assert fast is not None and fast.aggressive
    assert slow is not None and not slow.aggressive and slow.period == 1.0
