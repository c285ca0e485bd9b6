"""Tables for core/patch.py: RFC 7386, RFC 6902, strategic merge patch as kubectl sends it, apply."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from skiff.core.patch import (
    MERGE_KEYS,
    PatchError,
    apply_patch,
    json_patch,
    merge_keys_for,
    merge_patch,
    strategic_merge_patch,
)

# ---------------------------------------------------------------------------
# RFC 7386, appendix A (plus a nested case)

MERGE_PATCH_CASES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ({"metadata": {"labels": {"a": "1", "b": "2"}}}, {"metadata": {"labels": {"a": None, "c": "3"}}},
     {"metadata": {"labels": {"b": "2", "c": "3"}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), MERGE_PATCH_CASES)
def test_merge_patch(target: Any, patch: Any, expected: Any) -> None:
    before = copy.deepcopy((target, patch))
    assert merge_patch(target, patch) == expected
    assert (target, patch) == before  # inputs untouched


def test_merge_patch_result_shares_nothing_with_inputs() -> None:
    patch = {"spec": {"list": [1]}}
    result = merge_patch({}, patch)
    result["spec"]["list"].append(2)
    assert patch == {"spec": {"list": [1]}}


# ---------------------------------------------------------------------------
# RFC 6902 (examples from appendix A, and kubectl-style paths)

JSON_PATCH_CASES = [
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"foo": "bar", "baz": "qux"}),
    ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}],
     {"foo": ["bar", "qux", "baz"]}),
    ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": "end"}], {"foo": ["bar", "end"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}],
     {"baz": "boo", "foo": "bar"}),
    ({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    ({"foo": ["all", "grass", "cows", "eat"]}, [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
     {"foo": ["all", "cows", "eat", "grass"]}),
    ({"a": {"b": 1}}, [{"op": "copy", "from": "/a", "path": "/c"}], {"a": {"b": 1}, "c": {"b": 1}}),
    ({"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
    ({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
     {"foo": "bar", "child": {"grandchild": {}}}),
    # ~1 is "/", ~0 is "~": kubectl users patch annotation keys this way.
    ({"metadata": {"annotations": {}}},
     [{"op": "add", "path": "/metadata/annotations/example.com~1a~0b", "value": "x"}],
     {"metadata": {"annotations": {"example.com/a~b": "x"}}}),
    ({"spec": {"replicas": 1}}, [{"op": "replace", "path": "/spec/replicas", "value": 3}],
     {"spec": {"replicas": 3}}),
    ({"a": 1}, [{"op": "replace", "path": "", "value": {"b": 2}}], {"b": 2}),
    ({"n": 1}, [{"op": "test", "path": "/n", "value": 1.0}], {"n": 1}),
]


@pytest.mark.parametrize(("target", "ops", "expected"), JSON_PATCH_CASES)
def test_json_patch(target: Any, ops: list[Any], expected: Any) -> None:
    before = copy.deepcopy(target)
    assert json_patch(target, ops) == expected
    assert target == before


JSON_PATCH_ERRORS = [
    ({"a": 1}, [{"op": "remove", "path": "/b"}], "operation 0 (remove): path '/b' not found"),
    ({"a": 1}, [{"op": "replace", "path": "/b", "value": 2}], "path '/b' not found"),
    ({"a": [1]}, [{"op": "add", "path": "/a/5", "value": 2}], "index 5 out of range"),
    ({"a": [1]}, [{"op": "add", "path": "/a/01", "value": 2}], "is not an array index"),
    ({"a": 1}, [{"op": "add", "path": "/x/y", "value": 2}], "path '/x/y' not found"),
    ({"a": 1}, [{"op": "test", "path": "/a", "value": 2}], "test failed"),
    ({"a": True}, [{"op": "test", "path": "/a", "value": 1}], "test failed"),
    ({"a": 1}, [{"op": "test", "path": "/a", "value": 1}, {"op": "frob", "path": "/a"}],
     "operation 1: unknown op 'frob'"),
    ({"a": 1}, [{"op": "add", "path": "a", "value": 2}], "must start with '/'"),
    ({"a": 1}, [{"op": "add", "path": "/b"}], "missing 'value'"),
    ({"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/c"}], "own child"),
    ({"a": 1}, {"op": "add"}, "must be a list"),
]


@pytest.mark.parametrize(("target", "ops", "message"), JSON_PATCH_ERRORS)
def test_json_patch_errors(target: Any, ops: Any, message: str) -> None:
    with pytest.raises(PatchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        json_patch(target, ops)


# ---------------------------------------------------------------------------
# Strategic merge patch: what kubectl 1.32 client-side apply sends for built-ins

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def live_deployment(env: list[dict[str, str]]) -> dict[str, Any]:
    """A Deployment as the server stores it (defaults filled in)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1",
                     "resourceVersion": "7", "generation": 1, "labels": {"app": "web"},
                     "annotations": {LAST_APPLIED: "{old}"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "app", "image": "hello-openshift",
                        "env": env,
                        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                        "imagePullPolicy": "Always",
                        "terminationMessagePath": "/dev/termination-log",
                    }],
                    "restartPolicy": "Always",
                    "dnsPolicy": "ClusterFirst",
                },
            },
        },
        "status": {"conditions": [{"type": "Available", "status": "True"}]},
    }


def template_containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
    return containers


# Bodies captured from kubectl 1.32 (`kubectl apply --validate=false -f`) against a
# stub server holding live_deployment([A=1]) with last-applied env [A=1]; the files
# applied changed env to [A=1, B=2], then to [B=2] with strategy Recreate.
KUBECTL_ADD_ENV = r'''{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"annotations\":{},\"name\":\"web\",\"namespace\":\"default\"},\"spec\":{\"replicas\":1,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},\"strategy\":{\"type\":\"RollingUpdate\"},\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},\"spec\":{\"containers\":[{\"env\":[{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"B\",\"value\":\"2\"}],\"image\":\"hello-openshift\",\"name\":\"app\"}]}}}}\n"}},"spec":{"strategy":{"$retainKeys":["type"]},"template":{"spec":{"$setElementOrder/containers":[{"name":"app"}],"containers":[{"$setElementOrder/env":[{"name":"A"},{"name":"B"}],"env":[{"name":"B","value":"2"}],"name":"app"}]}}}}'''
KUBECTL_SWAP_ENV_RECREATE = r'''{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"annotations\":{},\"name\":\"web\",\"namespace\":\"default\"},\"spec\":{\"replicas\":1,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},\"strategy\":{\"type\":\"Recreate\"},\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},\"spec\":{\"containers\":[{\"env\":[{\"name\":\"B\",\"value\":\"2\"}],\"image\":\"hello-openshift\",\"name\":\"app\"}]}}}}\n"}},"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"},"template":{"spec":{"$setElementOrder/containers":[{"name":"app"}],"containers":[{"$setElementOrder/env":[{"name":"B"}],"env":[{"name":"B","value":"2"},{"$patch":"delete","name":"A"}],"name":"app"}]}}}}'''


def test_kubectl_apply_adds_second_env_var() -> None:
    live = live_deployment([{"name": "A", "value": "1"}])
    result = strategic_merge_patch(live, json.loads(KUBECTL_ADD_ENV), "Deployment")
    container = template_containers(result)[0]
    assert container["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    # Everything else the server holds is kept; no directive leaks into the object.
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert container["imagePullPolicy"] == "Always"
    assert '"name":"B"' in result["metadata"]["annotations"][LAST_APPLIED]
    assert "$setElementOrder" not in json.dumps(result)
    # kubectl always sends `strategy: {$retainKeys: [type]}`: upstream drops the
    # live rollingUpdate too, and the API server's defaulting puts it back.
    assert result["spec"]["strategy"] == {"type": "RollingUpdate"}
    assert template_containers(live)[0]["env"] == [{"name": "A", "value": "1"}]  # not mutated


def test_kubectl_apply_replaces_env_and_strategy() -> None:
    live = live_deployment([{"name": "A", "value": "1"}])
    result = strategic_merge_patch(live, json.loads(KUBECTL_SWAP_ENV_RECREATE), "Deployment")
    assert template_containers(result)[0]["env"] == [{"name": "B", "value": "2"}]
    assert result["spec"]["strategy"] == {"type": "Recreate"}


# Captured the same way (last-applied annotation value shortened): a sidecar
# container and a label added, then both removed while env gains B.
KUBECTL_ADD_SIDECAR_AND_LABEL = r'''{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{...}"},"labels":{"team":"a"}},"spec":{"strategy":{"$retainKeys":["type"]},"template":{"spec":{"$setElementOrder/containers":[{"name":"side"},{"name":"app"}],"containers":[{"image":"curl","name":"side"}]}}}}'''
KUBECTL_REMOVE_SIDECAR_AND_LABELS = r'''{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{...}"},"labels":null},"spec":{"strategy":{"$retainKeys":["type"]},"template":{"spec":{"$setElementOrder/containers":[{"name":"app"}],"containers":[{"$setElementOrder/env":[{"name":"A"},{"name":"B"}],"env":[{"name":"B","value":"2"}],"name":"app"},{"$patch":"delete","name":"side"}]}}}}'''


def test_kubectl_apply_adds_sidecar_first_and_a_label() -> None:
    live = live_deployment([{"name": "A", "value": "1"}])
    result = strategic_merge_patch(live, json.loads(KUBECTL_ADD_SIDECAR_AND_LABEL), "Deployment")
    assert [c["name"] for c in template_containers(result)] == ["side", "app"]
    assert template_containers(result)[0] == {"name": "side", "image": "curl"}
    assert result["metadata"]["labels"] == {"app": "web", "team": "a"}


def test_kubectl_apply_removes_sidecar_and_labels() -> None:
    live = live_deployment([{"name": "A", "value": "1"}])
    live["metadata"]["labels"] = {"team": "a"}
    template_containers(live).insert(0, {"name": "side", "image": "curl"})
    result = strategic_merge_patch(live, json.loads(KUBECTL_REMOVE_SIDECAR_AND_LABELS),
                                   "Deployment")
    assert "labels" not in result["metadata"]
    assert [c["name"] for c in template_containers(result)] == ["app"]
    assert [e["name"] for e in template_containers(result)[0]["env"]] == ["A", "B"]


def test_kubectl_apply_removes_an_env_var() -> None:
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}],
        "containers": [{"$setElementOrder/env": [{"name": "B"}],
                        "env": [{"$patch": "delete", "name": "A"}], "name": "app"}]}}}}
    live = live_deployment([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
    result = strategic_merge_patch(live, patch, "Deployment")
    assert template_containers(result)[0]["env"] == [{"name": "B", "value": "2"}]


def test_kubectl_apply_reorders_env_without_changing_it() -> None:
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}],
        "containers": [{"$setElementOrder/env": [{"name": "B"}, {"name": "A"}], "name": "app"}]}}}}
    live = live_deployment([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
    result = strategic_merge_patch(live, patch, "Deployment")
    assert [e["name"] for e in template_containers(result)[0]["env"]] == ["B", "A"]


def test_kubectl_apply_changes_strategy_with_retain_keys() -> None:
    # RollingUpdate -> Recreate: deploymentStrategy is a retainKeys union.
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": None,
                                   "type": "Recreate"}}}
    result = strategic_merge_patch(live_deployment([]), patch, "Deployment")
    assert result["spec"]["strategy"] == {"type": "Recreate"}


def pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


SMP_CASES = [
    # (name, kind, live, patch, expected)
    ("add container with order",
     "Pod", pod(containers=[{"name": "app", "image": "a"}]),
     {"spec": {"$setElementOrder/containers": [{"name": "app"}, {"name": "side"}],
               "containers": [{"name": "side", "image": "s"}]}},
     pod(containers=[{"name": "app", "image": "a"}, {"name": "side", "image": "s"}])),
    # Without $setElementOrder upstream puts patched items before server-only ones.
    ("add container without order goes first",
     "Pod", pod(containers=[{"name": "app", "image": "a"}]),
     {"spec": {"containers": [{"name": "side", "image": "s"}]}},
     pod(containers=[{"name": "side", "image": "s"}, {"name": "app", "image": "a"}])),
    ("change image by merge key",
     "Pod", pod(containers=[{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]),
     {"spec": {"containers": [{"name": "b", "image": "2"}]}},
     pod(containers=[{"name": "a", "image": "1"}, {"name": "b", "image": "2"}])),
    ("container ports by containerPort",
     "Pod", pod(containers=[{"name": "a", "ports": [{"containerPort": 80, "name": "http"}]}]),
     {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "protocol": "TCP"},
                                                       {"containerPort": 9090}]}]}},
     pod(containers=[{"name": "a", "ports": [{"containerPort": 80, "name": "http",
                                               "protocol": "TCP"}, {"containerPort": 9090}]}])),
    ("volumeMounts by mountPath",
     "Pod", pod(containers=[{"name": "a", "volumeMounts": [{"mountPath": "/x", "name": "v"}]}]),
     {"spec": {"containers": [{"name": "a", "volumeMounts": [
         {"mountPath": "/x", "readOnly": True}]}]}},
     pod(containers=[{"name": "a", "volumeMounts": [{"mountPath": "/x", "name": "v",
                                                     "readOnly": True}]}])),
    ("untagged list inside a container is replaced",
     "Pod", pod(containers=[{"name": "a", "args": ["x", "y"]}]),
     {"spec": {"containers": [{"name": "a", "args": ["z"]}]}},
     pod(containers=[{"name": "a", "args": ["z"]}])),
    ("tolerations are replaced",
     "Pod", pod(tolerations=[{"key": "a", "operator": "Exists"}]),
     {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}},
     pod(tolerations=[{"key": "b", "operator": "Exists"}])),
    ("volume source switched with $retainKeys in a list item",
     "Pod", pod(volumes=[{"name": "v", "configMap": {"name": "c"}}, {"name": "w", "emptyDir": {}}]),
     {"spec": {"$setElementOrder/volumes": [{"name": "v"}, {"name": "w"}],
               "volumes": [{"$retainKeys": ["name", "secret"], "name": "v",
                            "secret": {"secretName": "s"}}]}},
     pod(volumes=[{"name": "v", "secret": {"secretName": "s"}}, {"name": "w", "emptyDir": {}}])),
    ("list item $patch: replace replaces the whole list",
     "Pod", pod(containers=[{"name": "a"}, {"name": "b"}]),
     {"spec": {"containers": [{"$patch": "replace"}, {"name": "c", "image": "i"}]}},
     pod(containers=[{"name": "c", "image": "i"}])),
    ("map $patch: replace",
     "Service", {"spec": {"selector": {"app": "old", "tier": "x"}}},
     {"spec": {"selector": {"$patch": "replace", "app": "new"}}},
     {"spec": {"selector": {"app": "new"}}}),
    ("map $patch: delete",
     "ConfigMap", {"metadata": {"name": "c", "labels": {"a": "1"}}},
     {"metadata": {"labels": {"$patch": "delete"}}},
     {"metadata": {"name": "c", "labels": {}}}),
    ("map $patch: merge is a plain merge",
     "ConfigMap", {"data": {"a": "1"}}, {"data": {"$patch": "merge", "b": "2"}},
     {"data": {"a": "1", "b": "2"}}),
    ("null deletes a key; absent key with null is ignored",
     "ConfigMap", {"data": {"a": "1", "b": "2"}}, {"data": {"a": None, "zz": None}},
     {"data": {"b": "2"}}),
    ("service ports by port",
     "Service", {"spec": {"ports": [{"port": 80, "targetPort": 8080, "name": "http"},
                                   {"port": 443, "targetPort": 8443, "name": "https"}]}},
     {"spec": {"$setElementOrder/ports": [{"port": 80}, {"port": 443}],
               "ports": [{"port": 80, "targetPort": 9090}]}},
     {"spec": {"ports": [{"port": 80, "targetPort": 9090, "name": "http"},
                         {"port": 443, "targetPort": 8443, "name": "https"}]}}),
    ("service port deleted",
     "Service", {"spec": {"ports": [{"port": 80}, {"port": 443}]}},
     {"spec": {"$setElementOrder/ports": [{"port": 443}], "ports": [{"$patch": "delete", "port": 80}]}},
     {"spec": {"ports": [{"port": 443}]}}),
    ("finalizers: add and delete from a primitive list",
     "ConfigMap", {"metadata": {"finalizers": ["a", "b"]}},
     {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"],
                   "$setElementOrder/finalizers": ["b", "c"], "finalizers": ["c"]}},
     {"metadata": {"finalizers": ["b", "c"]}}),
    ("finalizers merge as a set",
     "Secret", {"metadata": {"finalizers": ["a"]}}, {"metadata": {"finalizers": ["a", "b"]}},
     {"metadata": {"finalizers": ["a", "b"]}}),
    ("ownerReferences by uid",
     "Pod", {"metadata": {"ownerReferences": [{"uid": "1", "name": "rs", "controller": True}]}},
     {"metadata": {"ownerReferences": [{"uid": "1", "blockOwnerDeletion": True},
                                       {"uid": "2", "name": "other"}]}},
     {"metadata": {"ownerReferences": [{"uid": "1", "name": "rs", "controller": True,
                                        "blockOwnerDeletion": True},
                                       {"uid": "2", "name": "other"}]}}),
    ("status conditions by type",
     "Pod", {"status": {"conditions": [{"type": "Ready", "status": "False"},
                                       {"type": "Scheduled", "status": "True"}]}},
     {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
     {"status": {"conditions": [{"type": "Ready", "status": "True"},
                                {"type": "Scheduled", "status": "True"}]}}),
    ("list added where none was: directives are cleaned",
     "Pod", pod(),
     {"spec": {"$setElementOrder/containers": [{"name": "a"}],
               "containers": [{"name": "a", "env": [{"name": "X", "value": None}]}]}},
     pod(containers=[{"name": "a", "env": [{"name": "X"}]}])),
    ("new nested map drops nulls",
     "Pod", pod(), {"spec": {"securityContext": {"runAsUser": 1, "fsGroup": None}}},
     pod(securityContext={"runAsUser": 1})),
    ("type change takes the patch value",
     "ConfigMap", {"data": {"a": {"x": 1}}}, {"data": {"a": "flat"}}, {"data": {"a": "flat"}}),
    ("unknown kind: lists replaced, metadata lists still merge",
     "Widget", {"metadata": {"finalizers": ["a"]}, "spec": {"items": [{"name": "x"}]}},
     {"metadata": {"finalizers": ["b"]}, "spec": {"items": [{"name": "y"}]}},
     {"metadata": {"finalizers": ["b", "a"]}, "spec": {"items": [{"name": "y"}]}}),
    ("deployment template env without set order",
     "Deployment",
     {"spec": {"template": {"spec": {"containers": [{"name": "c", "env": [{"name": "A"}]}]}}}},
     {"spec": {"template": {"spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": "v"}]}]}}}},
     {"spec": {"template": {"spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": "v"}]}]}}}}),
]


@pytest.mark.parametrize(("kind", "live", "patch", "expected"),
                         [c[1:] for c in SMP_CASES], ids=[c[0] for c in SMP_CASES])
def test_strategic_merge_patch(kind: str, live: dict[str, Any], patch: dict[str, Any],
                               expected: dict[str, Any]) -> None:
    before = copy.deepcopy((live, patch))
    assert strategic_merge_patch(live, patch, kind) == expected
    assert (live, patch) == before


SMP_ERRORS = [
    ("Pod", pod(containers=[{"name": "a"}]), {"spec": {"containers": [{"image": "x"}]}},
     "does not contain declared merge key 'name'"),
    ("Pod", pod(containers=[{"name": "a"}]), {"spec": {"containers": [{"$patch": "delete"}]}},
     "lacks merge key 'name'"),
    ("Pod", pod(), {"spec": {"$patch": "frobnicate"}}, "unknown \\$patch directive 'frobnicate'"),
    ("Pod", pod(), {"spec": {"$bogus": 1}}, "unknown strategic merge patch directive"),
    ("Deployment", {"spec": {"strategy": {"type": "RollingUpdate"}}},
     {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}},
     "missing from \\$retainKeys"),
    ("Pod", pod(containers=[{"name": "a"}]),
     {"spec": {"containers": [{"$patch": "merge", "name": "a"}]}}, "merging lists cannot"),
]


@pytest.mark.parametrize(("kind", "live", "patch", "message"), SMP_ERRORS)
def test_strategic_merge_patch_errors(kind: str, live: dict[str, Any], patch: dict[str, Any],
                                      message: str) -> None:
    with pytest.raises(PatchError, match=message):
        strategic_merge_patch(live, patch, kind)


def test_merge_key_table_is_data() -> None:
    assert MERGE_KEYS["Deployment"]["spec.template.spec.containers.env"] == "name"
    assert MERGE_KEYS["Pod"]["spec.containers.ports"] == "containerPort"
    assert MERGE_KEYS["Service"]["spec.ports"] == "port"
    assert "spec.tolerations" not in MERGE_KEYS["Pod"]
    assert merge_keys_for("Unknown")["metadata.ownerReferences"] == "uid"
    for kind in ("Pod", "Deployment", "Service", "ConfigMap", "Secret", "Namespace",
                 "ServiceAccount", "NetworkPolicy", "Event"):
        assert MERGE_KEYS[kind]["metadata.finalizers"] == ""


# ---------------------------------------------------------------------------
# Simplified server-side apply

def test_apply_creates_when_missing() -> None:
    applied = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
               "data": {"a": "1", "gone": None}}
    assert apply_patch(None, applied, "ConfigMap", True) == {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}


def test_apply_builtin_merges_lists_by_key_and_keeps_server_metadata() -> None:
    live = live_deployment([{"name": "A", "value": "1"}])
    applied = {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "uid": "forged", "resourceVersion": "1",
                            "labels": {"app": "web", "tier": "front"}},
               "spec": {"replicas": 2, "template": {"spec": {"containers": [
                   {"name": "app", "image": "hello-openshift",
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}}}}
    result = apply_patch(live, applied, "Deployment", True)
    meta = result["metadata"]
    assert (meta["uid"], meta["resourceVersion"], meta["generation"]) == ("u-1", "7", 1)
    assert meta["labels"] == {"app": "web", "tier": "front"}
    container = template_containers(result)[0]
    assert [e["name"] for e in container["env"]] == ["A", "B"]
    assert container["imagePullPolicy"] == "Always"  # server-filled field kept
    assert result["spec"]["replicas"] == 2


def test_apply_custom_resource_replaces_lists_and_ignores_nulls() -> None:
    live = {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "hello", "uid": "u", "creationTimestamp": "t"},
            "spec": {"traffic": [{"percent": 50, "revisionName": "a"},
                                 {"percent": 50, "revisionName": "b"}], "keep": "me"}}
    applied = {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
               "metadata": {"name": "hello"},
               "spec": {"traffic": [{"percent": 100, "latestRevision": True}], "keep": None}}
    result = apply_patch(live, applied, "Service", False)
    assert result["spec"] == {"traffic": [{"percent": 100, "latestRevision": True}], "keep": "me"}
    assert result["metadata"] == {"name": "hello", "uid": "u", "creationTimestamp": "t"}
