"""answer() against a ClusterView built from objects as the API holds them: one test per record kind."""

from __future__ import annotations

from typing import Any

import pytest
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from skiff.node.network.dns import (
    answer,
    external_target,
    failure,
    formerr,
    pack_udp,
    resolv_conf,
    udp_limit,
)
from skiff.node.network.dnsview import ClusterView

Obj = dict[str, Any]


def service(ns: str, name: str, cluster_ip: str = "", ports: list[Obj] | None = None,
            **spec: Any) -> Obj:
    s: Obj = {"ports": ports or [], **spec}
    if cluster_ip:
        s["clusterIP"] = cluster_ip
        s["clusterIPs"] = [cluster_ip] if cluster_ip != "None" else ["None"]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": ns, "name": name}, "spec": s}


def slice_(ns: str, name: str, svc: str, endpoints: list[Obj], ports: list[Obj]) -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"namespace": ns, "name": name,
                         "labels": {"kubernetes.io/service-name": svc}},
            "endpoints": endpoints, "ports": ports}


def pod(ns: str, name: str, ip: str, phase: str = "Running") -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": ns, "name": name},
            "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}]}}


def ep(ip: str, ready: bool | None = True, hostname: str = "") -> Obj:
    e: Obj = {"addresses": [ip], "conditions": {} if ready is None else {"ready": ready}}
    if hostname:
        e["hostname"] = hostname
    return e


@pytest.fixture
def view() -> ClusterView:
    v = ClusterView()
    v.apply("Service", service("team-alpha-1", "test-webapp", "10.96.0.20",
                               [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                                {"name": "dns", "protocol": "UDP", "port": 53}]))
    v.apply("Service", service("team-alpha-1", "db", "None",
                               [{"name": "pg", "protocol": "TCP", "port": 5432}]))
    v.apply("EndpointSlice", slice_("team-alpha-1", "db-abc", "db",
                                    [ep("10.244.0.7", hostname="db-0"), ep("10.244.0.8"),
                                     ep("10.244.0.9", ready=False), ep("10.244.0.10", ready=None)],
                                    [{"name": "pg", "protocol": "TCP", "port": 5432}]))
    v.apply("Service", service("team-alpha-1", "ext", type="ExternalName",
                               externalName="example.com"))
    v.apply("Service", service("team-alpha-1", "alias", type="ExternalName",
                               externalName="test-webapp.team-alpha-1.svc.cluster.local"))
    v.apply("Pod", pod("team-alpha-1", "web-1", "10.244.0.5"))
    v.apply("Pod", pod("team-alpha-1", "done", "10.244.0.99", phase="Succeeded"))
    return v


def ask(view: ClusterView, name: str, qtype: str = "A", **kw: Any) -> DNSRecord | None:
    q = DNSRecord.question(name, qtype)
    r = answer(DNSRecord.parse(q.pack()), view, **kw)
    if r is not None:    # what goes on the wire must parse back
        r = DNSRecord.parse(r.pack())
        assert r.header.id == q.header.id
    return r


def rdata(r: DNSRecord | None, rtype: str = "") -> list[str]:
    assert r is not None
    return sorted(str(rr.rdata) for rr in r.rr if not rtype or QTYPE[rr.rtype] == rtype)


def test_clusterip_service_a_record(view: ClusterView) -> None:
    r = ask(view, "test-webapp.team-alpha-1.svc.cluster.local")
    assert r is not None and r.header.rcode == RCODE.NOERROR and r.header.aa == 1
    assert rdata(r) == ["10.96.0.20"]
    assert r.rr[0].ttl == 5


def test_names_are_case_insensitive_and_the_answer_keeps_the_spelling(view: ClusterView) -> None:
    r = ask(view, "Test-WebApp.TEAM-alpha-1.svc.Cluster.Local")
    assert rdata(r) == ["10.96.0.20"]
    assert r is not None and str(r.rr[0].rname) == "Test-WebApp.TEAM-alpha-1.svc.Cluster.Local."


def test_headless_service_answers_every_ready_endpoint(view: ClusterView) -> None:
    # 10.244.0.9 is not ready; a nil `ready` (10.244.0.10) counts as ready.
    assert rdata(ask(view, "db.team-alpha-1.svc.cluster.local")) == \
        ["10.244.0.10", "10.244.0.7", "10.244.0.8"]


def test_headless_publish_not_ready_addresses(view: ClusterView) -> None:
    view.apply("Service", service("team-alpha-1", "db", "None", publishNotReadyAddresses=True))
    assert "10.244.0.9" in rdata(ask(view, "db.team-alpha-1.svc.cluster.local"))


def test_headless_endpoints_spread_over_slices_are_joined_and_deduplicated(view: ClusterView) -> None:
    view.apply("EndpointSlice", slice_("team-alpha-1", "db-def", "db",
                                       [ep("10.244.0.7", hostname="db-0"), ep("10.244.0.11")], []))
    assert rdata(ask(view, "db.team-alpha-1.svc.cluster.local")) == \
        ["10.244.0.10", "10.244.0.11", "10.244.0.7", "10.244.0.8"]
    view.delete("EndpointSlice", {"metadata": {"namespace": "team-alpha-1", "name": "db-def"}})
    assert "10.244.0.11" not in rdata(ask(view, "db.team-alpha-1.svc.cluster.local"))


def test_endpoint_hostname_record(view: ClusterView) -> None:
    assert rdata(ask(view, "db-0.db.team-alpha-1.svc.cluster.local")) == ["10.244.0.7"]
    # An endpoint without a hostname is named by its dashed address.
    assert rdata(ask(view, "10-244-0-8.db.team-alpha-1.svc.cluster.local")) == ["10.244.0.8"]
    r = ask(view, "db-9.db.team-alpha-1.svc.cluster.local")
    assert r is not None and r.header.rcode == RCODE.NXDOMAIN


def test_external_name_is_a_cname(view: ClusterView) -> None:
    r = ask(view, "ext.team-alpha-1.svc.cluster.local")
    assert r is not None and r.header.rcode == RCODE.NOERROR
    assert [(QTYPE[rr.rtype], str(rr.rdata)) for rr in r.rr] == [("CNAME", "example.com.")]
    # The target is not ours: the server is told to resolve it upstream.
    q = DNSRecord.question("ext.team-alpha-1.svc.cluster.local", "A")
    assert external_target(q, r) == "example.com."
    assert external_target(DNSRecord.question("x", "CNAME"), r) is None


def test_external_name_into_the_zone_is_chased_here(view: ClusterView) -> None:
    r = ask(view, "alias.team-alpha-1.svc.cluster.local")
    assert r is not None
    assert [(QTYPE[rr.rtype], str(rr.rdata)) for rr in r.rr] == [
        ("CNAME", "test-webapp.team-alpha-1.svc.cluster.local."), ("A", "10.96.0.20")]
    assert external_target(DNSRecord.question("alias.team-alpha-1.svc.cluster.local"), r) is None


def test_srv_for_a_named_port_of_a_clusterip_service(view: ClusterView) -> None:
    r = ask(view, "_http._tcp.test-webapp.team-alpha-1.svc.cluster.local", "SRV")
    assert rdata(r, "SRV") == ["0 100 80 test-webapp.team-alpha-1.svc.cluster.local."]
    assert r is not None and [str(rr.rdata) for rr in r.ar] == ["10.96.0.20"]
    assert rdata(ask(view, "_dns._udp.test-webapp.team-alpha-1.svc.cluster.local", "SRV")) == \
        ["0 100 53 test-webapp.team-alpha-1.svc.cluster.local."]
    # Wrong protocol for the port name: no such name.
    r = ask(view, "_http._udp.test-webapp.team-alpha-1.svc.cluster.local", "SRV")
    assert r is not None and r.header.rcode == RCODE.NXDOMAIN
    # `_tcp.<svc>` exists as an empty non-terminal.
    r = ask(view, "_tcp.test-webapp.team-alpha-1.svc.cluster.local", "SRV")
    assert r is not None and r.header.rcode == RCODE.NOERROR and not r.rr


def test_srv_of_a_headless_service_names_one_target_per_endpoint(view: ClusterView) -> None:
    r = ask(view, "_pg._tcp.db.team-alpha-1.svc.cluster.local", "SRV")
    assert rdata(r, "SRV") == ["0 33 5432 10-244-0-10.db.team-alpha-1.svc.cluster.local.",
                               "0 33 5432 10-244-0-8.db.team-alpha-1.svc.cluster.local.",
                               "0 33 5432 db-0.db.team-alpha-1.svc.cluster.local."]
    assert r is not None
    assert sorted((str(rr.rname), str(rr.rdata)) for rr in r.ar) == [
        ("10-244-0-10.db.team-alpha-1.svc.cluster.local.", "10.244.0.10"),
        ("10-244-0-8.db.team-alpha-1.svc.cluster.local.", "10.244.0.8"),
        ("db-0.db.team-alpha-1.svc.cluster.local.", "10.244.0.7")]


def test_pod_record(view: ClusterView) -> None:
    assert rdata(ask(view, "10-244-0-5.team-alpha-1.pod.cluster.local")) == ["10.244.0.5"]
    # Verified: the pod must exist in that namespace, and a finished pod's IP is not published.
    for name in ("10-244-0-5.team-bravo-1.pod.cluster.local",
                 "10-244-0-99.team-alpha-1.pod.cluster.local",
                 "not-an-ip.team-alpha-1.pod.cluster.local"):
        r = ask(view, name)
        assert r is not None and r.header.rcode == RCODE.NXDOMAIN, name


@pytest.mark.parametrize("name,expected", [
    ("20.0.96.10.in-addr.arpa", ["test-webapp.team-alpha-1.svc.cluster.local."]),
    ("5.0.244.10.in-addr.arpa", ["10-244-0-5.team-alpha-1.pod.cluster.local."]),
    ("7.0.244.10.in-addr.arpa", ["db-0.db.team-alpha-1.svc.cluster.local."]),
])
def test_ptr(view: ClusterView, name: str, expected: list[str]) -> None:
    assert rdata(ask(view, name, "PTR")) == expected


def test_ptr_for_an_address_that_is_not_the_clusters_is_forwarded(view: ClusterView) -> None:
    assert ask(view, "8.8.8.8.in-addr.arpa", "PTR") is None
    assert ask(view, "10.in-addr.arpa", "PTR") is None


@pytest.mark.parametrize("name,qtype", [
    ("test-webapp.team-alpha-1.svc.cluster.local", "AAAA"),
    ("test-webapp.team-alpha-1.svc.cluster.local", "MX"),
    ("_http._tcp.test-webapp.team-alpha-1.svc.cluster.local", "A"),
    ("10-244-0-5.team-alpha-1.pod.cluster.local", "AAAA"),
    ("team-alpha-1.svc.cluster.local", "A"),
    ("svc.cluster.local", "A"),
    ("cluster.local", "A"),
])
def test_existing_names_of_another_type_are_nodata_with_soa(view: ClusterView, name: str,
                                                            qtype: str) -> None:
    r = ask(view, name, qtype)
    assert r is not None and r.header.rcode == RCODE.NOERROR and not r.rr
    assert [QTYPE[rr.rtype] for rr in r.auth] == ["SOA"]


@pytest.mark.parametrize("name", [
    "nope.team-alpha-1.svc.cluster.local",
    "test-webapp.team-bravo-1.svc.cluster.local",
    "test-webapp.team-alpha-1.svc.cluster.local.team-alpha-1.svc.cluster.local",
    "team-bravo-1.svc.cluster.local",
    "foo.cluster.local",
    "a.b.c.d.e.f.svc.cluster.local",
])
def test_unknown_names_in_the_zone_are_nxdomain_with_soa(view: ClusterView, name: str) -> None:
    r = ask(view, name)
    assert r is not None and r.header.rcode == RCODE.NXDOMAIN and not r.rr
    assert [(QTYPE[rr.rtype], str(rr.rname)) for rr in r.auth] == [("SOA", "cluster.local.")]
    assert r.auth[0].rdata.times[-1] == 5      # negative answers are cached 5 s too


def test_names_outside_the_zone_are_not_ours(view: ClusterView) -> None:
    assert ask(view, "example.com") is None
    assert ask(view, "cluster.local.example.com") is None


def test_apps_domain_and_every_name_under_it_is_the_router(view: ClusterView) -> None:
    kw = {"apps_domain": "apps.example.test", "apps_ip": "10.244.0.1"}
    for name in ("apps.example.test", "test-webapp-team-bravo-1.apps.example.test",
                 "a.b.Apps.Example.Test"):
        assert rdata(ask(view, name, **kw)) == ["10.244.0.1"], name
    r = ask(view, "x.apps.example.test", "AAAA", **kw)
    assert r is not None and r.header.rcode == RCODE.NOERROR and not r.rr
    assert ask(view, "x.apps.example.test") is None   # without the domain configured


def test_dns_version_and_soa_at_the_apex(view: ClusterView) -> None:
    assert rdata(ask(view, "dns-version.cluster.local", "TXT")) == ['"1.1.0"']
    r = ask(view, "cluster.local", "SOA")
    assert r is not None and [QTYPE[rr.rtype] for rr in r.rr] == ["SOA"]


def test_another_zone_name(view: ClusterView) -> None:
    assert rdata(ask(view, "test-webapp.team-alpha-1.svc.corp.internal", zone="corp.internal")) == \
        ["10.96.0.20"]
    assert ask(view, "test-webapp.team-alpha-1.svc.cluster.local", zone="corp.internal") is None


def test_more_than_one_question_or_none_is_formerr(view: ClusterView) -> None:
    q = DNSRecord.question("test-webapp.team-alpha-1.svc.cluster.local")
    q.add_question(*DNSRecord.question("db.team-alpha-1.svc.cluster.local").questions)
    r = answer(DNSRecord.parse(q.pack()), view)
    assert r is not None and r.header.rcode == RCODE.FORMERR and not r.questions
    empty = DNSRecord()
    r = answer(DNSRecord.parse(empty.pack()), view)
    assert r is not None and r.header.rcode == RCODE.FORMERR


def test_a_response_or_another_opcode_is_not_answered_as_a_query(view: ClusterView) -> None:
    q = DNSRecord.question("test-webapp.team-alpha-1.svc.cluster.local")
    q.header.qr = 1
    r = answer(q, view)
    assert r is not None and r.header.rcode == RCODE.FORMERR
    q = DNSRecord.question("test-webapp.team-alpha-1.svc.cluster.local")
    q.header.opcode = 2
    r = answer(q, view)
    assert r is not None and r.header.rcode == RCODE.NOTIMP


def test_view_follows_deletes_and_updates(view: ClusterView) -> None:
    view.apply("Service", service("team-alpha-1", "test-webapp", "10.96.0.21"))
    assert rdata(ask(view, "test-webapp.team-alpha-1.svc.cluster.local")) == ["10.96.0.21"]
    assert ask(view, "20.0.96.10.in-addr.arpa", "PTR") is None
    view.delete("Service", service("team-alpha-1", "test-webapp"))
    r = ask(view, "test-webapp.team-alpha-1.svc.cluster.local")
    assert r is not None and r.header.rcode == RCODE.NXDOMAIN
    view.delete("Pod", pod("team-alpha-1", "web-1", "10.244.0.5"))
    r = ask(view, "10-244-0-5.team-alpha-1.pod.cluster.local")
    assert r is not None and r.header.rcode == RCODE.NXDOMAIN


def test_replace_drops_what_a_fresh_list_no_longer_holds(view: ClusterView) -> None:
    view.replace("Service", [service("team-alpha-1", "test-webapp", "10.96.0.20")])
    assert set(view.services) == {("team-alpha-1", "test-webapp")}
    view.replace("Pod", [])
    assert not view.pods and not view.pod_namespaces_at("10.244.0.5")


def test_ipv6_addresses_answer_aaaa() -> None:
    v = ClusterView()
    v.apply("Service", service("default", "v6", "fd00::10"))
    assert rdata(ask(v, "v6.default.svc.cluster.local", "AAAA")) == ["fd00::10"]
    r = ask(v, "v6.default.svc.cluster.local", "A")
    assert r is not None and r.header.rcode == RCODE.NOERROR and not r.rr
    rev = ".".join(reversed("fd00" + "0" * 24 + "0010")) + ".ip6.arpa"
    assert rdata(ask(v, rev, "PTR")) == ["v6.default.svc.cluster.local."]


def test_edns_is_echoed_and_udp_replies_are_truncated_to_the_clients_size() -> None:
    v = ClusterView()
    v.apply("Service", service("default", "big", "None"))
    v.apply("EndpointSlice", slice_("default", "big-1", "big",
                                    [ep(f"10.244.{i // 250}.{i % 250 + 1}") for i in range(100)], []))
    q = DNSRecord.question("big.default.svc.cluster.local")
    r = answer(q, v)
    assert r is not None and len(r.rr) == 100
    assert udp_limit(q) == 512
    data = pack_udp(r, udp_limit(q))
    t = DNSRecord.parse(data)
    assert t.header.tc == 1 and not t.rr and str(t.q.qname) == "big.default.svc.cluster.local."
    q.add_ar(EDNS0(udp_len=4096))
    r = answer(q, v)
    assert r is not None and any(rr.rtype == QTYPE.OPT for rr in r.ar)
    assert udp_limit(q) == 4096
    assert len(DNSRecord.parse(pack_udp(r, udp_limit(q))).rr) == 100


def test_answers_per_reply_are_bounded() -> None:
    v = ClusterView()
    v.apply("Service", service("default", "huge", "None"))
    v.apply("EndpointSlice", slice_("default", "huge-1", "huge",
                                    [ep(f"10.{i // 62500}.{i // 250 % 250}.{i % 250 + 1}")
                                     for i in range(2000)], []))
    r = answer(DNSRecord.question("huge.default.svc.cluster.local"), v)
    assert r is not None and len(r.rr) == 500
    assert len(r.pack()) < 65535


def test_formerr_from_a_header_alone() -> None:
    q = DNSRecord.question("x.cluster.local")
    data = formerr(q.pack()[:12] + b"\xff\xff")
    assert data is not None
    r = DNSRecord.parse(data)
    assert r.header.id == q.header.id and r.header.qr == 1 and r.header.rcode == RCODE.FORMERR
    assert formerr(b"\x00" * 5) is None
    q.header.qr = 1
    assert formerr(q.pack()) is None          # a response is never answered


def test_failure_keeps_the_question() -> None:
    q = DNSRecord.question("example.com")
    r = failure(q, RCODE.SERVFAIL)
    assert r.header.rcode == RCODE.SERVFAIL and str(r.q.qname) == "example.com."


def test_resolv_conf() -> None:
    assert resolv_conf("team-alpha-1", "10.244.0.1") == (
        "nameserver 10.244.0.1\n"
        "search team-alpha-1.svc.cluster.local svc.cluster.local cluster.local\n"
        "options ndots:5\n")
