"""compile_proxy(): Services + EndpointSlices -> kube-proxy's nftables ruleset.

Structural checks on the script, and `nft -c` (check mode: parsed and
validated by the kernel, nothing committed) where root and nft allow.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Any

import pytest

from skiff.node.network.nft import Nft
from skiff.node.network.proxier import ProxyEndpoint, compile_proxy, usable_endpoints

needs_nft = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None,
                               reason="nft check mode needs root and the nft command")
NET = {"bridge_ip": "10.244.0.1", "pod_cidr": "10.244.0.0/16"}


def svc(name: str, ip: str | None = "10.96.0.10", **spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                    "targetPort": "http"}], **spec}
    if ip is not None:
        s["clusterIP"] = ip
    return {"metadata": {"namespace": "ns", "name": name}, "spec": s}


def eps(name: str, *endpoints: dict[str, Any], port: int = 8080,
        port_name: str = "http") -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": f"{name}-x",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            "endpoints": list(endpoints)}


def ep(ip: str, **conditions: bool) -> dict[str, Any]:
    return {"addresses": [ip], "conditions": conditions}


ENDPOINT_TABLE = [
    ("ready only", [ep("10.244.0.2", ready=True), ep("10.244.0.3", ready=False)], ["10.244.0.2"]),
    ("missing conditions read as ready", [ep("10.244.0.2")], ["10.244.0.2"]),
    ("terminating serving ones only when none is ready",
     [ep("10.244.0.2", ready=False, serving=True, terminating=True),
      ep("10.244.0.3", ready=False, serving=False, terminating=True)], ["10.244.0.2"]),
    ("a ready endpoint hides the terminating ones",
     [ep("10.244.0.2", ready=False, serving=True, terminating=True),
      ep("10.244.0.4", ready=True)], ["10.244.0.4"]),
    ("not ready and not terminating: nothing", [ep("10.244.0.2", ready=False)], []),
    ("IPv6 addresses are skipped", [ep("fd00::2")], []),
]


@pytest.mark.parametrize("title,endpoints,want", ENDPOINT_TABLE,
                         ids=[t[0] for t in ENDPOINT_TABLE])
def test_usable_endpoints(title: str, endpoints: list[dict[str, Any]], want: list[str]) -> None:
    got = usable_endpoints(svc("a")["spec"]["ports"][0], [eps("a", *endpoints)])
    assert got == [ProxyEndpoint(ip, 8080) for ip in want]


def test_target_port_comes_from_the_slice_port_of_the_same_name_across_slices() -> None:
    slices = [eps("a", ep("10.244.0.2"), port=8080),
              eps("a", ep("10.244.0.3"), port=9090),
              eps("a", ep("10.244.0.4"), port=7070, port_name="metrics")]
    got = usable_endpoints(svc("a")["spec"]["ports"][0], slices)
    assert got == [ProxyEndpoint("10.244.0.2", 8080), ProxyEndpoint("10.244.0.3", 9090)]


def test_service_chain_spreads_with_a_numgen_dnat_map() -> None:
    script = compile_proxy([svc("a")], [eps("a", ep("10.244.0.2"), ep("10.244.0.3"))], **NET)
    assert script.startswith("add table ip skiff-proxy\ndelete table ip skiff-proxy\n")
    assert "10.96.0.10 . tcp . 80 : goto service-" in script
    assert ("meta l4proto tcp dnat to numgen random mod 2 map "
            "{ 0 : 10.244.0.2 . 8080, 1 : 10.244.0.3 . 8080 }") in script
    assert "chain endpoint-" not in script and "vmap { 0 : goto endpoint-" not in script
    assert "ip saddr != 10.244.0.0/16 jump mark-for-masquerade" in script
    assert "type nat hook prerouting priority dstnat" in script
    assert "type nat hook output priority -100" in script
    assert "masquerade fully-random" in script


def test_one_endpoint_is_a_plain_dnat() -> None:
    script = compile_proxy([svc("a")], [eps("a", ep("10.244.0.2"))], **NET)
    assert "meta l4proto tcp dnat to 10.244.0.2:8080" in script
    assert "numgen" not in script


def test_hairpin_is_marked_after_the_dnat_from_a_set_of_endpoint_addresses() -> None:
    script = compile_proxy([svc("a"), svc("b", ip="10.96.0.11")],
                           [eps("a", ep("10.244.0.10"), ep("10.244.0.9")),
                            eps("b", ep("10.244.0.9"))], **NET)
    # each endpoint address once, in address order
    assert "elements = { 10.244.0.9 . 10.244.0.9,\n\t\t\t10.244.0.10 . 10.244.0.10 }" in script
    post = script[script.index("chain nat-postrouting"):]
    assert post.index("ct status dnat ip saddr . ip daddr @hairpin jump mark-for-masquerade") \
        < post.index("jump masquerading")


def test_one_chain_per_service_port_endpoint_chains_only_with_affinity() -> None:
    services = [svc(f"s{i}", ip=f"10.96.1.{i}") for i in range(1, 11)]
    services[0]["spec"]["sessionAffinity"] = "ClientIP"
    slices = [eps(f"s{i}", *(ep(f"10.244.1.{3 * i + k}") for k in range(3)))
              for i in range(1, 11)]
    script = compile_proxy(services, slices, **NET)
    assert len(re.findall(r"\tchain service-[A-Z2-7]{8}-", script)) == 10
    assert len(re.findall(r"\tchain endpoint-[A-Z2-7]{8}-", script)) == 3    # s1's: affinity
    assert compile_proxy([], [], **NET).count("\tchain ") + 10 + 3 == script.count("\tchain ")


def test_no_endpoints_rejects_instead_of_hanging() -> None:
    script = compile_proxy([svc("a")], [eps("a", ep("10.244.0.2", ready=False))], **NET)
    assert "10.96.0.10 . tcp . 80 : goto reject-chain" in script
    assert "goto service-" not in script
    assert "meta l4proto tcp reject with tcp reset" in script


def test_session_affinity_sets_with_timeout() -> None:
    affinity = {"sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}
    script = compile_proxy([svc("a", **affinity)], [eps("a", ep("10.244.0.2"))], **NET)
    assert "flags dynamic,timeout" in script and "timeout 60s" in script
    assert "update @affinity-" in script and "ip saddr @affinity-" in script
    assert "numgen random mod 1 vmap { 0 : goto endpoint-" in script
    assert "meta l4proto tcp dnat to 10.244.0.2:8080" in script
    default = compile_proxy([svc("a", sessionAffinity="ClientIP")], [eps("a", ep("10.244.0.2"))],
                            **NET)
    assert "timeout 10800s" in default
    assert "affinity" not in compile_proxy([svc("a")], [eps("a", ep("10.244.0.2"))], **NET)


@pytest.mark.parametrize("service", [
    svc("headless", ip="None"), svc("unallocated", ip=None),
    svc("ext", ip=None, type="ExternalName", externalName="example.com"),
], ids=["headless", "no clusterIP", "ExternalName"])
def test_services_without_a_vip_get_nothing(service: dict[str, Any]) -> None:
    script = compile_proxy([service], [eps(service["metadata"]["name"], ep("10.244.0.2"))], **NET)
    assert "goto service-" not in script and "reject-chain }" not in script
    assert "dnat to 10.244" not in script


def test_slices_of_other_services_and_namespaces_do_not_count() -> None:
    other = eps("b", ep("10.244.0.9"))
    foreign = eps("a", ep("10.244.0.8"))
    foreign["metadata"]["namespace"] = "elsewhere"
    script = compile_proxy([svc("a")], [other, foreign], **NET)
    assert "goto reject-chain" in script and "10.244.0.9" not in script


def test_udp_and_host_ports() -> None:
    dns = svc("dns", ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])
    sl = eps("dns", ep("10.244.0.5"), port=5353, port_name="dns")
    sl["ports"][0]["protocol"] = "UDP"
    script = compile_proxy([dns], [sl], **NET, host_ports={443: 8443, 6443: 41000},
                           bridge="br-test")
    assert "10.96.0.10 . udp . 53 : goto service-" in script
    assert "meta l4proto udp dnat to 10.244.0.5:5353" in script
    assert 'iifname "br-test" ip daddr 10.244.0.1 tcp dport 443 dnat to 127.0.0.1:8443' in script
    assert 'tcp dport 6443 dnat to 127.0.0.1:41000' in script


def test_same_input_same_script() -> None:
    services = [svc("b", ip="10.96.0.11"), svc("a")]
    slices = [eps("a", ep("10.244.0.3"), ep("10.244.0.2")), eps("b", ep("10.244.0.4"))]
    once = compile_proxy(services, slices, **NET)
    assert once == compile_proxy(list(reversed(services)), list(reversed(slices)), **NET)


@needs_nft
def test_scripts_pass_nft_check_mode() -> None:
    affinity = {"sessionAffinity": "ClientIP"}
    dns = svc("dns", ip="10.96.0.53", ports=[{"name": "dns", "port": 53, "protocol": "UDP"},
                                            {"name": "dns-tcp", "port": 53, "protocol": "TCP"}])
    sl = eps("dns", ep("10.244.0.5"), port=53, port_name="dns")
    sl["ports"] = [{"name": "dns", "port": 53, "protocol": "UDP"},
                   {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]
    long = "x" * 63
    services = [svc("a", **affinity), dns, svc("none", ip="10.96.0.12"),
                svc("multi", ip="10.96.0.14"), svc(long, ip="10.96.0.13")]
    services[-1]["metadata"]["namespace"] = long
    long_slice = eps(long, ep("10.244.0.7"))
    long_slice["metadata"]["namespace"] = long
    multi = eps("multi", ep("10.244.0.2"), ep("10.244.0.3"), ep("10.244.0.4"))
    script = compile_proxy(services, [eps("a", ep("10.244.0.2"), ep("10.244.0.3")), sl, multi,
                                      long_slice], **NET, host_ports={443: 8443})
    with Nft() as nft:
        nft.check(script)
        nft.check(compile_proxy([], [], **NET))
