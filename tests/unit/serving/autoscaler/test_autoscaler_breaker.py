"""queue-proxy's Breaker and the activator's capacity, mirroring pkg/queue/breaker_test.go and
pkg/activator/net/throttler_test.go (TestThrottlerUpdateCapacity, TestPickIndices)."""

from __future__ import annotations

import pytest

from skiff.serving.autoscaler.breaker import (
    ACTIVATOR_QUEUE_DEPTH,
    MAX_BREAKER_CAPACITY,
    Admission,
    Breaker,
    BreakerParams,
    InfiniteBreaker,
    assigned_pods,
    calculate_capacity,
    pick_indices,
    queue_proxy_breaker_params,
)

RUN, QUEUED, REJECTED = Admission.RUN, Admission.QUEUED, Admission.REJECTED


@pytest.mark.parametrize("params, msg", [
    (BreakerParams(0, 1, 1), "Queue depth must be greater than 0. Got 0."),
    (BreakerParams(1, -1, 1), "Max concurrency must be 0 or greater. Got -1."),
    (BreakerParams(1, 1, -1), "Initial capacity must be between 0 and max concurrency. Got -1."),
    (BreakerParams(1, 1, 2), "Initial capacity must be between 0 and max concurrency. Got 2."),
])
def test_invalid_constructor(params: BreakerParams, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        Breaker(params)


def test_reserve_overload() -> None:
    """TestBreakerReserveOverload: 1 slot, queue 1 — Reserve never queues."""
    b = Breaker(BreakerParams(1, 1, 1))
    assert b.reserve()
    assert not b.reserve()
    b.release_reservation()
    assert b.reserve()
    b.release_reservation()
    assert b.in_flight == 0


def test_overload_mixed() -> None:
    b = Breaker(BreakerParams(1, 1, 1))
    assert b.arrive("r1") is RUN
    assert not b.reserve()          # the slot is taken; Reserve does not wait
    assert b.finish() == []
    assert b.reserve()
    b.release_reservation()


def test_overload() -> None:
    """cc 1 + queue 1: the third concurrent request is refused (queue full)."""
    b = Breaker(BreakerParams(1, 1, 1))
    assert [b.arrive(i) for i in range(3)] == [RUN, QUEUED, REJECTED]
    assert b.finish() == [1]
    assert b.finish() == []
    assert b.in_flight == 0


def test_queueing() -> None:
    """No capacity yet: requests wait in the queue until concurrency appears."""
    b = Breaker(BreakerParams(1, 1, 0))
    assert [b.arrive("a"), b.arrive("b")] == [QUEUED, QUEUED]
    assert b.update_concurrency(1) == ["a"]
    assert b.finish() == ["b"]
    assert b.finish() == []


def test_no_overload() -> None:
    b = Breaker(BreakerParams(1, 1, 1))
    assert [b.arrive(1), b.arrive(2)] == [RUN, QUEUED]
    assert b.finish() == [2]
    assert b.arrive(3) is QUEUED
    assert b.finish() == [3]
    assert b.arrive(4) is QUEUED
    assert b.finish() == [4]
    assert b.finish() == []


def test_cancel() -> None:
    """TestBreakerCancel: a waiter whose context ends frees its queue place."""
    b = Breaker(BreakerParams(1, 1, 0))
    assert b.arrive("x") is QUEUED
    assert b.cancel("x")
    assert b.in_flight == 0 and b.waiting == 0
    assert not b.cancel("x")
    assert b.arrive("y") is QUEUED
    assert b.update_concurrency(1) == ["y"]
    assert b.finish() == []


def test_update_concurrency() -> None:
    b = Breaker(BreakerParams(1, 1, 0))
    assert b.capacity == 0
    b.update_concurrency(1)
    assert b.capacity == 1
    b.update_concurrency(0)
    assert b.capacity == 0


def test_lowered_capacity_lets_running_requests_finish() -> None:
    b = Breaker(BreakerParams(10, 2, 2))
    assert [b.arrive(i) for i in range(3)] == [RUN, RUN, QUEUED]
    assert b.update_concurrency(1) == []
    assert b.finish() == []             # 1 running, capacity 1: the waiter stays
    assert b.finish() == [2]


def test_release_unpaired_panics() -> None:
    with pytest.raises(RuntimeError, match="release and acquire are not paired"):
        Breaker(BreakerParams(1, 1, 1)).finish()


@pytest.mark.parametrize("cc, params", [
    (0, None),
    (1, BreakerParams(10, 1, 1)),
    (5, BreakerParams(50, 5, 5)),
])
def test_queue_proxy_breaker_params(cc: int, params: BreakerParams | None) -> None:
    assert queue_proxy_breaker_params(cc) == params


def test_queue_proxy_breaker_queue_is_ten_times_cc() -> None:
    params = queue_proxy_breaker_params(2)
    assert params is not None
    b = Breaker(params)
    got = [b.arrive(i) for i in range(23)]
    assert got == [RUN] * 2 + [QUEUED] * 20 + [REJECTED]


def test_infinite_breaker() -> None:
    b = InfiniteBreaker()
    assert b.arrive("a") is QUEUED          # no pods: wait
    assert b.arrive("b") is QUEUED
    assert b.cancel("b")
    assert b.update_concurrency(10) == ["a"]   # any capacity opens it fully
    assert b.capacity == 1
    assert b.arrive("c") is RUN
    b.update_concurrency(0)
    assert b.capacity == 0 and b.arrive("d") is QUEUED


@pytest.mark.parametrize("cc, size, activators, want", [
    (10, 1, 1, 10), (10, 10, 1, 100), (10, 100, 1, 1000),
    (10, 10, 5, 20), (10, 10, 200, 1), (10, 0, 200, 0),
    (0, 0, 1, 0), (0, 1, 1, MAX_BREAKER_CAPACITY), (0, 10, 200, MAX_BREAKER_CAPACITY),
    (1, MAX_BREAKER_CAPACITY + 5, 1, MAX_BREAKER_CAPACITY),
])
def test_calculate_capacity(cc: int, size: int, activators: int, want: int) -> None:
    """TestThrottlerUpdateCapacity (activator count 0 behaves as 1)."""
    assert calculate_capacity(cc, size, activators) == want


@pytest.mark.parametrize("label, trackers, idx, activators, want", [
    ("1 pod, 1 activator", 1, 0, 1, (0, 1, 0)),
    ("1 pod, 2 activators, this is 0", 1, 0, 2, (0, 1, 0)),
    ("1 pod, 2 activators, this is 1", 1, 1, 2, (0, 1, 0)),
    ("2 pods, 3 activators, this is 1", 2, 1, 3, (1, 2, 0)),
    ("2 pods, 3 activators, this is 2", 2, 2, 3, (0, 1, 0)),
    ("3 pods, 3 activators, this is 2", 3, 2, 3, (2, 3, 0)),
    ("10 pods, 3 activators this is 0", 10, 0, 3, (0, 3, 1)),
    ("10 pods, 3 activators this is 1", 10, 1, 3, (3, 6, 1)),
    ("10 pods, 3 activators this is 2", 10, 2, 3, (6, 9, 1)),
    ("150 pods, 5 activators this is 0", 150, 0, 5, (0, 30, 0)),
    ("150 pods, 5 activators this is 1", 150, 1, 5, (30, 60, 0)),
    ("150 pods, 5 activators this is 4", 150, 4, 5, (120, 150, 0)),
])
def test_pick_indices(label: str, trackers: int, idx: int, activators: int,
                      want: tuple[int, int, int]) -> None:
    assert pick_indices(trackers, idx, activators) == want


def test_assigned_pods_shares_the_remnant_at_reduced_capacity() -> None:
    pods = [f"10.0.0.{i}" for i in range(10)]
    got = assigned_pods(pods, 1, 3, 10)
    assert got == [(p, 10) for p in sorted(pods)[3:6]] + [(sorted(pods)[9], 4)]
    assert assigned_pods(pods, -1, 3, 10) == [(p, 10) for p in sorted(pods)]
    assert ACTIVATOR_QUEUE_DEPTH == 10_000
