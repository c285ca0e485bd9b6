"""Golden tables for the AuthorizationPolicy engine (tests/golden/authz/*.yaml).

fields.yaml / actions.yaml / tcp.yaml / chapter2.yaml: policies + request -> verdict, deciding
action, policy, rule (and reason, status, audit, dry-run where a case names them);
normalization.yaml: raw path -> normalized path per mode (Istio's own table, plus its
%01..%ff loop generated here); validation.yaml: spec -> Istio's errors and warnings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml

from skiff.mesh.authz import (
    Decision,
    PathRejected,
    Request,
    Workload,
    compile_policies,
    decide,
    normalize_path,
    principal_for,
)
from skiff.mesh.authz.validate import problems, validate_authorization_policy

GOLDEN = Path(__file__).resolve().parents[4] / "tests" / "golden" / "authz"


def _load(name: str) -> Any:
    return yaml.safe_load((GOLDEN / name).read_text())


def _request(spec: dict[str, Any], default_ns: str = "app") -> Request:
    to = spec.get("to")
    if isinstance(to, str):
        dest = Workload.of(default_ns, {"app": to})
    else:
        dest = Workload.of(to["namespace"], to.get("labels") or {})
    principal = None
    if "from" in spec:
        ns, sa = spec["from"].split("/")
        principal = principal_for(ns, sa)
    return Request(
        destination=dest, port=int(spec.get("port", 8080)), http=spec.get("http", True),
        host=spec.get("host", ""), method=spec.get("method", "GET"), path=spec.get("path", "/"),
        headers=spec.get("headers") or {}, source_principal=principal,
        source_ip=spec.get("source_ip", "10.128.0.10"), remote_ip=spec.get("remote_ip"),
        destination_ip=spec.get("destination_ip", "10.128.0.20"), sni=spec.get("sni", ""),
        request_principal=spec.get("request_principal"), auth_claims=spec.get("claims"),
        filter_metadata=spec.get("metadata") or {})


def _check(d: Decision, expect: dict[str, Any]) -> None:
    got = {
        "allowed": d.allowed, "action": d.action, "policy": d.policy, "rule": d.rule,
        "reason": d.reason, "status": d.status,
        "audit": list(d.audit) if d.audit else None,
        "dry_run_would": [{"action": s.action, "allowed": s.allowed, "policy": s.policy,
                           "rule": s.rule} for s in d.dry_run_would],
    }
    assert {k: got[k] for k in expect} == expect, d.reason


def _fields_cases() -> list[Any]:
    data = _load("fields.yaml")
    ps = compile_policies(data["policies"])
    return [pytest.param(ps, c, id=c["name"]) for c in data["cases"]]


@pytest.mark.parametrize(("policies", "case"), _fields_cases())
def test_fields(policies: Any, case: dict[str, Any]) -> None:
    _check(decide(policies, _request(case["request"])), case["expect"])


def _action_cases() -> list[Any]:
    out = []
    for f in ("actions.yaml", "tcp.yaml"):
        for g in _load(f)["groups"]:
            ps = compile_policies(g["policies"], g.get("root_namespace", "istio-system"))
            verdicts = g.get("ext_authz") or {}
            for c in g["cases"]:
                out.append(pytest.param(ps, verdicts, c, id=f"{f}: {g['name']}: {c['name']}"))
    return out


@pytest.mark.parametrize(("policies", "verdicts", "case"), _action_cases())
def test_actions(policies: Any, verdicts: dict[str, bool], case: dict[str, Any]) -> None:
    d = decide(policies, _request(case["request"]), ext_authz=lambda p, _r: verdicts.get(p))
    _check(d, case["expect"])


def _chapter2_cases() -> list[Any]:
    data = _load("chapter2.yaml")
    objs: list[Any] = []
    for f in data["policy_files"]:
        objs.extend(o for o in yaml.safe_load_all((GOLDEN / f).read_text()) if o)
    ps = compile_policies(objs)
    return [pytest.param(ps, c, id=c["name"]) for c in data["cases"]]


@pytest.mark.parametrize(("policies", "case"), _chapter2_cases())
def test_chapter2(policies: Any, case: dict[str, Any]) -> None:
    _check(decide(policies, _request(case["request"])), case["expect"])


def test_chapter2_policies_are_valid() -> None:
    data = _load("chapter2.yaml")
    for f in data["policy_files"]:
        for o in yaml.safe_load_all((GOLDEN / f).read_text()):
            if o:
                assert validate_authorization_policy(o) == [], o["metadata"]


def _normalization_cases() -> list[Any]:
    out = []
    for mode, rows in _load("normalization.yaml").items():
        out.extend(pytest.param(mode, raw, want, id=f"{mode} {raw}") for raw, want in rows)
    # Istio's PercentEncoded loop: %01..%ff under DECODE_AND_MERGE_SLASHES; unreserved
    # characters, `/` and `\\` are decoded (`\\` then becomes `/`), the rest kept as sent.
    for i in range(1, 0x100):
        raw = f"/admin%{i:02x}"
        c = chr(i)
        decoded = c.isascii() and (c.isalnum() or c in "-._~/\\")
        want = unquote(raw).replace("\\", "/") if decoded else raw
        out.append(pytest.param("DECODE_AND_MERGE_SLASHES", raw, want, id=f"percent {raw}"))
    return out


@pytest.mark.parametrize(("mode", "raw", "want"), _normalization_cases())
def test_normalization(mode: str, raw: str, want: str) -> None:
    try:
        got = normalize_path(raw, mode).path
    except PathRejected:
        got = "400"
    assert got == want


def _validation_cases() -> list[Any]:
    return [pytest.param(c, id=c["name"]) for c in _load("validation.yaml")]


@pytest.mark.parametrize("case", _validation_cases())
def test_validation(case: dict[str, Any]) -> None:
    obj = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
           "metadata": {"name": "p", "namespace": "ns"}, "spec": case["spec"]}
    assert validate_authorization_policy(obj) == case["errors"]
    warnings = [str(p) for p in problems(obj) if p.warning]
    assert warnings == case.get("warnings", [])
