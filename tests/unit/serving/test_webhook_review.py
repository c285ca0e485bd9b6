"""Review of 4eb4a6c: serving.knative.dev/progress-deadline now sets the Deployment's
progressDeadlineSeconds, so it is validated as upstream's validateProgressDeadlineAnnotation
(RevisionTemplateSpec.Validate) does: a duration, at second precision, not negative. Before,
"-5s" made progressDeadlineSeconds -5 and "1.5s" 1, silently."""

from __future__ import annotations

import copy

import pytest
from test_serving_webhook import CFG, svc

from skiff.serving import webhook

KEY = "serving.knative.dev/progress-deadline"


@pytest.mark.parametrize("value, want", [
    ("90s", []),
    ("10m", []),
    ("0s", []),
    ("abc", [f"spec.template.metadata.annotations.{KEY}: invalid value: abc"]),
    ("1.5s", [f"spec.template.metadata.annotations.{KEY}: "
              "progress-deadline=1.5s is not at second precision"]),
    ("-5s", [f"spec.template.metadata.annotations.{KEY}: progress-deadline=-5s must be positive"]),
])
def test_the_progress_deadline_annotation_is_validated(value: str, want: list[str]) -> None:
    obj = copy.deepcopy(svc(template_meta={"annotations": {KEY: value}}))
    webhook.default_service(obj, None, CFG)
    got = [f"{c.field}: {c.message}" for c in webhook.validate_service(obj, None, CFG)]
    assert got == want
