"""The pod network through a real `skiff up`, the real kubectl and curl, with real connections:
pod IPs and each pod's own localhost, pod-to-pod and host-to-pod, Services as ClusterIPs over
their endpoints, cluster DNS (names, headless, ExternalName), the guide's chapter 2.4 check
verbatim, NetworkPolicy enforced (deny, allow, the guide's 1.6 policy), port-forward and exec
through the pod's namespace. Needs root (network namespaces), as CI has."""

from __future__ import annotations

import ipaddress
import os
import subprocess
from collections.abc import Iterator

import pytest

from skiffproc import Skiff, new_skiff, wait_pod_network_free

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

POD_CIDR = ipaddress.ip_network("10.244.0.0/16")
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: web
          image: docker.io/openshift/hello-openshift
          env:
            - name: RESPONSE
              valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
          readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
"""

CURL = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: curl, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: curl}}}}
  template:
    metadata: {{labels: {{app: curl}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: curl
          image: docker.io/curlimages/curl
          command: [sleep, infinity]
"""


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Skiff]:
    s = new_skiff(tmp_path_factory.mktemp("podnet"))
    s.extra_args = ["--pod-network", "namespaces"]
    wait_pod_network_free()
    s.start()
    try:
        yield s
    finally:
        if s.proc is not None:
            s.stop()


def apply(s: Skiff, text: str) -> None:
    s.kubectl("apply", "-f", "-", input=text)


def namespace(s: Skiff, ns: str, **labels: str) -> None:
    s.kubectl("create", "namespace", ns, check=False)
    if labels:
        s.kubectl("label", "namespace", ns, "--overwrite", *(f"{k}={v}" for k, v in labels.items()))


def web(s: Skiff, ns: str, name: str = "web", replicas: int = 1) -> list[dict]:  # type: ignore[type-arg]
    apply(s, WEB.format(ns=ns, name=name, replicas=replicas))
    s.kubectl("rollout", "status", f"deployment/{name}", "-n", ns, "--timeout=60s")
    s.wait_for(lambda: _ready_slice(s, ns, name) == replicas, timeout=30, what="endpoints")
    pods: list[dict] = s.kubectl_json("get", "pods", "-n", ns, "-l", f"app={name}")["items"]  # type: ignore[type-arg]
    return pods


def _ready_slice(s: Skiff, ns: str, svc: str) -> int:
    slices = s.kubectl_json("get", "endpointslices", "-n", ns, "-l",
                            f"kubernetes.io/service-name={svc}")["items"]
    return sum(1 for sl in slices for e in sl.get("endpoints") or []
               if (e.get("conditions") or {}).get("ready"))


def curl_pod(s: Skiff, ns: str, *args: str, target: str = "deployment/curl") -> subprocess.CompletedProcess[str]:
    return s.kubectl("exec", target, "-n", ns, "--", "curl", "-s", "-m", "3", *args, check=False)


def curl_ready(s: Skiff, ns: str) -> None:
    apply(s, CURL.format(ns=ns))
    s.kubectl("rollout", "status", "deployment/curl", "-n", ns, "--timeout=60s")


def test_pods_have_their_own_ips_localhost_and_names(net: Skiff) -> None:
    namespace(net, "pn-basic")
    pods = web(net, "pn-basic", replicas=2)
    ips = [p["status"]["podIP"] for p in pods]
    assert len(set(ips)) == 2 and all(ipaddress.ip_address(ip) in POD_CIDR for ip in ips)
    assert all(p["status"]["podIPs"] == [{"ip": p["status"]["podIP"]}] for p in pods)
    a, b = pods
    a_name, b_name = a["metadata"]["name"], b["metadata"]["name"]
    # localhost inside a pod is the pod's own: each container listens on 8080 in its namespace
    own = net.kubectl("exec", "-n", "pn-basic", a_name, "--", "curl", "-s", "-m", "3",
                      "http://127.0.0.1:8080/").stdout
    assert own == f"{a_name}\n"
    # pod -> pod by IP, and the host -> pod
    other = net.kubectl("exec", "-n", "pn-basic", a_name, "--", "curl", "-s", "-m", "3",
                        f"http://{b['status']['podIP']}:8080/").stdout
    assert other == f"{b_name}\n"
    host = subprocess.run(["curl", "-s", "-m", "3", f"http://{a['status']['podIP']}:8080/"],
                          capture_output=True, text=True, timeout=10).stdout
    assert host == f"{a_name}\n"
    # the pod's hostname, resolv.conf (the kubelet's ClusterFirst) and hosts file
    out = net.kubectl("exec", "-n", "pn-basic", a_name, "--", "sh", "-c",
                      "hostname; cat /etc/resolv.conf; cat /etc/hosts").stdout
    assert out.splitlines()[0] == a_name
    assert "search pn-basic.svc.cluster.local svc.cluster.local cluster.local" in out
    assert "options ndots:5" in out and "nameserver 10.244.0.1" in out
    assert f"{a['status']['podIP']}\t{a_name}" in out
    # nothing of the pod listens on the host's loopback any more
    listeners = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
    assert f"127.0.0.1:{8080}" not in listeners.split()


def test_guide_24_curl_by_service_name_verbatim(net: Skiff) -> None:
    """Chapter 2.4: `kubectl exec deployment/curl -n team-alpha-1 -it -- curl -v
    http://test-webapp.team-alpha-1:80` answers from the app."""
    namespace(net, "team-alpha-1")
    pods = web(net, "team-alpha-1", name="test-webapp", replicas=2)
    curl_ready(net, "team-alpha-1")
    r = net.kubectl("exec", "deployment/curl", "-n", "team-alpha-1", "-i", "--", "curl", "-v",
                    "http://test-webapp.team-alpha-1:80")
    assert r.stdout.strip() in {p["metadata"]["name"] for p in pods}
    assert "HTTP/1.1 200 OK" in r.stderr
    svc = net.kubectl_json("get", "svc", "test-webapp", "-n", "team-alpha-1")
    vip = svc["spec"]["clusterIP"]
    assert ipaddress.ip_address(vip) in SERVICE_CIDR
    # the VIP spreads over both endpoints (kernel DNAT, random): both answer within 40 tries
    seen: set[str] = set()
    for _ in range(40):
        seen.add(subprocess.run(["curl", "-s", "-m", "3", f"http://{vip}:80/"],
                                capture_output=True, text=True, timeout=10).stdout.strip())
        if len(seen) == 2:
            break
    assert seen == {p["metadata"]["name"] for p in pods}
    # the full name and the kubernetes Service resolve too
    full = curl_pod(net, "team-alpha-1", "http://test-webapp.team-alpha-1.svc.cluster.local/")
    assert full.stdout.strip() in seen
    version = curl_pod(net, "team-alpha-1", "-k", "https://kubernetes.default.svc/version")
    assert '"gitVersion"' in version.stdout


def test_bridge_keeps_its_mac_while_pods_come_and_go(net: Skiff) -> None:
    """A Linux bridge without a MAC of its own takes its lowest port's and changes it as veths
    come and go; a pod whose ARP entry still names the old one then loses the bridge address
    (DNS, Services) for seconds. skiff0's MAC is set when it is made, so the kernel keeps it
    (addr_assign_type 3, NET_ADDR_SET), and pods that were there before churn still resolve
    and connect at once."""
    from skiff.node.network.podnet import BRIDGE_MAC
    sysfs = "/sys/class/net/skiff0/"

    def mac() -> str:
        with open(sysfs + "address") as f:
            return f.read().strip()
    with open(sysfs + "addr_assign_type") as f:
        assert f.read().strip() == "3"
    assert mac() == BRIDGE_MAC
    namespace(net, "pn-churn")
    web(net, "pn-churn")
    curl_ready(net, "pn-churn")
    assert curl_pod(net, "pn-churn", "http://web.pn-churn/").returncode == 0
    for _ in range(2):         # new veths on the bridge, then gone again
        web(net, "pn-churn", name="churn", replicas=4)
        net.kubectl("delete", "deployment/churn", "-n", "pn-churn", "--wait=true")
        net.wait_for(lambda: not net.kubectl_json("get", "pods", "-n", "pn-churn", "-l",
                                                  "app=churn")["items"],
                     timeout=30, what="churn pods gone")
        assert mac() == BRIDGE_MAC
    for _ in range(5):
        r = curl_pod(net, "pn-churn", "http://web.pn-churn/")
        assert r.returncode == 0, r.stderr


def test_dns_headless_externalname_and_outside(net: Skiff) -> None:
    namespace(net, "pn-dns")
    pods = web(net, "pn-dns", name="app", replicas=2)
    apply(net, """
apiVersion: v1
kind: Service
metadata: {name: app-headless, namespace: pn-dns}
spec:
  clusterIP: None
  selector: {app: app}
  ports: [{port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: alias, namespace: pn-dns}
spec:
  type: ExternalName
  externalName: app.pn-dns.svc.cluster.local
""")
    net.wait_for(lambda: _ready_slice(net, "pn-dns", "app-headless") == 2, timeout=30,
                 what="headless endpoints")
    name = pods[0]["metadata"]["name"]

    def lookup(host: str) -> set[str]:
        out = net.kubectl("exec", "-n", "pn-dns", name, "--", "getent", "ahostsv4", host,
                          check=False).stdout
        return {line.split()[0] for line in out.splitlines() if line.strip()}

    assert lookup("app-headless") == {p["status"]["podIP"] for p in pods}
    vip = net.kubectl_json("get", "svc", "app", "-n", "pn-dns")["spec"]["clusterIP"]
    assert lookup("alias") == {vip}
    assert lookup("app") == {vip}
    assert lookup("nothing-here") == set()


def test_network_policy_deny_then_allow(net: Skiff) -> None:
    namespace(net, "pn-pol")
    namespace(net, "pn-other")
    web(net, "pn-pol", name="db")
    curl_ready(net, "pn-pol")
    curl_ready(net, "pn-other")
    url = "http://db.pn-pol:80/"
    assert curl_pod(net, "pn-pol", url).returncode == 0
    assert curl_pod(net, "pn-other", url).returncode == 0
    apply(net, """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: pn-pol}
spec:
  podSelector: {}
  policyTypes: [Ingress]
""")
    # denied packets are dropped: curl's connect times out (exit 28)
    net.wait_for(lambda: curl_pod(net, "pn-other", "--connect-timeout", "1", url).returncode == 28,
                 timeout=15, interval=0.2, what="deny-all enforced")
    assert curl_pod(net, "pn-pol", "--connect-timeout", "1", url).returncode == 28
    # the node still reaches the pod (kubelet probes keep it Ready)
    assert net.kubectl_json("get", "deploy", "db", "-n", "pn-pol")["status"].get("readyReplicas") == 1
    # the guide's 1.6 policy, verbatim apart from the PDF's indentation: admits namespaces by label
    apply(net, """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-from-serving-system-namespace
  namespace: pn-pol
spec:
  ingress:
  - from:
    - namespaceSelector:
        matchLabels:
          knative.openshift.io/part-of: "openshift-serverless"
  podSelector: {}
  policyTypes:
  - Ingress
""")
    namespace(net, "pn-other", **{"knative.openshift.io/part-of": "openshift-serverless"})
    net.wait_for(lambda: curl_pod(net, "pn-other", "--connect-timeout", "1", url).returncode == 0,
                 timeout=15, interval=0.2, what="labelled namespace admitted")
    assert curl_pod(net, "pn-pol", "--connect-timeout", "1", url).returncode == 28
    net.kubectl("delete", "networkpolicy", "--all", "-n", "pn-pol")
    net.wait_for(lambda: curl_pod(net, "pn-pol", "--connect-timeout", "1", url).returncode == 0,
                 timeout=15, interval=0.2, what="policies removed")


def test_network_policy_is_enforced_so_no_warning(net: Skiff) -> None:
    namespace(net, "pn-warn")
    r = net.kubectl("apply", "-f", "-", input="""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: quiet, namespace: pn-warn}
spec: {podSelector: {}}
""")
    assert "not enforced" not in r.stderr


def test_port_forward_and_exec_reach_the_pods_own_localhost(net: Skiff) -> None:
    namespace(net, "pn-pf")
    pods = web(net, "pn-pf")
    name = pods[0]["metadata"]["name"]
    from skiffproc import free_port
    port = free_port()
    pf = subprocess.Popen(["kubectl", "--kubeconfig", str(net.kubeconfig), "port-forward", "-n",
                           "pn-pf", f"pod/{name}", f"{port}:8080"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert pf.stdout is not None
        assert "Forwarding from" in pf.stdout.readline()
        out = subprocess.run(["curl", "-s", "-m", "5", f"http://127.0.0.1:{port}/"],
                             capture_output=True, text=True, timeout=10).stdout
        assert out == f"{name}\n"
    finally:
        pf.terminate()
        pf.wait(10)
    # exec runs in the pod's namespace: it sees the pod's eth0 and address, not the host's
    out = net.kubectl("exec", "-n", "pn-pf", name, "--", "ip", "-4", "-o", "addr").stdout
    names = [line.split()[1] for line in out.splitlines()]
    assert names == ["lo", "eth0"]
    assert f"inet {pods[0]['status']['podIP']}/32" in out


KSVC = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: test-webapp, namespace: {ns}}}
spec:
  template:
    spec:
      containers:
        - image: docker.io/openshift/hello-openshift
          env: [{{name: RESPONSE, value: "Hello Serverless!"}}]
"""


def test_knative_service_by_cluster_name_and_external_url_from_a_pod(net: Skiff) -> None:
    """Chapter 2.4 with a Knative Service, as the guide has it: the cluster name goes through
    the knative-local-gateway (the Route's ExternalName Service -> the gateway's ClusterIP),
    the external URL through the router on the bridge address, with no port."""
    ns = "team-bravo-1"
    namespace(net, ns)
    apply(net, KSVC.format(ns=ns))
    net.kubectl("wait", "--for=condition=Ready", "ksvc/test-webapp", "-n", ns, "--timeout=60s")
    curl_ready(net, ns)
    svc = net.kubectl_json("get", "svc", "test-webapp", "-n", ns)
    assert svc["spec"]["type"] == "ExternalName"
    # Kourier unless a KnativeServing picks Istio (OpenShift Serverless's default)
    assert svc["spec"]["externalName"] in ("kourier-internal.knative-serving-ingress.svc.cluster.local",
                                           "knative-local-gateway.istio-system.svc.cluster.local")
    gw_name, gw_ns = svc["spec"]["externalName"].split(".")[:2]
    gw = net.kubectl_json("get", "endpointslices", "-n", gw_ns, "-l",
                          f"kubernetes.io/service-name={gw_name}")["items"]
    assert any(e["addresses"] == ["127.0.0.1"] for sl in gw for e in sl.get("endpoints") or [])
    r = net.kubectl("exec", "deployment/curl", "-n", ns, "-i", "--", "curl", "-s", "-v", "-m", "5",
                    f"http://test-webapp.{ns}:80")
    assert r.stdout == "Hello Serverless!\n", r.stderr
    url = net.kubectl_json("get", "ksvc", "test-webapp", "-n", ns)["status"]["url"]
    assert url.startswith("https://") and ":" not in url.removeprefix("https://")
    ext = curl_pod(net, ns, "-k", url)
    assert ext.stdout == "Hello Serverless!\n", ext.stderr


GUIDE_15_AS_PRINTED = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-from-openshift-monitoring-ns
  namespace: {ns}
spec:
  ingress:
    - from:
      - namespaceSelector:
          matchLabels:
            name: "openshift-monitoring"
      podSelector: {{}}
"""

GUIDE_15 = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-from-openshift-monitoring-ns
  namespace: {ns}
spec:
  ingress:
    - from:
      - namespaceSelector:
          matchLabels:
            name: "openshift-monitoring"
  podSelector: {{}}
"""


def test_guide_15_policy_as_printed_is_refused_and_as_meant_admits_monitoring(net: Skiff) -> None:
    """1.5: the PDF puts podSelector inside the ingress rule; skiff names the field. The
    intended policy admits only namespaces labelled name=openshift-monitoring."""
    namespace(net, "pn-served")
    namespace(net, "pn-monitoring", name="openshift-monitoring")
    namespace(net, "pn-elsewhere")
    web(net, "pn-served", name="metrics")
    for ns in ("pn-monitoring", "pn-elsewhere"):
        curl_ready(net, ns)
    bad = net.kubectl("apply", "-f", "-", input=GUIDE_15_AS_PRINTED.format(ns="pn-served"),
                      check=False)
    assert bad.returncode != 0
    assert "podSelector" in bad.stderr and "ingress[0]" in bad.stderr, bad.stderr
    apply(net, GUIDE_15.format(ns="pn-served"))
    url = "http://metrics.pn-served/"
    net.wait_for(lambda: curl_pod(net, "pn-elsewhere", "--connect-timeout", "1", url).returncode == 28,
                 timeout=15, interval=0.2, what="others refused")
    assert curl_pod(net, "pn-monitoring", "--connect-timeout", "1", url).returncode == 0
