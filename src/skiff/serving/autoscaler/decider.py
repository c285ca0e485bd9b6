"""The KPA's decision: scaling.autoscaler's Scale() and the KPA reconciler's scale steps. Pure.

decide() is pkg/autoscaler/scaling/autoscaler.go's Scale(), line for line,
with the autoscaler's mutable fields (panicTime, maxPanicPods, the
scale-down-delay window) carried in an immutable DeciderState that goes in
and comes back out:

1. ready = max(1, ready pods); maxScaleUp = ceil(up rate x ready); maxScaleDown =
   floor(ready / down rate) when reachable, else 0 (an unreachable revision may
   drop at once).
2. desired stable/panic = ceil(observed / target per pod), clamped to
   [maxScaleDown, maxScaleUp]; activation-scale lifts a nonzero want to it.
3. Panic starts (or is extended) when desired panic / ready >= the panic
   threshold; it ends once a stable window has passed with no new panic.
   While panicking the larger of the two counts is wanted and the count
   never goes down (maxPanicPods).
4. scale-down-delay: the result is the maximum of the recommendations over
   the delay (a max.TimeWindow of 2-second buckets).
5. Excess burst capacity = floor(ready x total per pod - TBC - panic
   observed); 0 when TBC is 0, -1 when TBC is -1 (activator always in path).

The rest follows pkg/reconciler/autoscaling/kpa: bounded_scale (min/max and
initial scale, scaler.scale), scale_to_zero (handleScaleToZero: the stable
window while Active, the grace period behind the activator, the last-pod
retention, the activation timeout), sks_mode (when the activator leaves the
path), num_activators (computeNumActivators) and active_condition.

Neighbours: config.py (RevisionScaling, TICK_INTERVAL), metrics.py (the
observed averages come from MetricCollection.stable_and_panic). The runner
that ticks, patches the Deployment's scale and requeues is a shell elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from skiff.serving.autoscaler.config import TICK_INTERVAL, RevisionScaling

# ServerlessService operation modes (networking.knative.dev/v1alpha1).
SKS_MODE_SERVE = "Serve"
SKS_MODE_PROXY = "Proxy"
MIN_ACTIVATORS = 2
SCALE_UNKNOWN = -1
# handleScaleToZero requeues this soon when the SKS is already proxying.
PROXY_REQUEUE = 3.0


@dataclass(frozen=True)
class ScaleResult:
    """scaling.ScaleResult."""

    desired_pod_count: int
    excess_burst_capacity: int
    scale_valid: bool = True


# No data yet (ErrNoData) or the pods could not be counted: the runner keeps the last result.
INVALID_SCALE_RESULT = ScaleResult(0, 0, False)


@dataclass(frozen=True)
class MaxTimeWindow:
    """max.TimeWindow: the maximum recorded over the last `size` buckets of `granularity` s.

    entries are (bucket index, value), oldest first and strictly descending in
    value (the "descending minima" algorithm), so the front is the maximum.
    """

    size: int
    granularity: float = TICK_INTERVAL
    entries: tuple[tuple[int, int], ...] = ()

    @staticmethod
    def for_duration(duration: float, granularity: float = TICK_INTERVAL) -> MaxTimeWindow:
        return MaxTimeWindow(math.ceil(duration / granularity), granularity)

    def record(self, now: float, value: int) -> MaxTimeWindow:
        index = math.floor(now) // int(self.granularity)
        es = list(self.entries)
        # A value no larger than the new one, and older, can never be the maximum again.
        while es and not value < es[-1][1]:
            es.pop()
        # Entries a whole window old fall out at the front.
        while es and index - es[0][0] >= self.size:
            es.pop(0)
        # Two values in one bucket: keep the larger.
        if es and es[-1][0] == index:
            value = max(value, es[-1][1])
            es.pop()
        es.append((index, value))
        return replace(self, entries=tuple(es))

    def current(self) -> int:
        return self.entries[0][1] if self.entries else 0


@dataclass(frozen=True)
class DeciderState:
    """The autoscaler's memory between ticks.

    panic_time: when panic last started or was extended (None: not panicking).
    max_panic_pods: the most pods wanted during this panic.
    delay_window: the scale-down-delay window, present iff the decider was
    created with a delay (upstream sizes it once, in New, and keeps it).
    """

    panic_time: float | None = None
    max_panic_pods: int = 0
    delay_window: MaxTimeWindow | None = None


def new_decider_state(s: RevisionScaling, ready_pods: int | None, now: float) -> DeciderState:
    """newAutoscaler: start in panic when more than one pod is already ready.

    After an autoscaler restart the metric history is gone; panicking holds
    the current scale until enough data is in. `ready_pods` None is a failed
    count (the revision is new and has no endpoints yet): 0.
    """
    cur = ready_pods or 0
    window = MaxTimeWindow.for_duration(s.scale_down_delay) if s.scale_down_delay > 0 else None
    return DeciderState(panic_time=now if cur > 1 else None, max_panic_pods=cur,
                        delay_window=window)


def decide(s: RevisionScaling, state: DeciderState, observed_stable: float,
           observed_panic: float, ready_pods: int, now: float
           ) -> tuple[ScaleResult, DeciderState]:
    """Scale(): the desired pod count and excess burst capacity for this tick.

    observed_*: the window averages of s.metric (concurrency or RPS) over
    the whole revision; ready_pods: its ready endpoints (0 is taken as 1).
    """
    ready = float(max(1, ready_pods))
    # Ceil, so a slow rate still grows by at least one pod (1.1 x 2 -> 3).
    max_up = math.ceil(s.max_scale_up_rate * ready)
    max_down = math.floor(ready / s.max_scale_down_rate) if s.reachable else 0.0
    dspc = math.ceil(observed_stable / s.target_value)
    dppc = math.ceil(observed_panic / s.target_value)
    stable_pods = int(min(max(dspc, max_down), max_up))
    panic_pods = int(min(max(dppc, max_down), max_up))
    if s.activation_scale > 1:
        if dspc > 0 and s.activation_scale > stable_pods:
            stable_pods = s.activation_scale
        if dppc > 0 and s.activation_scale > panic_pods:
            panic_pods = s.activation_scale

    over = dppc / ready >= s.panic_threshold
    panic_time, max_panic = state.panic_time, state.max_panic_pods
    if over:
        panic_time = now  # begin, or extend, the panic
    elif panic_time is not None and panic_time + s.stable_window < now:
        # The surge has made its way into the stable window: calm down.
        panic_time, max_panic = None, 0

    desired = stable_pods
    if panic_time is not None:
        # The stable window may see more than the panic one; provision for the larger.
        desired = max(desired, panic_pods)
        # Never scale down while panicking.
        max_panic = max(max_panic, desired)
        desired = max_panic

    window = state.delay_window
    if window is not None:
        window = window.record(now, desired)
        desired = window.current()

    if s.target_burst_capacity == 0:
        ebc = 0.0
    elif s.target_burst_capacity > 0:
        # On the panic value: the activator should not hop in and out on every blip.
        ebc = math.floor(ready_pods * s.total_value - s.target_burst_capacity - observed_panic)
    else:
        ebc = -1.0
    new_state = DeciderState(panic_time=panic_time, max_panic_pods=max_panic,
                             delay_window=window)
    return ScaleResult(desired, int(ebc), True), new_state


# --------------------------------------------------------------------------- the KPA reconciler

def apply_bounds(min_scale: int, max_scale: int, x: int) -> int:
    """applyBounds: max 0 means no upper bound."""
    if x < min_scale:
        return min_scale
    if max_scale != 0 and x > max_scale:
        return max_scale
    return x


def bounded_scale(s: RevisionScaling, desired: int, activating: bool,
                  scale_target_initialized: bool) -> tuple[int, bool]:
    """scaler.scale before scale-to-zero: (scale, proceed).

    A negative desired scale means the metrics pipeline has no data yet:
    unless the PA is activating, it is passed on untouched (proceed False).
    Until the scale target has once reached its initial scale, an initial
    scale above 1 acts as the lower bound.
    """
    if desired < 0 and not activating:
        return desired, False
    lo = s.min_scale if s.reachable else 0
    if s.initial_scale > 1 and not scale_target_initialized:
        lo = max(s.initial_scale, lo)
    return apply_bounds(lo, s.max_scale, desired), True


@dataclass(frozen=True)
class ScaleToZeroDecision:
    """handleScaleToZero's answer.

    scale: the scale to report (SCALE_UNKNOWN while waiting on activation).
    apply: whether to patch the scale target now (upstream's shouldApplyScale).
    requeue_after: reconcile the PA again after this many seconds, if set.
    probe_activator: the activator is not known to be in the path yet; start
    probing it (the probe's result requeues the PA).
    """

    scale: int
    apply: bool
    requeue_after: float | None = None
    probe_activator: bool = False


def scale_to_zero(desired: int, *, enable_scale_to_zero: bool, active: str,
                  active_since: float, stable_window: float, activation_timeout: float,
                  activator_in_path: bool, sks_mode: str, proxy_since: float | None,
                  grace_period: float, retention_period: float, now: float
                  ) -> ScaleToZeroDecision:
    """handleScaleToZero: may the revision go to zero pods now, and if not, when to look again.

    active: the PA's Active condition status ("True", "False", "Unknown"),
    active_since its last transition time. activator_in_path: the activator
    answered the probe, or TBC is -1 (then it is always in the path).
    sks_mode and proxy_since: the SKS's spec mode and when its
    ActivatorEndpointsPopulated condition became True (None when it is not).
    """
    if desired != 0:
        return ScaleToZeroDecision(desired, True)
    if not enable_scale_to_zero:
        return ScaleToZeroDecision(1, True)
    if active == "Unknown":
        # Activating for longer than the progress deadline: give up and go to zero.
        if now - active_since > activation_timeout:
            return ScaleToZeroDecision(desired, True)
        return ScaleToZeroDecision(SCALE_UNKNOWN, False, requeue_after=activation_timeout)
    if active == "True":
        active_for = now - active_since
        if active_for >= stable_window:
            # Report 0 to mark the PA inactive; the SKS moves to Proxy, and the
            # grace period starts. In Proxy already, nothing else would wake us.
            requeue = PROXY_REQUEUE if sks_mode == SKS_MODE_PROXY else None
            return ScaleToZeroDecision(desired, False, requeue_after=requeue)
        # Hold one pod for the rest of the stable window.
        return ScaleToZeroDecision(1, True, requeue_after=stable_window - active_for)
    # Inactive.
    if not activator_in_path:
        return ScaleToZeroDecision(desired, False, probe_activator=True)
    inactive_for = now - active_since
    if inactive_for >= max(grace_period, retention_period):
        return ScaleToZeroDecision(desired, True)
    # The last pod's retention is a hard deadline whatever the network does.
    if retention_period > 0 and inactive_for < retention_period:
        return ScaleToZeroDecision(desired, False, requeue_after=retention_period - inactive_for)
    # Wait until the activator has been in the path for the grace period.
    proxy_for = 0.0 if proxy_since is None else now - proxy_since
    to = grace_period - proxy_for
    if to <= 0:
        return ScaleToZeroDecision(desired, True)
    return ScaleToZeroDecision(desired, False, requeue_after=to)


def sks_mode(want: int, excess_burst_capacity: int, pa_inactive: bool,
             internal_encryption: bool = False) -> str:
    """ReconcileKind's SKS mode: Serve only with pods wanted and burst capacity to spare."""
    if internal_encryption:
        return SKS_MODE_PROXY  # activator TLS forces it into the path (upstream #11906)
    if want == SCALE_UNKNOWN and pa_inactive:
        return SKS_MODE_PROXY  # autoscaler restarted and knows nothing; stay scaled down
    if want > 0 and excess_burst_capacity >= 0:
        return SKS_MODE_SERVE
    return SKS_MODE_PROXY


def num_activators(ready_pods: int, s: RevisionScaling) -> int:
    """computeNumActivators: enough activators to cover the pods' capacity plus the TBC."""
    if s.target_burst_capacity == 0:
        return MIN_ACTIVATORS
    cover = ready_pods * s.total_value
    if s.target_burst_capacity > 0:
        cover += s.target_burst_capacity
    return int(max(MIN_ACTIVATORS, math.ceil(cover / s.activator_capacity)))


def active_threshold(s: RevisionScaling, scale_target_initialized: bool) -> int:
    """activeThreshold: ready pods needed to be Active (initial scale until first reached)."""
    lo = s.min_scale if s.reachable else 0
    if not scale_target_initialized:
        return max(lo, s.initial_scale)
    return max(lo, 1)


def active_condition(want: int, ready: int, current: str, min_ready: int,
                     current_reason: str = "") -> tuple[str, str]:
    """computeActiveCondition: the PA's next Active (status, reason).

    current is the Active condition's status now ("True", "False",
    "Unknown") and current_reason its reason; min_ready is active_threshold(...).
    """
    # Upstream's next pass rewrites TimedOut to NoTraffic, so a revision whose pod never
    # became ready says so for one reconcile only; here it keeps saying so until the next
    # activation.
    inactive = "TimedOut" if current == "False" and current_reason == "TimedOut" \
        and min_ready > 0 else "NoTraffic"
    if want == 0 or min_ready == 0:
        if current == "Unknown" and min_ready > 0:
            return "False", "TimedOut"  # activation failed within the progress deadline
        return "False", inactive
    if ready < min_ready:
        if want > 0 or current != "False":
            return "Unknown", "Queued"
        return "False", inactive
    if want > 0 or current != "False":
        return "True", ""
    return current, ""
