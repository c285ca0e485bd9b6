"""Discovery and OpenAPI documents built from the kinds registry (pure)."""

from __future__ import annotations

from skiff.core import builtin_kinds
from skiff.core.apiserver import discovery
from skiff.core.kinds import Kinds, _sort_versions
from skiff.mesh import crds as mesh
from skiff.serving import crds as serving


def kinds() -> Kinds:
    ks = Kinds()
    for k in builtin_kinds.KINDS + serving.KINDS + mesh.KINDS:
        ks.add(k)
    return ks


def test_version_priority_like_kubernetes() -> None:
    assert _sort_versions(["v1alpha1", "v1beta1", "v1", "v2", "v1beta2"]) == [
        "v2", "v1", "v1beta2", "v1beta1", "v1alpha1"]


def test_aggregated_discovery_has_short_names_and_subresources() -> None:
    doc = discovery.aggregated(kinds(), core=False)
    groups = {g["metadata"]["name"]: g for g in doc["items"]}
    ksvc = next(r for v in groups["serving.knative.dev"]["versions"] for r in v["resources"]
                if r["resource"] == "services")
    assert set(ksvc["shortNames"]) >= {"ksvc", "kservice"} and "knative" in ksvc["categories"]
    assert {s["subresource"] for s in ksvc["subresources"]} == {"status"}
    core = discovery.aggregated(kinds(), core=True)
    pods = next(r for r in core["items"][0]["versions"][0]["resources"] if r["resource"] == "pods")
    assert {"exec", "log", "status"} <= {s["subresource"] for s in pods["subresources"]}


def test_legacy_lists() -> None:
    ks = kinds()
    groups = {g["name"]: g for g in discovery.api_group_list(ks)["groups"]}
    assert groups["networking.istio.io"]["preferredVersion"]["version"] == "v1beta1"
    res = discovery.api_resource_list(ks, "", "v1")
    assert res is not None
    names = {r["name"] for r in res["resources"]}
    assert {"pods", "pods/exec", "pods/log", "namespaces"} <= names
    assert discovery.api_resource_list(ks, "nope.example.com", "v1") is None


def test_openapi_patch_operation_declares_field_validation() -> None:
    ks = kinds()
    root = discovery.openapi_root(ks)
    assert "apis/serving.knative.dev/v1" in root["paths"] and "api/v1" in root["paths"]
    doc = discovery.openapi_gv(ks, "serving.knative.dev", "v1")
    op = doc["paths"]["/apis/serving.knative.dev/v1/namespaces/{namespace}/services/{name}"]["patch"]
    assert op["x-kubernetes-group-version-kind"]["kind"] == "Service"
    assert any(p["name"] == "fieldValidation" for p in op["parameters"])
    assert "application/strategic-merge-patch+json" not in op["requestBody"]["content"]
    schema = doc["components"]["schemas"]["dev.knative.serving.v1.Service"]
    assert schema["x-kubernetes-group-version-kind"][0]["kind"] == "Service"
