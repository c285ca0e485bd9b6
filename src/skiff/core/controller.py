"""The controller runtime: watch -> per-key queue -> reconcile.

A Reconciler names its primary kind and, optionally, secondary kinds whose
changes map to primary keys (by default through ownerReferences, the way
knative's controllers enqueue the owner). The Controller lists and watches
through the Client, keeps one queue of keys with deduplication (a key is
never reconciled twice at once; a key that changes while it is being
reconciled runs again afterwards), retries failures with exponential backoff
and honours requeue-after. Level-triggered: reconcile(key) reads the world
and converges it; running it twice changes nothing. Neighbours: core/client.py
(the only way to reach objects), core/reconcilers/ and the domains' reconcilers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.lanes import LANES

log = logging.getLogger("skiff.controller")

Key = tuple[str, str]          # (namespace, name)

RELIST_MIN = 0.2
RELIST_MAX = 30.0


def relist_delay(previous: float) -> float:
    """The wait before the next re-list after one that ended without an event: doubling to a
    cap, as client-go's reflector backs off, so a watch that keeps failing costs ~nothing."""
    return min(previous * 2, RELIST_MAX)
Mapper = Callable[[Obj], list[Key]]


class Reconciler(Protocol):
    """May also have `lane = "pod"`: its steps go before background work (core/lanes.py)."""
    name: str
    primary: Ref

    def secondary(self) -> list[tuple[Ref, Mapper]]: ...

    async def reconcile(self, namespace: str, name: str) -> float | None:
        """Converge one object; return seconds to requeue after, or None."""
        ...


def owned_by(kind: str, api_group: str) -> Mapper:
    """Map a child to its controller owner's key when the owner is of `kind`."""
    def mapper(obj: Obj) -> list[Key]:
        ns = obj["metadata"].get("namespace", "")
        return [(ns, r["name"]) for r in obj["metadata"].get("ownerReferences") or []
                if r.get("kind") == kind and r.get("apiVersion", "").split("/")[0] == api_group]
    return mapper


@dataclass
class _Queue:
    """A work queue with dedupe: pending keys, keys in flight, keys dirty while in flight."""
    pending: asyncio.Queue[Key] = field(default_factory=asyncio.Queue)
    queued: set[Key] = field(default_factory=set)
    active: set[Key] = field(default_factory=set)
    dirty: set[Key] = field(default_factory=set)
    urgent: set[Key] = field(default_factory=set)   # keys that skip the background wait

    def add(self, key: Key) -> None:
        if key in self.active:
            self.dirty.add(key)
        elif key not in self.queued:
            self.queued.add(key)
            self.pending.put_nowait(key)


class Controller:
    BACKOFF_BASE = 0.05
    BACKOFF_MAX = 30.0

    def __init__(self, client: Client, reconciler: Reconciler, workers: int = 2) -> None:
        self.client = client
        self.r = reconciler
        self.workers = workers
        self.q = _Queue()
        self.failures: dict[Key, int] = {}
        self.synced = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        # core/lanes.py: in the pod lane, a change of spec not yet acted on goes first
        self.pod_lane = getattr(reconciler, "lane", "") == "pod"

    def enqueue(self, key: Key) -> None:
        self.q.add(key)

    def enqueue_urgent(self, key: Key) -> None:
        """Reconcile `key` without waiting for background work to be let through (core/lanes.py):
        a pod-lane controller's new spec, a held request's poke."""
        LANES.touch()
        self.q.urgent.add(key)
        self.q.add(key)

    def enqueue_after(self, key: Key, delay: float) -> None:
        loop = asyncio.get_running_loop()
        h = loop.call_later(delay, self.enqueue, key)
        self._timers.add(h)
        if len(self._timers) > 1000:   # forget fired timers now and then
            self._timers = {t for t in self._timers if not t.cancelled() and t.when() > loop.time()}

    async def start(self) -> None:
        primary_synced = asyncio.Event()
        self._tasks.append(asyncio.create_task(
            self._watch(self.r.primary, lambda o: [_key(o)], primary_synced, primary=True)))
        for ref, mapper in self.r.secondary():
            self._tasks.append(asyncio.create_task(self._watch(ref, mapper, None)))
        for _ in range(self.workers):
            self._tasks.append(asyncio.create_task(self._work()))
        await primary_synced.wait()
        self.synced.set()

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for h in self._timers:
            h.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _watch(self, ref: Ref, mapper: Mapper, synced: asyncio.Event | None,
                     primary: bool = False) -> None:
        """List then watch; on a broken or expired watch, start over (a re-list)."""
        lane = primary and self.pod_lane
        delay = RELIST_MIN
        while True:
            try:
                items, rv = await self.client.list_with_version(ref)
                for o in items:
                    for key in mapper(o):
                        self.enqueue(key)
                if synced is not None:
                    synced.set()
                del items   # the watch may run for hours; do not pin the listed objects
                # shared: the mappers only read the object (one decode for every controller)
                async for ev in self.client.watch(ref, resource_version=rv if rv != "0" else "",
                                                  shared=True):
                    delay = RELIST_MIN
                    if ev.type in ("ADDED", "MODIFIED", "DELETED"):
                        add = self.enqueue_urgent if lane and spec_pending(ev.object) \
                            else self.enqueue
                        for key in mapper(ev.object):
                            add(key)
            except asyncio.CancelledError:
                raise
            except ApiError as e:
                log.debug("%s: watch %s restarts: %s", self.r.name, ref.kind, e.message)
            except Exception:
                log.exception("%s: watch %s failed", self.r.name, ref.kind)
            await asyncio.sleep(delay)
            delay = relist_delay(delay)

    async def _work(self) -> None:
        while True:
            key = await self.q.pending.get()
            urgent = key in self.q.urgent
            if not urgent:
                # still queued while it waits: the events that come meanwhile add no reconcile
                await LANES.quiet(until=lambda k=key: k in self.q.urgent)   # type: ignore[misc]
                urgent = key in self.q.urgent
            self.q.urgent.discard(key)
            self.q.queued.discard(key)
            self.q.active.add(key)
            try:
                requeue = await self.r.reconcile(*key)
                self.failures.pop(key, None)
                if requeue is not None:
                    self.enqueue_after(key, requeue)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                n = self.failures.get(key, 0) + 1
                self.failures[key] = n
                delay = min(self.BACKOFF_BASE * 2 ** (n - 1), self.BACKOFF_MAX)
                if isinstance(e, ApiError) and e.code == 409:
                    log.debug("%s %s/%s: conflict, retrying", self.r.name, *key)
                else:
                    log.warning("%s %s/%s: %s (retry %d in %.2fs)", self.r.name, key[0], key[1],
                                e, n, delay, exc_info=not isinstance(e, ApiError))
                self.enqueue_after(key, delay)
            finally:
                if urgent:
                    LANES.touch()   # what it wrote wakes the next link of the chain
                self.q.active.discard(key)
                if key in self.q.dirty:
                    self.q.dirty.discard(key)
                    self.enqueue(key)


def spec_pending(obj: Obj) -> bool:
    """Whether the object's spec changed since its controller last acted on it (its
    generation is ahead of status.observedGeneration), as opposed to a status-only change."""
    gen = (obj.get("metadata") or {}).get("generation")
    seen = (obj.get("status") or {}).get("observedGeneration")
    try:
        return gen is None or seen is None or int(seen) < int(gen)
    except (TypeError, ValueError):
        return True


def _key(obj: Obj) -> Key:
    return (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


class Manager:
    """Runs every controller; ready once each has listed its primary kind."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.controllers: list[Controller] = []

    def add(self, r: Reconciler, workers: int = 2) -> Controller:
        c = Controller(self.client, r, workers)
        self.controllers.append(c)
        return c

    async def start(self) -> None:
        await asyncio.gather(*(c.start() for c in self.controllers))

    async def stop(self) -> None:
        await asyncio.gather(*(c.stop() for c in self.controllers))
