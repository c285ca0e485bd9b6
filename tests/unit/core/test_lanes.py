"""core/lanes.py with the controller runtime: the pod lane first, background deferred but not
starved; spec_pending's table; the shared watch object."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from localworld import local_client as client
from skiff.core.client import Ref
from skiff.core.controller import Controller, Mapper, spec_pending
from skiff.core.lanes import LANES, Lanes

CM = Ref("v1", "ConfigMap")
DEPLOY = Ref("apps/v1", "Deployment")




async def until(cond: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.001)


@pytest.mark.parametrize("obj, pending", [
    ({"metadata": {"generation": 2}, "status": {"observedGeneration": 1}}, True),
    ({"metadata": {"generation": 2}, "status": {"observedGeneration": 2}}, False),
    ({"metadata": {"generation": 1}}, True),                 # never acted on
    ({"metadata": {}, "status": {"observedGeneration": 1}}, True),
    ({"metadata": {"generation": "x"}, "status": {"observedGeneration": 1}}, True),
])
def test_spec_pending(obj: dict[str, Any], pending: bool) -> None:
    assert spec_pending(obj) is pending


class Log:
    def __init__(self, name: str, primary: Ref, order: list[str], lane: str = "") -> None:
        self.name, self.primary, self.order = name, primary, order
        if lane:
            self.lane = lane

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        return []

    async def reconcile(self, namespace: str, name: str) -> float | None:
        self.order.append(f"{self.name}:{name}")
        return None


DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "d", "namespace": "default"},
              "spec": {"selector": {"matchLabels": {"app": "a"}},
                       "template": {"metadata": {"labels": {"app": "a"}},
                                    "spec": {"containers": [{"name": "c", "image": "x"}]}}}}


def test_the_pod_lane_goes_before_background_work_enqueued_first(tmp_path: Path) -> None:
    async def main() -> None:
        c = client(tmp_path)
        order: list[str] = []
        bg = Controller(c, Log("background", CM, order))
        pod = Controller(c, Log("pod", DEPLOY, order, lane="pod"))
        await bg.start()
        await pod.start()
        LANES.pod_starting("a-pod-starting")   # as the node does while a pod's containers start
        try:
            await c.create({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "first", "namespace": "default"}})
            await until(lambda: ("default", "first") in bg.q.queued)
            await c.create(DEPLOYMENT)      # a new spec: generation 1, nothing observed yet
            await until(lambda: len(order) == 2)
            # the background key was enqueued first and still waited for the pod lane
            assert order == ["pod:d", "background:first"]
        finally:
            LANES.pod_settled("a-pod-starting")
            await bg.stop()
            await pod.stop()
    asyncio.run(main())


def test_background_work_waits_at_most_max_defer_while_pods_keep_starting(tmp_path: Path) -> None:
    async def main() -> None:
        c = client(tmp_path)
        order: list[str] = []
        bg = Controller(c, Log("background", CM, order))
        await bg.start()
        LANES.pod_starting("a-pod-that-never-settles")
        try:
            await c.create({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "cm", "namespace": "default"}})
            await until(lambda: order == ["background:cm"], timeout=5)   # deferred, not starved
        finally:
            LANES.pod_settled("a-pod-that-never-settles")
            await bg.stop()
    asyncio.run(main())


def test_an_urgent_key_stops_waiting() -> None:
    async def main() -> None:
        lanes = Lanes()
        lanes.pod_starting("p")
        urgent = False

        async def poke() -> None:
            nonlocal urgent
            await asyncio.sleep(0)
            urgent = True
        waiter = asyncio.ensure_future(lanes.quiet(max_wait=60, until=lambda: urgent))
        await poke()
        await asyncio.wait_for(waiter, 5)   # returns long before max_wait
    asyncio.run(main())


def test_a_pod_that_never_settles_stops_counting_after_max_start() -> None:
    async def main() -> None:
        lanes = Lanes()
        lanes.starting["crash-looping"] = asyncio.get_running_loop().time() - 0.001   # expired
        waiter = asyncio.ensure_future(lanes.quiet(max_wait=60))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert waiter.done() and not lanes.starting
    asyncio.run(main())


def test_sustained_pod_lane_work_defers_nothing() -> None:
    async def main() -> None:
        lanes = Lanes()
        now = asyncio.get_running_loop().time()
        lanes.pod_starting("one-of-many")
        lanes.blocked_since = now - 1.0   # pods have been starting without a quiet moment
        waiter = asyncio.ensure_future(lanes.quiet(max_wait=60))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert waiter.done()
    asyncio.run(main())


def test_quiet_returns_at_once_when_nothing_is_starting() -> None:
    async def main() -> None:
        lanes = Lanes()
        waiter = asyncio.ensure_future(lanes.quiet(max_wait=60))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert waiter.done()
    asyncio.run(main())


def test_shared_watchers_get_one_object_and_the_others_their_own(tmp_path: Path) -> None:
    async def main() -> None:
        c = client(tmp_path)
        streams = [c.watch(CM, "default", shared=s) for s in (True, True, False, False)]
        firsts = [asyncio.ensure_future(s.__anext__()) for s in streams]
        await asyncio.sleep(0.05)
        await c.create({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "cm", "namespace": "default"}, "data": {"k": "v"}})
        evs = await asyncio.wait_for(asyncio.gather(*firsts), 5)
        shared1, shared2, own1, own2 = (e.object for e in evs)
        assert shared1 is shared2
        assert own1 is not own2 and own1 is not shared1
        assert shared1 == own1 == own2
        assert shared1["data"] == {"k": "v"} and shared1["kind"] == "ConfigMap"
        for s in streams:
            await s.aclose()   # type: ignore[attr-defined]
    asyncio.run(main())
