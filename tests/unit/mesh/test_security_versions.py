"""security.istio.io served at v1beta1 and v1 (Istio 1.22+'s CRDs): one storage version, so a
policy written at either version is the same object at both, reaches the sidecar's policy
set the same way, and bad input gets Istio's messages at either version. Over a real
Registry on SQLite (no sockets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from skiff.core import builtin_kinds
from skiff.core.admission import Admission
from skiff.core.apiserver.discovery import aggregated, api_group_list, api_resource_list
from skiff.core.apiserver.registry import Registry
from skiff.core.client import ApiError
from skiff.core.kinds import Kinds, crd_for, kinds_from_crd
from skiff.core.store.sqlite import SQLiteStore
from skiff.mesh import crds
from skiff.mesh.authz import Request, Workload, compile_policies, decide
from skiff.mesh.authz.validate import admit as admit_authorization_policy
from skiff.mesh.peerauth_validate import admit as admit_peer_authentication

SECURITY = "security.istio.io"


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    kinds = Kinds()
    for k in [*builtin_kinds.KINDS, *crds.KINDS]:
        kinds.add(k)
    adm = Admission()
    adm.validate(SECURITY, "AuthorizationPolicy", admit_authorization_policy)
    adm.validate(SECURITY, "PeerAuthentication", admit_peer_authentication)
    r = Registry(SQLiteStore(tmp_path / "db"), kinds, adm)
    ns = r.kinds.for_api_version("v1", "Namespace")
    assert ns is not None
    r.create(ns, "", {"metadata": {"name": "app"}})
    return r


def _policy(version: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{SECURITY}/{version}", "kind": "AuthorizationPolicy",
            "metadata": {"name": name, "namespace": "app"}, "spec": spec}


@pytest.mark.parametrize("kind", ["AuthorizationPolicy", "PeerAuthentication"])
def test_both_versions_are_served_v1beta1_stored(kind: str) -> None:
    k = next(k for k in crds.KINDS if k.kind == kind)
    assert k.version == "v1beta1" and set(k.versions) == {"v1beta1", "v1"}
    crd = crd_for(k)
    versions = {v["name"]: (v["served"], v["storage"]) for v in crd["spec"]["versions"]}
    assert versions == {"v1beta1": (True, True), "v1": (True, False)}
    # one schema for both, as Istio's CRDs have
    a, b = (v["schema"] for v in crd["spec"]["versions"])
    assert a == b
    assert kinds_from_crd(crd) == k


def test_discovery_lists_v1_preferred() -> None:
    kinds = Kinds()
    for k in crds.KINDS:
        kinds.add(k)
    group = next(g for g in api_group_list(kinds)["groups"] if g["name"] == SECURITY)
    assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1"]
    assert group["preferredVersion"]["groupVersion"] == f"{SECURITY}/v1"
    for v in ("v1", "v1beta1"):
        rl = api_resource_list(kinds, SECURITY, v)
        assert rl is not None
        assert {r["name"] for r in rl["resources"]} >= {"authorizationpolicies",
                                                         "peerauthentications"}
    item = next(i for i in aggregated(kinds, core=False)["items"]
                if i["metadata"]["name"] == SECURITY)
    assert [v["version"] for v in item["versions"]] == ["v1", "v1beta1"]


def test_a_v1_policy_is_the_same_object_at_v1beta1_and_is_enforced(reg: Registry) -> None:
    k = reg.kinds.for_api_version(f"{SECURITY}/v1", "AuthorizationPolicy")
    assert k is not None and reg.kinds.for_api_version(f"{SECURITY}/v1beta1",
                                                       "AuthorizationPolicy") is k
    reg.create(k, "app", _policy("v1", "deny-admin", action="DENY",
                                 rules=[{"to": [{"operation": {"paths": ["/admin*"]}}]}]))
    reg.create(k, "app", _policy("v1beta1", "allow-all", rules=[{}]))
    # stored once (the storage version), served at the version asked for
    assert reg.get(k, "app", "deny-admin", "v1beta1")["apiVersion"] == f"{SECURITY}/v1beta1"
    assert reg.get(k, "app", "allow-all", "v1")["apiVersion"] == f"{SECURITY}/v1"
    # what the sidecar controller lists (at v1beta1) holds both, and they decide as one set
    listed, _, _ = reg.list(k, "", version="v1beta1")
    assert sorted(o["metadata"]["name"] for o in listed) == ["allow-all", "deny-admin"]
    ps = compile_policies(listed)
    w = Workload.of("app", {"app": "web"})
    denied = decide(ps, Request(destination=w, port=8080, path="/admin/x"))
    assert (denied.allowed, denied.policy, denied.rule, denied.status) == (
        False, "app/deny-admin", 0, 403)
    allowed = decide(ps, Request(destination=w, port=8080, path="/"))
    assert (allowed.allowed, allowed.policy) == (True, "app/allow-all")
    # and the same from the v1 listing
    listed_v1, _, _ = reg.list(k, "", version="v1")
    assert {o["apiVersion"] for o in listed_v1} == {f"{SECURITY}/v1"}
    assert decide(compile_policies(listed_v1),
                  Request(destination=w, port=8080, path="/admin")).policy == "app/deny-admin"


@pytest.mark.parametrize("version", ["v1beta1", "v1"])
def test_bad_input_gets_istio_s_messages_at_either_version(reg: Registry, version: str) -> None:
    k = reg.kinds.for_api_version(f"{SECURITY}/{version}", "AuthorizationPolicy")
    assert k is not None
    bad = _policy(version, "bad", rules=[{"when": [{"key": "source.foo", "values": ["a"]}]}])
    with pytest.raises(ApiError) as e:
        reg.create(k, "app", bad)
    assert e.value.code == 422
    assert ("spec.rules[0].when[0].key: invalid policy bad.app: invalid `value` for `key` "
            "source.foo: unknown attribute: source.foo") in e.value.message, e.value.message
    enum = _policy(version, "enum", action="ALLOWED")
    with pytest.raises(ApiError) as e:
        reg.create(k, "app", enum)
    assert "spec.action" in e.value.message
    pa = reg.kinds.for_api_version(f"{SECURITY}/{version}", "PeerAuthentication")
    assert pa is not None
    with pytest.raises(ApiError) as e:
        reg.create(pa, "app", {"apiVersion": f"{SECURITY}/{version}",
                               "kind": "PeerAuthentication",
                               "metadata": {"name": "p", "namespace": "app"},
                               "spec": {"portLevelMtls": {"8080": {"mode": "STRICT"}}}})
    assert e.value.code == 422 and "portLevelMtls" in e.value.message, e.value.message
    assert reg.list(k, "app")[0] == [] and reg.list(pa, "app")[0] == []
