"""The API through the real kubectl: discovery, apply, get, selectors, watch, conflicts, validation,
protobuf creates, delete cascades. One `skiff up` for the module."""

from __future__ import annotations

import json
import subprocess
import time

from skiffproc import Skiff

KSVC = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
  namespace: default
spec:
  template:
    spec:
      containers:
        - image: docker.io/openshift/hello-openshift
"""


def test_version_and_discovery(skiff: Skiff) -> None:
    v = json.loads(skiff.kubectl("version", "-o", "json").stdout)
    assert v["serverVersion"]["minor"] == "32"
    res = skiff.kubectl("api-resources").stdout
    for short in ("ksvc", "smcp", "smmr", "rev", "kcfg", "rt", "gw", "dr", "vs", "se", "pa", "netpol"):
        assert f" {short} " in res or f" {short}," in res or f",{short} " in res, short
    # short names resolve
    assert skiff.kubectl("get", "ksvc").returncode == 0
    assert "No resources found" in skiff.kubectl("get", "smmr", "-A").stderr


def test_unauthenticated_is_401(skiff: Skiff) -> None:
    r = subprocess.run(["curl", "-s", "--cacert", str(skiff.home / "pki" / "ca.crt"),
                        f"https://127.0.0.1:{skiff.api_port}/api/v1/namespaces"],
                       capture_output=True, text=True, timeout=10)
    body = json.loads(r.stdout)
    assert body["code"] == 401 and body["reason"] == "Unauthorized"


def test_apply_get_and_printer_columns(skiff: Skiff) -> None:
    r = skiff.kubectl("apply", "-f", "-", input=KSVC)
    assert "service.serving.knative.dev/hello created" in r.stdout
    r = skiff.kubectl("apply", "-f", "-", input=KSVC)
    # "configured", as on a real cluster: defaulted lists differ from the applied ones (k8s #66450)
    assert "unchanged" in r.stdout or "configured" in r.stdout
    header = skiff.kubectl("get", "ksvc").stdout.splitlines()[0].split()
    assert header == ["NAME", "URL", "LATESTCREATED", "LATESTREADY", "READY", "REASON", "AGE"] or \
        header[:6] == ["NAME", "URL", "LATESTCREATED", "LATESTREADY", "READY", "REASON"]
    assert skiff.kubectl("get", "ksvc", "hello", "-o", "jsonpath={.spec.template.spec.containers[0].image}"
                         ).stdout == "docker.io/openshift/hello-openshift"
    cc = skiff.kubectl("get", "ksvc", "-o", "custom-columns=N:.metadata.name,G:.metadata.generation").stdout
    assert cc.split() == ["N", "G", "hello", "1"]


def test_strict_validation_names_field(skiff: Skiff) -> None:
    bad = KSVC.replace("image:", "imagee:")
    r = skiff.kubectl("apply", "-f", "-", input=bad.replace("name: hello", "name: bad1"), check=False)
    assert r.returncode != 0
    assert "spec.template.spec.containers[0].imagee" in r.stderr
    r = skiff.kubectl("get", "ksvc", "bad1", check=False)
    assert "NotFound" in r.stderr or "not found" in r.stderr


def test_label_selectors_and_imperative_protobuf_creates(skiff: Skiff) -> None:
    skiff.kubectl("create", "namespace", "sel")
    skiff.kubectl("create", "configmap", "one", "-n", "sel", "--from-literal=a=b")
    skiff.kubectl("create", "configmap", "two", "-n", "sel", "--from-literal=a=c")
    skiff.kubectl("label", "configmap", "one", "-n", "sel", "tier=front")
    skiff.kubectl("label", "configmap", "two", "-n", "sel", "tier=back")
    out = skiff.kubectl("get", "cm", "-n", "sel", "-l", "tier in (front)", "-o", "name").stdout
    assert out.split() == ["configmap/one"]
    out = skiff.kubectl("get", "cm", "-n", "sel", "-l", "tier!=front", "-o", "name").stdout
    assert out.split() == ["configmap/two"]
    skiff.kubectl("create", "serviceaccount", "robot", "-n", "sel")
    assert skiff.kubectl_json("get", "sa", "robot", "-n", "sel")["metadata"]["name"] == "robot"


def test_stale_update_conflicts(skiff: Skiff) -> None:
    skiff.kubectl("create", "configmap", "cfl", "--from-literal=a=1")
    obj = skiff.kubectl_json("get", "cm", "cfl")
    skiff.kubectl("patch", "cm", "cfl", "-p", '{"data":{"a":"2"}}')
    obj["data"]["a"] = "3"
    r = skiff.kubectl("replace", "-f", "-", input=json.dumps(obj), check=False)
    assert r.returncode != 0 and "the object has been modified" in r.stderr


def test_watch_sees_changes(skiff: Skiff) -> None:
    skiff.kubectl("create", "configmap", "w1")
    p = subprocess.Popen(["kubectl", "--kubeconfig", str(skiff.kubeconfig), "--cache-dir",
                          str(skiff.home / "kubectl-cache"), "get", "cm", "-w", "-o", "name",
                          "--request-timeout=20s"], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        # The watch lists first: once w1 is printed it is watching, and w2 must follow.
        seen = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and "configmap/w1" not in seen:
            seen.append(p.stdout.readline().strip())
        assert "configmap/w1" in seen
        skiff.kubectl("create", "configmap", "w2")
        while time.monotonic() < deadline:
            line = p.stdout.readline().strip()
            seen.append(line)
            if line == "configmap/w2":
                break
        assert "configmap/w2" in seen
    finally:
        p.kill()
        p.wait(5)


def test_namespace_delete_cascades(skiff: Skiff) -> None:
    skiff.kubectl("create", "namespace", "gone")
    skiff.kubectl("create", "configmap", "x", "-n", "gone")
    skiff.kubectl("create", "deployment", "d", "-n", "gone", "--image=docker.io/openshift/hello-openshift")
    skiff.wait_for(lambda: skiff.kubectl("get", "pods", "-n", "gone", "-o", "name").stdout.strip(),
                   what="deployment pod")
    skiff.kubectl("delete", "namespace", "gone", "--timeout=60s")
    r = skiff.kubectl("get", "namespace", "gone", check=False)
    assert r.returncode != 0 and "not found" in r.stderr
    assert skiff.kubectl("get", "cm", "-A", "--field-selector", "metadata.namespace=gone",
                         "-o", "name").stdout.strip() == ""


def test_crd_kinds_can_be_added_by_users(skiff: Skiff) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                   "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}}
    skiff.kubectl("apply", "-f", "-", input=json.dumps(crd))
    skiff.kubectl("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=20s")
    w = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}}
    skiff.kubectl("apply", "-f", "-", input=json.dumps(w))
    assert skiff.kubectl_json("get", "wd", "w")["spec"]["size"] == 3
    w["spec"]["size"] = "three"
    r = skiff.kubectl("apply", "-f", "-", input=json.dumps(w), check=False)
    assert r.returncode != 0 and "spec.size" in r.stderr


def test_official_python_client(skiff: Skiff) -> None:
    from kubernetes import client, config, dynamic, watch
    api_client = config.new_client_from_config(str(skiff.kubeconfig))
    core = client.CoreV1Api(api_client)
    names = [n.metadata.name for n in core.list_namespace().items]
    assert "default" in names and "knative-serving" in names
    core.create_namespaced_config_map("default", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="py", labels={"from": "python"}), data={"k": "v"}))
    w = watch.Watch()
    seen = []
    for ev in w.stream(core.list_namespaced_config_map, "default", label_selector="from=python",
                       timeout_seconds=5):
        seen.append((ev["type"], ev["object"].metadata.name))
        w.stop()
    assert seen == [("ADDED", "py")]
    dyn = dynamic.DynamicClient(api_client)
    ksvc = dyn.resources.get(api_version="serving.knative.dev/v1", kind="Service")
    assert ksvc.get(namespace="default").kind == "ServiceList"


def test_bad_requests_get_status_errors(skiff: Skiff) -> None:
    import json as _json
    import urllib.error
    import urllib.request

    token = (skiff.home / "token").read_text().strip()
    import ssl
    ctx = ssl.create_default_context(cafile=str(skiff.home / "pki" / "ca.crt"))

    def post(path: str, body: bytes, ct: str = "application/json") -> tuple[int, dict]:
        req = urllib.request.Request(f"https://127.0.0.1:{skiff.api_port}{path}", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": ct})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
                return r.status, _json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, _json.loads(e.read())

    code, st = post("/api/v1/namespaces/default/configmaps", b"{not json")
    assert code == 400 and st["reason"] == "BadRequest" and "not valid JSON" in st["message"]
    code, st = post("/api/v1/namespaces/default/configmaps", b'{"metadata":{"name":"UPPER"}}')
    assert code == 422 and st["details"]["causes"][0]["field"] == "metadata.name"
    code, st = post("/api/v1/namespaces/default/configmaps",
                    b'{"metadata":{"name":"big"},"data":{"x":"' + b"a" * (4 * 1024 * 1024) + b'"}}')
    assert code == 413
    code, st = post("/apis/example.invalid/v1/namespaces/default/things", b"{}")
    assert code == 404
    before = skiff.kubectl("get", "cm", "-o", "name").stdout
    assert "UPPER" not in before and "big" not in before


def test_deleting_a_crd_deletes_its_objects(skiff: Skiff) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object",
                                                              "x-kubernetes-preserve-unknown-fields": True}}}]}}
    skiff.kubectl("apply", "-f", "-", input=json.dumps(crd))
    skiff.kubectl("wait", "--for=condition=Established", "crd/gadgets.example.com", "--timeout=20s")
    skiff.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"x": 1}}))
    skiff.kubectl("delete", "crd", "gadgets.example.com", "--timeout=30s")
    r = skiff.kubectl("get", "gadgets", check=False)
    assert r.returncode != 0
    crd["metadata"]["name"] = "gadgets.example.com"
    skiff.kubectl("apply", "-f", "-", input=json.dumps(crd))   # recreated: the old object is gone
    skiff.kubectl("wait", "--for=condition=Established", "crd/gadgets.example.com", "--timeout=20s")
    skiff.wait_for(lambda: skiff.kubectl("get", "gadgets", "-o", "name", check=False).returncode == 0,
                   what="gadgets served again")
    assert skiff.kubectl("get", "gadgets", "-o", "name").stdout.strip() == ""
