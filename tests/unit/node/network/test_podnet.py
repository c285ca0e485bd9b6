"""The pod network's pure parts: range checks, addresses, the pod's resolv.conf and hosts, the
fence that keeps pod traffic on the machine, and the shared-loopback fallback's note."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess

import pytest

from skiff.node.network.agent import policy_view
from skiff.node.network.podnet import (
    Ipam,
    LoopbackNetwork,
    NetworkError,
    choose,
    fence_rules,
    first_host,
    resolv_conf,
    validate_cidrs,
)
from skiff.node.network.sandbox import hosts_file


@pytest.mark.parametrize("pod, svc, hosts, want", [
    ("10.244.0.0/16", "10.96.0.0/16", [], []),
    ("10.244.0.0/33", "10.96.0.0/16", [], ["--pod-cidr: invalid CIDR address: 10.244.0.0/33"]),
    ("10.244.0.1/16", "10.96.0.0/16", [], ["--pod-cidr: invalid CIDR address: 10.244.0.1/16"]),
    ("fd00::/64", "10.96.0.0/16", [], ["--pod-cidr: fd00::/64: only IPv4 ranges are supported"]),
    ("10.244.0.0/25", "10.96.0.0/16", [], ["--pod-cidr: 10.244.0.0/25 is too small"]),
    ("10.96.0.0/12", "10.96.0.0/16", [], ["--service-cidr 10.96.0.0/16 overlaps --pod-cidr"]),
    ("127.0.0.0/16", "10.96.0.0/16", [], ["--pod-cidr: 127.0.0.0/16 is not a usable"]),
    ("192.0.2.0/24", "10.96.0.0/16", ["192.0.2.0/24"],
     ["--pod-cidr: 192.0.2.0/24 overlaps the host's network 192.0.2.0/24"]),
    ("10.244.0.0/16", "10.96.0.0/16", ["127.0.0.0/8", "192.0.2.0/24"], []),
])
def test_validate_cidrs(pod: str, svc: str, hosts: list[str], want: list[str]) -> None:
    got = validate_cidrs(pod, svc, hosts)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.startswith(w), g


def test_ipam_skips_the_bridge_goes_round_and_does_not_reuse_at_once() -> None:
    ipam = Ipam("10.244.0.0/24")
    first = [ipam.allocate() for _ in range(3)]
    assert first == ["10.244.0.2", "10.244.0.3", "10.244.0.4"]
    ipam.release("10.244.0.2")
    assert ipam.allocate() == "10.244.0.5"       # a freed address waits its turn
    rest = [ipam.allocate() for _ in range(254 - 6 + 1)]      # .6 .. .254
    assert rest[-1] == "10.244.0.254" and len(set(rest)) == len(rest)
    assert ipam.allocate() == "10.244.0.2"       # ... and comes round again
    with pytest.raises(NetworkError, match="no free address"):
        ipam.allocate()


def test_resolv_conf_and_hosts_are_the_kubelets() -> None:
    assert resolv_conf("team-alpha-1", "10.244.0.1") == (
        "nameserver 10.244.0.1\n"
        "search team-alpha-1.svc.cluster.local svc.cluster.local cluster.local\n"
        "options ndots:5\n")
    hosts = hosts_file("10.244.0.7", "web-1")
    assert "127.0.0.1\tlocalhost\n" in hosts and hosts.endswith("10.244.0.7\tweb-1\n")


def test_first_host() -> None:
    assert first_host("10.96.0.0/16") == "10.96.0.1"
    assert first_host("10.244.0.0/16") == "10.244.0.1"


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None, reason="nft -c needs root")
def test_fence_rules_are_valid_nft() -> None:
    script = fence_rules(table="skiffut-fence")
    assert 'iifname "skiff0" oifname != "skiff0" drop' in script
    r = subprocess.run(["nft", "-c", "-f", "-"], input=script, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_loopback_mode_is_chosen_and_says_why() -> None:
    net, note = asyncio.run(choose("loopback"))
    assert isinstance(net, LoopbackNetwork) and net.bridge_ip is None
    assert note.startswith("pod network: shared loopback (--pod-network loopback)")
    assert "NetworkPolicy and STRICT mTLS are not enforced" in note


def test_policy_view_ignores_status_churn() -> None:
    pod = {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"ports": []}]},
           "status": {"podIP": "10.244.0.9", "phase": "Running", "conditions": []}}
    churn = {**pod, "status": {**pod["status"], "conditions": [{"type": "Ready"}]}}
    relabelled = {**pod, "metadata": {"labels": {"app": "b"}}}
    assert policy_view(pod) == policy_view(churn)
    assert policy_view(pod) != policy_view(relabelled)
