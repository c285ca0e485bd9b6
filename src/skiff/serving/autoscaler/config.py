"""config-autoscaler and a revision's resolved scaling spec (Knative Serving 1.10). Pure.

Upstream: pkg/autoscaler/config (NewConfigFromMap, validate), the constants of
pkg/apis/autoscaling (annotation keys, TargetMin, window bounds), the
PodAutoscaler's annotation accessors (v1alpha1/pa_lifecycle.go) and the KPA
reconciler's builders MakeDecider, MakeMetric, ResolveMetricTarget and
GetInitialScale. Here they are:

- AutoscalerConfig: every config-autoscaler key with upstream's default;
  parse_config(data) reads a ConfigMap's data and fails with upstream's text.
- RevisionScaling: the DeciderSpec plus the Metric's windows plus the scale
  bounds and scale-to-zero knobs of one revision; resolve(annotations,
  container_concurrency, cfg) computes it the way the KPA reconciler does.

Durations are float seconds in the dataclasses and Go durations in the
ConfigMap (parsed and printed by durations.py).

Neighbours: validate.py (the webhook's checks on the same annotations),
decider.py (consumes RevisionScaling), metrics.py (uses the windows),
serving/config.py (holds the config-autoscaler data from the KnativeServing
CR; it hands that mapping to parse_config).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from skiff.serving.autoscaler import durations as dur

# pkg/apis/autoscaling/register.go
DOMAIN = ".knative.dev"
GROUP = "autoscaling.knative.dev"
KPA = "kpa.autoscaling.knative.dev"
HPA = "hpa.autoscaling.knative.dev"
CONCURRENCY = "concurrency"
RPS = "rps"
CPU = "cpu"
MEMORY = "memory"

CLASS_KEY = GROUP + "/class"
MIN_SCALE_KEY = GROUP + "/min-scale"
MAX_SCALE_KEY = GROUP + "/max-scale"
INITIAL_SCALE_KEY = GROUP + "/initial-scale"
ACTIVATION_SCALE_KEY = GROUP + "/activation-scale"
SCALE_DOWN_DELAY_KEY = GROUP + "/scale-down-delay"
METRIC_KEY = GROUP + "/metric"
TARGET_KEY = GROUP + "/target"
TARGET_UTILIZATION_PERCENTAGE_KEY = GROUP + "/target-utilization-percentage"
TARGET_BURST_CAPACITY_KEY = GROUP + "/target-burst-capacity"
WINDOW_KEY = GROUP + "/window"
PANIC_WINDOW_PERCENTAGE_KEY = GROUP + "/panic-window-percentage"
PANIC_THRESHOLD_PERCENTAGE_KEY = GROUP + "/panic-threshold-percentage"
SCALE_TO_ZERO_POD_RETENTION_PERIOD_KEY = GROUP + "/scale-to-zero-pod-retention-period"
METRIC_AGGREGATION_ALGORITHM_KEY = GROUP + "/metric-aggregation-algorithm"
# serving.knative.dev/progress-deadline bounds activation (kpa scaler's activationTimeout).
PROGRESS_DEADLINE_KEY = "serving.knative.dev/progress-deadline"

ALGORITHM_LINEAR = "linear"
ALGORITHM_WEIGHTED_EXPONENTIAL = "weighted-exponential"
ALGORITHM_WEIGHTED_EXPONENTIAL_ALT = "weightedExponential"

# kmap.KeyPriority: the canonical key first, then the camelCase spelling that
# older revisions used; the first one present wins.
CLASS = (CLASS_KEY,)
MIN_SCALE = (MIN_SCALE_KEY, GROUP + "/minScale")
MAX_SCALE = (MAX_SCALE_KEY, GROUP + "/maxScale")
INITIAL_SCALE = (INITIAL_SCALE_KEY, GROUP + "/initialScale")
ACTIVATION_SCALE = (ACTIVATION_SCALE_KEY,)
SCALE_DOWN_DELAY = (SCALE_DOWN_DELAY_KEY, GROUP + "/scaleDownDelay")
METRIC = (METRIC_KEY,)
TARGET = (TARGET_KEY,)
TARGET_UTILIZATION_PERCENTAGE = (TARGET_UTILIZATION_PERCENTAGE_KEY,
                                 GROUP + "/targetUtilizationPercentage")
TARGET_BURST_CAPACITY = (TARGET_BURST_CAPACITY_KEY, GROUP + "/targetBurstCapacity")
WINDOW = (WINDOW_KEY,)
PANIC_WINDOW_PERCENTAGE = (PANIC_WINDOW_PERCENTAGE_KEY, GROUP + "/panicWindowPercentage")
PANIC_THRESHOLD_PERCENTAGE = (PANIC_THRESHOLD_PERCENTAGE_KEY,
                              GROUP + "/panicThresholdPercentage")
SCALE_TO_ZERO_POD_RETENTION_PERIOD = (SCALE_TO_ZERO_POD_RETENTION_PERIOD_KEY,
                                      GROUP + "/scaleToZeroPodRetentionPeriod")
METRIC_AGGREGATION_ALGORITHM = (METRIC_AGGREGATION_ALGORITHM_KEY,
                                GROUP + "/metricAggregationAlgorithm")

TARGET_MIN = 0.01
WINDOW_MIN_NS = 6 * dur.SECOND
WINDOW_MAX_NS = dur.HOUR
PANIC_WINDOW_PERCENTAGE_MIN = 1.0
PANIC_WINDOW_PERCENTAGE_MAX = 100.0
PANIC_THRESHOLD_PERCENTAGE_MIN = 110.0
PANIC_THRESHOLD_PERCENTAGE_MAX = 1000.0

BUCKET_SIZE = 1.0       # config.BucketSize: metrics are kept in 1-second buckets
TICK_INTERVAL = 2.0     # scaling.tickInterval: the decider runs every 2 s
# config-deployment's progress-deadline default, and the kpa scaler's buffer on top of it.
DEFAULT_PROGRESS_DEADLINE = 600.0
ACTIVATION_TIMEOUT_BUFFER = 30.0

_DEFAULT_TARGET_UTILIZATION = 0.7

T = TypeVar("T")


class ConfigError(ValueError):
    """NewConfigFromMap's error; str() is upstream's message."""


@dataclass(frozen=True)
class AutoscalerConfig:
    """autoscalerconfig.Config: config-autoscaler, parsed. Durations in seconds."""

    enable_scale_to_zero: bool = True
    # container-concurrency-target-percentage, as a fraction (70 -> 0.7).
    container_concurrency_target_fraction: float = _DEFAULT_TARGET_UTILIZATION
    container_concurrency_target_default: float = 100.0
    # Not a ConfigMap key in 1.10: the utilization applied to the RPS target.
    target_utilization: float = _DEFAULT_TARGET_UTILIZATION
    rps_target_default: float = 200.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    # 211, not the docs' 200: upstream's defaultConfig (TODO #11926 there).
    target_burst_capacity: float = 211.0
    panic_window_percentage: float = 10.0
    activator_capacity: float = 100.0
    panic_threshold_percentage: float = 200.0
    stable_window: float = 60.0
    scale_to_zero_grace_period: float = 30.0
    scale_to_zero_pod_retention_period: float = 0.0
    scale_down_delay: float = 0.0
    pod_autoscaler_class: str = KPA
    allow_zero_initial_scale: bool = False
    initial_scale: int = 1
    min_scale: int = 0
    max_scale: int = 0
    max_scale_limit: int = 0


# ---------------------------------------------------------------- Go's strconv, as upstream parses

_GO_FLOAT = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)",
                       re.IGNORECASE)
_GO_INT = re.compile(r"[+-]?\d+")
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")
INT32_MAX = 2**31 - 1


class StrconvError(ValueError):
    """strconv's *NumError; `out_of_range` is errors.Is(err, strconv.ErrRange)."""

    def __init__(self, func: str, text: str, out_of_range: bool = False) -> None:
        why = "value out of range" if out_of_range else "invalid syntax"
        super().__init__(f'strconv.{func}: parsing "{text}": {why}')
        self.out_of_range = out_of_range


def parse_float(text: str) -> float:
    """strconv.ParseFloat(s, 64). Python's float() also takes spaces and '1_0'; Go does not."""
    if not _GO_FLOAT.fullmatch(text):
        raise StrconvError("ParseFloat", text)
    v = float(text)
    if math.isinf(v) and not text.lstrip("+-")[:1].isalpha():
        raise StrconvError("ParseFloat", text, out_of_range=True)
    return v


def parse_int(text: str, bits: int = 32, func: str = "ParseInt") -> int:
    """strconv.ParseInt(s, 10, bits); func="Atoi" gives Atoi's name in the message."""
    if not _GO_INT.fullmatch(text):
        raise StrconvError(func, text)
    v = int(text)
    if not -(2 ** (bits - 1)) <= v <= 2 ** (bits - 1) - 1:
        raise StrconvError(func, text, out_of_range=True)
    return v


def parse_bool(text: str) -> bool:
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    raise StrconvError("ParseBool", text)


def go_float(v: float) -> str:
    """fmt's %v for a float64, i.e. strconv.FormatFloat(v, 'g', -1, 64).

    Shortest round-tripping digits; the exponent form when the decimal
    exponent is < -4 or >= 6 (Go's shortest 'g' decides with precision 6),
    so 100 -> "100", 0.5 -> "0.5", 1e6 -> "1e+06".
    """
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    r = repr(abs(v))  # Python's repr is the shortest round-tripping form, as Go's -1 precision
    mant, _, e = r.partition("e")
    exp_extra = int(e) if e else 0
    int_part, _, frac_part = mant.partition(".")
    digits = (int_part + frac_part).lstrip("0")
    lead_zeros = len(int_part + frac_part) - len((int_part + frac_part).lstrip("0"))
    exp = len(int_part) - 1 + exp_extra - lead_zeros
    digits = digits.rstrip("0") or "0"
    sign = "-" if v < 0 else ""
    if exp < -4 or exp >= 6:
        m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{m}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp >= len(digits) - 1:
        return sign + digits + "0" * (exp - len(digits) + 1)
    if exp >= 0:
        return f"{sign}{digits[:exp + 1]}.{digits[exp + 1:]}"
    return f"{sign}0.{'0' * (-exp - 1)}{digits}"


# ------------------------------------------------------------------------------ config-autoscaler

def parse_config(data: Mapping[str, str]) -> AutoscalerConfig:
    """config.NewConfigFromMap: defaults, overridden by `data`, then validated."""
    vals: dict[str, object] = {}
    ns: dict[str, int] = {
        "stable_window": 60 * dur.SECOND,
        "scale_to_zero_grace_period": 30 * dur.SECOND,
        "scale_to_zero_pod_retention_period": 0,
        "scale_down_delay": 0,
    }
    strings = {"pod-autoscaler-class": "pod_autoscaler_class"}
    bools = {"enable-scale-to-zero": "enable_scale_to_zero",
             "allow-zero-initial-scale": "allow_zero_initial_scale"}
    floats = {"max-scale-up-rate": "max_scale_up_rate",
              "max-scale-down-rate": "max_scale_down_rate",
              "container-concurrency-target-percentage": "container_concurrency_target_fraction",
              "container-concurrency-target-default": "container_concurrency_target_default",
              "requests-per-second-target-default": "rps_target_default",
              "target-burst-capacity": "target_burst_capacity",
              "panic-window-percentage": "panic_window_percentage",
              "activator-capacity": "activator_capacity",
              "panic-threshold-percentage": "panic_threshold_percentage"}
    ints = {"initial-scale": "initial_scale", "min-scale": "min_scale",
            "max-scale": "max_scale", "max-scale-limit": "max_scale_limit"}
    durs = {"stable-window": "stable_window", "scale-down-delay": "scale_down_delay",
            "scale-to-zero-grace-period": "scale_to_zero_grace_period",
            "scale-to-zero-pod-retention-period": "scale_to_zero_pod_retention_period"}
    # cm.Parse visits keys in this order and stops at the first bad one.
    try:
        for key, attr in strings.items():
            if key in data:
                vals[attr] = data[key]
        for key, attr in bools.items():
            if key in data:
                vals[attr] = _parsed(key, parse_bool, data[key])
        for key, attr in floats.items():
            if key in data:
                vals[attr] = _parsed(key, parse_float, data[key])
        for key, attr in ints.items():
            if key in data:
                vals[attr] = _parsed(key, parse_int, data[key])
        for key, attr in durs.items():
            if key in data:
                ns[attr] = _parsed(key, dur.parse_duration, data[key])
    except ConfigError as e:
        raise ConfigError(f"failed to parse data: {e}") from None
    frac = vals.get("container_concurrency_target_fraction", _DEFAULT_TARGET_UTILIZATION)
    assert isinstance(frac, float)
    # Percent -> fraction; values in (0, 1] are taken as fractions already (legacy).
    if frac > 1.0:
        vals["container_concurrency_target_fraction"] = frac / 100.0
    cfg = AutoscalerConfig(**{**vals, **{k: dur.seconds(v) for k, v in ns.items()}})  # type: ignore[arg-type]
    _validate(cfg, ns)
    return cfg


def _parsed(key: str, fn: Callable[[str], T], raw: str) -> T:
    try:
        return fn(raw)
    except (StrconvError, dur.DurationError) as e:
        raise ConfigError(f'failed to parse "{key}": {e}') from None


def validate_config(cfg: AutoscalerConfig) -> None:
    """config.validate on an AutoscalerConfig built in code; raises ConfigError."""
    _validate(cfg, {"stable_window": dur.to_ns(cfg.stable_window),
                    "scale_to_zero_grace_period": dur.to_ns(cfg.scale_to_zero_grace_period),
                    "scale_to_zero_pod_retention_period":
                        dur.to_ns(cfg.scale_to_zero_pod_retention_period),
                    "scale_down_delay": dur.to_ns(cfg.scale_down_delay)})


def _validate(lc: AutoscalerConfig, ns: Mapping[str, int]) -> None:
    f, d = go_float, dur.format_duration
    grace, sdd = ns["scale_to_zero_grace_period"], ns["scale_down_delay"]
    retention, sw = ns["scale_to_zero_pod_retention_period"], ns["stable_window"]
    if grace <= 0:
        raise ConfigError(f"scale-to-zero-grace-period must be positive, was: {d(grace)}")
    if sdd < 0:
        raise ConfigError(f"scale-down-delay cannot be negative, was: {d(sdd)}")
    if _round_second(sdd) != sdd:
        raise ConfigError(
            f"scale-down-delay = {d(sdd)}, must be specified with at most second precision")
    if retention < 0:
        raise ConfigError(
            f"scale-to-zero-pod-retention-period cannot be negative, was: {d(retention)}")
    if lc.target_burst_capacity < 0 and lc.target_burst_capacity != -1:
        raise ConfigError("target-burst-capacity must be either non-negative or -1 (for "
                          f"unlimited), was: {lc.target_burst_capacity:f}")
    frac = lc.container_concurrency_target_fraction
    if frac <= 0 or frac > 1:
        raise ConfigError(f"container-concurrency-target-percentage = {frac:f} is outside of "
                          "valid range of (0, 100]")
    x = frac * lc.container_concurrency_target_default
    if x < TARGET_MIN:
        raise ConfigError("container-concurrency-target-percentage and "
                          "container-concurrency-target-default yield target concurrency of "
                          f"{f(x)}, can't be less than {f(TARGET_MIN)}")
    if lc.rps_target_default < TARGET_MIN:
        raise ConfigError(f"requests-per-second-target-default must be at least "
                          f"{f(TARGET_MIN)}, was: {f(lc.rps_target_default)}")
    if lc.activator_capacity < 1:
        raise ConfigError(f"activator-capacity = {f(lc.activator_capacity)}, must be at least 1")
    if lc.max_scale_up_rate <= 1.0:
        raise ConfigError(
            f"max-scale-up-rate = {f(lc.max_scale_up_rate)}, must be greater than 1.0")
    if lc.max_scale_down_rate <= 1.0:
        raise ConfigError(
            f"max-scale-down-rate = {f(lc.max_scale_down_rate)}, must be greater than 1.0")
    # Shorter than the aggregation needs, or so long that decisions go stale.
    if sw < WINDOW_MIN_NS or sw > WINDOW_MAX_NS:
        raise ConfigError(f"stable-window = {d(sw)}, must be in "
                          f"[{d(WINDOW_MIN_NS)}; {d(WINDOW_MAX_NS)}] range")
    if _round_second(sw) != sw:
        raise ConfigError(
            f"stable-window = {d(sw)}, must be specified with at most second precision")
    pwp = lc.panic_window_percentage
    if pwp < PANIC_WINDOW_PERCENTAGE_MIN or pwp > PANIC_WINDOW_PERCENTAGE_MAX:
        raise ConfigError(f"panic-window-percentage = {f(pwp)}, must be in "
                          f"[{f(PANIC_WINDOW_PERCENTAGE_MIN)}, "
                          f"{f(PANIC_WINDOW_PERCENTAGE_MAX)}] interval")
    if lc.initial_scale < 0 or (lc.initial_scale == 0 and not lc.allow_zero_initial_scale):
        raise ConfigError(f"initial-scale = {lc.initial_scale}, must be at least 0 (or at least "
                          "1 when allow-zero-initial-scale is false)")
    if lc.min_scale < 0:
        raise ConfigError(f"min-scale = {lc.min_scale}, must be at least 0")
    # A default max-scale is required once max-scale-limit is set.
    min_max_scale = 1 if lc.max_scale_limit > 0 else 0
    if lc.max_scale < min_max_scale or (0 < lc.max_scale_limit < lc.max_scale):
        raise ConfigError(f"max-scale = {lc.max_scale}, must be in [{min_max_scale}, "
                          f"max-scale-limit({lc.max_scale_limit})] range")
    if lc.max_scale_limit < 0:
        raise ConfigError(f"max-scale-limit = {lc.max_scale_limit}, must be at least 0")
    if lc.min_scale > lc.max_scale > 0:
        raise ConfigError(
            f"min-scale ({lc.min_scale}) must be less than max-scale ({lc.max_scale})")


def _round_second(ns: int) -> int:
    """time.Duration.Round(time.Second): halves away from zero."""
    q, r = divmod(abs(ns), dur.SECOND)
    if 2 * r >= dur.SECOND:
        q += 1
    return (q * dur.SECOND) * (1 if ns >= 0 else -1)


# ---------------------------------------------------------------- annotation accessors (pa_lifecycle)

def get_key(annotations: Mapping[str, str], keys: tuple[str, ...]) -> tuple[str, str] | None:
    """kmap.KeyPriority.Get: the first of `keys` present, with its value."""
    for k in keys:
        if k in annotations:
            return k, annotations[k]
    return None


def ann_int32(annotations: Mapping[str, str], keys: tuple[str, ...]) -> int | None:
    got = get_key(annotations, keys)
    if got is None:
        return None
    try:
        return parse_int(got[1])
    except StrconvError:
        return None


def ann_float(annotations: Mapping[str, str], keys: tuple[str, ...]) -> float | None:
    got = get_key(annotations, keys)
    if got is None:
        return None
    try:
        return parse_float(got[1])
    except StrconvError:
        return None


def ann_duration(annotations: Mapping[str, str], keys: tuple[str, ...]) -> float | None:
    got = get_key(annotations, keys)
    if got is None:
        return None
    try:
        return dur.seconds(dur.parse_duration(got[1]))
    except dur.DurationError:
        return None


def pa_class(annotations: Mapping[str, str]) -> str:
    """PodAutoscaler.Class(): the class annotation, else KPA.

    The revision reconciler stamps the config's pod-autoscaler-class on a PA
    without one; resolve() does the same with cfg.pod_autoscaler_class.
    """
    return annotations.get(CLASS_KEY, KPA)


def default_metric(klass: str) -> str:
    """pa_defaults' defaultMetric: concurrency for the KPA, cpu for the HPA, else none."""
    return {KPA: CONCURRENCY, HPA: CPU}.get(klass, "")


def aggregation_algorithm(annotations: Mapping[str, str]) -> str:
    """Metric.AggregationAlgorithm(): the annotation, with the camelCase spelling normalised."""
    got = get_key(annotations, METRIC_AGGREGATION_ALGORITHM)
    v = got[1] if got else ""
    return ALGORITHM_WEIGHTED_EXPONENTIAL if v == ALGORITHM_WEIGHTED_EXPONENTIAL_ALT else v


# ------------------------------------------------------------------------ a revision's scaling spec

@dataclass(frozen=True)
class RevisionScaling:
    """One revision's DeciderSpec, Metric windows, bounds and scale-to-zero knobs.

    Field by field from upstream: the scaling.DeciderSpec (max_scale_up_rate ..
    activation_scale), the Metric spec (stable_window, panic_window,
    aggregation_algorithm), PodAutoscaler.ScaleBounds (min_scale, max_scale),
    the kpa scaler's inputs (enable_scale_to_zero, grace period, last-pod
    retention, activation timeout). Durations in seconds. The defaults are a
    plain KPA on concurrency 100 x 0.7, so tests can build one by hand.
    """

    pa_class: str = KPA
    metric: str = CONCURRENCY
    target_value: float = 70.0          # per pod: what the decider aims for
    total_value: float = 100.0          # per pod: the most a pod can take
    target_burst_capacity: float = 211.0
    activator_capacity: float = 100.0
    panic_threshold: float = 2.0        # a factor: 200% -> 2.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    stable_window: float = 60.0
    panic_window: float = 6.0
    scale_down_delay: float = 0.0
    initial_scale: int = 1
    reachable: bool = True
    activation_scale: int = 0
    min_scale: int = 0
    max_scale: int = 0                  # 0: no limit
    enable_scale_to_zero: bool = True
    scale_to_zero_grace_period: float = 30.0
    scale_to_zero_pod_retention: float = 0.0
    activation_timeout: float = DEFAULT_PROGRESS_DEADLINE + ACTIVATION_TIMEOUT_BUFFER
    aggregation_algorithm: str = ""
    container_concurrency: int = 0


def resolve_metric_target(annotations: Mapping[str, str], container_concurrency: int,
                          cfg: AutoscalerConfig, metric: str) -> tuple[float, float]:
    """resources.ResolveMetricTarget: (target per pod, total per pod)."""
    if metric == RPS:
        total, tu = cfg.rps_target_default, cfg.target_utilization
    else:
        # Concurrency is the default; containerConcurrency 0 means the default target.
        total = float(container_concurrency) or cfg.container_concurrency_target_default
        tu = cfg.container_concurrency_target_fraction
    target_ann = ann_float(annotations, TARGET)
    if target_ann is not None:
        total = target_ann
        if metric == CONCURRENCY and container_concurrency != 0:
            # Never aim above what the container says it can take.
            total = min(target_ann, float(container_concurrency))
    tu_ann = ann_float(annotations, TARGET_UTILIZATION_PERCENTAGE)
    if tu_ann is not None:
        tu = tu_ann / 100
    return max(TARGET_MIN, total * tu), total


def initial_scale(annotations: Mapping[str, str], cfg: AutoscalerConfig) -> int:
    """kpa resources.GetInitialScale: the annotation unless absent, bad, or a forbidden 0."""
    v = ann_int32(annotations, INITIAL_SCALE)
    if v is None or (v == 0 and not cfg.allow_zero_initial_scale):
        return cfg.initial_scale
    return v


def panic_window(stable_window: float, panic_window_percentage: float) -> float:
    """MakeMetric: stable x percentage, rounded to the second, at least one bucket."""
    ns = round(dur.to_ns(stable_window) * panic_window_percentage / 100.0)
    ns = _round_second(ns)
    return max(dur.seconds(ns), BUCKET_SIZE)


def resolve(annotations: Mapping[str, str], container_concurrency: int,
            cfg: AutoscalerConfig, reachable: bool = True,
            progress_deadline: float = DEFAULT_PROGRESS_DEADLINE) -> RevisionScaling:
    """MakeDecider + MakeMetric + ScaleBounds for a revision's annotations.

    Annotations are assumed to have passed validate_annotations; like
    upstream's accessors, a malformed value falls back to the config.
    `reachable` is the PA's spec.reachability (a revision no route points
    at is Unreachable: min-scale is ignored and scale-down is unlimited).
    `progress_deadline` is config-deployment's, the annotation overriding it.
    """
    klass = annotations.get(CLASS_KEY, cfg.pod_autoscaler_class)
    metric = annotations.get(METRIC_KEY, default_metric(klass))
    target, total = resolve_metric_target(annotations, container_concurrency, cfg, metric)
    ptp = ann_float(annotations, PANIC_THRESHOLD_PERCENTAGE)
    tbc = ann_float(annotations, TARGET_BURST_CAPACITY)
    sdd = ann_duration(annotations, SCALE_DOWN_DELAY)
    act = ann_int32(annotations, ACTIVATION_SCALE)
    sw = ann_duration(annotations, WINDOW)
    stable = cfg.stable_window if sw is None else sw
    pwp = ann_float(annotations, PANIC_WINDOW_PERCENTAGE)
    min_scale = 0
    if reachable:
        m = ann_int32(annotations, MIN_SCALE)
        min_scale = cfg.min_scale if m is None else m
    mx = ann_int32(annotations, MAX_SCALE)
    retention = ann_duration(annotations, SCALE_TO_ZERO_POD_RETENTION_PERIOD)
    pd = ann_duration(annotations, (PROGRESS_DEADLINE_KEY,))
    return RevisionScaling(
        pa_class=klass,
        metric=metric,
        target_value=target,
        total_value=total,
        target_burst_capacity=cfg.target_burst_capacity if tbc is None else tbc,
        activator_capacity=cfg.activator_capacity,
        panic_threshold=(cfg.panic_threshold_percentage if ptp is None else ptp) / 100.0,
        max_scale_up_rate=cfg.max_scale_up_rate,
        max_scale_down_rate=cfg.max_scale_down_rate,
        stable_window=stable,
        panic_window=panic_window(stable, cfg.panic_window_percentage if pwp is None else pwp),
        scale_down_delay=cfg.scale_down_delay if sdd is None else sdd,
        initial_scale=initial_scale(annotations, cfg),
        reachable=reachable,
        activation_scale=0 if act is None else act,
        min_scale=min_scale,
        max_scale=cfg.max_scale if mx is None else mx,
        enable_scale_to_zero=cfg.enable_scale_to_zero,
        scale_to_zero_grace_period=cfg.scale_to_zero_grace_period,
        scale_to_zero_pod_retention=(cfg.scale_to_zero_pod_retention_period
                                     if retention is None else retention),
        activation_timeout=(progress_deadline if pd is None else pd) + ACTIVATION_TIMEOUT_BUFFER,
        aggregation_algorithm=aggregation_algorithm(annotations),
        container_concurrency=container_concurrency,
    )
