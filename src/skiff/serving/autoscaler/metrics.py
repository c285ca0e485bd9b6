"""Windowed averages of scraped metrics (aggregation.TimedFloat64Buckets, 1.10). Pure.

Upstream keeps each revision's concurrency and RPS in rings of 1-second
buckets, one ring per window (stable, panic), and the decider reads their
window averages. The rules, as in pkg/autoscaler/aggregation/bucketing.go:

- Record(now, v) adds v to now's bucket; several values in one second add up.
  A gap since the last write zeroes the skipped buckets; a gap of a whole
  window or more starts afresh (first write reset). A value older than a
  window before the last write is ignored; a late value inside the window is
  added to its bucket.
- WindowAverage(now) divides the total by the buckets that hold valid data:
  since the first write if that was less than a window ago (a young revision
  is not averaged against zeros it never had), and, if nothing was written
  for a while, the stale tail is dropped and only the remaining buckets count.
  Gaps shorter than the window inside the data count as zeros. Nothing for a
  whole window: 0. Results are floored to 6 decimals, as upstream.
- WeightedFloat64Buckets (metric-aggregation-algorithm: weighted-exponential)
  weighs newer buckets more, with a decay derived from the window length.

Times are float seconds; bucket indexes are whole seconds divided by the
granularity, as upstream's timeToIndex. Classes hold state but never read a
clock: every method that needs the time takes `now`.

Neighbours: config.py (BUCKET_SIZE, windows from RevisionScaling), decider.py
(consumes the stable and panic averages). The scraper and the activator's
stat stream (shells) feed MetricCollection.record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from skiff.serving.autoscaler.config import BUCKET_SIZE

# The weighted average: decay at least this fast, and weights summing to at least this.
MIN_EXPONENT = 0.2
WEIGHT_PRECISION = 0.9999
PRECISION = 6


def compute_smoothing_coeff(num_buckets: float) -> float:
    """computeSmoothingCoeff: the decay that covers WEIGHT_PRECISION within the window."""
    return max(1 - math.pow(1 - WEIGHT_PRECISION, 1 / num_buckets), MIN_EXPONENT)


def _round_to_n_digits(n: int, f: float) -> float:
    p = math.pow(10, n)
    return math.floor(f * p) / p


class TimedFloat64Buckets:
    """aggregation.TimedFloat64Buckets: a ring of `window / granularity` buckets."""

    def __init__(self, window: float, granularity: float = BUCKET_SIZE) -> None:
        if granularity < 1 or granularity != int(granularity):
            # Upstream indexes buckets by whole seconds / granularity.
            raise ValueError("granularity must be a whole number of seconds")
        self.granularity = granularity
        self.window = window
        self.buckets = [0.0] * math.ceil(window / granularity)
        # None/-inf play Go's zero time: "never written".
        self.first_write: float | None = None
        self.last_write: float = -math.inf
        # Sum of every bucket, valid or not (upstream's windowTotal).
        self.window_total = 0.0

    def _truncate(self, t: float) -> float:
        return math.floor(t / self.granularity) * self.granularity

    def _index(self, t: float) -> int:
        return math.floor(t) // int(self.granularity)

    def _span(self, later: float, earlier: float) -> int:
        """Whole granules between two truncated times (Go's Duration / granularity)."""
        return int(round(later - earlier) // int(self.granularity))

    def is_empty(self, now: float) -> bool:
        """IsEmpty: nothing recorded within the last window."""
        return self._truncate(now) - self.last_write > self.window

    def record(self, now: float, value: float) -> None:
        bucket_time = self._truncate(now)
        write_idx = self._index(now)
        n = len(self.buckets)
        if self.last_write != bucket_time:
            if not bucket_time + self.window > self.last_write:
                return  # older than a window before the last write
            if self.first_write is None or self.first_write > bucket_time:
                self.first_write = bucket_time
            if bucket_time > self.last_write:
                if bucket_time - self.last_write >= self.window:
                    # A whole window without writes: start afresh.
                    self.first_write = bucket_time
                    self.buckets = [0.0] * n
                    self.window_total = 0.0
                else:
                    # Buckets skipped since the last write held no data: zero them.
                    for i in range(self._index(self.last_write) + 1, write_idx + 1):
                        idx = i % n
                        self.window_total -= self.buckets[idx]
                        self.buckets[idx] = 0.0
                self.last_write = bucket_time
            # Else a late value within the window: just add it to its bucket.
        self.buckets[write_idx % n] += value
        self.window_total += value

    def window_average(self, now: float) -> float:
        now = self._truncate(now)
        d = now - self.last_write
        n = len(self.buckets)
        if self.first_write is None or d >= self.window:
            return 0.0
        valid = self._span(self.last_write, self.first_write) + 1  # both ends inclusive
        if d <= 0:
            return _round_to_n_digits(PRECISION, self.window_total / min(valid, n))
        # Stale for less than a window: drop the buckets that have fallen out.
        st, e = self._index(self.last_write), self._index(now)
        ret = self.window_total
        for i in range(st + 1, e + 1):
            ret -= self.buckets[i % n]
        return _round_to_n_digits(PRECISION, ret / min(valid, n - (e - st)))

    def resize_window(self, window: float, now: float) -> None:
        """ResizeWindow: keep the newest buckets that fit (O(n), rare)."""
        if window == self.window:
            return
        num = math.ceil(window / self.granularity)
        new = [0.0] * num
        total = 0.0
        if self._truncate(now) - self.last_write <= self.window:
            old = len(self.buckets)
            t_idx = self._index(self.last_write)
            for _ in range(min(num, old)):
                v = self.buckets[t_idx % old]
                new[t_idx % num] = v
                total += v
                t_idx -= 1
            self.first_write = self.last_write - (old - 1) * self.granularity
        else:
            self.first_write = None
        self.window = window
        self.buckets = new
        self.window_total = total

    def for_each_bucket(self, now: float) -> list[tuple[float, float]]:
        """(bucket time, value), newest first, of the buckets not yet fallen out by `now`.

        Upstream's test helper forEachBucket; it presumes data within the window.
        """
        if self.first_write is None:
            return []
        n = len(self.buckets)
        count = n - self._span(self._truncate(now), self.last_write)
        out = []
        t, si = self.last_write, self._index(self.last_write)
        for _ in range(count):
            out.append((t, self.buckets[si % n]))
            si -= 1
            t -= self.granularity
        return out


class WeightedFloat64Buckets(TimedFloat64Buckets):
    """aggregation.WeightedFloat64Buckets: exponentially decaying weights, newest heaviest."""

    def __init__(self, window: float, granularity: float = BUCKET_SIZE) -> None:
        super().__init__(window, granularity)
        self.smoothing_coeff = compute_smoothing_coeff(math.ceil(window / granularity))

    def window_average(self, now: float) -> float:
        now = self._truncate(now)
        if self.is_empty(now):
            return 0.0
        total_b = num_b = len(self.buckets)
        multiplier = self.smoothing_coeff
        if now > self.last_write:
            # Buckets since the last write are zeros: skip straight to their weight.
            num_z = self._span(now, self.last_write)
            multiplier *= math.pow(1 - self.smoothing_coeff, num_z)
            num_b -= num_z
        start = self._index(self.last_write) + total_b
        ret = 0.0
        for i in range(num_b):
            ret += self.buckets[(start - i) % total_b] * multiplier
            multiplier *= 1 - self.smoothing_coeff
        return ret

    def resize_window(self, window: float, now: float) -> None:
        super().resize_window(window, now)
        self.smoothing_coeff = compute_smoothing_coeff(math.ceil(window / self.granularity))


@dataclass(frozen=True)
class Stat:
    """metrics.Stat: one scrape, already averaged over the revision's pods."""

    average_concurrent_requests: float = 0.0
    average_proxied_concurrent_requests: float = 0.0
    request_count: float = 0.0
    proxied_request_count: float = 0.0


def scale_stat(stat: Stat, sample: float, total: float) -> Stat:
    """Stat.average: a sample of pods stands for all `total` of them."""
    k = total / sample
    return Stat(stat.average_concurrent_requests * k,
                stat.average_proxied_concurrent_requests * k,
                stat.request_count * k, stat.proxied_request_count * k)


class MetricCollection:
    """The collector's per-revision collection: stable and panic buckets for both metrics."""

    def __init__(self, stable_window: float, panic_window: float, algorithm: str = "") -> None:
        make: type[TimedFloat64Buckets] = (WeightedFloat64Buckets
                                           if algorithm == "weighted-exponential"
                                           else TimedFloat64Buckets)
        self.concurrency = make(stable_window)
        self.concurrency_panic = make(panic_window)
        self.rps = make(stable_window)
        self.rps_panic = make(panic_window)

    def record(self, now: float, stat: Stat) -> None:
        # The activator already reported the requests it proxied: count them once.
        concurrency = stat.average_concurrent_requests - stat.average_proxied_concurrent_requests
        rps = stat.request_count - stat.proxied_request_count
        self.concurrency.record(now, concurrency)
        self.concurrency_panic.record(now, concurrency)
        self.rps.record(now, rps)
        self.rps_panic.record(now, rps)

    def stable_and_panic(self, metric: str, now: float) -> tuple[float, float] | None:
        """StableAndPanicConcurrency / StableAndPanicRPS; None is upstream's ErrNoData."""
        stable, panic = ((self.rps, self.rps_panic) if metric == "rps"
                         else (self.concurrency, self.concurrency_panic))
        if stable.is_empty(now):
            return None
        return stable.window_average(now), panic.window_average(now)

    def resize(self, stable_window: float, panic_window: float, now: float) -> None:
        self.concurrency.resize_window(stable_window, now)
        self.concurrency_panic.resize_window(panic_window, now)
        self.rps.resize_window(stable_window, now)
        self.rps_panic.resize_window(panic_window, now)
