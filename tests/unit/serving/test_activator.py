"""The activator's seam in the data plane: held requests released by an endpoints update and
dispatched again, its queue limit and deadline, the poke, only for revisions it fronts, and the
per-revision counts the autoscaler reads (time-averaged requests in flight)."""

from __future__ import annotations

import asyncio

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
    act.held_in("ns/r")                 # one request for the whole second
    clock.t += 0.5
    act.held_in("ns/r")                 # a second one for the last half
    clock.t += 0.5
    r = act.report()
    assert r == {"ns/r": {"concurrency": pytest.approx(1.5), "requests": 2.0}}
    act.held_out("ns/r")
    act.held_out("ns/r")
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
