"""The API write path's cheaper steps: clone() as a deep copy, schema validation that checks
only what an update changes (CRD validation ratcheting), and the registry's outcomes with both."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from localworld import registry
from skiff.core.client import ApiError
from skiff.core.jsoncopy import clone
from skiff.core.validation import validate

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "spec": {"type": "object", "required": ["replicas"], "properties": {
            "replicas": {"type": "integer", "minimum": 0},
            "mode": {"type": "string", "enum": ["Serve", "Proxy"]}}},
        "status": {"type": "object", "properties": {"ready": {"type": "integer"}}},
    },
}


def test_clone_is_a_deep_copy() -> None:
    obj = {"a": [{"b": 1}, (2, 3)], "c": {"d": None, "e": "x"}}
    out = clone(obj)
    assert out == obj == copy.deepcopy(obj)
    out["a"][0]["b"] = 9
    out["c"]["e"] = "y"
    assert obj == {"a": [{"b": 1}, (2, 3)], "c": {"d": None, "e": "x"}}


@pytest.mark.parametrize("old, new, paths", [
    # unchanged: an old value the schema now refuses is not checked again (ratcheting)
    ({"spec": {"replicas": -1}}, {"spec": {"replicas": -1}, "status": {"ready": 1}}, []),
    # changed: checked
    ({"spec": {"replicas": 1}}, {"spec": {"replicas": -1}}, ["spec.replicas"]),
    ({"spec": {"replicas": 1}}, {"spec": {"replicas": 1}, "status": {"ready": "x"}}, ["status.ready"]),
    # new fields, unknown or not, are checked
    ({"spec": {"replicas": 1}}, {"spec": {"replicas": 1, "mode": "Both"}}, ["spec.mode"]),
    ({"spec": {"replicas": 1}}, {"spec": {"replicas": 1, "replica": 2}}, ["spec.replica"]),
    # a required field removed
    ({"spec": {"replicas": 1}}, {"spec": {"mode": "Serve"}}, ["spec.replicas"]),
    # a changed sibling does not re-check its unchanged neighbour
    ({"spec": {"replicas": -1, "mode": "Serve"}}, {"spec": {"replicas": -1, "mode": "Proxy"}}, []),
])
def test_an_update_checks_what_it_changes(old: dict[str, Any], new: dict[str, Any],
                                          paths: list[str]) -> None:
    assert [c.field for c in validate(SCHEMA, new, old=old)] == paths


def test_without_old_everything_is_checked() -> None:
    new = {"spec": {"replicas": -1, "mode": "Both"}}
    assert sorted(c.field for c in validate(SCHEMA, new)) == ["spec.mode", "spec.replicas"]




DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "d", "namespace": "default"},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "a"}},
                       "template": {"metadata": {"labels": {"app": "a"}},
                                    "spec": {"containers": [{"name": "c", "image": "x"}]}}}}


def test_the_registry_still_refuses_a_bad_update_and_keeps_what_it_is_sent(tmp_path: Path) -> None:
    reg, kinds = registry(tmp_path)
    k = kinds.for_api_version("apps/v1", "Deployment")
    assert k is not None
    sent = copy.deepcopy(DEPLOYMENT)
    stored = reg.create(k, "default", sent)
    assert sent == DEPLOYMENT          # the caller's object is not changed by the server
    bad = {**stored, "spec": {**stored["spec"], "replicas": "two"}}
    with pytest.raises(ApiError) as e:
        reg.update(k, "default", "d", bad)
    assert e.value.code == 422 and "spec.replicas" in e.value.message
    # a status update: the spec, validated when stored, is not walked again; status is
    st = {**stored, "status": {"replicas": 1, "readyReplicas": 1}}
    out = reg.update(k, "default", "d", st, subresource="status")
    assert out["status"]["readyReplicas"] == 1
    st_bad = {**out, "status": {"replicas": "one"}}
    with pytest.raises(ApiError) as e:
        reg.update(k, "default", "d", st_bad, subresource="status")
    assert e.value.code == 422 and "status.replicas" in e.value.message
    assert reg.get(k, "default", "d")["status"]["readyReplicas"] == 1   # nothing changed
