"""SPDY/3.1 codec (core/apiserver/spdy.py): round trips, any slicing, malformed frames, limits."""

from __future__ import annotations

import struct
import zlib

import pytest

from skiff.core.apiserver import spdy

FRAMES: list[spdy.Frame] = [
    spdy.SynStream(1, {"streamtype": ["error"], "port": ["8080"], "requestid": ["0"]}),
    spdy.SynStream(3, {"streamtype": ["data"], "port": ["8080"], "requestid": ["0"]}, fin=True,
                   unidirectional=True, associated_to=1, priority=7),
    spdy.SynReply(1, {}),
    spdy.SynReply(3, {"multi": ["a", "b"]}, fin=True),
    spdy.HeadersFrame(3, {"x": ["y"]}),
    spdy.Data(3, b"hello"),
    spdy.Data(3, b"", fin=True),
    spdy.Data(5, bytes(range(256)) * 100),
    spdy.RstStream(3, spdy.CANCEL),
    spdy.Settings([(0, 4, 1000), (1, 7, 65536)], clear=True),
    spdy.Ping(1),
    spdy.GoAway(7, spdy.GOAWAY_PROTOCOL_ERROR),
    spdy.WindowUpdate(3, 4096),
]


def test_dictionary_is_the_spdy3_one() -> None:
    # 1423 bytes; zlib's dictionary id (Adler-32) is what a peer's compressor announces
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == 3821447106
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b",*,enq=0.")


def test_round_trip_every_frame_type() -> None:
    # one encoder for the whole list: header blocks share one compression context
    enc = spdy.Encoder()
    wire = b"".join(enc.encode(f) for f in FRAMES)
    assert spdy.Decoder().feed(wire) == FRAMES


@pytest.mark.parametrize("size", [1, 2, 3, 7, 8, 9, 100])
def test_any_slicing_gives_the_same_frames(size: int) -> None:
    enc = spdy.Encoder()
    wire = b"".join(enc.encode(f) for f in FRAMES)
    dec = spdy.Decoder()
    got: list[spdy.Frame] = []
    for i in range(0, len(wire), size):
        got += dec.feed(wire[i:i + size])
    assert got == FRAMES


def test_header_blocks_use_the_dictionary_and_one_context() -> None:
    # spdystream (Go) compresses with the dictionary and a sync flush per block; so do we
    comp = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zdict=spdy.DICTIONARY)
    frames = b""
    for sid in (1, 3):
        block = spdy.encode_header_block({"streamtype": ["data"], "port": ["80"]})
        body = comp.compress(block) + comp.flush(zlib.Z_SYNC_FLUSH)
        payload = struct.pack(">IIBB", sid, 0, 0, 0) + body
        frames += struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, len(payload)) + payload
    got = spdy.Decoder().feed(frames)
    assert [f.stream_id for f in got if isinstance(f, spdy.SynStream)] == [1, 3]
    assert spdy.get_header(got[1].headers, "streamType") == "data"   # type: ignore[union-attr]


def _control(ftype: int, payload: bytes, version: int = 3, flags: int = 0) -> bytes:
    return struct.pack(">HHI", 0x8000 | version, ftype, (flags << 24) | len(payload)) + payload


MALFORMED = [
    ("data on stream 0", struct.pack(">II", 0, 3) + b"abc"),
    ("version 2", _control(spdy.PING, b"\x00\x00\x00\x01", version=2)),
    ("ping too short", _control(spdy.PING, b"\x00\x01")),
    ("rst too long", _control(spdy.RST_STREAM, b"\x00" * 12)),
    ("rst stream 0", _control(spdy.RST_STREAM, struct.pack(">II", 0, 5))),
    ("rst status 0", _control(spdy.RST_STREAM, struct.pack(">II", 1, 0))),
    ("settings count lies", _control(spdy.SETTINGS, struct.pack(">I", 5) + b"\x00" * 8)),
    ("goaway short", _control(spdy.GOAWAY, b"\x00" * 4)),
    ("syn_stream short", _control(spdy.SYN_STREAM, b"\x00" * 6)),
    ("syn_stream stream 0", _control(spdy.SYN_STREAM, b"\x00" * 10)),
    ("headers not zlib", _control(spdy.SYN_STREAM, struct.pack(">IIBB", 1, 0, 0, 0) + b"junk")),
]


@pytest.mark.parametrize("name,wire", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_frames_raise(name: str, wire: bytes) -> None:
    dec = spdy.Decoder()
    with pytest.raises(spdy.ProtocolError):
        dec.feed(wire)
    with pytest.raises(spdy.ProtocolError):    # a failed decoder stays failed
        dec.feed(spdy.Encoder().encode(spdy.Ping(1)))


def _syn_with_block(block: bytes) -> bytes:
    comp = zlib.compressobj(zdict=spdy.DICTIONARY)
    body = comp.compress(block) + comp.flush(zlib.Z_SYNC_FLUSH)
    return _control(spdy.SYN_STREAM, struct.pack(">IIBB", 1, 0, 0, 0) + body)


@pytest.mark.parametrize("block", [
    b"\x00\x00",                                              # shorter than the count
    struct.pack(">I", 1000),                                  # count larger than possible
    struct.pack(">II", 1, 50) + b"name",                      # name runs past the block
    struct.pack(">II", 1, 0) + struct.pack(">I", 0),          # empty name
    struct.pack(">II", 1, 4) + b"Port" + struct.pack(">I", 1) + b"1",      # upper case
    struct.pack(">II", 2, 1) + b"a" + struct.pack(">I", 0)
    + struct.pack(">I", 1) + b"a" + struct.pack(">I", 0),     # duplicate name
    struct.pack(">II", 1, 1) + b"a" + struct.pack(">I", 0) + b"extra",     # trailing bytes
], ids=["short", "count", "overrun", "empty-name", "upper", "duplicate", "trailing"])
def test_bad_header_blocks_raise(block: bytes) -> None:
    with pytest.raises(spdy.ProtocolError):
        spdy.Decoder().feed(_syn_with_block(block))


def test_frame_size_limit_is_checked_before_buffering() -> None:
    dec = spdy.Decoder(max_frame=1024)
    # only the 8-byte header has arrived: the claimed length alone is refused
    with pytest.raises(spdy.ProtocolError, match="exceeds the limit"):
        dec.feed(struct.pack(">II", 1, 1025))
    ok = spdy.Decoder(max_frame=1024)
    assert ok.feed(spdy.Encoder().encode(spdy.Data(1, b"x" * 1024))) == [spdy.Data(1, b"x" * 1024)]


def test_decompression_bomb_is_refused() -> None:
    block = spdy.encode_header_block({"a": ["x" * 200_000]})
    dec = spdy.Decoder(max_header_block=64 << 10)
    with pytest.raises(spdy.ProtocolError, match="decompressed"):
        dec.feed(_syn_with_block(block))


def test_unknown_control_frames_are_ignored_and_incomplete_frames_wait() -> None:
    dec = spdy.Decoder()
    ping = spdy.Encoder().encode(spdy.Ping(3))
    assert dec.feed(_control(0x42, b"whatever") + ping[:5]) == [spdy.UnknownControl(0x42)]
    assert dec.feed(ping[5:]) == [spdy.Ping(3)]
