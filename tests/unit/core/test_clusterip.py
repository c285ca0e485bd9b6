"""ClusterIP allocation: the pure range arithmetic, and the Service strategy through the real
registry (core/memclient.py) for upstream's answers, uniqueness, restarts and a full range."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from skiff.core.apiserver.local_client import LocalClient
from skiff.core.apiserver.registry import Registry
from skiff.core.client import ApiError, Ref
from skiff.core.clusterip import ServiceRange, next_free, request_problem
from skiff.core.kinds import Kinds
from skiff.core.memclient import MemoryClient
from skiff.core.store.sqlite import SQLiteStore

Obj = dict[str, Any]
SERVICE = Ref("v1", "Service")
NS: Obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}


def svc(name: str, **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"port": 80}], "selector": {"app": name}, **spec}}


def create(c: MemoryClient, body: Obj) -> Obj:
    return asyncio.run(c.create(body))


def error(c: MemoryClient, body: Obj) -> ApiError:
    with pytest.raises(ApiError) as e:
        create(c, body)
    return e.value


# --- the range ---------------------------------------------------------------------------------

def test_range_offsets_skip_network_and_broadcast() -> None:
    r = ServiceRange.parse("10.96.0.0/16")
    assert (r.size, r.static_band, r.ip_at(0), r.ip_at(r.size - 1)) == \
        (65534, 256, "10.96.0.1", "10.96.255.254")
    assert r.offset_of("10.96.0.1") == 0
    assert r.offset_of("10.96.0.0") is None and r.offset_of("10.96.255.255") is None
    assert r.offset_of("10.0.0.1") is None and r.offset_of("fd00::1") is None


@pytest.mark.parametrize("cidr", ["10.96.0.0/33", "10.96.0.1/16", "nonsense", "10.0.0.0/8"])
def test_bad_service_cidrs_say_why(cidr: str) -> None:
    with pytest.raises(ValueError, match="invalid service CIDR"):
        ServiceRange.parse(cidr)


def test_dynamic_allocation_prefers_the_upper_band_then_the_static_one() -> None:
    r = ServiceRange.parse("10.96.0.0/16")
    assert next_free(r, lambda off: False, 0) == 256
    assert next_free(r, lambda off: off >= 256, 7) == 7
    assert next_free(r, lambda off: True, 0) is None
    small = ServiceRange.parse("10.0.0.0/29")   # 6 addresses: no static band
    assert small.static_band == 0 and next_free(small, lambda off: off < 5, 0) == 5


def test_requests_outside_the_range_or_taken() -> None:
    r = ServiceRange.parse("10.96.0.0/16")
    assert request_problem("10.0.0.1", r, lambda off: False) == (
        "the provided IP (10.0.0.1) is not in the valid range. The range of valid IPs is "
        "10.96.0.0/16")
    assert request_problem("10.96.0.5", r, lambda off: off == 4) == "provided IP is already allocated"
    assert request_problem("10.96.0.5", r, lambda off: False) is None


# --- through the registry ------------------------------------------------------------------------

def test_a_service_gets_a_clusterip_in_range_and_single_stack_defaults() -> None:
    c = MemoryClient([NS])
    spec = create(c, svc("web"))["spec"]
    assert ServiceRange.parse("10.96.0.0/16").offset_of(spec["clusterIP"]) is not None
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    assert (spec["ipFamilies"], spec["ipFamilyPolicy"]) == (["IPv4"], "SingleStack")


UPSTREAM_ERRORS = [
    (svc("out", clusterIP="10.0.0.1"), 422,
     'Service "out" is invalid: spec.clusterIPs: Invalid value: []string{"10.0.0.1"}: failed to '
     "allocate IP 10.0.0.1: the provided IP (10.0.0.1) is not in the valid range. The range of "
     "valid IPs is 10.96.0.0/16"),
    (svc("taken", clusterIP="10.96.0.5"), 422,
     'Service "taken" is invalid: spec.clusterIPs: Invalid value: []string{"10.96.0.5"}: failed '
     "to allocate IP 10.96.0.5: provided IP is already allocated"),
    (svc("bad", clusterIP="10.96.0.300"), 422,
     'Service "bad" is invalid: spec.clusterIPs[0]: Invalid value: "10.96.0.300": must be a '
     "valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"),
    (svc("mismatch", clusterIP="10.96.0.7", clusterIPs=["10.96.0.8"]), 422,
     'Service "mismatch" is invalid: spec.clusterIPs: Invalid value: []string{"10.96.0.8"}: '
     "first value must match `clusterIP`"),
    (svc("six", ipFamilies=["IPv6"]), 422,
     'Service "six" is invalid: spec.ipFamilies[0]: Invalid value: "IPv6": not configured on '
     "this cluster"),
    (svc("ext", type="ExternalName", clusterIP="10.96.0.9", externalName="example.com"), 422,
     'Service "ext" is invalid: spec.clusterIPs: Forbidden: may not be set for ExternalName '
     "services"),
    (svc("noname", type="ExternalName"), 422,
     'Service "noname" is invalid: spec.externalName: Required value'),
]


@pytest.mark.parametrize(("body", "code", "message"), UPSTREAM_ERRORS,
                         ids=[b["metadata"]["name"] for b, _, _ in UPSTREAM_ERRORS])
def test_bad_requests_get_upstreams_errors(body: Obj, code: int, message: str) -> None:
    c = MemoryClient([NS])
    create(c, svc("first", clusterIP="10.96.0.5"))
    e = error(c, body)
    assert (e.code, e.message) == (code, message)


def test_headless_and_external_name_get_no_address() -> None:
    c = MemoryClient([NS])
    headless = create(c, svc("db", clusterIP="None"))["spec"]
    assert headless["clusterIPs"] == ["None"]
    ext = create(c, svc("ext", type="ExternalName", externalName="example.com."))["spec"]
    assert "clusterIP" not in ext and "ipFamilies" not in ext


def test_clusterip_is_immutable_but_kept_when_a_client_leaves_it_out() -> None:
    c = MemoryClient([NS])
    ip = create(c, svc("web"))["spec"]["clusterIP"]
    s = asyncio.run(c.get(SERVICE, "web", "default"))
    s["spec"]["clusterIP"] = s["spec"]["clusterIPs"][0] = "10.96.1.1"
    e = error_update(c, s)
    assert e.message == ('Service "web" is invalid: spec.clusterIPs[0]: Invalid value: '
                         '[]string{"10.96.1.1"}: may not change once set')
    s = asyncio.run(c.get(SERVICE, "web", "default"))
    del s["spec"]["clusterIP"], s["spec"]["clusterIPs"]
    assert asyncio.run(c.update(s))["spec"]["clusterIPs"] == [ip]


def error_update(c: MemoryClient, body: Obj) -> ApiError:
    with pytest.raises(ApiError) as e:
        asyncio.run(c.update(body))
    return e.value


def test_to_and_from_external_name_releases_and_allocates() -> None:
    c = MemoryClient([NS])
    create(c, svc("web", clusterIP="10.96.0.20"))
    s = asyncio.run(c.get(SERVICE, "web", "default"))
    s["spec"].update(type="ExternalName", externalName="example.com")
    spec = asyncio.run(c.update(s))["spec"]
    assert "clusterIPs" not in spec and "ipFamilyPolicy" not in spec
    create(c, svc("other", clusterIP="10.96.0.20"))   # the address was released
    s = asyncio.run(c.get(SERVICE, "web", "default"))
    s["spec"] = {"type": "ClusterIP", "ports": [{"port": 80}]}
    spec = asyncio.run(c.update(s))["spec"]
    assert spec["clusterIP"] not in ("", "10.96.0.20") and spec["clusterIPs"] == [spec["clusterIP"]]


def test_concurrent_creates_get_distinct_addresses_in_a_small_range() -> None:
    reg = Registry(SQLiteStore(":memory:"), _kinds(), service_cidr="10.0.0.0/27")   # 30 addresses
    _namespace(reg)
    client = LocalClient(reg)

    async def many() -> list[Obj]:
        return list(await asyncio.gather(*(client.create(svc(f"s{i}")) for i in range(30))))
    made = asyncio.run(many())
    ips = {o["spec"]["clusterIP"] for o in made}
    assert len(ips) == 30


def _kinds() -> Kinds:
    from skiff.core import builtin_kinds
    k = Kinds()
    for kind in builtin_kinds.KINDS:
        k.add(kind)
    return k


def _namespace(reg: Registry) -> None:
    ns_kind = reg.kind_for(Ref("v1", "Namespace"))
    reg.create(ns_kind, "", {"metadata": {"name": "default"}})


def test_a_full_range_is_an_internal_error_and_a_delete_frees_an_address() -> None:
    reg = Registry(SQLiteStore(":memory:"), _kinds(), service_cidr="10.0.0.0/30")   # 2 addresses
    _namespace(reg)
    k = reg.kind_for(SERVICE)
    reg.create(k, "default", svc("a"))
    b = reg.create(k, "default", svc("b"))
    with pytest.raises(ApiError) as e:
        reg.create(k, "default", svc("c"))
    assert (e.value.code, e.value.message) == (
        500, "Internal error occurred: failed to allocate a serviceIP: range is full")
    reg.delete(k, "default", "b")
    assert reg.create(k, "default", svc("c"))["spec"]["clusterIP"] == b["spec"]["clusterIP"]


def test_addresses_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "skiff.db"
    first = Registry(SQLiteStore(path), _kinds(), service_cidr="10.0.0.0/30")
    _namespace(first)
    k = first.kind_for(SERVICE)
    ip = first.create(k, "default", svc("a"))["spec"]["clusterIP"]
    first.store.close()   # type: ignore[attr-defined]
    again = Registry(SQLiteStore(path), _kinds(), service_cidr="10.0.0.0/30")
    with pytest.raises(ApiError, match="already allocated"):
        again.create(k, "default", svc("b", clusterIP=ip))
    assert again.create(k, "default", svc("b"))["spec"]["clusterIP"] != ip
