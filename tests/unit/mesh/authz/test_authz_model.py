"""Compile-time behaviour the golden tables do not show: why a rule is skipped, bad values
under ALLOW vs DENY, unknown keys, the dry-run annotation's parsing, admission causes."""

from __future__ import annotations

from skiff.mesh.authz import Request, Workload, compile_policies, compile_policy, decide
from skiff.mesh.authz.validate import admit

W = Workload.of("app", {"app": "web"})


def _policy(spec: dict, annotations: dict | None = None) -> dict:
    meta = {"name": "p", "namespace": "app", "annotations": annotations or {}}
    return {"metadata": meta, "spec": spec}


def test_allow_rule_with_http_fields_is_skipped_on_tcp_only() -> None:
    p = compile_policy(_policy({"rules": [{"to": [{"operation": {"paths": ["/x"]}}]}]}))
    assert p.rules[0].skipped == "on TCP: 'path' is HTTP only"
    assert decide(compile_policies([_policy({"rules": [{"to": [{"operation": {"paths": ["/x"]}}]}]})]),
                  Request(W, 80, path="/x")).allowed


def test_bad_cidr_skips_an_allow_rule_but_only_the_value_of_a_deny_rule() -> None:
    src = {"from": [{"source": {"ipBlocks": ["10.0.0.0/8", "not-an-ip"]}}]}
    allow = compile_policy(_policy({"rules": [src]}))
    assert allow.rules[0].skipped is not None
    deny = compile_policy(_policy({"action": "DENY", "rules": [src]}))
    assert deny.rules[0].skipped is None
    ps = compile_policies([_policy({"action": "DENY", "rules": [src]})])
    assert not decide(ps, Request(W, 80, source_ip="10.1.1.1")).allowed
    assert decide(ps, Request(W, 80, source_ip="192.168.1.1")).allowed


def test_unknown_when_key_skips_the_rule_for_every_action() -> None:
    rule = {"when": [{"key": "source.foo", "values": ["a"]}]}
    ps = compile_policies([_policy({"action": "DENY", "rules": [rule]})])
    assert ps.by_namespace["app"][0].rules[0].skipped == "unknown attribute source.foo"
    assert decide(ps, Request(W, 80)).allowed


def test_dry_run_annotation_parsing() -> None:
    assert compile_policy(_policy({}, {"istio.io/dry-run": "True"})).dry_run
    bad = compile_policy(_policy({}, {"istio.io/dry-run": "yes"}))
    assert not bad.dry_run and "failed to parse" in bad.notes[0]


def test_header_names_are_case_insensitive() -> None:
    r = Request(W, 80, headers={"X-Tenant": "a"})
    assert r.headers == {"x-tenant": "a"}


def test_denied_http_and_tcp_status() -> None:
    ps = compile_policies([_policy({})])
    assert decide(ps, Request(W, 80)).status == 403
    assert decide(ps, Request(W, 80, http=False)).status is None


def test_admission_causes_carry_field_and_istio_prefix() -> None:
    obj = _policy({"rules": [{"when": [{"key": "nope", "values": ["a"]}]}]})
    causes = admit(obj, None)
    assert causes[0].field == "spec.rules[0].when[0].key"
    assert causes[0].message == ("spec.rules[0].when[0].key: invalid policy p.app: invalid `value` "
                                 "for `key` nope: unknown attribute: nope")
    assert admit(_policy({"rules": [{}]}), None) == []
