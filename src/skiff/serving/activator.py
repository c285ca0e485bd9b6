"""The activator, in the data plane: holds requests for a revision with no ready pod, and counts.

Knative's activator sits in the path of a revision that is scaled to zero (or
whose burst capacity is short): it buffers requests, tells the autoscaler at
once that there is demand, and forwards each request as soon as a pod is
ready. Here it is a seam of the gateway's dispatch (mesh/gateway/proxy.py):
a route whose revision cluster has no endpoints asks hold(), which answers
with a Defer (dataplane/proxy/http1.py) that resolves when the endpoints
update (EDS) brings the revision a pod, and then dispatches the request
again. Limits as upstream: a queue of 10,000 held requests per revision
(more get 503 "pending request queue full"), and a deadline (503 when no
pod became ready in time). The first held request pokes the control plane
(a "poke" message over the snapshot channel) and so does one a second
after, while requests keep waiting.

It also counts the requests it holds, per cluster "namespace/revision"
(Knative's activator stats): requests held, integrated over time, and
requests started; report() returns their averages over the period since the
last report, which dataplane/main.py sends every second
(serving/autoscaler/stats.py receives them). Demand at zero is what scales a
revision up; once a request reaches a pod, that pod's queue-proxy counts it
(the autoscaler scrapes it), so each request is counted once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from skiff.dataplane.proxy.http1 import Defer, Forward, Reply

QUEUE_LIMIT = 10_000
HOLD_TIMEOUT = 120.0             # how long a request waits for a pod before 503
POKE_EVERY = 1.0
MAX_CLUSTERS = 10_000
QUEUE_FULL = Reply(503, b"pending request queue full", ((b"content-type", b"text/plain"),))
NOT_READY = Reply(503, b"activation timed out: no ready pod for the revision",
                  ((b"content-type", b"text/plain"),))

Redispatch = Callable[[], "Forward | Reply | Defer"]


class _Counts:
    __slots__ = ("inflight", "area", "since", "requests")

    def __init__(self, now: float) -> None:
        self.inflight = 0
        self.area = 0.0                  # integral of inflight over time since the report
        self.since = now                 # when inflight last changed
        self.requests = 0


class Activator:
    def __init__(self, poke: Callable[[str], object] = lambda _c: None,
                 clock: Callable[[], float] = time.monotonic,
                 queue_limit: int = QUEUE_LIMIT, hold_timeout: float = HOLD_TIMEOUT) -> None:
        self.poke_cb = poke
        self.clock = clock
        self.queue_limit = queue_limit
        self.hold_timeout = hold_timeout
        self.counts: dict[str, _Counts] = {}
        self.waiting: dict[str, asyncio.Future[None]] = {}
        self.held: dict[str, int] = {}
        self.poked: dict[str, float] = {}
        self.period_start = clock()
        self.proxied: frozenset[str] = frozenset()    # clusters whose SKS is in Proxy mode

    def in_path(self, cluster: str) -> bool:
        """Whether the activator fronts this revision (its SKS is in Proxy mode); a revision
        that is not (or no SKS at all) and has no endpoint gets Envoy's 503 at once."""
        return cluster in self.proxied

    def apply_part(self, data: Any) -> None:
        """The control plane's "activator" part: {"proxy": [clusters]} (ValueError if bad)."""
        proxy = data.get("proxy") if isinstance(data, dict) else None
        if not isinstance(proxy, list) or not all(isinstance(c, str) for c in proxy) \
                or len(proxy) > MAX_CLUSTERS:
            raise ValueError("proxy must be a list of cluster names")
        self.proxied = frozenset(proxy)

    # --- accounting --------------------------------------------------------------------
    def _counts(self, cluster: str, now: float) -> _Counts | None:
        c = self.counts.get(cluster)
        if c is None:
            if len(self.counts) >= MAX_CLUSTERS:
                return None
            c = self.counts[cluster] = _Counts(now)
        return c

    def begin(self, cluster: str) -> None:
        now = self.clock()
        c = self._counts(cluster, now)
        if c is not None:
            c.area += c.inflight * (now - c.since)
            c.since = now
            c.inflight += 1
            c.requests += 1

    def end(self, cluster: str) -> None:
        c = self.counts.get(cluster)
        if c is not None and c.inflight > 0:
            now = self.clock()
            c.area += c.inflight * (now - c.since)
            c.since = now
            c.inflight -= 1

    def report(self) -> dict[str, dict[str, float]]:
        """Average requests in flight and requests started per cluster since the last report;
        clusters idle for a whole period are dropped after saying 0 once."""
        now = self.clock()
        period = max(now - self.period_start, 1e-3)
        self.period_start = now
        out: dict[str, dict[str, float]] = {}
        for cluster, c in list(self.counts.items()):
            c.area += c.inflight * (now - c.since)
            c.since = now
            out[cluster] = {"concurrency": c.area / period, "requests": float(c.requests)}
            if not c.inflight and not c.area and not c.requests:
                del self.counts[cluster]
            c.area = 0.0
            c.requests = 0
        return out

    # --- holding -----------------------------------------------------------------------
    def hold(self, cluster: str, redispatch: Redispatch) -> Reply | Defer:
        """A request for `cluster`, which has no ready endpoint: wait for one, then dispatch
        again."""
        held = self.held.get(cluster, 0)
        if held >= self.queue_limit:
            return QUEUE_FULL
        self._poke(cluster)
        return Defer(self._wait(cluster, redispatch), timeout=self.hold_timeout,
                     timeout_reply=NOT_READY)

    def _poke(self, cluster: str) -> None:
        now = self.clock()
        last = self.poked.get(cluster)
        if last is None or now - last >= POKE_EVERY:
            if len(self.poked) >= MAX_CLUSTERS:
                self.poked.clear()
            self.poked[cluster] = now
            self.poke_cb(cluster)

    async def _wait(self, cluster: str, redispatch: Redispatch) -> Forward | Reply | Defer:
        self.held[cluster] = self.held.get(cluster, 0) + 1
        self.begin(cluster)
        try:
            fut = self.waiting.get(cluster)
            if fut is None or fut.done():
                fut = self.waiting[cluster] = asyncio.get_running_loop().create_future()
            await _shielded(fut)
            # dispatched again: a Forward now, or (the pod went away again) another hold
            return redispatch()
        finally:
            self.end(cluster)
            n = self.held.get(cluster, 1) - 1
            if n > 0:
                self.held[cluster] = n
            else:
                self.held.pop(cluster, None)

    def endpoints_changed(self, changes: Mapping[str, tuple[Any, ...]]) -> None:
        """EDS: clusters that got endpoints release their held requests."""
        for cluster, eps in changes.items():
            if eps:
                fut = self.waiting.pop(cluster, None)
                if fut is not None and not fut.done():
                    fut.set_result(None)


async def _shielded(fut: asyncio.Future[None]) -> None:
    # one future is shared by every held request of a revision: a client that goes away
    # stops waiting without cancelling it for the others
    await asyncio.shield(fut)
