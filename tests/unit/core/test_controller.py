"""The controller runtime over the real in-process client: dedupe, retries with backoff, requeue."""

from __future__ import annotations

import asyncio
from pathlib import Path

from localworld import local_client as client
from skiff.core.client import Ref
from skiff.core.controller import Controller, Mapper

CM = Ref("v1", "ConfigMap")




class Recorder:
    name = "recorder"
    primary = CM

    def __init__(self, fail_times: int = 0, requeue: float | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail_times = fail_times
        self.requeue = requeue
        self.running = 0
        self.max_parallel_same_key = 0

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        return []

    async def reconcile(self, namespace: str, name: str) -> float | None:
        self.running += 1
        self.max_parallel_same_key = max(self.max_parallel_same_key, self.running)
        await asyncio.sleep(0.01)
        self.running -= 1
        self.calls.append((namespace, name))
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("boom")
        return self.requeue if len(self.calls) < 3 else None


async def until(cond, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.01)


def test_existing_and_new_objects_are_reconciled_once_each(tmp_path: Path) -> None:
    async def main() -> None:
        c = client(tmp_path)
        await c.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "default"}})
        r = Recorder()
        ctl = Controller(c, r, workers=4)
        await ctl.start()
        await until(lambda: ("default", "a") in r.calls)
        await c.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "default"}})
        await until(lambda: ("default", "b") in r.calls)
        # a burst of changes to one key: never two reconciles of it at once
        before = r.calls.count(("default", "b"))
        for i in range(10):
            await c.patch(CM, "b", {"data": {"i": str(i)}}, "default")
        await until(lambda: r.calls.count(("default", "b")) > before)
        await until(lambda: not ctl.q.queued and not ctl.q.active and not ctl.q.dirty)
        assert r.max_parallel_same_key == 1
        await ctl.stop()
    asyncio.run(main())


def test_failures_retry_with_backoff_then_succeed(tmp_path: Path) -> None:
    async def main() -> None:
        c = client(tmp_path)
        await c.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "f", "namespace": "default"}})
        r = Recorder(fail_times=3)
        ctl = Controller(c, r, workers=1)
        ctl.BACKOFF_BASE = 0.01
        await ctl.start()
        await until(lambda: len(r.calls) >= 4)
        assert ctl.failures == {}
        await ctl.stop()
    asyncio.run(main())


def test_requeue_after(tmp_path: Path) -> None:
    async def main() -> None:
        c = client(tmp_path)
        await c.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "q", "namespace": "default"}})
        r = Recorder(requeue=0.05)
        ctl = Controller(c, r, workers=1)
        await ctl.start()
        loop = asyncio.get_running_loop()
        await until(lambda: len(r.calls) >= 3 and not ctl.q.active)
        # the third run asked for no requeue: nothing is queued and every requeue timer has
        # fired (so no fourth run can come), shown without waiting out a window
        assert len(r.calls) == 3 and not ctl.q.queued and ctl.q.pending.empty()
        assert all(t.cancelled() or t.when() <= loop.time() for t in ctl._timers)
        await ctl.stop()
    asyncio.run(main())
