"""The gateways' EndpointSlices (skiff's data plane plays the gateway pods) and the Route's
cluster-name Service (an ExternalName to the local gateway)."""

from __future__ import annotations

from skiff.dataplane.model import GatewaySettings
from skiff.mesh.gateway.endpoints import (
    GATEWAY_SERVICES,
    INGRESS_GATEWAY_SERVICE,
    KOURIER_SERVICES,
    LOCAL_GATEWAY_SERVICE,
    MANAGED_BY,
    desired_slice,
)
from skiff.serving.resources import make_k8s_service

GW = GatewaySettings(http_port=18080, https_port=18443, local_gateway_port=18081,
                     internal_https_port=40001)


def _with_uid(svc: dict) -> dict:  # type: ignore[type-arg]
    return {**svc, "metadata": {**svc["metadata"], "uid": "u1"}}


def test_local_gateway_ports_reach_the_local_listener() -> None:
    sl = desired_slice(_with_uid(LOCAL_GATEWAY_SERVICE), "local", GW)
    assert sl["metadata"]["labels"] == {"kubernetes.io/service-name": "knative-local-gateway",
                                        "endpointslice.kubernetes.io/managed-by": MANAGED_BY}
    assert sl["endpoints"] == [{"addresses": ["127.0.0.1"], "nodeName": "skiff",
                                "conditions": {"ready": True, "serving": True,
                                               "terminating": False}}]
    assert sl["ports"] == [{"name": "http2", "protocol": "TCP", "port": 18081}]
    assert sl["metadata"]["ownerReferences"][0]["uid"] == "u1"


def test_ingress_gateway_443_reaches_the_gateways_own_listener_and_80_plain_http() -> None:
    sl = desired_slice(_with_uid(INGRESS_GATEWAY_SERVICE), "ingress", GW)
    assert {p["name"]: p["port"] for p in sl["ports"]} == {"http2": 18080, "https": 40001}


def test_every_ensured_service_is_one_the_reconciler_serves() -> None:
    for svc in (LOCAL_GATEWAY_SERVICE, INGRESS_GATEWAY_SERVICE, *KOURIER_SERVICES):
        key = (svc["metadata"]["namespace"], svc["metadata"]["name"])
        assert key in GATEWAY_SERVICES


ROUTE = {"apiVersion": "serving.knative.dev/v1", "kind": "Route",
         "metadata": {"name": "hello", "namespace": "default", "uid": "r1",
                      "labels": {"serving.knative.dev/service": "hello"}}}


def test_route_service_waits_for_the_private_load_balancer() -> None:
    assert make_k8s_service(ROUTE, {"status": {}}) is None


def test_route_service_is_an_external_name_to_the_local_gateway() -> None:
    ing = {"status": {"privateLoadBalancer": {"ingress": [
        {"domainInternal": "knative-local-gateway.istio-system.svc.cluster.local"}]}}}
    svc = make_k8s_service(ROUTE, ing)
    assert svc is not None
    assert svc["metadata"]["name"] == "hello"
    assert svc["metadata"]["labels"]["serving.knative.dev/route"] == "hello"
    assert svc["metadata"]["ownerReferences"][0]["uid"] == "r1"
    assert svc["spec"] == {"type": "ExternalName", "sessionAffinity": "None",
                           "externalName": "knative-local-gateway.istio-system.svc.cluster.local",
                           "ports": [{"name": "http2", "port": 80, "protocol": "TCP",
                                      "targetPort": 80}]}
