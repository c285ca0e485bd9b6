"""The API registry's REST semantics, over a real SQLite file (no sockets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from skiff.core import builtin_kinds
from skiff.core.apiserver.registry import Registry
from skiff.core.client import ApiError
from skiff.core.kinds import Kinds
from skiff.core.store.sqlite import SQLiteStore
from skiff.serving import crds as serving


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    kinds = Kinds()
    for k in builtin_kinds.KINDS + serving.KINDS:
        kinds.add(k)
    r = Registry(SQLiteStore(tmp_path / "db"), kinds)
    r.create(kind(r, "v1", "Namespace"), "", {"metadata": {"name": "default"}})
    return r


def kind(r: Registry, av: str, k: str):  # type: ignore[no-untyped-def]
    found = r.kinds.for_api_version(av, k)
    assert found is not None
    return found


CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}


def test_create_sets_server_fields(reg: Registry) -> None:
    o = reg.create(kind(reg, "v1", "ConfigMap"), "default", CM)
    m = o["metadata"]
    assert m["namespace"] == "default" and m["uid"] and m["creationTimestamp"] and m["generation"] == 1
    assert m["resourceVersion"]


@pytest.mark.parametrize("body, code, reason, text", [
    ({**CM, "metadata": {"name": "Bad_Name"}}, 422, "Invalid", "RFC 1123"),
    ({**CM, "datta": {}}, 422, "Invalid", 'unknown field "datta"'),
    ({**CM, "data": ["x"]}, 422, "Invalid", "must be of type object"),
    ({**CM, "metadata": {"name": "c", "namespace": "nope"}}, 404, "NotFound", 'namespaces "nope" not found'),
    ({**CM, "kind": "Secret"}, 400, "BadRequest", "does not match"),
    ([1, 2], 400, "BadRequest", "JSON object"),
])
def test_create_rejects(reg: Registry, body: object, code: int, reason: str, text: str) -> None:
    ns = "" if isinstance(body, dict) and body.get("metadata", {}).get("namespace") else "default"
    with pytest.raises(ApiError) as e:
        reg.create(kind(reg, "v1", "ConfigMap"), ns, body)
    assert (e.value.code, e.value.reason) == (code, reason) and text in e.value.message
    assert reg.list(kind(reg, "v1", "ConfigMap"), "default")[0] == []   # nothing stored


def test_conflict_and_generation(reg: Registry) -> None:
    k = kind(reg, "serving.knative.dev/v1", "Service")
    svc = {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "hello"},
           "spec": {"template": {"spec": {"containers": [{"image": "docker.io/openshift/hello-openshift"}]}}}}
    o = reg.create(k, "default", svc)
    stale = dict(o)
    o["metadata"]["labels"] = {"a": "b"}
    o2 = reg.update(k, "default", "hello", o)
    assert o2["metadata"]["generation"] == 1          # metadata only: no new generation
    stale["spec"] = {"template": {"spec": {"containers": [{"image": "x"}]}}}
    with pytest.raises(ApiError) as e:
        reg.update(k, "default", "hello", stale)
    assert e.value.code == 409 and "the object has been modified" in e.value.message
    o2["spec"]["template"]["spec"]["containers"][0]["image"] = "y"
    o3 = reg.update(k, "default", "hello", o2)
    assert o3["metadata"]["generation"] == 2


def test_status_subresource_is_separate(reg: Registry) -> None:
    k = kind(reg, "serving.knative.dev/v1", "Service")
    o = reg.create(k, "default", {"metadata": {"name": "s"}, "status": {"url": "x"},
                                  "spec": {"template": {"spec": {"containers": [{"image": "i"}]}}}})
    assert "status" not in o                           # status is dropped on create
    o["status"] = {"url": "http://s"}
    o = reg.update(k, "default", "s", o)
    assert "status" not in o                           # ...and on a main-resource update
    o["status"] = {"url": "http://s"}
    o = reg.update(k, "default", "s", o, subresource="status")
    assert o["status"]["url"] == "http://s" and o["metadata"]["generation"] == 1


def test_finalizers_hold_deletion(reg: Registry) -> None:
    k = kind(reg, "v1", "ConfigMap")
    reg.create(k, "default", {**CM, "metadata": {"name": "f", "finalizers": ["x/y"]}})
    held = reg.delete(k, "default", "f")
    assert held["metadata"]["deletionTimestamp"]
    held["metadata"]["finalizers"] = []
    reg.update(k, "default", "f", held)
    with pytest.raises(ApiError) as e:
        reg.get(k, "default", "f")
    assert e.value.code == 404


def test_patches(reg: Registry) -> None:
    k = kind(reg, "v1", "ConfigMap")
    reg.create(k, "default", CM)
    assert reg.patch(k, "default", "c", "merge", {"data": {"b": "2", "a": None}})["data"] == {"b": "2"}
    assert reg.patch(k, "default", "c", "json", [{"op": "add", "path": "/data/c", "value": "3"}])["data"] == {
        "b": "2", "c": "3"}
    created = reg.patch(k, "default", "new", "apply", {"apiVersion": "v1", "kind": "ConfigMap",
                                                      "metadata": {"name": "new"}, "data": {"z": "1"}})
    assert created["data"] == {"z": "1"}
    with pytest.raises(ApiError) as e:
        reg.patch(k, "default", "c", "merge", {"data": {"x": 1}})
    assert e.value.code == 422


def test_list_paging_and_selectors(reg: Registry) -> None:
    k = kind(reg, "v1", "ConfigMap")
    for i in range(5):
        reg.create(k, "default", {"metadata": {"name": f"c{i}", "labels": {"n": str(i % 2)}}})
    page, _, cont = reg.list(k, "default", limit=2)
    assert [o["metadata"]["name"] for o in page] == ["c0", "c1"] and cont
    page2, _, cont2 = reg.list(k, "default", limit=2, continue_token=cont)
    assert [o["metadata"]["name"] for o in page2] == ["c2", "c3"]
    odd, _, _ = reg.list(k, "default", label_selector="n=1")
    assert [o["metadata"]["name"] for o in odd] == ["c1", "c3"]
    named, _, _ = reg.list(k, "", field_selector="metadata.name=c4")
    assert [o["metadata"]["name"] for o in named] == ["c4"]
    with pytest.raises(ApiError) as e:
        reg.list(k, "default", label_selector="a in (")
    assert e.value.code == 400
