"""Review of the gateway controller's informers (mesh/gateway/controller.py): the keys an
informer remembers as changed are kept only for an owner that takes them (the pods', for the
EDS index); the ServerlessServices', PodAutoscalers' and Revisions' informers (commits
0c00950, 4eb4a6c) and the others would keep every key ever changed, deleted ones too."""

from __future__ import annotations

import asyncio
from typing import Any

from skiff.dataplane.model import GatewaySettings
from skiff.mesh.gateway.controller import (
    POD,
    SKS,
    Debounce,
    GatewayController,
    Informer,
    fp_pod,
    fp_sks,
)


def _obj(i: int) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": f"r-{i:05d}"}, "spec": {"mode": "Proxy"}}


def test_an_informer_nobody_takes_changes_from_keeps_no_keys() -> None:
    inf = Informer(None, SKS, "", fp_sks, lambda: None)  # type: ignore[arg-type]
    for i in range(1000):                       # revisions come and go
        assert inf.apply("ADDED", _obj(i))
        assert inf.apply("DELETED", _obj(i))
    assert not inf.items and not inf.touched


def test_a_tracking_informer_hands_its_changed_keys_over_once() -> None:
    inf = Informer(None, POD, "", fp_pod, lambda: None, track=True)  # type: ignore[arg-type]
    inf.apply("ADDED", _obj(1))
    inf.apply("DELETED", _obj(2))               # never seen: nothing changed
    assert inf.take_touched() == {("ns", "r-00001")}
    assert inf.take_touched() == set()


def test_a_debounce_calls_once_per_burst_and_not_after_cancel() -> None:
    calls: list[float] = []

    async def go() -> None:
        loop = asyncio.get_running_loop()
        d = Debounce(0.005, lambda: calls.append(loop.time()))
        start = loop.time()
        for _ in range(100):
            d.poke()
        await asyncio.sleep(0.03)
        assert len(calls) == 1 and calls[0] - start >= 0.004
        d.poke()                                # a later burst: one more call
        await asyncio.sleep(0.03)
        assert len(calls) == 2
        d.poke()
        d.cancel()
        await asyncio.sleep(0.03)
        assert len(calls) == 2
        d.poke()                                # usable again after a cancel
        await asyncio.sleep(0.03)
        assert len(calls) == 3
    asyncio.run(go())


class _PartPublisher:
    def __init__(self) -> None:
        self.on_ack = lambda _v: None
        self.parts: list[tuple[str, dict[str, Any]]] = []

    def publish_part(self, name: str, data: dict[str, Any]) -> int:
        self.parts.append((name, data))
        return len(self.parts)


def test_a_burst_of_sks_events_publishes_the_activator_part_once() -> None:
    pub = _PartPublisher()
    c = GatewayController(None, pub, GatewaySettings(), None)  # type: ignore[arg-type]

    async def go() -> None:
        for i in range(50):                     # as the SKS watch does, event by event
            assert c.sks.apply("ADDED", _obj(i))
            c.activator_changed()
        await asyncio.sleep(0.03)
        assert len(pub.parts) == 1
        assert len(pub.parts[0][1]["proxy"]) == 50
        assert c.sks.apply("ADDED", _obj(50))
        c.activator_changed()
        await c.stop()                          # a pending pass is dropped on stop
        await asyncio.sleep(0.03)
        assert len(pub.parts) == 1
    asyncio.run(go())
