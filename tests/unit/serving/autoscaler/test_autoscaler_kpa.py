"""The KPA reconciler's scale steps, mirroring pkg/reconciler/autoscaling/kpa/scaler_test.go
(TestScaler's handleScaleToZero rows) and kpa_test.go's computeNumActivators / active condition.

Times are relative to a fake `now`; the PA's Active condition is given as
(status, seconds since its last transition), the SKS as (mode, seconds in proxy).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from skiff.serving.autoscaler.config import RevisionScaling
from skiff.serving.autoscaler.decider import (
    SCALE_UNKNOWN,
    SKS_MODE_PROXY,
    SKS_MODE_SERVE,
    ScaleToZeroDecision,
    active_condition,
    active_threshold,
    bounded_scale,
    num_activators,
    scale_to_zero,
    sks_mode,
)

NOW = 50_000.0
STABLE_WINDOW = 60.0
GRACE = 60.0
PROGRESS_DEADLINE = 600.0
ACTIVATION_TIMEOUT = PROGRESS_DEADLINE + 30.0


def stz(desired: int = 0, *, active: str = "False", since: float = 0.0,
        stable_window: float = STABLE_WINDOW, enable: bool = True,
        in_path: bool = True, mode: str = SKS_MODE_SERVE, proxy_for: float | None = None,
        retention: float = 0.0, timeout: float = ACTIVATION_TIMEOUT) -> ScaleToZeroDecision:
    return scale_to_zero(desired, enable_scale_to_zero=enable, active=active,
                         active_since=NOW - since, stable_window=stable_window,
                         activation_timeout=timeout, activator_in_path=in_path, sks_mode=mode,
                         proxy_since=None if proxy_for is None else NOW - proxy_for,
                         grace_period=GRACE, retention_period=retention, now=NOW)


@pytest.mark.parametrize("label, kw, want", [
    ("waits to scale to zero (just before idle period)",
     {"active": "True", "since": STABLE_WINDOW - 1}, ScaleToZeroDecision(1, True, 1.0)),
    ("waits to scale to zero (just before idle period), custom PA window",
     {"active": "True", "since": 14, "stable_window": 15}, ScaleToZeroDecision(1, True, 1.0)),
    ("waits to scale to zero after idle period",
     {"active": "True", "since": STABLE_WINDOW}, ScaleToZeroDecision(0, False)),
    ("waits to scale to zero after idle period; sks in proxy mode",
     {"active": "True", "since": STABLE_WINDOW, "mode": SKS_MODE_PROXY},
     ScaleToZeroDecision(0, False, 3.0)),
    ("can scale to zero after grace period, but 0 PA retention",
     {"since": GRACE, "retention": 0}, ScaleToZeroDecision(0, True)),
    ("can't scale to zero after grace period, but before last pod retention",
     {"since": GRACE, "retention": 2 * GRACE}, ScaleToZeroDecision(0, False, GRACE)),
    ("scale to zero after grace period, and after last pod retention",
     {"since": GRACE, "retention": GRACE}, ScaleToZeroDecision(0, True)),
    ("scale to zero after grace period", {"since": GRACE}, ScaleToZeroDecision(0, True)),
    ("waits to scale to zero (just before grace period)",
     {"since": GRACE - 1}, ScaleToZeroDecision(0, False, GRACE)),
    ("waits to scale to zero (just before grace period, sks short)",
     {"since": GRACE - 1, "proxy_for": GRACE - 1}, ScaleToZeroDecision(0, False, 1.0)),
    ("waits to scale to zero (just before grace period, sks in proxy long) and last pod "
     "timeout positive",
     {"since": GRACE - 1, "proxy_for": GRACE, "retention": 10}, ScaleToZeroDecision(0, True)),
    ("waits to scale to zero (just before grace period, sks in proxy long)",
     {"since": GRACE - 1, "proxy_for": GRACE}, ScaleToZeroDecision(0, True)),
    ("scale to zero after grace period, but fail prober",
     {"since": GRACE, "in_path": False}, ScaleToZeroDecision(0, False, probe_activator=True)),
    ("waits to scale to zero while activating until after deadline exceeded",
     {"active": "Unknown", "since": ACTIVATION_TIMEOUT / 2},
     ScaleToZeroDecision(SCALE_UNKNOWN, False, ACTIVATION_TIMEOUT)),
    ("scale to zero while activating after deadline exceeded",
     {"active": "Unknown", "since": ACTIVATION_TIMEOUT + 1}, ScaleToZeroDecision(0, True)),
    ("scale-to-zero disabled keeps one pod", {"since": 10 * GRACE, "enable": False},
     ScaleToZeroDecision(1, True)),
])
def test_scale_to_zero(label: str, kw: dict[str, object], want: ScaleToZeroDecision) -> None:
    assert stz(**kw) == want  # type: ignore[arg-type]


def test_scale_to_zero_passes_nonzero_through() -> None:
    assert stz(7, active="True", since=0) == ScaleToZeroDecision(7, True)


def test_grace_period_timeline() -> None:
    """A revision's last pod, second by second: Active -> Inactive -> grace -> zero."""
    # Active for less than the stable window: hold one pod.
    assert stz(active="True", since=30).scale == 1
    # Active a whole window: report 0 (PA goes Inactive, SKS to Proxy).
    assert stz(active="True", since=60) == ScaleToZeroDecision(0, False)
    # Inactive 5 s, SKS proxying for 5 s: wait out the rest of the grace period.
    assert stz(since=5, proxy_for=5) == ScaleToZeroDecision(0, False, GRACE - 5)
    # Grace period of proxying behind us: zero.
    assert stz(since=GRACE, proxy_for=GRACE).apply


BASE = RevisionScaling(min_scale=0, max_scale=0, initial_scale=1)


@pytest.mark.parametrize("label, s, desired, activating, initialized, want", [
    ("scale down to minScale", replace(BASE, min_scale=2), 0, False, True, (2, True)),
    ("ignore minScale if unreachable", replace(BASE, min_scale=2, reachable=False), 0, False,
     True, (0, True)),
    ("scales up", BASE, 10, False, True, (10, True)),
    ("scales up to maxScale", replace(BASE, max_scale=8), 10, False, True, (8, True)),
    ("initial scale until reached", replace(BASE, initial_scale=3), 1, False, False, (3, True)),
    ("initial scale ignored once reached", replace(BASE, initial_scale=3), 1, False, True,
     (1, True)),
    ("no metrics yet", BASE, -1, False, True, (-1, False)),
    ("no metrics yet while activating: bounds apply", replace(BASE, min_scale=1), -1, True,
     True, (1, True)),
])
def test_bounded_scale(label: str, s: RevisionScaling, desired: int, activating: bool,
                       initialized: bool, want: tuple[int, bool]) -> None:
    assert bounded_scale(s, desired, activating, initialized) == want


@pytest.mark.parametrize("want, ebc, inactive, encryption, mode", [
    (1, 0, False, False, SKS_MODE_SERVE),
    (1, -1, False, False, SKS_MODE_PROXY),          # not enough burst capacity
    (0, 5, False, False, SKS_MODE_PROXY),           # scaling to zero
    (SCALE_UNKNOWN, 5, True, False, SKS_MODE_PROXY),
    (3, 5, False, True, SKS_MODE_PROXY),            # internal encryption forces the activator
])
def test_sks_mode(want: int, ebc: int, inactive: bool, encryption: bool, mode: str) -> None:
    assert sks_mode(want, ebc, inactive, encryption) == mode


@pytest.mark.parametrize("ready, tbc, total, cap, want", [
    (1, 0, 100, 100, 2),           # TBC 0: the minimum
    (1, 200, 100, 100, 3),         # 100 + 200 over 100
    (10, -1, 100, 100, 10),        # unlimited TBC adds nothing
    (0, 211, 100, 100, 3),
    (100, 0, 100, 100, 2),
])
def test_num_activators(ready: int, tbc: float, total: float, cap: float, want: int) -> None:
    s = RevisionScaling(target_burst_capacity=tbc, total_value=total, activator_capacity=cap)
    assert num_activators(ready, s) == want


@pytest.mark.parametrize("want, ready, current, min_ready, result", [
    (0, 0, "True", 1, ("False", "NoTraffic")),
    (0, 0, "Unknown", 1, ("False", "TimedOut")),
    (3, 1, "True", 2, ("Unknown", "Queued")),
    (3, 2, "Unknown", 2, ("True", "")),
    (-1, 0, "False", 1, ("False", "NoTraffic")),
    (-1, 0, "True", 1, ("Unknown", "Queued")),
    (-1, 1, "Unknown", 1, ("True", "")),
])
def test_active_condition(want: int, ready: int, current: str, min_ready: int,
                          result: tuple[str, str]) -> None:
    assert active_condition(want, ready, current, min_ready) == result


@pytest.mark.parametrize("want, ready, current, reason, min_ready, result", [
    # a failed activation keeps saying so while the revision stays at zero ...
    (0, 0, "False", "TimedOut", 1, ("False", "TimedOut")),
    (-1, 0, "False", "TimedOut", 1, ("False", "TimedOut")),
    # ... until the next activation, or a reason that was not one
    (1, 0, "False", "TimedOut", 1, ("Unknown", "Queued")),
    (0, 0, "False", "NoTraffic", 1, ("False", "NoTraffic")),
    (0, 0, "False", "TimedOut", 0, ("False", "NoTraffic")),
])
def test_a_failed_activation_stays_visible(want: int, ready: int, current: str, reason: str,
                                           min_ready: int, result: tuple[str, str]) -> None:
    assert active_condition(want, ready, current, min_ready, reason) == result


def test_active_threshold() -> None:
    s = RevisionScaling(min_scale=2, initial_scale=5)
    assert active_threshold(s, scale_target_initialized=False) == 5
    assert active_threshold(s, scale_target_initialized=True) == 2
    assert active_threshold(replace(s, min_scale=0), True) == 1
