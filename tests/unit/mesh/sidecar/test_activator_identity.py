"""The activator as a mesh workload (mesh/sidecar/activator.py): the guide's knative-serving
policies and the tenants' allow-<tenant>-to-activator decide what reaches it, from the
gateway or from a caller's sidecar; it reaches meshed pods with its own SVID; without an
SVID (knative-serving not a member) nothing is checked."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from skiff.dataplane.proxy.http1 import RequestHead
from skiff.mesh.authz import compile_policies
from skiff.mesh.sidecar.activator import WORKLOAD, ActivatorIdentity
from skiff.mesh.sidecar.config import MeshPart, SidecarWorkload
from skiff.mesh.sidecar.host import SidecarHost

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "tenant-isolation"
ALPHA = "spiffe://cluster.local/ns/team-alpha-1/sa/default"
BRAVO = "spiffe://cluster.local/ns/team-bravo-1/sa/default"


def guide_policies() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for f in ("01-knative-default-authz-policies.yaml", "02-team-alpha.yaml",
              "03-team-bravo.yaml"):
        docs += [d for d in yaml.safe_load_all((EXAMPLE / f).read_text())
                 if d and d.get("kind") == "AuthorizationPolicy"]
    return docs


def head(host: str, path: str = "/") -> RequestHead:
    return RequestHead(b"GET", path.encode(), host.encode(), [], {}, b"10.244.0.5", b"http",
                       "1.1", True, False, -1)


def identity(policies: list[dict[str, Any]], cert: bytes = b"activator-cert",
             meshed: tuple[SidecarWorkload, ...] = ()) -> ActivatorIdentity:
    host = SidecarHost()
    host.part = MeshPart(root_pem=b"root", activator_cert=cert,
                         activator_key=b"key" if cert else b"", workloads=meshed)
    host.policies = compile_policies(policies, "istio-system")
    host.by_ip = {w.ip: w for w in meshed}
    return ActivatorIdentity(host)


def test_the_guide_s_policies_decide_what_reaches_the_activator() -> None:
    act = identity(guide_policies())
    log: list[str] = []
    act.access_log = SimpleNamespace(write=log.append)  # type: ignore[assignment]
    alpha_host = "test-webapp.team-alpha-1.svc.cluster.local"
    # through the gateway (istio-system): allow-traffic-to-activator
    assert act.admits(head(alpha_host), None) is None
    assert "knative-serving/allow-traffic-to-activator" in log[-1]
    # a tenant's own services, from its sidecar: allow-team-alpha-to-activator
    assert act.admits(head(alpha_host), ALPHA) is None
    assert act.admits(head("test-webapp.team-alpha-1"), ALPHA) is None
    assert "allow-team-alpha-to-activator" in log[-1]
    # another tenant's: 403 "RBAC: access denied", and the log says who and why
    denied = act.admits(head(alpha_host), BRAVO)
    assert denied is not None and denied.status == 403 and denied.body == b"RBAC: access denied"
    assert "403 rbac_access_denied source=cluster.local/ns/team-bravo-1/sa/default" in log[-1]
    assert act.admits(head("test-webapp.team-bravo-1"), BRAVO) is None


def test_without_policies_for_it_or_without_an_svid_nothing_is_checked() -> None:
    other = [p for p in guide_policies() if p["metadata"]["namespace"] != "knative-serving"]
    assert identity(other).admits(head("test-webapp.team-alpha-1"), BRAVO) is None
    unmeshed = identity(guide_policies(), cert=b"")
    assert unmeshed.admits(head("test-webapp.team-alpha-1"), BRAVO) is None
    assert unmeshed.cluster(("10.244.0.9", 8012)) is None


def test_it_reaches_meshed_pods_with_its_own_svid() -> None:
    pod = SidecarWorkload(uid="u1", namespace="team-alpha-1", name="test-webapp-1",
                          service_account="default", ip="10.244.0.9", netns="/run/netns/x")
    act = identity([], meshed=(pod,))
    c = act.cluster(("10.244.0.9", 8012))
    assert c is not None and c.tls is not None
    assert c.tls.cert_pem == b"activator-cert" and c.tls.match_san == (ALPHA,)
    assert act.cluster(("10.244.0.9", 8012)) is c              # one per destination identity
    assert act.cluster(("10.244.0.77", 8012)) is None          # no sidecar there: plain
    assert WORKLOAD.namespace == "knative-serving" and ("app", "activator") in WORKLOAD.labels


def test_the_control_plane_issues_its_svid_only_while_knative_serving_is_a_member() -> None:
    from skiff.mesh.membership import MeshConfig
    from skiff.mesh.sidecar.config import ACTIVATOR_IDENTITY, decode, encode
    from skiff.mesh.sidecar.controller import compile_part

    def issue(ns: str, sa: str) -> tuple[bytes, bytes]:
        return f"cert {ns}/{sa}".encode(), f"key {ns}/{sa}".encode()

    def part(members: frozenset[str]) -> MeshPart:
        cfg = MeshConfig(members=members)
        return compile_part([], [], [], [], cfg, b"root", issue, lambda _n, _m: None,
                            lambda _n, _m: "", lambda _p: ("STRICT", ()))
    inside = part(frozenset({"istio-system", "knative-serving", "team-alpha-1"}))
    assert (inside.activator_cert, inside.activator_key) == issue(*ACTIVATOR_IDENTITY)
    assert decode(encode(inside)).activator_cert == b"cert knative-serving/activator"
    outside = part(frozenset({"istio-system", "team-alpha-1"}))
    assert outside.activator_cert == b"" and decode(encode(outside)).activator_cert == b""
