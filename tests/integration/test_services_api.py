"""Services through the real kubectl against a real `skiff up`: ClusterIPs from the service
CIDR, EndpointSlices and Endpoints from ready pods, the `kubernetes` Service, and upstream's
errors for bad requests. Every wait has a deadline; nothing asserts on timings."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from skiffproc import Skiff

HELLO = "docker.io/openshift/hello-openshift"


def service(name: str, **spec: Any) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": name, "namespace": "default"},
                       "spec": {"selector": {"app": name}, "ports": [{"port": 80}], **spec}})


def test_the_kubernetes_service_is_at_the_first_address(skiff: Skiff) -> None:
    svc = skiff.kubectl_json("get", "service", "kubernetes", "-n", "default")
    assert svc["spec"]["clusterIP"] == "10.96.0.1"
    assert svc["spec"]["ports"][0]["name"] == "https" and svc["spec"]["ports"][0]["port"] == 443
    eps = skiff.kubectl_json("get", "endpointslices", "-n", "default",
                             "-l", "kubernetes.io/service-name=kubernetes")
    assert [p["port"] for p in eps["items"][0]["ports"]] == [skiff.api_port]


def test_expose_gives_a_clusterip_and_endpointslices_list_the_ready_pod(skiff: Skiff) -> None:
    skiff.kubectl("create", "deployment", "hello", f"--image={HELLO}")
    skiff.kubectl("expose", "deployment", "hello", "--port=80", "--target-port=8080")
    svc = skiff.kubectl_json("get", "service", "hello")
    assert ipaddress.ip_address(svc["spec"]["clusterIP"]) in ipaddress.ip_network("10.96.0.0/16")
    assert svc["spec"]["ipFamilies"] == ["IPv4"] and svc["spec"]["ipFamilyPolicy"] == "SingleStack"

    def ready_endpoint() -> Any:
        items = skiff.kubectl_json("get", "endpointslices",
                                   "-l", "kubernetes.io/service-name=hello")["items"]
        eps = [e for s in items for e in s.get("endpoints") or []
               if (e.get("conditions") or {}).get("ready")]
        return (items, eps) if eps else None
    items, eps = skiff.wait_for(ready_endpoint, timeout=60, what="a ready endpoint of hello")
    assert len(eps) == 1 and eps[0]["targetRef"]["kind"] == "Pod"
    assert eps[0]["targetRef"]["name"].startswith("hello-")
    assert items[0]["ports"][0]["port"] == 8080
    owner = items[0]["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Service", "hello", True)
    table = skiff.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=hello").stdout
    assert table.split("\n")[0].split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert "IPv4" in table and "8080" in table
    ep_table = skiff.kubectl("get", "endpoints", "hello").stdout
    assert ep_table.split("\n")[0].split() == ["NAME", "ENDPOINTS", "AGE"]
    assert ":8080" in ep_table
    assert "Endpoints:" in skiff.kubectl("describe", "service", "hello").stdout
    skiff.kubectl("delete", "service", "hello")
    skiff.wait_for(lambda: not skiff.kubectl_json(
        "get", "endpointslices", "-l", "kubernetes.io/service-name=hello")["items"],
        timeout=30, what="the slices of a deleted Service to go with it")


def test_bad_requests_get_upstreams_errors(skiff: Skiff) -> None:
    r = skiff.kubectl("apply", "-f", "-", input=service("far", clusterIP="10.0.0.1"), check=False)
    assert r.returncode != 0
    assert ('spec.clusterIPs: Invalid value: []string{"10.0.0.1"}: failed to allocate IP '
            "10.0.0.1: the provided IP (10.0.0.1) is not in the valid range. The range of valid "
            "IPs is 10.96.0.0/16") in r.stderr
    r = skiff.kubectl("apply", "-f", "-", input=service("dup", clusterIP="10.96.0.1"), check=False)
    assert "failed to allocate IP 10.96.0.1: provided IP is already allocated" in r.stderr
    r = skiff.kubectl("create", "service", "clusterip", "odd", "--clusterip=10.96.0.999",
                      "--tcp=80:80", check=False)
    assert ('spec.clusterIPs[0]: Invalid value: "10.96.0.999": must be a valid IP address'
            in r.stderr)
    skiff.kubectl("apply", "-f", "-", input=service("fixed", clusterIP="10.96.0.42"))
    r = skiff.kubectl("patch", "service", "fixed", "-p",
                      '{"spec":{"clusterIP":"10.96.0.43","clusterIPs":["10.96.0.43"]}}',
                      check=False)
    assert "may not change once set" in r.stderr
    netpol = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": "bad"},
              "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 80, "endPort": 79}],
                                                       "from": [{"ipBlock": {"cidr": "nope"}}]}]}}
    r = skiff.kubectl("apply", "-f", "-", input=json.dumps(netpol), check=False)
    assert "spec.ingress[0].ports[0].endPort: Invalid value: 80: must be greater than or equal " \
           "to `port`" in r.stderr
    assert 'spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "nope"' in r.stderr


def test_headless_and_external_name(skiff: Skiff) -> None:
    skiff.kubectl("apply", "-f", "-", input=service("db", clusterIP="None"))
    assert skiff.kubectl_json("get", "service", "db")["spec"]["clusterIPs"] == ["None"]
    skiff.kubectl("create", "service", "externalname", "ext", "--external-name=example.com")
    assert "clusterIP" not in skiff.kubectl_json("get", "service", "ext")["spec"]
