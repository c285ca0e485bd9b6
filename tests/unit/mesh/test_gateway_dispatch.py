"""Tables for mesh/gateway/proxy.py's dispatch: Host -> vhost -> path -> split -> endpoint, and the
headers an Istio ingress gateway adds. Calls the dispatcher directly: no sockets."""

from __future__ import annotations

import collections
import datetime as dt
import re
from typing import Any

import pytest

from skiff.core.pki import issue, make_ca
from skiff.dataplane.proxy.http1 import Forward, Reply, RequestHead
from skiff.mesh.gateway.proxy import GatewayProxy, request_id
from skiff.mesh.gateway.snapshot import GatewaySettings, Inputs, compile_snapshot

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CA = make_ca("ca", NOW)
CERT = issue(*CA, "x", ["*.example.com"], [], NOW)
HOST = "hello-default.apps.example.com"
ISTIO = {"spec": {"ingress": {"istio": {"enabled": True}}}}


def split(rev: str, percent: int) -> dict[str, Any]:
    return {"serviceName": rev, "serviceNamespace": "default", "servicePort": 80,
            "percent": percent, "appendHeaders": {"Knative-Serving-Revision": rev}}


def proxy(paths: list[dict[str, Any]], endpoints: dict[str, int | list[int]] | None = None,
          istio: bool = True, http_option: str = "") -> GatewayProxy:
    ing: dict[str, Any] = {"metadata": {"name": "hello", "namespace": "default", "generation": 1},
           "spec": {"rules": [{"hosts": [HOST], "visibility": "ExternalIP",
                               "http": {"paths": paths}},
                              {"hosts": ["hello.default.svc.cluster.local"],
                               "visibility": "ClusterLocal", "http": {"paths": paths}}]}}
    if http_option:
        ing["spec"]["httpOption"] = http_option
    eps = endpoints if endpoints is not None else {"hello-00001": 31001, "hello-00002": 31002}
    snap = compile_snapshot(Inputs(
        ingresses=[ing], knative_servings=[ISTIO] if istio else [],
        endpoints={("default", rev): tuple(("127.0.0.1", p) for p in
                                           (ports if isinstance(ports, list) else [ports]))
                   for rev, ports in eps.items()}))
    gp = GatewayProxy(GatewaySettings(), CERT)
    gp.swap(snap.dataplane())
    return gp


def head(host: str = HOST, target: str = "/", headers: dict[str, str] | None = None,
         scheme: bytes = b"http", client: bytes = b"10.1.2.3",
         captured: dict[str, str] | None = None) -> RequestHead:
    lines = [f"{k.lower()}: {v}\r\n".encode() for k, v in (headers or {}).items()]
    cap = {k.encode(): v.encode() for k, v in (captured or {}).items()}
    cap[b"host"] = host.encode()
    return RequestHead(b"GET", target.encode(), host.encode(), lines, cap, client, scheme, "1.1",
                       True, False, -1)


def go(gp: GatewayProxy, h: RequestHead, table: str = "external") -> Forward | Reply:
    return gp.configs[table].dispatch(h)


def extra(f: Forward | Reply) -> dict[str, str]:
    assert isinstance(f, Forward)
    out: dict[str, str] = {}
    for line in f.extra.decode().split("\r\n"):
        if line:
            k, v = line.split(": ", 1)
            out[k] = v
    return out


ONE = [{"splits": [split("hello-00001", 100)]}]


@pytest.mark.parametrize("host,table,found", [
    (HOST, "external", True),
    ("HELLO-Default.Apps.Example.COM", "external", True),
    (HOST + ":8443", "external", True),
    (HOST + ".", "external", True),
    ("nope.apps.example.com", "external", False),
    ("hello.default.svc.cluster.local", "external", False),   # ClusterLocal: local gateway only
    ("hello.default.svc.cluster.local", "local", True),
    (HOST, "local", False),                                   # ExternalIP: not on the local one
])
def test_host_routing(host: str, table: str, found: bool) -> None:
    r = go(proxy(ONE), head(host), table)
    if found:
        assert isinstance(r, Forward) and r.endpoint == ("127.0.0.1", 31001)
    else:
        assert isinstance(r, Reply) and (r.status, r.body) == (404, b"")


def test_no_ready_endpoint_is_503_no_healthy_upstream() -> None:
    r = go(proxy(ONE, endpoints={}), head())
    assert isinstance(r, Reply) and (r.status, r.body) == (503, b"no healthy upstream")


@pytest.mark.parametrize("percents,n", [((50, 50), 400), ((90, 10), 400), ((20, 80), 1000)])
def test_weighted_split_distribution_is_exact_per_period(percents: tuple[int, int], n: int) -> None:
    gp = proxy([{"splits": [split("hello-00001", percents[0]), split("hello-00002", percents[1])]}])
    seen = collections.Counter(go(gp, head()).endpoint[1] for _ in range(n))  # type: ignore[union-attr]
    assert seen == {31001: n * percents[0] // 100, 31002: n * percents[1] // 100}


def test_split_counters_are_per_path_not_global() -> None:
    """Alternating requests between two hosts must not starve one revision of a 50/50 split."""
    gp = proxy([{"splits": [split("hello-00001", 50), split("hello-00002", 50)]}])
    ext: collections.Counter[int] = collections.Counter()
    for _ in range(100):
        ext[go(gp, head()).endpoint[1]] += 1  # type: ignore[union-attr]
        go(gp, head("hello.default.svc.cluster.local"), "local")
    assert ext == {31001: 50, 31002: 50}


def test_endpoints_round_robin() -> None:
    gp = proxy(ONE, endpoints={"hello-00001": [31001, 31003, 31005]})
    assert [go(gp, head()).endpoint[1] for _ in range(6)] == [  # type: ignore[union-attr]
        31001, 31003, 31005, 31001, 31003, 31005]


def test_forwarding_headers_for_a_fresh_request() -> None:
    h = extra(go(proxy(ONE), head(client=b"10.1.2.3")))
    assert h["x-forwarded-for"] == "10.1.2.3"
    assert h["x-forwarded-proto"] == "http"
    assert h["forwarded"] == "for=10.1.2.3;proto=http"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        h["x-request-id"])
    assert h["x-envoy-attempt-count"] == "1"
    assert h["x-envoy-decorator-operation"] == "hello-00001.default.svc.cluster.local:80/*"
    assert h["knative-serving-revision"] == "hello-00001"


def test_forwarding_headers_append_to_what_came_in() -> None:
    h = extra(go(proxy(ONE), head(scheme=b"https", client=b"::1", captured={
        "x-forwarded-for": "192.0.2.1", "forwarded": "for=192.0.2.1;proto=https",
        "x-request-id": "abc-123"})))
    assert h["x-forwarded-for"] == "192.0.2.1, ::1"
    assert h["x-forwarded-proto"] == "https"
    assert h["forwarded"] == 'for=192.0.2.1;proto=https, for="[::1]";proto=https'
    assert h["x-request-id"] == "abc-123"


def test_request_ids_are_unique() -> None:
    assert len({request_id() for _ in range(10_000)}) == 10_000


def test_tag_header_routes_to_the_tagged_path() -> None:
    paths = [{"headers": {"Knative-Serving-Tag": {"exact": "v2"}},
              "splits": [split("hello-00002", 100)], "appendHeaders": {"Knative-Serving-Tag": "v2"}},
             {"splits": [split("hello-00001", 100)],
              "appendHeaders": {"Knative-Serving-Default-Route": "true"}}]
    gp = proxy(paths)
    tagged = go(gp, head(headers={"Knative-Serving-Tag": "v2"}))
    assert isinstance(tagged, Forward) and tagged.endpoint[1] == 31002
    assert extra(tagged)["knative-serving-tag"] == "v2"
    default = go(gp, head(headers={"Knative-Serving-Tag": "nope"}))
    assert isinstance(default, Forward) and default.endpoint[1] == 31001
    assert extra(default)["knative-serving-default-route"] == "true"


def test_path_prefix_and_rewrite_host() -> None:
    paths = [{"path": "/api", "rewriteHost": "api.internal", "splits": [split("hello-00002", 100)]},
             {"path": "/only", "splits": [split("hello-00001", 100)]}]
    gp = proxy(paths)
    api = go(gp, head(target="/api/v1?x=1"))
    assert isinstance(api, Forward) and (api.endpoint[1], api.host) == (31002, b"api.internal")
    assert isinstance(go(gp, head(target="/only/x")), Forward)
    r = go(gp, head(target="/elsewhere"))
    assert isinstance(r, Reply) and r.status == 404


def test_http_option_redirected() -> None:
    gp = proxy(ONE, http_option="Redirected")
    r = go(gp, head(target="/a?b=1"))
    assert isinstance(r, Reply) and r.status == 301
    assert dict(r.headers)[b"location"] == f"https://{HOST}/a?b=1".encode()
    assert isinstance(go(gp, head(scheme=b"https")), Forward)
    assert isinstance(go(gp, head("hello.default.svc.cluster.local"), "local"), Forward)


@pytest.mark.parametrize("istio,server", [(True, b"istio-envoy"), (False, b"envoy")])
def test_server_header_follows_the_mode(istio: bool, server: bytes) -> None:
    gp = proxy(ONE, istio=istio)
    assert gp.configs["external"].server == server
    assert gp.configs["external"].server_line == b"server: " + server + b"\r\n"
    assert gp.configs["external"].service_time is True


def test_swap_is_atomic_and_counters_restart() -> None:
    gp = proxy([{"splits": [split("hello-00001", 50), split("hello-00002", 50)]}])
    first = go(gp, head())
    assert isinstance(first, Forward) and first.endpoint[1] == 31001
    old_rt = gp.rt
    gp.swap(proxy(ONE, endpoints={"hello-00001": 31009}).snapshot)
    assert gp.rt is not old_rt
    r = go(gp, head())
    assert isinstance(r, Forward) and r.endpoint == ("127.0.0.1", 31009)
    assert first.endpoint == ("127.0.0.1", 31001)     # an in-flight decision is untouched
