"""SidecarController (the shell): one SVID per identity from the mesh CA, republished only when
something changed, and reissued once half its life is gone (pilot-agent's grace ratio)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from skiff.core.memclient import MemoryClient
from skiff.mesh import crds
from skiff.mesh.ca import CAHolder, spiffe_id_of
from skiff.mesh.sidecar import config, controller
from skiff.mesh.sidecar.controller import SidecarController, inbound_mtls

SMCP = {"apiVersion": "maistra.io/v2", "kind": "ServiceMeshControlPlane",
        "metadata": {"name": "basic", "namespace": "istio-system"},
        "spec": {"security": {"dataPlane": {"mtls": True},
                              "certificateAuthority": {"istiod": {
                                  "workloadCertTTLDefault": "2h"}}}}}
SMMR = {"apiVersion": "maistra.io/v1", "kind": "ServiceMeshMemberRoll",
        "metadata": {"name": "default", "namespace": "istio-system"},
        "spec": {"members": ["team-a"]}}


def pod(name: str, ip: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "team-a", "uid": f"uid-{name}"},
            "spec": {"containers": [{"name": "app", "image": "x"},
                                    {"name": "istio-proxy", "image": "proxyv2"}]},
            "status": {"podIP": ip, "phase": "Running"}}


class Publisher:
    def __init__(self) -> None:
        self.parts: list[config.MeshPart] = []

    def publish_part(self, name: str, data: Any) -> int:
        assert name == config.PART
        self.parts.append(config.decode(data))
        return len(self.parts)


def ns(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> list[dt.datetime]:
    clock = [dt.datetime(2026, 12, 3, 8, 0, tzinfo=dt.UTC)]
    monkeypatch.setattr(controller, "utcnow", lambda: clock[0])
    return clock


def test_svids_are_shared_per_identity_and_rotated_at_half_life(now: list[dt.datetime]) -> None:
    async def run() -> None:
        client = MemoryClient([ns("istio-system")], kinds=crds.KINDS)
        pub = Publisher()
        ctl = SidecarController(client, pub, CAHolder(), lambda _ns, n: f"/run/netns/{n}",
                                lambda _ns, _n: "", inbound_mtls)
        objs = {"smcp": [SMCP], "smmr": [SMMR], "namespaces": [ns("team-a"), ns("istio-system")],
                "pods": [pod("a", "10.244.0.5"), pod("b", "10.244.0.6")]}
        for key, items in objs.items():
            ctl.informers[key].items = {(o["metadata"].get("namespace", ""),
                                         o["metadata"]["name"]): o for o in items}
        first = await ctl.compile_and_publish()
        assert first is not None and len(pub.parts) == 1
        a, b = first.workloads
        assert a.cert_pem == b.cert_pem        # one identity (team-a/default), one SVID
        assert spiffe_id_of(a.cert_pem) == "spiffe://cluster.local/ns/team-a/sa/default"
        assert a.mtls == "STRICT"
        # nothing changed: nothing published
        await ctl.compile_and_publish()
        assert len(pub.parts) == 1
        # a little before half of the 2 h life: still the same certificate
        now[0] += dt.timedelta(minutes=50)
        await ctl.compile_and_publish()
        assert len(pub.parts) == 1
        # past half life: a new certificate, published; the pods' listeners stay (same uid,
        # netns and IP), so the data plane only swaps contexts for new handshakes
        now[0] += dt.timedelta(minutes=15)
        third = await ctl.compile_and_publish()
        assert third is not None and len(pub.parts) == 2
        assert third.workloads[0].cert_pem != a.cert_pem
        assert [(w.uid, w.netns, w.ip) for w in third.workloads] == \
            [(w.uid, w.netns, w.ip) for w in first.workloads]
        assert third.gateway_cert != first.gateway_cert
    asyncio.run(run())


def test_no_control_plane_publishes_an_empty_part(now: list[dt.datetime]) -> None:
    async def run() -> None:
        pub = Publisher()
        ctl = SidecarController(MemoryClient(kinds=crds.KINDS), pub, CAHolder(),
                                lambda _ns, n: f"/run/netns/{n}", lambda _ns, _n: "",
                                inbound_mtls)
        ctl.informers["pods"].items = {("team-a", "a"): pod("a", "10.244.0.5")}
        part = await ctl.compile_and_publish()
        assert part == config.MeshPart() and len(pub.parts) == 1
    asyncio.run(run())
