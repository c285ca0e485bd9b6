"""backoff: kubelet's CrashLoopBackOff arithmetic (table tests)."""

from __future__ import annotations

import pytest

from skiff.node.backoff import (
    BackoffEntry,
    BackoffPolicy,
    advance,
    crash_loop_message,
    go_duration,
    restart_delay,
)

P = BackoffPolicy()


def test_first_restart_is_immediate_then_doubles_to_the_cap() -> None:
    entry: BackoffEntry | None = None
    now = 0.0
    waits = []
    for _ in range(8):
        # the container ran 1 s and crashed
        now += 1
        delay = restart_delay(P, entry, finished_at=now, now=now)
        waits.append(delay)
        now += delay
        entry = advance(P, entry, now)
    assert waits == [0, 10, 20, 40, 80, 160, 300, 300]


def test_delay_counts_from_when_the_container_finished() -> None:
    entry = BackoffEntry(delay=40, last_update=100)
    assert restart_delay(P, entry, finished_at=110, now=125) == 25
    assert restart_delay(P, entry, finished_at=110, now=200) == 0


def test_reset_after_ten_minutes_without_restarts() -> None:
    entry = BackoffEntry(delay=300, last_update=0)
    assert restart_delay(P, entry, finished_at=601, now=601) == 0
    assert advance(P, entry, 601) == BackoffEntry(10, 601)
    assert advance(P, entry, 599) == BackoffEntry(300, 599)


def test_configurable_base_for_tests() -> None:
    fast = BackoffPolicy(initial=0.2, cap=1.0)
    e = advance(fast, None, 0)
    assert e.delay == 0.2
    for _ in range(5):
        e = advance(fast, e, 1)
    assert e.delay == 1.0


@pytest.mark.parametrize("seconds, text", [
    (10, "10s"), (20, "20s"), (80, "1m20s"), (160, "2m40s"), (300, "5m0s"), (0.2, "200ms"),
    (1.5, "1.5s"), (3600, "1h0m0s"),
])
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_crash_loop_message_is_kubelets() -> None:
    assert crash_loop_message(20, "c", "p", "ns", "u-1") == \
        "back-off 20s restarting failed container=c pod=p_ns(u-1)"
