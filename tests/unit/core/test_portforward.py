"""The port-forward protocol state machine (core/apiserver/portforward.py), driven by a client
that speaks SPDY/3.1 the way client-go's portforward package does; no sockets."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.core.apiserver import portforward as pf
from skiff.core.apiserver import spdy


class Client:
    """kubectl's side: its own encoder/decoder, decoding whatever the session sends."""

    def __init__(self, session: pf.Session) -> None:
        self.s = session
        self.enc = spdy.Encoder()
        self.dec = spdy.Decoder()
        self.got: list[spdy.Frame] = []
        self.ops: list[pf.Action] = []

    def send(self, *frames: spdy.Frame, now: float = 0.0) -> list[pf.Action]:
        return self._take(self.s.receive(b"".join(self.enc.encode(f) for f in frames), now))

    def _take(self, actions: list[pf.Action]) -> list[pf.Action]:
        ops: list[pf.Action] = []
        for a in actions:
            if isinstance(a, pf.Send):
                self.got += self.dec.feed(a.data)
            else:
                ops.append(a)
        self.ops += ops
        return ops

    def pod(self, actions: list[pf.Action]) -> list[pf.Action]:
        return self._take(actions)

    def frames(self) -> list[spdy.Frame]:
        got, self.got = self.got, []
        return got


def headers(kind: str, port: str = "8080", rid: str = "0") -> spdy.Headers:
    h = {"streamtype": [kind], "port": [port]}
    if rid:
        h["requestid"] = [rid]
    return h


def open_pair(c: Client, err: int = 1, data: int = 3, rid: str = "0",
              port: str = "8080") -> list[pf.Action]:
    ops = c.send(spdy.SynStream(err, headers("error", port, rid)))
    assert ops == []
    ops += c.send(spdy.Data(err, b"", fin=True))      # client-go closes its error stream at once
    ops += c.send(spdy.SynStream(data, headers("data", port, rid)))
    return ops


def test_a_forwarded_connection_end_to_end() -> None:
    c = Client(pf.Session())
    assert open_pair(c) == [pf.Connect("0", 8080)]
    assert c.frames() == [spdy.SynReply(1, {}), spdy.SynReply(3, {})]
    # bytes sent before the pod socket is up wait, then go first
    assert c.send(spdy.Data(3, b"GET / HTTP/1.0\r\n\r\n")) == []
    assert c.pod(c.s.connected("0")) == [pf.Forward("0", b"GET / HTTP/1.0\r\n\r\n")]
    assert c.send(spdy.Data(3, b"more")) == [pf.Forward("0", b"more")]
    c.pod(c.s.from_pod("0", b"HTTP/1.0 200 OK\r\n\r\nHello"))
    assert c.frames() == [spdy.Data(3, b"HTTP/1.0 200 OK\r\n\r\nHello")]
    # the client half-closes: the pod socket's write side closes
    assert c.send(spdy.Data(3, b"", fin=True)) == [pf.ShutdownWrite("0")]
    c.pod(c.s.pod_closed("0"))
    # error stream ends first (kubectl reads it to the end), then the data stream
    assert c.frames() == [spdy.Data(1, b"", fin=True), spdy.Data(3, b"", fin=True)]
    assert c.s.streams == {} and c.s.pairs == {}
    # client-go resets the data stream after its copy ends: nothing is left to drop
    assert c.send(spdy.RstStream(3, spdy.CANCEL)) == []


def test_data_stream_first_and_old_clients_without_request_ids() -> None:
    c = Client(pf.Session())
    c.send(spdy.SynStream(1, headers("error", rid="")))
    assert c.send(spdy.SynStream(3, headers("data", rid=""))) == [pf.Connect("1", 8080)]
    c2 = Client(pf.Session())
    c2.send(spdy.SynStream(1, headers("data", rid="7")))
    assert c2.send(spdy.SynStream(3, headers("error", rid="7"))) == [pf.Connect("7", 8080)]


def test_dial_failure_goes_on_the_error_stream() -> None:
    c = Client(pf.Session())
    open_pair(c)
    c.frames()
    c.pod(c.s.failed("0", "error forwarding port 8080 to pod web: connection refused"))
    assert c.frames() == [spdy.Data(1, b"error forwarding port 8080 to pod web: connection refused"),
                          spdy.Data(1, b"", fin=True), spdy.Data(3, b"", fin=True)]


@pytest.mark.parametrize("port", ["0", "65536", "http", ""])
def test_a_bad_port_header_is_reported_not_dialled(port: str) -> None:
    c = Client(pf.Session())
    assert open_pair(c, port=port) == []
    msgs = [f.data for f in c.frames() if isinstance(f, spdy.Data) and f.stream_id == 1 and f.data]
    assert msgs and b"invalid port" in msgs[0]


def test_parallel_requests_are_kept_apart() -> None:
    c = Client(pf.Session())
    assert open_pair(c, 1, 3, "0") == [pf.Connect("0", 8080)]
    assert open_pair(c, 5, 7, "1") == [pf.Connect("1", 8080)]
    c.pod(c.s.connected("0"))
    c.pod(c.s.connected("1"))
    assert c.send(spdy.Data(7, b"b"), spdy.Data(3, b"a")) == [pf.Forward("1", b"b"),
                                                             pf.Forward("0", b"a")]
    c.frames()
    c.pod(c.s.from_pod("1", b"B"))
    c.pod(c.s.from_pod("0", b"A"))
    assert c.frames() == [spdy.Data(7, b"B"), spdy.Data(3, b"A")]


def test_reset_of_the_data_stream_drops_the_pod_socket_and_ends_the_error_stream() -> None:
    c = Client(pf.Session())
    open_pair(c)
    c.pod(c.s.connected("0"))
    c.frames()
    assert c.send(spdy.RstStream(3, spdy.CANCEL)) == [pf.Drop("0")]
    assert c.frames() == [spdy.Data(1, b"", fin=True)]
    assert c.pod(c.s.from_pod("0", b"late")) == [] and c.frames() == []
    assert c.s.pairs == {} and c.s.streams == {}


def test_goaway_drops_everything() -> None:
    c = Client(pf.Session())
    open_pair(c)
    ops = c.send(spdy.GoAway(3))
    assert ops[0] == pf.Drop("0") and isinstance(ops[-1], pf.Close)


def test_pings_are_answered_settings_and_window_updates_ignored() -> None:
    c = Client(pf.Session())
    assert c.send(spdy.Ping(1), spdy.Settings([(0, 4, 100)]), spdy.Ping(2)) == []
    assert c.frames() == [spdy.Ping(1)]


def test_stream_limit_refuses_extra_streams() -> None:
    c = Client(pf.Session(max_streams=2))
    c.send(spdy.SynStream(1, headers("error")), spdy.SynStream(3, headers("data")))
    c.frames()
    assert c.send(spdy.SynStream(5, headers("error", rid="1"))) == []
    assert c.frames() == [spdy.RstStream(5, spdy.REFUSED_STREAM)]


def test_pending_bytes_are_bounded() -> None:
    c = Client(pf.Session(max_pending=10))
    open_pair(c)
    c.frames()
    assert c.send(spdy.Data(3, b"x" * 8)) == []
    assert c.send(spdy.Data(3, b"x" * 8)) == [pf.Drop("0")]
    assert spdy.RstStream(3, spdy.FLOW_CONTROL_ERROR) in c.frames()


def test_unknown_stream_types_and_duplicates_are_rejected_with_a_fin_reply() -> None:
    c = Client(pf.Session())
    c.send(spdy.SynStream(1, headers("bogus")))
    c.send(spdy.SynStream(3, headers("error")), spdy.SynStream(5, headers("error")))
    assert c.frames() == [spdy.SynReply(1, {}, fin=True), spdy.SynReply(3, {}),
                          spdy.SynReply(5, {}, fin=True)]


@pytest.mark.parametrize("frames", [
    [spdy.SynStream(2, headers("error"))],                                    # even id
    [spdy.SynStream(5, headers("error")), spdy.SynStream(3, headers("data"))],  # going back
    [spdy.Data(9, b"x")],                                                     # never opened
    [spdy.SynReply(1, {})],                                                   # not the client's
], ids=["even", "decreasing", "unopened", "syn-reply"])
def test_session_errors(frames: list[spdy.Frame]) -> None:
    c = Client(pf.Session())
    with pytest.raises(spdy.ProtocolError):
        c.send(*frames)


def test_incomplete_pairs_expire() -> None:
    c = Client(pf.Session())
    c.send(spdy.SynStream(1, headers("error")), now=100.0)
    c.frames()
    assert c.pod(c.s.expire(110.0, 30.0)) == [] and c.frames() == []
    c.pod(c.s.expire(131.0, 30.0))
    assert c.frames() == [spdy.RstStream(1, spdy.CANCEL)]
    assert c.s.pairs == {} and c.s.streams == {}


def test_late_frames_for_closed_streams_are_dropped() -> None:
    c = Client(pf.Session())
    open_pair(c)
    c.pod(c.s.connected("0"))
    c.send(spdy.RstStream(3, spdy.CANCEL))
    assert c.send(spdy.Data(3, b"late"), spdy.WindowUpdate(3, 10)) == []


def pod_obj(ports: dict[str, int]) -> dict[str, Any]:
    import json
    return {"metadata": {"annotations": {"skiff.dev/ports": json.dumps(ports)}}}


@pytest.mark.parametrize("mapping,port,want", [
    ({"8080": 41000, "8888": 41001}, 8080, 41000),
    ({"8080": 41000, "8888": 41001}, 8888, 41001),
    ({"8080": 41000}, 9999, None),                 # not declared: nothing there
    ({"default": 42000}, 8080, 42000),             # no declared port: the pod's one port
    ({"default": 42000}, 1234, 42000),
    ({}, 8080, None),                              # not admitted yet
])
def test_target_port(mapping: dict[str, int], port: int, want: int | None) -> None:
    assert pf.target_port(pod_obj(mapping), port) == want
