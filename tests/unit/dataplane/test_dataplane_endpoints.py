"""Endpoints apart from routes: a pod change is an endpoints-only update (EDS) that keeps the
split schedules where they were, and the controller sends it without recompiling routes.
No sockets: the proxy's dispatcher is called directly and the publisher is a fake."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
from typing import Any

import pytest

from skiff.core.pki import issue, make_ca
from skiff.dataplane import model
from skiff.dataplane.model import GatewaySettings
from skiff.dataplane.proxy.http1 import Forward, RequestHead
from skiff.mesh.gateway.controller import GatewayController
from skiff.mesh.gateway.proxy import GatewayProxy
from skiff.mesh.gateway.snapshot import Inputs, compile_snapshot

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CERT = issue(*make_ca("ca", NOW), "x", ["*.example.com"], [], NOW)
HOST = "hello-default.apps.example.com"
ONE, TWO = "default/hello-00001", "default/hello-00002"


def kingress(weights: tuple[int, ...]) -> dict[str, Any]:
    splits = [{"serviceName": f"hello-0000{i + 1}", "serviceNamespace": "default",
               "percent": w} for i, w in enumerate(weights)]
    return {"metadata": {"name": "hello", "namespace": "default", "generation": 1},
            "spec": {"rules": [{"hosts": [HOST], "visibility": "ExternalIP",
                                "http": {"paths": [{"splits": splits}]}}]}}


def head() -> RequestHead:
    return RequestHead(b"GET", b"/", HOST.encode(), [], {b"host": HOST.encode()}, b"10.0.0.1",
                       b"http", "1.1", True, False, -1)


def cluster_of(port: int) -> str:
    return ONE if port < 32000 else TWO


# Each step of churn: the endpoint sets the two revisions have after it (ports 31xxx for
# hello-00001, 32xxx for hello-00002): scale up, scale down, a pod replaced, both replaced.
CHURN: list[dict[str, tuple[int, ...]]] = [
    {ONE: (31001, 31002), TWO: (32001,)},
    {ONE: (31002,)},
    {TWO: (32001, 32002, 32003)},
    {ONE: (31003,), TWO: (32004,)},
    {ONE: (31001, 31002, 31003, 31004)},
]


@pytest.mark.parametrize("weights,n,every", [
    ((50, 50), 400, 1),          # churn after every request: the worst case for a reset
    ((50, 50), 400, 7),
    ((50, 50), 1000, 3),
    ((90, 10), 400, 3),
    ((20, 80), 1000, 11),
])
def test_split_proportions_stay_exact_under_endpoint_churn(weights: tuple[int, int], n: int,
                                                           every: int) -> None:
    snap = compile_snapshot(Inputs(
        ingresses=[kingress(weights)],
        endpoints={("default", "hello-00001"): (("127.0.0.1", 31001),),
                   ("default", "hello-00002"): (("127.0.0.1", 32001),)})).dataplane()
    gp = GatewayProxy(GatewaySettings(), CERT)
    gp.swap(snap)
    rt = gp.rt
    seen: collections.Counter[str] = collections.Counter()
    for i in range(n):
        r = gp.configs["external"].dispatch(head())
        assert isinstance(r, Forward)
        seen[cluster_of(r.endpoint[1])] += 1
        if i % every == every - 1:
            step = CHURN[(i // every) % len(CHURN)]
            gp.update_endpoints({c: tuple(("127.0.0.1", p) for p in ports)
                                 for c, ports in step.items()})
    assert gp.rt is rt                    # routes, TLS contexts and counters were kept
    assert seen == {ONE: n * weights[0] // 100, TWO: n * weights[1] // 100}


OTHER = {"metadata": {"name": "other", "namespace": "default", "generation": 1},
         "spec": {"rules": [{"hosts": ["other-default.apps.example.com"], "visibility": "ExternalIP",
                             "http": {"paths": [{"splits": [{"serviceName": "other-00001",
                                                             "serviceNamespace": "default",
                                                             "percent": 100}]}]}}]}}


@pytest.mark.parametrize("weights,n,every", [((50, 50), 400, 1), ((90, 10), 400, 3),
                                             ((20, 80), 1000, 7)])
def test_split_proportions_stay_exact_across_full_recompiles(weights: tuple[int, int], n: int,
                                                             every: int) -> None:
    """A snapshot recompiled for an unrelated reason (another service appears and goes)
    keeps each unchanged path's split position: the proportions stay exact."""
    eps = {("default", "hello-00001"): (("127.0.0.1", 31001),),
           ("default", "hello-00002"): (("127.0.0.1", 32001),)}
    alone = Inputs(ingresses=[kingress(weights)], endpoints=eps)
    with_other = Inputs(ingresses=[kingress(weights), OTHER], endpoints=eps)
    gp = GatewayProxy(GatewaySettings(), CERT)
    gp.swap(compile_snapshot(alone).dataplane())
    seen: collections.Counter[str] = collections.Counter()
    for i in range(n):
        r = gp.configs["external"].dispatch(head())
        assert isinstance(r, Forward)
        seen[cluster_of(r.endpoint[1])] += 1
        if i % every == every - 1:
            before = gp.rt
            gp.swap(compile_snapshot(with_other if (i // every) % 2 == 0 else alone).dataplane())
            assert gp.rt is not before          # a full swap, not an endpoint update
    assert seen == {ONE: n * weights[0] // 100, TWO: n * weights[1] // 100}


def test_a_changed_split_starts_its_schedule_afresh() -> None:
    eps = {("default", "hello-00001"): (("127.0.0.1", 31001),),
           ("default", "hello-00002"): (("127.0.0.1", 32001),)}
    gp = GatewayProxy(GatewaySettings(), CERT)
    gp.swap(compile_snapshot(Inputs(ingresses=[kingress((50, 50))], endpoints=eps)).dataplane())
    gp.configs["external"].dispatch(head())
    gp.swap(compile_snapshot(Inputs(ingresses=[kingress((90, 10))], endpoints=eps)).dataplane())
    assert gp.rt.counters == {}             # new weights: a new schedule from its start


def test_an_endpoint_update_is_served_at_once_and_round_robin_continues() -> None:
    snap = compile_snapshot(Inputs(ingresses=[kingress((100,))])).dataplane()
    gp = GatewayProxy(GatewaySettings(), CERT)
    gp.swap(snap)
    r = gp.configs["external"].dispatch(head())
    assert r.status == 503                # type: ignore[union-attr]
    gp.update_endpoints({ONE: (("127.0.0.1", 31001),)})
    assert gp.configs["external"].dispatch(head()).endpoint == ("127.0.0.1", 31001)  # type: ignore[union-attr]
    gp.update_endpoints({ONE: (("127.0.0.1", 31001), ("127.0.0.1", 31002))})
    ports = [gp.configs["external"].dispatch(head()).endpoint[1]  # type: ignore[union-attr]
             for _ in range(4)]
    assert sorted(ports) == [31001, 31001, 31002, 31002]
    gp.update_endpoints({ONE: ()})
    assert gp.configs["external"].dispatch(head()).status == 503  # type: ignore[union-attr]


@pytest.mark.parametrize("old,new,want", [
    ({}, {ONE: (("a", 1),)}, {ONE: (("a", 1),)}),
    ({ONE: (("a", 1),)}, {ONE: (("a", 1),)}, {}),
    ({ONE: (("a", 1),), TWO: (("b", 2),)}, {ONE: (("a", 1), ("a", 2))},
     {ONE: (("a", 1), ("a", 2)), TWO: ()}),
])
def test_endpoint_changes(old: dict[str, Any], new: dict[str, Any], want: dict[str, Any]) -> None:
    assert model.endpoint_changes(old, new) == want
    assert dict(model.Snapshot("envoy", {}, {}, frozenset(),
                               old).with_endpoints(want).endpoints) == new


class FakePublisher:
    def __init__(self) -> None:
        self.on_ack = lambda _v: None
        self.sent: list[tuple[str, Any]] = []
        self.version = 0

    def publish(self, snap: model.Snapshot) -> int:
        self.version += 1
        self.sent.append(("snapshot", snap))
        return self.version

    def publish_endpoints(self, changes: dict[str, Any]) -> int:
        self.version += 1
        self.sent.append(("endpoints", changes))
        return self.version

    async def wait_acked(self, version: int, timeout: float) -> bool:
        return True


def pod(name: str, rev: str, port: int, ready: bool = True) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default",
                         "labels": {"serving.knative.dev/revision": rev},
                         "annotations": {"skiff.dev/port": str(port)}},
            "status": {"podIP": "127.0.0.1",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_a_pod_change_publishes_endpoints_only() -> None:
    pub = FakePublisher()
    c = GatewayController(None, pub, GatewaySettings(), CERT)  # type: ignore[arg-type]
    c.ingresses.items = {("default", "hello"): kingress((50, 50))}
    c.pods.items = {("default", "a"): pod("a", "hello-00001", 31001)}

    async def go() -> None:
        c._write_status = _no_status  # type: ignore[method-assign,assignment]
        await c.compile_and_apply()
    asyncio.run(go())
    assert [k for k, _ in pub.sent] == ["snapshot"] and c.compiles == 1
    assert c.pods.apply("ADDED", pod("b", "hello-00002", 32001))
    assert c.apply_endpoints() == 1
    assert c.pods.apply("MODIFIED", pod("a", "hello-00001", 31001, ready=False))
    assert c.apply_endpoints() == 1
    assert not c.pods.apply("MODIFIED", pod("a", "hello-00001", 31001, ready=False))
    assert c.apply_endpoints() == 0                     # nothing changed: nothing sent
    assert c.pods.apply("ADDED", pod("c", "hello-00002", 32002))
    assert c.pods.apply("DELETED", pod("b", "hello-00002", 32001))
    assert c.apply_endpoints() == 1
    c.pods.touched = None                               # a relist: everything looked at
    assert c.apply_endpoints() == 0
    assert pub.sent[1:] == [("endpoints", {TWO: (("127.0.0.1", 32001),)}),
                            ("endpoints", {ONE: ()}),
                            ("endpoints", {TWO: (("127.0.0.1", 32002),)})]
    assert c.compiles == 1


async def _no_status(_snap: Any) -> bool:
    return False


def test_an_endpoints_change_goes_out_at_once_unless_a_compile_is_due() -> None:
    # (a revision at zero whose first pod got ready: the activator releases its requests on
    # this update; behind a debounce the reconcilers the same pod write woke would run first)
    pub = FakePublisher()
    c = GatewayController(None, pub, GatewaySettings(), CERT)  # type: ignore[arg-type]
    c.ingresses.items = {("default", "hello"): kingress((50, 50))}

    async def go() -> None:
        c._write_status = _no_status  # type: ignore[method-assign,assignment]
        await c.compile_and_apply()
        assert c.pods.apply("ADDED", pod("b", "hello-00002", 32001))
        c.endpoints_changed()
        assert pub.sent[1:] == [("endpoints", {TWO: (("127.0.0.1", 32001),)})]
        c.changed()                                 # routes changed: the compile sends all
        assert c.pods.apply("ADDED", pod("c", "hello-00002", 32002))
        c.endpoints_changed()
        assert len(pub.sent) == 2
        await c.stop()
    asyncio.run(go())


@pytest.mark.parametrize("weights,n,every", [((50, 50), 400, 1), ((90, 10), 400, 3),
                                             ((20, 80), 1000, 7)])
def test_split_proportions_stay_exact_across_routes_only_updates(weights: tuple[int, int],
                                                                 n: int, every: int) -> None:
    """The same churn as above, but as the channel sends it: another service's routes come
    and go as "routes" messages (RDS alone) applied on top of what is served, with pod churn
    as endpoint updates in between; the unchanged path keeps its split position."""
    from skiff.dataplane import codec
    eps = {("default", "hello-00001"): (("127.0.0.1", 31001),),
           ("default", "hello-00002"): (("127.0.0.1", 32001),)}
    alone = compile_snapshot(Inputs(ingresses=[kingress(weights)], endpoints=eps)).dataplane()
    with_other = compile_snapshot(Inputs(ingresses=[kingress(weights), OTHER],
                                         endpoints=eps)).dataplane()
    gp = GatewayProxy(GatewaySettings(), CERT)
    gp.swap(alone)
    state, sent = codec.ReceiverState(version=1), alone
    seen: collections.Counter[str] = collections.Counter()
    for i in range(n):
        r = gp.configs["external"].dispatch(head())
        assert isinstance(r, Forward)
        seen[cluster_of(r.endpoint[1])] += 1
        if i % every == every - 1:
            nxt = with_other if (i // every) % 2 == 0 else alone
            msgs = codec.delta_messages(state.version + 1, sent, nxt)
            assert [m["type"] for m in msgs] == ["routes"]
            update = state.accept(msgs[0])
            gp.swap(update.on(gp.snapshot))
            state.applied(update)
            sent = nxt
            if i % (2 * every) == every - 1:
                gp.update_endpoints({ONE: (("127.0.0.1", 31001 + i % 3),)})
    assert seen == {ONE: n * weights[0] // 100, TWO: n * weights[1] // 100}
