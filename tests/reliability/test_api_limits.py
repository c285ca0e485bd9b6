"""Bad input the API refuses as Kubernetes does, through a real `skiff up` over HTTPS.

Each case was reproduced first: a 747-byte JSON patch of 24 `copy` operations drove the server
to 23 GB and the kernel killed it; NaN in a custom resource made every later LIST of its kind
invalid JSON; 10,000 nested arrays gave a 500; immutable Secrets could be edited; invalid
base64 in Secret.data was stored; a text/plain body was read as JSON; an error about a 1 MB
label value echoed it whole. After each: the right Status, the store unchanged, the server
still serving.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

import psutil
import pytest

from skiffproc import Skiff

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: blobs.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: blobs, singular: blob, kind: Blob}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"""


def call(s: Skiff, method: str, path: str, body: bytes | None = None,
         content_type: str = "application/json") -> tuple[int, Any, int]:
    """(status, decoded body, body length) of one request with the kubeconfig's token."""
    token = (s.home / "token").read_text().strip()
    ctx = ssl.create_default_context(cafile=str(s.home / "pki" / "ca.crt"))
    req = urllib.request.Request(f"https://127.0.0.1:{s.api_port}{path}", data=body, method=method,
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=60) as r:
            raw = r.read()
            return r.status, json.loads(raw), len(raw)
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw), len(raw)


@pytest.fixture(scope="module")
def api(skiff: Skiff) -> Skiff:
    skiff.kubectl("apply", "-f", "-", input=CRD)
    skiff.wait_for(lambda: skiff.kubectl("get", "blobs", check=False).returncode == 0,
                   what="the Blob CRD served")
    skiff.kubectl("apply", "-f", "-", input="apiVersion: example.com/v1\nkind: Blob\n"
                                            "metadata: {name: b1}\nspec: {size: 1}\n")
    return skiff


def still_serving(s: Skiff) -> None:
    assert s.readyz() == "ok"
    got = json.loads(s.kubectl("get", "blobs", "-o", "json").stdout)
    assert [b["metadata"]["name"] for b in got["items"]] == ["b1"]
    assert got["items"][0]["spec"] == {"size": 1}


def test_patch_copy_bomb_is_refused_at_the_size_limit(api: Skiff) -> None:
    ops = [{"op": "copy", "from": "/spec", "path": f"/spec/c{i}"} for i in range(24)]
    raw = json.dumps(ops, separators=(",", ":")).encode()
    assert len(raw) < 1200   # about a kilobyte that doubles the object 24 times
    assert api.proc is not None
    rss_before = psutil.Process(api.proc.pid).memory_info().rss
    code, status, _ = call(api, "PATCH", "/apis/example.com/v1/namespaces/default/blobs/b1", raw,
                           "application/json-patch+json")
    assert code == 413 and status["reason"] == "RequestEntityTooLarge"
    assert "1572864 bytes" in status["message"]
    rss_after = psutil.Process(api.proc.pid).memory_info().rss
    assert rss_after - rss_before < 200 * 1024 * 1024   # it used to reach 23 GB
    still_serving(api)


def test_objects_over_the_store_limit_and_bodies_over_3mib(api: Skiff) -> None:
    big = {"apiVersion": "example.com/v1", "kind": "Blob", "metadata": {"name": "big"},
           "spec": {"data": "x" * (2 * 1024 * 1024)}}
    code, status, _ = call(api, "POST", "/apis/example.com/v1/namespaces/default/blobs",
                           json.dumps(big).encode())
    assert code == 413 and 'blobs.example.com "big" is too large to store' in status["message"]
    assert "the limit is 1572864 bytes" in status["message"]
    big["spec"]["data"] = "x" * (3 * 1024 * 1024 + 10)
    code, status, _ = call(api, "POST", "/apis/example.com/v1/namespaces/default/blobs",
                           json.dumps(big).encode())
    assert code == 413 and status["reason"] == "RequestEntityTooLarge"
    # A merge patch that grows an object past the limit is refused the same way.
    code, status, _ = call(api, "PATCH", "/apis/example.com/v1/namespaces/default/blobs/b1",
                           json.dumps({"spec": {"pad": "y" * (1600 * 1024)}}).encode(),
                           "application/merge-patch+json")
    assert code == 413 and "too large to store" in status["message"]
    still_serving(api)


@pytest.mark.parametrize("body", [b'{"apiVersion":"example.com/v1","kind":"Blob",'
                                  b'"metadata":{"name":"nan"},"spec":{"v":NaN}}',
                                  b'{"apiVersion":"example.com/v1","kind":"Blob",'
                                  b'"metadata":{"name":"inf"},"spec":{"v":Infinity}}'])
def test_nan_and_infinity_are_refused(api: Skiff, body: bytes) -> None:
    code, status, _ = call(api, "POST", "/apis/example.com/v1/namespaces/default/blobs", body)
    assert code == 400 and "is not a valid JSON number" in status["message"]
    still_serving(api)


def test_nan_in_yaml_apply_is_refused(api: Skiff) -> None:
    body = b"apiVersion: example.com/v1\nkind: Blob\nmetadata: {name: b1}\nspec: {size: .nan}\n"
    code, status, _ = call(api, "PATCH", "/apis/example.com/v1/namespaces/default/blobs/b1"
                                         "?fieldManager=t", body, "application/apply-patch+yaml")
    assert code == 400 and "not a valid JSON number" in status["message"]
    still_serving(api)


def test_deep_nesting_is_a_400(api: Skiff) -> None:
    body = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"deep"},"data":' + \
        b"[" * 10000 + b"]" * 10000 + b"}"
    code, status, _ = call(api, "POST", "/api/v1/namespaces/default/configmaps", body)
    assert code == 400 and "nested too deeply" in status["message"]
    still_serving(api)


def test_text_plain_body_is_415(api: Skiff) -> None:
    code, status, _ = call(api, "POST", "/api/v1/namespaces/default/configmaps",
                           b'{"metadata":{"name":"plain"}}', "text/plain")
    assert code == 415 and status["reason"] == "UnsupportedMediaType"
    assert "text/plain" in status["message"] and "application/json" in status["message"]
    assert api.kubectl("get", "configmap", "plain", check=False).returncode != 0


def test_immutable_secret_and_configmap(api: Skiff) -> None:
    api.kubectl("apply", "-f", "-", input="apiVersion: v1\nkind: Secret\nmetadata: {name: frozen}\n"
                                          "immutable: true\nstringData: {k: v}\n")
    r = api.kubectl("patch", "secret", "frozen", "-p", '{"stringData":{"k":"w"}}', check=False)
    assert r.returncode != 0
    assert "data: Forbidden: field is immutable when `immutable` is set" in r.stderr
    r = api.kubectl("patch", "secret", "frozen", "-p", '{"immutable":false}', check=False)
    assert "immutable: Forbidden: field is immutable when `immutable` is set" in r.stderr
    assert api.kubectl("get", "secret", "frozen", "-o", "jsonpath={.data.k}").stdout == "dg=="
    api.kubectl("label", "secret", "frozen", "tier=gold")   # metadata may still change
    api.kubectl("create", "configmap", "frozen-cm", "--from-literal=a=1")
    api.kubectl("patch", "configmap", "frozen-cm", "-p", '{"immutable":true}')
    r = api.kubectl("patch", "configmap", "frozen-cm", "-p", '{"data":{"a":"2"}}', check=False)
    assert "data: Forbidden: field is immutable when `immutable` is set" in r.stderr
    assert api.kubectl("get", "cm", "frozen-cm", "-o", "jsonpath={.data.a}").stdout == "1"


def test_invalid_base64_in_secret_data(api: Skiff) -> None:
    r = api.kubectl("apply", "-f", "-", check=False,
                    input="apiVersion: v1\nkind: Secret\nmetadata: {name: b64}\ndata: {k: 'not base64!'}\n")
    assert r.returncode != 0 and "illegal base64 data" in r.stderr
    assert api.kubectl("get", "secret", "b64", check=False).returncode != 0


def test_a_huge_label_value_is_not_echoed_whole(api: Skiff) -> None:
    body = json.dumps({"metadata": {"name": "lbl", "labels": {"a": "v" * 1_000_000}}}).encode()
    code, status, size = call(api, "POST", "/api/v1/namespaces/default/configmaps", body)
    assert code == 422 and "must be no more than 63 characters" in status["message"]
    assert "truncated, 1000000 characters" in status["message"]
    assert size < 10_000
    still_serving(api)


def test_created_pods_and_services_carry_their_initial_status(api: Skiff) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "st"},
           "spec": {"containers": [{"name": "c", "image": "docker.io/openshift/hello-openshift",
                                    "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}}]}}
    code, got, _ = call(api, "POST", "/api/v1/namespaces/default/pods", json.dumps(pod).encode())
    assert code == 201 and got["status"]["phase"] == "Pending"
    assert got["status"]["qosClass"] == "Guaranteed"
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "st"},
           "spec": {"ports": [{"port": 80}], "selector": {"app": "st"}}}
    code, got, _ = call(api, "POST", "/api/v1/namespaces/default/services", json.dumps(svc).encode())
    assert code == 201 and got["status"] == {"loadBalancer": {}}
