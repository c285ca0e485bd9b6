"""The port-forward protocol (portforward.k8s.io) over SPDY/3.1, sans-I/O.

What kubelet's server/portforward/httpstream.go does, as a state machine:
for each forwarded TCP connection kubectl opens two SPDY streams carrying
the headers streamType ("error" or "data"), port and requestID. Every
SYN_STREAM is answered at once with a SYN_REPLY (client-go waits for it);
when both streams of a request are open the shell is told to dial the pod's
port (Connect). Bytes then go both ways on the data stream; the client's FIN
half-closes the pod socket (ShutdownWrite); the pod's EOF ends the error
stream and then the data stream (with a message on the error stream first
when dialling or copying failed, which kubectl prints as "an error occurred
forwarding L -> R: ..." before it drops the connection). A RST_STREAM or a
GOAWAY from the client drops the pod sockets concerned.

Session.receive() takes the client's bytes, the shell reports the pod side
(connected, failed, from_pod, pod_closed), and each call returns Actions:
bytes to send and socket operations. Bounded: open streams per connection,
bytes buffered for a request whose pod socket is not connected yet, frame
and header sizes (spdy.py). Limits broken by one stream reset that stream;
malformed framing raises spdy.ProtocolError for the shell to log, answer
with GOAWAY and close. target_port() maps a requested pod port to the
loopback port the node runtime gave it (runtime/ports.py annotations).
Neighbours: spdy.py (codec), portforward_shell.py (sockets), server.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from skiff.core.apiserver import spdy
from skiff.node import ports

PROTOCOL = "portforward.k8s.io"
TUNNEL_PROTOCOL = "SPDY/3.1+" + PROTOCOL          # the WebSocket subprotocol (1.31+)

DEFAULT_MAX_STREAMS = 256                 # two per forwarded connection
DEFAULT_MAX_PENDING = 1 << 20             # bytes held per request before its pod socket is up
POD_CHUNK = 32 << 10                      # DATA frame payloads we send, as client-go's io.Copy


# ---- actions for the shell --------------------------------------------------------------

@dataclass(frozen=True)
class Send:
    data: bytes


@dataclass(frozen=True)
class Connect:
    request_id: str
    port: int


@dataclass(frozen=True)
class Forward:
    request_id: str
    data: bytes


@dataclass(frozen=True)
class ShutdownWrite:
    request_id: str


@dataclass(frozen=True)
class Drop:
    request_id: str


@dataclass(frozen=True)
class Close:
    """The client said GOAWAY: end the connection."""
    reason: str


Action = Send | Connect | Forward | ShutdownWrite | Drop | Close


# ---- pure helpers -----------------------------------------------------------------------

def parse_port(raw: str) -> int | None:
    """A port header's value as kubelet accepts it: 1..65535."""
    if not raw.isdigit():
        return None
    port = int(raw)
    return port if 0 < port < 65536 else None


def target_port(pod: dict[str, Any], port: int) -> int | None:
    """The loopback port to dial for a pod port, or None when the pod has nothing there.

    A declared containerPort has the host port the runtime recorded on the pod.
    A pod that declares no port has one port only ($PORT), which every
    forwarded port reaches, as `kubectl port-forward pod/x 8080` reaches an app
    on 8080 in a real pod. A port a pod with declared ports did not declare
    reaches nothing (connection refused): never whatever else on the host owns
    that number.
    """
    mapping = ports.recorded(pod)
    if str(port) in mapping:
        return mapping[str(port)]
    if set(mapping) == {ports.DEFAULT_KEY}:
        return mapping[ports.DEFAULT_KEY]
    return None


# ---- the session ------------------------------------------------------------------------

@dataclass
class _Pair:
    request_id: str
    port_raw: str
    error_id: int = 0
    data_id: int = 0
    connecting: bool = False
    connected: bool = False
    client_fin: bool = False          # the client will send no more on the data stream
    finished: bool = False            # we ended both streams (pod closed or failed)
    pending: bytearray = field(default_factory=bytearray)
    opened_at: float = 0.0


@dataclass
class _Stream:
    request_id: str
    kind: str                 # "error" | "data"
    remote_closed: bool = False
    local_closed: bool = False


class Session:
    """One SPDY connection's port-forward state (server side)."""

    def __init__(self, *, max_streams: int = DEFAULT_MAX_STREAMS,
                 max_pending: int = DEFAULT_MAX_PENDING,
                 max_frame: int = spdy.DEFAULT_MAX_FRAME) -> None:
        self.max_streams = max_streams
        self.max_pending = max_pending
        self.decoder = spdy.Decoder(max_frame=max_frame)
        self.encoder = spdy.Encoder()
        self.streams: dict[int, _Stream] = {}
        self.pairs: dict[str, _Pair] = {}
        self.last_stream_id = 0
        self.goaway_sent = False

    # -- from the client ------------------------------------------------------------------

    def receive(self, data: bytes, now: float = 0.0) -> list[Action]:
        """Client bytes in (any slicing). Raises spdy.ProtocolError on malformed framing."""
        out: list[Action] = []
        for frame in self.decoder.feed(data):
            out += self._frame(frame, now)
        return _merge(out)

    def _send(self, *frames: spdy.Frame) -> Send:
        return Send(b"".join(self.encoder.encode(f) for f in frames))

    def _frame(self, f: spdy.Frame, now: float) -> list[Action]:
        if isinstance(f, spdy.SynStream):
            return self._syn_stream(f, now)
        if isinstance(f, spdy.Data):
            return self._data(f)
        if isinstance(f, spdy.RstStream):
            return self._rst(f.stream_id)
        if isinstance(f, spdy.Ping):
            # client pings carry odd ids; an even one would answer a ping we never sent
            return [self._send(f)] if f.ping_id % 2 == 1 else []
        if isinstance(f, spdy.GoAway):
            return [*(Drop(rid) for rid in list(self.pairs)), Close("client sent GOAWAY")]
        if isinstance(f, spdy.SynReply):
            raise spdy.ProtocolError(f"SYN_REPLY from the client for stream {f.stream_id}")
        if isinstance(f, spdy.HeadersFrame | spdy.WindowUpdate):
            self._known(f.stream_id)
            return []
        return []       # SETTINGS, unknown control frames: nothing to do

    def _known(self, sid: int) -> bool:
        """Whether sid is a live stream; a stream id never opened is a session error."""
        if sid in self.streams:
            return True
        if sid > self.last_stream_id:
            raise spdy.ProtocolError(f"frame for stream {sid}, which was never opened")
        return False         # closed or reset earlier: late frames are dropped

    def _syn_stream(self, f: spdy.SynStream, now: float) -> list[Action]:
        sid = f.stream_id
        if sid % 2 == 0:
            raise spdy.ProtocolError(f"client opened even stream id {sid}")
        if sid <= self.last_stream_id:
            raise spdy.ProtocolError(f"stream id {sid} is not above {self.last_stream_id}")
        self.last_stream_id = sid
        if len(self.streams) >= self.max_streams:
            return [self._send(spdy.RstStream(sid, spdy.REFUSED_STREAM))]
        kind = spdy.get_header(f.headers, "streamType")
        if kind not in ("error", "data"):
            # kubelet rejects the stream: a SYN_REPLY that also ends it
            return [self._send(spdy.SynReply(sid, {}, fin=True))]
        rid = spdy.get_header(f.headers, "requestID")
        if not rid:
            # clients before request ids: error and data streams are consecutive odd ids
            rid = str(sid if kind == "error" else sid - 2)
        pair = self.pairs.get(rid)
        if pair is None:
            pair = self.pairs[rid] = _Pair(rid, spdy.get_header(f.headers, "port"), opened_at=now)
        if (pair.error_id if kind == "error" else pair.data_id) or pair.finished:
            return [self._send(spdy.SynReply(sid, {}, fin=True))]     # a second one: refuse
        if kind == "error":
            pair.error_id = sid
        else:
            pair.data_id = sid
        self.streams[sid] = _Stream(rid, kind, remote_closed=f.fin)
        out: list[Action] = [self._send(spdy.SynReply(sid, {}))]
        if kind == "data" and f.fin:
            pair.client_fin = True
        if pair.error_id and pair.data_id and not pair.connecting:
            pair.connecting = True
            port = parse_port(pair.port_raw)
            if port is None:
                out += self._finish(pair, f'invalid port "{pair.port_raw}": the port header '
                                          "must be a number from 1 to 65535")
            else:
                out.append(Connect(rid, port))
        return out

    def _data(self, f: spdy.Data) -> list[Action]:
        if not self._known(f.stream_id):
            return []
        st = self.streams[f.stream_id]
        if st.remote_closed:
            # data after FIN: a stream error (STREAM_ALREADY_CLOSED), not a session one
            return self._reset(st, f.stream_id, 9)
        out: list[Action] = []
        pair = self.pairs.get(st.request_id)
        if st.kind == "data" and pair is not None and f.data and not pair.finished:
            if pair.connected:
                out.append(Forward(pair.request_id, f.data))
            elif len(pair.pending) + len(f.data) > self.max_pending:
                return self._reset(st, f.stream_id, spdy.FLOW_CONTROL_ERROR)
            else:
                pair.pending += f.data
        if f.fin:
            st.remote_closed = True
            if st.kind == "data" and pair is not None:
                pair.client_fin = True
                if pair.connected and not pair.finished:
                    out.append(ShutdownWrite(pair.request_id))
            self._forget_stream(f.stream_id)
        return out

    def _reset(self, st: _Stream, sid: int, status: int) -> list[Action]:
        """Reset one stream (ours to say) and drop its request's pod socket."""
        out: list[Action] = [self._send(spdy.RstStream(sid, status))]
        st.remote_closed = st.local_closed = True
        self._forget_stream(sid)
        out += self._rst_pair(st.request_id)
        return out

    def _rst(self, sid: int) -> list[Action]:
        if not self._known(sid):
            return []
        st = self.streams[sid]
        st.remote_closed = st.local_closed = True
        self._forget_stream(sid)
        if st.kind == "error":
            return []     # the client stopped listening for errors; the data may still flow
        return self._rst_pair(st.request_id)

    def _rst_pair(self, rid: str) -> list[Action]:
        """The data stream is gone: drop the pod socket; end the error stream kubectl waits on."""
        pair = self.pairs.get(rid)
        if pair is None:
            return []
        out: list[Action] = []
        if pair.connecting and not pair.finished:
            out.append(Drop(rid))
        pair.finished = True
        err = self.streams.get(pair.error_id)
        if err is not None and not err.local_closed:
            err.local_closed = True
            out.append(self._send(spdy.Data(pair.error_id, b"", fin=True)))
            self._forget_stream(pair.error_id)
        data = self.streams.get(pair.data_id)
        if data is not None and not data.local_closed:
            # the data stream's other half: end it too, so nothing of this request is left
            data.local_closed = True
            out.append(self._send(spdy.Data(pair.data_id, b"", fin=True)))
            self._forget_stream(pair.data_id)
        self._forget_pair(rid)
        return out

    def _forget_stream(self, sid: int) -> None:
        st = self.streams.get(sid)
        if st is not None and st.remote_closed and st.local_closed:
            del self.streams[sid]
            self._forget_pair(st.request_id)

    def _forget_pair(self, rid: str) -> None:
        pair = self.pairs.get(rid)
        if pair is not None and pair.finished and pair.error_id not in self.streams \
                and pair.data_id not in self.streams:
            del self.pairs[rid]

    # -- from the pod side ---------------------------------------------------------------

    def connected(self, rid: str) -> list[Action]:
        """The pod socket is up: the bytes held so far go first, then a pending FIN."""
        pair = self.pairs.get(rid)
        if pair is None or pair.finished:
            return [Drop(rid)]
        pair.connected = True
        out: list[Action] = []
        if pair.pending:
            out.append(Forward(rid, bytes(pair.pending)))
            pair.pending.clear()
        if pair.client_fin:
            out.append(ShutdownWrite(rid))
        return out

    def from_pod(self, rid: str, data: bytes) -> list[Action]:
        pair = self.pairs.get(rid)
        st = self.streams.get(pair.data_id) if pair is not None else None
        if pair is None or pair.finished or st is None or st.local_closed:
            return []
        view = memoryview(data)
        return [self._send(*(spdy.Data(pair.data_id, bytes(view[i:i + POD_CHUNK]))
                             for i in range(0, len(view), POD_CHUNK)))] if data else []

    def failed(self, rid: str, message: str) -> list[Action]:
        """Dialling or copying failed: the message goes on the error stream, then both end."""
        pair = self.pairs.get(rid)
        if pair is None or pair.finished:
            return []
        return self._finish(pair, message)

    def pod_closed(self, rid: str) -> list[Action]:
        """The pod closed its side (EOF): end the error stream, then the data stream."""
        pair = self.pairs.get(rid)
        if pair is None or pair.finished:
            return []
        return self._finish(pair, "")

    def _finish(self, pair: _Pair, message: str) -> list[Action]:
        pair.finished = True
        frames: list[spdy.Frame] = []
        for sid, payload in ((pair.error_id, message.encode()), (pair.data_id, b"")):
            st = self.streams.get(sid)
            if st is None or st.local_closed:
                continue
            st.local_closed = True
            if payload:
                frames.append(spdy.Data(sid, payload))
            frames.append(spdy.Data(sid, b"", fin=True))
        out: list[Action] = [self._send(*frames)] if frames else []
        for sid in (pair.error_id, pair.data_id):
            self._forget_stream(sid)
        self._forget_pair(pair.request_id)
        return out

    # -- housekeeping ---------------------------------------------------------------------

    def expire(self, now: float, timeout: float) -> list[Action]:
        """Requests still missing a stream after `timeout` seconds are reset (kubelet: 30 s)."""
        out: list[Action] = []
        for pair in list(self.pairs.values()):
            if not pair.connecting and now - pair.opened_at > timeout:
                for sid in (pair.error_id, pair.data_id):
                    st = self.streams.get(sid)
                    if st is not None:
                        out += self._reset(st, sid, spdy.CANCEL)
                self.pairs.pop(pair.request_id, None)
        return _merge(out)

    def goaway(self, status: int = spdy.GOAWAY_OK) -> bytes:
        self.goaway_sent = True
        return self.encoder.encode(spdy.GoAway(self.last_stream_id, status))

    def open_requests(self) -> list[str]:
        return [rid for rid, p in self.pairs.items() if p.connecting and not p.finished]


def _merge(actions: list[Action]) -> list[Action]:
    """Adjacent Sends become one write (one WebSocket message); the order is kept."""
    out: list[Action] = []
    for a in actions:
        if isinstance(a, Send) and out and isinstance(out[-1], Send):
            out[-1] = Send(out[-1].data + a.data)
        else:
            out.append(a)
    return out
