"""Sidecar injection tables (mesh/sidecar/inject.py): whether a pod is injected (Maistra's rules),
istio-init's args with the mesh's and the pod's port settings, the istio-proxy container,
probe rewriting and ISTIO_KUBE_APP_PROBERS in Go's JSON, the labels and annotations, idempotence,
and the InjectionView as the Pod defaulter over a MemoryClient's watches."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest

from skiff.core.admission import Admission
from skiff.core.memclient import MemoryClient
from skiff.mesh import crds
from skiff.mesh.membership import MeshConfig
from skiff.mesh.sidecar import inject as inj
from skiff.mesh.sidecar import injectview
from skiff.mesh.sidecar.inject import inject
from skiff.mesh.sidecar.injectview import InjectionView

Obj = dict[str, Any]

CFG = MeshConfig(name="basic", members=frozenset({"istio-system", "team"}),
                 excluded_inbound_ports=(8022, 8444), termination_drain_s=35.0)
BARE = MeshConfig(name="basic", members=frozenset({"istio-system", "team"}))


def pod(ns: str = "team", annotations: Obj | None = None, labels: Obj | None = None,
        containers: list[Obj] | None = None, **spec: Any) -> Obj:
    ann = {"sidecar.istio.io/inject": "true"} if annotations is None else annotations
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-7d9f-abcde", "generateName": "web-7d9f-", "namespace": ns,
                         "labels": {"app": "web", "pod-template-hash": "7d9f", **(labels or {})},
                         "annotations": ann,
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                              "name": "web-7d9f", "uid": "u1",
                                              "controller": True}]},
            "spec": {"containers": containers or [{"name": "web", "image": "x"}], **spec}}


def env_of(p: Obj, name: str) -> Any:
    proxy = next(c for c in p["spec"]["containers"] if c["name"] == "istio-proxy")
    for e in proxy["env"]:
        if e["name"] == name:
            return e.get("value", e.get("valueFrom"))
    return None


def container(p: Obj, name: str) -> Obj:
    return dict(next(c for c in p["spec"]["containers"] if c["name"] == name))


def init_args(p: Obj) -> list[str]:
    return list(next(c for c in p["spec"]["initContainers"] if c["name"] == "istio-init")["args"])


# --- whether -----------------------------------------------------------------------------

WHETHER = [
    ("member, annotation true", pod(), True),
    ("member, annotation TRUE", pod(annotations={"sidecar.istio.io/inject": "TRUE"}), True),
    ("member, annotation y", pod(annotations={"sidecar.istio.io/inject": "y"}), True),
    ("member, annotation Yes", pod(annotations={"sidecar.istio.io/inject": "Yes"}), True),
    ("member, annotation on", pod(annotations={"sidecar.istio.io/inject": "on"}), True),
    ("member, annotation false", pod(annotations={"sidecar.istio.io/inject": "false"}), False),
    ("member, annotation 1 (not Istio's)", pod(annotations={"sidecar.istio.io/inject": "1"}),
     False),
    ("member, annotation absent (Maistra injects on request only)", pod(annotations={}), False),
    ("member, label true", pod(annotations={}, labels={"sidecar.istio.io/inject": "true"}), True),
    ("label false wins over annotation true",
     pod(labels={"sidecar.istio.io/inject": "false"}), False),
    ("non-member namespace", pod(ns="outsider"), False),
    ("hostNetwork", pod(hostNetwork=True), False),
    ("already has istio-proxy",
     pod(containers=[{"name": "web", "image": "x"}, {"name": "istio-proxy", "image": "y"}]),
     False),
    ("status annotation set",
     pod(annotations={"sidecar.istio.io/inject": "true", "sidecar.istio.io/status": "{}"}),
     False),
]


@pytest.mark.parametrize("title,p,want", WHETHER, ids=[w[0] for w in WHETHER])
def test_whether(title: str, p: Obj, want: bool) -> None:
    before = copy.deepcopy(p)
    out = inject(p, CFG)
    assert (out is not None) == want
    assert p == before, "inject() must not touch its input"


def test_idempotent() -> None:
    once = inject(pod(), CFG)
    assert once is not None
    assert inject(once, CFG) is None


# --- istio-init ------------------------------------------------------------------------

HEAD = ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT",
        "-i", "*", "-x", "", "-b", "*", "-d"]
TAIL = ["--log_output_level=default:info"]

ARGS = [
    ("no mesh excludes", BARE, {}, [*HEAD, "15090,15021,15020", *TAIL]),
    ("the SMCP's excluded inbound ports, status port appended (excludeInboundPort)", CFG, {},
     [*HEAD, "15090,15021,8022,8444,15020", *TAIL]),
    ("the pod's excludeInboundPorts replace the mesh's (the template's `annotation`)", CFG,
     {"traffic.sidecar.istio.io/excludeInboundPorts": "9000,9001"},
     [*HEAD, "15090,15021,9000,9001,15020", *TAIL]),
    ("status port already excluded is not repeated", BARE,
     {"traffic.sidecar.istio.io/excludeInboundPorts": "15020,9000"},
     [*HEAD, "15090,15021,15020,9000", *TAIL]),
    ("mesh excluded outbound ports add -o", MeshConfig(
        members=frozenset({"team"}), excluded_outbound_ports=(5432, 9092)), {},
     [*HEAD, "15090,15021,15020", "-o", "5432,9092", *TAIL]),
    ("the pod's excludeOutboundPorts", BARE,
     {"traffic.sidecar.istio.io/excludeOutboundPorts": "3306"},
     [*HEAD, "15090,15021,15020", "-o", "3306", *TAIL]),
    ("includeInboundPorts, includeOutboundPorts and IP ranges", BARE,
     {"traffic.sidecar.istio.io/includeInboundPorts": "8080",
      "traffic.sidecar.istio.io/includeOutboundPorts": "443",
      "traffic.sidecar.istio.io/includeOutboundIPRanges": "10.96.0.0/16",
      "traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.96.0.1/32"},
     ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT",
      "-i", "10.96.0.0/16", "-x", "10.96.0.1/32", "-b", "8080", "-d", "15090,15021,15020",
      "-q", "443", *TAIL]),
]


@pytest.mark.parametrize("title,cfg,ann,want", ARGS, ids=[a[0] for a in ARGS])
def test_init_args(title: str, cfg: MeshConfig, ann: Obj, want: list[str]) -> None:
    out = inject(pod(annotations={"sidecar.istio.io/inject": "true", **ann}), cfg)
    assert out is not None
    assert init_args(out) == want


def test_init_container_shape() -> None:
    out = inject(pod(), CFG)
    assert out is not None
    [init] = out["spec"]["initContainers"]
    assert init["name"] == "istio-init"
    assert init["image"] == "registry.redhat.io/openshift-service-mesh/proxyv2-rhel8:2.4"
    assert init["securityContext"]["capabilities"]["add"] == ["NET_ADMIN", "NET_RAW"]
    assert init["resources"] == {"requests": {"cpu": "10m", "memory": "40Mi"}}


def test_existing_init_containers_come_first() -> None:
    out = inject(pod(initContainers=[{"name": "setup", "image": "x"}]), CFG)
    assert out is not None
    assert [c["name"] for c in out["spec"]["initContainers"]] == ["setup", "istio-init"]


def test_interception_none_has_no_init() -> None:
    out = inject(pod(annotations={"sidecar.istio.io/inject": "true",
                                  "sidecar.istio.io/interceptionMode": "NONE"}), CFG)
    assert out is not None
    assert not out["spec"].get("initContainers")
    assert json.loads(out["metadata"]["annotations"]["sidecar.istio.io/status"])[
        "initContainers"] is None


# --- istio-proxy ------------------------------------------------------------------------

def test_proxy_container() -> None:
    out = inject(pod(containers=[{"name": "web", "image": "x",
                                  "ports": [{"name": "http", "containerPort": 8080}]},
                                 {"name": "helper", "image": "y"}]), CFG)
    assert out is not None
    assert [c["name"] for c in out["spec"]["containers"]] == ["web", "helper", "istio-proxy"]
    proxy = container(out, "istio-proxy")
    assert proxy["image"] == "registry.redhat.io/openshift-service-mesh/proxyv2-rhel8:2.4"
    assert proxy["args"] == ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local",
                             "--proxyLogLevel=warning", "--proxyComponentLogLevel=misc:error",
                             "--log_output_level=default:info"]
    assert proxy["ports"] == [{"containerPort": 15090, "protocol": "TCP",
                               "name": "http-envoy-prom"}]
    assert proxy["readinessProbe"] == {
        "httpGet": {"path": "/healthz/ready", "port": 15021}, "initialDelaySeconds": 1,
        "periodSeconds": 2, "timeoutSeconds": 3, "failureThreshold": 30}
    assert proxy["resources"] == {"requests": {"cpu": "10m", "memory": "40Mi"}}
    assert env_of(out, "POD_NAME") == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env_of(out, "POD_NAMESPACE") == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env_of(out, "INSTANCE_IP") == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env_of(out, "SERVICE_ACCOUNT") == {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}
    assert env_of(out, "ISTIO_META_WORKLOAD_NAME") == "web"
    assert env_of(out, "ISTIO_META_OWNER") == \
        "kubernetes://apis/apps/v1/namespaces/team/deployments/web"
    assert env_of(out, "ISTIO_META_MESH_ID") == "cluster.local"
    assert env_of(out, "TRUST_DOMAIN") == "cluster.local"
    assert env_of(out, "TERMINATION_DRAIN_DURATION_SECONDS") == "35"
    assert env_of(out, "ISTIO_META_APP_CONTAINERS") == "web,helper"
    assert json.loads(env_of(out, "ISTIO_META_POD_PORTS")) == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert json.loads(env_of(out, "PROXY_CONFIG"))["terminationDrainDuration"] == "35s"
    assert env_of(out, "CA_ADDR") == "istiod-basic.istio-system.svc:15012"
    assert env_of(out, "ISTIO_KUBE_APP_PROBERS") is None       # no probes, no env


def test_proxy_annotations() -> None:
    out = inject(pod(annotations={
        "sidecar.istio.io/inject": "true", "sidecar.istio.io/proxyCPU": "50m",
        "sidecar.istio.io/proxyMemoryLimit": "256Mi", "sidecar.istio.io/proxyImage": "quay.io/x/p:1",
        "readiness.status.sidecar.istio.io/periodSeconds": "5"}), CFG)
    assert out is not None
    proxy = container(out, "istio-proxy")
    assert proxy["resources"] == {"requests": {"cpu": "50m"}, "limits": {"memory": "256Mi"}}
    assert proxy["image"] == "quay.io/x/p:1"
    assert proxy["readinessProbe"]["periodSeconds"] == 5


@pytest.mark.parametrize("drain,want", [(5.0, "5"), (35.0, "35"), (0.0, "0"), (90.0, "90")])
def test_drain_env(drain: float, want: str) -> None:
    cfg = MeshConfig(members=frozenset({"team"}), termination_drain_s=drain)
    out = inject(pod(), cfg)
    assert out is not None and env_of(out, "TERMINATION_DRAIN_DURATION_SECONDS") == want


@pytest.mark.parametrize("s,want", [(35, "35s"), (5, "5s"), (90, "1m30s"), (3600, "1h0m0s"),
                                    (0.5, "500ms"), (0, "0s")])
def test_go_duration(s: float, want: str) -> None:
    assert inj.go_duration(s) == want


# --- probes -------------------------------------------------------------------------------

def probed(**probes: Obj) -> Obj:
    return pod(containers=[{"name": "web", "image": "x",
                            "ports": [{"name": "http", "containerPort": 8080},
                                      {"name": "admin", "containerPort": 9090}], **probes}])


PROBE_ROWS = [
    ("http readiness",
     {"readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 3}},
     {"readinessProbe": {"httpGet": {"path": "/app-health/web/readyz", "port": 15020,
                                     "scheme": "HTTP"}, "periodSeconds": 3}},
     '{"/app-health/web/readyz":{"httpGet":{"path":"/ready","port":8080,"scheme":"HTTP"},'
     '"timeoutSeconds":1}}'),
    ("named port, HTTPS, timeout kept",
     {"livenessProbe": {"httpGet": {"path": "/live", "port": "admin", "scheme": "HTTPS"},
                        "timeoutSeconds": 4}},
     {"livenessProbe": {"httpGet": {"path": "/app-health/web/livez", "port": 15020,
                                    "scheme": "HTTP"}, "timeoutSeconds": 4}},
     '{"/app-health/web/livez":{"httpGet":{"path":"/live","port":9090,"scheme":"HTTPS"},'
     '"timeoutSeconds":4}}'),
    ("tcp startup probe on a named port",
     {"startupProbe": {"tcpSocket": {"port": "http"}, "failureThreshold": 10}},
     {"startupProbe": {"httpGet": {"path": "/app-health/web/startupz", "port": 15020,
                                   "scheme": "HTTP"}, "failureThreshold": 10}},
     '{"/app-health/web/startupz":{"tcpSocket":{"port":8080},"timeoutSeconds":1}}'),
    ("all three, keys sorted as Go marshals a map; path defaulted to /",
     {"readinessProbe": {"tcpSocket": {"port": 8080}},
      "livenessProbe": {"httpGet": {"port": 8080}},
      "startupProbe": {"httpGet": {"path": "/s", "port": 8080,
                                   "httpHeaders": [{"name": "X-A", "value": "b&c"}]}}},
     None,
     '{"/app-health/web/livez":{"httpGet":{"path":"/","port":8080,"scheme":"HTTP"},'
     '"timeoutSeconds":1},"/app-health/web/readyz":{"tcpSocket":{"port":8080},'
     '"timeoutSeconds":1},"/app-health/web/startupz":{"httpGet":{"path":"/s","port":8080,'
     '"scheme":"HTTP","httpHeaders":[{"name":"X-A","value":"b\\u0026c"}]},"timeoutSeconds":1}}'),
    ("exec probes stay", {"readinessProbe": {"exec": {"command": ["true"]}}},
     {"readinessProbe": {"exec": {"command": ["true"]}}}, None),
    ("unknown named port: rewritten but not in the agent's table (as Istio)",
     {"readinessProbe": {"httpGet": {"path": "/r", "port": "nope"}}},
     {"readinessProbe": {"httpGet": {"path": "/app-health/web/readyz", "port": 15020,
                                     "scheme": "HTTP"}}}, None),
]


@pytest.mark.parametrize("title,probes,want_container,want_env", PROBE_ROWS,
                         ids=[r[0] for r in PROBE_ROWS])
def test_probe_rewrite(title: str, probes: Obj, want_container: Obj | None,
                       want_env: str | None) -> None:
    out = inject(probed(**probes), CFG)
    assert out is not None
    web = container(out, "web")
    for field, want in (want_container or {}).items():
        assert web[field] == want, field
    assert env_of(out, "ISTIO_KUBE_APP_PROBERS") == want_env


def test_probe_rewrite_disabled() -> None:
    probes = {"readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}}}
    p = probed(**probes)
    p["metadata"]["annotations"]["sidecar.istio.io/rewriteAppHTTPProbers"] = "false"
    out = inject(p, CFG)
    assert out is not None
    assert container(out, "web")["readinessProbe"] == probes["readinessProbe"]
    assert env_of(out, "ISTIO_KUBE_APP_PROBERS") is None


def test_rewrite_annotation_garbage_keeps_the_default() -> None:
    p = probed(readinessProbe={"httpGet": {"path": "/ready", "port": 8080}})
    p["metadata"]["annotations"]["sidecar.istio.io/rewriteAppHTTPProbers"] = "maybe"
    out = inject(p, CFG)
    assert out is not None and env_of(out, "ISTIO_KUBE_APP_PROBERS") is not None


# --- labels and annotations --------------------------------------------------------------

def test_labels_and_annotations() -> None:
    out = inject(pod(labels={"version": "v2"},
                     containers=[{"name": "app", "image": "x"}, {"name": "b", "image": "y"}]),
                 CFG, revision="basic")
    assert out is not None
    labels, ann = out["metadata"]["labels"], out["metadata"]["annotations"]
    assert labels["security.istio.io/tlsMode"] == "istio"
    assert labels["service.istio.io/canonical-name"] == "web"
    assert labels["service.istio.io/canonical-revision"] == "v2"
    assert ann["kubectl.kubernetes.io/default-container"] == "app"
    assert ann["kubectl.kubernetes.io/default-logs-container"] == "app"
    assert ann["sidecar.istio.io/status"] == (
        '{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":null,'
        '"imagePullSecrets":null,"revision":"basic"}')


CANONICAL = [
    ({"app.kubernetes.io/name": "shop", "app": "web"}, "shop"),
    ({"app": "web"}, "web"),
    ({}, "web"),                                   # the Deployment's name, from the ReplicaSet
]


@pytest.mark.parametrize("labels,want", CANONICAL)
def test_canonical_name(labels: Obj, want: str) -> None:
    p = pod()
    p["metadata"]["labels"] = {"pod-template-hash": "7d9f", **labels}
    out = inject(p, CFG)
    assert out is not None
    assert out["metadata"]["labels"]["service.istio.io/canonical-name"] == want
    assert out["metadata"]["labels"]["service.istio.io/canonical-revision"] == "latest"


DEPLOY_META = [
    ("ReplicaSet of a Deployment", "ReplicaSet", "web-7d9f", {"pod-template-hash": "7d9f"},
     ("web", "Deployment", "apps/v1")),
    ("bare ReplicaSet", "ReplicaSet", "rs1", {}, ("rs1", "ReplicaSet", "apps/v1")),
    ("CronJob's Job", "Job", "backup-28000000", {}, ("backup", "CronJob", "batch/v1")),
    ("Job", "Job", "once", {}, ("once", "Job", "apps/v1")),
]


@pytest.mark.parametrize("title,kind,owner,labels,want", DEPLOY_META,
                         ids=[d[0] for d in DEPLOY_META])
def test_deploy_meta(title: str, kind: str, owner: str, labels: Obj,
                     want: tuple[str, str, str]) -> None:
    p = {"metadata": {"name": owner + "-x", "generateName": owner + "-", "labels": labels,
                      "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": owner,
                                           "controller": True}]}}
    assert inj.deploy_meta(p) == want


def test_deploy_meta_bare_pod() -> None:
    assert inj.deploy_meta({"metadata": {"name": "solo"}}) == ("solo", "Pod", "v1")


# --- the view as admission ----------------------------------------------------------------

SMCP = {"apiVersion": "maistra.io/v2", "kind": "ServiceMeshControlPlane",
        "metadata": {"name": "basic", "namespace": "istio-system"},
        "spec": {"proxy": {"networking": {"trafficControl": {"inbound": {
            "excludedPorts": [8444, 8022]}}}}}}
SMMR = {"apiVersion": "maistra.io/v1", "kind": "ServiceMeshMemberRoll",
        "metadata": {"name": "default", "namespace": "istio-system"},
        "spec": {"members": ["team"]}}


def ns(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def bare_pod(ns_: str, name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns_,
                         "annotations": {"sidecar.istio.io/inject": "true"}},
            "spec": {"containers": [{"name": "app", "image": "docker.io/curlimages/curl"}]}}


def test_view_injects_on_create_only() -> None:
    async def run() -> None:
        view = InjectionView()
        admission = Admission()
        admission.default("", "Pod", view.defaulter)
        client = MemoryClient([ns("istio-system"), ns("team"), ns("outsider")],
                              kinds=crds.KINDS, admission=admission)
        task = asyncio.create_task(view.watch(client))
        try:
            await asyncio.wait_for(view.synced.wait(), 5)
            assert view.config is None                    # no SMCP: nothing to inject with
            plain = await client.create(bare_pod("team", "early"))
            assert [c["name"] for c in plain["spec"]["containers"]] == ["app"]

            await client.create(SMCP)
            await client.create(SMMR)

            async def member() -> None:
                while view.config is None or not view.config.is_member("team"):
                    await asyncio.sleep(0.01)
            await asyncio.wait_for(member(), 5)
            assert view.config is not None and view.config.excluded_inbound_ports == (8022, 8444)

            made = await client.create(bare_pod("team", "meshed"))
            assert [c["name"] for c in made["spec"]["containers"]] == ["app", "istio-proxy"]
            assert "15090,15021,8022,8444,15020" in made["spec"]["initContainers"][0]["args"]
            outside = await client.create(bare_pod("outsider", "plain"))
            assert [c["name"] for c in outside["spec"]["containers"]] == ["app"]

            # An update is not an injection point (Istio's webhook sees CREATE only).
            plain["metadata"].setdefault("labels", {})["x"] = "y"
            updated = await client.update(plain)
            assert [c["name"] for c in updated["spec"]["containers"]] == ["app"]

            # The namespace leaves the roll: new pods there are not injected.
            roll = await client.get(crds_ref("ServiceMeshMemberRoll"), "default", "istio-system")
            roll["spec"]["members"] = []
            await client.update(roll)

            async def gone() -> None:
                while view.config is not None and view.config.is_member("team"):
                    await asyncio.sleep(0.01)
            await asyncio.wait_for(gone(), 5)
            later = await client.create(bare_pod("team", "later"))
            assert [c["name"] for c in later["spec"]["containers"]] == ["app"]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())


def crds_ref(kind: str) -> Any:
    from skiff.mesh import membership
    return {"ServiceMeshMemberRoll": membership.SMMR}[kind]


def test_defaulter_survives_a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    view = InjectionView()
    view.config = CFG

    def boom(*a: Any, **k: Any) -> None:
        raise RuntimeError("bug")
    monkeypatch.setattr(injectview, "inject", boom)
    p = pod()
    before = copy.deepcopy(p)
    view.defaulter(p, None)
    assert p == before


def test_deploy_meta_without_generate_name() -> None:
    # skiff's ReplicaSet controller names its pods itself: the owner still decides.
    p = {"metadata": {"name": "web-7d9f-x1y2z", "labels": {"pod-template-hash": "7d9f"},
                      "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                           "name": "web-7d9f", "controller": True}]}}
    assert inj.deploy_meta(p) == ("web", "Deployment", "apps/v1")
