"""Time buckets, mirroring upstream's pkg/autoscaler/aggregation/bucketing_test.go."""

from __future__ import annotations

import math

import pytest

from skiff.serving.autoscaler.metrics import (
    MIN_EXPONENT,
    MetricCollection,
    Stat,
    TimedFloat64Buckets,
    WeightedFloat64Buckets,
    compute_smoothing_coeff,
)

NOW = 1_700_000_000.0  # whole second


@pytest.mark.parametrize("nb, want", [(100, MIN_EXPONENT), (60, MIN_EXPONENT),
                                      (40, 0.20567), (6, 0.78456)])
def test_compute_decay_multiplier(nb: float, want: float) -> None:
    assert compute_smoothing_coeff(nb) == pytest.approx(want, abs=1e-4)


@pytest.mark.parametrize("granularity, stats, want", [
    (1, [(0, 1.0), (0.1, 10.0), (1, 1.0), (3, 1.0)], {0: 11.0, 1: 1.0, 3: 1.0}),
    (5, [(0, 1.0), (3, 11.0), (6, 1.0)], {0: 12.0, 5: 1.0}),
    (1, [], {}),
])
def test_buckets_simple(granularity: float, stats: list[tuple[float, float]],
                        want: dict[float, float]) -> None:
    b = TimedFloat64Buckets(120, granularity)
    assert b.is_empty(NOW)
    for t, v in stats:
        b.record(NOW + t, v)
    got = {t - NOW: v for t, v in b.for_each_bucket(NOW + 60) if v > 0}
    assert got == want


def test_many_reps() -> None:
    b = TimedFloat64Buckets(60)
    t = NOW
    for p in range(5):
        t += 1
        for k in range(5):
            b.record(t, float(p + k))
    assert sum(v for _, v in b.for_each_bucket(t)) == 100


def test_many_reps_non_monotonic_order() -> None:
    b = TimedFloat64Buckets(60)
    end = NOW
    for p, d in enumerate([0, 3, 2, 1, 4]):
        end = NOW + d
        for k in range(5):
            b.record(end, float(p + k))
    assert sum(v for _, v in b.for_each_bucket(end)) == 100


def test_window_average() -> None:
    """TestTimedFloat64BucketsWindowAverage, step for step."""
    now = NOW
    b = TimedFloat64Buckets(5)
    b.record(now, 1)
    assert b.window_average(now) == 1.0          # first write counts, not 1/5
    for i in range(1, 5):
        b.record(now + i, float(i + 1))
    assert b.window_average(now + 4) == 15 / 5
    assert b.window_average(now + 3.6) == 15 / 5  # `now` lagging behind
    assert b.window_average(now + 6) == (15 - 1 - 2) / (5 - 2)  # short hole
    assert b.window_average(now + 10) == 0.0     # long hole
    b.record(now + 6, 91)                        # a write after a hole
    assert b.window_average(now + 6) == (15 - 1 - 2 + 91) / 5
    now += 60                                    # much farther
    b.record(now, 1984)
    assert b.window_average(now) == 1984.0
    b.record(now - 3, 4)                         # an earlier time
    assert b.window_average(now) == (4 + 1984) / 4
    now += 1
    b.record(now, 5)
    assert b.window_average(now) == (4 + 1984 + 5) / 5
    b.record(now - 3, 10)
    assert b.window_average(now) == (4 + 10 + 1984 + 5) / 5
    b.record(now - 6, 10)                        # too early: ignored
    assert b.window_average(now) == (4 + 10 + 1984 + 5) / 5
    b.record(now - 5, 10)                        # exactly a window early: ignored
    assert b.window_average(now) == (4 + 10 + 1984 + 5) / 5
    b.record(now + 5, 10)                        # a whole window without data: afresh
    assert b.window_average(now + 5) == 10.0


def test_descending_record() -> None:
    b = TimedFloat64Buckets(5)
    for i in range(8, -1, -1):
        b.record(NOW + i, 5)
    assert b.window_average(NOW + 5) == 5.0


def test_holes() -> None:
    b = TimedFloat64Buckets(5)
    for i in range(5):
        b.record(NOW + i, float(i + 1))
    assert sum(v for _, v in b.for_each_bucket(NOW + 4)) == 15
    assert b.window_average(NOW + 4) == 3.0
    # A write at +8 zeroes the ring slots of +5..+7 (once +0..+2): slot 3 now holds
    # +8's 2 and slot 4 still +4's 5, so the sum is 7.
    b.record(NOW + 8, 2.0)
    assert sum(v for _, v in b.for_each_bucket(NOW + 8)) == 7


def test_resize_window() -> None:
    """TestTimedFloat64BucketsResizeWindow."""
    b = TimedFloat64Buckets(5)
    for i in range(6):
        b.record(NOW + i, float(i + 1))
    now = NOW + 5
    initial = 2.0 + 3 + 4 + 5 + 6
    assert sum(v for _, v in b.for_each_bucket(now)) == initial
    assert b.window_average(now) == initial / 5
    b.resize_window(10, now)
    assert len(b.buckets) == 10 and b.window == 10
    assert sum(v for _, v in b.for_each_bucket(now)) == initial
    assert b.window_average(now) == initial / 5   # still at most 5 buckets of data
    now += 1
    b.record(now, 7)
    assert sum(v for _, v in b.for_each_bucket(now)) == initial + 7
    assert b.window_average(now) == math.floor((initial + 7) / 6 * 1e6) / 1e6
    b.resize_window(4, now)
    assert len(b.buckets) == 4
    shrunk = initial + 7 - 2 - 3
    assert sum(v for _, v in b.for_each_bucket(now)) == shrunk
    assert b.window_average(now) == shrunk / 4
    same = b.buckets
    b.resize_window(4, now)
    assert b.buckets is same


def test_weighted_average() -> None:
    """TestTimedFloat64BucketsWeightedAverage."""
    now = NOW
    b = WeightedFloat64Buckets(5)
    m = b.smoothing_coeff
    b.record(now, 2)
    want = 2 * m
    assert b.window_average(now) == want
    want *= 1 - m                                 # a second later, no writes
    assert b.window_average(now + 1) == want
    b.record(now + 1, 2)
    want += 2 * m
    assert b.window_average(now + 1) == pytest.approx(want)
    for i in range(5):
        b.record(now + 2 + i, float(i + 2))
    want = (6 * m + 5 * m * (1 - m) + 4 * m * (1 - m) ** 2 + 3 * m * (1 - m) ** 3
            + 2 * m * (1 - m) ** 4)
    assert b.window_average(now + 6) == pytest.approx(want)
    assert b.window_average(now + 16) == 0.0


def test_weighted_resize_window() -> None:
    b = WeightedFloat64Buckets(5)
    for i in range(6):
        b.record(NOW + i, float(i + 1))
    now = NOW + 5
    assert math.floor(b.window_average(now) * 1000) / 1000 == 5.811
    b.resize_window(10, now)
    assert len(b.buckets) == 10
    assert b.smoothing_coeff == compute_smoothing_coeff(10)


def test_collection_subtracts_proxied_and_reports_no_data() -> None:
    c = MetricCollection(stable_window=60, panic_window=6)
    assert c.stable_and_panic("concurrency", NOW) is None    # ErrNoData
    c.record(NOW, Stat(average_concurrent_requests=10, average_proxied_concurrent_requests=4,
                       request_count=20, proxied_request_count=5))
    assert c.stable_and_panic("concurrency", NOW) == (6.0, 6.0)
    assert c.stable_and_panic("rps", NOW) == (15.0, 15.0)
    # The panic window forgets sooner than the stable one.
    c.record(NOW + 10, Stat(average_concurrent_requests=0))
    stable, panic = c.stable_and_panic("concurrency", NOW + 10)  # type: ignore[misc]
    assert panic == 0.0 and stable == pytest.approx(6 / 11, abs=1e-6)
