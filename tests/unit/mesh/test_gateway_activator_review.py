"""Review of the gateway's activator seam (mesh/gateway/proxy.py, commits 0c00950 and 9f0eb0e):
a request the activator held is dispatched again once it is released. Upstream the split was
chosen once, by Envoy, before the request reached the activator, and the activator's sidecar
decided it once; a redispatch must keep both. A fake activator and activator mesh record what
the gateway asks; no sockets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from test_gateway_dispatch import go, head, proxy, split  # its gateway and request tables

from skiff.dataplane.proxy.http1 import Defer, Forward, Reply, RequestHead

HELD = Reply(599, b"held")


class FakeActivator:
    """Fronts every cluster; `full` clusters have no room (pick None) until released."""

    def __init__(self, full: set[str]) -> None:
        self.full = full
        self.held: list[tuple[str, Callable[[], Forward | Reply | Defer]]] = []

    def in_path(self, cluster: str) -> bool:
        return True

    def pick(self, cluster: str, eps: Sequence[Any]) -> tuple[str, Any] | None:
        if cluster in self.full:
            return None
        return f"{cluster}|x", eps[0]

    def hold(self, cluster: str, redispatch: Callable[[], Forward | Reply | Defer]) -> Reply:
        self.held.append((cluster, redispatch))
        return HELD

    def endpoints_changed(self, changes: Any) -> None:
        pass

    def start(self, ctx: Any, head: Any) -> None:
        pass

    def end(self, *args: Any) -> None:
        pass


class CountingMesh:
    def __init__(self) -> None:
        self.admitted = 0

    def admits(self, head: RequestHead, source: str | None) -> Reply | None:
        self.admitted += 1
        return None

    def cluster(self, ep: Any) -> None:
        return None


def _gateway() -> tuple[Any, FakeActivator, CountingMesh]:
    gp = proxy([{"splits": [split("hello-00001", 50), split("hello-00002", 50)]}])
    act = FakeActivator(full={"default/hello-00001"})
    mesh = CountingMesh()
    gp.activator = act
    gp.activator_mesh = mesh
    gp.activator_path_changed()
    return gp, act, mesh


def _held_for_first_revision(gp: Any, act: FakeActivator) -> Callable[[], Any]:
    for _ in range(4):                  # the 50/50 schedule reaches hello-00001 within two
        if go(gp, head()) is HELD:
            break
    assert act.held and act.held[-1][0] == "default/hello-00001"
    return act.held[-1][1]


def test_a_released_request_goes_to_the_revision_it_was_held_for() -> None:
    gp, act, _ = _gateway()
    redispatch = _held_for_first_revision(gp, act)
    act.full.clear()                    # released: hello-00001 has room now
    out = redispatch()
    assert isinstance(out, Forward)
    assert out.endpoint[1] == 31001, "the split was rolled again: another revision served it"


def test_a_released_request_is_decided_by_the_activator_s_policies_once() -> None:
    gp, act, mesh = _gateway()
    redispatch = _held_for_first_revision(gp, act)
    before = mesh.admitted
    act.full.clear()
    redispatch()
    assert mesh.admitted == before, "admits() ran (and logged) again for the same request"


def test_a_sidecar_s_released_request_goes_on_as_it_was_routed() -> None:
    """The same for a cluster-local request a caller's sidecar routes itself (route_local):
    its redispatch calls route_local() again, which resumes the held route."""
    gp, act, mesh = _gateway()
    caller = "spiffe://cluster.local/ns/team-alpha-1/sa/default"
    h = head("hello.default.svc.cluster.local")
    routed: list[Any] = []

    def sidecar() -> Forward | Reply | Defer:
        routed.append(gp.route_local(h, sidecar, caller))
        return Reply(200)
    for _ in range(4):
        if gp.route_local(h, sidecar, caller) is HELD:
            break
    cluster, redispatch = act.held[-1]
    assert cluster == "default/hello-00001"
    before = mesh.admitted
    act.full.clear()
    redispatch()
    ep, _extra, _rewrite, cl = routed[-1]
    assert (ep[1], cl) == (31001, "default/hello-00001") and mesh.admitted == before
    assert h.tag == "default/hello-00001|x"
    # not released yet (still no room): held again for the same revision
    act.full.add("default/hello-00002")
    act.full.add("default/hello-00001")
    redispatch()
    assert act.held[-1][0] == "default/hello-00001"


def test_a_full_swap_tells_the_activator_of_clusters_that_lost_every_endpoint() -> None:
    """A whole snapshot (the data plane's first, after a reconnect, or listeners and routes
    changed together) lists only clusters with endpoints. The activator heard nothing of a
    cluster that went, so it kept its pods: hold() did not poke the autoscaler for demand at
    zero, and a held request was released at once (its _wait saw room), found no endpoint
    in the gateway, was held again and released again, each turn of the loop, until its
    deadline."""
    from skiff.serving.activator import Activator
    gp = proxy(ONE_SPLIT)
    act = Activator()
    gp.activator = act
    act.on_path_change = gp.activator_path_changed
    act.apply_part({"proxy": ["default/hello-00001"]})
    gp.swap(gp.snapshot)                                 # the activator hears the endpoints
    assert act.eps.get("default/hello-00001")
    gp.swap(proxy(ONE_SPLIT, endpoints={}).snapshot)     # scaled to zero meanwhile
    assert not act.eps.get("default/hello-00001")
    pokes: list[str] = []
    act.poke_cb = pokes.append
    d = act.hold("default/hello-00001", lambda: Reply(200))
    assert isinstance(d, Defer) and pokes == ["default/hello-00001"]
    d.awaitable.close()                      # type: ignore[attr-defined]


ONE_SPLIT = [{"splits": [split("hello-00001", 100)]}]
