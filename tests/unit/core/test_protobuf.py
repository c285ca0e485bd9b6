"""core/apiserver/protobuf.py: decoding kubectl's protobuf request bodies.

The .bin fixtures are real request bodies captured from kubectl 1.32 by
tests/fixtures/capture_kubectl_protobuf.py; the .dry-run.json beside each
is kubectl's own JSON rendering of the same object (`--dry-run=client -o
json`), the oracle for "the same dict as the JSON API would carry".
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from skiff.core.apiserver.protobuf import MAGIC, ProtobufError, decode, is_protobuf

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "protobuf"


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


EXPECTED: dict[str, dict[str, Any]] = {
    "namespace": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"},
                  "spec": {}, "status": {}},
    "serviceaccount": {"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": "sa"}},
    "configmap": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
                  "data": {"a": "b"}},
    "configmap_binary": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bin"},
                         "data": {"text": "hello"}, "binaryData": {"blob": "AAEC//4="}},
    "secret_generic": {"apiVersion": "v1", "kind": "Secret",
                       "metadata": {"name": "creds", "namespace": "team-a"},
                       "data": {"password": "czNjcjN0", "username": "YWRtaW4="}},
    "secret_tls": {"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "wildcard-certs", "namespace": "istio-system"},
                   "data": {"tls.crt": _b64(FIXTURES / "tls.crt"),
                            "tls.key": _b64(FIXTURES / "tls.key")},
                   "type": "kubernetes.io/tls"},
    "deployment": {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "hello", "labels": {"app": "hello"}},
        "spec": {
            "replicas": 2, "selector": {"matchLabels": {"app": "hello"}},
            "template": {"metadata": {"labels": {"app": "hello"}}, "spec": {"containers": [{
                "name": "hello-openshift", "image": "docker.io/openshift/hello-openshift",
                "command": ["sh", "-c", "echo hi"], "ports": [{"containerPort": 8080}],
                "resources": {}}]}},
            "strategy": {}},
        "status": {}},
    "deployment_zero": {  # --replicas=0: a set pointer, kept although zero
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 0, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "nginx", "image": "nginx", "resources": {}}]}},
            "strategy": {}},
        "status": {}},
    "service_clusterip": {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "my-svc", "labels": {"app": "my-svc"}},
        "spec": {"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80,
                            "targetPort": 8080}],
                 "selector": {"app": "my-svc"}, "type": "ClusterIP"},
        "status": {"loadBalancer": {}}},
    "service_nodeport": {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "np", "labels": {"app": "np"}},
        "spec": {"ports": [{"name": "80-http", "protocol": "TCP", "port": 80,
                            "targetPort": "http", "nodePort": 30080}],
                 "selector": {"app": "np"}, "type": "NodePort"},
        "status": {"loadBalancer": {}}},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_decodes_kubectl_bodies(name: str) -> None:
    assert decode((FIXTURES / f"{name}.bin").read_bytes()) == EXPECTED[name]


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_matches_kubectl_json_rendering(name: str) -> None:
    # Go prints the zero creationTimestamp as null; decode() omits it.
    oracle = json.loads((FIXTURES / f"{name}.dry-run.json").read_text())
    assert decode((FIXTURES / f"{name}.bin").read_bytes()) == _without_nulls(oracle)


def test_every_fixture_is_covered() -> None:
    assert {p.stem for p in FIXTURES.glob("*.bin")} == set(EXPECTED)


# --- hand-encoded bodies for fields kubectl's imperative creates never set ---------

def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def vi(num: int, n: int) -> bytes:
    return _varint(num << 3) + _varint(n)


def ld(num: int, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def st(num: int, text: str) -> bytes:
    return ld(num, text.encode())


def entry(num: int, key: str, value: bytes) -> bytes:
    return ld(num, st(1, key), ld(2, value))


def sentry(num: int, key: str, value: str) -> bytes:
    return entry(num, key, value.encode())


def quantity(value: str) -> bytes:
    return st(1, value)


def int_or_str(value: int | str) -> bytes:
    if isinstance(value, str):
        return vi(1, 1) + vi(2, 0) + st(3, value)
    return vi(1, 0) + vi(2, value) + st(3, "")


def envelope(api_version: str, kind: str, raw: bytes, encoding: str = "") -> bytes:
    return MAGIC + ld(1, st(1, api_version), st(2, kind)) + ld(2, raw) + st(3, encoding) + \
        st(4, "")


def test_rich_deployment() -> None:
    metadata = (st(1, "rich") + st(2, "") + st(3, "ns") + vi(7, 3)
                + ld(8, vi(1, 1700000000), vi(2, 0))
                + sentry(11, "app", "rich") + sentry(12, "note", "x")
                + ld(13, st(5, "serving.knative.dev/v1"), st(1, "Revision"), st(3, "rev"),
                     st(4, "uid-1"), vi(6, 1), vi(7, 1))
                + st(14, "example.com/fin"))
    container = (
        st(1, "app") + st(2, "registry/app:1") + st(4, "--verbose") + st(5, "/work")
        + ld(6, st(1, "http"), vi(2, 0), vi(3, 8080), st(4, "TCP"), st(5, ""))
        + ld(7, st(1, "A"), st(2, "1"))
        + ld(7, st(1, "POD"), st(2, ""),
             ld(3, ld(1, st(1, "v1"), st(2, "metadata.name"))))
        + ld(7, st(1, "PASSWORD"),
             ld(3, ld(4, ld(1, st(1, "creds")), st(2, "password"), vi(3, 0))))
        + ld(19, st(1, "CFG_"), ld(2, ld(1, st(1, "cm"))))
        + ld(8, entry(1, "cpu", quantity("500m")), entry(1, "memory", quantity("128Mi")),
             entry(2, "cpu", quantity("100m")))
        + ld(9, st(1, "cfg"), vi(2, 1), st(3, "/etc/cfg"), st(4, ""), st(6, ""))
        + ld(10, ld(1, ld(3, ld(1, int_or_str(8080)), st(2, ""))), vi(2, 0), vi(3, 1))
        + ld(11, ld(1, ld(2, st(1, "/healthz"), ld(2, int_or_str("http")), st(3, ""),
                          st(4, "HTTP"), ld(5, st(1, "X-Probe"), st(2, "1")))),
             vi(2, 5), vi(3, 1), vi(4, 10), vi(5, 1), vi(6, 3))
        + ld(22, ld(1, ld(1, st(1, "cat"), st(1, "/tmp/ready"))))
        + ld(12, ld(2, ld(4, vi(1, 5))))
        + st(13, "/dev/termination-log") + st(20, "File") + st(14, "IfNotPresent")
        + ld(15, ld(1, st(2, "ALL")), vi(4, 0), vi(5, 0))
        + vi(16, 0) + vi(17, 0) + vi(18, 0))
    pod_spec = (
        ld(1, st(1, "cfg"), ld(2, ld(19, ld(1, st(1, "cm")), vi(3, 420))))
        + ld(1, st(1, "scratch"), ld(2, ld(2, st(1, "Memory"))))
        + ld(20, st(1, "init"), st(2, "busybox"), ld(15))
        + ld(2, container)
        + st(3, "Always") + vi(4, 30) + st(6, "ClusterFirst")
        + sentry(7, "disk", "ssd") + st(8, "runner") + vi(11, 0)
        + ld(14, vi(5, 2000), ld(4, _varint(1000), _varint(2000)))
        + st(19, "default-scheduler") + vi(25, -5)
        + ld(22, st(1, "dedicated"), st(2, "Equal"), st(3, "x"), st(4, "NoSchedule"))
        + ld(18, ld(1, ld(1, ld(1, ld(1, st(1, "zone"), st(2, "In"), st(3, "a"))))))
    )
    spec = (vi(1, 3)
            + ld(2, ld(2, st(1, "app"), st(2, "In"), st(3, "rich")))
            + ld(3, ld(1, st(1, ""), ld(8), sentry(11, "app", "rich")), ld(2, pod_spec))
            + ld(4, st(1, "RollingUpdate"), ld(2, ld(1, int_or_str("25%")),
                                               ld(2, int_or_str(1))))
            + vi(5, 0) + vi(6, 10) + vi(7, 0) + vi(9, 600))
    body = envelope("apps/v1", "Deployment", ld(1, metadata) + ld(2, spec) + ld(3))
    assert decode(body) == {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": "rich", "namespace": "ns", "generation": 3,
            "creationTimestamp": "2023-11-14T22:13:20Z",
            "labels": {"app": "rich"}, "annotations": {"note": "x"},
            "ownerReferences": [{"apiVersion": "serving.knative.dev/v1", "kind": "Revision",
                                 "name": "rev", "uid": "uid-1", "controller": True,
                                 "blockOwnerDeletion": True}],
            "finalizers": ["example.com/fin"]},
        "spec": {
            "replicas": 3,
            "selector": {"matchExpressions": [
                {"key": "app", "operator": "In", "values": ["rich"]}]},
            "template": {"metadata": {"labels": {"app": "rich"}}, "spec": {
                "volumes": [{"name": "cfg", "configMap": {"name": "cm", "defaultMode": 420}},
                            {"name": "scratch", "emptyDir": {"medium": "Memory"}}],
                "initContainers": [{"name": "init", "image": "busybox",
                                    "securityContext": {}}],
                "containers": [{
                    "name": "app", "image": "registry/app:1", "args": ["--verbose"],
                    "workingDir": "/work",
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "env": [
                        {"name": "A", "value": "1"},
                        {"name": "POD", "valueFrom": {"fieldRef": {
                            "apiVersion": "v1", "fieldPath": "metadata.name"}}},
                        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {
                            "name": "creds", "key": "password", "optional": False}}}],
                    "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "cm"}}],
                    "resources": {"limits": {"cpu": "500m", "memory": "128Mi"},
                                  "requests": {"cpu": "100m"}},
                    "volumeMounts": [{"name": "cfg", "readOnly": True,
                                      "mountPath": "/etc/cfg"}],
                    "livenessProbe": {"tcpSocket": {"port": 8080}, "timeoutSeconds": 1},
                    "readinessProbe": {
                        "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP",
                                    "httpHeaders": [{"name": "X-Probe", "value": "1"}]},
                        "initialDelaySeconds": 5, "timeoutSeconds": 1, "periodSeconds": 10,
                        "successThreshold": 1, "failureThreshold": 3},
                    "startupProbe": {"exec": {"command": ["cat", "/tmp/ready"]}},
                    "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent",
                    "securityContext": {"capabilities": {"drop": ["ALL"]}, "runAsUser": 0,
                                        "runAsNonRoot": False}}],
                "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst", "nodeSelector": {"disk": "ssd"},
                "serviceAccountName": "runner",
                "securityContext": {"fsGroup": 2000, "supplementalGroups": [1000, 2000]},
                "schedulerName": "default-scheduler", "priority": -5,
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "x",
                                 "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                        {"matchExpressions": [
                            {"key": "zone", "operator": "In", "values": ["a"]}]}]}}}}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}},
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
        "status": {}}


def test_secret_pointer_fields_and_string_data() -> None:
    raw = (ld(1, st(1, "s")) + vi(5, 0) + sentry(4, "token", "abc")
           + entry(2, "empty", b"") + st(3, "Opaque"))
    assert decode(envelope("v1", "Secret", raw)) == {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
        "immutable": False, "stringData": {"token": "abc"}, "data": {"empty": ""},
        "type": "Opaque"}


def test_unknown_fields_are_skipped() -> None:
    raw = ld(1, st(1, "demo"), st(99, "future"), vi(98, 7)) + vi(50, 1)
    assert decode(envelope("v1", "Namespace", raw)) == {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}


# --- malformed input ---------------------------------------------------------------

@pytest.mark.parametrize(("body", "message"), [
    (b"", "k8s\\x00"),
    (b'{"kind": "Namespace"}', "k8s\\x00"),
    (b"k8s\x01" + ld(2, b""), "k8s\\x00"),
    (MAGIC + b"\x0a\x80", "truncated varint"),
    (MAGIC + b"\x0a\x05ab", "truncated"),
    (MAGIC + b"\x0a" + b"\xff" * 11, "varint"),
    (MAGIC + b"\x0b", "wire type 3"),
    (envelope("policy/v1", "PodDisruptionBudget", b""), "'PodDisruptionBudget'"),
    (envelope("v1", "Namespace", vi(1, 5)), "Namespace.metadata"),
    (envelope("v1", "Namespace", ld(1, vi(1, 5))), "ObjectMeta.name"),
    (envelope("v1", "Namespace", b"", encoding="gzip"), "gzip"),
])
def test_malformed_input(body: bytes, message: str) -> None:
    with pytest.raises(ProtobufError) as info:
        decode(body)
    assert message in info.value.message


def test_truncated_real_body() -> None:
    body = (FIXTURES / "deployment.bin").read_bytes()
    with pytest.raises(ProtobufError, match="truncated"):
        decode(body[:-5])


@pytest.mark.parametrize(("content_type", "expected"), [
    ("application/vnd.kubernetes.protobuf", True),
    ("application/vnd.kubernetes.protobuf; charset=utf-8", True),
    ("Application/VND.Kubernetes.Protobuf", True),
    ("application/json", False),
    ("application/strategic-merge-patch+json", False),
    ("", False),
])
def test_is_protobuf(content_type: str, expected: bool) -> None:
    assert is_protobuf(content_type) is expected
