"""The `kubernetes` Service in `default`: the API server as a Service, as kube-apiserver keeps it.

Upstream's bootstrap controller (pkg/controlplane/controller/kubernetesservice)
creates the Service at the first address of the service CIDR (port 443, named
https, targetPort the API server's port) and its endpoints reconciler keeps an
EndpointSlice and an Endpoints object, both named `kubernetes`, that point at
the API server's address. Neither carries the EndpointSlice controller's
managed-by label and the Service has no selector, so that controller
(core/reconcilers/endpointslice.py) leaves them alone. The objects are pure
builders; ensure() writes them through the registry at start-up (called from
platform.py), creating what is missing and refreshing what changed (the API
server's address moves when the pod network's bridge takes over).
"""

from __future__ import annotations

import logging

from skiff.core.apiserver.registry import Registry
from skiff.core.client import ApiError, Obj, Ref
from skiff.core.clusterip import ServiceRange, parse_ip

log = logging.getLogger("skiff.apiserver")

NAME = "kubernetes"
NAMESPACE = "default"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def service(cluster_ip: str, api_port: int) -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "sessionAffinity": "None",
                     "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                "targetPort": api_port}]}}


def endpoint_slice(host: str, api_port: int) -> Obj:
    ip = parse_ip(host)
    address_type = "FQDN" if ip is None else "IPv6" if ip.version == 6 else "IPv4"
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {SERVICE_NAME_LABEL: NAME}},
            "addressType": address_type,
            "endpoints": [{"addresses": [host], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": api_port, "protocol": "TCP"}]}


def endpoints(host: str, api_port: int) -> Obj:
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": host}],
                         "ports": [{"name": "https", "port": api_port, "protocol": "TCP"}]}]}


_CONTENT = ("spec", "subsets", "endpoints", "ports", "addressType")


def _refresh(registry: Registry, want: Obj) -> None:
    k = registry.kind_for(Ref(want["apiVersion"], want["kind"]))
    try:
        have = registry.get(k, NAMESPACE, NAME)
    except ApiError as e:
        if e.code != 404:
            raise
        registry.create(k, NAMESPACE, want)
        return
    changed = False
    for f in _CONTENT:
        if f not in want:
            continue
        if f == "spec":
            spec = have.setdefault("spec", {})
            for sf, v in want["spec"].items():
                if sf not in ("clusterIP", "clusterIPs") and spec.get(sf) != v:
                    spec[sf] = v
                    changed = True
        elif have.get(f) != want[f]:
            have[f] = want[f]
            changed = True
    if changed:
        registry.update(k, NAMESPACE, NAME, have)


def ensure(registry: Registry, service_cidr: str, host: str, api_port: int) -> None:
    """Create or refresh the `kubernetes` Service, its EndpointSlice and its Endpoints."""
    cluster_ip = ServiceRange.parse(service_cidr).ip_at(0)
    objects = [service(cluster_ip, api_port), endpoint_slice(host, api_port)]
    if parse_ip(host) is not None:
        objects.append(endpoints(host, api_port))
    for want in objects:
        try:
            _refresh(registry, want)
        except ApiError as e:   # e.g. the address taken by a user's Service: skiff still runs
            log.warning("%s %s/%s: %s", want["kind"], NAMESPACE, NAME, e.message)
