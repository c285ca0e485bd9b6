"""node.py NodeRuntime.hurry() (the second stop signal): every pod still stopping is cut to
grace 0, a deleted pod whose disposal holds its deletion's grace included, and a shutdown
under way waits for the stops a hurry() started while it waited."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

from skiff.node.node import NodeRuntime
from skiff.node.pod import PodWorker


class FakeWorker:
    """A pod whose stop lasts its grace, unless a stop with grace 0 cuts in."""

    def __init__(self, grace: float = 60.0, cut_delay: float = 0.0) -> None:
        self.pod: dict[str, Any] = {"metadata": {}, "spec": {}}
        self.terminating = False
        self.grace = grace
        self.cut_delay = cut_delay     # how long a stop with grace 0 takes
        self.graces: list[float] = []
        self.cut = asyncio.Event()
        self.stopped = False

    def spec_grace(self) -> float:
        return self.grace

    def deletion_grace(self) -> float:
        return self.grace

    async def terminate(self, grace: float, write_status: bool = True) -> None:
        self.graces.append(grace)
        self.terminating = True
        if grace == 0:
            await asyncio.sleep(self.cut_delay)
            self.cut.set()
        else:
            try:
                await asyncio.wait_for(self.cut.wait(), grace)
            except TimeoutError:
                pass
        self.stopped = True

    async def dispose(self) -> None:
        await self.terminate(self.deletion_grace(), write_status=False)


def _runtime(tmp_path: Path) -> NodeRuntime:
    return NodeRuntime(cast(Any, object()), tmp_path, fork_server=False)


def test_hurry_cuts_a_deleted_pod_still_stopping(tmp_path: Path) -> None:
    async def go() -> None:
        rt = _runtime(tmp_path)
        running, deleted = FakeWorker(), FakeWorker()
        rt.workers = {"a": cast(PodWorker, running), "b": cast(PodWorker, deleted)}
        rt._forget("b")                     # gone from the store: disposed with its 60 s grace
        await asyncio.sleep(0.05)
        assert deleted.graces == [60.0] and not deleted.stopped
        rt.hurry()
        await asyncio.wait_for(asyncio.gather(*rt._bg), 5)
        assert running.graces == [0.0]
        assert 0.0 in deleted.graces and deleted.stopped
        assert not rt._draining
    asyncio.run(go())


def test_shutdown_waits_for_the_stops_a_hurry_started_meanwhile(tmp_path: Path) -> None:
    async def go() -> None:
        rt = _runtime(tmp_path)
        w = FakeWorker(grace=0.01, cut_delay=0.3)    # its shutdown stop is quick, a cut is not
        rt.workers = {"a": cast(PodWorker, w)}
        slow = asyncio.ensure_future(asyncio.sleep(0.2))
        rt._bg.add(slow)
        slow.add_done_callback(rt._bg.discard)

        async def second_signal() -> None:
            await asyncio.sleep(0.05)       # shutdown is waiting for `slow` by now
            rt.hurry()
        signal = asyncio.create_task(second_signal())
        await asyncio.wait_for(rt.shutdown(), 5)
        await signal
        assert w.graces == [0.01, 0.0]
        assert not [t for t in rt._bg if not t.done()], "a stop left behind by shutdown()"
    asyncio.run(go())
