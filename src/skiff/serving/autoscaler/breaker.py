"""queue-proxy's Breaker and the activator throttler's capacity arithmetic (1.10). Pure.

Breaker is pkg/queue/breaker.go as a state machine: `capacity` requests run
at once, up to `queue_depth` more wait, and one beyond that is refused
("pending request queue full", a 503). The Go version blocks goroutines on
a channel; here the shell (queue-proxy, activator) holds a future per token
and the breaker tells it whose turn it is:

- arrive(token) -> RUN, QUEUED or REJECTED (upstream's Maybe entering);
- finish() when a running request ends -> the tokens that may now run;
- cancel(token) when a queued caller gives up (its context is done);
- reserve()/release_reservation() for upstream's non-blocking Reserve;
- update_concurrency(n) -> the tokens that may now run.

Waiters are woken first-come first-served; Go's channel wakes an arbitrary
waiter, and the counts, which are what upstream tests check, are identical.

queue-proxy builds a breaker only when containerConcurrency >= 1, with a
queue of 10 x cc (queue_proxy_breaker_params). The activator keeps one
breaker per revision sized by calculate_capacity (cc x backends, split
among activators; an InfiniteBreaker when cc is 0) and per-pod breakers of
cc slots with a queue of 10,000.

Neighbours: config.py (containerConcurrency comes with RevisionScaling),
decider.py (num_activators decides how many activators share a revision);
the queue-proxy and activator shells drive these objects.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from enum import Enum

ERR_REQUEST_QUEUE_FULL = "pending request queue full"
MAX_BREAKER_CAPACITY = 2**31 - 1
# The activator's per-revision and per-pod queue depth.
ACTIVATOR_QUEUE_DEPTH = 10_000
# queue-proxy: the queue is this many times containerConcurrency, time for the autoscaler to act.
QUEUE_PROXY_DEPTH_FACTOR = 10


class Admission(Enum):
    RUN = "run"
    QUEUED = "queued"
    REJECTED = "rejected"


@dataclass(frozen=True)
class BreakerParams:
    queue_depth: int
    max_concurrency: int
    initial_capacity: int


class Breaker:
    """queue.Breaker: a semaphore of `capacity` slots behind a bounded pending count."""

    def __init__(self, params: BreakerParams) -> None:
        # Upstream panics on these; a ValueError with the same words.
        if params.queue_depth <= 0:
            raise ValueError(f"Queue depth must be greater than 0. Got {params.queue_depth}.")
        if params.max_concurrency < 0:
            raise ValueError(
                f"Max concurrency must be 0 or greater. Got {params.max_concurrency}.")
        if params.initial_capacity < 0 or params.initial_capacity > params.max_concurrency:
            raise ValueError("Initial capacity must be between 0 and max concurrency. "
                             f"Got {params.initial_capacity}.")
        self.total_slots = params.queue_depth + params.max_concurrency
        self._capacity = params.initial_capacity
        self._in_flight = 0     # queued + running: upstream's inFlight
        self._active = 0        # holding a semaphore slot
        self._waiting: deque[Hashable] = deque()

    @property
    def in_flight(self) -> int:
        """InFlight(): requests admitted, running or waiting."""
        return self._in_flight

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def active(self) -> int:
        return self._active

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _try_acquire_pending(self) -> bool:
        if self._in_flight >= self.total_slots:
            return False
        self._in_flight += 1
        return True

    def reserve(self) -> bool:
        """Reserve: a slot now or nothing; never queues."""
        if not self._try_acquire_pending():
            return False
        if self._active >= self._capacity:
            self._in_flight -= 1
            return False
        self._active += 1
        return True

    def release_reservation(self) -> list[Hashable]:
        """The release Reserve hands out: frees the slot and the pending count."""
        return self.finish()

    def arrive(self, token: Hashable) -> Admission:
        """Maybe, entering: run now, wait in the queue, or be refused (queue full)."""
        if not self._try_acquire_pending():
            return Admission.REJECTED
        if self._active < self._capacity and not self._waiting:
            self._active += 1
            return Admission.RUN
        self._waiting.append(token)
        return Admission.QUEUED

    def finish(self) -> list[Hashable]:
        """A running request is done: its slot and pending count go; waiters may run."""
        if self._active == 0:
            raise RuntimeError("release and acquire are not paired")
        self._active -= 1
        self._in_flight -= 1
        return self._wake()

    def cancel(self, token: Hashable) -> bool:
        """A queued caller gave up (context done): it leaves the queue and the pending count."""
        try:
            self._waiting.remove(token)
        except ValueError:
            return False
        self._in_flight -= 1
        return True

    def update_concurrency(self, size: int) -> list[Hashable]:
        """UpdateConcurrency: a new slot count; lowering it lets running requests finish."""
        self._capacity = size
        return self._wake()

    def _wake(self) -> list[Hashable]:
        woken = []
        while self._waiting and self._active < self._capacity:
            woken.append(self._waiting.popleft())
            self._active += 1
        return woken


class InfiniteBreaker:
    """The activator's breaker for cc = 0: everything passes once any pod exists.

    Capacity is 0 (no pods: requests wait) or 1 (pods: all run); going from
    0 to 1 releases every waiter at once.
    """

    def __init__(self) -> None:
        self._capacity = 0
        self._waiting: list[Hashable] = []

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def arrive(self, token: Hashable) -> Admission:
        if self._capacity > 0:
            return Admission.RUN
        self._waiting.append(token)
        return Admission.QUEUED

    def cancel(self, token: Hashable) -> bool:
        if token in self._waiting:
            self._waiting.remove(token)
            return True
        return False

    def update_concurrency(self, cc: int) -> list[Hashable]:
        self._capacity = 0 if cc == 0 else 1
        if self._capacity:
            woken, self._waiting = self._waiting, []
            return woken
        return []


def queue_proxy_breaker_params(container_concurrency: int) -> BreakerParams | None:
    """buildBreaker: no breaker for unlimited concurrency, else cc slots and 10 x cc queued."""
    if container_concurrency < 1:
        return None
    return BreakerParams(queue_depth=QUEUE_PROXY_DEPTH_FACTOR * container_concurrency,
                         max_concurrency=container_concurrency,
                         initial_capacity=container_concurrency)


def pod_breaker_params(container_concurrency: int) -> BreakerParams:
    """The activator's podTracker breaker: cc slots, presumed all free."""
    return BreakerParams(queue_depth=ACTIVATOR_QUEUE_DEPTH, max_concurrency=container_concurrency,
                         initial_capacity=container_concurrency)


def revision_breaker_params() -> BreakerParams:
    """The activator's per-revision breaker before any capacity is known."""
    return BreakerParams(queue_depth=ACTIVATOR_QUEUE_DEPTH, max_concurrency=MAX_BREAKER_CAPACITY,
                         initial_capacity=0)


def _min_one(n: int) -> int:
    return n if n > 1 else 1


def calculate_capacity(container_concurrency: int, size: int, activator_count: int) -> int:
    """revisionThrottler.calculateCapacity: this activator's share of the revision's slots.

    cc 0 (or an overflow) with any backend is "unlimited": the maximum. Else
    cc x backends split evenly over the activators, at least 1.
    """
    target = container_concurrency * size
    if size > 0 and (container_concurrency == 0 or target > MAX_BREAKER_CAPACITY):
        return MAX_BREAKER_CAPACITY
    if target > 0:
        return _min_one(target // _min_one(activator_count))
    return target


def pick_indices(num_trackers: int, self_index: int, num_activators: int
                 ) -> tuple[int, int, int]:
    """pickIndices: this activator's [begin, end) slice of the sorted pods, and the remnant count."""
    if num_activators > num_trackers:
        # Fewer pods than activators: one pod each, round robin.
        begin = self_index % num_trackers
        return begin, begin + 1, 0
    size = num_trackers // num_activators
    begin = self_index * size
    return begin, begin + size, num_trackers % num_activators


def assigned_pods(pods: list[str], self_index: int, num_activators: int,
                  container_concurrency: int) -> list[tuple[str, int]]:
    """assignSlice: the pods this activator sends to, each with its concurrency here.

    The remnant pods at the tail are shared by every activator at
    ceil(cc / activators) each. Upstream shuffles the tail; order is left
    sorted here (the caller may shuffle). Unassigned (-1), a single pod or
    a single activator: all pods at full cc.
    """
    pods = sorted(pods)
    if self_index == -1 or len(pods) <= 1 or num_activators == 1:
        return [(p, container_concurrency) for p in pods]
    b, e, remnants = pick_indices(len(pods), self_index, num_activators)
    out = [(p, container_concurrency) for p in pods[b:e]]
    if remnants > 0:
        dcc = math.ceil(container_concurrency / num_activators)
        out += [(p, dcc) for p in pods[len(pods) - remnants:]]
    return out
