"""Knative Serving's control plane through the real kubectl: a ksvc and its children,
defaults, updates, BYO revision names, traffic errors, bad images, cluster-local
services, tags, and the KnativeServing that rules the config.

The KIngress a Route programs is served (and marked Ready) by the data plane in
mesh/gateway; when that package is absent the test marks the Ingress Ready itself
through the status subresource, as a stand-in for the data plane.
"""

from __future__ import annotations

import importlib.util
import json
import time
from typing import Any

import pytest

from skiffproc import Skiff

DOMAIN = "apps.127.0.0.1.sslip.io"   # `skiff up`'s default --domain
HAS_DATA_PLANE = importlib.util.find_spec("skiff.mesh.gateway") is not None

KSVC = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: {name}
  namespace: default
{labels}spec:
  template:
{tmeta}    spec:
      containers:
        - image: {image}
          env:
            - name: RESPONSE
              value: "{response}"
{traffic}"""


def ksvc(name: str, image: str = "docker.io/openshift/hello-openshift", response: str = "hi",
         rev_name: str = "", traffic: str = "", labels: str = "") -> str:
    tmeta = f"    metadata:\n      name: {rev_name}\n" if rev_name else ""
    lab = f"  labels:\n{labels}" if labels else ""
    return KSVC.format(name=name, image=image, response=response, tmeta=tmeta,
                       traffic=traffic, labels=lab)


def cond(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}


def ingress_ready(skiff: Skiff, name: str) -> None:
    """Stand in for the data plane when there is none: Ready for the current generation."""
    if HAS_DATA_PLANE:
        return
    ing = skiff.wait_for(lambda: skiff.kubectl_json("get", "kingress", name)
                         if skiff.kubectl("get", "kingress", name, check=False).returncode == 0
                         else None, timeout=60, what=f"kingress {name}")
    patch = {"status": {"observedGeneration": ing["metadata"]["generation"], "conditions": [
        {"type": t, "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        for t in ("LoadBalancerReady", "NetworkConfigured", "Ready")]}}
    skiff.kubectl("patch", "kingress", name, "--subresource=status", "--type=merge",
                  "-p", json.dumps(patch))


def wait_ksvc_ready(skiff: Skiff, name: str, timeout: int = 90) -> dict[str, Any]:
    def traffic_assigned() -> bool:
        rt = skiff.kubectl("get", "route", name, "-o", "json", check=False)
        return rt.returncode == 0 and cond(json.loads(rt.stdout), "AllTrafficAssigned") \
            .get("status") == "True"
    skiff.wait_for(traffic_assigned, timeout=timeout, what=f"route {name} traffic assigned")
    ingress_ready(skiff, name)
    skiff.kubectl("wait", "--for=condition=Ready", f"ksvc/{name}", f"--timeout={timeout}s",
                  timeout=timeout + 10)
    return dict(skiff.kubectl_json("get", "ksvc", name))


def apply(skiff: Skiff, text: str) -> None:
    skiff.kubectl("apply", "-f", "-", input=text)


def apply_fails(skiff: Skiff, text: str) -> str:
    r = skiff.kubectl("apply", "-f", "-", input=text, check=False)
    assert r.returncode != 0, r.stdout
    return r.stderr


def test_hello_becomes_ready_with_its_children(skiff: Skiff) -> None:
    apply(skiff, ksvc("hello"))
    svc = wait_ksvc_ready(skiff, "hello")
    st = svc["status"]
    assert st["url"] == f"https://hello-default.{DOMAIN}"
    assert st["address"] == {"url": "http://hello.default.svc.cluster.local"}
    assert st["latestCreatedRevisionName"] == st["latestReadyRevisionName"] == "hello-00001"
    assert st["traffic"] == [{"latestRevision": True, "percent": 100, "revisionName": "hello-00001"}]
    assert st["observedGeneration"] == svc["metadata"]["generation"]
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "ConfigurationsReady": "True", "RoutesReady": "True", "Ready": "True"}

    # The webhook's defaults, as upstream writes them back.
    spec = svc["spec"]
    assert spec["traffic"] == [{"latestRevision": True, "percent": 100}]
    tspec = spec["template"]["spec"]
    assert tspec["containerConcurrency"] == 0 and tspec["timeoutSeconds"] == 300
    assert tspec["enableServiceLinks"] is False
    c = tspec["containers"][0]
    assert c["name"] == "user-container"
    assert c["readinessProbe"] == {"successThreshold": 1, "tcpSocket": {"port": 0}}

    rev = skiff.kubectl_json("get", "revision", "hello-00001")
    labels = rev["metadata"]["labels"]
    assert labels["serving.knative.dev/configuration"] == "hello"
    assert labels["serving.knative.dev/service"] == "hello"
    assert labels["serving.knative.dev/configurationGeneration"] == "1"
    assert labels["serving.knative.dev/routingState"] == "active"
    cfg = skiff.kubectl_json("get", "configuration", "hello")
    assert labels["serving.knative.dev/configurationUID"] == cfg["metadata"]["uid"]
    assert labels["serving.knative.dev/serviceUID"] == svc["metadata"]["uid"]
    assert rev["metadata"]["annotations"]["serving.knative.dev/routes"] == "hello"
    assert rev["metadata"]["ownerReferences"][0]["kind"] == "Configuration"
    assert {c["type"]: c["status"] for c in rev["status"]["conditions"]} == {
        "Active": "True", "ContainerHealthy": "True", "Ready": "True",
        "ResourcesAvailable": "True"}
    assert cfg["metadata"]["ownerReferences"][0]["uid"] == svc["metadata"]["uid"]
    assert cfg["metadata"]["labels"]["serving.knative.dev/service"] == "hello"

    route = skiff.kubectl_json("get", "route", "hello")
    rconds = {c["type"]: c for c in route["status"]["conditions"]}
    assert rconds["CertificateProvisioned"]["reason"] == "TLSNotEnabled"
    assert all(c["status"] == "True" for c in rconds.values())

    dep = skiff.kubectl_json("get", "deployment", "hello-00001-deployment")
    assert dep["metadata"]["ownerReferences"][0]["kind"] == "Revision"
    assert dep["spec"]["replicas"] == 1
    pod = skiff.kubectl_json("get", "pods", "-l", "serving.knative.dev/revision=hello-00001")["items"][0]
    plabels = pod["metadata"]["labels"]
    assert plabels["app"] == "hello-00001"
    assert plabels["serving.knative.dev/revisionUID"] == rev["metadata"]["uid"]
    assert plabels["serving.knative.dev/service"] == "hello"
    assert plabels["serving.knative.dev/configuration"] == "hello"
    assert "serving.knative.dev/routingState" not in plabels
    assert [c["name"] for c in pod["spec"]["containers"]] == ["user-container", "queue-proxy"]
    env = dict(line.split("=", 1) for line in skiff.kubectl(
        "exec", pod["metadata"]["name"], "--", "env").stdout.splitlines() if "=" in line)
    assert env["K_SERVICE"] == "hello" and env["K_CONFIGURATION"] == "hello"
    assert env["K_REVISION"] == "hello-00001"
    assert env["PORT"] == pod["metadata"]["annotations"]["skiff.dev/port"]   # the runtime's port

    ing = skiff.kubectl_json("get", "kingress", "hello")
    assert ing["metadata"]["annotations"]["networking.knative.dev/ingress.class"] == \
        "kourier.ingress.networking.knative.dev"
    assert ing["metadata"]["labels"]["serving.knative.dev/route"] == "hello"
    rules = ing["spec"]["rules"]
    assert [(r["visibility"], r["hosts"]) for r in rules] == [
        ("ClusterLocal", ["hello.default", "hello.default.svc", "hello.default.svc.cluster.local"]),
        ("ExternalIP", [f"hello-default.{DOMAIN}"])]
    split = rules[1]["http"]["paths"][0]["splits"][0]
    assert split == {"serviceNamespace": "default", "serviceName": "hello-00001", "servicePort": 80,
                     "percent": 100, "appendHeaders": {"Knative-Serving-Revision": "hello-00001",
                                                       "Knative-Serving-Namespace": "default"}}


def test_reconcilers_are_idempotent(skiff: Skiff) -> None:
    def versions() -> list[str]:
        return [skiff.kubectl_json("get", kind, name)["metadata"]["resourceVersion"]
                for kind, name in (("ksvc", "hello"), ("configuration", "hello"),
                                   ("route", "hello"), ("revision", "hello-00001"),
                                   ("kingress", "hello"), ("deployment", "hello-00001-deployment"))]
    # Once settled (the KPA's first ticks write the revision's replica counts), nothing is
    # written again: two samples 2.5 s apart (longer than the KPA's 2 s tick) agree. A bounded
    # window, kept: `skiff up` runs in another process, so no reconcile count or clock of its
    # can be read here, and that no write comes can only be shown by waiting past a tick.
    # (Each reconcile's writes are shown without waiting by the table tests in tests/unit/.)
    def settled() -> bool:
        before = versions()
        time.sleep(2.5)
        return versions() == before
    skiff.wait_for(settled, timeout=30, interval=0, what="no more writes")


def test_update_stamps_a_second_revision(skiff: Skiff) -> None:
    apply(skiff, ksvc("hello", response="second"))
    skiff.wait_for(lambda: skiff.kubectl_json("get", "ksvc", "hello")["status"]
                   .get("latestReadyRevisionName") == "hello-00002", timeout=60, what="hello-00002")
    svc = wait_ksvc_ready(skiff, "hello")
    assert svc["status"]["traffic"] == [
        {"latestRevision": True, "percent": 100, "revisionName": "hello-00002"}]
    rev = skiff.kubectl_json("get", "revision", "hello-00002")
    assert rev["metadata"]["labels"]["serving.knative.dev/configurationGeneration"] == "2"
    # The old revision gets no traffic any more: reserve, and still Ready. (That the KPA then
    # scales it to zero and it says NoTraffic is test_queue_proxy's retired-revision test,
    # with short windows: the default config takes a grace period and a stable window.)
    skiff.wait_for(lambda: skiff.kubectl_json("get", "revision", "hello-00001")["metadata"]
                   ["labels"].get("serving.knative.dev/routingState") == "reserve",
                   timeout=30, what="hello-00001 reserve")
    old = skiff.kubectl_json("get", "revision", "hello-00001")
    assert cond(old, "Ready")["status"] == "True"


def test_byo_revision_names(skiff: Skiff) -> None:
    apply(skiff, ksvc("byo", rev_name="byo-v1"))
    wait_ksvc_ready(skiff, "byo")
    assert skiff.kubectl_json("get", "ksvc", "byo")["status"]["latestReadyRevisionName"] == "byo-v1"

    err = apply_fails(skiff, ksvc("byo", rev_name="byo-v1", response="changed"))
    assert "Saw the following changes without a name change (-old +new)" in err
    assert "spec.template.metadata.name" in err

    err = apply_fails(skiff, ksvc("byo", rev_name="other-v2", response="changed"))
    assert 'invalid value: "other-v2" must have prefix "byo-"' in err

    apply(skiff, ksvc("byo", rev_name="byo-v2", response="changed"))
    skiff.wait_for(lambda: skiff.kubectl_json("get", "ksvc", "byo")["status"]
                   .get("latestReadyRevisionName") == "byo-v2", timeout=60, what="byo-v2")
    assert wait_ksvc_ready(skiff, "byo")["status"]["traffic"][0]["revisionName"] == "byo-v2"


TRAFFIC = """  traffic:
{entries}"""


def traffic(*entries: str) -> str:
    return TRAFFIC.format(entries="".join(f"    - {e}\n" for e in entries))


def test_invalid_traffic_is_answered_as_upstream(skiff: Skiff) -> None:
    err = apply_fails(skiff, ksvc("tr", traffic=traffic("{latestRevision: true, percent: 90}")))
    assert "spec.traffic: Traffic targets sum to 90, want 100" in err
    err = apply_fails(skiff, ksvc("tr", traffic=traffic(
        "{latestRevision: true, percent: 50, tag: a}", "{revisionName: hello-00001, percent: 50, tag: a}")))
    assert 'Multiple definitions for "a"' in err
    err = apply_fails(skiff, ksvc("tr", traffic=traffic(
        "{revisionName: hello-00001, latestRevision: true, percent: 100}")))
    assert 'may not set revisionName "hello-00001" when latestRevision is true' in err
    err = apply_fails(skiff, ksvc("tr", traffic=traffic("{latestRevision: true, percent: 100, tag: B_1}")))
    assert "not a DNS 1035 label" in err

    # A revision that does not exist is not an admission error but a Route condition.
    apply(skiff, ksvc("tr", traffic=traffic("{latestRevision: true, percent: 50}",
                                            "{revisionName: tr-00009, percent: 50}")))

    def missing() -> dict[str, Any]:
        c = cond(skiff.kubectl_json("get", "route", "tr"), "AllTrafficAssigned")
        return c if c.get("status") == "False" else {}
    c = skiff.wait_for(missing, timeout=60, what="AllTrafficAssigned False")
    assert c["reason"] == "RevisionMissing"
    assert c["message"] == 'Revision "tr-00009" referenced in traffic not found.'
    skiff.wait_for(lambda: cond(skiff.kubectl_json("get", "ksvc", "tr"), "RoutesReady")
                   .get("reason") == "RevisionMissing", timeout=30, what="ksvc RoutesReady")

    # Fixed: a tag on the first revision gets its own URL and Ingress rule.
    apply(skiff, ksvc("tr", traffic=traffic("{latestRevision: true, percent: 100}",
                                            "{revisionName: tr-00001, percent: 0, tag: candidate}")))
    svc = wait_ksvc_ready(skiff, "tr")
    tagged = [t for t in svc["status"]["traffic"] if t.get("tag") == "candidate"]
    assert tagged == [{"tag": "candidate", "revisionName": "tr-00001", "latestRevision": False,
                       "percent": 0, "url": f"http://candidate-tr-default.{DOMAIN}"}]
    hosts = [h for r in skiff.kubectl_json("get", "kingress", "tr")["spec"]["rules"]
             for h in r["hosts"]]
    assert f"candidate-tr-default.{DOMAIN}" in hosts and "candidate-tr.default.svc" in hosts


def test_bad_image_fails_the_revision_and_the_service(skiff: Skiff) -> None:
    apply(skiff, ksvc("bad", image="example.com/no/such:1"))

    def failed() -> dict[str, Any]:
        c = cond(skiff.kubectl_json("get", "revision", "bad-00001"), "ContainerHealthy")
        return c if c.get("status") == "False" else {}
    c = skiff.wait_for(failed, timeout=60, what="ContainerHealthy False")
    assert c["reason"] in ("ErrImagePull", "ImagePullBackOff")
    assert c.get("message")
    rev = skiff.kubectl_json("get", "revision", "bad-00001")
    assert cond(rev, "Ready")["status"] == "False"

    def config_failed() -> dict[str, Any]:
        c = cond(skiff.kubectl_json("get", "ksvc", "bad"), "ConfigurationsReady")
        return c if c.get("status") == "False" else {}
    c = skiff.wait_for(config_failed, timeout=30, what="ksvc ConfigurationsReady False")
    assert c["reason"] == "RevisionFailed"
    assert c["message"].startswith('Revision "bad-00001" failed with message: ')
    svc = skiff.kubectl_json("get", "ksvc", "bad")
    assert cond(svc, "Ready")["status"] == "False"
    cfg = skiff.kubectl_json("get", "configuration", "bad")
    assert cond(cfg, "Ready")["reason"] == "RevisionFailed"
    # No ready revision: the route says so, with upstream's words.
    route_c = skiff.wait_for(lambda: cond(skiff.kubectl_json("get", "route", "bad"),
                                          "AllTrafficAssigned").get("status") == "False"
                             and cond(skiff.kubectl_json("get", "route", "bad"), "AllTrafficAssigned"),
                             timeout=30, what="route RevisionMissing")
    assert route_c["message"] == 'Configuration "bad" does not have any ready Revision.'
    r = skiff.kubectl("wait", "--for=condition=Ready", "ksvc/bad", "--timeout=1s", check=False)
    assert r.returncode != 0


def test_cluster_local_service(skiff: Skiff) -> None:
    apply(skiff, ksvc("local", labels="    networking.knative.dev/visibility: cluster-local\n"))
    svc = wait_ksvc_ready(skiff, "local")
    assert svc["status"]["url"] == "http://local.default.svc.cluster.local"
    rules = skiff.kubectl_json("get", "kingress", "local")["spec"]["rules"]
    assert [r["visibility"] for r in rules] == ["ClusterLocal"]
    err = apply_fails(skiff, ksvc("local2", labels="    networking.knative.dev/visibility: public\n"))
    assert "networking.knative.dev/visibility" in err


KS = """
apiVersion: operator.knative.dev/v1beta1
kind: KnativeServing
metadata:
  name: knative-serving
  namespace: knative-serving
spec:
  config:
{config}"""


def test_knative_serving_rules_the_config(skiff: Skiff) -> None:
    err = apply_fails(skiff, KS.format(config="    network:\n      domainTemplat: x\n"))
    assert "spec.config.network.domainTemplat" in err
    assert 'did you mean "domain-template"' in err
    err = apply_fails(skiff, KS.format(config="    netwrok:\n      a: b\n"))
    assert "spec.config.netwrok" in err

    apply(skiff, KS.format(config='    domain:\n      example.com: ""\n'))
    skiff.kubectl("wait", "--for=condition=Ready", "knativeserving/knative-serving",
                  "-n", "knative-serving", "--timeout=30s", timeout=40)
    ks = skiff.kubectl_json("get", "knativeserving", "knative-serving", "-n", "knative-serving")
    assert ks["status"]["version"].startswith("1.10.")
    assert {c["type"] for c in ks["status"]["conditions"]} == {
        "DependenciesInstalled", "DeploymentsAvailable", "InstallSucceeded",
        "VersionMigrationEligible", "Ready"}
    skiff.wait_for(lambda: skiff.kubectl_json("get", "ksvc", "hello")["status"].get("url")
                   == "https://hello-default.example.com", timeout=30, what="url on example.com")
    hosts = [h for r in skiff.kubectl_json("get", "kingress", "hello")["spec"]["rules"]
             for h in r["hosts"]]
    assert "hello-default.example.com" in hosts

    # Back to the defaults once the KnativeServing is gone.
    skiff.kubectl("delete", "knativeserving", "knative-serving", "-n", "knative-serving")
    skiff.wait_for(lambda: skiff.kubectl_json("get", "ksvc", "hello")["status"].get("url")
                   == f"https://hello-default.{DOMAIN}", timeout=30, what="url back")


@pytest.mark.parametrize("bad,expect", [
    ("timeoutSeconds: 700", "expected 0 <= 700 <= 600: spec.template.spec.timeoutSeconds"),
    ("containers: [{image: x, env: [{name: PORT, value: '1'}]}]",
     '"PORT" is a reserved environment variable'),
])
def test_revision_spec_limits(skiff: Skiff, bad: str, expect: str) -> None:
    text = f"""
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: limits, namespace: default}}
spec:
  template:
    spec:
      {bad if bad.startswith('containers') else 'containers: [{image: x}]'}
      {bad if not bad.startswith('containers') else ''}
"""
    err = apply_fails(skiff, text)
    assert expect.split(": spec")[0] in err


def test_deleting_the_service_deletes_its_children(skiff: Skiff) -> None:
    skiff.kubectl("delete", "ksvc", "byo", "--timeout=60s", timeout=70)

    def gone() -> bool:
        left = []
        for kind in ("configuration", "route", "revision", "kingress", "deployment", "pods"):
            r = skiff.kubectl("get", kind, "-o", "name", "-l", "serving.knative.dev/service=byo")
            left += r.stdout.split()
        return not left
    skiff.wait_for(gone, timeout=60, interval=0.3, what="byo's children gone")
