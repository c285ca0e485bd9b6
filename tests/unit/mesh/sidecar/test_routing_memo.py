"""The sidecar's per-request memos (mesh/sidecar/host.py): an outbound pod address's cluster and
the inbound app route are worked out once, and a new mesh part (or identity) starts them afresh.
Listeners are never opened: the routing functions are called as the proxy calls them."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging

from skiff.mesh.ca import issue_workload_cert, make_self_signed_ca
from skiff.mesh.sidecar.config import MeshPart, SidecarWorkload
from skiff.mesh.sidecar.host import PodSidecar, SidecarHost

NS = "team"
NOW = dt.datetime(2026, 12, 3, 8, 0, tzinfo=dt.UTC)


def workloads() -> tuple[MeshPart, SidecarWorkload, SidecarWorkload]:
    ca = make_self_signed_ca(NOW)
    wc, wk = issue_workload_cert(ca, NS, "web", NOW)
    lc, lk = issue_workload_cert(ca, NS, "load", NOW)
    web = SidecarWorkload(uid="w", namespace=NS, name="web", service_account="web",
                          ip="10.88.0.2", netns="/run/netns/skiff-test-missing-a",
                          cert_pem=wc, key_pem=wk, mtls="STRICT")
    load = SidecarWorkload(uid="l", namespace=NS, name="load", service_account="load",
                           ip="10.88.0.3", netns="/run/netns/skiff-test-missing-b",
                           cert_pem=lc, key_pem=lk, mtls="STRICT")
    part = MeshPart(root_pem=ca.root_pem, trust_domain="cluster.local",
                    root_namespace="istio-system", workloads=(web, load))
    return part, web, load


def test_outbound_cluster_follows_the_mesh_part() -> None:
    async def run() -> None:
        logging.getLogger("skiff.sidecar").setLevel(logging.ERROR)   # listeners cannot open
        part, web, load = workloads()
        host = SidecarHost()
        host.apply(part)
        sc = PodSidecar(host, load)
        host.pods[load.uid] = sc
        first = sc._to(("10.88.0.2", 8080))
        again = sc._to(("10.88.0.2", 8080))
        assert first.cluster is again.cluster and first.cluster is not None
        assert first.cluster.tls is not None                 # mTLS to a meshed pod
        assert sc._to(("10.88.0.9", 80)).cluster is sc.plain_out      # not in the mesh
        # the server pod turns mTLS off for its port: the next request goes plain
        host.apply(dataclasses.replace(part, workloads=(
            dataclasses.replace(web, port_mtls=((8080, "DISABLE"),)), load)))
        assert sc._to(("10.88.0.2", 8080)).cluster is sc.plain_out
        assert sc._to(("10.88.0.2", 9090)).cluster.tls is not None   # type: ignore[union-attr]
        await asyncio.sleep(0)
        await host.stop()
    asyncio.run(run())


def test_inbound_app_route_is_one_per_caller_identity() -> None:
    part, web, _ = workloads()
    host = SidecarHost()
    host.part = part
    sc = PodSidecar(host, web)
    a = sc._to_app(8080, "spiffe://cluster.local/ns/team/sa/load", True)
    b = sc._to_app(8080, "spiffe://cluster.local/ns/team/sa/load", True)
    c = sc._to_app(8080, None, False)
    assert a.endpoint == ("127.0.0.1", 8080) and a.cluster is sc.local and a.host is None
    assert a.extra == (b"x-forwarded-client-cert: By=spiffe://cluster.local/ns/team/sa/web;"
                       b"URI=spiffe://cluster.local/ns/team/sa/load\r\nx-forwarded-proto: https\r\n")
    assert b.extra is a.extra and a is not b            # one Forward per request
    assert c.extra == b"x-forwarded-proto: http\r\n"
