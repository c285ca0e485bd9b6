"""The ingress path for real: `skiff up --domain apps.openshift.example.com`, the seed's 1.3
certificates made with the real openssl, the Secret and Gateways applied with the real kubectl,
requests made with the real curl (HTTP/1.1 and --http2) and openssl s_client.

The data plane is exercised with pods and KIngress objects made directly (namespace gw-test), so
these tests do not depend on the serving control plane; one end-to-end test goes through a ksvc
(the seed's passthrough service) when the serving reconcilers are present.
"""

from __future__ import annotations

import collections
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiffproc import Skiff, new_skiff

DOMAIN = "apps.openshift.example.com"
NS = "gw-test"
SEEDS = Path(__file__).resolve().parents[1] / "golden" / "seeds"


def sh(*args: str, cwd: Path | None = None, check: bool = True,
       timeout: float = 30) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def make_certs(d: Path, root: str = "root", wildcard: str = "wildcard") -> None:
    """The seed's section 1.3, steps 1-3, verbatim (file names parameterised for rotation)."""
    sh("openssl", "req", "-x509", "-sha256", "-nodes", "-days", "365", "-newkey", "rsa:2048",
       "-subj", "/O=Example Inc./CN=example.com", "-keyout", f"{root}.key", "-out", f"{root}.crt",
       cwd=d)
    sh("openssl", "req", "-nodes", "-newkey", "rsa:2048",
       "-subj", f"/CN=*.{DOMAIN}/O=Example Inc.", "-keyout", f"{wildcard}.key",
       "-out", f"{wildcard}.csr", cwd=d)
    sh("openssl", "x509", "-req", "-days", "365", "-set_serial", "0", "-CA", f"{root}.crt",
       "-CAkey", f"{root}.key", "-in", f"{wildcard}.csr", "-out", f"{wildcard}.crt", cwd=d)


KNATIVE_SERVING = """
apiVersion: operator.knative.dev/v1beta1
kind: KnativeServing
metadata:
  name: knative-serving
  namespace: knative-serving
spec:
  ingress:
    istio:
      enabled: true
"""

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: gw-test
  labels:
    serving.knative.dev/revision: {rev}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: user-container
      image: docker.io/openshift/hello-openshift
      env:
        - name: RESPONSE
          value: "{response}"
      readinessProbe:
        tcpSocket:
          port: 8080
        periodSeconds: 1
"""


def kingress(name: str, splits: dict[str, int], passthrough: bool = False) -> str:
    ann = {"networking.knative.dev/ingress.class": "istio.ingress.networking.knative.dev"}
    if passthrough:
        ann["serving.knative.openshift.io/enablePassthrough"] = "true"
    paths = [{"splits": [{"serviceName": rev, "serviceNamespace": NS, "servicePort": 80,
                          "percent": pct, "appendHeaders": {"Knative-Serving-Revision": rev}}
                         for rev, pct in splits.items()]}]
    return json.dumps({
        "apiVersion": "networking.internal.knative.dev/v1alpha1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": NS, "annotations": ann},
        "spec": {"rules": [
            {"hosts": [f"{name}.{NS}", f"{name}.{NS}.svc", f"{name}.{NS}.svc.cluster.local"],
             "visibility": "ClusterLocal", "http": {"paths": paths}},
            {"hosts": [f"{name}-{NS}.{DOMAIN}"], "visibility": "ExternalIP",
             "http": {"paths": paths}}]}})


def gateway(name: str, ns: str, hosts: list[str], cred: str) -> str:
    return json.dumps({
        "apiVersion": "networking.istio.io/v1alpha3", "kind": "Gateway",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"istio": "ingressgateway"}, "servers": [{
            "port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": hosts,
            "tls": {"mode": "SIMPLE", "credentialName": cred}}]}})


class Mesh:
    def __init__(self, skiff: Skiff, certs: Path) -> None:
        self.s = skiff
        self.certs = certs
        self.http = skiff.ports["--http-port"]
        self.https = skiff.ports["--https-port"]
        self.local = skiff.ports["--local-gateway-port"]
        self.router_ca = skiff.home / "pki" / "router-ca.crt"

    def curl(self, host: str, *args: str, https: bool = True, cacert: Path | None = None,
             path: str = "/", check: bool = True) -> subprocess.CompletedProcess[str]:
        port = self.https if https else self.http
        scheme = "https" if https else "http"
        cmd = ["curl", "-sS", "--max-time", "10", "--resolve", f"{host}:{port}:127.0.0.1"]
        if https:
            cmd += ["--cacert", str(cacert or self.certs / "root.crt")]
        return sh(*cmd, *args, f"{scheme}://{host}:{port}{path}", check=check, timeout=30)

    def issuer(self, sni: str) -> str:
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{self.https}",
                            "-servername", sni], input="", capture_output=True, text=True,
                           timeout=20)
        return next((line for line in r.stdout.splitlines() if line.startswith("issuer=")), "")

    def condition(self, kind: str, name: str, ns: str) -> dict[str, str]:
        obj = self.s.kubectl_json("get", kind, name, "-n", ns)
        for c in (obj.get("status") or {}).get("conditions") or []:
            if c.get("type") == "Ready":
                return dict(c)
        return {}

    def wait_served(self, host: str, body: str, cacert: Path | None = None,
                    timeout: float = 30) -> None:
        def ok() -> bool:
            r = self.curl(host, cacert=cacert, check=False)
            return r.returncode == 0 and r.stdout == body
        self.s.wait_for(ok, timeout=timeout, what=f"{host} to answer {body!r}")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    base = tmp_path_factory.mktemp("gateway")
    certs = base / "certs"
    certs.mkdir()
    make_certs(certs)
    s = new_skiff(base)
    s.extra_args = ["--domain", DOMAIN]
    s.start()
    try:
        m = Mesh(s, certs)
        # seed 1.3 step 4, then the Gateways (1.3 step 3) and KnativeServing with Istio (step 5)
        s.kubectl("create", "-n", "istio-system", "secret", "tls", "wildcard-certs",
                  f"--key={certs / 'wildcard.key'}", f"--cert={certs / 'wildcard.crt'}")
        s.kubectl("apply", "-f", str(SEEDS / "1_3_gateways_http.yaml"))
        s.kubectl("apply", "-f", "-", input=KNATIVE_SERVING)
        s.kubectl("create", "namespace", NS)
        for name, rev, response in [("hello-1", "hello-00001", "Hello OpenShift!"),
                                    ("hello-2", "hello-00002", "Hello v2!")]:
            s.kubectl("apply", "-f", "-", input=POD.format(name=name, rev=rev, response=response))
        s.kubectl("apply", "-f", "-", input=kingress("hello", {"hello-00001": 100},
                                                      passthrough=True))
        s.kubectl("apply", "-f", "-", input=kingress("edge", {"hello-00001": 100}))
        s.kubectl("apply", "-f", "-", input=kingress("split", {"hello-00001": 50,
                                                               "hello-00002": 50}))
        s.kubectl("wait", "-n", NS, "--for=condition=Ready", "pod/hello-1", "pod/hello-2",
                  "--timeout=60s")
        yield m
    finally:
        if s.proc is not None:
            s.stop()


def test_gateways_and_ingresses_report_ready(mesh: Mesh) -> None:
    s = mesh.s
    s.kubectl("wait", "-n", "knative-serving", "--for=condition=Ready",
              "gateway/knative-ingress-gateway", "gateway/knative-local-gateway", "--timeout=30s")
    s.kubectl("wait", "-n", NS, "--for=condition=Ready", "ingresses.networking.internal.knative.dev",
              "--all", "--timeout=30s")
    st = s.kubectl_json("get", "ingresses.networking.internal.knative.dev", "hello", "-n", NS)["status"]
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "LoadBalancerReady": "True", "NetworkConfigured": "True", "Ready": "True"}
    assert st["publicLoadBalancer"]["ingress"][0]["domainInternal"] == \
        "istio-ingressgateway.istio-system.svc.cluster.local"
    assert st["privateLoadBalancer"]["ingress"][0]["domainInternal"] == \
        "knative-local-gateway.istio-system.svc.cluster.local"


def test_passthrough_serves_the_wildcard_certificate(mesh: Mesh) -> None:
    """The seed's verification: curl --cacert root.crt https://<ksvc host> prints the greeting."""
    host = f"hello-{NS}.{DOMAIN}"
    mesh.wait_served(host, "Hello OpenShift!\n")
    assert "O = Example Inc., CN = example.com" in mesh.issuer(host)


def test_edge_routes_use_the_router_certificate(mesh: Mesh) -> None:
    host = f"edge-{NS}.{DOMAIN}"
    mesh.wait_served(host, "Hello OpenShift!\n", cacert=mesh.router_ca)
    assert "CN = skiff-router-ca" in mesh.issuer(host)
    r = mesh.curl(host, check=False)                       # root.crt does not vouch for the router
    assert r.returncode == 60


@pytest.mark.parametrize("name,cacert", [("hello", None), ("edge", "router")])
def test_http2(mesh: Mesh, name: str, cacert: str | None) -> None:
    host = f"{name}-{NS}.{DOMAIN}"
    mesh.wait_served(host, "Hello OpenShift!\n", cacert=mesh.router_ca if cacert else None)
    r = mesh.curl(host, "--http2", "-i", cacert=mesh.router_ca if cacert else None)
    head, _, body = r.stdout.partition("\n\n")      # text mode: CRLF reads as LF
    assert head.startswith("HTTP/2 200")
    assert "server: istio-envoy" in head and "x-envoy-upstream-service-time:" in head
    assert body == "Hello OpenShift!\n"


def test_plain_http_and_envoy_headers(mesh: Mesh) -> None:
    host = f"hello-{NS}.{DOMAIN}"
    r = mesh.curl(host, "-i", https=False)
    head, _, body = r.stdout.partition("\n\n")
    lines = head.lower().splitlines()
    assert lines[0] == "http/1.1 200 ok"
    assert "server: istio-envoy" in lines
    assert any(x.startswith("x-envoy-upstream-service-time: ") for x in lines)
    assert body == "Hello OpenShift!\n"


def test_unknown_host_is_404(mesh: Mesh) -> None:
    for https, cacert in ((False, None), (True, mesh.router_ca)):
        r = mesh.curl(f"nope.{DOMAIN}", "-o", "/dev/null", "-w", "%{http_code}", https=https,
                      cacert=cacert)
        assert r.stdout == "404"


def test_local_gateway_serves_cluster_local_hosts_only(mesh: Mesh) -> None:
    def get(host: str) -> str:
        return sh("curl", "-s", "-o", "-", "-w", " %{http_code}", "-H", f"Host: {host}",
                  f"http://127.0.0.1:{mesh.local}/").stdout
    assert get(f"hello.{NS}.svc.cluster.local") == "Hello OpenShift!\n 200"
    assert get(f"hello.{NS}") == "Hello OpenShift!\n 200"
    assert get(f"hello-{NS}.{DOMAIN}") == " 404"


def test_split_50_50_over_400_requests(mesh: Mesh) -> None:
    host = f"split-{NS}.{DOMAIN}"                  # an edge route: the router's certificate
    mesh.s.wait_for(lambda: mesh.curl(host, cacert=mesh.router_ca, check=False).stdout in
                    ("Hello OpenShift!\n", "Hello v2!\n"), what="the split route")
    url = f"https://{host}:{mesh.https}/"
    r = sh("curl", "-sS", "--cacert", str(mesh.router_ca), "--resolve",
           f"{host}:{mesh.https}:127.0.0.1", *([url] * 400), timeout=120)
    seen = collections.Counter(r.stdout.splitlines())
    assert sum(seen.values()) == 400
    assert abs(seen["Hello OpenShift!"] - 200) <= 20 and abs(seen["Hello v2!"] - 200) <= 20


def test_no_ready_endpoint_is_503(mesh: Mesh) -> None:
    mesh.s.kubectl("apply", "-f", "-", input=kingress("idle", {"idle-00001": 100}))
    host = f"idle-{NS}.{DOMAIN}"

    def answer() -> str:
        return mesh.curl(host, "-w", " %{http_code}", https=False, check=False).stdout
    assert mesh.s.wait_for(lambda: answer() == "no healthy upstream 503", what="503")


def test_missing_secret_is_reported_and_other_hosts_still_served(mesh: Mesh) -> None:
    s = mesh.s
    s.kubectl("apply", "-f", "-", input=gateway("extra-gateway", "knative-serving",
                                                ["*.extra.example.com"], "missing-certs"))
    cond = s.wait_for(lambda: (c := mesh.condition("gateway", "extra-gateway", "knative-serving"))
                      .get("reason") == "CredentialMissing" and c, what="CredentialMissing")
    assert cond["status"] == "False"
    assert "secret istio-system/missing-certs not found" in cond["message"]
    mesh.wait_served(f"hello-{NS}.{DOMAIN}", "Hello OpenShift!\n")
    assert mesh.condition("gateway", "knative-ingress-gateway", "knative-serving")["status"] == "True"
    # the Secret arrives: the server is bound and the Gateway turns Ready
    s.kubectl("create", "-n", "istio-system", "secret", "tls", "missing-certs",
              f"--key={mesh.certs / 'wildcard.key'}", f"--cert={mesh.certs / 'wildcard.crt'}")
    s.wait_for(lambda: mesh.condition("gateway", "extra-gateway", "knative-serving")
               .get("status") == "True", what="extra-gateway Ready")
    s.kubectl("delete", "gateway", "extra-gateway", "-n", "knative-serving")


def test_conflicting_gateway_loses_to_the_older_one(mesh: Mesh) -> None:
    s = mesh.s
    time.sleep(1.1)   # creationTimestamps have one-second resolution
    s.kubectl("apply", "-f", "-", input=gateway("rogue", "istio-system", ["*"], "wildcard-certs"))
    cond = s.wait_for(lambda: (c := mesh.condition("gateway", "rogue", "istio-system"))
                      .get("reason") == "Conflict" and c, what="Conflict")
    assert "knative-serving/knative-ingress-gateway" in cond["message"]
    mesh.wait_served(f"hello-{NS}.{DOMAIN}", "Hello OpenShift!\n")
    s.kubectl("delete", "gateway", "rogue", "-n", "istio-system")


def test_certificate_rotation(mesh: Mesh) -> None:
    """A new wildcard certificate from another root replaces the Secret's: new connections get it."""
    s = mesh.s
    make_certs(mesh.certs, root="root2", wildcard="wildcard2")
    host = f"hello-{NS}.{DOMAIN}"
    mesh.wait_served(host, "Hello OpenShift!\n")
    secret = s.kubectl("create", "-n", "istio-system", "secret", "tls", "wildcard-certs",
                       f"--key={mesh.certs / 'wildcard2.key'}",
                       f"--cert={mesh.certs / 'wildcard2.crt'}", "--dry-run=client",
                       "-o", "yaml").stdout
    s.kubectl("apply", "-f", "-", input=secret)
    mesh.wait_served(host, "Hello OpenShift!\n", cacert=mesh.certs / "root2.crt")
    # the old root no longer vouches: 60, or 35 when OpenSSL picks root.crt by its (same)
    # subject and the signature check fails
    assert mesh.curl(host, check=False).returncode in (35, 60)
    # and back, so that the tests after this one see the seed's certificate
    s.kubectl("apply", "-f", "-", input=s.kubectl(
        "create", "-n", "istio-system", "secret", "tls", "wildcard-certs",
        f"--key={mesh.certs / 'wildcard.key'}", f"--cert={mesh.certs / 'wildcard.crt'}",
        "--dry-run=client", "-o", "yaml").stdout)
    mesh.wait_served(host, "Hello OpenShift!\n")


def test_ksvc_passthrough_end_to_end(mesh: Mesh) -> None:
    """Seed 1.3 verification through a real ksvc: curl --cacert root.crt https://hello-default..."""
    s = mesh.s
    s.kubectl("apply", "-f", str(SEEDS / "1_3_ksvc_passthrough.yaml"))
    s.kubectl("wait", "--for=condition=Ready", "ksvc/hello", "--timeout=60s")
    kin = s.kubectl_json("get", "ingresses.networking.internal.knative.dev", "hello")
    assert kin["metadata"]["annotations"]["serving.knative.openshift.io/enablePassthrough"] == "true"
    host = f"hello-default.{DOMAIN}"
    mesh.wait_served(host, "Hello OpenShift!\n")
    assert "O = Example Inc., CN = example.com" in mesh.issuer(host)
