"""Container log records in the kubelet's CRI format: pure encoding and decoding.

Each record is one line of the log file:

    2016-10-06T00:17:09.669794202Z stdout F text

(RFC3339Nano, fixed width, UTC; the stream; F for a full line, P for a part
of a longer one; the text). Framer (used by logs.LogWriter, the writing
shell) turns the bytes a container writes into records; render() and the
helpers below (used by logread.py, the reading shell behind `kubectl logs`)
turn records back into what the user sees, with or without timestamps.
Nothing here reads a clock or a file: times come in as epoch nanoseconds.
"""

from __future__ import annotations

import re
import time
from datetime import datetime

STDOUT = b"stdout"
FULL = b"F"
PARTIAL = b"P"
MAX_LINE = 16 * 1024          # containerd's cut for a line with no newline yet
TS_WIDTH = len(b"2016-10-06T00:17:09.669794202Z")

# A record's prefix: timestamp, stream and tag; a P record's text and newline are taken with
# it, so that removing the match joins a partial line to its continuation.
_PREFIX = re.compile(rb"^[^ \n]+ [^ \n]+ (?:F |P ([^\n]*)\n)", re.MULTILINE)
_FULL_PREFIX = re.compile(rb"^[^ \n]+ [^ \n]+ F ", re.MULTILINE)


class Stamper:
    """Fixed-width RFC3339Nano stamps; the date part is formatted once per second."""

    def __init__(self) -> None:
        self._sec = -1
        self._head = b""

    def __call__(self, ns: int) -> bytes:
        sec, frac = divmod(ns, 1_000_000_000)
        if sec != self._sec:
            self._sec = sec
            self._head = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec)).encode()
        return self._head + b"%09dZ" % frac


def parse_timestamp(raw: bytes | str) -> int | None:
    """Epoch nanoseconds of an RFC3339(Nano) time (any fraction width, Z or an offset)."""
    s = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", s.strip())
    if m is None:
        return None
    try:
        base = datetime.fromisoformat(m.group(1) + (
            "+00:00" if m.group(3) == "Z" else m.group(3)))
    except ValueError:
        return None
    frac = int((m.group(2) or "0").ljust(9, "0"))
    return int(base.timestamp()) * 1_000_000_000 + frac


class Framer:
    """Bytes from a container's pipe in, CRI records out.

    A line is written when its newline arrives; a tail with no newline yet is
    held (at most MAX_LINE bytes: beyond that it goes out as P records) and
    written as a full line at the end of the stream, as containerd does. The
    hot path is two bytes.replace-sized copies per read, whatever the number
    of lines in it.
    """

    def __init__(self, stream: bytes = STDOUT, max_line: int = MAX_LINE) -> None:
        self.stream = stream
        self.max_line = max_line
        self.pending = b""

    def feed(self, data: bytes, stamp: bytes) -> bytes:
        if self.pending:
            data, self.pending = self.pending + data, b""
        cut = data.rfind(b"\n") + 1
        out = b""
        if cut:
            prefix = b"%s %s F " % (stamp, self.stream)
            out = prefix + data[:cut - 1].replace(b"\n", b"\n" + prefix) + b"\n"
        rest = data[cut:]
        while len(rest) > self.max_line:
            out += b"%s %s P %s\n" % (stamp, self.stream, rest[:self.max_line])
            rest = rest[self.max_line:]
        self.pending = rest
        return out

    def flush(self, stamp: bytes) -> bytes:
        """The held tail as a full line (the stream has ended)."""
        rest, self.pending = self.pending, b""
        return b"%s %s F %s\n" % (stamp, self.stream, rest) if rest else b""


def message(text: str, stamp: bytes, stream: bytes = STDOUT) -> bytes:
    """A message of skiff's own (a StartError) as records."""
    f = Framer(stream)
    data = text.encode() if text.endswith("\n") else (text + "\n").encode()
    return f.feed(data, stamp) + f.flush(stamp)


def split_at_room(out: bytes, room: int) -> tuple[bytes, bytes]:
    """What fits in `room` bytes, cut after a whole record, and the rest.

    With no whole record fitting, the head is empty (the caller rotates first);
    a single record longer than a whole file is taken as it is.
    """
    if len(out) <= room:
        return out, b""
    cut = out.rfind(b"\n", 0, max(room, 0)) + 1
    return out[:cut], out[cut:]


# ---- reading ------------------------------------------------------------------------------

def record_time(record: bytes) -> int | None:
    """The epoch ns of a record (or of the first one in `record`)."""
    return parse_timestamp(record[:record.find(b" ")]) if b" " in record[:64] else None


def record_tag(record: bytes) -> bytes:
    """F or P (b"" for a line that is not a record)."""
    i = record.find(b" ")
    j = record.find(b" ", i + 1) if i >= 0 else -1
    return record[j + 1:j + 2] if j >= 0 else b""


class Renderer:
    """Whole records in, what `kubectl logs` prints out (with timestamps: "<RFC3339Nano> text").

    A partial line's parts are joined; with timestamps the line carries its
    first part's time, as the kubelet prints it. State (inside a partial
    line or not) carries over from one call to the next.
    """

    def __init__(self, timestamps: bool = False) -> None:
        self.timestamps = timestamps
        self.in_partial = False

    def render(self, records: bytes) -> bytes:
        if not records:
            return b""
        if not self.timestamps:
            # one C-level pass; the state only matters for timestamps
            last = records[records.rfind(b"\n", 0, len(records) - 1) + 1:]
            self.in_partial = record_tag(last) == PARTIAL
            if b" P " not in records:
                return _FULL_PREFIX.sub(b"", records)      # about twice as fast
            return _PREFIX.sub(rb"\1", records)
        parts: list[bytes] = []
        for line in records.split(b"\n")[:-1]:
            i = line.find(b" ")
            j = line.find(b" ", i + 1) if i >= 0 else -1
            tag = line[j + 1:j + 2] if j >= 0 else b""
            if tag not in (FULL, PARTIAL) or line[j + 2:j + 3] != b" ":
                parts.append(line + b"\n")          # not a record: as it is
                self.in_partial = False
                continue
            text = line[j + 3:]
            if not self.in_partial:
                parts.append(line[:i + 1])
            parts.append(text if tag == PARTIAL else text + b"\n")
            self.in_partial = tag == PARTIAL
        return b"".join(parts)
