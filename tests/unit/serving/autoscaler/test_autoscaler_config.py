"""config-autoscaler parsing, annotation validation and resolve(), against upstream's
pkg/autoscaler/config/config_test.go, pkg/apis/autoscaling/annotation_validation_test.go,
pkg/reconciler/autoscaling/resources/target_test.go and kpa/resources/decider_test.go.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from skiff.serving.autoscaler import config as c
from skiff.serving.autoscaler import durations as dur
from skiff.serving.autoscaler.config import AutoscalerConfig, ConfigError, parse_config, resolve
from skiff.serving.autoscaler.validate import format_errors, validate_annotations

# ------------------------------------------------------------------------------------ durations


@pytest.mark.parametrize("text, ns", [
    ("0", 0), ("5s", 5 * dur.SECOND), ("1m9s82ms", 69_082 * dur.MILLISECOND),
    ("-42s", -42 * dur.SECOND), ("1.5h", 5400 * dur.SECOND), ("365h", 365 * dur.HOUR),
    ("2m3s", 123 * dur.SECOND), ("100\u00b5s", 100_000), (".5s", dur.SECOND // 2),
])
def test_parse_duration(text: str, ns: int) -> None:
    assert dur.parse_duration(text) == ns


@pytest.mark.parametrize("text, msg", [
    ("not a duration", 'time: invalid duration "not a duration"'),
    ("1", 'time: missing unit in duration "1"'),
    ("5x", 'time: unknown unit "x" in duration "5x"'),
    ("", 'time: invalid duration ""'),
])
def test_parse_duration_errors(text: str, msg: str) -> None:
    with pytest.raises(dur.DurationError, match=msg):
        dur.parse_duration(text)


@pytest.mark.parametrize("ns, text", [
    (0, "0s"), (5 * dur.SECOND, "5s"), (dur.HOUR, "1h0m0s"), (61_984 * dur.MILLISECOND,
                                                                "1m1.984s"),
    (1_500_000, "1.5ms"), (-83 * dur.SECOND, "-1m23s"), (15 * dur.MINUTE, "15m0s"),
])
def test_format_duration(ns: int, text: str) -> None:
    assert dur.format_duration(ns) == text


# --------------------------------------------------------------------------- config-autoscaler

def test_defaults() -> None:
    cfg = parse_config({})
    assert cfg == AutoscalerConfig()
    assert cfg.container_concurrency_target_fraction == 0.7
    assert cfg.target_burst_capacity == 211
    assert cfg.stable_window == 60 and cfg.scale_to_zero_grace_period == 30
    assert cfg.pod_autoscaler_class == c.KPA


def test_overridden() -> None:
    """config_test "overridden": every value taken, the percentage as a fraction."""
    cfg = parse_config({
        "enable-scale-to-zero": "true", "max-scale-down-rate": "3.0",
        "max-scale-up-rate": "1.01", "container-concurrency-target-percentage": "0.71",
        "container-concurrency-target-default": "10.5",
        "requests-per-second-target-default": "10.11", "target-burst-capacity": "12345",
        "scale-down-delay": "15m", "stable-window": "5m", "tick-interval": "2s",
        "panic-window-percentage": "10", "panic-threshold-percentage": "200",
        "pod-autoscaler-class": "some.class", "activator-capacity": "905",
        "scale-to-zero-pod-retention-period": "2m3s",
    })
    assert cfg == replace(
        AutoscalerConfig(), max_scale_down_rate=3.0, max_scale_up_rate=1.01,
        container_concurrency_target_fraction=0.71, container_concurrency_target_default=10.5,
        rps_target_default=10.11, target_burst_capacity=12345, scale_down_delay=900,
        stable_window=300, pod_autoscaler_class="some.class", activator_capacity=905,
        scale_to_zero_pod_retention_period=123)


@pytest.mark.parametrize("data, check", [
    ({"container-concurrency-target-percentage": "55"},
     lambda cfg: cfg.container_concurrency_target_fraction == 0.55),
    ({"target-burst-capacity": "-1"}, lambda cfg: cfg.target_burst_capacity == -1),
    ({"enable-scale-to-zero": "TRUE"}, lambda cfg: cfg.enable_scale_to_zero),
    ({"enable-scale-to-zero": "false", "min-scale": "1", "max-scale": "2"},
     lambda cfg: not cfg.enable_scale_to_zero and (cfg.min_scale, cfg.max_scale) == (1, 2)),
    ({"scale-to-zero-grace-period": "33s"}, lambda cfg: cfg.scale_to_zero_grace_period == 33),
    ({"max-scale": "5", "max-scale-limit": "10"}, lambda cfg: cfg.max_scale_limit == 10),
    ({"initial-scale": "0", "allow-zero-initial-scale": "true"},
     lambda cfg: cfg.initial_scale == 0),
])
def test_valid_variants(data: dict[str, str], check: object) -> None:
    assert check(parse_config(data))  # type: ignore[operator]


@pytest.mark.parametrize("data, msg", [
    ({"max-scale-up-rate": "not a float"}, 'failed to parse data: failed to parse '
     '"max-scale-up-rate": strconv.ParseFloat: parsing "not a float": invalid syntax'),
    ({"scale-down-delay": "-1m23s"}, "scale-down-delay cannot be negative, was: -1m23s"),
    ({"scale-to-zero-pod-retention-period": "-4m11s"},
     "scale-to-zero-pod-retention-period cannot be negative, was: -4m11s"),
    ({"stable-window": "not a duration"}, 'failed to parse data: failed to parse '
     '"stable-window": time: invalid duration "not a duration"'),
    ({"target-burst-capacity": "-11"}, "target-burst-capacity must be either non-negative or "
     "-1 (for unlimited), was: -11.000000"),
    ({"container-concurrency-target-percentage": "-42"},
     "container-concurrency-target-percentage = -42.000000 is outside of valid range of "
     "(0, 100]"),
    ({"container-concurrency-target-percentage": "142.4"},
     "container-concurrency-target-percentage = 1.424000 is outside of valid range of (0, 100]"),
    ({"requests-per-second-target-default": "-5.25"},
     "requests-per-second-target-default must be at least 0.01, was: -5.25"),
    ({"max-scale-up-rate": "1"}, "max-scale-up-rate = 1, must be greater than 1.0"),
    ({"max-scale-down-rate": "-55"}, "max-scale-down-rate = -55, must be greater than 1.0"),
    ({"stable-window": "1h1s"}, "stable-window = 1h0m1s, must be in [6s; 1h0m0s] range"),
    ({"stable-window": "5s"}, "stable-window = 5s, must be in [6s; 1h0m0s] range"),
    ({"stable-window": "61984ms"},
     "stable-window = 1m1.984s, must be specified with at most second precision"),
    ({"scale-down-delay": "61984ms"},
     "scale-down-delay = 1m1.984s, must be specified with at most second precision"),
    ({"activator-capacity": "0.95"}, "activator-capacity = 0.95, must be at least 1"),
    ({"panic-window-percentage": "0.5"},
     "panic-window-percentage = 0.5, must be in [1, 100] interval"),
    ({"panic-window-percentage": "101"},
     "panic-window-percentage = 101, must be in [1, 100] interval"),
    ({"scale-to-zero-grace-period": "0s"}, "scale-to-zero-grace-period must be positive, "
     "was: 0s"),
    ({"initial-scale": "0"}, "initial-scale = 0, must be at least 0 (or at least 1 when "
     "allow-zero-initial-scale is false)"),
    ({"min-scale": "-1"}, "min-scale = -1, must be at least 0"),
    ({"max-scale": "-1"}, "max-scale = -1, must be in [0, max-scale-limit(0)] range"),
    ({"max-scale-limit": "10"}, "max-scale = 0, must be in [1, max-scale-limit(10)] range"),
    ({"max-scale": "11", "max-scale-limit": "10"},
     "max-scale = 11, must be in [1, max-scale-limit(10)] range"),
    ({"max-scale-limit": "-1"}, "max-scale-limit = -1, must be at least 0"),
    ({"min-scale": "3", "max-scale": "2"}, "min-scale (3) must be less than max-scale (2)"),
    ({"container-concurrency-target-percentage": "0.5",
      "container-concurrency-target-default": "0.01"},
     "container-concurrency-target-percentage and container-concurrency-target-default yield "
     "target concurrency of 0.005, can't be less than 0.01"),
    ({"enable-scale-to-zero": "yes"}, 'failed to parse data: failed to parse '
     '"enable-scale-to-zero": strconv.ParseBool: parsing "yes": invalid syntax'),
    ({"min-scale": "1.5"}, 'failed to parse data: failed to parse "min-scale": '
     'strconv.ParseInt: parsing "1.5": invalid syntax'),
])
def test_invalid(data: dict[str, str], msg: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(data)
    assert str(e.value) == msg


# ------------------------------------------------------------------------ annotation validation

K = c.GROUP + "/"


@pytest.mark.parametrize("name, anns, want", [
    ("empty annotations", {}, ""),
    ("invalid class", {K + "class": "unsupported.knative.dev"},
     "invalid value: unsupported.knative.dev: " + K + "class"),
    ("non-knative.dev domain class", {K + "class": "some.other.domain"}, ""),
    ("minScale is 0", {K + "min-scale": "0"}, ""),
    ("minScale is -1", {K + "min-scale": "-1"}, "expected 0 <= -1 <= 2147483647: "
     + K + "min-scale"),
    ("maxScale is huuuuuuuge", {K + "max-scale": "2147483648"},
     "expected 0 <= 2147483648 <= 2147483647: " + K + "max-scale"),
    ("minScale is foo", {K + "min-scale": "foo"}, "invalid value: foo: " + K + "min-scale"),
    ("max/minScale is bar", {K + "max-scale": "bar", K + "min-scale": "bar"},
     f"invalid value: bar: {K}max-scale, {K}min-scale"),
    ("minScale is 5, maxScale is 2", {K + "min-scale": "5", K + "max-scale": "2"},
     f"max-scale=2 is less than min-scale=5: {K}max-scale, {K}min-scale"),
    ("legacy camelCase keys", {K + "minScale": "5", K + "maxScale": "2"},
     f"max-scale=2 is less than min-scale=5: {K}max-scale, {K}min-scale"),
    ("min-scale > activation-scale", {K + "min-scale": "3", K + "activation-scale": "2"},
     "min-scale=3 is greater than activation-scale=2: " + K + "activation-scale"),
    ("max-scale < activation-scale", {K + "max-scale": "1", K + "activation-scale": "2"},
     "max-scale=1 is less than activation-scale=2: " + K + "activation-scale"),
    ("activation-scale 1", {K + "activation-scale": "1"},
     "activation-scale=1 must be greater than 1: " + K + "activation-scale"),
    ("min, activation, max all set", {K + "min-scale": "1", K + "activation-scale": "2",
                                      K + "max-scale": "3"}, ""),
    ("random algorithm on KPA", {K + "class": c.KPA,
                                 K + "metric-aggregation-algorithm": "random-selection"},
     "invalid value: random-selection: " + K + "metric-aggregation-algorithm"),
    ("random algorithm on non KPA", {K + "class": "some.other.class",
                                     K + "metric-aggregation-algorithm": "random-selection"}, ""),
    ("panic window percentage bad", {K + "panic-window-percentage": "-1"},
     "expected 1 <= -1 <= 100: " + K + "panic-window-percentage"),
    ("panic window percentage bad3", {K + "panic-window-percentage": "fifty"},
     "invalid value: fifty: " + K + "panic-window-percentage"),
    ("panic threshold percentage bad2", {K + "panic-threshold-percentage": "109"},
     "expected 110 <= 109 <= 1000: " + K + "panic-threshold-percentage"),
    ("panic threshold percentage bad2.5", {K + "panic-threshold-percentage": "10009"},
     "expected 110 <= 10009 <= 1000: " + K + "panic-threshold-percentage"),
    ("target negative", {K + "target": "-11"},
     "target -11 should be at least 0.01: " + K + "target"),
    ("target 0", {K + "target": "0"}, "target 0 should be at least 0.01: " + K + "target"),
    ("invalid target", {K + "target": "100}"}, "invalid value: 100}: " + K + "target"),
    ("TBC negative", {K + "target-burst-capacity": "-11"},
     "invalid value: -11: " + K + "target-burst-capacity"),
    ("TBC -1", {K + "target-burst-capacity": "-1"}, ""),
    ("TU too small", {K + "target-utilization-percentage": "0"},
     "expected 1 <= 0 <= 100: " + K + "target-utilization-percentage"),
    ("window too short", {K + "window": "1s"}, "expected 6s <= 1s <= 1h0m0s: " + K + "window"),
    ("window too long", {K + "window": "365h"},
     "expected 6s <= 365h <= 1h0m0s: " + K + "window"),
    ("window too precise", {K + "window": "1m9s82ms"},
     "must be specified with at most second precision: " + K + "window"),
    ("window invalid", {K + "window": "jerry-was-a-racecar-driver"},
     "invalid value: jerry-was-a-racecar-driver: " + K + "window"),
    ("retention too long", {K + "scale-to-zero-pod-retention-period": "311m"},
     "expected 0s <= 311m <= 1h0m0s: " + K + "scale-to-zero-pod-retention-period"),
    ("retention negative", {K + "scale-to-zero-pod-retention-period": "-42s"},
     "expected 0s <= -42s <= 1h0m0s: " + K + "scale-to-zero-pod-retention-period"),
    ("scale down delay too precise", {K + "scale-down-delay": "42.5s"},
     "must be specified with at most second precision: " + K + "scale-down-delay"),
    ("scale down delay ok", {K + "scale-down-delay": "21m31s"}, ""),
    ("all together now fail", {K + "panic-threshold-percentage": "fifty",
                               K + "panic-window-percentage": "-11",
                               K + "min-scale": "-4", K + "max-scale": "never"},
     f"expected 0 <= -4 <= 2147483647: {K}min-scale\n"
     f"expected 1 <= -11 <= 100: {K}panic-window-percentage\n"
     f"invalid value: fifty: {K}panic-threshold-percentage\n"
     f"invalid value: never: {K}max-scale"),
    ("invalid metric for default class(KPA)", {K + "metric": "cpu"},
     "invalid value: cpu: " + K + "metric"),
    ("invalid metric for HPA class", {K + "metric": "", K + "class": c.HPA},
     "invalid value: : " + K + "metric"),
    ("valid class KPA with metric RPS", {K + "metric": "rps"}, ""),
    ("valid class HPA with metric CPU", {K + "class": c.HPA, K + "metric": "cpu"}, ""),
    ("other than HPA and KPA class", {K + "class": "other", K + "metric": "rps"}, ""),
    ("initial scale zero not allowed", {K + "initial-scale": "0"},
     "invalid value: 0: " + K + "initial-scale=0 not allowed by cluster"),
    ("initial scale negative", {K + "initial-scale": "-1"},
     "invalid value: -1: " + K + "initial-scale must be greater than 0"),
    ("initial scale non-parseable", {K + "initial-scale": "invalid"},
     "invalid value: invalid: " + K + "initial-scale"),
])
def test_validate_annotations(name: str, anns: dict[str, str], want: str) -> None:
    assert format_errors(validate_annotations(anns, AutoscalerConfig())) == want


@pytest.mark.parametrize("cfg, anns, want", [
    (AutoscalerConfig(max_scale_limit=10), {K + "max-scale": "11"},
     "expected 1 <= 11 <= 10: " + K + "max-scale"),
    (AutoscalerConfig(max_scale_limit=10, max_scale=5), {K + "max-scale": "0"},
     "max-scale=0 (unlimited), must be less than 10: " + K + "max-scale"),
    (AutoscalerConfig(max_scale_limit=10, max_scale=5), {}, ""),
    (AutoscalerConfig(max_scale_limit=10), {K + "max-scale": "9"}, ""),
    (AutoscalerConfig(allow_zero_initial_scale=True), {K + "initial-scale": "0"}, ""),
])
def test_validate_annotations_with_config(cfg: AutoscalerConfig, anns: dict[str, str],
                                          want: str) -> None:
    assert format_errors(validate_annotations(anns, cfg)) == want


def test_validate_returns_field_paths() -> None:
    errs = validate_annotations({K + "min-scale": "5", K + "max-scale": "2"}, AutoscalerConfig())
    assert errs == [(K + "max-scale", "max-scale=2 is less than min-scale=5"),
                    (K + "min-scale", "max-scale=2 is less than min-scale=5")]


# ------------------------------------------------------------------------------ resolve()

CFG = AutoscalerConfig()


@pytest.mark.parametrize("anns, cc, target, total", [
    ({}, 0, 70.0, 100.0),                                     # default target x 70%
    ({}, 10, 7.0, 10.0),                                      # cc x 70%
    ({K + "target": "50"}, 0, 35.0, 50.0),
    ({K + "target": "50"}, 10, 7.0, 10.0),                    # never above cc
    ({K + "target": "5"}, 10, 3.5, 5.0),
    ({K + "target-utilization-percentage": "80"}, 10, 8.0, 10.0),
    ({K + "metric": "rps"}, 0, 140.0, 200.0),
    ({K + "metric": "rps", K + "target": "300"}, 10, 210.0, 300.0),   # rps ignores cc
    ({K + "target": "0.001"}, 0, 0.01, 0.001),                # at least TargetMin
])
def test_resolve_metric_target(anns: dict[str, str], cc: int, target: float,
                               total: float) -> None:
    s = resolve(anns, cc, CFG)
    assert s.target_value == pytest.approx(target)
    assert s.total_value == pytest.approx(total)


def test_resolve_defaults() -> None:
    s = resolve({}, 0, CFG)
    assert (s.pa_class, s.metric, s.panic_threshold) == (c.KPA, "concurrency", 2.0)
    assert (s.stable_window, s.panic_window, s.target_burst_capacity) == (60, 6, 211)
    assert (s.initial_scale, s.min_scale, s.max_scale, s.activation_scale) == (1, 0, 0, 0)
    assert s.activation_timeout == 630 and s.scale_to_zero_grace_period == 30


def test_resolve_annotations() -> None:
    s = resolve({K + "window": "20s", K + "panic-window-percentage": "15",
                 K + "panic-threshold-percentage": "150", K + "target-burst-capacity": "-1",
                 K + "scale-down-delay": "5m", K + "activation-scale": "3",
                 K + "min-scale": "1", K + "max-scale": "9", K + "initial-scale": "4",
                 K + "scale-to-zero-pod-retention-period": "90s",
                 "serving.knative.dev/progress-deadline": "100s"}, 0, CFG)
    assert (s.stable_window, s.panic_window, s.panic_threshold) == (20, 3, 1.5)
    assert (s.target_burst_capacity, s.scale_down_delay, s.activation_scale) == (-1, 300, 3)
    assert (s.min_scale, s.max_scale, s.initial_scale) == (1, 9, 4)
    assert (s.scale_to_zero_pod_retention, s.activation_timeout) == (90, 130)


@pytest.mark.parametrize("window, pct, want", [
    (60, 10, 6), (6, 1, 1), (60, 1, 1), (65, 10, 7), (25, 10, 3), (3600, 100, 3600),
])
def test_panic_window(window: float, pct: float, want: float) -> None:
    """MakeMetric: rounded to the second (half away from zero), at least 1 s."""
    assert c.panic_window(window, pct) == want


def test_resolve_unreachable_ignores_min_scale() -> None:
    assert resolve({K + "min-scale": "3"}, 0, CFG, reachable=False).min_scale == 0


def test_resolve_initial_scale_zero_needs_cluster_permission() -> None:
    assert resolve({K + "initial-scale": "0"}, 0, CFG).initial_scale == 1
    allow = AutoscalerConfig(allow_zero_initial_scale=True)
    assert resolve({K + "initial-scale": "0"}, 0, allow).initial_scale == 0


def test_resolve_class_and_metric_defaults() -> None:
    assert resolve({K + "class": c.HPA}, 0, CFG).metric == "cpu"
    assert resolve({}, 0, AutoscalerConfig(pod_autoscaler_class=c.HPA)).pa_class == c.HPA
