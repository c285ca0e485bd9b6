"""KnativeServing: the operator's status contract and the admission of spec.config."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.operator.serving import (
    SERVING_VERSION,
    knative_serving_status,
    validate_knative_serving,
)


def ks(name: str = "knative-serving", ns: str = "knative-serving", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "generation": 1}, "spec": spec}


def conds(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", "")) for c in status["conditions"]}


def test_ready_as_the_upstream_operator_reports_it() -> None:
    status: dict[str, Any] = {}
    k = ks()
    knative_serving_status(k, k, status)
    assert conds(status) == {
        "DependenciesInstalled": ("True", ""), "DeploymentsAvailable": ("True", ""),
        "InstallSucceeded": ("True", ""), "VersionMigrationEligible": ("True", ""),
        "Ready": ("True", "")}
    assert status["version"] == SERVING_VERSION and SERVING_VERSION.startswith("1.10.")


@pytest.mark.parametrize("obj, ruling, failed, reason", [
    (ks(ns="default"), None, "InstallSucceeded", "Error"),
    (ks(name="second"), ks(), "InstallSucceeded", "Error"),
    (ks(version="1.12"), ks(), "VersionMigrationEligible", "Error"),
])
def test_not_ready(obj: dict[str, Any], ruling: dict[str, Any] | None, failed: str,
                   reason: str) -> None:
    status: dict[str, Any] = {}
    knative_serving_status(obj, ruling if ruling is not None else None, status)
    got = conds(status)
    assert got[failed] == ("False", reason)
    assert got["Ready"] == ("False", reason)


@pytest.mark.parametrize("config, fields", [
    ({"istio": {"gateway.knative-serving.knative-ingress-gateway":
                "istio-ingressgateway.istio-system.svc.cluster.local"}}, []),
    ({"observability": {"metrics.backend-destination": "prometheus"}}, []),
    ({"network": {"domain-template": "{{.Name}}-{{.Namespace}}.{{.Domain}}",
                  "default-external-scheme": "https"}, "domain": {"apps.example.com": ""}}, []),
    ({"network": {"ingres-class": "x"}}, ["spec.config.network.ingres-class"]),
    ({"observability": {"metrics.backend": "prometheus"}},
     ["spec.config.observability.metrics.backend"]),
])
def test_admission(config: dict[str, Any], fields: list[str]) -> None:
    obj = ks(config=config)
    assert [c.field for c in validate_knative_serving(obj, None)] == fields


def test_annotations_are_accepted_untouched() -> None:
    obj = ks()
    obj["metadata"]["annotations"] = {
        "serverless.openshift.io/enable-secret-informer-filtering": "true",
        "serving.knative.openshift.io/disableRoute": "true"}
    assert validate_knative_serving(obj, None) == []
