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
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiffproc import Skiff, new_skiff, wait_pod_network_free

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE = EXAMPLES / "tenant-isolation"
SETUP = EXAMPLES / "serving-mesh"      # chapter 1's integration, the prerequisite of chapter 2
DOMAIN = "apps.openshift.example.com"

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
    tmp = tmp_path_factory.mktemp("mesh")
    s = new_skiff(tmp)
    s.extra_args = ["--pod-network", "namespaces", "--domain", DOMAIN]
    wait_pod_network_free()
    s.start()
    try:
        # 1.3 and 1.4: the wildcard certificate, the gateways, Knative Serving on Istio
        subprocess.run(["bash", str(SETUP / "certs.sh")], cwd=tmp, env=s.env(), check=True,
                       capture_output=True, timeout=60)
        for f in ("02-istio-knative-gateways.yaml", "03-knative-serving-config.yaml"):
            s.kubectl("apply", "-f", str(SETUP / f))
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


def revision_pod(s: Skiff, ns: str) -> str:
    return s.kubectl("get", "pods", "-n", ns, "-l", "serving.knative.dev/service=test-webapp",
                     "-o", "jsonpath={.items[0].metadata.name}").stdout


def activator_log(s: Skiff) -> str:
    """The activator's sidecar access log (it has no pod: <home>/activator-istio-proxy.log)."""
    return (s.home / "activator-istio-proxy.log").read_text()


def test_other_tenant_by_cluster_local_name_is_denied(mesh: Skiff) -> None:
    # one pod and the default target-burst-capacity: the activator is in the path (SKS Proxy),
    # so, as on a cluster, the activator's policies deny it before it reaches bravo's pod
    assert mesh.kubectl_json("get", "sks", "-n", "team-bravo-1")["items"][0]["spec"][
        "mode"] == "Proxy"
    r = exec_curl(mesh, "-v", "http://test-webapp.team-bravo-1:80")
    assert "< HTTP/1.1 403 Forbidden" in r.stderr, r.stderr
    assert "< content-type: text/plain" in r.stderr and "< server: envoy" in r.stderr
    assert r.stdout == "RBAC: access denied"
    # the activator's sidecar says who asked and which policies it looked at
    log = activator_log(mesh)
    assert ("403 rbac_access_denied source=cluster.local/ns/team-alpha-1/sa/default "
            "host=test-webapp.team-bravo-1") in log, log
    assert "knative-serving/allow-team-bravo-to-activator" in log, log


def test_the_activator_forwards_with_its_own_identity(mesh: Skiff) -> None:
    # the same tenant's request goes through the activator: the pod's sidecar sees the
    # activator's SPIFFE ID, which the tenant's allow-from-knative-and-istio admits
    r = exec_curl(mesh, "-s", "http://test-webapp.team-alpha-1:80")
    assert r.stdout == "Hello Serverless!\n", r.stderr
    assert "allowed source=cluster.local/ns/team-alpha-1/sa/default" in activator_log(mesh)
    pod_log = mesh.kubectl("logs", "-n", "team-alpha-1", revision_pod(mesh, "team-alpha-1"),
                           "-c", "istio-proxy").stdout
    assert "allowed source=cluster.local/ns/knative-serving/sa/activator" in pod_log, pod_log
    assert "team-alpha-1/allow-from-knative-and-istio" in pod_log
    # the activator's access log is the home's, private like every file in it
    assert (mesh.home / "activator-istio-proxy.log").stat().st_mode & 0o077 == 0


def test_other_tenant_by_external_url_is_allowed(mesh: Skiff) -> None:
    r = exec_curl(mesh, "-ik", external_url(mesh, "team-bravo-1"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("HTTP/2 200"), r.stdout
    assert r.stdout.endswith("Hello Serverless!\n")


def test_meshed_pods_are_ready_two_of_two(mesh: Skiff) -> None:
    # the curl pod: app + istio-proxy; a revision pod: user-container, queue-proxy, istio-proxy
    out = mesh.kubectl("get", "pods", "-n", "team-alpha-1", "--no-headers").stdout
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}
    want = {name: "3/3" if name.startswith("test-webapp-") else "2/2" for name in rows}
    assert rows and rows == want, out


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


V1_DENY = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-v1-path, namespace: team-alpha-1}
spec:
  selector: {matchLabels: {serving.knative.dev/service: test-webapp}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/v1-denied*"]}}]}]
"""

V1_BAD = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: bad-v1, namespace: team-alpha-1}
spec:
  rules: [{when: [{key: source.foo, values: [a]}]}]
"""


def test_security_istio_io_v1_is_served_and_enforced_as_v1beta1(mesh: Skiff) -> None:
    """Istio 1.22+'s security.istio.io/v1: discovery shows it (preferred), a v1 policy is
    applied, read at both versions, enforced by the sidecar as a v1beta1 one is, and bad v1
    input gets Istio's message."""
    versions = mesh.kubectl("api-versions").stdout.split()
    assert {"security.istio.io/v1", "security.istio.io/v1beta1"} <= set(versions), versions
    res = mesh.kubectl("api-resources", "--api-group=security.istio.io", "--no-headers").stdout
    rows = {line.split()[0]: line.split() for line in res.splitlines() if line.strip()}
    assert "security.istio.io/v1" in rows["authorizationpolicies"], res
    assert "security.istio.io/v1" in rows["peerauthentications"], res
    mesh.kubectl("apply", "-f", "-", input=V1_DENY)
    for v in ("v1", "v1beta1"):
        got = mesh.kubectl_json("get", f"authorizationpolicies.{v}.security.istio.io",
                                "deny-v1-path", "-n", "team-alpha-1")
        assert got["apiVersion"] == f"security.istio.io/{v}" and got["spec"]["action"] == "DENY"
    listed = mesh.kubectl("get", "authorizationpolicies.v1.security.istio.io", "-n",
                          "team-alpha-1", "-o", "name").stdout.split()
    assert "authorizationpolicy.security.istio.io/deny-v1-path" in listed, listed
    mesh.wait_for(lambda: exec_curl(mesh, "-s", "http://test-webapp.team-alpha-1:80/v1-denied")
                  .stdout == "RBAC: access denied", 20, what="the v1 DENY policy to apply")
    ok = exec_curl(mesh, "-s", "http://test-webapp.team-alpha-1:80/")
    assert ok.stdout == "Hello Serverless!\n", (ok.returncode, ok.stderr)
    pod = mesh.kubectl("get", "pods", "-n", "team-alpha-1", "-l",
                       "serving.knative.dev/service=test-webapp", "-o",
                       "jsonpath={.items[0].metadata.name}").stdout
    log = mesh.kubectl("logs", "-n", "team-alpha-1", pod, "-c", "istio-proxy").stdout
    assert "denied by DENY policy team-alpha-1/deny-v1-path rule 0" in log, log
    bad = mesh.kubectl("apply", "-f", "-", input=V1_BAD, check=False)
    assert bad.returncode != 0
    assert ("invalid policy bad-v1.team-alpha-1: invalid `value` for `key` source.foo: "
            "unknown attribute: source.foo") in bad.stderr, bad.stderr
    mesh.kubectl("delete", "authorizationpolicies.v1.security.istio.io", "deny-v1-path", "-n",
                 "team-alpha-1")
    mesh.wait_for(lambda: exec_curl(mesh, "-s", "http://test-webapp.team-alpha-1:80/v1-denied")
                  .stdout == "Hello Serverless!\n", 20, what="the v1 policy to be gone")


ECHO_SERVER = """
import asyncio
async def echo(r, w):
    if w.get_extra_info("sockname")[1] == 9003:      # a server-first protocol: it speaks first
        w.write(b"220 ready\\n")
    while data := await r.read(65536):
        w.write(b"hello " + data)
        await w.drain()
    w.close()
async def main():
    for port in (9000, 9001, 9002, 9003):
        await asyncio.start_server(echo, "0.0.0.0", port)
    await asyncio.Event().wait()
asyncio.run(main())
"""

def foo_app(name: str, script: str, ready_port: int, *args: str) -> str:
    """Namespace foo, a mesh member by its ServiceMeshMember, and a meshed Deployment `name`
    whose container runs `script` (with `args`) in this Python, ready once `ready_port`
    accepts."""
    command = json.dumps([sys.executable, "-c", script, *args])
    return f"""
apiVersion: v1
kind: Namespace
metadata: {{name: foo}}
---
apiVersion: maistra.io/v1
kind: ServiceMeshMember
metadata: {{name: default, namespace: foo}}
spec:
  controlPlaneRef: {{name: basic, namespace: istio-system}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: foo}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}}}
      annotations: {{sidecar.istio.io/inject: "true"}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: {name}
          image: docker.io/library/busybox
          command: {command}
          readinessProbe: {{tcpSocket: {{port: {ready_port}}}, periodSeconds: 1}}
"""


TCP_ECHO = foo_app("tcp-echo", ECHO_SERVER, 9000) + """---
apiVersion: v1
kind: Service
metadata: {name: tcp-echo, namespace: foo}
spec:
  selector: {app: tcp-echo}
  ports:
    - {name: tcp, port: 9000, targetPort: 9000}
    - {name: tcp-other, port: 9001, targetPort: 9001}
    - {name: tcp-greeting, port: 9003, targetPort: 9003}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: sleep, namespace: foo}
spec:
  replicas: 1
  selector: {matchLabels: {app: sleep}}
  template:
    metadata:
      labels: {app: sleep}
      annotations: {sidecar.istio.io/inject: "true"}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - {name: sleep, image: docker.io/curlimages/curl, command: [sleep, infinity]}
"""

# `echo "port N" | nc HOST N` of the task, as a Python client (the host has no nc): one line
# back, or "connection rejected"
NC = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    s = socket.create_connection((host, port), 5)
    s.settimeout(5)
    if len(sys.argv) < 4:
        s.sendall(b"port %d\\n" % port)
    line = s.makefile("rb").readline().decode().strip()
    print(line or "connection rejected")
except OSError as e:
    print("connection rejected", type(e).__name__)
"""


def nc(s: Skiff, host: str, port: int, *extra: str) -> str:
    r = s.kubectl("exec", "deployment/sleep", "-n", "foo", "--", sys.executable, "-c",
                  NC, host, str(port), *extra, check=False, timeout=30)
    return r.stdout.strip()


def tcp_policy(action: str, operation: str) -> str:
    return (f"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
            f"metadata: {{name: tcp-policy, namespace: foo}}\n"
            f"spec:\n  selector: {{matchLabels: {{app: tcp-echo}}}}\n  action: {action}\n"
            f"  rules: [{{to: [{{operation: {operation}}}]}}]\n")


def test_tcp_through_the_mesh_and_authorization_on_tcp(mesh: Skiff) -> None:
    """istio.io's "TCP Traffic" task (authz-tcp) between two meshed pods under STRICT mTLS, in
    a namespace of its own (foo, a member by its ServiceMeshMember): a TCP echo server on
    9000, 9001, 9002 (9002 not in its Service, reached by the pod IP); the
    caller's sidecar wraps the stream in mTLS, the server's proxies it as TCP and decides
    at connection time: ALLOW by port; an ALLOW rule with `methods` ignored on TCP; a DENY
    rule with only `methods` denying every TCP port; DENY methods+port denying that port
    only. Denied connections are reset and the server's sidecar logs policy and rule. A
    server-first protocol (9003 speaks first) gets through without a client byte."""
    mesh.kubectl("apply", "-f", "-", input=TCP_ECHO)
    for d in ("tcp-echo", "sleep"):
        mesh.kubectl("rollout", "status", f"deployment/{d}", "-n", "foo", "--timeout=60s",
                     timeout=70)
    ip = pod_ip(mesh, "foo", "app=tcp-echo")
    mesh.wait_for(lambda: nc(mesh, "tcp-echo", 9000) == "hello port 9000", 20,
                  what="tcp-echo through the mesh")
    assert nc(mesh, "tcp-echo", 9001) == "hello port 9001"
    assert nc(mesh, ip, 9002) == "hello port 9002"
    assert nc(mesh, "tcp-echo", 9003, "--silent") == "220 ready"   # the server speaks first

    def expect(port: int, want: str, host: str = "tcp-echo") -> str:
        return str(mesh.wait_for(lambda: (got := nc(mesh, host, port)).startswith(want) and got,
                                 20, what=f"port {port} to answer {want!r}"))
    ok = "hello port {}".format
    rejected = "connection rejected"
    # ALLOW ports 9000 and 9001: 9002 is rejected, though its Service does not declare it
    mesh.kubectl("apply", "-f", "-", input=tcp_policy("ALLOW", '{ports: ["9000", "9001"]}'))
    # reset by the server's sidecar, not left to time out
    assert expect(9002, rejected, ip) in (rejected, f"{rejected} ConnectionResetError")
    assert nc(mesh, "tcp-echo", 9000) == ok(9000) and nc(mesh, "tcp-echo", 9001) == ok(9001)
    # ALLOW methods GET on 9000: an HTTP-only field makes the rule invalid for TCP
    mesh.kubectl("apply", "-f", "-", input=tcp_policy("ALLOW", '{methods: [GET], ports: ["9000"]}'))
    expect(9000, rejected)
    assert nc(mesh, "tcp-echo", 9001).startswith(rejected)
    # DENY methods GET: denies all TCP traffic
    mesh.kubectl("apply", "-f", "-", input=tcp_policy("DENY", "{methods: [GET]}"))
    expect(9001, rejected)
    assert nc(mesh, "tcp-echo", 9000).startswith(rejected)
    # DENY methods GET on 9000: 9000 denied, 9001 allowed
    mesh.kubectl("apply", "-f", "-", input=tcp_policy("DENY", '{methods: [GET], ports: ["9000"]}'))
    expect(9001, ok(9001))
    assert nc(mesh, "tcp-echo", 9000).startswith(rejected)
    pod = mesh.kubectl("get", "pods", "-n", "foo", "-l", "app=tcp-echo", "-o",
                       "jsonpath={.items[0].metadata.name}").stdout
    log = mesh.kubectl("logs", "-n", "foo", pod, "-c", "istio-proxy").stdout
    assert '"TCP" rbac_access_denied source=cluster.local/ns/foo/sa/default' in log, log
    assert "port=9000: denied by DENY policy foo/tcp-policy rule 0" in log, log
    mesh.kubectl("delete", "authorizationpolicy", "tcp-policy", "-n", "foo")
    expect(9000, ok(9000))


TLS_SERVER = """
import asyncio, ssl, sys
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
async def echo(r, w):
    while data := await r.read(65536):
        w.write(b"tls " + data)
        await w.drain()
    w.close()
async def main():
    await asyncio.start_server(echo, "0.0.0.0", 9443, ssl=ctx)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def tls_app(cert: Path, key: Path) -> str:
    return foo_app("tls-app", TLS_SERVER, 9443, str(cert), str(key)) + """---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: tls-app, namespace: foo}
spec:
  selector: {matchLabels: {app: tls-app}}
  mtls: {mode: STRICT}
  portLevelMtls: {"9443": {mode: PERMISSIVE}}
"""


def tls_echo(ip: str) -> str:
    """One line through the app's own TLS from the host (outside the mesh, no client
    certificate): its answer, or how the connection ended."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((ip, 9443), 5) as raw, \
                ctx.wrap_socket(raw) as s:
            s.settimeout(5)
            s.sendall(b"hi\n")
            return s.recv(100).decode().strip()
    except (OSError, ssl.SSLError) as e:
        return f"failed {type(e).__name__}"


def test_the_app_s_own_tls_passes_through_a_permissive_port(mesh: Skiff) -> None:
    """A port PeerAuthentication makes PERMISSIVE (the rest of the pod STRICT) lets a client
    outside the mesh speak TLS to the app itself: the sidecar sees a ClientHello without the
    mesh's ALPN, decides on TCP attributes and proxies the bytes as they are (within the
    pod's cap on TCP connections); a DENY policy on that port resets it."""
    key, cert = mesh.home / "tls-app.key", mesh.home / "tls-app.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=tls-app", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    mesh.kubectl("apply", "-f", "-", input=tls_app(cert, key))
    mesh.kubectl("rollout", "status", "deployment/tls-app", "-n", "foo", "--timeout=60s",
                 timeout=70)
    ip = pod_ip(mesh, "foo", "app=tls-app")
    mesh.wait_for(lambda: tls_echo(ip) == "tls hi", 20, what="the app's TLS through its sidecar")
    deny = ("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
            "metadata: {name: deny-9443, namespace: foo}\n"
            "spec:\n  selector: {matchLabels: {app: tls-app}}\n  action: DENY\n"
            '  rules: [{to: [{operation: {ports: ["9443"]}}]}]\n')
    mesh.kubectl("apply", "-f", "-", input=deny)
    mesh.wait_for(lambda: tls_echo(ip).startswith("failed"), 20, what="the DENY on 9443")
    pod = mesh.kubectl("get", "pods", "-n", "foo", "-l", "app=tls-app", "-o",
                       "jsonpath={.items[0].metadata.name}").stdout
    log = mesh.kubectl("logs", "-n", "foo", pod, "-c", "istio-proxy").stdout
    assert "port=9443: denied by DENY policy foo/deny-9443 rule 0" in log, log
    mesh.kubectl("delete", "authorizationpolicy", "deny-9443", "-n", "foo")
    mesh.wait_for(lambda: tls_echo(ip) == "tls hi", 20, what="the DENY to be gone")


def test_authz_check_agrees_with_the_traffic(mesh: Skiff) -> None:
    ok = mesh.skiff("authz", "check", "--from", "team-alpha-1/default", "--to",
                    "test-webapp.team-alpha-1", "-o", "json")
    deny = mesh.skiff("authz", "check", "--from", "team-alpha-1/default", "--to",
                      "test-webapp.team-bravo-1", "-o", "json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["allowed"] is True, ok.stdout + ok.stderr
    assert deny.returncode == 1 and json.loads(deny.stdout)["allowed"] is False, deny.stdout
    # where the traffic is denied too: the activator fronts bravo's revision (SKS Proxy)
    assert json.loads(deny.stdout)["decidedAt"] == "activator", deny.stdout
    assert json.loads(ok.stdout)["hops"][0]["policy"] == \
        "knative-serving/allow-team-alpha-to-activator", ok.stdout


def _client_cert(tmp: Path, name: str, spiffe: str, issuer: tuple[bytes, bytes] | None,
                 expired: bool = False) -> tuple[Path, Path]:
    """A client certificate with a SPIFFE URI SAN, signed by `issuer` (cert, key PEM) or by a
    CA of its own; files a pod can read (pods see the host's file system)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    if issuer is None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "elsewhere")])
        ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
                   .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(hours=1))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                   .sign(ca_key, hashes.SHA256()))
    else:
        ca_cert = x509.load_pem_x509_certificate(issuer[0])
        ca_key = serialization.load_pem_private_key(issuer[1], None)  # type: ignore[assignment]
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = ((now - dt.timedelta(days=2), now - dt.timedelta(days=1)) if expired
                  else (now - dt.timedelta(minutes=5), now + dt.timedelta(hours=1)))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(spiffe)]), True)
            .sign(ca_key, hashes.SHA256()))
    crt, k = tmp / f"{name}.crt", tmp / f"{name}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    os.chmod(tmp, 0o755)
    os.chmod(crt, 0o644)
    os.chmod(k, 0o644)
    return crt, k


def test_client_certificates_that_are_not_the_mesh_s_are_refused_with_the_reason(
        mesh: Skiff, tmp_path: Path) -> None:
    """From outside the mesh with curl --cert: a certificate of another CA and an expired one
    of the mesh's CA fail the handshake (the sidecar's log says why); a valid one of the
    mesh's CA gets through the handshake, and the policy answers for its identity."""
    secret = mesh.kubectl_json("get", "secret", "istio-ca-secret", "-n", "istio-system")
    import base64
    ca = (base64.b64decode(secret["data"]["ca-cert.pem"]),
          base64.b64decode(secret["data"]["ca-key.pem"]))
    spiffe = "spiffe://cluster.local/ns/outsider/sa/default"
    ip = pod_ip(mesh, "team-bravo-1", "serving.knative.dev/service=test-webapp")
    pod = mesh.kubectl("get", "pods", "-n", "team-bravo-1", "-l",
                       "serving.knative.dev/service=test-webapp", "-o",
                       "jsonpath={.items[0].metadata.name}").stdout
    for name, issuer, expired in (("other-ca", None, False), ("expired", ca, True)):
        crt, key = _client_cert(tmp_path, name, spiffe, issuer, expired)
        r = exec_curl(mesh, "-sk", "--cert", str(crt), "--key", str(key),
                      f"https://{ip}:8080/", ns="outsider")
        assert r.returncode in (35, 52, 56) and r.stdout == "", (name, r.returncode, r.stderr)
    log = mesh.kubectl("logs", "-n", "team-bravo-1", pod, "-c", "istio-proxy").stdout
    assert "inbound connection refused" in log and "CERTIFICATE" in log.upper(), log
    assert "expired" in log.lower(), log
    crt, key = _client_cert(tmp_path, "valid", spiffe, ca)
    r = exec_curl(mesh, "-sk", "--cert", str(crt), "--key", str(key), f"https://{ip}:8080/",
                  ns="outsider")
    assert r.stdout == "RBAC: access denied", (r.returncode, r.stdout, r.stderr)


ECHO = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: team-alpha-1}
spec:
  replicas: 1
  selector: {matchLabels: {app: echo}}
  template:
    metadata:
      labels: {app: echo}
      annotations: {sidecar.istio.io/inject: "true"}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: echo
          image: docker.io/openshift/hello-openshift
          env: [{name: RESPONSE, value: "echo"}]
          readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: team-alpha-1}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: 8080}]
"""

DISABLE_TLS = """
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: echo-plain, namespace: team-alpha-1}
spec:
  host: echo.team-alpha-1.svc.cluster.local
  trafficPolicy: {tls: {mode: DISABLE}}
"""


def test_a_service_by_its_cluster_ip_and_destination_rule_tls(mesh: Skiff) -> None:
    """A plain Service in the mesh: its ClusterIP is resolved by the caller's sidecar (mTLS to
    the endpoint); a DestinationRule with tls DISABLE makes the caller speak plaintext, which
    the STRICT destination resets, so the caller's sidecar answers Envoy's 503, as Istio's
    does; without the rule, mTLS again."""
    mesh.kubectl("apply", "-f", "-", input=ECHO)
    mesh.kubectl("rollout", "status", "deployment/echo", "-n", "team-alpha-1",
                 "--timeout=60s", timeout=70)
    mesh.wait_for(lambda: exec_curl(mesh, "-s", "http://echo").stdout == "echo\n", 20,
                  what="echo through its ClusterIP")
    mesh.kubectl("apply", "-f", "-", input=DISABLE_TLS)
    refused = mesh.wait_for(
        lambda: (r := exec_curl(mesh, "-s", "-i", "http://echo")).stdout.startswith(
            "HTTP/1.1 503") and r, 20, what="plaintext to be refused")
    assert "upstream connect error or disconnect/reset before headers" in refused.stdout
    mesh.kubectl("delete", "destinationrule", "echo-plain", "-n", "team-alpha-1")
    mesh.wait_for(lambda: exec_curl(mesh, "-s", "http://echo").stdout == "echo\n", 20,
                  what="mTLS again")


def test_a_revision_at_zero_wakes_up_in_the_mesh(mesh: Skiff) -> None:
    """Scale to zero under the mesh: with short windows the idle revisions go to zero pods;
    a request through the caller's sidecar (held by the activator until the new pod's
    sidecar is up) still gets the tenant's answer, and so does one through the gateway."""
    mesh.kubectl("patch", "knativeserving", "knative-serving", "-n", "knative-serving",
                 "--type=merge", "-p", json.dumps({"spec": {"config": {"autoscaler": {
                     "stable-window": "6s", "scale-to-zero-grace-period": "6s"}}}}))

    def replicas(ns: str) -> str:
        # the Deployment's: a pod scaled away lingers while its sidecar drains (the guide's
        # SMCP sets 35 s), but it is at zero from the moment its Deployment says 0
        return mesh.kubectl("get", "deployments", "-n", ns, "-l",
                            "serving.knative.dev/service=test-webapp", "-o",
                            "jsonpath={.items[*].spec.replicas}").stdout

    def sks_proxy(ns: str) -> bool:
        return mesh.kubectl("get", "sks", "-n", ns, "-o",
                            "jsonpath={.items[*].spec.mode}").stdout == "Proxy"
    mesh.wait_for(lambda: all(replicas(ns) == "0" and sks_proxy(ns)
                              for ns in ("team-alpha-1", "team-bravo-1")), 90,
                  interval=0.5, what="both test-webapps at zero")
    same = exec_curl(mesh, "-s", "-m", "30", "http://test-webapp.team-alpha-1:80")
    assert same.stdout == "Hello Serverless!\n", (same.returncode, same.stderr)
    other = exec_curl(mesh, "-s", "-m", "30", "http://test-webapp.team-bravo-1:80")
    assert other.stdout == "RBAC: access denied", (other.returncode, other.stderr)
    # the activator's policies denied it before the activator took it: nothing woke up
    assert replicas("team-bravo-1") == "0"
    ext = exec_curl(mesh, "-sk", "-m", "30", external_url(mesh, "team-alpha-1"))
    assert ext.stdout == "Hello Serverless!\n", (ext.returncode, ext.stderr)


LOCAL_GATEWAY_ISTIO_MUTUAL = """
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: {name: knative-local-gateway, namespace: knative-serving}
spec:
  selector: {knative: ingressgateway}
  servers:
    - port: {number: 8081, name: https, protocol: HTTPS}
      tls: {mode: ISTIO_MUTUAL}
      hosts: ["*"]
"""


def test_local_gateway_istio_mutual_admits_only_the_mesh(mesh: Skiff) -> None:
    """1.4.2's knative-local-gateway with ISTIO_MUTUAL: a caller without a mesh certificate
    (the outsider's plain HTTP) is refused; meshed callers keep reaching cluster-local hosts.
    (Last in the module: it changes the shared gateway.)"""
    before = exec_curl(mesh, "-s", "http://test-webapp.team-alpha-1:80", ns="outsider")
    assert before.stdout == "Hello Serverless!\n", (before.returncode, before.stderr)
    mesh.kubectl("apply", "-f", "-", input=LOCAL_GATEWAY_ISTIO_MUTUAL)
    mesh.wait_for(lambda: exec_curl(mesh, "-s", "http://test-webapp.team-alpha-1:80",
                                    ns="outsider").returncode in (52, 56), 20,
                  what="the local gateway to refuse plain HTTP")
    r = exec_curl(mesh, "-s", "http://test-webapp.team-alpha-1:80")
    assert r.stdout == "Hello Serverless!\n", (r.returncode, r.stderr)
    gw = mesh.kubectl_json("get", "gateway", "knative-local-gateway", "-n", "knative-serving")
    ready = [c for c in gw["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True", gw["status"]
