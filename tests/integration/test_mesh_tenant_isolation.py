"""The guide's chapter 2 end to end, through a real `skiff up` with pod namespaces, the real
kubectl, curl and openssl: examples/tenant-isolation applied as the guide applies it, then the
2.4 checks exactly as written (same tenant by the cluster-local name 200, by the external URL
200; other tenant by the cluster-local name 403 "RBAC: access denied", by the external URL
200). Also what strict mTLS means from a pod: the sidecar's SPIFFE certificate seen with
openssl s_client, plaintext from outside the mesh refused, the sidecar's access log naming the
deciding policy, READY 2/2. Needs root (network namespaces), as CI has."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiffproc import Skiff, new_skiff, wait_pod_network_free

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tenant-isolation"

OUTSIDER = """
apiVersion: v1
kind: Namespace
metadata: {name: outsider}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: curl, namespace: outsider}
spec:
  replicas: 1
  selector: {matchLabels: {app: curl}}
  template:
    metadata:
      labels: {app: curl}
      annotations: {sidecar.istio.io/inject: "true"}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: curl
          image: docker.io/curlimages/curl
          command: [sleep, infinity]
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Skiff]:
    s = new_skiff(tmp_path_factory.mktemp("mesh"))
    s.extra_args = ["--pod-network", "namespaces"]
    wait_pod_network_free()
    s.start()
    try:
        for f in sorted(EXAMPLE.glob("0*.yaml")):
            r = s.skiff("apply", "-f", str(f))
            assert r.returncode == 0, f"{f.name}: {r.stdout}\n{r.stderr}"
        s.kubectl("apply", "-f", "-", input=OUTSIDER)
        for ns in ("team-alpha-1", "team-bravo-1"):
            s.kubectl("wait", "--for=condition=Ready", "ksvc/test-webapp", "-n", ns,
                      "--timeout=90s", timeout=100)
        for ns in ("team-alpha-1", "outsider"):
            s.kubectl("rollout", "status", "deployment/curl", "-n", ns, "--timeout=60s",
                      timeout=70)
        yield s
    finally:
        if s.proc is not None:
            s.stop()


def exec_curl(s: Skiff, *args: str, ns: str = "team-alpha-1") -> subprocess.CompletedProcess[str]:
    """`kubectl exec deployment/curl -n team-alpha-1 -it -- curl ...` as the guide writes it
    (kubectl says it cannot use a TTY here and goes on)."""
    return s.kubectl("exec", "deployment/curl", "-n", ns, "-it", "--", "curl", "-m", "10",
                     *args, check=False, timeout=30)


def external_url(s: Skiff, ns: str) -> str:
    return s.kubectl("get", "ksvc", "-n", ns, "test-webapp", "-o",
                     "custom-columns=:.status.url", "--no-headers").stdout.strip()


def test_same_tenant_by_cluster_local_name(mesh: Skiff) -> None:
    r = exec_curl(mesh, "-v", "http://test-webapp.team-alpha-1:80")
    assert r.returncode == 0, r.stderr
    assert "< HTTP/1.1 200 OK" in r.stderr and "< server: envoy" in r.stderr, r.stderr
    assert "< x-envoy-upstream-service-time:" in r.stderr
    assert r.stdout == "Hello Serverless!\n"


def test_same_tenant_by_external_url(mesh: Skiff) -> None:
    r = exec_curl(mesh, "-ik", external_url(mesh, "team-alpha-1"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("HTTP/2 200"), r.stdout
    assert r.stdout.endswith("Hello Serverless!\n")


def test_other_tenant_by_cluster_local_name_is_denied(mesh: Skiff) -> None:
    r = exec_curl(mesh, "-v", "http://test-webapp.team-bravo-1:80")
    assert "< HTTP/1.1 403 Forbidden" in r.stderr, r.stderr
    assert "< content-type: text/plain" in r.stderr and "< server: envoy" in r.stderr
    assert r.stdout == "RBAC: access denied"
    # the bravo pod's sidecar says which policies it looked at and who asked
    pod = mesh.kubectl("get", "pods", "-n", "team-bravo-1", "-l",
                       "serving.knative.dev/service=test-webapp", "-o",
                       "jsonpath={.items[0].metadata.name}").stdout
    log = mesh.kubectl("logs", "-n", "team-bravo-1", pod, "-c", "istio-proxy").stdout
    assert "403 rbac_access_denied source=cluster.local/ns/team-alpha-1/sa/default" in log, log
    assert "team-bravo-1/allow-from-knative-and-istio" in log


def test_other_tenant_by_external_url_is_allowed(mesh: Skiff) -> None:
    r = exec_curl(mesh, "-ik", external_url(mesh, "team-bravo-1"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("HTTP/2 200"), r.stdout
    assert r.stdout.endswith("Hello Serverless!\n")


def test_meshed_pods_are_ready_two_of_two(mesh: Skiff) -> None:
    out = mesh.kubectl("get", "pods", "-n", "team-alpha-1", "--no-headers").stdout
    rows = [line.split() for line in out.splitlines() if line.strip()]
    assert rows and all(row[1] == "2/2" for row in rows), out


def pod_ip(s: Skiff, ns: str, selector: str) -> str:
    return s.kubectl("get", "pods", "-n", ns, "-l", selector, "-o",
                     "jsonpath={.items[0].status.podIP}").stdout


def test_openssl_from_a_pod_sees_the_spiffe_certificate(mesh: Skiff) -> None:
    ip = pod_ip(mesh, "team-bravo-1", "serving.knative.dev/service=test-webapp")
    r = mesh.kubectl("exec", "deployment/curl", "-n", "outsider", "--", "sh", "-c",
                     f"echo | openssl s_client -connect {ip}:8080 -showcerts 2>/dev/null"
                     " | openssl x509 -noout -ext subjectAltName", check=False, timeout=30)
    assert "URI:spiffe://cluster.local/ns/team-bravo-1/sa/default" in r.stdout, r.stdout + r.stderr


def test_plaintext_from_outside_the_mesh_is_refused(mesh: Skiff) -> None:
    """A non-member namespace's pod is not injected (outsider is not in the roll) and speaks
    plaintext: STRICT resets it; the host cannot go around the sidecar either."""
    pod = mesh.kubectl_json("get", "pods", "-n", "outsider", "-l", "app=curl")["items"][0]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["curl"]
    ip = pod_ip(mesh, "team-bravo-1", "serving.knative.dev/service=test-webapp")
    r = exec_curl(mesh, "-s", f"http://{ip}:8080/", ns="outsider")
    assert r.returncode in (52, 56), (r.returncode, r.stdout, r.stderr)   # reset, no answer
    host = subprocess.run(["curl", "-s", "-m", "5", f"http://{ip}:8080/"], capture_output=True,
                          text=True, timeout=10)
    assert host.returncode in (52, 56) and host.stdout == ""


def test_a_meshed_pod_cannot_bypass_its_sidecar(mesh: Skiff) -> None:
    """The curl pod dialling the bravo pod's IP directly is still captured: its sidecar speaks
    mTLS with team-alpha-1's identity, and bravo's policy answers."""
    ip = pod_ip(mesh, "team-bravo-1", "serving.knative.dev/service=test-webapp")
    r = exec_curl(mesh, "-s", f"http://{ip}:8080/")
    assert r.stdout == "RBAC: access denied", (r.stdout, r.stderr)


def test_authz_check_agrees_with_the_traffic(mesh: Skiff) -> None:
    ok = mesh.skiff("authz", "check", "--from", "team-alpha-1/default", "--to",
                    "test-webapp.team-alpha-1", "-o", "json")
    deny = mesh.skiff("authz", "check", "--from", "team-alpha-1/default", "--to",
                      "test-webapp.team-bravo-1", "-o", "json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["allowed"] is True, ok.stdout + ok.stderr
    assert deny.returncode == 1 and json.loads(deny.stdout)["allowed"] is False, deny.stdout
