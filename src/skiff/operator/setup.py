"""Wires the operator domain into the platform: the KnativeServing CR's admission and reconciler.

platform.py calls install(platform) after serving's install, whose ConfigHolder
(platform.serving_config: the effective Knative Serving config every serving
reconciler and webhook reads) the KnativeServing reconciler keeps up to date.
The operator depends on serving's config model, never the other way round.
Neighbours: operator/serving.py, serving/setup.py, platform.py.
"""

from __future__ import annotations

from typing import Any

from skiff.operator.crds import KNATIVE_OPERATOR
from skiff.operator.serving import KnativeServingReconciler, validate_knative_serving


def install(platform: Any) -> None:
    """Register the operator domain's admission hooks and reconcilers on `platform`."""
    platform.admission.validate(KNATIVE_OPERATOR, "KnativeServing", validate_knative_serving)
    platform.manager.add(KnativeServingReconciler(platform.client, platform.serving_config),
                         workers=1)
