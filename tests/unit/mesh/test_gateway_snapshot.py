"""Tables for mesh/gateway/snapshot.py: Gateways, Secrets, KIngresses, pods in -> Snapshot out.

Golden-style: each case builds the objects a user (or the Route reconciler) would apply and
compares the compiled snapshot's describe() (or the part of it the case is about) with the
expected plain data. Pure: no sockets, no clock.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest

from skiff.core.pki import issue, make_ca
from skiff.mesh.gateway.snapshot import (
    GatewaySettings,
    Inputs,
    RouteTable,
    VirtualHost,
    build_table,
    compile_snapshot,
    credential_problem,
    endpoints_from_pods,
    host_match_score,
    normalize_host,
    patterns_intersect,
    secret_pems,
    swrr_schedule,
)

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CA_CERT, CA_KEY = make_ca("example.com", NOW)
WILD_CERT, WILD_KEY = issue(CA_CERT, CA_KEY, "*.apps.openshift.example.com",
                            ["*.apps.openshift.example.com"], [], NOW)
OTHER_CERT, OTHER_KEY = issue(CA_CERT, CA_KEY, "other", ["other.example.com"], [], NOW)
DEFAULT_CERT = issue(CA_CERT, CA_KEY, "skiff-ingress", ["*.apps.example.com"], [], NOW)
SETTINGS = GatewaySettings(host="127.0.0.1", http_port=8080, https_port=8443,
                           local_gateway_port=8081, internal_https_port=40443,
                           domain="apps.openshift.example.com")
ISTIO = {"apiVersion": "operator.knative.dev/v1beta1", "kind": "KnativeServing",
         "metadata": {"name": "knative-serving", "namespace": "knative-serving"},
         "spec": {"ingress": {"istio": {"enabled": True}}}}
HOST = "hello-default.apps.openshift.example.com"


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def tls_secret(name: str, cert: bytes = WILD_CERT, key: bytes = WILD_KEY,
               keys: tuple[str, str] = ("tls.crt", "tls.key")) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": "istio-system"},
            "data": {keys[0]: b64(cert), keys[1]: b64(key)}}


def gateway(name: str, servers: list[dict[str, Any]], ns: str = "knative-serving",
            created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1alpha3", "kind": "Gateway",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
            "spec": {"selector": {"istio": "ingressgateway"}, "servers": servers}}


def https_server(cred: str = "wildcard-certs", hosts: list[str] | None = None,
                 port: int = 443) -> dict[str, Any]:
    return {"port": {"number": port, "name": "https", "protocol": "HTTPS"},
            "hosts": hosts or ["*"], "tls": {"mode": "SIMPLE", "credentialName": cred}}


def http_server(port: int = 8081, hosts: list[str] | None = None) -> dict[str, Any]:
    return {"port": {"number": port, "name": "http", "protocol": "HTTP"}, "hosts": hosts or ["*"]}


SEED_GATEWAYS = [gateway("knative-ingress-gateway", [https_server()]),
                 gateway("knative-local-gateway", [http_server()])]


def split(rev: str, percent: int | None = 100, ns: str = "default") -> dict[str, Any]:
    s: dict[str, Any] = {"serviceName": rev, "serviceNamespace": ns, "servicePort": 80,
                         "appendHeaders": {"Knative-Serving-Revision": rev,
                                           "Knative-Serving-Namespace": ns}}
    if percent is not None:
        s["percent"] = percent
    return s


def kingress(name: str = "hello", ns: str = "default", splits: list[dict[str, Any]] | None = None,
             hosts: list[str] | None = None, local_hosts: list[str] | None = None,
             annotations: dict[str, str] | None = None, created: str = "2026-01-01T00:00:00Z",
             paths: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    splits = splits if splits is not None else [split(f"{name}-00001")]
    paths = paths or [{"splits": splits}]
    rules = []
    rules.append({"hosts": local_hosts if local_hosts is not None else
                  [f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"],
                  "visibility": "ClusterLocal", "http": {"paths": paths}})
    rules.append({"hosts": hosts if hosts is not None else [f"{name}-{ns}.apps.openshift.example.com"],
                  "visibility": "ExternalIP", "http": {"paths": paths}})
    return {"apiVersion": "networking.internal.knative.dev/v1alpha1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns, "generation": 2, "creationTimestamp": created,
                         "annotations": {"networking.knative.dev/ingress.class":
                                         "istio.ingress.networking.knative.dev",
                                         **(annotations or {})}},
            "spec": {"rules": rules}}


def compile_(gateways: list[dict[str, Any]] | None = None,
             secrets: list[dict[str, Any]] | None = None,
             ingresses: list[dict[str, Any]] | None = None,
             endpoints: dict[tuple[str, str], tuple[tuple[str, int], ...]] | None = None,
             istio: bool = True) -> dict[str, Any]:
    snap = compile_snapshot(Inputs(
        gateways=SEED_GATEWAYS if gateways is None else gateways,
        secrets={s["metadata"]["name"]: s for s in (secrets if secrets is not None
                                                      else [tls_secret("wildcard-certs")])},
        ingresses=[kingress()] if ingresses is None else ingresses,
        endpoints={("default", "hello-00001"): (("127.0.0.1", 31001),)} if endpoints is None
        else endpoints,
        knative_servings=[ISTIO] if istio else [],
        settings=SETTINGS, default_cert=DEFAULT_CERT))
    return snap.describe()


HELLO_PATH = {"splits": [{"revision": "default/hello-00001", "percent": 100,
                          "endpoints": ["127.0.0.1:31001"],
                          "appendHeaders": {"Knative-Serving-Namespace": "default",
                                            "Knative-Serving-Revision": "hello-00001"}}]}
READY_INGRESS = {"conditions": [{"type": "LoadBalancerReady", "status": "True"},
                                {"type": "NetworkConfigured", "status": "True"},
                                {"type": "Ready", "status": "True"}],
                 "public": "istio-ingressgateway.istio-system.svc.cluster.local",
                 "private": "knative-local-gateway.istio-system.svc.cluster.local"}


def test_seed_gateways_and_a_service_golden() -> None:
    """The seed's 1.3 setup: wildcard-certs Secret, the two Gateways, the hello ksvc's KIngress."""
    assert compile_() == {
        "mode": "istio",
        "listeners": {
            "https": {"address": "127.0.0.1:40443", "tls": True,
                      "servers": [{"gateway": "knative-serving/knative-ingress-gateway",
                                   "index": 0, "port": 443, "hosts": ["*"], "tls": "SIMPLE",
                                   "secret": "istio-system/wildcard-certs"}],
                      "routeConfig": "https.443", "hosts": [HOST]},
            "local": {"address": "127.0.0.1:8081", "tls": False,
                      "servers": [{"gateway": "knative-serving/knative-local-gateway",
                                   "index": 0, "port": 8081, "hosts": ["*"]}],
                      "routeConfig": "local.8081", "hosts": ["hello.default", "hello.default.svc",
                                "hello.default.svc.cluster.local"]},
        },
        "external": {HOST: {"ingress": "default/hello", "paths": [HELLO_PATH]}},
        "local": {h: {"ingress": "default/hello", "paths": [HELLO_PATH]}
                  for h in ("hello.default", "hello.default.svc", "hello.default.svc.cluster.local")},
        "passthrough": [],
        "gateways": {"knative-serving/knative-ingress-gateway": [{"type": "Ready", "status": "True"}],
                     "knative-serving/knative-local-gateway": [{"type": "Ready", "status": "True"}]},
        "ingresses": {"default/hello": READY_INGRESS},
    }


@pytest.mark.parametrize("secrets,reason,fragment", [
    ([], "CredentialMissing", "secret istio-system/wildcard-certs not found"),
    ([{**tls_secret("wildcard-certs"), "data": {"tls.crt": b64(b"not a pem"),
                                                "tls.key": b64(WILD_KEY)}}],
     "CredentialInvalid", "istio-system/wildcard-certs: the certificate does not parse"),
    ([tls_secret("wildcard-certs", key=OTHER_KEY)],
     "CredentialInvalid", "the private key does not match the certificate"),
    ([{**tls_secret("wildcard-certs"), "data": {"ca.crt": b64(CA_CERT)}}],
     "CredentialInvalid", "has neither tls.crt/tls.key nor cert/key"),
    ([{**tls_secret("wildcard-certs"), "data": {"tls.crt": "%%%notbase64", "tls.key": b64(WILD_KEY)}}],
     "CredentialInvalid", "the certificate is empty"),
])
def test_bad_credentials_skip_the_server_and_say_why(secrets: list[dict[str, Any]], reason: str,
                                                      fragment: str) -> None:
    d = compile_(secrets=secrets)
    cond = d["gateways"]["knative-serving/knative-ingress-gateway"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Ready", "False", reason)
    assert fragment in cond["message"]
    assert "server 0 (port 443, hosts ['*'])" in cond["message"]
    assert "https" not in d["listeners"]                         # the server is skipped...
    assert d["listeners"]["local"]["hosts"]                      # ...the rest is served
    assert d["external"][HOST]                                   # the router's edge still routes
    assert d["gateways"]["knative-serving/knative-local-gateway"][0]["status"] == "True"


def test_istio_style_cert_key_secret_is_accepted() -> None:
    d = compile_(secrets=[tls_secret("wildcard-certs", keys=("cert", "key"))])
    assert d["listeners"]["https"]["servers"][0]["secret"] == "istio-system/wildcard-certs"


def test_string_data_secret_is_accepted() -> None:
    s = tls_secret("wildcard-certs")
    s.pop("data")
    s["stringData"] = {"tls.crt": WILD_CERT.decode(), "tls.key": WILD_KEY.decode()}
    assert secret_pems(s) == (WILD_CERT, WILD_KEY)
    assert compile_(secrets=[s])["listeners"]["https"]["tls"] is True


def test_missing_secret_on_one_gateway_leaves_the_others_served() -> None:
    gws = [*SEED_GATEWAYS,
           gateway("extra", [https_server("missing-certs", ["*.extra.example.com"])],
                   created="2026-01-02T00:00:00Z")]
    d = compile_(gateways=gws)
    assert d["gateways"]["knative-serving/extra"][0]["reason"] == "CredentialMissing"
    assert "istio-system/missing-certs" in d["gateways"]["knative-serving/extra"][0]["message"]
    assert d["gateways"]["knative-serving/knative-ingress-gateway"][0]["status"] == "True"
    assert [s["gateway"] for s in d["listeners"]["https"]["servers"]] == [
        "knative-serving/knative-ingress-gateway"]


@pytest.mark.parametrize("winner_created,loser_created,winner,loser", [
    ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "knative-serving/knative-ingress-gateway",
     "istio-system/rogue"),
    ("2026-01-03T00:00:00Z", "2026-01-02T00:00:00Z", "istio-system/rogue",
     "knative-serving/knative-ingress-gateway"),
    # same second: namespace/name decides (istio-system < knative-serving)
    ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "istio-system/rogue",
     "knative-serving/knative-ingress-gateway"),
])
def test_conflicting_wildcard_443_the_oldest_gateway_wins(winner_created: str, loser_created: str,
                                                           winner: str, loser: str) -> None:
    kig = gateway("knative-ingress-gateway", [https_server()], created=winner_created)
    rogue = gateway("rogue", [https_server("other-certs")], ns="istio-system",
                    created=loser_created)
    d = compile_(gateways=[kig, rogue, SEED_GATEWAYS[1]],
                 secrets=[tls_secret("wildcard-certs"),
                          tls_secret("other-certs", OTHER_CERT, OTHER_KEY)])
    assert [s["gateway"] for s in d["listeners"]["https"]["servers"]] == [winner]
    cond = d["gateways"][loser][0]
    assert (cond["status"], cond["reason"]) == ("False", "Conflict")
    assert f"by the older Gateway {winner} (server 0)" in cond["message"]
    assert "hosts ['*'] are already bound" in cond["message"]
    assert d["gateways"][winner][0]["status"] == "True"
    # only knative-ingress-gateway routes Knative's hosts: a rogue winner serves none of them
    assert d["listeners"]["https"]["hosts"] == ([HOST] if winner.endswith("ingress-gateway") else [])


def test_different_hosts_on_443_coexist_and_sni_picks_the_most_specific() -> None:
    from skiff.mesh.gateway.snapshot import Snapshot
    kig = gateway("knative-ingress-gateway", [https_server(), https_server(
        "other-certs", ["other.example.com"])])
    snap: Snapshot = compile_snapshot(Inputs(
        gateways=[kig], secrets={"wildcard-certs": tls_secret("wildcard-certs"),
                                 "other-certs": tls_secret("other-certs", OTHER_CERT, OTHER_KEY)},
        knative_servings=[ISTIO], settings=SETTINGS))
    li = snap.listeners["https"]
    assert [s.secret for s in li.servers] == ["istio-system/wildcard-certs",
                                              "istio-system/other-certs"]
    for sni, secret in [("other.example.com", "other-certs"), (HOST, "wildcard-certs"),
                        (None, "wildcard-certs"), ("unknown.test", "wildcard-certs")]:
        s = li.server_for_sni(sni)
        assert s is not None and s.secret == f"istio-system/{secret}", sni


def test_protocol_mismatch_on_one_listener_is_a_conflict() -> None:
    local_https = gateway("knative-local-gateway", [https_server(port=8081)])
    other_http = gateway("plain-8081", [http_server(8081, ["x.example.com"])], ns="default",
                         created="2026-01-05T00:00:00Z")
    d = compile_(gateways=[SEED_GATEWAYS[0], local_https, other_http])
    assert d["listeners"]["local"]["tls"] is True
    assert d["gateways"]["default/plain-8081"][0]["reason"] == "Conflict"
    assert "port is bound with TLS" in d["gateways"]["default/plain-8081"][0]["message"]


@pytest.mark.parametrize("server,reason,fragment", [
    (https_server(port=9443), "PortNotExposed", "port 9443 is not exposed"),
    ({"port": {"number": 443, "name": "tls", "protocol": "HTTPS"}, "hosts": ["*"],
      "tls": {"mode": "PASSTHROUGH"}}, "UnsupportedTLSMode", "tls.mode PASSTHROUGH"),
    ({"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["*"]},
     "InvalidServer", "tls.mode (none)"),
    ({"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["*"],
      "tls": {"mode": "SIMPLE", "serverCertificate": "/etc/certs/a.pem"}},
     "CredentialMissing", "tls.credentialName is required"),
    ({"port": {"number": 443, "name": "tcp", "protocol": "TCP"}, "hosts": ["*"]},
     "UnsupportedProtocol", "protocol TCP"),
])
def test_unservable_servers_are_reported(server: dict[str, Any], reason: str,
                                         fragment: str) -> None:
    d = compile_(gateways=[gateway("knative-ingress-gateway", [server]), SEED_GATEWAYS[1]])
    cond = d["gateways"]["knative-serving/knative-ingress-gateway"][0]
    assert (cond["status"], cond["reason"]) == ("False", reason)
    assert fragment in cond["message"]


def test_local_gateway_modes() -> None:
    """The seed's three local gateways: HTTP 8081, ISTIO_MUTUAL 8081 (the mesh SVID, in the
    data plane), HTTPS 443."""
    mutual = gateway("knative-local-gateway", [{
        "port": {"number": 8081, "name": "https", "protocol": "HTTPS"}, "hosts": ["*"],
        "tls": {"mode": "ISTIO_MUTUAL"}}])
    d = compile_(gateways=[SEED_GATEWAYS[0], mutual])
    assert d["listeners"]["local"]["tls"] is False
    assert d["listeners"]["local"]["servers"][0]["tls"] == "ISTIO_MUTUAL"
    https_local = gateway("knative-local-gateway", [https_server()])   # port 443, as in the seed
    d = compile_(gateways=[SEED_GATEWAYS[0], https_local])
    assert d["listeners"]["local"]["tls"] is True
    assert d["listeners"]["local"]["address"] == "127.0.0.1:8081"
    assert d["listeners"]["https"]["servers"][0]["gateway"] == \
        "knative-serving/knative-ingress-gateway"


def test_kourier_mode_default_ingress() -> None:
    d = compile_(istio=False)
    assert d["mode"] == "kourier"
    assert {b: (li["address"], li["tls"], li["hosts"]) for b, li in d["listeners"].items()} == {
        "http": ("127.0.0.1:8080", False, [HOST]),
        "https": ("127.0.0.1:40443", True, [HOST]),
        "local": ("127.0.0.1:8081", False, ["hello.default", "hello.default.svc",
                                            "hello.default.svc.cluster.local"]),
    }
    assert d["ingresses"]["default/hello"]["public"] == \
        "kourier.knative-serving-ingress.svc.cluster.local"
    for conds in d["gateways"].values():
        assert conds[0]["reason"] == "IstioIngressDisabled"


def test_knative_serving_without_istio_is_kourier() -> None:
    ks = {**ISTIO, "spec": {"ingress": {"kourier": {"enabled": True}}}}
    snap = compile_snapshot(Inputs(knative_servings=[ks]))
    assert snap.mode == "kourier" and snap.server_header == "envoy"


def test_ingress_classes_and_deletion() -> None:
    contour = kingress("contour", annotations={
        "networking.knative.dev/ingress.class": "contour.ingress.networking.knative.dev"})
    gone = kingress("gone")
    gone["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    kourier = kingress("kour", annotations={
        "networking.knative.dev/ingress.class": "kourier.ingress.networking.knative.dev"})
    d = compile_(ingresses=[contour, gone, kourier])
    assert set(d["ingresses"]) == {"default/kour"}
    assert list(d["external"]) == ["kour-default.apps.openshift.example.com"]


def test_passthrough_hosts_are_the_external_hosts_of_annotated_ingresses() -> None:
    d = compile_(ingresses=[kingress(annotations={
        "serving.knative.openshift.io/enablePassthrough": "true"}), kingress("plain")])
    assert d["passthrough"] == [HOST]


def test_domain_conflict_the_older_ingress_keeps_the_host() -> None:
    old = kingress("a", hosts=[HOST], local_hosts=[])
    new = kingress("b", hosts=[HOST, "b-default.apps.openshift.example.com"], local_hosts=[],
                   created="2026-01-02T00:00:00Z")
    d = compile_(ingresses=[new, old])
    assert d["external"][HOST]["ingress"] == "default/a"
    assert d["external"]["b-default.apps.openshift.example.com"]["ingress"] == "default/b"
    ready = d["ingresses"]["default/b"]["conditions"][2]
    assert ready == {"type": "Ready", "status": "False", "reason": "DomainConflict",
                     "message": f'host "{HOST}" is already served by Ingress default/a'}
    assert d["ingresses"]["default/a"]["conditions"][2]["status"] == "True"


def test_splits_percent_zero_and_missing_endpoints() -> None:
    ing = kingress(splits=[split("hello-00001", 90), split("hello-00002", 10),
                           split("hello-00003", 0)])
    d = compile_(ingresses=[ing], endpoints={("default", "hello-00001"): (("127.0.0.1", 1),)})
    splits = d["external"][HOST]["paths"][0]["splits"]
    assert [(s["revision"], s["percent"], s["endpoints"]) for s in splits] == [
        ("default/hello-00001", 90, ["127.0.0.1:1"]), ("default/hello-00002", 10, [])]


def test_tag_routes_and_redirect_compile() -> None:
    paths = [{"headers": {"Knative-Serving-Tag": {"exact": "v2"}},
              "splits": [split("hello-00002")], "appendHeaders": {"Knative-Serving-Tag": "v2"}},
             {"splits": [split("hello-00001")], "appendHeaders":
              {"Knative-Serving-Default-Route": "true"}}]
    ing = kingress(paths=paths)
    ing["spec"]["httpOption"] = "Redirected"
    d = compile_(ingresses=[ing])
    ext = d["external"][HOST]
    assert ext["redirectHTTP"] is True
    assert ext["paths"][0]["headers"] == {"knative-serving-tag": "v2"}
    assert ext["paths"][1]["appendHeaders"] == {"Knative-Serving-Default-Route": "true"}
    assert "redirectHTTP" not in d["local"]["hello.default"]


def test_ingress_status_observed_generation() -> None:
    snap = compile_snapshot(Inputs(ingresses=[kingress()], knative_servings=[ISTIO]))
    assert snap.ingress_status[("default", "hello")].observed_generation == 2


# --- endpoints ---------------------------------------------------------------------------

def pod(name: str, rev: str | None = "hello-00001", port: str | None = "31001",
        ready: bool = True, deleting: bool = False, ns: str = "default") -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, "namespace": ns, "labels": {}, "annotations": {}}
    if rev:
        m["labels"]["serving.knative.dev/revision"] = rev
    if port:
        m["annotations"]["skiff.dev/port"] = port
    if deleting:
        m["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": m, "status": {"podIP": "127.0.0.1", "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}


def test_endpoints_from_pods() -> None:
    pods = [pod("a", port="31002"), pod("b"), pod("c", ready=False), pod("d", deleting=True),
            pod("e", port=None), pod("f", rev=None), pod("g", rev="other-00001", port="31009"),
            pod("h", port="x"), pod("i", ns="other")]
    assert endpoints_from_pods(pods) == {
        ("default", "hello-00001"): (("127.0.0.1", 31001), ("127.0.0.1", 31002)),
        ("default", "other-00001"): (("127.0.0.1", 31009),),
        ("other", "hello-00001"): (("127.0.0.1", 31001),),
    }


# --- host matching -----------------------------------------------------------------------

@pytest.mark.parametrize("raw,want", [
    ("Hello-Default.Apps.Example.com", "hello-default.apps.example.com"),
    ("hello.example.com:8443", "hello.example.com"),
    ("hello.example.com.", "hello.example.com"),
    ("[::1]:8080", "[::1]"),
    ("127.0.0.1:80", "127.0.0.1"),
])
def test_normalize_host(raw: str, want: str) -> None:
    assert normalize_host(raw) == want


@pytest.mark.parametrize("pattern,host,score", [
    ("*", "anything.example.com", 0),
    ("*.example.com", "a.example.com", 13),
    ("*.example.com", "a.b.example.com", 13),
    ("*.example.com", "example.com", -1),
    ("*.example.com", "aexample.com", -1),
    ("a.example.com", "a.example.com", 10_000),
    ("a.example.com", "b.example.com", -1),
])
def test_host_match_score(pattern: str, host: str, score: int) -> None:
    assert host_match_score(pattern, host) == score


@pytest.mark.parametrize("a,b,want", [
    ("*", "x.com", True), ("*.a.com", "*.b.a.com", True), ("*.a.com", "*.b.com", False),
    ("*.a.com", "x.a.com", True), ("x.a.com", "*.a.com", True), ("x.a.com", "y.a.com", False),
])
def test_patterns_intersect(a: str, b: str, want: bool) -> None:
    assert patterns_intersect(a, b) is want


def test_route_table_lookup_exact_then_most_specific_wildcard() -> None:
    vh = {n: VirtualHost(n, (), ()) for n in ("exact", "wide", "narrow", "all")}
    t: RouteTable = build_table([("a.b.example.com", vh["exact"]), ("*.example.com", vh["wide"]),
                                 ("*.b.example.com", vh["narrow"]), ("*", vh["all"])])
    assert t.lookup("a.b.example.com") is vh["exact"]
    assert t.lookup("c.b.example.com") is vh["narrow"]
    assert t.lookup("c.example.com") is vh["wide"]
    assert t.lookup("elsewhere.org") is vh["all"]
    assert build_table([]).lookup("x") is None
    assert t.hosts() == ["a.b.example.com", "*.b.example.com", "*.example.com", "*"]


# --- splits ------------------------------------------------------------------------------

@pytest.mark.parametrize("weights,period,counts", [
    ([100], 1, [1]),
    ([50, 50], 2, [1, 1]),
    ([90, 10], 10, [9, 1]),
    ([0, 100], 1, [0, 1]),
    ([33, 33, 34], 100, [33, 33, 34]),
    ([25, 25, 50], 4, [1, 1, 2]),
    ([0, 0], 0, [0, 0]),
])
def test_swrr_schedule(weights: list[int], period: int, counts: list[int]) -> None:
    s = swrr_schedule(weights)
    assert len(s) == period
    assert [s.count(i) for i in range(len(weights))] == counts


def test_swrr_is_smooth() -> None:
    """nginx's property: the heavy split never runs far ahead, no long bursts."""
    assert swrr_schedule([50, 50]) == (0, 1)
    assert swrr_schedule([25, 25, 50]) == (2, 0, 1, 2)
    s = swrr_schedule([90, 10])
    assert s.index(1) in range(4, 7)        # the 10% split is mid-period, not at an edge


def test_credential_problem_accepts_a_chain() -> None:
    assert credential_problem(WILD_CERT + CA_CERT, WILD_KEY) == ""
    assert credential_problem(b"", WILD_KEY) == "the certificate is empty"
    assert "does not parse" in credential_problem(WILD_CERT, b"-----BEGIN PRIVATE KEY-----\nxx")
