"""The webhook's autoscaling annotation checks (autoscaling.ValidateAnnotations, 1.10). Pure.

Upstream's pkg/apis/autoscaling/annotation_validation.go, check for check
and message for message: the class, the scale bounds (min/max/activation,
max-scale-limit), the floats (panic window and threshold percentages, target,
target utilization, target burst capacity), the window, the last-pod
retention, the scale-down delay, the metric for the class, the aggregation
algorithm, and the initial scale against allow-zero-initial-scale.

validate_annotations returns (field path, message) pairs in upstream's check
order, paths being the annotation keys themselves; a Revision's webhook puts
them under metadata.annotations. format_errors renders a list the way
knative.dev/pkg's FieldError.Error() does (equal messages merged, paths
sorted and joined with ", ", one error a line, sorted by message), which is
the text upstream's tests compare.

Neighbours: config.py (keys, bounds, Go's strconv), durations.py (Go
durations), serving/webhook.py (the Revision/Service admission that calls in).
"""

from __future__ import annotations

from collections.abc import Mapping

from skiff.serving.autoscaler import config as c
from skiff.serving.autoscaler import durations as dur

FieldErrors = list[tuple[str, str]]


def _invalid(value: str, path: str) -> tuple[str, str]:
    """apis.ErrInvalidValue."""
    return path, f"invalid value: {value}"


def _bounds(value: str, lower: str, upper: str, path: str) -> tuple[str, str]:
    """apis.ErrOutOfBoundsValue: "expected lower <= value <= upper"."""
    return path, f"expected {lower} <= {value} <= {upper}"


def _get_int_ge0(m: Mapping[str, str], keys: tuple[str, ...]) -> tuple[int, FieldErrors]:
    got = c.get_key(m, keys)
    if got is None:
        return 0, []
    k, v = got
    try:
        i = c.parse_int(v)
    except c.StrconvError as e:
        # Parsing as unsigned would lose the range error, so range is told apart here.
        if e.out_of_range:
            return 0, [_bounds(v, "0", str(c.INT32_MAX), k)]
        return 0, [_invalid(v, k)]
    if i < 0:
        return 0, [_bounds(v, "0", str(c.INT32_MAX), k)]
    return i, []


def validate_annotations(annotations: Mapping[str, str],
                         cfg: c.AutoscalerConfig) -> FieldErrors:
    """autoscaling.ValidateAnnotations: every problem, as (annotation key, message)."""
    m = annotations
    return (_validate_class(m) + _validate_min_max_scale(cfg, m) + _validate_floats(m)
            + _validate_window(m) + _validate_last_pod_retention(m)
            + _validate_scale_down_delay(m) + _validate_metric(m) + _validate_algorithm(m)
            + _validate_initial_scale(cfg, m))


def _validate_class(m: Mapping[str, str]) -> FieldErrors:
    got = c.get_key(m, c.CLASS)
    # Only knative.dev classes are ours to judge; other autoscalers bring their own.
    if got and got[1].endswith(c.DOMAIN) and got[1] not in (c.KPA, c.HPA):
        return [_invalid(got[1], got[0])]
    return []


def _validate_algorithm(m: Mapping[str, str]) -> FieldErrors:
    got = c.get_key(m, c.CLASS)
    if (got[1] if got else "") != c.KPA:
        return []
    alg = c.get_key(m, c.METRIC_AGGREGATION_ALGORITHM)
    if alg and alg[1] and alg[1] not in (c.ALGORITHM_LINEAR, c.ALGORITHM_WEIGHTED_EXPONENTIAL,
                                         c.ALGORITHM_WEIGHTED_EXPONENTIAL_ALT):
        return [_invalid(alg[1], alg[0])]
    return []


def _float_check(m: Mapping[str, str], keys: tuple[str, ...], lo: float, hi: float
                 ) -> FieldErrors:
    got = c.get_key(m, keys)
    if got is None:
        return []
    k, v = got
    try:
        fv = c.parse_float(v)
    except c.StrconvError:
        return [_invalid(v, k)]
    if fv < lo or fv > hi:
        return [_bounds(v, c.go_float(lo), c.go_float(hi), k)]
    return []


def _validate_floats(m: Mapping[str, str]) -> FieldErrors:
    errs = _float_check(m, c.PANIC_WINDOW_PERCENTAGE, c.PANIC_WINDOW_PERCENTAGE_MIN,
                        c.PANIC_WINDOW_PERCENTAGE_MAX)
    errs += _float_check(m, c.PANIC_THRESHOLD_PERCENTAGE, c.PANIC_THRESHOLD_PERCENTAGE_MIN,
                         c.PANIC_THRESHOLD_PERCENTAGE_MAX)
    got = c.get_key(m, c.TARGET)
    if got is not None:
        k, v = got
        try:
            if c.parse_float(v) < c.TARGET_MIN:
                errs.append((k, f"target {v} should be at least {c.go_float(c.TARGET_MIN)}"))
        except c.StrconvError:
            errs.append(_invalid(v, k))
    errs += _float_check(m, c.TARGET_UTILIZATION_PERCENTAGE, 1, 100)
    got = c.get_key(m, c.TARGET_BURST_CAPACITY)
    if got is not None:
        k, v = got
        try:
            bad = (tbc := c.parse_float(v)) < 0 and tbc != -1
        except c.StrconvError:
            bad = True
        if bad:
            errs.append(_invalid(v, k))
    return errs


def _duration_check(m: Mapping[str, str], keys: tuple[str, ...], precision: bool
                    ) -> FieldErrors:
    got = c.get_key(m, keys)
    if got is None:
        return []
    k, v = got
    try:
        d = dur.parse_duration(v)
    except dur.DurationError:
        return [_invalid(v, k)]
    # Nothing may outlast the longest window.
    if d < 0 or d > c.WINDOW_MAX_NS:
        return [_bounds(v, "0s", dur.format_duration(c.WINDOW_MAX_NS), k)]
    if precision and d % dur.SECOND:  # d.Round(time.Second) != d
        return [(k, "must be specified with at most second precision")]
    return []


def _validate_scale_down_delay(m: Mapping[str, str]) -> FieldErrors:
    return _duration_check(m, c.SCALE_DOWN_DELAY, precision=True)


def _validate_last_pod_retention(m: Mapping[str, str]) -> FieldErrors:
    return _duration_check(m, c.SCALE_TO_ZERO_POD_RETENTION_PERIOD, precision=False)


def _validate_window(m: Mapping[str, str]) -> FieldErrors:
    got = c.get_key(m, c.WINDOW)
    if got is None:
        return []
    v = got[1]
    # Upstream names the canonical key here whatever spelling was used.
    k = c.WINDOW_KEY
    try:
        d = dur.parse_duration(v)
    except dur.DurationError:
        return [_invalid(v, k)]
    if d < c.WINDOW_MIN_NS or d > c.WINDOW_MAX_NS:
        return [_bounds(v, dur.format_duration(c.WINDOW_MIN_NS),
                        dur.format_duration(c.WINDOW_MAX_NS), k)]
    if d % dur.SECOND:  # Truncate(time.Second) != d
        return [(k, "must be specified with at most second precision")]
    return []


def _validate_min_max_scale(cfg: c.AutoscalerConfig, m: Mapping[str, str]) -> FieldErrors:
    mn, errs = _get_int_ge0(m, c.MIN_SCALE)
    mx, more = _get_int_ge0(m, c.MAX_SCALE)
    errs = errs + more
    if mx != 0 and mx < mn:
        # One error on both fields upstream; one entry per field here.
        msg = f"max-scale={mx} is less than min-scale={mn}"
        errs += [(c.MAX_SCALE_KEY, msg), (c.MIN_SCALE_KEY, msg)]
    got = c.get_key(m, c.MAX_SCALE)
    if got is not None:
        errs += _validate_max_scale_within_limit(got[0], mx, cfg.max_scale_limit)
    act = c.get_key(m, c.ACTIVATION_SCALE)
    if act is not None:
        k, v = act
        try:
            nz = c.parse_int(v)
        except c.StrconvError:
            errs.append(_invalid(v, k))
        else:
            if mn > nz:
                errs.append((k, f"min-scale={mn} is greater than activation-scale={nz}"))
            elif mx < nz and mx != 0:
                errs.append((k, f"max-scale={mx} is less than activation-scale={nz}"))
            elif nz < 2:
                errs.append((k, f"activation-scale={nz} must be greater than 1"))
    return errs


def _validate_max_scale_within_limit(key: str, max_scale: int, limit: int) -> FieldErrors:
    if limit == 0:
        return []
    errs: FieldErrors = []
    if max_scale > limit:
        errs.append(_bounds(str(max_scale), "1", str(limit), key))
    if max_scale == 0:
        errs.append((key, f"max-scale=0 (unlimited), must be less than {limit}"))
    return errs


def _validate_metric(m: Mapping[str, str]) -> FieldErrors:
    got = c.get_key(m, c.METRIC)
    if got is None:
        return []
    metric = got[1]
    klass = m.get(c.CLASS_KEY, c.KPA)
    if klass == c.KPA:
        if metric in (c.CONCURRENCY, c.RPS):
            return []
    elif klass == c.HPA:
        if metric != "":
            return []
    else:
        return []  # other classes' metrics are theirs to judge
    return [_invalid(metric, c.METRIC_KEY)]


def _validate_initial_scale(cfg: c.AutoscalerConfig, m: Mapping[str, str]) -> FieldErrors:
    got = c.get_key(m, c.INITIAL_SCALE)
    if got is None:
        return []
    k, v = got
    try:
        n = c.parse_int(v, bits=64, func="Atoi")
    except c.StrconvError:
        return [_invalid(v, k)]
    # Upstream folds the reason into the path; the text users see is that.
    if n < 0:
        return [_invalid(v, f"{k} must be greater than 0")]
    if not cfg.allow_zero_initial_scale and n == 0:
        return [_invalid(v, f"{k}=0 not allowed by cluster")]
    return []


def format_errors(errs: FieldErrors) -> str:
    """knative.dev/pkg apis.FieldError.Error(): merge equal messages, sort, one a line."""
    merged: dict[str, list[str]] = {}
    for path, msg in errs:
        paths = merged.setdefault(msg, [])
        if path not in paths:
            paths.append(path)
    return "\n".join(f"{msg}: {', '.join(sorted(paths))}" for msg, paths in sorted(merged.items()))
