"""SPDY/3.1 framing, sans-I/O: bytes in, frames out; frames in, bytes out.

`kubectl port-forward` (client-go's portforward package over moby/spdystream)
speaks SPDY/3.1, either tunneled in WebSocket binary messages (the
`SPDY/3.1+portforward.k8s.io` subprotocol, tried first since 1.31) or on a
plain connection after an `Upgrade: SPDY/3.1` (the fallback). Both carry the
same byte stream, cut anywhere, so Decoder.feed() accepts any slicing and
returns whole frames. Header blocks are zlib streams primed with the SPDY/3
dictionary, one compression context per direction for the whole connection
(each block ends with a sync flush). portforward.py drives this codec; the
API server's shell (portforward_shell.py) moves the bytes.

Written by hand: the one SPDY/3 package on PyPI (spdy-py 0.2.0, one release in
2021, LGPL, untyped) is a small client-side connection object, not a
bounded sans-I/O codec. Every limit here is explicit: the size of any frame,
of a decompressed header block and of the bytes buffered while a frame is
incomplete; a violation raises ProtocolError, which ends that connection only.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3

# Control frame types (SPDY/3 draft, section 2.6).
SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

# RST_STREAM status codes.
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
CANCEL = 5
INTERNAL_ERROR = 6
FLOW_CONTROL_ERROR = 7
FRAME_TOO_LARGE = 11

# GOAWAY status codes.
GOAWAY_OK = 0
GOAWAY_PROTOCOL_ERROR = 1
GOAWAY_INTERNAL_ERROR = 2

MAX_STREAM_ID = 0x7FFFFFFF
DEFAULT_MAX_FRAME = 1 << 20          # client-go copies in 32 KiB pieces; 1 MiB is ample
DEFAULT_MAX_HEADER_BLOCK = 64 << 10  # decompressed; portforward headers are ~60 bytes

Headers = dict[str, list[str]]

# The SPDY/3 header compression dictionary (draft 3, 2.6.10.1): length-prefixed
# words, then a raw tail. Built from its parts rather than pasted as 1423 bytes.
_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base "
    "content-encoding content-language content-length content-location content-md5 "
    "content-range content-type date etag expect expires from host if-match "
    "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
    "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
    "server te trailer transfer-encoding upgrade user-agent vary via warning www-authenticate "
    "method get status").split() + ["200 OK", "version", "HTTP/1.1", "url", "public",
                                    "set-cookie", "keep-alive", "origin"]
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
DICTIONARY = b"".join(len(w).to_bytes(4, "big") + w.encode() for w in _WORDS) + _TAIL.encode()


class ProtocolError(Exception):
    """The peer broke SPDY framing; the connection must end (GOAWAY PROTOCOL_ERROR)."""


@dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes
    fin: bool = False


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: Headers
    fin: bool = False
    unidirectional: bool = False
    associated_to: int = 0
    priority: int = 0


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Settings:
    entries: list[tuple[int, int, int]] = field(default_factory=list)   # (flags, id, value)
    clear: bool = False


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_good_stream_id: int
    status: int = GOAWAY_OK


@dataclass(frozen=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True)
class WindowUpdate:
    stream_id: int
    delta: int


@dataclass(frozen=True)
class UnknownControl:
    """A control frame of a type SPDY/3 does not define; the draft says to ignore it."""
    frame_type: int


Frame = (Data | SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame
         | WindowUpdate | UnknownControl)


def get_header(headers: Headers, name: str) -> str:
    """The first value of a header (names are lower case on the wire), or ""."""
    values = headers.get(name.lower()) or [""]
    return values[0]


# ---- header blocks ---------------------------------------------------------------------

def encode_header_block(headers: Headers) -> bytes:
    out = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        n, v = name.lower().encode(), b"\x00".join(x.encode() for x in values)
        out.append(struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v)
    return b"".join(out)


def decode_header_block(block: bytes) -> Headers:
    """Parse a decompressed name/value block; every length is checked against the block."""
    if len(block) < 4:
        raise ProtocolError("header block shorter than its count")
    (count,) = struct.unpack_from(">I", block, 0)
    if count > len(block) // 8:     # each pair needs at least two 4-byte lengths
        raise ProtocolError(f"header block claims {count} headers in {len(block)} bytes")
    pos = 4
    headers: Headers = {}

    def take() -> bytes:
        nonlocal pos
        if pos + 4 > len(block):
            raise ProtocolError("header block truncated")
        (length,) = struct.unpack_from(">I", block, pos)
        pos += 4
        if length > len(block) - pos:
            raise ProtocolError("header length runs past the block")
        raw = block[pos:pos + length]
        pos += length
        return raw

    for _ in range(count):
        name, value = take(), take()
        if not name:
            raise ProtocolError("empty header name")
        try:
            key, text = name.decode("ascii"), value.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("header name or value is not text") from None
        if key != key.lower():
            raise ProtocolError(f"header name {key!r} is not lower case")
        if key in headers:
            raise ProtocolError(f"duplicate header {key!r}")
        headers[key] = text.split("\x00")
    if pos != len(block):
        raise ProtocolError("trailing bytes after the header block")
    return headers


# ---- decoding --------------------------------------------------------------------------

class Decoder:
    """Incremental frame parser for one direction of one connection.

    feed() buffers at most one incomplete frame (bounded by max_frame) and
    returns every complete frame. After a ProtocolError the decoder is dead.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME,
                 max_header_block: int = DEFAULT_MAX_HEADER_BLOCK) -> None:
        self.max_frame = max_frame
        self.max_header_block = max_header_block
        self._buf = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._dead = False

    def feed(self, data: bytes) -> list[Frame]:
        if self._dead:
            raise ProtocolError("connection already failed")
        self._buf += data
        frames: list[Frame] = []
        try:
            while len(self._buf) >= 8:
                word, flags_len = struct.unpack_from(">II", self._buf, 0)
                flags, length = flags_len >> 24, flags_len & 0xFFFFFF
                if length > self.max_frame:
                    raise ProtocolError(f"frame of {length} bytes exceeds the limit of "
                                        f"{self.max_frame}")
                if len(self._buf) < 8 + length:
                    break
                payload = bytes(self._buf[8:8 + length])
                del self._buf[:8 + length]
                if word & 0x80000000:
                    frames.append(self._control((word >> 16) & 0x7FFF, word & 0xFFFF, flags,
                                                payload))
                else:
                    sid = word & 0x7FFFFFFF
                    if sid == 0:
                        raise ProtocolError("DATA frame on stream 0")
                    frames.append(Data(sid, payload, bool(flags & FLAG_FIN)))
        except ProtocolError:
            self._dead = True
            self._buf.clear()
            raise
        return frames

    def _headers(self, compressed: bytes) -> Headers:
        try:
            block = self._inflate.decompress(compressed, self.max_header_block + 1)
        except zlib.error as e:
            raise ProtocolError(f"header block does not decompress: {e}") from None
        if len(block) > self.max_header_block or self._inflate.unconsumed_tail:
            raise ProtocolError(f"header block exceeds {self.max_header_block} bytes "
                                "decompressed")
        return decode_header_block(block)

    def _control(self, version: int, ftype: int, flags: int, p: bytes) -> Frame:
        if version != VERSION:
            raise ProtocolError(f"unsupported SPDY version {version}")

        def need(n: int, exact: bool = True) -> None:
            if len(p) < n or (exact and len(p) != n):
                raise ProtocolError(f"control frame type {ftype} has a bad length {len(p)}")

        if ftype == SYN_STREAM:
            need(10, exact=False)
            sid, assoc = struct.unpack_from(">II", p, 0)
            sid &= MAX_STREAM_ID
            if sid == 0:
                raise ProtocolError("SYN_STREAM for stream 0")
            return SynStream(sid, self._headers(p[10:]), bool(flags & FLAG_FIN),
                             bool(flags & FLAG_UNIDIRECTIONAL), assoc & MAX_STREAM_ID, p[8] >> 5)
        if ftype in (SYN_REPLY, HEADERS):
            need(4, exact=False)
            sid = struct.unpack_from(">I", p, 0)[0] & MAX_STREAM_ID
            if sid == 0:
                raise ProtocolError(f"control frame type {ftype} for stream 0")
            hs = self._headers(p[4:])
            fin = bool(flags & FLAG_FIN)
            return SynReply(sid, hs, fin) if ftype == SYN_REPLY else HeadersFrame(sid, hs, fin)
        if ftype == RST_STREAM:
            need(8)
            sid, status = struct.unpack(">II", p)
            sid &= MAX_STREAM_ID
            if sid == 0 or status == 0:
                raise ProtocolError("RST_STREAM with stream 0 or status 0")
            return RstStream(sid, status)
        if ftype == SETTINGS:
            need(4, exact=False)
            (n,) = struct.unpack_from(">I", p, 0)
            if len(p) != 4 + 8 * n:
                raise ProtocolError(f"SETTINGS claims {n} entries in {len(p)} bytes")
            entries = []
            for i in range(n):
                fid, value = struct.unpack_from(">II", p, 4 + 8 * i)
                entries.append((fid >> 24, fid & 0xFFFFFF, value))
            return Settings(entries, bool(flags & 0x01))
        if ftype == PING:
            need(4)
            return Ping(struct.unpack(">I", p)[0])
        if ftype == GOAWAY:
            need(8)
            last, status = struct.unpack(">II", p)
            return GoAway(last & MAX_STREAM_ID, status)
        if ftype == WINDOW_UPDATE:
            need(8)
            sid, delta = struct.unpack(">II", p)
            return WindowUpdate(sid & MAX_STREAM_ID, delta & 0x7FFFFFFF)
        return UnknownControl(ftype)


# ---- encoding --------------------------------------------------------------------------

class Encoder:
    """Frames to bytes for one direction of one connection (owns its compression context)."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zdict=DICTIONARY)

    def _compress(self, headers: Headers) -> bytes:
        block = encode_header_block(headers)
        return self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    @staticmethod
    def _control(ftype: int, flags: int, payload: bytes) -> bytes:
        if len(payload) > 0xFFFFFF:
            raise ValueError("control frame too large")
        return struct.pack(">HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(payload)) + payload

    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, Data):
            if len(frame.data) > 0xFFFFFF:
                raise ValueError("DATA frame too large")
            return struct.pack(">II", frame.stream_id & MAX_STREAM_ID,
                               ((FLAG_FIN if frame.fin else 0) << 24) | len(frame.data)) + frame.data
        if isinstance(frame, SynStream):
            flags = (FLAG_FIN if frame.fin else 0) | (FLAG_UNIDIRECTIONAL if frame.unidirectional
                                                      else 0)
            head = struct.pack(">IIBB", frame.stream_id, frame.associated_to,
                               (frame.priority & 7) << 5, 0)
            return self._control(SYN_STREAM, flags, head + self._compress(frame.headers))
        if isinstance(frame, SynReply | HeadersFrame):
            ftype = SYN_REPLY if isinstance(frame, SynReply) else HEADERS
            return self._control(ftype, FLAG_FIN if frame.fin else 0,
                                 struct.pack(">I", frame.stream_id) + self._compress(frame.headers))
        if isinstance(frame, RstStream):
            return self._control(RST_STREAM, 0, struct.pack(">II", frame.stream_id, frame.status))
        if isinstance(frame, Settings):
            body = struct.pack(">I", len(frame.entries)) + b"".join(
                struct.pack(">II", (f << 24) | i, v) for f, i, v in frame.entries)
            return self._control(SETTINGS, 0x01 if frame.clear else 0, body)
        if isinstance(frame, Ping):
            return self._control(PING, 0, struct.pack(">I", frame.ping_id))
        if isinstance(frame, GoAway):
            return self._control(GOAWAY, 0, struct.pack(">II", frame.last_good_stream_id,
                                                        frame.status))
        if isinstance(frame, WindowUpdate):
            return self._control(WINDOW_UPDATE, 0, struct.pack(">II", frame.stream_id, frame.delta))
        raise TypeError(f"cannot encode {frame!r}")
