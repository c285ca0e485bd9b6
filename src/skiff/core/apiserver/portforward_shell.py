"""pods/portforward's I/O: the client's connection, the pod sockets, nothing decided here.

handle() answers `kubectl port-forward`'s request in either form it uses:
a WebSocket upgrade offering `SPDY/3.1+portforward.k8s.io` (kubectl 1.31+
tries this first; SPDY bytes ride in binary messages, cut anywhere) or, as
the fallback, `Upgrade: SPDY/3.1` on a POST (SPDY on the raw connection after
the 101). Both become a Wire (recv/send bytes) that serve() pumps through
portforward.Session, carrying out its actions: dial 127.0.0.1 at the port the
node runtime gave the pod (portforward.target_port), copy bytes each way,
half-close, drop. One writer task sends everything to the client in the
session's order (the header compression context needs it); the outbox is
bounded and pod readers wait for room; a pod socket's write buffer is bounded
and a full one pauses reading the client. A malformed frame ends this
connection only, with a GOAWAY and a log line. Neighbours: portforward.py
(protocol), spdy.py (codec), server.py (routing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from aiohttp import WSMsgType, web

from skiff.core.apiserver import portforward, spdy
from skiff.core.client import ApiError

log = logging.getLogger("skiff.apiserver.portforward")

POD_HOST = "127.0.0.1"
DIAL_TIMEOUT = 5.0
STREAM_PAIR_TIMEOUT = 30.0        # kubelet's stream creation timeout
OUTBOX_LIMIT = 1 << 20            # bytes queued for the client before pod readers wait
POD_WRITE_LIMIT = 1 << 20         # bytes queued for one pod socket before the client waits
RAW_READ_LIMIT = 1 << 20          # bytes read ahead on a raw SPDY connection
MAX_MESSAGE = spdy.DEFAULT_MAX_FRAME + 64 * 1024

# Connects to a port of the pod from inside its network namespace (the node's dial()); None
# for a pod on the shared loopback, whose ports are found through its recorded mapping.
Dialer = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


class Wire(Protocol):
    async def recv(self) -> bytes | None: ...        # None: the client went away

    async def send(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class WebSocketWire:
    """SPDY tunneled in WebSocket binary messages (client-go's TunnelingConnection)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    async def recv(self) -> bytes | None:
        while True:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.BINARY:
                return bytes(msg.data)
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                            WSMsgType.ERROR):
                return None
            if msg.type == WSMsgType.TEXT:
                raise spdy.ProtocolError("text message on a SPDY tunnel")

    async def send(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()


class RawWire:
    """SPDY on the connection itself after a 101 (the fallback), fed by aiohttp's protocol."""

    def __init__(self, request: web.Request, writer: Any) -> None:
        self._transport = request.transport
        self._writer = writer
        self._buf = bytearray()
        self._eof = False
        self._ready = asyncio.Event()
        self._paused = False

    # aiohttp's RequestHandler feeds an upgraded connection through these two (set_parser)
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._buf += data
        self._ready.set()
        if len(self._buf) > RAW_READ_LIMIT and self._transport is not None and not self._paused:
            self._paused = True
            self._transport.pause_reading()
        return False, b""

    def feed_eof(self) -> None:
        self._eof = True
        self._ready.set()

    async def recv(self) -> bytes | None:
        while not self._buf:
            if self._eof:
                return None
            self._ready.clear()
            await self._ready.wait()
        data, self._buf = bytes(self._buf), bytearray()
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return data

    async def send(self, data: bytes) -> None:
        await self._writer.write(data)

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


@dataclass
class _PodConn:
    port: int
    writer: asyncio.StreamWriter | None = None
    task: asyncio.Task[None] | None = None
    queued: list[portforward.Action] = field(default_factory=list)


class _Outbox:
    """Bytes for the client, in the order the session produced them; bounded for pod data."""

    def __init__(self) -> None:
        self.items: deque[bytes] = deque()
        self.size = 0
        self.more = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()
        self.closed = False

    def put(self, data: bytes) -> None:
        self.items.append(data)
        self.size += len(data)
        self.more.set()
        if self.size >= OUTBOX_LIMIT:
            self.room.clear()

    def take(self) -> bytes:
        data = b"".join(self.items)
        self.items.clear()
        self.size = 0
        self.more.clear()
        self.room.set()
        return data


class Forwarder:
    """Runs one connection's session: client frames in, pod sockets out."""

    def __init__(self, wire: Wire, pod: dict[str, Any], label: str,
                 dialer: Dialer | None = None) -> None:
        self.wire = wire
        self.pod = pod
        self.dialer = dialer
        self.label = label
        meta = pod.get("metadata") or {}
        self.pod_name = str(meta.get("name", ""))
        self.uid = str(meta.get("uid", ""))
        self.session = portforward.Session()
        self.out = _Outbox()
        self.conns: dict[str, _PodConn] = {}
        self.closing = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        sender = asyncio.ensure_future(self._sender())
        ticker = asyncio.ensure_future(self._expiry())
        try:
            while not self.closing:
                data = await self.wire.recv()
                if data is None:
                    break
                try:
                    actions = self.session.receive(data, loop.time())
                except spdy.ProtocolError as e:
                    log.warning("port-forward %s: malformed SPDY from the client, closing the "
                                "connection: %s", self.label, e)
                    self.out.put(self.session.goaway(spdy.GOAWAY_PROTOCOL_ERROR))
                    break
                await self._apply(actions)
        finally:
            ticker.cancel()
            for rid in list(self.conns):
                self._drop(rid)
            self.out.closed = True
            self.out.more.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sender, 5.0)
            sender.cancel()
            await self.wire.close()

    async def _sender(self) -> None:
        try:
            while True:
                await self.out.more.wait()
                data = self.out.take()
                if data:
                    await self.wire.send(data)
                if self.out.closed and not self.out.items:
                    return
        except (ConnectionError, RuntimeError) as e:
            log.debug("port-forward %s: client gone while sending: %s", self.label, e)
            self.closing = True

    async def _expiry(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(5.0)
            await self._apply(self.session.expire(loop.time(), STREAM_PAIR_TIMEOUT))

    async def _apply(self, actions: list[portforward.Action]) -> None:
        # Every Send is queued before the first await: the client's bytes stay in the order
        # the session made them (its header compression context depends on it), whatever
        # another request's task queues meanwhile. Pod-side actions keep their own order.
        for a in actions:
            if isinstance(a, portforward.Send):
                self.out.put(a.data)
        for a in actions:
            if isinstance(a, portforward.Send):
                continue
            if isinstance(a, portforward.Connect):
                pc = self.conns[a.request_id] = _PodConn(a.port)
                pc.task = asyncio.ensure_future(self._pod(a.request_id, pc))
            elif isinstance(a, portforward.Forward | portforward.ShutdownWrite):
                pc2 = self.conns.get(a.request_id)
                if pc2 is None:
                    continue
                if pc2.writer is None:
                    pc2.queued.append(a)
                    continue
                await self._to_pod(pc2, a)
            elif isinstance(a, portforward.Drop):
                self._drop(a.request_id)
            elif isinstance(a, portforward.Close):
                log.debug("port-forward %s: %s", self.label, a.reason)
                self.closing = True

    async def _to_pod(self, pc: _PodConn, a: portforward.Action) -> None:
        w = pc.writer
        assert w is not None
        try:
            if isinstance(a, portforward.Forward):
                w.write(a.data)
                # Only a full buffer waits (and pauses this connection): a slow pod app must
                # not make skiff hold an unbounded amount of a fast client's bytes.
                if w.transport.get_write_buffer_size() > POD_WRITE_LIMIT:
                    await w.drain()
            elif w.can_write_eof():
                w.write_eof()
        except (ConnectionError, RuntimeError):
            pass       # the pod side closed; its reader reports it

    def _drop(self, rid: str) -> None:
        pc = self.conns.pop(rid, None)
        if pc is None:
            return
        if pc.task is not None and pc.task is not asyncio.current_task():
            pc.task.cancel()
        if pc.writer is not None:
            pc.writer.close()

    def _error(self, port: int, detail: str) -> str:
        # kubelet's wording, which kubectl prints after "an error occurred forwarding L -> R: "
        return (f"error forwarding port {port} to pod {self.pod_name}, uid {self.uid}: "
                f"failed to connect to localhost:{port} inside the pod: {detail}")

    async def _pod(self, rid: str, pc: _PodConn) -> None:
        """Dial the pod's port, then copy pod -> client until EOF."""
        host_port = (pc.port if self.dialer is not None
                     else portforward.target_port(self.pod, pc.port))
        try:
            if self.dialer is not None:
                reader, writer = await asyncio.wait_for(self.dialer(pc.port), DIAL_TIMEOUT)
            elif host_port is None:
                raise ConnectionRefusedError(f"dial tcp4 127.0.0.1:{pc.port}: connect: "
                                             "connection refused")
            else:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(POD_HOST, host_port), DIAL_TIMEOUT)
        except (OSError, TimeoutError) as e:
            detail = (str(e) if host_port is None else
                      f"dial tcp4 127.0.0.1:{pc.port}: {_reason(e)}" if self.dialer is not None
                      else f"dial tcp4 127.0.0.1:{pc.port} (node port {host_port}): "
                           f"{_reason(e)}")
            await self._apply(self.session.failed(rid, self._error(pc.port, detail)))
            self.conns.pop(rid, None)
            return
        writer.transport.set_write_buffer_limits(high=POD_WRITE_LIMIT)
        pc.writer = writer
        if self.conns.get(rid) is not pc:       # dropped while dialling
            writer.close()
            return
        try:
            queued, pc.queued = pc.queued, []
            await self._apply(self.session.connected(rid))
            for a in queued:
                await self._to_pod(pc, a)
            while True:
                chunk = await reader.read(portforward.POD_CHUNK)
                if not chunk:
                    break
                await self.out.room.wait()
                await self._apply(self.session.from_pod(rid, chunk))
            await self._apply(self.session.pod_closed(rid))
        except (ConnectionError, OSError) as e:
            await self._apply(self.session.failed(rid, self._error(pc.port, _reason(e))))
        finally:
            if self.conns.get(rid) is pc:
                self.conns.pop(rid, None)
            writer.close()


def _reason(e: BaseException) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connect: connection refused"
    if isinstance(e, ConnectionResetError):
        return "read: connection reset by peer"
    if isinstance(e, TimeoutError):
        return "i/o timeout"
    return str(getattr(e, "strerror", None) or e)


async def handle(request: web.Request, pod: dict[str, Any],
                 dialer: Dialer | None = None) -> web.StreamResponse:
    """pods/portforward: upgrade (WebSocket tunnel or SPDY/3.1) and forward until the client goes."""
    meta = pod.get("metadata") or {}
    label = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    phase = (pod.get("status") or {}).get("phase", "")
    if phase != "Running":
        raise ApiError(400, "BadRequest", f"unable to upgrade connection: pod {meta.get('name')} "
                                          f"is not running (phase {phase or 'Pending'})")
    upgrade = request.headers.get("Upgrade", "").lower()
    if upgrade == "websocket":
        ws = web.WebSocketResponse(protocols=(portforward.TUNNEL_PROTOCOL,), heartbeat=None,
                                   autoping=True, max_msg_size=MAX_MESSAGE)
        ready = ws.can_prepare(request)
        if not ready.ok or ready.protocol != portforward.TUNNEL_PROTOCOL:
            raise ApiError(400, "BadRequest", "unable to upgrade connection: port-forward needs "
                                              f"the WebSocket subprotocol {portforward.TUNNEL_PROTOCOL}")
        await ws.prepare(request)
        log.info("port-forward %s: SPDY/3.1 tunneled in WebSocket", label)
        await Forwarder(WebSocketWire(ws), pod, label, dialer).run()
        return ws
    if upgrade.startswith("spdy/3.1"):
        offered = [p.strip() for v in request.headers.getall("X-Stream-Protocol-Version", [])
                   for p in v.split(",")]
        if portforward.PROTOCOL not in offered:
            raise ApiError(403, "Forbidden", "unable to upgrade: unable to negotiate protocol: "
                                             f"client supports {offered}, server supports "
                                             f"[{portforward.PROTOCOL}]")
        resp = web.StreamResponse(status=101, reason="Switching Protocols", headers={
            "Connection": "Upgrade", "Upgrade": "SPDY/3.1",
            "X-Stream-Protocol-Version": portforward.PROTOCOL})
        # aiohttp only switches protocols for WebSocket; take the connection's bytes from here
        # on (set before the 101 goes out, so no SPDY byte can reach the HTTP parser).
        wire = RawWire(request, None)
        request.protocol.set_parser(cast(Any, wire))
        request.protocol.keep_alive(False)
        wire._writer = await resp.prepare(request)
        log.info("port-forward %s: SPDY/3.1 after an HTTP upgrade", label)
        await Forwarder(wire, pod, label, dialer).run()
        return resp
    raise ApiError(400, "BadRequest", "unable to upgrade connection: port-forward needs a "
                                      f"WebSocket ({portforward.TUNNEL_PROTOCOL}) or SPDY/3.1 "
                                      "upgrade")
