"""A KnativeServing's spec.config.autoscaler is checked at apply as the KPA will read it."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("autoscaler, field, message", [
    ({"stable-window": "2s"}, "spec.config.autoscaler.stable-window",
     "stable-window = 2s, must be in [6s; 1h0m0s] range"),
    ({"max-scale-down-rate": "0.5"}, "spec.config.autoscaler.max-scale-down-rate",
     "max-scale-down-rate = 0.5, must be greater than 1.0"),
    ({"stable-window": "6s", "scale-to-zero-grace-period": "6s"}, None, None),
])
def test_knative_serving_autoscaler_config_is_checked_at_apply(
        autoscaler: dict[str, str], field: str | None, message: str | None) -> None:
    """A KnativeServing's config-autoscaler is parsed as the autoscaler will read it, so bad
    durations and rates are refused with upstream's words instead of falling back quietly."""
    from skiff.serving.config import validate_spec_config
    causes = validate_spec_config({"autoscaler": autoscaler})
    if field is None:
        assert causes == []
    else:
        assert [(c.field, c.message) for c in causes] == [(field, f"Invalid value: {message}")]
