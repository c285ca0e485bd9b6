"""decide() against upstream's pkg/autoscaler/scaling/autoscaler_test.go, with a fake clock.

Each upstream test becomes a timeline: (now, ready pods, stable, panic) ->
expected ScaleResult. Upstream's helper presumes 75% utilization
(total = target / 0.75), panic threshold 2, rates 10 and a 60 s window;
EBC is compared with +-1 as upstream does (approxEquateInt32).
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from skiff.serving.autoscaler.config import RevisionScaling
from skiff.serving.autoscaler.decider import (
    DeciderState,
    MaxTimeWindow,
    ScaleResult,
    decide,
    new_decider_state,
)

STABLE_WINDOW = 60.0
TU = 0.75
T0 = 1_000_000.0  # an arbitrary "now"; only differences matter


def spec(target: float, tbc: float, metric: str = "concurrency", **kw: object) -> RevisionScaling:
    base = RevisionScaling(metric=metric, target_value=target, total_value=target / TU,
                           target_burst_capacity=tbc, panic_threshold=2, max_scale_up_rate=10,
                           max_scale_down_rate=10, activator_capacity=150,
                           stable_window=STABLE_WINDOW, reachable=True)
    return replace(base, **kw)  # type: ignore[arg-type]


def ebc(tot_cap: float, tbc: float, recorded: float, pods: float) -> int:
    """Upstream's expectedEBC."""
    return math.floor(tot_cap / TU * pods - tbc - recorded)


class Scaler:
    """The autoscaler object of upstream's tests: a spec and the state threaded through."""

    def __init__(self, s: RevisionScaling, ready: int = 1, now: float = T0) -> None:
        self.s = s
        self.state = new_decider_state(s, ready, now)
        self.ready = ready

    def scale(self, now: float, stable: float, panic: float) -> ScaleResult:
        got, self.state = decide(self.s, self.state, stable, panic, self.ready, now)
        return got


def expect(got: ScaleResult, pods: int, want_ebc: int) -> None:
    assert got.scale_valid
    assert got.desired_pod_count == pods
    assert abs(got.excess_burst_capacity - want_ebc) <= 1, got


# ------------------------------------------------------------------ TestAutoscalerScale (table)

@pytest.mark.parametrize("label, target, tbc, stable, panic, ready, prep, pods, want_ebc", [
    ("NoDataAtZeroNoAutoscale", 10, 100, 0, 0, 1, {}, 0, ebc(10, 100, 0, 1)),
    ("StableModeUnlimitedTBC", 181, -1, 21, 26, 1, {}, 1, -1),
    ("0TBC", 10, 0, 50, 49, 1, {}, 5, 0),
    ("StableModeNoChange", 10, 100, 50, 50, 1, {}, 5, ebc(10, 100, 50, 1)),
    ("StableModeNoChangeAlreadyScaled", 10, 100, 50, 50, 5, {}, 5, ebc(10, 100, 50, 5)),
    ("StableModeIncreaseWithSmallScaleUpRate", 1, 1982, 3, 3.1, 2,
     {"max_scale_up_rate": 1.1}, 3, ebc(1, 1982, 3.1, 2)),
    ("StableModeDecreaseWithSmallScaleDownRate", 10, 1982, 1, 1, 100,
     {"max_scale_down_rate": 1.1}, 90, ebc(10, 1982, 1, 100)),
    ("StableModeDecreaseNonReachable", 10, 1982, 1, 1, 100,
     {"max_scale_down_rate": 1.1, "reachable": False}, 1, ebc(10, 1982, 1, 100)),
    ("PanicModeDoublePodCount", 10, 84, 50, 100, 1, {}, 10, ebc(10, 84, 100, 1)),
])
def test_autoscaler_scale(label: str, target: float, tbc: float, stable: float, panic: float,
                          ready: int, prep: dict[str, object], pods: int, want_ebc: int) -> None:
    a = Scaler(replace(spec(target, tbc), **prep), ready=1)  # type: ignore[arg-type]
    a.ready = ready
    expect(a.scale(T0, stable, panic), pods, want_ebc)


@pytest.mark.parametrize("label, stable, panic, pods", [
    ("PanicStableLargerThanPanic", 50, 30, 50),   # the stable value wins when larger
    ("PanicStableLessThanPanic", 20, 30, 30),
])
def test_autoscaler_panic_picks_larger(label: str, stable: float, panic: float, pods: int) -> None:
    a = Scaler(spec(1, 100))
    a.state = DeciderState(panic_time=T0 - 5, max_panic_pods=5)
    a.ready = 5
    expect(a.scale(T0, stable, panic), pods, ebc(1, 100, 30, 5))


# ------------------------------------------------------------------------- single-scenario tests

def test_scale_down_delay_simple_and_gradual() -> None:
    """TestAutoscalerScaleDownDelay: 5 minutes at reduced load before going down."""
    s = RevisionScaling(target_value=10, max_scale_down_rate=10, max_scale_up_rate=10,
                        panic_threshold=100, scale_down_delay=300)
    a = Scaler(s, ready=0, now=0)
    a.ready = 0
    now = 0.0
    # simple
    assert a.scale(now + 2, 40, 40).desired_pod_count == 4
    assert a.scale(now + 300, 0, 0).desired_pod_count == 4        # less than the delay
    assert a.scale(now + 302, 0, 0).desired_pod_count == 0        # now it has passed
    # gradual
    assert a.scale(now + 540, 40, 40).desired_pod_count == 4
    assert a.scale(now + 600, 30, 30).desired_pod_count == 4      # 4 still dominates
    assert a.scale(now + 660, 0, 0).desired_pod_count == 4
    assert a.scale(now + 840, 0, 0).desired_pod_count == 3        # 4 scrolls out
    assert a.scale(now + 900, 0, 0).desired_pod_count == 0        # everything scrolled out


def test_scale_down_delay_zero_scales_down_at_once() -> None:
    """TestAutoscalerScaleDownDelayZero: no window at all, not a one-bucket one."""
    s = RevisionScaling(target_value=10, max_scale_down_rate=10, max_scale_up_rate=10,
                        panic_threshold=100, scale_down_delay=0)
    a = Scaler(s, ready=0, now=0)
    assert a.state.delay_window is None
    assert a.scale(0, 40, 40).desired_pod_count == 4
    assert a.scale(0.5, 20, 20).desired_pod_count == 2


def test_stable_mode_increase_with_concurrency_default() -> None:
    a = Scaler(spec(10, 101))
    expect(a.scale(T0, 50, 10), 5, ebc(10, 101, 10, 1))
    expect(a.scale(T0, 100, 10), 10, ebc(10, 101, 10, 1))


def test_stable_mode_increase_with_rps() -> None:
    a = Scaler(spec(10, 101, metric="rps"))
    expect(a.scale(T0, 50, 50), 5, ebc(10, 101, 50, 1))
    expect(a.scale(T0, 100, 99), 10, ebc(10, 101, 99, 1))


def test_metrics_with_rps_stays_after_window() -> None:
    """TestAutoscalerMetricsWithRPS: 100 rps at target 10 -> 10 pods, still 10 after 61 s."""
    a = Scaler(spec(10, 100, metric="rps"))
    expect(a.scale(T0, 100, 99), 10, ebc(10, 100, 99, 1))
    expect(a.scale(T0 + 61, 100, 99), 10, ebc(10, 100, 99, 1))


def test_unpanic_after_slow_increase() -> None:
    a = Scaler(spec(1, 98))
    a.ready = 10
    tm = T0
    expect(a.scale(tm, 11, 25), 25, ebc(1, 98, 25, 10))
    assert a.state.panic_time == tm
    # Half a window on, growing a pod per tick: +15 pods. Panic time does not move.
    a.ready = 40
    tm += STABLE_WINDOW / 2
    expect(a.scale(tm, 30, 41), 41, ebc(1, 98, 41, 40))
    assert a.state.panic_time == T0
    # A window and a tick after panicking: panic over, the stable count rules.
    a.ready = 55
    tm += STABLE_WINDOW / 2 + 2
    expect(a.scale(tm, 50, 56), 50, ebc(1, 98, 56, 55))
    assert a.state.panic_time is None


def test_extend_panic_window() -> None:
    a = Scaler(spec(1, 98))
    a.ready = 10
    expect(a.scale(T0, 11, 25), 25, ebc(1, 98, 25, 10))
    a.ready = 40
    tm = T0 + STABLE_WINDOW / 2
    expect(a.scale(tm, 30, 80), 80, ebc(1, 98, 80, 40))
    assert a.state.panic_time == tm


def test_stable_mode_decrease() -> None:
    a = Scaler(spec(10, 98))
    a.ready = 8
    expect(a.scale(T0, 100, 100), 10, ebc(10, 98, 100, 8))
    expect(a.scale(T0, 50, 50), 5, ebc(10, 98, 50, 8))


def test_stable_mode_no_traffic_scale_to_zero() -> None:
    a = Scaler(spec(10, 75))
    expect(a.scale(T0, 1, 0), 1, ebc(10, 75, 0, 1))
    expect(a.scale(T0, 0, 0), 0, ebc(10, 75, 0, 1))


def test_activation_scale() -> None:
    a = Scaler(spec(10, 75, activation_scale=2))
    expect(a.scale(T0, 0, 0), 0, ebc(10, 75, 0, 1))      # zero stays zero
    expect(a.scale(T0, 1, 0), 2, ebc(10, 75, 0, 1))      # any want is at least 2


def test_panic_mode_exponential_track_and_stabilize() -> None:
    a = Scaler(spec(1, 101))
    expect(a.scale(T0, 6, 6), 6, ebc(1, 101, 6, 1))
    tm = T0
    a.ready = 6
    expect(a.scale(tm, 36, 36), 36, ebc(1, 101, 36, 6))
    assert a.state.panic_time == tm
    a.ready = 36
    tm += 1
    expect(a.scale(tm, 216, 216), 216, ebc(1, 101, 216, 36))
    assert a.state.panic_time == tm
    a.ready = 216
    expect(a.scale(tm, 1296, 1296), 1296, ebc(1, 101, 1296, 216))
    a.ready = 1296
    tm += 1
    expect(a.scale(tm, 1296, 1296), 1296, ebc(1, 101, 1296, 1296))


def test_panic_then_unpanic_scale_down() -> None:
    a = Scaler(spec(10, 93))
    expect(a.scale(T0, 100, 100), 10, ebc(10, 93, 100, 1))
    a.ready = 10
    pt = T0 + 1
    expect(a.scale(pt, 100, 1000), 100, ebc(10, 93, 1000, 10))
    # Traffic dropped, but still in panic: the scale holds.
    expect(a.scale(pt + 30, 1, 1), 100, ebc(10, 93, 1, 10))
    # A stable window later, down it goes.
    expect(a.scale(pt + 61, 1, 1), 1, ebc(10, 93, 1, 10))


def test_rate_limit_scale_up() -> None:
    a = Scaler(spec(10, 61))
    expect(a.scale(T0, 1000, 1001), 10, ebc(10, 61, 1001, 1))    # need 100, only x10
    a.ready = 10
    expect(a.scale(T0, 1000, 1001), 100, ebc(10, 61, 1001, 10))


def test_rate_limit_scale_down() -> None:
    a = Scaler(spec(10, 61))
    a.ready = 100
    expect(a.scale(T0, 1, 1), 10, ebc(10, 61, 1, 100))           # only /10
    a.ready = 10
    expect(a.scale(T0, 1, 1), 1, ebc(10, 61, 1, 10))


def test_use_one_pod_as_minimum_if_endpoints_not_found() -> None:
    a = Scaler(spec(10, 81))
    a.ready = 0
    expect(a.scale(T0, 1000, 888), 10, ebc(10, 81, 888, 0))


def test_update_target() -> None:
    a = Scaler(spec(10, 77))
    expect(a.scale(T0, 100, 101), 10, ebc(10, 77, 101, 1))
    a.ready = 10
    a.s = RevisionScaling(target_value=1, total_value=1 / TU, activator_capacity=21,
                          target_burst_capacity=71, panic_threshold=2, max_scale_down_rate=10,
                          max_scale_up_rate=10, stable_window=STABLE_WINDOW)
    expect(a.scale(T0, 100, 101), 100, ebc(1, 71, 101, 10))


@pytest.mark.parametrize("ready, panicking, max_panic", [
    (0, False, 0), (1, False, 1), (2, True, 2), (None, False, 0),
])
def test_start_in_panic_mode(ready: int | None, panicking: bool, max_panic: int) -> None:
    """TestStartInPanicMode / TestNewFail: more than one ready pod at start means panic."""
    st = new_decider_state(RevisionScaling(panic_threshold=2.2), ready, T0)
    assert (st.panic_time is not None) == panicking
    assert st.max_panic_pods == max_panic


# ---------------------------------------------------------------------- max.TimeWindow (delay)

def test_time_window_keeps_max_over_duration() -> None:
    """timewindow_test: the maximum of the last `duration`, in 2 s buckets."""
    w = MaxTimeWindow.for_duration(5, granularity=1)
    for t, v, want in [(0, 5, 5), (1, 3, 5), (2, 4, 5), (4, 1, 5), (5, 2, 4), (6, 1, 4),
                       (7, 6, 6), (8, 1, 6), (11, 1, 6), (12, 1, 1)]:
        w = w.record(float(t), v)
        assert w.current() == want, (t, v)


@pytest.mark.parametrize("name, values, want", [
    ("single value", [(0.0, 5)], 5),
    ("two values in same second", [(0.0, 6), (0.5, 5)], 6),
    ("two values", [(0.0, 5), (1.0, 8)], 8),
    ("time gap", [(0.0, 5), (6.0, 4)], 4),
])
def test_timed_window_max(name: str, values: list[tuple[float, int]], want: int) -> None:
    """max/timewindow_test.go TestTimedWindowMax: a 5 s window of 1 s buckets."""
    w = MaxTimeWindow.for_duration(5, granularity=1)
    for t, v in values:
        w = w.record(T0 + t, v)
    assert w.current() == want


def test_time_window_same_bucket_keeps_largest() -> None:
    w = MaxTimeWindow.for_duration(10).record(100.0, 7).record(100.5, 3)
    assert w.current() == 7
    assert len(w.entries) == 1
