"""Pod validation of container lifecycle handlers (upstream's validateLifecycle/validateHandler):
pod spec -> causes (a table), and the registry rejecting such a Pod or Deployment with 422."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from skiff.core import builtin_kinds
from skiff.core.apiserver.registry import Registry
from skiff.core.client import ApiError
from skiff.core.corevalidation import pod_spec_causes, validate_pod
from skiff.core.kinds import Kinds
from skiff.core.store.sqlite import SQLiteStore

Obj = dict[str, Any]
HTTP = {"httpGet": {"port": 8080, "path": "/drain"}}
EXEC = {"exec": {"command": ["sh", "-c", "sleep 5"]}}
P = "spec.containers[0].lifecycle"


def spec(lifecycle: Obj | None = None, **extra: Any) -> Obj:
    c: Obj = {"name": "app", "image": "busybox"}
    if lifecycle is not None:
        c["lifecycle"] = lifecycle
    return {"containers": [c], **extra}


@pytest.mark.parametrize("pod_spec, messages", [
    (spec(), []),
    (spec({"preStop": HTTP, "postStart": EXEC}), []),
    (spec({"preStop": {"sleep": {"seconds": 5}}}), []),
    (spec({"preStop": {"tcpSocket": {"port": 80}}}), []),    # allowed; the kubelet fails it
    (spec({}), []),
    (spec({"preStop": {}}),
     [f"{P}.preStop: Required value: must specify a handler type"]),
    (spec({"postStart": {}, "preStop": {}}),
     [f"{P}.postStart: Required value: must specify a handler type",
      f"{P}.preStop: Required value: must specify a handler type"]),
    (spec({"preStop": {**EXEC, **HTTP}}),
     [f"{P}.preStop.httpGet: Forbidden: may not specify more than 1 handler type"]),
    (spec({"postStart": {**HTTP, "tcpSocket": {"port": 1}, "sleep": {"seconds": 1}}}),
     [f"{P}.postStart.tcpSocket: Forbidden: may not specify more than 1 handler type",
      f"{P}.postStart.sleep: Forbidden: may not specify more than 1 handler type"]),
    (spec({"preStop": {"exec": {"command": []}}}),
     [f"{P}.preStop.exec.command: Required value"]),
    (spec({"preStop": {"sleep": {"seconds": 0}}}),
     [f"{P}.preStop.sleep: Invalid value: 0: must be greater than 0 and less than "
      "terminationGracePeriodSeconds (30)"]),
    (spec({"preStop": {"sleep": {"seconds": 11}}}, terminationGracePeriodSeconds=10),
     [f"{P}.preStop.sleep: Invalid value: 11: must be greater than 0 and less than "
      "terminationGracePeriodSeconds (10)"]),
    # init containers: hooks only on a sidecar (restartPolicy: Always), judged as containers'
    (spec(initContainers=[{"name": "i", "lifecycle": {"preStop": HTTP}},
                          {"name": "s", "restartPolicy": "Always", "lifecycle": {"preStop": {}}}]),
     ["spec.initContainers[0].lifecycle: Forbidden: may not be set for init containers "
      "without restartPolicy=Always",
      "spec.initContainers[1].lifecycle.preStop: Required value: must specify a handler type"]),
])
def test_lifecycle_handlers(pod_spec: Obj, messages: list[str]) -> None:
    assert [c.message for c in pod_spec_causes(pod_spec, "spec")] == messages


def test_fields_reasons_and_the_update_ratchet() -> None:
    bad = {"spec": spec({"preStop": {}})}
    (cause,) = validate_pod(bad, None)
    assert (cause.field, cause.reason) == (f"{P}.preStop", "FieldValueRequired")
    # a stored pod whose containers a write leaves alone (its status, its finalizing) passes
    assert validate_pod({**bad, "status": {"phase": "Running"}}, bad) == []
    # ... but not a write that changes them
    worse = {"spec": spec({"preStop": {**EXEC, **HTTP}})}
    assert [c.reason for c in validate_pod(worse, bad)] == ["FieldValueForbidden"]


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    kinds = Kinds()
    for k in builtin_kinds.KINDS:
        kinds.add(k)
    r = Registry(SQLiteStore(tmp_path / "db"), kinds)
    r.create(kinds.for_api_version("v1", "Namespace"), "",  # type: ignore[arg-type]
             {"metadata": {"name": "default"}})
    return r


@pytest.mark.parametrize("api_version, kind_name, body, field", [
    ("v1", "Pod", {"spec": spec({"preStop": {}})}, f"{P}.preStop"),
    ("apps/v1", "Deployment", {"spec": {
        "selector": {"matchLabels": {"app": "a"}},
        "template": {"metadata": {"labels": {"app": "a"}},
                     "spec": spec({"preStop": {**EXEC, **HTTP}})}}},
     "spec.template.spec.containers[0].lifecycle.preStop.httpGet"),
])
def test_the_registry_rejects_it(reg: Registry, api_version: str, kind_name: str, body: Obj,
                                 field: str) -> None:
    k = reg.kinds.for_api_version(api_version, kind_name)
    assert k is not None
    obj = {"apiVersion": api_version, "kind": kind_name, "metadata": {"name": "x"}, **body}
    with pytest.raises(ApiError) as e:
        reg.create(k, "default", obj)
    assert (e.value.code, e.value.reason) == (422, "Invalid")
    assert field in e.value.message
    good = {**obj, "metadata": {"name": "y"}}
    target = good["spec"] if kind_name == "Pod" else good["spec"]["template"]["spec"]
    target["containers"][0]["lifecycle"] = {"preStop": HTTP}
    assert reg.create(k, "default", good)["metadata"]["name"] == "y"
