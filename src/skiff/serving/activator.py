"""The activator, in the data plane: holds requests for a revision with no ready pod, and counts.

Knative's activator sits in the path of a revision that is scaled to zero (or
whose burst capacity is short): it buffers requests, tells the autoscaler at
once that there is demand, and forwards each request as soon as a pod is
ready. Here it is a seam of the gateway's dispatch (mesh/gateway/proxy.py):
a route whose revision cluster has no endpoints asks hold(), which answers
with a Defer (dataplane/proxy/http1.py) that resolves when the endpoints
update (EDS) brings the revision a pod, and then dispatches the request
again. Limits as upstream: a queue of 10,000 held requests per revision
(more get 503 "pending request queue full"), and a deadline: 503 when no pod
became ready within the revision's timeoutSeconds (upstream's activator
proxies within it; HOLD_TIMEOUT for a revision the part gives none). The
first held request pokes the control plane (a "poke" message over the
snapshot channel) and so does one a second after, while requests keep
waiting.

While a revision's SKS is in Proxy mode and it has ready pods (its burst
capacity is short, or target-burst-capacity is -1), the activator stays in
the path: pick() chooses the pod for each request, the one with the fewest
requests in flight from here, which is the one with the most free
concurrency, as every pod of a revision has the same containerConcurrency
(upstream's throttler picks by free capacity too); ties go round robin. The
Forward carries the activator as its hook, so it hears when the request ends.
With a containerConcurrency (the part's "capacity", from the PodAutoscaler), the
activator is also upstream's throttler: a request that finds every pod at cc
requests in flight from here is held, in order, in the same bounded queue, and
each request that ends releases the first one waiting (upstream's breaker with
capacity cc x pods); new requests do not jump that queue. A revision without cc
(0: unlimited) has no such limit, and its pods' queue-proxies queue the rest.

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
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from skiff.dataplane.proxy.http1 import Defer, Forward, Reply

QUEUE_LIMIT = 10_000
HOLD_TIMEOUT = 120.0             # how long a request waits for a pod before 503
POKE_EVERY = 1.0
MAX_CLUSTERS = 10_000
MAX_CONCURRENCY = 1000           # upstream's containerConcurrency maximum
MAX_TIMEOUT = 86_400             # a revision's timeoutSeconds, as the part may carry it
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
                 queue_limit: int = QUEUE_LIMIT, hold_timeout: float = HOLD_TIMEOUT,
                 worker: tuple[int, int] = (0, 1)) -> None:
        self.poke_cb = poke
        self.worker = worker             # (index, count) of the data-plane workers
        # each throttled cluster's share for this worker: (the endpoints it was made from,
        # pod key -> capacity)
        self._shares: dict[str, tuple[Sequence[Any], dict[str, int]]] = {}
        self.clock = clock
        self.queue_limit = queue_limit
        self.hold_timeout = hold_timeout
        self.counts: dict[str, _Counts] = {}
        self.held: dict[str, int] = {}
        # requests held in this turn of the loop whose wait has not started yet: counted
        # against the queue limit until it has (cleared at the next turn, so one whose wait
        # never starts, its client gone at once, is not counted forever)
        self.pending: dict[str, int] = {}
        self._clear_due = False
        self.poked: dict[str, float] = {}
        self.period_start = clock()
        self.proxied: frozenset[str] = frozenset()    # clusters whose SKS is in Proxy mode
        self.on_path_change: Callable[[], None] = lambda: None
        # requests in flight to each pod it chose: cluster -> "ip:port" -> count
        self.pod_inflight: dict[str, dict[str, int]] = {}
        self.rr: dict[str, int] = {}
        # throttling: each proxied cluster's containerConcurrency (absent: unlimited), its
        # endpoints as last told, the requests waiting for a pod (in order; a dict is an
        # ordered set with O(1) removal of one that gave up), and how many of those were
        # released and have not picked yet (their slot is theirs)
        self.capacity: dict[str, int] = {}
        self.timeouts: dict[str, float] = {}    # each fronted revision's timeoutSeconds
        self.eps: dict[str, tuple[Any, ...]] = {}
        self.queues: dict[str, dict[asyncio.Future[None], None]] = {}
        self.granted: dict[str, int] = {}
        self._granted: str | None = None    # the cluster whose released request picks now

    def in_path(self, cluster: str) -> bool:
        """Whether the activator fronts this revision (its SKS is in Proxy mode); a revision
        that is not (or no SKS at all) and has no endpoint gets Envoy's 503 at once."""
        return cluster in self.proxied

    def apply_part(self, data: Any) -> None:
        """The control plane's "activator" part: {"proxy": [clusters], "capacity": {cluster:
        containerConcurrency}} (ValueError if bad; nothing changes then)."""
        proxy = data.get("proxy") if isinstance(data, dict) else None
        if not isinstance(proxy, list) or not all(isinstance(c, str) for c in proxy) \
                or len(proxy) > MAX_CLUSTERS:
            raise ValueError("proxy must be a list of cluster names")
        capacity = _int_map(data, "capacity", "containerConcurrency", MAX_CONCURRENCY)
        timeout = _int_map(data, "timeout", "timeoutSeconds", MAX_TIMEOUT)
        self.timeouts = {c: float(t) for c, t in timeout.items()}
        proxied = frozenset(proxy)
        old_capacity, self.capacity = self.capacity, dict(capacity)
        if proxied != self.proxied:
            left = self.proxied - proxied
            self.proxied = proxied
            for cluster in [c for c in self.rr if c not in proxied]:
                self.rr.pop(cluster, None)
            self.on_path_change()       # the gateway's cached routes may skip the activator
            for cluster in left:        # no longer fronted: what waits for capacity goes direct
                self._wake(cluster)
        for cluster in set(old_capacity) | set(self.capacity):
            if old_capacity.get(cluster) != self.capacity.get(cluster):
                self._wake(cluster)

    # --- in the path with pods ------------------------------------------------------
    def pick(self, cluster: str, eps: Sequence[tuple[str, int]],
             ) -> tuple[str, tuple[str, int]] | None:
        """The pod for a request (`eps` non-empty): fewest requests in flight from here, ties
        in round-robin order. Returns the tag ("cluster|ip:port") the caller puts on the
        request head, so that end() can count it out, and the pod; None when the revision
        has a containerConcurrency and every pod is at it, or requests are already waiting
        for one (the caller holds the request then)."""
        cc = self.capacity.get(cluster, 0)
        mine = self._granted == cluster      # released for this cluster: its turn has come
        if cc and not mine and (self.queues.get(cluster) or self.granted.get(cluster)):
            return None                  # first come, first served: the ones waiting go first
        share = self._share(cluster, eps, cc) if cc and self.worker[1] > 1 else None
        counts = self.pod_inflight.get(cluster)
        if counts is None:
            if len(self.pod_inflight) >= MAX_CLUSTERS:
                self.pod_inflight.clear()
            counts = self.pod_inflight[cluster] = {}
        n = len(eps)
        start = self.rr.get(cluster, 0)
        self.rr[cluster] = start + 1
        if share is not None:
            # one of several workers: only its share of the pods, each with its own room
            best, most, best_ep = "", 0, eps[0]
            for i in range(n):
                ep = eps[(start + i) % n]
                key = f"{ep[0]}:{ep[1]}"
                room = share.get(key)
                if room is not None and room - counts.get(key, 0) > most:
                    best, most, best_ep = key, room - counts.get(key, 0), ep
            if not best:
                return None
            counts[best] = counts.get(best, 0) + 1
            self.count_in(cluster, new=not mine)
            return f"{cluster}|{best}", best_ep
        best, best_n, best_ep = "", -1, eps[0]
        for i in range(n):
            ep = eps[(start + i) % n]
            key = f"{ep[0]}:{ep[1]}"
            c = counts.get(key, 0)
            if best_n < 0 or c < best_n:
                best, best_n, best_ep = key, c, ep
                if c == 0:
                    break
        if cc and best_n >= cc:
            return None
        counts[best] = best_n + 1
        self.count_in(cluster, new=not mine)
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
        self.count_out(cluster)
        counts = self.pod_inflight.get(cluster)
        if counts is not None and key in counts:
            if counts[key] > 1:
                counts[key] -= 1
            else:
                del counts[key]
            if cluster in self.queues:
                self._wake(cluster)     # a slot is free: the first one waiting takes it

    # --- accounting --------------------------------------------------------------------
    def _counts(self, cluster: str, now: float) -> _Counts | None:
        c = self.counts.get(cluster)
        if c is None:
            if len(self.counts) >= MAX_CLUSTERS:
                return None
            c = self.counts[cluster] = _Counts(now)
        return c

    def count_in(self, cluster: str, new: bool = True) -> None:
        """A request in flight here (held, or sent to a pod it picked); `new`: one the
        autoscaler has not heard of (a held request that goes on to its pod is not)."""
        now = self.clock()
        c = self._counts(cluster, now)
        if c is not None:
            c.area += c.inflight * (now - c.since)
            c.since = now
            c.inflight += 1
            if new:
                c.requests += 1

    def _new_request(self, cluster: str) -> None:
        c = self._counts(cluster, self.clock())
        if c is not None:
            c.requests += 1

    def count_out(self, cluster: str) -> None:
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
        """A request for `cluster`, which has no ready endpoint or no free capacity: wait for
        one, then dispatch again."""
        # a request released for a free slot that lost it again (its pod went) keeps its turn
        # and its place: it is counted already
        first = self._granted == cluster
        if not first:
            if self.held.get(cluster, 0) + self.pending.get(cluster, 0) >= self.queue_limit:
                return QUEUE_FULL
            self.pending[cluster] = self.pending.get(cluster, 0) + 1
            self._clear_pending_soon()
            self._new_request(cluster)
        if not self.eps.get(cluster):
            self._poke(cluster)         # demand at zero: the autoscaler hears it at once
        return Defer(self._wait(cluster, redispatch, first),
                     timeout=self.timeouts.get(cluster, self.hold_timeout),
                     timeout_reply=NOT_READY)

    def _clear_pending_soon(self) -> None:
        if self._clear_due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return                      # no loop (a test): pending stays until cleared
        self._clear_due = True
        loop.call_soon(self._clear_pending)

    def _clear_pending(self) -> None:
        # runs before the waits of this turn's holds start (their first steps were scheduled
        # after it), so the limit never lets more in than it should
        self._clear_due = False
        self.pending.clear()

    def _poke(self, cluster: str) -> None:
        now = self.clock()
        last = self.poked.get(cluster)
        if last is None or now - last >= POKE_EVERY:
            if len(self.poked) >= MAX_CLUSTERS:
                self.poked.clear()
            self.poked[cluster] = now
            self.poke_cb(cluster)

    async def _wait(self, cluster: str, redispatch: Redispatch,
                    first: bool = False) -> Forward | Reply | Defer:
        self.held[cluster] = self.held.get(cluster, 0) + 1
        n = self.pending.get(cluster, 0)
        if first:
            pass                        # a re-hold: hold() did not count it as pending
        elif n > 1:
            self.pending[cluster] = n - 1
        else:
            self.pending.pop(cluster, None)
        self.count_in(cluster, new=False)    # counted as a request by hold()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self.queues.get(cluster)
        if queue is None:
            queue = self.queues[cluster] = {}
        if first:
            items = list(queue)
            queue.clear()
            queue[fut] = None
            queue.update(dict.fromkeys(items))
        else:
            queue[fut] = None
        picked = False
        try:
            if self.eps.get(cluster):
                self._wake(cluster)     # there may be room already (a pod came meanwhile)
            await fut
            # dispatched again: a Forward now, or (the pod went away again) another hold
            picked = True
            return self._again(cluster, redispatch)
        finally:
            q = self.queues.get(cluster)
            if q is not None:
                q.pop(fut, None)
                if not q:
                    del self.queues[cluster]
            if not picked and fut.done() and not fut.cancelled():
                # released, then gave up before choosing: its slot goes to the next one
                self._ungrant(cluster)
                self._wake(cluster)
            self.count_out(cluster)
            n = self.held.get(cluster, 1) - 1
            if n > 0:
                self.held[cluster] = n
            else:
                self.held.pop(cluster, None)

    def _again(self, cluster: str, redispatch: Redispatch) -> Forward | Reply | Defer:
        self._ungrant(cluster)
        self._granted = cluster
        try:
            return redispatch()
        finally:
            self._granted = None

    def _ungrant(self, cluster: str) -> None:
        g = self.granted.get(cluster, 0)
        if g > 1:
            self.granted[cluster] = g - 1
        else:
            self.granted.pop(cluster, None)

    def _free(self, cluster: str) -> int | None:
        """Free slots for requests waiting on `cluster`: None when it has no limit (every
        waiting request may go), else cc x pods less what is in flight and already granted."""
        cc = self.capacity.get(cluster, 0)
        if not cc or cluster not in self.proxied:
            return None
        counts = self.pod_inflight.get(cluster) or {}
        eps = self.eps.get(cluster, ())
        if self.worker[1] > 1:
            rooms = self._share(cluster, eps, cc)
        else:
            rooms = {f"{ip}:{port}": cc for ip, port in eps}
        free = sum(max(0, room - counts.get(key, 0)) for key, room in rooms.items())
        return max(0, free - self.granted.get(cluster, 0))

    def _share(self, cluster: str, eps: Sequence[Any], cc: int) -> dict[str, int]:
        cached = self._shares.get(cluster)
        if cached is not None and cached[0] is eps:
            return cached[1]
        rooms = worker_share([f"{ip}:{port}" for ip, port in eps], cc, *self.worker)
        if len(self._shares) >= MAX_CLUSTERS:
            self._shares.clear()
        self._shares[cluster] = (eps, rooms)
        return rooms

    def _wake(self, cluster: str) -> None:
        """Release the requests that waiting for `cluster` may go now, first come first."""
        queue = self.queues.get(cluster)
        if not queue:
            return
        if not self.eps.get(cluster):
            return                      # still no pod: they keep waiting (and their deadline)
        free = self._free(cluster)
        for fut in list(queue):
            if fut.done():              # gave up; its own finally takes it out
                continue
            if free is not None:
                if free <= 0:
                    break
                free -= 1
                self.granted[cluster] = self.granted.get(cluster, 0) + 1
            del queue[fut]
            fut.set_result(None)
        if not queue:
            del self.queues[cluster]

    def endpoints_changed(self, changes: Mapping[str, tuple[Any, ...]]) -> None:
        """EDS: clusters that got endpoints release their held requests (as many as their
        capacity takes)."""
        for cluster, eps in changes.items():
            if eps:
                self.eps[cluster] = eps   # a reference: as many as the snapshot's clusters
                self._wake(cluster)
            else:
                self.pod_inflight.pop(cluster, None)
                self.eps.pop(cluster, None)
                self.granted.pop(cluster, None)


def _int_map(data: Mapping[str, Any], key: str, what: str, most: int) -> dict[str, int]:
    """The part's `key`: cluster name -> an integer in [1, most] (ValueError naming it)."""
    m = data.get(key, {})
    if not isinstance(m, dict) or len(m) > MAX_CLUSTERS:
        raise ValueError(f"{key} must be a map of cluster name to {what}")
    for cluster, v in m.items():
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= most:
            raise ValueError(f"{key}[{cluster}]: {what} must be an integer in [1, {most}], "
                             f"got {v!r}")
    return dict(m)


def worker_share(pods: Sequence[str], cc: int, index: int, count: int) -> dict[str, int]:
    """The pods of a revision (as "ip:port") that data-plane worker `index` of `count` may
    send to, and the capacity it may use on each: upstream's throttler splits a revision's
    pods among its activators (assignSlice/pickIndices). Sorted by address so every worker
    agrees; one pod or one worker: every pod at cc; more workers than pods: pod index % n;
    else an equal slice each, and the pods left over shared by all at ceil(cc / count)."""
    keys = sorted(pods)
    n = len(keys)
    if count <= 1 or n <= 1:
        return dict.fromkeys(keys, cc)
    if count > n:
        return {keys[index % n]: cc}
    size = n // count
    mine = dict.fromkeys(keys[index * size:(index + 1) * size], cc)
    remnants = n % count
    if remnants:
        mine.update(dict.fromkeys(keys[n - remnants:], max(1, math.ceil(cc / count))))
    return mine
