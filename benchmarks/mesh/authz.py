"""Authorization decision time: decide() with 1,000 AuthorizationPolicies in scope.

    python benchmarks/mesh/authz.py                 # 5 rounds of 20,000 decisions, p50/p99
    python benchmarks/mesh/authz.py --rounds 3 --decisions 50000

Goal (issue 12): <= 20 us per decision with 1,000 policies in scope.
Scenarios (policies compiled once, as the sidecar receives them):
- mesh: 1,000 policies over 100 namespaces (10 each: a namespace allow list, selector
  ALLOWs by principal, method+path and header, a DENY on paths and one on an ipBlock) plus
  10 mesh-wide ones in istio-system; requests go to 200 workloads from 300 peers with
  varied paths (normalized on every decision), half allowed, half denied;
- worst: all 1,000 policies select one workload (500 DENY + 500 ALLOW rules, none of which
  matches), so every decision walks every rule: the cost per rule, not a realistic mesh;
- cold: the mesh scenario's first decision per workload (the per-workload selection is
  built, then memoised).
Timing is per call with perf_counter_ns; the process is single-threaded CPU work.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from skiff.mesh.authz import Request, Workload, compile_policies, decide, principal_for  # noqa: E402

NAMESPACES, PER_NS, ROOT = 100, 10, 10


def _p(ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def mesh_policies() -> list[dict[str, Any]]:
    out = []
    for i in range(NAMESPACES):
        ns = f"ns-{i}"
        friends = [f"ns-{(i + k) % NAMESPACES}" for k in range(3)]
        out.append(_p(ns, "allow-friends", {"rules": [
            {"from": [{"source": {"namespaces": friends + ["istio-system"]}}]}]}))
        for j in range(6):
            out.append(_p(ns, f"allow-app-{j}", {"selector": {"matchLabels": {"app": f"app-{j}"}}, "rules": [
                {"from": [{"source": {"principals": [f"cluster.local/ns/ns-{(i + 7) % NAMESPACES}/sa/sa-{j}"]}}],
                 "to": [{"operation": {"methods": ["GET", "POST"], "paths": [f"/api/v{j}/*", "/healthz"]}}]},
                {"when": [{"key": "request.headers[x-tenant]", "values": [f"tenant-{j}", "ops-*"]}]}]}))
        out.append(_p(ns, "deny-admin", {"action": "DENY", "rules": [
            {"to": [{"operation": {"paths": ["/admin*", "*.php"]}}]}]}))
        out.append(_p(ns, "deny-range", {"action": "DENY", "rules": [
            {"from": [{"source": {"ipBlocks": ["192.0.2.0/24"]}}]}]}))
        out.append(_p(ns, "allow-drain", {"rules": [{"to": [{"operation": {"ports": ["8022"]}}]}]}))
    for k in range(ROOT):
        out.append(_p("istio-system", f"global-{k}", {"action": "DENY", "selector": {"matchLabels": {"tier": f"t{k}"}},
                                                      "rules": [{"when": [{"key": "request.headers[x-block]", "values": ["*"]}]}]}))
    return out


def mesh_requests(rng: random.Random, n: int) -> list[Request]:
    workloads = [Workload.of(f"ns-{rng.randrange(NAMESPACES)}", {"app": f"app-{rng.randrange(6)}", "tier": f"t{rng.randrange(20)}"})
                 for _ in range(200)]
    peers = [principal_for(f"ns-{rng.randrange(NAMESPACES)}", f"sa-{rng.randrange(6)}") for _ in range(300)]
    paths = ["/api/v1/items", "/api/v3/items?x=1", "/healthz", "/admin/x", "/a/b/../c", "/static/%41pp.js", "/"]
    out = []
    for _ in range(n):
        out.append(Request(rng.choice(workloads), rng.choice((8080, 8012)), method=rng.choice(("GET", "POST", "DELETE")),
                           path=rng.choice(paths), host="svc.example", source_principal=rng.choice(peers),
                           source_ip=f"10.128.{rng.randrange(4)}.{rng.randrange(250)}",
                           headers={"x-tenant": rng.choice(("tenant-1", "ops-a", "none"))}))
    return out


def worst_policies() -> list[dict[str, Any]]:
    out = []
    for k in range(500):
        out.append(_p("hot", f"deny-{k:03d}", {"action": "DENY", "rules": [
            {"from": [{"source": {"principals": [f"cluster.local/ns/bad-{k}/sa/x"]}}], "to": [{"operation": {"paths": [f"/p{k}/*"]}}]}]}))
        out.append(_p("hot", f"allow-{k:03d}", {"rules": [
            {"from": [{"source": {"namespaces": [f"friend-{k}"]}}], "to": [{"operation": {"methods": ["GET"]}}]}]}))
    return out


def _time(ps: Any, reqs: list[Request]) -> list[int]:
    out = []
    clock = time.perf_counter_ns
    for r in reqs:
        t = clock()
        decide(ps, r)
        out.append(clock() - t)
    return out


def _pct(xs: list[int], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] / 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--decisions", type=int, default=20000)
    a = ap.parse_args()
    rng = random.Random(12)

    objs = mesh_policies()
    t = time.perf_counter()
    mesh = compile_policies(objs)
    compile_ms = (time.perf_counter() - t) * 1000
    reqs = mesh_requests(rng, a.decisions)
    allowed = sum(decide(mesh, r).allowed for r in reqs)
    print(f"mesh: {len(mesh)} policies compiled in {compile_ms:.1f} ms; "
          f"{allowed / len(reqs):.0%} of the requests allowed")

    worst = compile_policies(worst_policies())
    wreq = [Request(Workload.of("hot"), 8080, method="POST", path=f"/q/{i % 50}",
                    source_principal=principal_for("stranger", "x")) for i in range(a.decisions)]
    assert not decide(worst, wreq[0]).allowed

    gc.disable()
    rows: dict[str, list[tuple[float, float]]] = {"mesh": [], "worst": [], "cold": []}
    for _ in range(a.rounds):
        lat = _time(mesh, reqs)
        rows["mesh"].append((_pct(lat, 0.5), _pct(lat, 0.99)))
        lat = _time(worst, wreq[: max(1000, a.decisions // 10)])
        rows["worst"].append((_pct(lat, 0.5), _pct(lat, 0.99)))
        fresh = compile_policies(objs)          # empty per-workload memo
        seen: set[Workload] = set()
        firsts = [r for r in reqs if not (r.destination in seen or seen.add(r.destination))]
        lat = _time(fresh, firsts)
        rows["cold"].append((_pct(lat, 0.5), _pct(lat, 0.99)))
    gc.enable()
    for name, vals in rows.items():
        p50 = statistics.median(v[0] for v in vals)
        p99 = statistics.median(v[1] for v in vals)
        print(f"{name:>5}: p50 {p50:7.1f} us   p99 {p99:7.1f} us   (median of {a.rounds} rounds)")
    print("goal: <= 20 us per decision with 1,000 policies in scope")


if __name__ == "__main__":
    main()
