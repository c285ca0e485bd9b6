"""The activator's seam in the data plane: held requests released by an endpoints update and
dispatched again, its queue limit and deadline, the poke, only for revisions it fronts, and the
per-revision counts the autoscaler reads (time-averaged requests in flight)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from skiff.dataplane import codec
from skiff.dataplane.proxy.http1 import Defer, Forward, Reply
from skiff.serving.activator import NOT_READY, QUEUE_FULL, Activator


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_held_request_is_dispatched_again_once_the_revision_has_a_pod() -> None:
    async def run() -> None:
        pokes: list[str] = []
        act = Activator(poke=pokes.append)
        act.apply_part({"proxy": ["ns/rev-1"]})
        assert act.in_path("ns/rev-1") and not act.in_path("ns/other")
        fwd = Forward(("10.244.0.9", 8080))
        d = act.hold("ns/rev-1", lambda: fwd)
        assert isinstance(d, Defer) and d.timeout_reply is NOT_READY
        task = asyncio.ensure_future(d.awaitable)
        await asyncio.sleep(0)
        assert not task.done() and act.held == {"ns/rev-1": 1}
        assert pokes == ["ns/rev-1"]
        act.endpoints_changed({"ns/other": (("10.244.0.7", 8080),), "ns/rev-1": ()})
        await asyncio.sleep(0)
        assert not task.done()                  # no endpoint yet for this one
        act.endpoints_changed({"ns/rev-1": (("10.244.0.9", 8080),)})
        assert await asyncio.wait_for(task, 1) is fwd
        assert act.held == {}
    asyncio.run(run())


def test_the_queue_is_bounded_and_pokes_are_paced() -> None:
    async def run() -> None:
        clock = Clock()
        pokes: list[str] = []
        act = Activator(poke=pokes.append, clock=clock, queue_limit=2)
        waits = [act.hold("ns/r", lambda: Reply(200)) for _ in range(2)]
        tasks = [asyncio.ensure_future(d.awaitable) for d in waits if isinstance(d, Defer)]
        await asyncio.sleep(0)
        assert act.hold("ns/r", lambda: Reply(200)) is QUEUE_FULL
        assert pokes == ["ns/r"]                 # one poke per second while they wait
        clock.t += 1.5
        extra = act.hold("ns/r", lambda: Reply(200))
        assert extra is QUEUE_FULL and pokes == ["ns/r"]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert act.held == {}
        d = act.hold("ns/r", lambda: Reply(200))
        assert isinstance(d, Defer) and pokes == ["ns/r", "ns/r"]
        d.awaitable.close()                      # type: ignore[attr-defined]
    asyncio.run(run())


def test_report_averages_requests_in_flight_over_the_period() -> None:
    clock = Clock()
    act = Activator(clock=clock)
    act.report()
    act.count_in("ns/r")                 # one request for the whole second
    clock.t += 0.5
    act.count_in("ns/r")                 # a second one for the last half
    clock.t += 0.5
    r = act.report()
    assert r == {"ns/r": {"concurrency": pytest.approx(1.5), "requests": 2.0}}
    act.count_out("ns/r")
    act.count_out("ns/r")
    clock.t += 1.0
    assert act.report() == {"ns/r": {"concurrency": 0.0, "requests": 0.0}}
    clock.t += 1.0
    assert act.report() == {}         # idle for a whole period: dropped


def test_a_bad_activator_part_is_refused() -> None:
    act = Activator()
    for bad in ({"proxy": "ns/r"}, {"proxy": [1]}, [], {"other": []}):
        with pytest.raises(ValueError):
            act.apply_part(bad)
    assert act.proxied == frozenset()


def test_stats_messages_are_checked() -> None:
    msg = codec.parse(codec.frame(codec.stats_message({"ns/r": {"concurrency": 1.5,
                                                                 "requests": 3}}))[4:])
    assert codec.decode_stats(msg["clusters"]) == {"ns/r": {"concurrency": 1.5, "requests": 3.0}}
    for bad in ({"ns/r": {"concurrency": -1}}, {"ns/r": {"concurrency": "x"}}, {"ns/r": 3}, []):
        with pytest.raises(codec.CodecError):
            codec.decode_stats(bad)
    poke = codec.parse(codec.frame(codec.poke_message("ns/r"))[4:])
    assert poke == {"type": "poke", "version": 0, "cluster": "ns/r"}



def test_the_outbox_drops_when_the_control_plane_stalls() -> None:
    """Stats and pokes are written only while the control plane reads them: past 4 MiB
    buffered the data plane drops them (the next second's report replaces them)."""
    from skiff.dataplane.channel import Outbox

    class Transport:
        def __init__(self, buffered: int) -> None:
            self.buffered = buffered

        def get_write_buffer_size(self) -> int:
            return self.buffered

    class Writer:
        def __init__(self, buffered: int) -> None:
            self.transport = Transport(buffered)
            self.written: list[bytes] = []

        def is_closing(self) -> bool:
            return False

        def write(self, data: bytes) -> None:
            self.written.append(data)

    box = Outbox()
    assert box.send(codec.poke_message("ns/r")) is False          # not connected
    ok, stalled = Writer(0), Writer(5 * 1024 * 1024)
    box.writer = ok  # type: ignore[assignment]
    assert box.send(codec.poke_message("ns/r")) is True and len(ok.written) == 1
    box.writer = stalled  # type: ignore[assignment]
    assert box.send(codec.poke_message("ns/r")) is False and stalled.written == []


class _Head:
    def __init__(self, tag: str | None) -> None:
        self.tag = tag


def test_in_the_path_it_picks_the_pod_with_the_most_free_concurrency() -> None:
    act = Activator()
    changes: list[frozenset[str]] = []
    act.on_path_change = lambda: changes.append(act.proxied)
    act.apply_part({"proxy": ["ns/r"]})
    act.apply_part({"proxy": ["ns/r"]})          # no change: the gateway's caches stay
    assert changes == [frozenset({"ns/r"})]
    eps = (("10.0.0.1", 8012), ("10.0.0.2", 8012), ("10.0.0.3", 8012))
    tags = []
    for _ in range(3):                            # idle pods: one each, round robin
        tag, ep = act.pick("ns/r", eps)
        tags.append(tag)
    assert sorted(tags) == ["ns/r|10.0.0.1:8012", "ns/r|10.0.0.2:8012", "ns/r|10.0.0.3:8012"]
    # the second pod's request ends: it is the only one with free capacity now
    act.end(None, _Head("ns/r|10.0.0.2:8012"), 200, 0, 0.1, None)
    assert act.pick("ns/r", eps) == ("ns/r|10.0.0.2:8012", ("10.0.0.2", 8012))
    assert act.pod_inflight["ns/r"] == {"10.0.0.1:8012": 1, "10.0.0.2:8012": 1,
                                        "10.0.0.3:8012": 1}
    # every pod as busy: the next goes to the least recently first-in-line
    tag, _ = act.pick("ns/r", eps)
    assert act.pod_inflight["ns/r"][tag.split("|")[1]] == 2
    # a request ends once; a second end (or an unknown tag) changes nothing
    head = _Head(tag)
    act.end(None, head, 200, 0, 0.1, None)
    act.end(None, head, 200, 0, 0.1, None)
    act.end(None, _Head("ns/gone|1.2.3.4:1"), 200, 0, 0.1, None)
    assert sum(act.pod_inflight["ns/r"].values()) == 3
    # the revision lost its pods: its counts go
    act.endpoints_changed({"ns/r": ()})
    assert "ns/r" not in act.pod_inflight


# --- throttling to containerConcurrency (upstream's throttler) ---------------------------

EPS2 = (("10.0.0.1", 8012), ("10.0.0.2", 8012))


def _throttled(cc: int, queue_limit: int = 10) -> Activator:
    act = Activator(queue_limit=queue_limit)
    act.apply_part({"proxy": ["ns/r"], "capacity": {"ns/r": cc}})
    act.endpoints_changed({"ns/r": EPS2})
    return act


def _dispatch(act: Activator, order: list[str]) -> Any:
    """What the gateway does for one request: the pod the activator picks, or a hold that
    dispatches again; records each pick."""
    def again() -> Forward | Reply | Defer:
        picked = act.pick("ns/r", act.eps["ns/r"])
        if picked is None:
            return act.hold("ns/r", again)
        order.append(picked[0])
        return Forward(picked[1])
    return again()


def test_at_capacity_requests_wait_in_order_and_each_end_releases_one() -> None:
    async def run() -> None:
        act = _throttled(cc=1)
        order: list[str] = []
        first = [_dispatch(act, order) for _ in range(2)]
        assert all(isinstance(f, Forward) for f in first) and len(order) == 2
        waits = [_dispatch(act, order) for _ in range(3)]     # both pods at cc=1: held
        assert all(isinstance(w, Defer) for w in waits)
        tasks = [asyncio.ensure_future(w.awaitable) for w in waits]
        await asyncio.sleep(0)
        assert not any(t.done() for t in tasks) and act.held == {"ns/r": 3}
        act.end(None, _Head(order[0]), 200, 0, 0.1, None)     # one slot: the first waiter
        # a newcomer does not jump the queue while a released request has not picked yet
        assert act.pick("ns/r", EPS2) is None
        await asyncio.sleep(0)
        assert tasks[0].done() and not tasks[1].done() and not tasks[2].done()
        assert isinstance(tasks[0].result(), Forward)
        assert order[2] == order[0]                           # the pod that was freed
        act.end(None, _Head(order[1]), 200, 0, 0.1, None)
        await asyncio.sleep(0)
        assert tasks[1].done() and not tasks[2].done()
        assert act.pod_inflight["ns/r"] == {"10.0.0.1:8012": 1, "10.0.0.2:8012": 1}
        tasks[2].cancel()
        await asyncio.gather(tasks[2], return_exceptions=True)
        assert act.held == {} and act.queues == {} and act.granted == {}
    asyncio.run(run())


def test_a_released_request_that_gives_up_passes_its_slot_on() -> None:
    async def run() -> None:
        act = _throttled(cc=1)
        order: list[str] = []
        for _ in range(2):
            _dispatch(act, order)
        waits = [_dispatch(act, order) for _ in range(2)]
        tasks = [asyncio.ensure_future(w.awaitable) for w in waits]
        await asyncio.sleep(0)
        act.end(None, _Head(order[0]), 200, 0, 0.1, None)     # released ...
        tasks[0].cancel()                                     # ... but its client went away
        await asyncio.gather(tasks[0], return_exceptions=True)
        await asyncio.sleep(0)
        assert isinstance(tasks[1].result(), Forward) and len(order) == 3
        assert act.granted == {} and act.queues == {}
    asyncio.run(run())


def test_the_capacity_queue_is_bounded_and_a_pod_added_releases_as_many_as_it_takes() -> None:
    async def run() -> None:
        act = _throttled(cc=2, queue_limit=3)
        order: list[str] = []
        for _ in range(4):                                    # 2 pods x cc 2
            assert isinstance(_dispatch(act, order), Forward)
        waits = [_dispatch(act, order) for _ in range(3)]
        tasks = [asyncio.ensure_future(w.awaitable) for w in waits]
        await asyncio.sleep(0)
        assert _dispatch(act, order) is QUEUE_FULL            # 10 x cc upstream; 3 here
        eps3 = EPS2 + (("10.0.0.3", 8012),)
        act.endpoints_changed({"ns/r": eps3})                 # a third pod: room for two
        await asyncio.sleep(0)
        assert [t.done() for t in tasks] == [True, True, False]
        assert all(isinstance(t.result(), Forward) for t in tasks[:2])
        assert act.pod_inflight["ns/r"]["10.0.0.3:8012"] == 2
        tasks[2].cancel()
        await asyncio.gather(tasks[2], return_exceptions=True)
    asyncio.run(run())


def test_without_a_concurrency_or_out_of_the_path_nothing_waits_for_capacity() -> None:
    async def run() -> None:
        act = _throttled(cc=1)
        order: list[str] = []
        for _ in range(2):
            _dispatch(act, order)
        wait = _dispatch(act, order)
        task = asyncio.ensure_future(wait.awaitable)
        await asyncio.sleep(0)
        assert not task.done()
        # the SKS went to Serve: the activator leaves the path and what it held goes on
        act.apply_part({"proxy": [], "capacity": {}})
        await asyncio.sleep(0)
        assert task.done()
        unlimited = Activator()
        unlimited.apply_part({"proxy": ["ns/r"]})
        assert all(unlimited.pick("ns/r", EPS2) is not None for _ in range(50))
    asyncio.run(run())


def test_a_bad_capacity_is_refused_and_changes_nothing() -> None:
    act = _throttled(cc=3)
    for bad in ({"proxy": ["ns/r"], "capacity": []},
                {"proxy": ["ns/r"], "capacity": {"ns/r": 0}},
                {"proxy": ["ns/r"], "capacity": {"ns/r": 1001}},
                {"proxy": ["ns/r"], "capacity": {"ns/r": "2"}},
                {"proxy": ["ns/r"], "capacity": {"ns/r": True}}):
        with pytest.raises(ValueError, match="capacity"):
            act.apply_part(bad)
    assert act.capacity == {"ns/r": 3} and act.proxied == frozenset({"ns/r"})


def test_the_activator_part_from_sks_and_pod_autoscalers() -> None:
    from skiff.serving.activatorpart import activator_part

    def obj(ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"namespace": ns, "name": name}, "spec": spec}
    sks = [obj("a", "r1", {"mode": "Proxy"}), obj("a", "r2", {"mode": "Serve"}),
           obj("b", "r3", {"mode": "Proxy"}), obj("b", "r4", {"mode": "Proxy"})]
    pas = [obj("a", "r1", {"containerConcurrency": 1}),
           obj("a", "r2", {"containerConcurrency": 5}),      # in Serve mode: not fronted
           obj("b", "r3", {"containerConcurrency": 0}),      # unlimited
           obj("c", "r9", {"containerConcurrency": 2})]      # no SKS
    revs = [obj("a", "r1", {"timeoutSeconds": 30}), obj("a", "r2", {"timeoutSeconds": 9}),
            obj("b", "r3", {})]
    part = activator_part(sks, pas, lambda ns, n: f"{ns}/{n}", revs)
    assert part == {"proxy": ["a/r1", "b/r3", "b/r4"], "capacity": {"a/r1": 1},
                    "timeout": {"a/r1": 30}}
    act = Activator()
    act.apply_part(part)                                     # the data plane takes it
    assert act.timeouts == {"a/r1": 30.0}


def test_a_held_request_waits_as_long_as_its_revision_s_timeout() -> None:
    act = Activator(hold_timeout=120.0)
    act.apply_part({"proxy": ["ns/r", "ns/s"], "timeout": {"ns/r": 3}})
    d = act.hold("ns/r", lambda: Reply(200))
    assert isinstance(d, Defer) and d.timeout == 3.0 and d.timeout_reply is NOT_READY
    d.awaitable.close()                      # type: ignore[attr-defined]
    other = act.hold("ns/s", lambda: Reply(200))             # none given: the default
    assert isinstance(other, Defer) and other.timeout == 120.0
    other.awaitable.close()                  # type: ignore[attr-defined]
    for bad in ({"ns/r": 0}, {"ns/r": 86_401}, {"ns/r": 1.5}, ["ns/r"]):
        with pytest.raises(ValueError, match="timeout"):
            act.apply_part({"proxy": ["ns/r"], "timeout": bad})
    assert act.timeouts == {"ns/r": 3.0}


# --- several data-plane workers share a revision's capacity ------------------------------

@pytest.mark.parametrize("pods, cc, count, want", [
    # one worker, or one pod: every pod at cc (upstream's assignSlice)
    (3, 4, 1, [{"a": 4, "b": 4, "c": 4}]),
    (1, 4, 2, [{"a": 4}, {"a": 4}]),
    # more workers than pods: pod index % n
    (2, 4, 3, [{"a": 4}, {"b": 4}, {"a": 4}]),
    # an equal slice each; what is left over shared by all at ceil(cc / count)
    (4, 4, 2, [{"a": 4, "b": 4}, {"c": 4, "d": 4}]),
    (5, 3, 2, [{"a": 3, "b": 3, "e": 2}, {"c": 3, "d": 3, "e": 2}]),
    (3, 1, 2, [{"a": 1, "c": 1}, {"b": 1, "c": 1}]),
])
def test_worker_share_splits_pods_as_upstream_s_activators(
        pods: int, cc: int, count: int, want: list[dict[str, int]]) -> None:
    from skiff.serving.activator import worker_share
    names = "abcde"[:pods]
    # every worker sees the pods in its own order; the share is the same
    got = [worker_share(list(reversed(names)), cc, i, count) for i in range(count)]
    assert got == want


def test_a_worker_sends_only_to_its_share_and_throttles_to_its_room() -> None:
    eps = (("10.0.0.1", 8012), ("10.0.0.2", 8012), ("10.0.0.3", 8012))
    w0 = Activator(worker=(0, 2))
    w0.apply_part({"proxy": ["ns/r"], "capacity": {"ns/r": 2}})
    w0.endpoints_changed({"ns/r": eps})
    # worker 0's share: pod 1 at cc 2, and pod 3 (left over) at ceil(2 / 2) = 1
    picks = [w0.pick("ns/r", eps) for _ in range(4)]
    assert picks[0] is not None and picks[0][0] == "ns/r|10.0.0.1:8012"    # the most room
    assert sorted(p[0] for p in picks[:3] if p) == [
        "ns/r|10.0.0.1:8012", "ns/r|10.0.0.1:8012", "ns/r|10.0.0.3:8012"]
    assert picks[3] is None and w0._free("ns/r") == 0       # never pod 2: worker 1's


def test_the_part_s_maps_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import skiff.serving.activator as activator
    monkeypatch.setattr(activator, "MAX_CLUSTERS", 2)
    act = Activator()
    too_many = {f"ns/r{i}": 1 for i in range(3)}
    for key in ("capacity", "timeout"):
        with pytest.raises(ValueError, match=f"{key} must be a map"):
            act.apply_part({"proxy": [], key: too_many})
    act.apply_part({"proxy": [], "capacity": dict(list(too_many.items())[:2])})   # at the limit
    assert act.capacity == {"ns/r0": 1, "ns/r1": 1}
