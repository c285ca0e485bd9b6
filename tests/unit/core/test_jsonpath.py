"""Tables for core/jsonpath.py: the kubectl JSONPath subset behind CRD printer columns."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.core.jsonpath import JSONPathError, column_value, evaluate

KSVC: dict[str, Any] = {
    "apiVersion": "serving.knative.dev/v1",
    "kind": "Service",
    "metadata": {"name": "hello", "namespace": "demo", "generation": 2,
                 "labels": {"app.kubernetes.io/name": "hello", "tier": "web"}},
    "spec": {"template": {"spec": {"containers": [
        {"name": "user-container", "image": "hello-openshift",
         "ports": [{"containerPort": 8080}]},
        {"name": "side", "image": "curl"}]}}},
    "status": {
        "url": "https://hello-demo.apps.example.com",
        "latestCreatedRevisionName": "hello-00002",
        "latestReadyRevisionName": "hello-00001",
        "observedGeneration": 2,
        "conditions": [
            {"type": "ConfigurationsReady", "status": "True"},
            {"type": "Ready", "status": "Unknown", "reason": "RevisionMissing"},
            {"type": "RoutesReady", "status": "False", "reason": "RevisionMissing"},
        ],
        "traffic": [{"revisionName": "hello-00001", "percent": 90, "latestRevision": False},
                    {"revisionName": "hello-00002", "percent": 10, "latestRevision": True}],
    },
}

# (expression, results): the Knative CRDs' own printer columns first.
CASES = [
    (".status.url", ["https://hello-demo.apps.example.com"]),
    (".status.latestCreatedRevisionName", ["hello-00002"]),
    (".status.conditions[?(@.type=='Ready')].status", ["Unknown"]),
    (".status.conditions[?(@.type==\"Ready\")].reason", ["RevisionMissing"]),
    (".status.conditions[?(@.type=='Missing')].status", []),
    (".status.conditions[?(@.status!='True')].type", ["Ready", "RoutesReady"]),
    # Wrappers and roots.
    ("{.metadata.name}", ["hello"]),
    ("$.metadata.name", ["hello"]),
    ("{$.metadata.namespace}", ["demo"]),
    ("  {.metadata.name}  ", ["hello"]),
    ("{.}", [KSVC]),
    ("$", [KSVC]),
    # Keys with dots, quoted or escaped.
    (".metadata.labels['app.kubernetes.io/name']", ["hello"]),
    ('.metadata.labels["app.kubernetes.io/name"]', ["hello"]),
    (r".metadata.labels.app\.kubernetes\.io/name", ["hello"]),
    (".metadata['labels'].tier", ["web"]),
    # Indices, negative indices, slices, wildcards.
    (".spec.template.spec.containers[0].image", ["hello-openshift"]),
    (".spec.template.spec.containers[-1].name", ["side"]),
    (".spec.template.spec.containers[5].name", []),
    (".spec.template.spec.containers[*].name", ["user-container", "side"]),
    (".spec.template.spec.containers[0:1].name", ["user-container"]),
    (".status.traffic[*].percent", [90, 10]),
    (".metadata.labels.*", ["hello", "web"]),
    (".metadata.labels[*]", ["hello", "web"]),
    # Recursive descent.
    ("..image", ["hello-openshift", "curl"]),
    ("..containerPort", [8080]),
    (".spec..name", ["user-container", "side"]),
    # Filters on numbers, booleans, existence, nested paths and path-to-path.
    (".status.traffic[?(@.percent > 50)].revisionName", ["hello-00001"]),
    (".status.traffic[?(@.percent<=10)].revisionName", ["hello-00002"]),
    (".status.traffic[?(@.percent==10.0)].revisionName", ["hello-00002"]),
    (".status.traffic[?(@.latestRevision==true)].revisionName", ["hello-00002"]),
    (".status.traffic[?(@.percent=='10')].revisionName", []),   # a string is not a number
    (".status.conditions[?(@.reason)].type", ["Ready", "RoutesReady"]),
    (".spec.template.spec.containers[?(@.ports[0].containerPort==8080)].name",
     ["user-container"]),
    (".status.traffic[?(@.revisionName==@.revisionName)].percent", [90, 10]),
    ("[?(@.x=='a')].y", []),                      # filter on a map: nothing
    # Missing keys and fields of lists select nothing (allowMissingKeys).
    (".status.nothing.deeper", []),
    (".spec.template.spec.containers.name", []),
]


@pytest.mark.parametrize(("expr", "expected"), CASES)
def test_evaluate(expr: str, expected: list[Any]) -> None:
    assert evaluate(expr, KSVC) == expected


def test_filter_compares_nested_fields() -> None:
    items = [{"a": {"b": "x"}, "v": 1}, {"a": {"b": "y"}, "v": 2}, {"v": 3}]
    assert evaluate("[?(@.a.b=='y')].v", items) == [2]
    assert evaluate("[?(@.a.b!='y')].v", items) == [1]   # a missing field never passes


COLUMNS = [
    (".status.conditions[?(@.type=='Ready')].status", "Unknown"),
    (".spec.template.spec.containers[*].name", "user-container"),
    (".status.observedGeneration", 2),
    (".status.absent", None),
]


@pytest.mark.parametrize(("expr", "expected"), COLUMNS)
def test_column_value(expr: str, expected: Any) -> None:
    assert column_value(expr, KSVC) == expected


ERRORS = [
    ("", "empty JSONPath expression"),
    ("{}", "empty JSONPath expression"),
    ("metadata.name", "must start with '.', '$' or '['"),
    ("{.a}{.b}", "one {...} block only"),
    ("{.a", "one {...} block only"),
    ("{range .items[*]}{.x}{end}", "one {...} block only"),
    (".a[", "missing ']'"),
    (".a[foo]", "unsupported subscript [foo]"),
    (".a[?(@.x=='y']", "unterminated filter"),
    (".a[?(x=='y')]", "must be '@...' or a literal"),
    (".a[?('x'=='y')]", "must compare an @ path"),
    (".a b", "in a field name"),
    (".a[::0]", "slice step cannot be 0"),
]


@pytest.mark.parametrize(("expr", "message"), ERRORS)
def test_errors(expr: str, message: str) -> None:
    with pytest.raises(JSONPathError) as err:
        evaluate(expr, {"a": [1, 2]})
    assert message in str(err.value)
