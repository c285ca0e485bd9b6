"""env.build_env: a container's environment, kubelet's way (table tests)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from skiff.node import env
from skiff.node.env import EnvContext, EnvError

Obj = dict[str, Any]

POD: Obj = {
    "metadata": {"name": "web-1", "namespace": "team-a", "uid": "u-123",
                 "labels": {"app": "web"}, "annotations": {"note": "n"}},
    "spec": {"serviceAccountName": "builder"},
}
CM: Obj = {"metadata": {"name": "cfg"}, "data": {"greeting": "hi", "level": "debug",
                                                "bad key": "x"}}
SECRET: Obj = {"metadata": {"name": "creds"},
               "data": {"password": base64.b64encode(b"s3cret").decode()}}


def ctx(**kw: Any) -> EnvContext:
    base: Obj = {"port": 41000, "api_host": "127.0.0.1", "api_port": 6443, "node_name": "skiff",
                 "configmaps": {"cfg": CM}, "secrets": {"creds": SECRET},
                 "node_allocatable": {"cpu": 8.0, "memory": 16 * 2**30}}
    base.update(kw)
    return EnvContext(**base)


def var(name: str, **value_from: Obj) -> Obj:
    return {"name": name, "valueFrom": value_from}


@pytest.mark.parametrize("container, expect", [
    ({"env": [{"name": "RESPONSE", "value": "Hello Serverless!"}]},
     {"RESPONSE": "Hello Serverless!"}),
    ({"env": [var("G", configMapKeyRef={"name": "cfg", "key": "greeting"})]}, {"G": "hi"}),
    ({"env": [var("P", secretKeyRef={"name": "creds", "key": "password"})]}, {"P": "s3cret"}),
    ({"env": [var("N", fieldRef={"fieldPath": "metadata.name"}),
              var("NS", fieldRef={"fieldPath": "metadata.namespace"}),
              var("U", fieldRef={"fieldPath": "metadata.uid"}),
              var("IP", fieldRef={"fieldPath": "status.podIP"}),
              var("NODE", fieldRef={"fieldPath": "spec.nodeName"}),
              var("SA", fieldRef={"fieldPath": "spec.serviceAccountName"}),
              var("APP", fieldRef={"fieldPath": "metadata.labels['app']"}),
              var("NOTE", fieldRef={"fieldPath": "metadata.annotations['note']"}),
              var("NONE", fieldRef={"fieldPath": "metadata.labels['none']"})]},
     {"N": "web-1", "NS": "team-a", "U": "u-123", "IP": "127.0.0.1", "NODE": "skiff",
      "SA": "builder", "APP": "web", "NOTE": "n", "NONE": ""}),
    ({"envFrom": [{"configMapRef": {"name": "cfg"}}]}, {"greeting": "hi", "level": "debug"}),
    ({"envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
                  {"secretRef": {"name": "creds"}}]},
     {"CFG_greeting": "hi", "password": "s3cret"}),
    ({"envFrom": [{"configMapRef": {"name": "cfg"}}], "env": [{"name": "level", "value": "info"}]},
     {"level": "info"}),
    ({"env": [{"name": "A", "value": "x"}, {"name": "B", "value": "$(A)-$(MISSING)-$$(A)"}]},
     {"B": "x-$(MISSING)-$(A)"}),
    ({"env": [var("O", configMapKeyRef={"name": "nope", "key": "k", "optional": True}),
              var("K", secretKeyRef={"name": "creds", "key": "nokey", "optional": True})],
      "envFrom": [{"secretRef": {"name": "gone", "optional": True}}]},
     {}),
    ({"env": [{"name": "PORT", "value": "8080"}]}, {"PORT": "41000"}),
    ({}, {"PORT": "41000", "HOSTNAME": "web-1", "KUBERNETES_SERVICE_HOST": "127.0.0.1",
          "KUBERNETES_SERVICE_PORT": "6443", "KUBERNETES_PORT": "tcp://127.0.0.1:6443"}),
    ({"env": [{"name": "HOSTNAME", "value": "mine"}]}, {"HOSTNAME": "mine"}),
    ({"resources": {"limits": {"cpu": "500m", "memory": "1Gi"}},
      "env": [var("C", resourceFieldRef={"resource": "limits.cpu"}),
              var("M", resourceFieldRef={"resource": "limits.memory", "divisor": "1Mi"}),
              var("RC", resourceFieldRef={"resource": "requests.cpu", "divisor": "1m"})]},
     {"C": "1", "M": "1024", "RC": "500"}),
    ({"env": [var("C", resourceFieldRef={"resource": "limits.cpu"})]}, {"C": "8"}),
])
def test_build_env(container: Obj, expect: dict[str, str]) -> None:
    built = env.build_env(POD, container, ctx())
    assert isinstance(built, dict)
    for k, v in expect.items():
        assert built[k] == v, k
    if container.get("envFrom") and "bad key" in CM["data"]:
        assert "bad key" not in built
    if not expect:
        assert not {"O", "K"} & built.keys()


@pytest.mark.parametrize("container, message", [
    ({"env": [var("G", configMapKeyRef={"name": "x", "key": "k"})]}, 'configmap "x" not found'),
    ({"env": [var("G", configMapKeyRef={"name": "cfg", "key": "k"})]},
     "couldn't find key k in ConfigMap team-a/cfg"),
    ({"env": [var("S", secretKeyRef={"name": "x", "key": "k"})]}, 'secret "x" not found'),
    ({"env": [var("S", secretKeyRef={"name": "creds", "key": "k"})]},
     "couldn't find key k in Secret team-a/creds"),
    ({"envFrom": [{"configMapRef": {"name": "x"}}]}, 'configmap "x" not found'),
    ({"envFrom": [{"secretRef": {"name": "x"}}]}, 'secret "x" not found'),
    ({"env": [var("F", fieldRef={"fieldPath": "spec.nope"})]},
     "unsupported fieldRef fieldPath: spec.nope"),
])
def test_build_env_errors(container: Obj, message: str) -> None:
    assert env.build_env(POD, container, ctx()) == EnvError(message)


def test_image_env_is_lowest_precedence() -> None:
    c = {"env": [{"name": "B", "value": "pod"}]}
    built = env.build_env(POD, c, ctx(image_env={"A": "image", "B": "image", "PORT": "1"}))
    assert isinstance(built, dict)
    assert (built["A"], built["B"], built["PORT"]) == ("image", "pod", "41000")


def test_references_lists_what_to_fetch() -> None:
    c = {"envFrom": [{"configMapRef": {"name": "a"}}, {"secretRef": {"name": "s",
                                                                    "optional": True}}],
         "env": [var("X", configMapKeyRef={"name": "b", "key": "k", "optional": True}),
                 var("Y", configMapKeyRef={"name": "a", "key": "k", "optional": True})]}
    refs = env.references(c)
    assert refs.configmaps == {"a": False, "b": True}
    assert refs.secrets == {"s": True}


def test_configmap_binary_data_and_secret_string_data() -> None:
    cm = {"binaryData": {"b": base64.b64encode(b"bin").decode()}}
    assert env.configmap_data(cm) == {"b": "bin"}
    assert env.secret_data({"stringData": {"k": "v"}}) == {"k": "v"}


@pytest.mark.parametrize("value, out", [
    ("$(A)", "1"), ("$$(A)", "$(A)"), ("$(B", "$(B"), ("a$", "a$"), ("$(Z)", "$(Z)"),
    ("x$(A)y$(A)", "x1y1"),
])
def test_expand(value: str, out: str) -> None:
    assert env.expand(value, {"A": "1"}) == out


@pytest.mark.parametrize("q, v", [("500m", 0.5), ("1Gi", 2**30), ("2", 2.0), (3, 3.0),
                                  ("1k", 1000.0), ("100Mi", 100 * 2**20)])
def test_quantity(q: object, v: float) -> None:
    assert env.quantity(q) == v
