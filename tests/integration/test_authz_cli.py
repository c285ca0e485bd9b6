"""`skiff authz check|matrix` against a real `skiff up` (loopback pod network): the guide's
chapter 2 policies applied with the real kubectl, a plain Service with a Deployment's pods in
a namespace of each tenant, and the real CLI as a subprocess reading the live API: allow in
the tenant, deny across tenants (exit 1, 403), the ingress gateway allowed, a policy file not
applied yet (-f) replacing the live one, the guide's test-webapp Knative Services, a missing
service (exit 2, one line), and the matrix. Every wait has a deadline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiffproc import Skiff, new_skiff

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "tenant-isolation"
TENANTS = ("team-alpha-1", "team-alpha-2", "team-bravo-1", "team-bravo-2")


def web(ns: str) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web, tenant: "{ns}"}}
      annotations: {{sidecar.istio.io/inject: "true"}}
    spec:
      containers:
      - name: web
        image: docker.io/openshift/hello-openshift
        ports:
        - {{name: http, containerPort: 8080}}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {ns}
spec:
  selector: {{app: web}}
  ports:
  - {{name: http, port: 80, targetPort: http}}
"""


@pytest.fixture(scope="module")
def skiff(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Skiff]:
    s = new_skiff(tmp_path_factory.mktemp("authz"))
    s.extra_args = ["--pod-network", "loopback"]
    s.start(timeout=60)
    try:
        # the example's namespaces, SMCP and member roll through skiff's own apply
        r = s.skiff("apply", "-f", str(EXAMPLES / "00-smmr.yaml"))
        assert r.returncode == 0, r.stdout + r.stderr
        for f in ("01-knative-default-authz-policies.yaml", "02-team-alpha.yaml",
                  "03-team-bravo.yaml", "04-test-webapp.yaml"):
            s.kubectl("apply", "-f", str(EXAMPLES / f))
        for ns in ("team-alpha-1", "team-bravo-1"):
            s.kubectl("apply", "-f", "-", input=web(ns))

        def pods() -> bool:
            return all(s.kubectl("get", "pods", "-n", ns, "-l", "app=web", "-o", "name",
                                 check=False).stdout.strip()
                       for ns in ("team-alpha-1", "team-bravo-1"))
        s.wait_for(pods, timeout=60, interval=0.3, what="the web pods")
        yield s
    finally:
        if s.proc is not None:
            s.stop()


def test_allow_in_the_tenant(skiff: Skiff) -> None:
    r = skiff.skiff("authz", "check", "--from", "team-alpha-1/default", "--to", "web.team-alpha-1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == ("ALLOW team-alpha-1/default -> web.team-alpha-1 GET / : allowed by ALLOW "
                        "policy team-alpha-1/allow-from-knative-and-istio rule 0")
    assert lines[1] == "policy: team-alpha-1/allow-from-knative-and-istio rule: 0"


def test_deny_across_tenants(skiff: Skiff) -> None:
    r = skiff.skiff("authz", "check", "--from", "team-alpha-1/default", "--to", "web.team-bravo-1",
                    "-o", "json")
    assert r.returncode == 1, r.stderr
    d = json.loads(r.stdout)
    assert (d["verdict"], d["status"], d["policy"]) == ("DENY", 403, None)
    assert d["reason"].startswith("denied: no ALLOW policy matched (2 select the workload: "
                                  "team-bravo-1/allow-from-knative-and-istio")
    # the live pod's labels and the named targetPort resolved in its container
    assert d["destination"]["workloadFrom"].startswith("pod web-")
    assert d["destination"]["workload"]["labels"]["tenant"] == "team-bravo-1"
    assert d["request"]["port"] == 8080 and d["request"]["host"] == "web.team-bravo-1"


def test_ingress_gateway_is_allowed(skiff: Skiff) -> None:
    r = skiff.skiff("authz", "check", "--via", "ingress", "--to", "web.team-bravo-1",
                    "--host", "web-team-bravo-1.apps.example.com")
    assert r.returncode == 0, r.stderr
    assert "team-bravo-1/allow-from-knative-and-istio rule 0" in r.stdout


def test_a_file_not_applied_replaces_the_live_policy(skiff: Skiff, tmp_path: Path) -> None:
    f = tmp_path / "open.yaml"
    f.write_text("apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\nmetadata:\n"
                 "  name: allow-from-knative-and-istio\n  namespace: team-bravo-1\nspec:\n"
                 "  rules:\n  - from:\n    - source:\n        namespaces: [team-alpha-1]\n")
    r = skiff.skiff("authz", "check", "-f", str(f), "--from", "team-alpha-1/default",
                    "--to", "web.team-bravo-1")
    assert r.returncode == 0, r.stdout + r.stderr
    # nothing was applied: the live answer is unchanged
    r = skiff.skiff("authz", "check", "--from", "team-alpha-1/default", "--to", "web.team-bravo-1")
    assert r.returncode == 1


def test_knative_service_by_local_name_and_external_url(skiff: Skiff) -> None:
    for to, code in (("test-webapp.team-alpha-1", 0), ("test-webapp.team-bravo-1", 1)):
        r = skiff.skiff("authz", "check", "--from", "team-alpha-1/default", "--to", to,
                        "-o", "json")
        assert r.returncode == code, r.stdout + r.stderr
        d = json.loads(r.stdout)
        assert d["destination"]["kind"] == "KnativeService" and d["request"]["port"] == 8012
    r = skiff.skiff("authz", "check", "--via", "ingress", "--to", "test-webapp.team-bravo-1")
    assert r.returncode == 0, r.stdout + r.stderr


def test_missing_service_is_exit_2_in_one_line(skiff: Skiff) -> None:
    r = skiff.skiff("authz", "check", "--from", "team-alpha-1/default",
                    "--to", "nothing.team-bravo-1")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == "error: service nothing not found in namespace team-bravo-1"


def test_matrix(skiff: Skiff) -> None:
    r = skiff.skiff("authz", "matrix", "team-alpha-1", "team-bravo-1", "--ingress", "-o", "json")
    assert r.returncode == 0, r.stderr
    cells = {(e["from"], e["to"]): (e["verdict"], e.get("policy")) for e in json.loads(r.stdout)}
    gw = "ingress (istio-system/istio-ingressgateway-service-account)"
    want = {}
    for svc in ("test-webapp", "web"):
        want.update({
            ("team-alpha-1/default", f"{svc}.team-alpha-1"): "ALLOW",
            ("team-alpha-1/default", f"{svc}.team-bravo-1"): "DENY",
            ("team-bravo-1/default", f"{svc}.team-alpha-1"): "DENY",
            ("team-bravo-1/default", f"{svc}.team-bravo-1"): "ALLOW",
            (gw, f"{svc}.team-alpha-1"): "ALLOW",
            (gw, f"{svc}.team-bravo-1"): "ALLOW",
        })
    assert {k: v[0] for k, v in cells.items()} == want
    r = skiff.skiff("authz", "matrix", "team-alpha-1", "team-bravo-1")
    assert r.returncode == 0, r.stderr
    assert "web.team-alpha-1" in r.stdout and "DENY" in r.stdout
