"""The mesh part (config.py) and its compiler (controller.py): round trips, refused input, and
what the control plane hands the sidecars from pods, Services, EndpointSlices and policies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from skiff.mesh.membership import MeshConfig
from skiff.mesh.sidecar import config
from skiff.mesh.sidecar.controller import (
    GATEWAY_IDENTITY,
    app_probers,
    compile_part,
    inbound_mtls,
    local_gateway_vips,
    meshed_pod,
    service_vips,
)

CFG = MeshConfig(mtls=True, members=frozenset({"istio-system", "team-a", "team-b"}))
PROBERS = {"/app-health/app/readyz": {"tcpSocket": {"port": 8080}, "timeoutSeconds": 1}}


def pod(ns: str, name: str, ip: str = "10.244.0.9", proxy: bool = True, sa: str = "",
        phase: str = "Running", labels: dict[str, str] | None = None) -> dict[str, Any]:
    containers: list[dict[str, Any]] = [{"name": "app", "image": "x"}]
    if proxy:
        containers.append({"name": "istio-proxy", "image": "proxyv2", "env": [
            {"name": "ISTIO_KUBE_APP_PROBERS", "value": json.dumps(PROBERS)}]})
    spec: dict[str, Any] = {"containers": containers}
    if sa:
        spec["serviceAccountName"] = sa
    return {"kind": "Pod", "metadata": {"namespace": ns, "name": name, "uid": f"uid-{name}",
                                        "labels": labels or {"app": name}},
            "spec": spec, "status": {"podIP": ip, "phase": phase}}


def service(ns: str, name: str, ip: str | None, ports: list[dict[str, Any]],
            type_: str = "ClusterIP") -> dict[str, Any]:
    spec: dict[str, Any] = {"type": type_, "ports": ports}
    if ip is not None:
        spec["clusterIP"] = ip
    return {"kind": "Service", "metadata": {"namespace": ns, "name": name}, "spec": spec}


def slice_(ns: str, svc: str, ports: list[dict[str, Any]], endpoints: list[dict[str, Any]]
           ) -> dict[str, Any]:
    return {"kind": "EndpointSlice", "metadata": {"namespace": ns, "name": f"{svc}-x",
                                                  "labels": {"kubernetes.io/service-name": svc}},
            "ports": ports, "endpoints": endpoints}


def issue(ns: str, sa: str) -> tuple[bytes, bytes]:
    return f"cert {ns}/{sa}".encode(), f"key {ns}/{sa}".encode()


def compile_(pods: list[dict[str, Any]], services: list[dict[str, Any]] = (),  # type: ignore[assignment]
             slices: list[dict[str, Any]] = (), policies: list[dict[str, Any]] = (),  # type: ignore[assignment]
             netns: dict[str, str] | None = None) -> config.MeshPart:
    known = netns if netns is not None else {p["metadata"]["name"]: f"/run/netns/skiff-{i}"
                                             for i, p in enumerate(pods)}
    return compile_part(pods, services, slices, policies, CFG, b"root", issue,
                        lambda _ns, name: known.get(name), lambda ns, name: f"/logs/{ns}/{name}",
                        lambda p: inbound_mtls([], CFG, p))


def test_meshed_pods_are_members_with_a_proxy_an_ip_and_a_namespace() -> None:
    part = compile_([pod("team-a", "web", sa="web-sa"), pod("team-a", "plain", proxy=False),
                     pod("elsewhere", "outsider"), pod("team-b", "done", phase="Succeeded"),
                     pod("team-b", "starting")], netns={"web": "/run/netns/skiff-1",
                                                        "outsider": "/run/netns/skiff-2",
                                                        "done": "/run/netns/skiff-3"})
    assert [w.name for w in part.workloads] == ["web"]
    w = part.workloads[0]
    assert (w.namespace, w.service_account, w.ip, w.netns) == \
        ("team-a", "web-sa", "10.244.0.9", "/run/netns/skiff-1")
    assert w.spiffe_id == "spiffe://cluster.local/ns/team-a/sa/web-sa"
    assert (w.cert_pem, w.key_pem) == (b"cert team-a/web-sa", b"key team-a/web-sa")
    assert w.mtls == "STRICT" and w.access_log == "/logs/team-a/web"
    assert dict(w.app_probers) == {k: json.dumps(v) for k, v in PROBERS.items()}
    assert (part.gateway_cert, part.gateway_key) == issue(*GATEWAY_IDENTITY)


def test_default_service_account_and_peer_authentication_modes() -> None:
    pa = [{"kind": "PeerAuthentication", "metadata": {"namespace": "team-a", "name": "web",
                                                      "creationTimestamp": "2026-01-01T00:00:00Z"},
           "spec": {"selector": {"matchLabels": {"app": "web"}}, "mtls": {"mode": "PERMISSIVE"},
                    "portLevelMtls": {"9090": {"mode": "DISABLE"}}}}]
    p = pod("team-a", "web")
    assert inbound_mtls(pa, CFG, p) == ("PERMISSIVE", ((9090, "DISABLE"),))
    assert inbound_mtls([], CFG, p) == ("STRICT", ())
    part = compile_([p])
    assert part.workloads[0].service_account == "default"


def test_service_vips_by_port_name_and_readiness() -> None:
    svcs = [service("team-a", "web", "10.96.0.20", [{"name": "http", "port": 80,
                                                     "targetPort": 8080},
                                                    {"name": "dns", "port": 53, "protocol": "UDP"}]),
            service("team-a", "ext", None, [{"port": 80}], type_="ExternalName"),
            service("team-a", "headless", "None", [{"port": 80}])]
    slices = [slice_("team-a", "web", [{"name": "http", "port": 8080}],
                     [{"addresses": ["10.244.0.9"], "conditions": {"ready": True}},
                      {"addresses": ["10.244.0.10"], "conditions": {"ready": False}},
                      {"addresses": ["10.244.0.11"]}])]
    vips = service_vips(svcs, slices)
    assert vips == (config.ServiceVip("10.96.0.20", 80, "team-a/web",
                                      (("10.244.0.11", 8080), ("10.244.0.9", 8080)), "HTTP"),)


def test_local_gateway_vips_are_the_knative_local_gateways() -> None:
    svcs = [service("istio-system", "knative-local-gateway", "10.96.0.30", [{"port": 80}]),
            service("knative-serving-ingress", "kourier-internal", "10.96.0.31",
                    [{"port": 80}, {"port": 443}]),
            service("istio-system", "istio-ingressgateway", "10.96.0.32", [{"port": 443}])]
    assert local_gateway_vips(svcs) == (("10.96.0.30", 80), ("10.96.0.31", 80),
                                        ("10.96.0.31", 443))


def test_app_probers_tolerates_bad_json() -> None:
    assert app_probers({"env": [{"name": "ISTIO_KUBE_APP_PROBERS", "value": "{oops"}]}) == ()
    assert app_probers({"env": []}) == ()
    assert not meshed_pod(pod("team-a", "x", ip=""))


def test_part_round_trip() -> None:
    part = compile_([pod("team-a", "web")],
                    [service("team-a", "web", "10.96.0.20", [{"name": "http", "port": 80}])],
                    [slice_("team-a", "web", [{"name": "http", "port": 8080}],
                            [{"addresses": ["10.244.0.9"]}])],
                    [{"apiVersion": "security.istio.io/v1beta1", "kind": "AuthorizationPolicy",
                      "metadata": {"name": "deny", "namespace": "team-a", "managedFields": []},
                      "spec": {}}])
    wire = json.loads(json.dumps(config.encode(part)))
    back = config.decode(wire)
    assert back == part
    assert back.policies[0]["metadata"] == {"name": "deny", "namespace": "team-a"}


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(workloads="x"), "workloads must be a list"),
    (lambda d: d["workloads"][0].update(mtls="SOMETIMES"), "workloads[0].mtls must be one of"),
    (lambda d: d["workloads"][0].update(cert="!!"), "workloads[0].cert is not base64"),
    (lambda d: d["workloads"][0].update(portMtls=[[0, "STRICT"]]), "must be a port number"),
    (lambda d: d["services"].append(["10.96.0.1", 80, "a/b", [["x"]]]),
     "services[1].endpoints[0] must be [ip, port]"),
    (lambda d: d.update(policies=["nope"]), "policies must be objects"),
    (lambda d: d.update(workloads=[{}] * (config.MAX_WORKLOADS + 1)), "more than 10000"),
])
def test_a_bad_part_is_refused_with_the_field(mutate: Any, message: str) -> None:
    part = compile_([pod("team-a", "web")],
                    [service("team-a", "web", "10.96.0.20", [{"name": "http", "port": 80}])])
    d = json.loads(json.dumps(config.encode(part)))
    mutate(d)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config.decode(d)


def test_mode_for_a_port() -> None:
    w = config.SidecarWorkload("u", "ns", "n", "sa", "10.0.0.1", "/run/netns/x", mtls="STRICT",
                               port_mtls=((9090, "DISABLE"),))
    assert (w.mode_for(8080), w.mode_for(9090)) == ("STRICT", "DISABLE")


@pytest.mark.parametrize("mode, tls, alpn, want", [
    ("STRICT", True, (), "mtls"),                          # openssl s_client sees the SVID
    ("STRICT", True, ("istio-http/1.1",), "mtls"),
    ("STRICT", False, (), "reject"),                       # plaintext under STRICT: reset
    ("PERMISSIVE", True, ("istio-http/1.1", "http/1.1"), "mtls-optional"),
    ("PERMISSIVE", True, ("h2", "http/1.1"), "passthrough"),   # the app's own TLS
    ("PERMISSIVE", False, (), "plaintext"),
    ("DISABLE", True, ("istio",), "passthrough"),
    ("DISABLE", False, (), "plaintext"),
])
def test_inbound_treatment(mode: str, tls: bool, alpn: tuple[str, ...], want: str) -> None:
    assert config.inbound_treatment(mode, tls, alpn) == want


def test_a_pod_whose_proxy_has_exited_after_its_drain_leaves_the_mesh() -> None:
    draining = pod("team-a", "web")
    draining["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    draining["status"]["containerStatuses"] = [
        {"name": "app", "state": {"running": {}}},
        {"name": "istio-proxy", "state": {"running": {}}}]
    assert meshed_pod(draining)          # told to stop: it serves for the drain
    draining["status"]["containerStatuses"][1]["state"] = {"terminated": {"exitCode": 0}}
    assert not meshed_pod(draining)      # the drain is over: its listeners close
    assert [w.name for w in compile_([draining, pod("team-a", "other")]).workloads] == ["other"]
