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

While a revision's SKS is in Proxy mode and it has ready pods (its burst
capacity is short, or target-burst-capacity is -1), the activator stays in
the path: pick() chooses the pod for each request, the one with the fewest
requests in flight from here, which is the one with the most free
concurrency, as every pod of a revision has the same containerConcurrency
(upstream's throttler picks by free capacity too); ties go round robin. The
Forward carries the activator as its hook, so it hears when the request ends.
Requests beyond every pod's capacity are queued by the pods' queue-proxies
(10 x cc each), not here.

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
from collections.abc import Callable, Mapping, Sequence
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
        self.on_path_change: Callable[[], None] = lambda: None
        # requests in flight to each pod it chose: cluster -> "ip:port" -> count
        self.pod_inflight: dict[str, dict[str, int]] = {}
        self.rr: dict[str, int] = {}

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
        proxied = frozenset(proxy)
        if proxied != self.proxied:
            self.proxied = proxied
            for cluster in [c for c in self.rr if c not in proxied]:
                self.rr.pop(cluster, None)
            self.on_path_change()       # the gateway's cached routes may skip the activator

    # --- in the path with pods ------------------------------------------------------
    def pick(self, cluster: str, eps: Sequence[tuple[str, int]]) -> tuple[str, tuple[str, int]]:
        """The pod for a request (`eps` non-empty): fewest requests in flight from here, ties
        in round-robin order. Returns the tag ("cluster|ip:port") the caller puts on the
        request head, so that end() can count it out, and the pod."""
        counts = self.pod_inflight.get(cluster)
        if counts is None:
            if len(self.pod_inflight) >= MAX_CLUSTERS:
                self.pod_inflight.clear()
            counts = self.pod_inflight[cluster] = {}
        n = len(eps)
        start = self.rr.get(cluster, 0)
        self.rr[cluster] = start + 1
        best, best_n, best_ep = "", -1, eps[0]
        for i in range(n):
            ep = eps[(start + i) % n]
            key = f"{ep[0]}:{ep[1]}"
            c = counts.get(key, 0)
            if best_n < 0 or c < best_n:
                best, best_n, best_ep = key, c, ep
                if c == 0:
                    break
        counts[best] = best_n + 1
        return f"{cluster}|{best}", best_ep

    # RequestHooks, for the requests it chose a pod for (Forward.hook)
    def start(self, ctx: Any, head: Any) -> None:
        pass

    def end(self, ctx: Any, head: Any, status: int, bytes_sent: int, duration: float,
            error: str | None) -> None:
        tag = head.tag
        if not tag:
            return
        head.tag = None
        cluster, _, key = tag.rpartition("|")
        counts = self.pod_inflight.get(cluster)
        if counts is not None and key in counts:
            if counts[key] > 1:
                counts[key] -= 1
            else:
                del counts[key]

    # --- accounting --------------------------------------------------------------------
    def _counts(self, cluster: str, now: float) -> _Counts | None:
        c = self.counts.get(cluster)
        if c is None:
            if len(self.counts) >= MAX_CLUSTERS:
                return None
            c = self.counts[cluster] = _Counts(now)
        return c

    def held_in(self, cluster: str) -> None:
        now = self.clock()
        c = self._counts(cluster, now)
        if c is not None:
            c.area += c.inflight * (now - c.since)
            c.since = now
            c.inflight += 1
            c.requests += 1

    def held_out(self, cluster: str) -> None:
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
        self.held_in(cluster)
        try:
            fut = self.waiting.get(cluster)
            if fut is None or fut.done():
                fut = self.waiting[cluster] = asyncio.get_running_loop().create_future()
            await _shielded(fut)
            # dispatched again: a Forward now, or (the pod went away again) another hold
            return redispatch()
        finally:
            self.held_out(cluster)
            n = self.held.get(cluster, 1) - 1
            if n > 0:
                self.held[cluster] = n
            else:
                self.held.pop(cluster, None)

    def endpoints_changed(self, changes: Mapping[str, tuple[Any, ...]]) -> None:
        """EDS: clusters that got endpoints release their held requests."""
        for cluster, eps in changes.items():
            if not eps:
                self.pod_inflight.pop(cluster, None)
            if eps:
                fut = self.waiting.pop(cluster, None)
                if fut is not None and not fut.done():
                    fut.set_result(None)


async def _shielded(fut: asyncio.Future[None]) -> None:
    # one future is shared by every held request of a revision: a client that goes away
    # stops waiting without cancelling it for the others
    await asyncio.shield(fut)
