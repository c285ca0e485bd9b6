"""mesh/authz/index.py: decide() over an index of many rules answers exactly as the walk of
every rule does (same verdict, same deciding policy and rule), for random policy sets with
exact and wildcard values, not-values, `when` keys, several sources per rule, odd SPIFFE IDs,
HTTP and TCP; and the guards read from the matcher tree."""

from __future__ import annotations

import random
from typing import Any

import pytest

from skiff.mesh.authz import Request, Workload, compile_policies, compile_policy, decide, evaluate
from skiff.mesh.authz.index import INDEX_MIN, RuleIndex, guard_of, request_keys

NS = ["a", "b", "c", "team-x"]
SA = ["default", "web", "x"]
PRINCIPALS = [f"cluster.local/ns/{n}/sa/{s}" for n in NS for s in SA] + [
    "td/ns/a/ns/b/sa/web", "other.td/ns/c/sa/x/extra", "cluster.local/ns//sa/x"]


def _values(rng: random.Random, pool: list[str]) -> list[str]:
    vals = rng.sample(pool, rng.randint(1, min(3, len(pool))))
    if rng.random() < 0.15:
        vals.append(rng.choice(["*", pool[0][:3] + "*", "*" + pool[-1][-3:]]))
    return vals


def _source(rng: random.Random) -> dict[str, Any]:
    src: dict[str, Any] = {}
    for field, pool in (("principals", PRINCIPALS), ("namespaces", NS + ["a/b", "te*"]),
                        ("notPrincipals", PRINCIPALS), ("ipBlocks", ["10.0.0.0/8", "192.0.2.1"])):
        if rng.random() < 0.3:
            src[field] = _values(rng, pool)
    return src


def _operation(rng: random.Random) -> dict[str, Any]:
    op: dict[str, Any] = {}
    for field, pool in (("methods", ["GET", "POST", "DELETE"]), ("ports", ["8080", "9000", "x"]),
                        ("paths", ["/a", "/b/*", "*.php"]), ("notMethods", ["PUT"])):
        if rng.random() < 0.25:
            op[field] = _values(rng, pool)
    return op


def _rule(rng: random.Random, action: str) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    if rng.random() < 0.8 or action in ("DENY", "CUSTOM"):
        rule["from"] = [{"source": _source(rng)} for _ in range(rng.randint(1, 2))]
        if action in ("DENY", "CUSTOM"):  # one matching everyone would decide every request
            for f in rule["from"]:
                f["source"]["principals"] = rng.sample(PRINCIPALS, 2)
    if rng.random() < 0.6:
        rule["to"] = [{"operation": _operation(rng)} for _ in range(rng.randint(1, 2))]
    if rng.random() < 0.3:
        key, pool = rng.choice([("source.principal", PRINCIPALS), ("source.namespace", NS),
                                ("destination.port", ["8080", "9000"]),
                                ("request.headers[x-t]", ["1", "2"])])
        rule["when"] = [{"key": key, "values": _values(rng, pool)}]
    return rule


def _policies(rng: random.Random, n: int,
              actions: tuple[str, ...] = ("ALLOW", "ALLOW", "DENY", "AUDIT"),
              ) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        action = rng.choice(actions)
        spec: dict[str, Any] = {"action": action,
                                "rules": [_rule(rng, action) for _ in range(rng.randint(1, 3))]}
        if action == "CUSTOM":
            spec["provider"] = {"name": "ext"}
        meta: dict[str, Any] = {"name": f"p{i:03d}", "namespace": "hot"}
        if rng.random() < 0.1:
            meta["annotations"] = {"istio.io/dry-run": "true"}
        out.append({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                    "metadata": meta, "spec": spec})
    return out


def _request(rng: random.Random) -> Request:
    return Request(Workload.of("hot"), rng.choice([8080, 9000, 15000]), http=rng.random() < 0.7,
                   method=rng.choice(["GET", "POST", "DELETE", "PUT"]),
                   path=rng.choice(["/a", "/b/c", "/x.php", "/"]),
                   source_principal=rng.choice([*PRINCIPALS, None, "spiffe://t/ns/b/sa/y"]),
                   source_ip=rng.choice(["10.1.2.3", "192.0.2.1", "172.16.0.1"]),
                   headers={"x-t": rng.choice(["1", "3"])})


@pytest.mark.parametrize("seed", range(12))
def test_the_index_decides_as_the_walk_does(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    objs = _policies(rng, rng.randint(INDEX_MIN, 80))
    reqs = [_request(rng) for _ in range(400)]
    ps = compile_policies(objs)
    indexed = [decide(ps, r) for r in reqs]
    monkeypatch.setattr(evaluate, "INDEX_MIN", 10**9)
    ps = compile_policies(objs)
    walked = [decide(ps, r) for r in reqs]
    assert indexed == walked
    # the sets exercise both answers and deciding rules
    assert {d.allowed for d in walked} == {True, False}
    assert any(d.action == "DENY" for d in walked) and any(d.action == "ALLOW" for d in walked)


@pytest.mark.parametrize("seed", range(8))
def test_every_list_indexed_decides_as_the_walk_does(seed: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Each action's list through the index however short it is: CUSTOM (an ext_authz
    answer that depends on the request), AUDIT and the dry-run (shadow) lists, which rarely
    reach INDEX_MIN rules in the test above, give the walk's verdict, deciding rule, audit
    and shadow results."""
    rng = random.Random(1000 + seed)
    objs = _policies(rng, rng.randint(10, 40), ("ALLOW", "DENY", "AUDIT", "CUSTOM"))
    for o in objs:
        if rng.random() < 0.3:
            o["metadata"]["annotations"] = {"istio.io/dry-run": "true"}
    reqs = [_request(rng) for _ in range(300)]

    def ext(_provider: str, r: Request) -> bool:
        return r.method != "DELETE"

    monkeypatch.setattr(evaluate, "INDEX_MIN", 1)
    ps = compile_policies(objs)
    indexed = [decide(ps, r, ext_authz=ext) for r in reqs]
    assert all(len(idx.refs) >= 1 for idx in ps.for_workload(Workload.of("hot")).indexes.values())
    monkeypatch.setattr(evaluate, "INDEX_MIN", 10**9)
    ps = compile_policies(objs)
    walked = [decide(ps, r, ext_authz=ext) for r in reqs]
    assert indexed == walked
    assert any(d.action == "CUSTOM" for d in walked)
    assert any(d.dry_run_would for d in walked) and any(d.audit for d in walked)


def _rule_node(rule: dict[str, Any], action: str = "ALLOW", http: bool = True) -> Any:
    p = compile_policy({"metadata": {"name": "p", "namespace": "hot"},
                        "spec": {"action": action, "rules": [rule]}})
    return p.rules[0].http if http else p.rules[0].tcp


def test_guards_read_from_the_tree() -> None:
    src = {"principals": ["cluster.local/ns/a/sa/x"], "namespaces": ["a", "b"]}
    assert guard_of(_rule_node({"from": [{"source": src}]})) == {
        "principal": frozenset({"cluster.local/ns/a/sa/x"}), "namespace": frozenset({"a", "b"})}
    # every alternative must carry the guard; their values add up
    two = {"from": [{"source": {"namespaces": ["a"]}}, {"source": {"namespaces": ["b"]},
                                                        "x": 1}]}
    assert guard_of(_rule_node(two)) == {"namespace": frozenset({"a", "b"})}
    one = {"from": [{"source": {"namespaces": ["a"]}}, {"source": {"ipBlocks": ["10.0.0.0/8"]}}]}
    assert guard_of(_rule_node(one)) == {}
    # wildcards, not-values alone and namespaces with a slash guard nothing
    for src in ({"principals": ["cluster.local/*"]}, {"notPrincipals": ["x"]},
                {"namespaces": ["a/b"]}):
        assert guard_of(_rule_node({"from": [{"source": src}]})) == {}
    # methods guard HTTP only; on TCP a DENY drops them, an ALLOW cannot be used at all
    op = {"to": [{"operation": {"methods": ["GET"], "ports": ["8080"]}}]}
    assert guard_of(_rule_node(op)) == {"method": frozenset({"GET"}), "port": frozenset({8080})}
    assert guard_of(_rule_node(op, "DENY", http=False)) == {"port": frozenset({8080})}
    assert guard_of(_rule_node(op, "ALLOW", http=False)) == {"never": frozenset()}


def test_request_keys_of_odd_spiffe_ids() -> None:
    def keys(p: str | None) -> list[object]:
        return list(request_keys("namespace", Request(Workload.of("hot"), 80,
                                                      source_principal=p)))
    assert keys("cluster.local/ns/a/sa/x") == ["a"]
    assert keys("td/ns/a/ns/b/sa/web") == ["a", "b"]
    assert keys("td/sa/x/ns/c") == []            # "/ns/c/" is not in it: no trailing slash
    assert keys(None) == []


def test_a_walk_of_a_thousand_rules_visits_only_the_candidates() -> None:
    objs = [{"metadata": {"name": f"deny-{k:03d}", "namespace": "hot"},
             "spec": {"action": "DENY", "rules": [{"from": [{"source": {
                 "principals": [f"cluster.local/ns/bad-{k}/sa/x"]}}]}]}} for k in range(1000)]
    wp = compile_policies(objs).for_workload(Workload.of("hot"))
    idx = RuleIndex(wp.deny, http=True)
    r = Request(Workload.of("hot"), 80, source_principal="cluster.local/ns/bad-7/sa/x")
    assert [wp.deny[i].policy.name for i in idx.candidates(r)] == ["deny-007"]
    stranger = Request(Workload.of("hot"), 80, source_principal="cluster.local/ns/s/sa/x")
    assert idx.candidates(stranger) == []
    d = decide(compile_policies(objs), r)
    assert (d.allowed, d.policy, d.rule) == (False, "hot/deny-007", 0)


def test_the_per_workload_selection_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from skiff.mesh.authz import model
    monkeypatch.setattr(model, "MEMO_MAX", 8)
    ps = compile_policies([{"metadata": {"name": "p", "namespace": "hot"},
                            "spec": {"rules": [{"from": [{"source": {"namespaces": ["a"]}}]}]}}])
    r = Request(Workload.of("hot", {"pod-template-hash": "0"}), 80,
                source_principal="cluster.local/ns/a/sa/x")
    first = decide(ps, r)
    for i in range(100):                 # a rollout's worth of new label sets
        ps.for_workload(Workload.of("hot", {"pod-template-hash": str(i)}))
        assert len(ps._memo) <= 8
    assert decide(ps, r) == first and first.allowed


def test_a_port_that_is_not_ascii_digits_is_skipped_not_a_crash() -> None:
    p = compile_policy({"metadata": {"name": "p", "namespace": "hot"},
                        "spec": {"action": "DENY", "rules": [{"to": [{"operation": {
                            "ports": ["²", "8080"]}}]}]}})
    assert guard_of(p.rules[0].http) == {"port": frozenset({8080})}
    allow = compile_policy({"metadata": {"name": "p", "namespace": "hot"},
                            "spec": {"rules": [{"to": [{"operation": {"ports": ["²"]}}]}]}})
    assert allow.rules[0].skipped
