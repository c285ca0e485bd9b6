"""The gateways' Services and their endpoints: skiff's data plane plays the gateway pods.

On a cluster, istio-ingressgateway and knative-local-gateway (istio-system)
are Services over the gateway pods (selector `istio: ingressgateway`), and a
Knative Route's cluster name is an ExternalName to the local one; Kourier's
`kourier` and `kourier-internal` (knative-serving-ingress) likewise. Here the
gateways are listeners of the data-plane process on the node's loopback, so
this reconciler keeps, for each such Service, an EndpointSlice of its own
(managed-by gateway.skiff.dev, beside the built-in controller's empty one)
that points every port at the listener that serves it. The service proxy
DNATs a pod's connection to the Service's ClusterIP there (pods reach
127.0.0.1 through the bridge: podnet.py's route_localnet), so
`curl http://hello.default` from a pod goes pod -> VIP -> local gateway ->
the revision's pods, as upstream. ensure_services() creates the two Istio
Services at start-up when the mesh has not been given them yet.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable

from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.controller import Mapper
from skiff.core.reconcile import get_or_none
from skiff.dataplane.model import GatewaySettings

log = logging.getLogger("skiff.mesh")

SERVICE = Ref("v1", "Service")
ENDPOINT_SLICE = Ref("discovery.k8s.io/v1", "EndpointSlice")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "gateway.skiff.dev"      # a label value: no slash
NODE_ADDRESS = "127.0.0.1"

# (namespace, name) -> which listener each of its ports reaches: "local" (the local gateway),
# "https" (the ingress gateway's own 443), "http" (plain HTTP).
GATEWAY_SERVICES: dict[tuple[str, str], str] = {
    ("istio-system", "knative-local-gateway"): "local",
    ("istio-system", "istio-ingressgateway"): "ingress",
    ("knative-serving-ingress", "kourier-internal"): "local",
    ("knative-serving-ingress", "kourier"): "ingress",
}


def slice_name(service: str) -> str:
    return f"{service}-skiff-gateway"


def listener_port(role: str, svc_port: Obj, gw: GatewaySettings) -> int:
    """The data-plane port a Service port of a gateway reaches."""
    if role == "local":
        return gw.local_gateway_port
    port = int(svc_port.get("port") or 0)
    return gw.internal_https_port if port in (443, 8443) else gw.http_port


def desired_slice(svc: Obj, role: str, gw: GatewaySettings) -> Obj:
    """The EndpointSlice that puts the node's gateway listener behind `svc`. Pure."""
    m = svc["metadata"]
    ports = [{"name": p.get("name") or "", "protocol": p.get("protocol") or "TCP",
              "port": listener_port(role, p, gw)}
             for p in (svc.get("spec") or {}).get("ports") or []]
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name(m["name"]), "namespace": m["namespace"],
            "labels": {SERVICE_NAME_LABEL: m["name"], MANAGED_BY_LABEL: MANAGED_BY},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": m["name"],
                                 "uid": m.get("uid", ""), "controller": True,
                                 "blockOwnerDeletion": True}],
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [NODE_ADDRESS],
                       "conditions": {"ready": True, "serving": True, "terminating": False},
                       "nodeName": "skiff"}],
        "ports": ports,
    }


class GatewayEndpointsReconciler:
    name = "mesh-gateway-endpoints"
    primary = SERVICE

    def __init__(self, client: Client, settings: Callable[[], GatewaySettings | None]) -> None:
        self.client = client
        self.settings = settings       # known once the data plane's ports are chosen

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        def of_slice(o: Obj) -> list[tuple[str, str]]:
            m = o.get("metadata") or {}
            if (m.get("labels") or {}).get(MANAGED_BY_LABEL) != MANAGED_BY:
                return []
            return [(m.get("namespace") or "", (m.get("labels") or {}).get(SERVICE_NAME_LABEL, ""))]
        return [(ENDPOINT_SLICE, of_slice)]

    async def reconcile(self, namespace: str, name: str) -> float | None:
        role = GATEWAY_SERVICES.get((namespace, name))
        if role is None:
            return None
        gw = self.settings()
        if gw is None:
            return 0.5
        svc = await get_or_none(self.client, SERVICE, name, namespace)
        if svc is None or svc["metadata"].get("deletionTimestamp"):
            return None            # its slice goes with it (owner reference)
        want = desired_slice(svc, role, gw)
        have = await get_or_none(self.client, ENDPOINT_SLICE, want["metadata"]["name"], namespace)
        if have is None:
            await self.client.create(want)
        elif any(have.get(k) != want[k] for k in ("endpoints", "ports", "addressType")):
            upd = copy.deepcopy(have)
            upd.update({k: want[k] for k in ("endpoints", "ports", "addressType")})
            await self.client.update(upd)
        return None


LOCAL_GATEWAY_SERVICE: Obj = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "knative-local-gateway", "namespace": "istio-system",
                 "labels": {"experimental.istio.io/disable-gateway-port-translation": "true"}},
    "spec": {"type": "ClusterIP", "selector": {"istio": "ingressgateway"},
             "ports": [{"name": "http2", "port": 80, "targetPort": 8081, "protocol": "TCP"}]},
}
INGRESS_GATEWAY_SERVICE: Obj = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system",
                 "labels": {"app": "istio-ingressgateway", "istio": "ingressgateway"}},
    "spec": {"type": "ClusterIP", "selector": {"istio": "ingressgateway"},
             "ports": [{"name": "http2", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                       {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}]},
}


KOURIER_SERVICES: list[Obj] = [
    {"apiVersion": "v1", "kind": "Service",
     "metadata": {"name": name, "namespace": "knative-serving-ingress",
                  "labels": {"networking.knative.dev/ingress-provider": "kourier"}},
     "spec": {"type": "ClusterIP", "selector": {"app": "3scale-kourier-gateway"},
              "ports": ports}}
    for name, ports in (
        ("kourier-internal", [{"name": "http2", "port": 80, "targetPort": 8081,
                               "protocol": "TCP"}]),
        ("kourier", [{"name": "http2", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                     {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}]))]


async def ensure_services(client: Client) -> None:
    """The gateways' Services, as an installed mesh (Istio) and Serverless (Kourier) have them
    (the guide's own YAML for knative-local-gateway then applies over this one)."""
    try:
        await client.create({"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": "knative-serving-ingress"}})
    except ApiError as e:
        if e.code != 409:
            log.warning("mesh: cannot create namespace knative-serving-ingress: %s", e.message)
    for svc in (LOCAL_GATEWAY_SERVICE, INGRESS_GATEWAY_SERVICE, *KOURIER_SERVICES):
        try:
            await client.create(copy.deepcopy(svc))
        except ApiError as e:
            if e.code != 409:
                log.warning("mesh: cannot create Service %s/%s: %s", svc["metadata"]["namespace"],
                            svc["metadata"]["name"], e.message)
