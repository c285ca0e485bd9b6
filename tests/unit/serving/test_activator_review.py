"""Review of the activator's throttler and hold deadline (commits 0c00950, 4eb4a6c): behaviour
the commits claim, or upstream Knative 1.10 has, that serving/activator.py does not keep yet.
Each test names the fix it wants; no sockets, no clocks."""

from __future__ import annotations

import asyncio
from typing import Any

from skiff.dataplane.proxy.http1 import Defer, Forward, Reply
from skiff.serving.activator import QUEUE_FULL, Activator

EP1 = (("10.0.0.1", 8012),)


class _Head:
    def __init__(self, tag: str | None) -> None:
        self.tag = tag


def _gateway(act: Activator, eps: dict[str, tuple[tuple[str, int], ...]],
             order: list[str]) -> Any:
    """What the gateway does for a request routed to `cluster`: the activator's pick, or its
    hold with a redispatch; `eps` is the gateway's own endpoints table (it may change before
    a released request runs again)."""
    def route(cluster: str) -> Forward | Reply | Defer:
        e = eps.get(cluster, ())
        picked = act.pick(cluster, e) if e else None
        if picked is None:
            return act.hold(cluster, lambda: route(cluster))
        order.append(picked[0])
        return Forward(picked[1])
    return route


def test_a_request_held_past_its_revision_timeout_gets_a_503() -> None:
    """Upstream 1.10 (cmd/activator/main.go) wraps the activator's handler in
    NewTimeoutHandler(ah, "activator request timeout", revision timeoutSeconds), which answers
    504. Issue 13 asks for 503 after the deadline ("the activator answers 503 after its
    deadline instead of hanging"), and skiff follows the issue: a 503 that says why."""
    act = Activator()
    act.apply_part({"proxy": ["ns/r"], "timeout": {"ns/r": 3}})
    d = act.hold("ns/r", lambda: Reply(200))
    assert isinstance(d, Defer)
    d.awaitable.close()                      # type: ignore[attr-defined]
    assert d.timeout_reply is not None and d.timeout == 3.0
    assert d.timeout_reply.status == 503 and b"no ready pod" in d.timeout_reply.body


def test_a_released_request_that_lost_its_pod_keeps_its_turn_in_a_full_queue() -> None:
    """hold() says a request released for a slot that it then loses (its pod went before it
    picked) keeps its turn. But while it re-holds, its first _wait has not ended, so `held`
    still counts it, and at the queue limit it gets 503 "pending request queue full" for a
    place it already had. Fix: in hold(), skip the limit while self._granted (the request is
    counted already)."""
    async def run() -> None:
        act = Activator(queue_limit=1)
        act.apply_part({"proxy": ["ns/r"], "capacity": {"ns/r": 1}})
        act.endpoints_changed({"ns/r": EP1})
        eps = {"ns/r": EP1}
        order: list[str] = []
        route = _gateway(act, eps, order)
        assert isinstance(route("ns/r"), Forward)             # the pod at cc
        held = route("ns/r")
        assert isinstance(held, Defer)
        task = asyncio.ensure_future(held.awaitable)
        await asyncio.sleep(0)
        act.end(None, _Head(order[0]), 200, 0, 0.1, None)      # released ...
        eps["ns/r"] = ()                                       # ... and its pod goes
        act.endpoints_changed({"ns/r": ()})
        await asyncio.sleep(0)
        again = task.result()
        assert again is not QUEUE_FULL, "the released request lost its place in the queue"
        assert isinstance(again, Defer)
        again.awaitable.close()              # type: ignore[attr-defined]
    asyncio.run(run())


def test_a_request_held_twice_is_one_request_to_the_autoscaler() -> None:
    """The activator's report carries "requests" (the rps metric's count). A request that is
    released, finds no room and is held again enters _wait twice, and held_in counts it as
    two requests. Fix: count `requests` once per request (in hold(), not for a re-hold
    while self._granted), keeping held_in/held_out for the concurrency integral."""
    async def run() -> None:
        act = Activator()
        act.apply_part({"proxy": ["ns/r"], "capacity": {"ns/r": 1}})
        act.endpoints_changed({"ns/r": EP1})
        eps = {"ns/r": EP1}
        order: list[str] = []
        route = _gateway(act, eps, order)
        route("ns/r")
        act.report()
        held = route("ns/r")
        task = asyncio.ensure_future(held.awaitable)
        await asyncio.sleep(0)
        act.end(None, _Head(order[0]), 200, 0, 0.1, None)
        eps["ns/r"] = ()
        act.endpoints_changed({"ns/r": ()})
        await asyncio.sleep(0)
        again = task.result()
        assert isinstance(again, Defer)
        task2 = asyncio.ensure_future(again.awaitable)
        await asyncio.sleep(0)
        report = act.report()
        task2.cancel()
        await asyncio.gather(task2, return_exceptions=True)
        assert report["ns/r"]["requests"] == 1.0
    asyncio.run(run())


def test_a_released_request_routed_to_another_revision_does_not_jump_its_queue() -> None:
    """Until 71577cd the gateway's redispatch routed a released request again, so a traffic
    split could send it to another revision; it now resumes the held route, but the seam
    still allows it (a redispatch is any callable). Activator._granted is one flag for every
    cluster: pick() lets such a request past the other revision's waiters, and hold() puts
    it at the head of that revision's queue. Fix: _granted holds the cluster released for
    (str | None) and pick()/hold() honour it for that cluster only."""
    async def run() -> None:
        act = Activator()
        a, b = "ns/a", "ns/b"
        ep_b = (("10.0.0.2", 8012),)
        act.apply_part({"proxy": [a, b], "capacity": {a: 1, b: 1}})
        act.endpoints_changed({a: EP1, b: ep_b})
        eps = {a: EP1, b: ep_b}
        order: list[str] = []
        route = _gateway(act, eps, order)
        assert isinstance(route(a), Forward) and isinstance(route(b), Forward)
        waiter_b = route(b)                                    # waits first, for b
        assert isinstance(waiter_b, Defer)
        tb = asyncio.ensure_future(waiter_b.awaitable)
        # a request held for a whose redispatch goes to b (the split rolled again)
        waiter_a = act.hold(a, lambda: route(b))
        assert isinstance(waiter_a, Defer)
        ta = asyncio.ensure_future(waiter_a.awaitable)
        await asyncio.sleep(0)
        act.end(None, _Head(order[0]), 200, 0, 0.1, None)      # a's slot frees: waiter_a goes
        await asyncio.sleep(0)
        moved = ta.result()
        assert isinstance(moved, Defer)                        # b is full: held for b now
        tm = asyncio.ensure_future(moved.awaitable)
        await asyncio.sleep(0)
        act.end(None, _Head(order[1]), 200, 0, 0.1, None)      # b's slot frees
        await asyncio.sleep(0)
        first_served = "waiter_b" if tb.done() else "moved" if tm.done() else "none"
        for t in (tb, tm):
            t.cancel()
        await asyncio.gather(tb, tm, return_exceptions=True)
        assert first_served == "waiter_b", "a request from another queue went ahead of b's"
    asyncio.run(run())


def test_the_queue_limit_holds_for_requests_held_in_one_turn_of_the_loop() -> None:
    """hold() compares `held`, which a request joins only when its Defer's coroutine first
    runs: every request dispatched in one turn of the loop (one read of an HTTP/2 connection
    carrying many HEADERS frames, many connections readable at once) passes the check, so a
    peer can put more than queue_limit requests in the queue. Fix: count a request in
    hold() (and count it out in _wait's finally, or when its coroutine is closed unstarted)."""
    act = Activator(queue_limit=2)
    act.apply_part({"proxy": ["ns/r"]})
    got = [act.hold("ns/r", lambda: Reply(200)) for _ in range(3)]
    for d in got:
        if isinstance(d, Defer):
            d.awaitable.close()              # type: ignore[attr-defined]
    assert got[2] is QUEUE_FULL


def test_a_request_the_activator_sends_to_a_pod_is_counted_by_it() -> None:
    """Upstream's activator counts every request it proxies (its concurrency reporter: the
    request and its time in flight, held or not) and sets K-Proxy-Request: activator on it
    (handler.go proxyRequest; the reference's "header K-Proxy-Request: activator"), so the
    queue-proxy reports it as proxied and the collector subtracts it: each request counted
    once. Here the activator counts only requests it holds, and the gateway sends no
    K-Proxy-Request, so a held request is counted twice in rps (activator + queue-proxy) and
    a picked one is counted by the queue-proxy only. Fix (with mesh/gateway/proxy.py adding
    k-proxy-request: activator to a Forward whose head.tag is set): count a request in
    pick() (held_in) and out in end() (held_out), and once per request in hold()."""
    act = Activator()
    act.apply_part({"proxy": ["ns/r"], "capacity": {"ns/r": 2}})
    act.endpoints_changed({"ns/r": EP1})
    act.report()
    picked = act.pick("ns/r", EP1)
    assert picked is not None
    report = act.report()
    act.end(None, _Head(picked[0]), 200, 0, 0.1, None)
    assert report.get("ns/r", {}).get("requests") == 1.0
