"""Golden tables for PeerAuthentication and DestinationRule TLS (tests/golden/peerauth/*.yaml).

precedence.yaml: PeerAuthentications + workload/port -> mode, deciding policy, port-level;
validation.yaml: spec -> Istio's CRD/webhook rejections; destinationrule.yaml: rules +
host/port/client -> the client sidecar's TLS mode and the deciding rule. Plus the
admission registration in mesh/setup.py and the per-port view for inbound listeners.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from skiff.core.admission import Admission
from skiff.mesh.crds import SECURITY
from skiff.mesh.peerauth import (
    MtlsMode,
    destination_rule_for,
    effective_mtls,
    outbound_tls,
    port_level_modes,
    resolve_host,
)
from skiff.mesh.peerauth_validate import admit, validate_peer_authentication

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "peerauth"


def _load(name: str) -> Any:
    return yaml.safe_load((GOLDEN / name).read_text())


def _obj(kind: str, api: str, p: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": p["name"], "namespace": p["ns"]}
    if "created" in p:
        meta["creationTimestamp"] = p["created"]
    return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": p.get("spec") or {}}


def _cases(name: str, objs_key: str, kind: str, api: str) -> list[Any]:
    out = []
    for scenario in _load(name):
        objs = [_obj(kind, api, p) for p in scenario[objs_key]]
        for i, case in enumerate(scenario["cases"]):
            out.append(pytest.param(scenario, objs, case,
                                    id=f"{scenario['name']}: {case.get('name', i)}"))
    return out


@pytest.mark.parametrize(("scenario", "policies", "case"),
                         _cases("precedence.yaml", "policies", "PeerAuthentication",
                                "security.istio.io/v1beta1"))
def test_precedence(scenario: dict[str, Any], policies: list[dict[str, Any]],
                    case: dict[str, Any]) -> None:
    kw: dict[str, Any] = {"root_namespace": scenario.get("root_namespace", "istio-system")}
    if "mesh_default" in case:
        kw["mesh_default"] = case["mesh_default"]
    ns, labels, port = case.get("ns", "app"), case.get("labels", {"app": "web"}), case.get("port", 8080)
    got = effective_mtls(policies, ns, labels, port, **kw)
    assert isinstance(got, MtlsMode)
    expect = case["expect"]
    assert {k: getattr(got, k) for k in expect} == expect
    # The order the API server lists them in never matters.
    assert effective_mtls(list(reversed(policies)), ns, labels, port, **kw) == got
    # The per-port view agrees with the single-port answer.
    base, per_port = port_level_modes(policies, ns, labels, **kw)
    assert per_port.get(port, base) == got


def _validation_cases() -> list[Any]:
    return [pytest.param(c, id=c["name"]) for c in _load("validation.yaml")]


@pytest.mark.parametrize("case", _validation_cases())
def test_validation(case: dict[str, Any]) -> None:
    obj = {"apiVersion": case.get("apiVersion", "security.istio.io/v1beta1"),
           "kind": "PeerAuthentication", "metadata": {"name": "p", "namespace": "app"},
           "spec": case["spec"]}
    causes = validate_peer_authentication(obj, None)
    assert [c.message for c in causes] == case["errors"]
    for c in causes:
        assert c.message.startswith(f"{c.field}: ")
        assert c.reason in ("FieldValueInvalid", "FieldValueNotSupported")
    assert admit(obj, obj) == causes      # an update is checked like a create


@pytest.mark.parametrize(("scenario", "rules", "case"),
                         _cases("destinationrule.yaml", "rules", "DestinationRule",
                                "networking.istio.io/v1beta1"))
def test_destination_rule(scenario: dict[str, Any], rules: list[dict[str, Any]],
                          case: dict[str, Any]) -> None:
    client_ns = case.get("client_ns", "app")
    kw = {k: case[k] for k in ("auto_mtls", "destination_has_sidecar", "destination_mtls",
                               "subset", "client_labels") if k in case}
    got = outbound_tls(rules, case["host"], case.get("port", 8080), client_ns, **kw)
    assert got == case["expect"]
    assert outbound_tls(list(reversed(rules)), case["host"], case.get("port", 8080), client_ns,
                        **kw) == got
    if "rule" in case:
        found = destination_rule_for(rules, case["host"], client_ns,
                                     client_labels=case.get("client_labels"))
        m = found[0]["metadata"] if found else None
        assert (f"{m['namespace']}/{m['name']}" if m else "-") == case["rule"]


@pytest.mark.parametrize(("host", "ns", "want"), [
    ("reviews", "bar", "reviews.bar.svc.cluster.local"),
    ("Reviews", "bar", "reviews.bar.svc.cluster.local"),
    ("reviews.bar", "foo", "reviews.bar"),
    ("*", "bar", "*"),
    ("*.bar.svc.cluster.local", "foo", "*.bar.svc.cluster.local"),
    ("10.0.0.1", "bar", "10.0.0.1"),
    ("::1", "bar", "::1"),
])
def test_resolve_host(host: str, ns: str, want: str) -> None:
    assert resolve_host(host, ns) == want


def test_port_level_modes_lists_each_port() -> None:
    pas = [
        {"metadata": {"name": "default", "namespace": "app"}, "spec": {"mtls": {"mode": "STRICT"}}},
        {"metadata": {"name": "web", "namespace": "app"},
         "spec": {"selector": {"matchLabels": {"app": "web"}},
                  "portLevelMtls": {"8080": {"mode": "DISABLE"}, 9090: {"mode": "UNSET"}}}},
    ]
    base, per_port = port_level_modes(pas, "app", {"app": "web"})
    assert base == MtlsMode("STRICT", "app/default")
    assert per_port == {8080: MtlsMode("DISABLE", "app/web", True),
                        9090: MtlsMode("STRICT", "app/default")}
    assert port_level_modes(pas, "app", {"app": "db"}) == (MtlsMode("STRICT", "app/default"), {})


def test_install_registers_the_validator() -> None:
    import inspect

    from skiff.mesh import setup
    assert setup.admit_peer_authentication is admit
    assert ('platform.admission.validate(SECURITY, "PeerAuthentication", admit_peer_authentication)'
            in inspect.getsource(setup.install))
    adm = Admission()
    adm.validate(SECURITY, "PeerAuthentication", setup.admit_peer_authentication)
    bad = {"metadata": {"name": "p", "namespace": "app"},
           "spec": {"portLevelMtls": {"8080": {"mode": "DISABLE"}}}}
    assert [c.message for c in adm.run(SECURITY, "PeerAuthentication", bad, None)] == [
        'spec: Invalid value: "object": portLevelMtls requires selector']
