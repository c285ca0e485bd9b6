"""What skiff accepts but does not act on yet says so: a Warning on every write (kubectl and
`skiff apply` print it) and a Ready=Unknown NotImplemented condition on the object."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from skiff.core.kinds import Kind
from skiff.core.notimplemented import warning_header, warnings
from skiff.core.schema import resource
from skiffproc import Skiff, new_skiff


@pytest.fixture(scope="module")
def skiff(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Skiff]:
    """On the shared loopback, where the mesh's policies cannot be enforced and say so."""
    s = new_skiff(tmp_path_factory.mktemp("skiff"))
    s.extra_args = ["--pod-network", "loopback"]
    s.start()
    try:
        yield s
    finally:
        if s.proc is not None:
            s.stop()

DENY_ALL = """apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: default}
spec: {}
"""

BROKER = """apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default, namespace: default}
"""

GPU_POD = """apiVersion: v1
kind: Pod
metadata: {name: gpu, namespace: default}
spec:
  containers:
  - name: c
    image: docker.io/openshift/hello-openshift
    resources: {limits: {nvidia.com/gpu: 1}}
"""


def test_kubectl_prints_the_warning_and_the_object_says_not_implemented(skiff: Skiff) -> None:
    r = skiff.kubectl("apply", "-f", "-", input=DENY_ALL)
    assert 'Warning: authorizationpolicies.security.istio.io "deny-all": AuthorizationPolicy is ' \
           "not enforced (sidecars need pod network namespaces): " in r.stderr
    cond = skiff.kubectl_json("get", "authorizationpolicy", "deny-all")["status"]["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Ready", "Unknown", "NotImplemented")
    assert cond["message"].startswith("AuthorizationPolicy is not enforced (sidecars need pod "
                                      "network namespaces): ")


def test_skiff_apply_repeats_the_warning(skiff: Skiff) -> None:
    r = skiff.skiff("apply", "-f", "-", input=BROKER)
    assert r.returncode == 0, r.stderr
    assert "broker.eventing.knative.dev/default created" in r.stdout
    assert "Warning:" in r.stderr and "Knative Eventing is not implemented yet" in r.stderr
    cond = skiff.kubectl_json("get", "broker", "default")["status"]["conditions"][0]
    assert cond["reason"] == "NotImplemented"


def test_gpu_limits_are_flagged(skiff: Skiff) -> None:
    r = skiff.kubectl("apply", "-f", "-", input=GPU_POD)
    assert "nvidia.com/gpu is not scheduled yet" in r.stderr
    r = skiff.kubectl("create", "configmap", "plain", "--from-literal=a=b")
    assert "Warning" not in r.stderr


def test_warnings_pure() -> None:
    k = Kind(group="example.com", version="v1", kind="Thing", plural="things", namespaced=True,
             schema=resource(), not_implemented='not "done" yet')
    assert warnings(k, {"metadata": {"name": "t"}}) == ['things.example.com "t": not "done" yet']
    assert warning_header('a "b"') == '299 - "a \\"b\\""'
    svc = Kind(group="", version="v1", kind="Service", plural="services", namespaced=True,
               schema=resource())
    gpu = {"metadata": {"name": "s"}, "spec": {"template": {"spec": {"containers": [
        {"resources": {"limits": {"nvidia.com/gpu": 1}}}]}}}}
    assert warnings(svc, gpu) == []   # a core Service has no pod template
    ksvc = Kind(group="serving.knative.dev", version="v1", kind="Service", plural="services",
                namespaced=True, schema=resource())
    assert len(warnings(ksvc, gpu)) == 1
