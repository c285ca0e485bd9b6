"""Lanes: the work that starts pods runs before the work that reports on them.

Every controller, the node and the API registry share one event loop, and the loop
runs ready work first come, first served. A scale from zero is a chain of writes
(the KPA scales the Deployment, the Deployment its ReplicaSet, which creates the
Pod, which the node starts), and each write also wakes the controllers that only
propagate status (Revision, Route, Configuration, SKS, EndpointSlice, the workload
controllers' owner lookups). First come, first served put those between every two
links of the chain: a cold start spent most of its time waiting behind them.

So work is in one of two lanes. The pod lane is a pod-lane controller's (Deployment,
ReplicaSet) reconcile of a spec it has not acted on yet (generation ahead of
observedGeneration), a held request's poke of its PodAutoscaler, and the node's
steps; each marks the loop busy, and the node names the pods whose containers are
starting until they settle or MAX_START passes (the CPUs are the children's then). Any other reconcile
(status propagation, a controller's own status write coming back) picks its key
only when the pod lane has been quiet for GRACE and no pod is starting, or when the
key has waited MAX_DEFER: deferred, never starved. Pod-lane work that goes on for
MAX_BLOCK without a quiet moment is pods churning, not one cold start: then nothing
waits. Deferred keys also coalesce: the events that arrive while one waits make one
reconcile.

Neighbours: core/controller.py (the workers that wait here), node/node.py and
node/pod.py (which mark the pod lane busy).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

GRACE = 0.003       # the pod lane counts as busy this long after its last step
MAX_DEFER = 0.05    # a background key waits at most this long
MAX_START = 0.5     # a pod counts as starting at most this long (one that never settles,
                    # crash-looping, must not slow background work for good)
MAX_BLOCK = 0.1     # past this much pod-lane work without a quiet moment, it is sustained
                    # load (pods churning), not one scale from zero: nothing is deferred


class Lanes:
    def __init__(self) -> None:
        self.busy_until = 0.0
        # pods whose containers are starting: their forks, probes and first status need the
        # CPUs more than background work does (uid -> until when; bounded by the pods there are)
        self.starting: dict[str, float] = {}
        self.blocked_since: float | None = None

    def touch(self) -> None:
        """The pod lane took a step: background work waits a little longer."""
        try:
            now = asyncio.get_running_loop().time()
        except RuntimeError:
            return
        self._block_begins(now)
        self.busy_until = now + GRACE

    def pod_starting(self, uid: str) -> None:
        """The node starts a pod's containers: until it settles, or MAX_START."""
        try:
            now = asyncio.get_running_loop().time()
        except RuntimeError:
            return
        self._block_begins(now)
        self.starting[uid] = now + MAX_START

    def pod_settled(self, uid: str) -> None:
        self.starting.pop(uid, None)

    def _starting(self, now: float) -> bool:
        if not self.starting:
            return False
        if any(until > now for until in self.starting.values()):
            return True
        self.starting.clear()    # all expired
        return False

    def _block_begins(self, now: float) -> None:
        if now >= self.busy_until and not self._starting(now):
            self.blocked_since = now    # the pod lane was quiet until now

    def _deferring(self, now: float) -> bool:
        if now >= self.busy_until and not self._starting(now):
            self.blocked_since = None
            return False
        if self.blocked_since is None:
            self.blocked_since = now
        return now - self.blocked_since < MAX_BLOCK

    async def quiet(self, max_wait: float = MAX_DEFER,
                    until: Callable[[], bool] = lambda: False) -> None:
        """Returns once the pod lane has been quiet for GRACE and no pod is starting, after
        max_wait, or as soon as until() is true (checked every GRACE at most)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        while not until():
            now = loop.time()
            if now >= deadline or not self._deferring(now):
                return
            await asyncio.sleep(min(deadline - now, GRACE))

    async def after_spec_writes(self) -> None:
        """A pod-lane reconcile has made what the next link of the chain waits for (a
        ReplicaSet scaled, a Pod created): its own status write waits until that link has
        run, or MAX_DEFER."""
        self.touch()
        await self.quiet()


LANES = Lanes()   # one per process, as there is one event loop: every part shares it
