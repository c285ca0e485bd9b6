"""Rule update time: compile + apply for 1,000 pods under 100 NetworkPolicies, and 1,000 Services.

    sudo python benchmarks/network/rules.py            # 7 runs of each, medians printed
    sudo python benchmarks/network/rules.py --runs 3

Goal (issue 11): 1,000 pods under 100 policies compiled and applied in <= 100 ms.
The rulesets go into tables skiffbench-policy / skiffbench-proxy (addresses in
10.250.0.0/16 and 10.98.0.0/16, which no interface holds), deleted at the end
even on failure. Needs root and libnftables (or the nft command).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from skiff.node.network.nft import Nft, delete_tables  # noqa: E402
from skiff.node.network.policy import compile_policies  # noqa: E402
from skiff.node.network.proxier import compile_proxy  # noqa: E402

NAMESPACES, PODS_PER_NS, POLICIES_PER_NS = 20, 50, 5
POD_CIDR, BRIDGE_IP = "10.250.0.0/16", "10.250.0.1"


def world() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """1,000 pods in 20 namespaces, 100 policies mixing the selector and port kinds."""
    namespaces = [{"metadata": {"name": f"ns{n}", "labels": {"team": f"t{n % 4}"}}}
                  for n in range(NAMESPACES)]
    pods = []
    for i in range(NAMESPACES * PODS_PER_NS):
        n = i // PODS_PER_NS
        pods.append({
            "metadata": {"namespace": f"ns{n}", "name": f"p{i}",
                         "labels": {"app": f"app{i % 10}", "tier": ("web", "db")[i % 2]}},
            "spec": {"containers": [{"name": "c", "ports": [
                {"name": "http", "containerPort": 8080 + i % 3}]}]},
            "status": {"phase": "Running", "podIP": f"10.250.{2 + i // 250}.{i % 250 + 2}"}})
    policies = []
    for n in range(NAMESPACES):
        for k in range(POLICIES_PER_NS):
            spec: dict[str, Any] = {"podSelector": {"matchLabels": {"app": f"app{(n + k) % 10}"}}}
            if k == 0:
                spec["ingress"] = [{"from": [{"namespaceSelector": {"matchLabels": {"team": "t1"}}}],
                                    "ports": [{"port": "http"}]}]
            elif k == 1:
                spec["ingress"] = [{"from": [{"podSelector": {"matchLabels": {"tier": "web"}}}],
                                    "ports": [{"port": 5432}, {"port": 9000, "endPort": 9100}]}]
            elif k == 2:
                spec["ingress"] = [{"from": [{"namespaceSelector": {"matchLabels": {"team": "t2"}},
                                              "podSelector": {"matchLabels": {"tier": "db"}}},
                                             {"ipBlock": {"cidr": "10.0.0.0/8",
                                                          "except": ["10.250.0.0/16"]}}]}]
            elif k == 3:
                spec["policyTypes"] = ["Ingress", "Egress"]
                spec["ingress"] = [{}]
                spec["egress"] = [{"to": [{"namespaceSelector": {}}]},
                                  {"to": [{"ipBlock": {"cidr": f"{BRIDGE_IP}/32"}}],
                                   "ports": [{"port": 53, "protocol": "UDP"}]}]
            else:
                spec["podSelector"] = {}
                spec["ingress"] = [{"from": [{"podSelector": {}}]}]
            policies.append({"metadata": {"namespace": f"ns{n}", "name": f"pol{k}"}, "spec": spec})
    return policies, pods, namespaces


def services(count: int = 1000, endpoints: int = 3) -> tuple[list[Any], list[Any]]:
    svcs, slices = [], []
    for i in range(count):
        name = f"svc{i}"
        svcs.append({"metadata": {"namespace": "bench", "name": name},
                     "spec": {"clusterIP": f"10.98.{i // 250}.{i % 250 + 2}",
                              **({"sessionAffinity": "ClientIP"} if i % 10 == 0 else {}),
                              "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
        slices.append({"metadata": {"namespace": "bench", "name": f"{name}-a",
                                    "labels": {"kubernetes.io/service-name": name}},
                       "addressType": "IPv4",
                       "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                       "endpoints": [{"addresses": [f"10.250.{2 + (i * endpoints + e) // 250 % 200}."
                                                    f"{(i * endpoints + e) % 250 + 2}"],
                                      "conditions": {"ready": True}}
                                     for e in range(endpoints)]})
    return svcs, slices


def measure(label: str, runs: int, compile_fn: Any, nft: Nft) -> None:
    compiles, applies, totals = [], [], []
    script = ""
    for _ in range(runs):
        t0 = time.perf_counter()
        script = compile_fn()
        t1 = time.perf_counter()
        nft.run(script)
        t2 = time.perf_counter()
        compiles.append((t1 - t0) * 1000)
        applies.append((t2 - t1) * 1000)
        totals.append((t2 - t0) * 1000)
    print(f"{label}: compile {statistics.median(compiles):.1f} ms, apply "
          f"{statistics.median(applies):.1f} ms, total {statistics.median(totals):.1f} ms "
          f"(median of {runs}; total min..max {min(totals):.1f}..{max(totals):.1f}); "
          f"script {len(script) / 1024:.0f} KiB, {script.count(chr(10))} lines")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    policies, pods, namespaces = world()
    svcs, slices = services()
    nft = Nft()
    print(f"backend {nft.backend}; {len(pods)} pods, {len(policies)} policies, "
          f"{len(svcs)} services x 3 endpoints")
    try:
        measure("NetworkPolicy: 1,000 pods, 100 policies", args.runs,
                lambda: compile_policies(policies, pods, namespaces, pod_cidr=POD_CIDR,
                                         bridge_ip=BRIDGE_IP, table="skiffbench-policy"), nft)
        measure("Services: 1,000 services, 3,000 endpoints", args.runs,
                lambda: compile_proxy(svcs, slices, bridge_ip=BRIDGE_IP, pod_cidr=POD_CIDR,
                                      table="skiffbench-proxy"), nft)
    finally:
        delete_tables("skiffbench", nft)
        nft.close()


if __name__ == "__main__":
    main()
