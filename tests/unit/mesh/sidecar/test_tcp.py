"""The sidecar's TCP chains (mesh/sidecar/host.py, protocol.py), called as the listeners call
them, no sockets: the ALPN -> chain table; the connection-time decision on TCP attributes and
its access-log line naming the policy and rule; the per-pod cap on proxied TCP connections
(the connection over it is reset and logged); outbound TCP to a Service picks an endpoint and
speaks mTLS with Istio's TCP ALPN to a meshed one; a Service port's declared protocol (Istio's
naming) and the SMCP's protocol detection timeout, through the mesh part to the sidecar."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import socket
from pathlib import Path
from typing import Any, cast

import pytest

import skiff.mesh.sidecar.host as host_module
from skiff.dataplane.proxy.listener import Action, Plain, Reject
from skiff.mesh.ca import issue_workload_cert, make_self_signed_ca
from skiff.mesh.membership import mesh_config
from skiff.mesh.sidecar.config import MeshPart, ServiceVip, SidecarWorkload, decode, encode
from skiff.mesh.sidecar.host import MAX_TCP_CONNECTIONS, PodSidecar, SidecarHost
from skiff.mesh.sidecar.protocol import ALPN_MESH_TCP, inbound_protocol, service_port_protocol

NOW = dt.datetime(2026, 12, 3, 8, 0, tzinfo=dt.UTC)


def workloads() -> tuple[MeshPart, SidecarWorkload, SidecarWorkload]:
    ca = make_self_signed_ca(NOW)
    wc, wk = issue_workload_cert(ca, "team", "web", NOW)
    lc, lk = issue_workload_cert(ca, "team", "load", NOW)
    web = SidecarWorkload(uid="w", namespace="team", name="web", service_account="web",
                          ip="10.88.0.2", netns="/run/netns/skiff-test-missing-a",
                          cert_pem=wc, key_pem=wk, mtls="STRICT")
    load = SidecarWorkload(uid="l", namespace="team", name="load", service_account="load",
                           ip="10.88.0.3", netns="/run/netns/skiff-test-missing-b",
                           cert_pem=lc, key_pem=lk, mtls="STRICT")
    return MeshPart(root_pem=ca.root_pem, workloads=(web, load)), web, load


@pytest.mark.parametrize(("alpn", "chain"), [
    (("istio-http/1.1", "http/1.1"), "http"),          # skiff's and Istio's HTTP clients
    (("istio-http/1.0", "istio-http/1.1", "istio-h2"), "http"),
    (("istio-peer-exchange", "istio"), "tcp"),          # Istio's TCP clients
    (("istio",), "tcp"),
    (("h2", "http/1.1"), "sniff"),                       # curl --cert: the bytes tell
    ((), "sniff"),                                       # openssl s_client
])
def test_alpn_picks_the_chain(alpn: tuple[str, ...], chain: str) -> None:
    assert inbound_protocol(alpn) == chain


POLICY = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
          "metadata": {"name": "tcp-policy", "namespace": "team"},
          "spec": {"selector": {"matchLabels": {"app": "web"}},
                   "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/team/sa/load"]}}],
                              "to": [{"operation": {"ports": ["9000"]}}]},
                             {"to": [{"operation": {"methods": ["GET"], "ports": ["9001"]}}]}]}}


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def _sidecar(tmp_path: Path, policies: tuple[Any, ...] = (POLICY,)) -> tuple[SidecarHost, PodSidecar]:
    part, web, _load = workloads()
    web = dataclasses.replace(web, labels=(("app", "web"),), access_log=str(tmp_path / "log"))
    part = dataclasses.replace(part, workloads=(web, _load), policies=policies)
    host = SidecarHost()
    host.apply(part)
    return host, PodSidecar(host, web)


def test_tcp_decision_on_connection_attributes_and_its_log(tmp_path: Path) -> None:
    async def run() -> None:
        logging.getLogger("skiff.sidecar").setLevel(logging.ERROR)
        host, sc = _sidecar(tmp_path)
        load = "spiffe://cluster.local/ns/team/sa/load"
        ok = sc.tcp_decision(9000, load, "10.88.0.3", None)
        assert (ok.allowed, ok.policy, ok.rule, ok.status) == (True, "team/tcp-policy", 0, None)
        other = sc.tcp_decision(9000, "spiffe://cluster.local/ns/team/sa/x", "10.88.0.9", None)
        assert not other.allowed and other.status is None
        # the HTTP-only rule on 9001 is ignored for TCP (an ALLOW rule with `methods`)
        assert not sc.tcp_decision(9001, load, "10.88.0.3", None).allowed
        sc._log_tcp(ok, 9000, load, "10.88.0.3")
        sc._log_tcp(other, 9000, "spiffe://cluster.local/ns/team/sa/x", "10.88.0.9")
        text = (tmp_path / "log").read_text()
        assert ('"TCP" allowed source=cluster.local/ns/team/sa/load ip=10.88.0.3 port=9000: '
                "ALLOW policy team/tcp-policy rule 0") in text
        assert ('"TCP" rbac_access_denied source=cluster.local/ns/team/sa/x ip=10.88.0.9 '
                "port=9000: denied: no ALLOW policy matched") in text
        await host.stop()
    asyncio.run(run())


def test_tcp_connections_are_capped_per_pod(tmp_path: Path) -> None:
    async def run() -> None:
        logging.getLogger("skiff.sidecar").setLevel(logging.ERROR)
        host, sc = _sidecar(tmp_path)
        assert sc.max_tcp == MAX_TCP_CONNECTIONS
        sc.max_tcp = 2
        sc.tcp_conns = 2                          # two proxied now: the third is reset
        t = FakeTransport()
        sc._relay(t, b"x", ("127.0.0.1", 9000), None, None, "inbound")
        assert t.aborted and sc.tcp_conns == 2 and not host._relays
        assert "upstream_overflow (2 TCP connections open)" in (tmp_path / "log").read_text()
        # outbound too: refused before a connection is made
        assert isinstance(sc._outbound_tcp(("10.88.0.2", 9000)), Reject)
        # the app's own TLS let through (PERMISSIVE passthrough) is held to the same cap
        t = FakeTransport()
        sc._passthrough(8443).factory().connection_made(t)
        assert t.aborted and sc.tcp_conns == 2 and not host._relays
        assert "inbound connection to 127.0.0.1:8443 reset: upstream_overflow" in (
            tmp_path / "log").read_text()
        await host.stop()
    asyncio.run(run())


def test_outbound_tcp_to_a_service_speaks_mtls_with_the_tcp_alpn(tmp_path: Path) -> None:
    async def run() -> None:
        logging.getLogger("skiff.sidecar").setLevel(logging.ERROR)
        part, web, load = workloads()
        vip = ServiceVip("172.30.0.9", 9000, "team/web", (("10.88.0.2", 9000),))
        empty = ServiceVip("172.30.0.10", 9000, "team/none", ())
        host = SidecarHost()
        host.apply(dataclasses.replace(part, services=(vip, empty)))
        sc = PodSidecar(host, load)
        assert isinstance(sc._outbound_tcp(("172.30.0.9", 9000)), Plain)
        tls = sc._tcp_tls(sc._cluster_for(("10.88.0.2", 9000), vip).tls)  # type: ignore[arg-type]
        assert tls.alpn == ALPN_MESH_TCP and tls.match_san == (web.spiffe_id,)
        assert tls in host.pool.ssl_contexts             # its context made once, kept
        assert isinstance(sc._outbound_tcp(("172.30.0.10", 9000)), Reject)   # no endpoint
        await asyncio.sleep(0)
        await host.stop()
    asyncio.run(run())


@pytest.mark.parametrize(("name", "app_protocol", "want"), [
    ("tcp", "", "TCP"),
    ("tcp-db", "", "TCP"),
    ("TCP-DB", "", "TCP"),
    ("mysql", "", "MySQL"),
    ("mongo-x", "", "Mongo"),
    ("redis", "", "Redis"),
    ("https", "", "HTTPS"),
    ("tls-passthrough", "", "TLS"),
    ("http", "", "HTTP"),
    ("http2-x", "", "HTTP2"),
    ("grpc", "", "GRPC"),
    ("grpc-web-x", "", "GRPC-Web"),
    ("web", "", ""),                    # undeclared: detection
    ("", "", ""),
    ("tcpx", "", ""),
    ("http", "tcp", "TCP"),             # appProtocol first
    ("tcp", "kubernetes.io/h2c", "HTTP2"),
    ("tcp", "made-up", "TCP"),          # an unknown appProtocol: the name says
])
def test_service_port_protocol(name: str, app_protocol: str, want: str) -> None:
    assert service_port_protocol(name, app_protocol) == want


def test_the_part_carries_port_protocols_and_the_detection_timeout() -> None:
    part, _web, _load = workloads()
    part = dataclasses.replace(part, protocol_detection_timeout=0.1, services=(
        ServiceVip("172.30.0.9", 9000, "team/web", (("10.88.0.2", 9000),), "TCP"),
        ServiceVip("172.30.0.9", 80, "team/web", (("10.88.0.2", 8080),))))
    back = decode(encode(part))
    assert back.protocol_detection_timeout == 0.1
    assert [(s.port, s.protocol) for s in back.services] == [(9000, "TCP"), (80, "")]
    for bad in (-1, "1s", True, 7200):
        with pytest.raises(ValueError, match="protocolDetectionTimeout"):
            decode({**encode(part), "protocolDetectionTimeout": bad})


@pytest.mark.parametrize(("proxy", "tech", "want"), [
    (None, None, 0.0),                          # Istio's default: no detection timeout
    ("100ms", None, 0.1),
    (None, "5s", 5.0),
    ("1s", "5s", 1.0),
    ("soon", None, 0.0),
])
def test_the_smcp_sets_the_detection_timeout(proxy: str | None, tech: str | None,
                                             want: float) -> None:
    spec: dict[str, Any] = {}
    if proxy is not None:
        spec["proxy"] = {"networking": {"protocol": {"detectionTimeout": proxy}}}
    if tech is not None:
        spec["techPreview"] = {"meshConfig": {"protocolDetectionTimeout": tech}}
    smcp = {"apiVersion": "maistra.io/v2", "kind": "ServiceMeshControlPlane",
            "metadata": {"name": "basic", "namespace": "istio-system"}, "spec": spec}
    cfg = mesh_config([smcp])
    assert cfg is not None and cfg.protocol_detection_s == want


def test_a_declared_tcp_port_is_decided_before_any_byte(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    async def run() -> None:
        logging.getLogger("skiff.sidecar").setLevel(logging.ERROR)
        part, _web, load = workloads()
        tcp = ServiceVip("172.30.0.9", 3306, "team/db", (("10.88.0.2", 3306),), "MySQL")
        http = ServiceVip("172.30.0.9", 80, "team/db", (("10.88.0.2", 8080),), "HTTP")
        auto = ServiceVip("172.30.0.9", 81, "team/db", (("10.88.0.2", 8081),))
        host = SidecarHost()
        host.apply(dataclasses.replace(part, services=(tcp, http, auto),
                                       protocol_detection_timeout=0.25))
        assert host.detect_timeout == 0.25
        assert host.tcp_declared == {("172.30.0.9", 3306)}    # only these skip the peeking
        sc = PodSidecar(host, load)
        asked: list[object] = []

        def odst(conn: object) -> object:     # SO_ORIGINAL_DST of a stand-in: itself
            asked.append(conn)
            return conn
        monkeypatch.setattr(host_module, "original_dst", odst)

        def early(dst: tuple[str, int] | None) -> Action | None:
            return sc._early_outbound(cast(socket.socket, dst))
        assert isinstance(early(("172.30.0.9", 3306)), Plain)
        assert early(("172.30.0.9", 80)) is None       # HTTP: read it
        assert early(("172.30.0.9", 81)) is None       # undeclared: detection
        assert early(("10.88.0.2", 3306)) is None      # not a Service address
        assert early(None) is None                     # not a captured connection
        assert len(asked) == 5
        host.apply(dataclasses.replace(part, services=(http, auto)))
        assert early(("172.30.0.9", 80)) is None
        assert len(asked) == 5                # no port declared TCP: SO_ORIGINAL_DST not asked
        await asyncio.sleep(0)
        await host.stop()
    asyncio.run(run())
