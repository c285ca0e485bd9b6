"""compile_policies(): NetworkPolicies, Pods and Namespaces -> the enforcing nftables table.

Behaviour with real packets is in test_nft_netns.py (truth tables); here the
script's structure (who is isolated, which sets hold what) and `nft -c` (check
mode: validated by the kernel, nothing committed) where root and nft allow.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Any

import pytest

from skiff.node.network.nft import Nft
from skiff.node.network.policy import compile_policies, policy_types

needs_nft = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None,
                               reason="nft check mode needs root and the nft command")
NET = {"pod_cidr": "10.244.0.0/16", "bridge_ip": "10.244.0.1"}


def pod(ns: str, name: str, ip: str | None, labels: dict[str, str] | None = None,
        ports: tuple[tuple[str, int, str], ...] = (), **spec: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": spec.pop("phase", "Running")}
    if ip:
        status["podIP"] = ip
    return {"metadata": {"namespace": ns, "name": name, "labels": labels or {}},
            "spec": {"containers": [{"name": "c", "ports": [
                {"name": n, "containerPort": p, "protocol": proto} for n, p, proto in ports]}],
                **spec},
            "status": status}


def ns(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}}


def netpol(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name}, "spec": spec}


def elements(script: str, name: str) -> set[str]:
    """The elements of set or map `name` in a compiled script."""
    m = re.search(rf"(?:set|map) {re.escape(name)} {{[^}}]*?elements = {{ ([^}}]*) }}", script)
    return {e.strip() for e in m.group(1).split(",")} if m else set()


def chain(script: str, name: str) -> list[str]:
    m = re.search(rf"chain {re.escape(name)} {{\n(.*?)\n\t}}", script, re.S)
    assert m, f"no chain {name}"
    return [line.strip() for line in m.group(1).splitlines()]


PODS = [pod("a", "web", "10.244.0.2", {"app": "web"}, (("http", 8080, "TCP"),)),
        pod("a", "db", "10.244.0.3", {"app": "db"}),
        pod("b", "client", "10.244.0.4", {"app": "client"}, (("http", 9090, "TCP"),)),
        pod("b", "host", "192.0.2.2", {"app": "client"}, hostNetwork=True),
        pod("b", "pending", None, {"app": "client"}),
        pod("b", "done", "10.244.0.9", {"app": "client"}, phase="Succeeded")]
NAMESPACES = [ns("a", team="red"), ns("b")]

TYPES = [
    ({}, ["Ingress"]),
    ({"ingress": [{}]}, ["Ingress"]),
    ({"egress": [{}]}, ["Ingress", "Egress"]),
    ({"egress": []}, ["Ingress"]),
    ({"policyTypes": ["Egress"], "ingress": [{}]}, ["Egress"]),
]


@pytest.mark.parametrize("spec,want", TYPES)
def test_policy_types_default_as_upstream(spec: dict[str, Any], want: list[str]) -> None:
    assert policy_types(spec) == want


def test_isolation_maps_per_direction() -> None:
    script = compile_policies([netpol("a", "deny", podSelector={}),
                               netpol("b", "egress", podSelector={"matchLabels": {"app": "client"}},
                                      egress=[{}])], PODS, NAMESPACES, **NET)
    assert elements(script, "ingress-isolated") == {
        "10.244.0.2 : goto ingress-a", "10.244.0.3 : goto ingress-a",
        "10.244.0.4 : goto ingress-b"}
    # hostNetwork, IP-less and finished pods are not policed
    assert elements(script, "egress-isolated") == {"10.244.0.4 : jump egress-b"}
    assert elements(script, "egress-host-isolated") == {"10.244.0.4 : goto egress-host-b"}
    assert chain(script, "ingress-a") == ["drop"]
    assert chain(script, "forward")[1:] == ["ct state established,related accept",
                                            "ip saddr vmap @egress-isolated",
                                            "ip daddr vmap @ingress-isolated"]


def test_peers_namespace_and_pod_selector_and_or() -> None:
    both = netpol("a", "and", podSelector={}, ingress=[{"from": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "b"}},
         "podSelector": {"matchLabels": {"app": "db"}}}]}])
    either = netpol("a", "or", podSelector={}, ingress=[{"from": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "b"}}},
        {"podSelector": {"matchLabels": {"app": "db"}}}]}])
    script = compile_policies([both, either], PODS, NAMESPACES, **NET)
    rules = chain(script, "ingress-a")
    # AND matches no pod (b has no app=db): the rule is left out, not widened
    assert not any('"a/and ingress[0]"' in r for r in rules)
    assert elements(script, "pol1-in0-peers") == {"10.244.0.3", "10.244.0.4"}


def test_ip_block_except_and_merged_peers() -> None:
    pol = netpol("a", "cidr", podSelector={"matchLabels": {"app": "web"}}, ingress=[{"from": [
        {"ipBlock": {"cidr": "10.244.0.0/24", "except": ["10.244.0.0/25"]}},
        {"podSelector": {"matchLabels": {"app": "db"}}}]}])
    script = compile_policies([pol], PODS, NAMESPACES, **NET)
    # pods in a hash set, ipBlocks in an interval set: one rule each
    assert elements(script, "pol0-in0-peers") == {"10.244.0.3"}
    assert elements(script, "pol0-in0-cidrs") == {"10.244.0.128/25"}
    rules = chain(script, "ingress-a")
    assert [r.split(" accept")[0] for r in rules[:-1]] == [
        "ip daddr @pol0-pods ip saddr @pol0-in0-peers",
        "ip daddr @pol0-pods ip saddr @pol0-in0-cidrs"]


def test_ports_numbers_ranges_protocols_and_named_ports_per_destination() -> None:
    pol = netpol("a", "ports", podSelector={}, ingress=[{"ports": [
        {"port": 80}, {"port": 8000, "endPort": 8100}, {"protocol": "UDP", "port": 53},
        {"protocol": "SCTP"}, {"port": "http"}]}])
    script = compile_policies([pol], PODS, NAMESPACES, **NET)
    rules = chain(script, "ingress-a")
    assert any("meta l4proto tcp th dport { 80, 8000-8100 } accept" in r for r in rules)
    assert any("meta l4proto udp th dport { 53 } accept" in r for r in rules)
    assert any("meta l4proto sctp accept" in r for r in rules)
    # "http" exists on a/web only (8080); a/db has no such port
    assert elements(script, "pol0-in0-named") == {"10.244.0.2 . tcp . 8080"}
    assert all(r.endswith('comment "a/ports ingress[0]"') for r in rules[:-1])


def test_egress_named_ports_resolve_on_the_peers_and_never_match_the_host() -> None:
    pol = netpol("a", "out", podSelector={"matchLabels": {"app": "web"}}, policyTypes=["Egress"],
                 egress=[{"ports": [{"port": "http"}]},
                         {"to": [{"ipBlock": {"cidr": "10.244.0.1/32"}}],
                          "ports": [{"port": 53, "protocol": "UDP"}]}])
    script = compile_policies([pol], PODS, NAMESPACES, **NET)
    assert elements(script, "pol0-eg0-named") == {"10.244.0.2 . tcp . 8080",
                                                  "10.244.0.4 . tcp . 9090"}
    host = chain(script, "egress-host-a")
    assert len(host) == 2 and host[-1] == "drop"
    assert host[0].startswith("ip saddr @pol0-pods ct original ip daddr @pol0-eg1-cidrs "
                              "meta l4proto udp ct original proto-dst { 53 } accept")
    assert chain(script, "egress-a")[0].endswith('return comment "a/out egress[0]"')


def test_identical_peer_sets_are_declared_once() -> None:
    same = {"from": [{"namespaceSelector": {}}]}
    script = compile_policies([netpol("a", "one", podSelector={}, ingress=[same]),
                               netpol("a", "two", podSelector={}, ingress=[same])],
                              PODS, NAMESPACES, **NET)
    assert "set pol0-in0-peers" in script and "set pol1-in0-peers" not in script
    assert chain(script, "ingress-a")[1].startswith("ip daddr @pol0-pods ip saddr @pol0-in0-peers")


def test_policies_that_select_nothing_or_cannot_be_read_do_nothing() -> None:
    script = compile_policies([
        netpol("a", "nobody", podSelector={"matchLabels": {"app": "none"}}),
        netpol("a", "bad", podSelector={"matchExpressions": [{"key": "app", "operator": "Is"}]}),
        netpol("c", "empty-ns", podSelector={})], PODS, NAMESPACES, **NET)
    assert elements(script, "ingress-isolated") == set()
    assert "chain ingress-" not in script


def test_namespaces_get_their_name_label_even_when_missing_from_the_list() -> None:
    pol = netpol("a", "from-b", podSelector={}, ingress=[{"from": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "b"}}}]}])
    script = compile_policies([pol], PODS, [], **NET)
    assert elements(script, "pol0-in0-peers") == {"10.244.0.4"}


@needs_nft
def test_scripts_pass_nft_check_mode() -> None:
    policies = [
        netpol("a", "everything", podSelector={}, policyTypes=["Ingress", "Egress"],
               ingress=[{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                                  {"namespaceSelector": {}}],
                         "ports": [{"port": "http"}, {"port": 1, "endPort": 1024},
                                   {"protocol": "UDP"}]}],
               egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}, {"ports": [{"port": 53}]}]),
        netpol("b", "deny", podSelector={}, policyTypes=["Ingress", "Egress"]),
    ]
    with Nft() as nft:
        nft.check(compile_policies(policies, PODS, NAMESPACES, **NET))
        nft.check(compile_policies([], [], [], **NET))
