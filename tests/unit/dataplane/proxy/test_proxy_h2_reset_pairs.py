"""dataplane/proxy/h2.py: the streams a client opens and resets in the same read (the rapid-reset
pattern) never reach h2's stream machinery: their header blocks only update the HPACK table,
they count as premature resets, and everything else h2 sees and answers as before. An
in-memory h2 client against H2ServerProtocol (test_proxy_h2's rig); no sockets."""

from __future__ import annotations

import asyncio
import random
import struct
from typing import Any

import h2.errors
import pytest
from test_proxy_h2 import H2Rig, run, tick

from skiff.dataplane.proxy.h2 import H2ServerProtocol, changes_nothing, reset_after
from skiff.dataplane.proxy.limits import Limits


def spy(server: H2ServerProtocol) -> list[bytes]:
    """What the server hands h2, read by read."""
    fed: list[bytes] = []
    real = server.conn.receive_data

    def receive_data(data: Any) -> Any:
        fed.append(bytes(data))
        return real(data)
    server.conn.receive_data = receive_data  # type: ignore[method-assign]
    return fed


def pairs(r: H2Rig, n: int, extra: list[tuple[str, str]] | None = None) -> bytes:
    """n HEADERS + RST_STREAM pairs from the rig's client, encoded but not sent."""
    for _ in range(n):
        sid = r.client.get_next_available_stream_id()
        r.client.send_headers(sid, [(":method", "GET"), (":path", "/p"), (":scheme", "https"),
                                    (":authority", "hello.example.com"), *(extra or [])],
                              end_stream=True)
        r.client.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    return r.client.data_to_send()


def goaway_code(data: bytes) -> int | None:
    i = 0
    while len(data) - i >= 9:
        n = int.from_bytes(data[i:i + 3], "big")
        if data[i + 3] == 7:
            return int.from_bytes(data[i + 13:i + 17], "big")
        i += 9 + n
    return None


def test_pairs_in_one_read_never_reach_h2_and_keep_hpack_in_step() -> None:
    async def t() -> None:
        r = H2Rig()
        r.request(path="/first")                # h2 opens the connection's first stream
        fed = spy(r.server)
        # the pairs carry a header the client's HPACK encoder adds to its dynamic table; the
        # request after them refers to that entry, so the server must have decoded the pairs
        data = pairs(r, 40, [("x-tenant", "blue")])
        r.server.data_received(data)
        assert b"".join(fed) == b"", "a forgotten pair was handed to h2"
        assert (r.server.closed_streams, r.server.premature_resets) == (40, 40)
        assert [h.target for h in r.heads] == [b"/first"]
        assert r.server.conn.highest_inbound_stream_id == 81
        sid = r.request(path="/after", extra=[("x-tenant", "blue")])
        assert sid == 83
        await tick()
        assert [h.target for h in r.heads] == [b"/first", b"/after"]
        assert r.heads[-1].header(b"x-tenant") == b"blue"
        assert not r.down.closed
    run(t)


def ends(data: bytes, kind: int) -> list[int]:
    """The offsets where frames of that type end."""
    out, i = [], 0
    while len(data) - i >= 9:
        n, t = int.from_bytes(data[i:i + 3], "big"), data[i + 3]
        i += 9 + n
        if t == kind:
            out.append(i)
    return out


def test_a_pair_cut_anywhere_but_after_its_headers_is_still_forgotten() -> None:
    async def t() -> None:
        r = H2Rig()
        r.request(path="/first")
        fed = spy(r.server)
        data = pairs(r, 30)
        headers_end = set(ends(data, 0x1))
        cuts = [c for c in range(3, len(data), 5) if c not in headers_end] + [len(data)]
        last = 0
        for c in cuts:                        # frames cut in their heads and payloads
            r.server.data_received(data[last:c])
            last = c
        assert b"".join(fed) == b""
        assert r.server.premature_resets == 30 and r.server.carry == b""
        assert [h.target for h in r.heads] == [b"/first"]
        r.request(path="/after")
        await tick()
        assert [h.target for h in r.heads] == [b"/first", b"/after"]
    run(t)


def test_a_read_that_ends_with_headers_goes_to_h2_at_once() -> None:
    """It may be a real request: it is not held back for an RST_STREAM that may follow."""
    async def t() -> None:
        r = H2Rig()
        r.request(path="/first")
        data = pairs(r, 1)
        cut = ends(data, 0x1)[0]
        r.server.data_received(data[:cut])
        assert [h.target for h in r.heads] == [b"/first", b"/p"]
        assert r.server.carry == b""
        r.server.data_received(data[cut:cut + 5])    # part of the RST: waits, whole frames only
        assert r.server.carry == data[cut:cut + 5]
        r.server.data_received(data[cut + 5:])
        assert r.server.carry == b"" and r.server.premature_resets == 1
    run(t)


def test_the_rapid_reset_rule_still_closes_the_connection() -> None:
    async def t() -> None:
        r = H2Rig()
        r.request(path="/first")
        r.server.data_received(pairs(r, Limits().premature_reset_streams))
        await tick()                          # the read is taken a 4 KiB slice a turn
        assert r.down.closed
        assert goaway_code(r.down.take()) == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        assert [h.target for h in r.heads] == [b"/first"]
    run(t)


@pytest.mark.parametrize("block", [
    b"\xff\xff\xff\xff\x0f",                       # an index far past any table
    b"\x82\x84\xfe",                                 # index 126: the table has fewer
    b"\x82\x80",                                     # index 0 is no entry
])
def test_a_forgotten_block_that_does_not_decode_ends_the_connection(block: bytes) -> None:
    async def t() -> None:
        r = H2Rig()
        r.request(path="/first")
        frame = struct.Struct(">IBI")
        bad = frame.pack(len(block) << 8 | 1, 0x4 | 0x1, 3) + block + \
            frame.pack(4 << 8 | 3, 0, 3) + b"\x00\x00\x00\x08"
        r.down.take()
        r.server.data_received(bad)
        assert r.down.closed
        assert goaway_code(r.down.take()) == h2.errors.ErrorCodes.PROTOCOL_ERROR
    run(t)


def test_a_frame_over_the_size_limit_is_refused_before_it_comes_whole() -> None:
    async def t() -> None:
        r = H2Rig()
        r.request(path="/first")
        r.down.take()
        # the head of a 1 MiB DATA frame (the limit is 16 KiB), and only a little of it
        r.server.data_received(struct.pack(">IBI", (1 << 20) << 8 | 0, 0, 1) + b"x" * 100)
        assert r.down.closed
        assert goaway_code(r.down.take()) == h2.errors.ErrorCodes.FRAME_SIZE_ERROR
    run(t)


def scenario(rng: random.Random, r: H2Rig, reset: set[bytes]) -> bytes:
    """A random mix from one client: plain requests (some with a header that HPACK indexes),
    rapid-reset pairs, a header block split into CONTINUATION frames and then reset, a stream
    reset in a later frame, PINGs and a request with a body."""
    c = r.client
    out = bytearray()
    open_sids: list[int] = []
    for _ in range(rng.randrange(10, 60)):
        op = rng.random()
        sid = c.get_next_available_stream_id()
        extra = [("x-k", rng.choice(["a", "b", "c"]))] if rng.random() < 0.5 else []
        head = [(":method", "GET"), (":path", f"/{sid}"), (":scheme", "https"),
                (":authority", rng.choice(["hello.example.com", "missing.example.com"])),
                *extra]
        if op < 0.45:
            c.send_headers(sid, head, end_stream=True)
            c.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
            reset.add(b"/%d" % sid)
        elif op < 0.6:
            c.send_headers(sid, head, end_stream=True)
            open_sids.append(sid)
        elif op < 0.7:
            c.send_headers(sid, [*head, ("x-big", "v" * 20_000)], end_stream=True)
            c.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
            reset.add(b"/%d" % sid)
        elif op < 0.8 and open_sids:
            gone = open_sids.pop(0)
            c.reset_stream(gone, h2.errors.ErrorCodes.CANCEL)
            reset.add(b"/%d" % gone)
        elif op < 0.9:
            c.ping(rng.randbytes(8))
        else:
            c.send_headers(sid, [*head[:1], (":method", "POST"), *head[1:]][1:], end_stream=False)
            c.send_data(sid, b"body", end_stream=True)
            open_sids.append(sid)
        out += c.data_to_send()
    return bytes(out)


def feed(rng: random.Random, server: H2ServerProtocol, data: bytes) -> None:
    i = 0
    while i < len(data):
        n = rng.choice([1, 5, 13, 26, 100, 4096, 70_000])
        server.data_received(data[i:i + n])
        i += n


def seen(r: H2Rig, reset: set[bytes]) -> tuple[Any, ...]:
    """What the server did: the requests dispatched (those of streams the client reset may or
    may not be, by how the reads fell), the streams counted, whether it closed."""
    return ([(h.method, h.target, h.host, tuple(h.lines)) for h in r.heads
             if h.target not in reset],
            r.server.closed_streams, r.server.premature_resets, r.down.closed)


def test_with_and_without_forgetting_the_server_does_the_same() -> None:
    """Randomized: the same bytes, in the same reads, to a server that forgets reset pairs and
    to one that gives h2 everything: the same requests are dispatched and the same streams
    counted. (The same reads: whether a stream reset in a later read was dispatched, and so
    whether its reset counts as premature, depends on where the reads fall.)"""
    async def t() -> None:
        forgotten = 0
        for seed in range(40):
            rng = random.Random(seed)
            a, b = H2Rig(), H2Rig()               # their clients' prefaces are the same bytes
            b.server._new_stream = lambda sid: False  # type: ignore[method-assign]
            a.client.send_headers(1, [(":method", "GET"), (":path", "/first"),
                                      (":scheme", "https"), (":authority", "hello.example.com")],
                                  end_stream=True)
            reset: set[bytes] = set()
            data = a.client.data_to_send() + scenario(rng, a, reset)
            fed = spy(a.server)
            cuts = random.Random()
            cuts.setstate(rng.getstate())
            feed(rng, a.server, data)
            feed(cuts, b.server, data)
            for _ in range(1000):                 # reads are taken a 4 KiB slice a turn
                if not (a.server.backlog or b.server.backlog):
                    break
                await asyncio.sleep(0)
            await tick()
            assert seen(a, reset) == seen(b, reset), f"seed {seed}"
            forgotten += len(data) - sum(map(len, fed))
        assert forgotten > 0, "no pair was ever forgotten"
    run(t)


def frame_kinds(data: bytes) -> list[tuple[int, int]]:
    """(type, stream id) of each frame the server wrote."""
    out, i = [], 0
    while len(data) - i >= 9:
        n = int.from_bytes(data[i:i + 3], "big")
        out.append((data[i + 3], int.from_bytes(data[i + 5:i + 9], "big") & 0x7FFFFFFF))
        i += 9 + n
    return out


def test_a_frame_on_a_forgotten_stream_is_a_stream_error_as_after_any_reset() -> None:
    """RFC 9113 5.1: a frame (but PRIORITY) after the peer's RST_STREAM is a stream error of
    type STREAM_CLOSED; h2 answers it so for the streams it saw reset, and must for the
    forgotten ones too, not end the connection."""
    async def t() -> None:
        r = H2Rig()
        r.request(path="/first")
        r.server.data_received(pairs(r, 1))
        assert r.server.premature_resets == 1
        r.down.take()
        block = r.client.encoder.encode([("x-trailer", "1")])
        r.server.data_received(struct.pack(">IBI", len(block) << 8 | 1, 0x4 | 0x1, 3) + block)
        assert not r.down.closed
        assert frame_kinds(r.down.take()) == [(3, 3)]        # RST_STREAM on stream 3
        r.request(path="/after")
        await tick()
        assert [h.target for h in r.heads] == [b"/first", b"/after"]
    run(t)


def test_a_pair_inside_a_push_promise_header_block_goes_to_h2() -> None:
    """A PUSH_PROMISE without END_HEADERS opens a header block as a HEADERS does: the frame
    after it must be its CONTINUATION, and h2 ends the connection at anything else."""
    async def t() -> None:
        r = H2Rig()
        r.request(path="/first")
        r.down.take()
        block = r.client.encoder.encode([(":method", "GET")])
        promise = struct.pack(">IBI", (4 + len(block)) << 8 | 5, 0, 1) + \
            struct.pack(">I", 2) + block
        r.server.data_received(promise + pairs(r, 1))
        assert r.down.closed and r.server.premature_resets == 0
        assert goaway_code(r.down.take()) == h2.errors.ErrorCodes.PROTOCOL_ERROR
    run(t)


def test_a_stream_opened_and_reset_around_a_pair_in_one_read_is_not_dispatched() -> None:
    """Taking a pair out must not split the read's frames before it from the RST_STREAM that
    follows it: a stream opened and reset within one read is never dispatched."""
    async def t() -> None:
        r = H2Rig()
        r.request(path="/first")
        c = r.client
        head = [(":method", "GET"), (":path", "/3"), (":scheme", "https"),
                (":authority", "hello.example.com")]
        c.send_headers(3, head, end_stream=True)
        data = c.data_to_send() + pairs(r, 1)
        c.reset_stream(3, h2.errors.ErrorCodes.CANCEL)
        r.server.data_received(data + c.data_to_send())
        await tick()
        assert [h.target for h in r.heads] == [b"/first"]
        assert (r.server.closed_streams, r.server.premature_resets) == (2, 2)
        assert not r.down.closed
    run(t)


@pytest.mark.parametrize(("block", "dynamic", "nothing"), [
    (b"\x82\x84\x87\xbe", 1, True),       # GET, /, https, the newest dynamic entry
    (b"\x82\x84\x87\xbe", 0, False),      # 62 names no entry in an empty dynamic table
    (b"\x82\x84\x87\xbd", 0, True),       # 61, the static table's last
    (b"\x82\x80", 5, False),                # index 0
    (b"\x82\xff\x00", 200, False),          # a two-byte index: decoded
    (b"\x82\x41\x01a", 5, False),           # a literal that adds to the table
    (b"\x3f\xe1\x1f\x82", 5, False),       # a table size update
    (b"", 5, False),
])
def test_which_blocks_change_nothing(block: bytes, dynamic: int, nothing: bool) -> None:
    assert changes_nothing(block, dynamic) is nothing


def test_on_a_fresh_connection_only_the_first_pair_goes_to_h2() -> None:
    """h2 opens its connection state with the first stream; the pairs after it in the same
    read are forgotten, not handed to h2 with it."""
    async def t() -> None:
        r = H2Rig()
        fed = spy(r.server)
        data = pairs(r, 50)
        first = ends(data, 0x3)[0]
        r.server.data_received(data)
        assert fed == [data[:first]]
        assert (r.server.closed_streams, r.server.premature_resets) == (50, 50)
        assert r.heads == [] and not r.down.closed
    run(t)


_HDR = struct.Struct(">IBI")


@pytest.mark.parametrize(("after", "want"), [
    (b"", "other"),                                             # the read ends with HEADERS
    (_HDR.pack(4 << 8 | 3, 0, 7)[:5], "wait"),                 # a frame head not yet whole
    (_HDR.pack(4 << 8 | 3, 0, 7) + b"\x00\x00", "wait"),        # its RST_STREAM, in part
    (_HDR.pack(4 << 8 | 3, 0, 7) + b"\x00\x00\x00\x08", "pair"),
    (_HDR.pack(4 << 8 | 3, 0, 0x80000007) + b"\x00" * 4, "pair"),  # the R bit is ignored
    (_HDR.pack(4 << 8 | 3, 0, 9) + b"\x00" * 4, "other"),     # another stream's reset
    (_HDR.pack(8 << 8 | 6, 0, 0) + b"\x00" * 8, "other"),     # a PING
    (_HDR.pack(4 << 8 | 3, 0, 9)[:9], "other"),                # another stream's, in part
])
def test_what_follows_a_headers(after: bytes, want: str) -> None:
    head = b"H" * 20                           # a whole HEADERS frame of stream 7, say
    assert reset_after(head + after, len(head), 7) == want
