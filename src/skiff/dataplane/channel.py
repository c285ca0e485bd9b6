"""The snapshot channel's sockets: the control plane serves, the data plane connects.

SnapshotServer (in the platform, next to the GatewayController) listens on a
Unix socket in the home (mode 0600; the platform's umask is 077 anyway). It
keeps the current snapshot: publish() replaces it and sends each connected
data plane only the parts that changed (codec.delta_messages: a route change
sends routes, a listener change listeners, both together the whole
snapshot), publish_endpoints() changes only endpoints; each message gets the
next version and goes to every connected data plane. A data plane that
connects says hello (its pid and the version it serves); the server answers
with the current snapshot at once, at a version above anything that data plane
has seen, so a data plane that outlived a control plane resyncs. A data
plane that refuses a message sent after its last whole snapshot may have
missed a step a later delta builds on, so it is sent the whole snapshot
again (once per refusal; a refused whole snapshot is not resent). Acks come
back per version: wait_acked() is how the controller knows the data plane
serves a snapshot before it writes status that says so.

run_client() is the data plane's side: connect (again and again while the
control plane is away: the last snapshot keeps being served meanwhile), say
hello, then read frames, let codec.ReceiverState decide, apply, and ack; a
malformed, oversized or out-of-order message is logged and nacked (an
oversized frame also drops the connection, since its body is not read), and
the last good snapshot stays.

Neighbours: codec.py (the pure wire format), main.py (the data-plane process),
supervisor.py, mesh/gateway/controller.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skiff.dataplane import codec
from skiff.dataplane.model import Endpoint, Snapshot

log = logging.getLogger("skiff.dataplane.channel")

HELLO_TIMEOUT = 5.0


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any]:
    """One frame's message; IncompleteReadError at EOF, CodecError when it is bad (after an
    oversized header nothing more can be read from this stream)."""
    n = codec.frame_length(await reader.readexactly(codec.HEADER.size))
    return codec.parse(await reader.readexactly(n))


@dataclass(eq=False)
class _Conn:
    writer: asyncio.StreamWriter
    pid: int = 0
    acked: int = 0
    whole: int = 0          # the version of the last whole snapshot sent on this connection
    hello: dict[str, Any] = field(default_factory=dict)


class SnapshotServer:
    """The control plane's end: the current snapshot, versions, and who acked what."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.version = 0
        self.snapshot: Snapshot | None = None
        self.parts: dict[str, Mapping[str, Any]] = {}     # the latest data of each part
        self.on_ack: Callable[[int], None] = lambda _v: None
        # the autoscaler's inputs from the data plane (serving/autoscaler/stats.py)
        self.on_stats: Callable[[dict[str, dict[str, float]]], None] = lambda _s: None
        self.on_poke: Callable[[str], None] = lambda _c: None
        self.conns: list[_Conn] = []
        self._server: asyncio.AbstractServer | None = None
        self._changed = asyncio.Event()
        self._hellos: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._early: dict[int, dict[str, Any]] = {}     # hellos nobody waited for (yet)
        self.bytes_sent = 0
        self.messages_sent = 0
        self.sent_by_type: dict[str, int] = {}      # message type -> bytes (benchmarks, tests)

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()          # a stale socket of an earlier run (the home is locked)
        old = os.umask(0o077)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for c in list(self.conns):
            c.writer.close()
        self.conns.clear()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    # --- publishing ------------------------------------------------------------------
    def publish(self, snap: Snapshot) -> int:
        """A new snapshot: what changed since the last one goes out (codec.delta_messages);
        the version a data plane serving `snap` has acked (the current one when nothing
        changed)."""
        msgs = codec.delta_messages(self.version + 1, self.snapshot, snap)
        self.snapshot = snap
        for msg in msgs:
            self.version = int(msg["version"])
            self._send_all(msg)
        return self.version

    def publish_endpoints(self, changes: Mapping[str, tuple[Endpoint, ...]]) -> int:
        """Endpoint changes on top of the current snapshot (EDS); their version."""
        self.version += 1
        if self.snapshot is not None:
            self.snapshot = self.snapshot.with_endpoints(changes)
        self._send_all(codec.endpoints_message(self.version, changes))
        return self.version

    def publish_part(self, name: str, data: Mapping[str, Any]) -> int:
        """A domain's part of the configuration (replaces the last one of that name)."""
        self.version += 1
        self.parts[name] = data
        self._send_all(codec.part_message(self.version, name, data))
        return self.version

    def _send_all(self, msg: Mapping[str, Any]) -> None:
        data = codec.frame(msg)
        for c in self.conns:
            if c.hello:
                self._send(c, data, str(msg["type"]))

    def _send(self, c: _Conn, data: bytes, kind: str) -> None:
        if not c.writer.is_closing():
            c.writer.write(data)
            self.bytes_sent += len(data)
            self.messages_sent += 1
            self.sent_by_type[kind] = self.sent_by_type.get(kind, 0) + len(data)

    def _send_whole(self, c: _Conn) -> None:
        if self.snapshot is not None:
            self.version += 1
            c.whole = self.version
            self._send(c, codec.frame(codec.snapshot_message(self.version, self.snapshot)),
                       "snapshot")

    # --- acks ------------------------------------------------------------------------
    def acked(self, version: int) -> bool:
        """Whether every connected data plane (and at least one) serves `version` or later."""
        live = [c for c in self.conns if c.hello]
        return bool(live) and all(c.acked >= version for c in live)

    async def wait_acked(self, version: int, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.acked(version):
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return True

    def hello_from(self, pid: int) -> asyncio.Future[dict[str, Any]]:
        """Resolves with the hello of the data plane with this pid (the supervisor waits on it)."""
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        early = self._early.pop(pid, None)
        if early is not None:
            fut.set_result(early)
        else:
            self._hellos[pid] = fut
        return fut

    # --- one data plane --------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        c = _Conn(writer)
        self.conns.append(c)
        try:
            hello = await asyncio.wait_for(read_message(reader), HELLO_TIMEOUT)
            if hello.get("type") != "hello" or not isinstance(hello.get("pid"), int):
                raise codec.CodecError("the first message must be a hello with a pid")
            c.pid = int(hello["pid"])
            seen = hello.get("version")
            if isinstance(seen, int) and seen > self.version:
                self.version = seen           # never send a data plane a version it has passed
            c.hello = hello
            fut = self._hellos.pop(c.pid, None)
            if fut is not None and not fut.done():
                fut.set_result(hello)
            else:
                while len(self._early) >= 16:
                    del self._early[next(iter(self._early))]
                self._early[c.pid] = hello
            if hello.get("error"):
                return
            self._send_whole(c)
            for name, data in self.parts.items():
                self.version += 1
                self._send(c, codec.frame(codec.part_message(self.version, name, data)), "part")
            self._changed.set()
            while True:
                msg = await read_message(reader)
                if msg["type"] == "ack":
                    c.acked = max(c.acked, int(msg["version"]))
                    self._changed.set()
                    self.on_ack(c.acked)
                elif msg["type"] == "stats":
                    self.on_stats(codec.decode_stats(msg.get("clusters")))
                elif msg["type"] == "poke":
                    cluster = msg.get("cluster")
                    if isinstance(cluster, str) and 0 < len(cluster) <= 512:
                        self.on_poke(cluster)
                elif msg["type"] == "nack":
                    log.warning("data plane %d refused version %s: %s", c.pid, msg["version"],
                                msg.get("error"))
                    if int(msg["version"]) > c.whole:
                        self._send_whole(c)       # it may lack what later deltas build on
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        except codec.CodecError as e:
            log.warning("data plane %d: bad message, connection closed: %s", c.pid, e)
        finally:
            if c in self.conns:
                self.conns.remove(c)
            self._changed.set()
            writer.close()


# --- the data plane's end ----------------------------------------------------------------


async def say_hello_and_close(path: Path, error: str) -> None:
    """Tell the control plane why this data plane cannot serve (it binds nothing)."""
    with contextlib.suppress(OSError):
        _, writer = await asyncio.open_unix_connection(str(path))
        writer.write(codec.frame(codec.hello_message(os.getpid(), 0, error)))
        await writer.drain()
        writer.close()


class Outbox:
    """The data plane's way to talk to the control plane between acks (stats, pokes): a
    message is written if connected, dropped if not (the next second's stats replace it)."""

    def __init__(self) -> None:
        self.writer: asyncio.StreamWriter | None = None

    def send(self, msg: Mapping[str, Any]) -> bool:
        w = self.writer
        if w is None or w.is_closing():
            return False
        # a stalled control plane must not grow this buffer without bound
        transport = w.transport
        if transport.get_write_buffer_size() > 4 * 1024 * 1024:
            return False
        w.write(codec.frame(msg))
        return True


async def run_client(path: Path, receiver: codec.ReceiverState,
                     apply: Callable[[codec.Update], None],
                     connected: asyncio.Event | None = None, retry: float = 0.05,
                     outbox: Outbox | None = None) -> None:
    """Connect, hello, then apply and ack updates, forever (cancel to end)."""
    waited = False
    while True:
        try:
            reader, writer = await asyncio.open_unix_connection(str(path))
        except OSError:
            if not waited:
                log.warning("control plane unreachable at %s: serving the last snapshot (version "
                            "%d) and retrying", path, receiver.version)
                waited = True
            await asyncio.sleep(retry)
            continue
        waited = False
        try:
            writer.write(codec.frame(codec.hello_message(os.getpid(), receiver.version)))
            if connected is not None:
                connected.set()
            if outbox is not None:
                outbox.writer = writer
            await _receive(reader, writer, receiver, apply)
        except (asyncio.IncompleteReadError, ConnectionError):
            log.warning("control plane went away: serving the last snapshot (version %d)",
                        receiver.version)
        except codec.CodecError as e:
            log.warning("control plane sent a frame that cannot be read (%s): reconnecting; "
                        "serving the last snapshot (version %d)", e, receiver.version)
        finally:
            if outbox is not None:
                outbox.writer = None
            writer.close()
        await asyncio.sleep(retry)


async def _receive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   receiver: codec.ReceiverState, apply: Callable[[codec.Update], None]) -> None:
    while True:
        n = codec.frame_length(await reader.readexactly(codec.HEADER.size))
        body = await reader.readexactly(n)
        version = -1
        try:
            msg = codec.parse(body)
            version = msg["version"] if isinstance(msg.get("version"), int) else -1
            update = receiver.accept(msg)
            apply(update)
        except codec.CodecError as e:
            log.warning("refused an update (version %s): %s; still serving version %d",
                        version, e, receiver.version)
            writer.write(codec.frame(codec.nack_message(version, str(e))))
            continue
        except Exception as e:      # the proxy could not take it: keep serving the last one
            log.exception("could not apply version %d; still serving version %d", version,
                          receiver.version)
            writer.write(codec.frame(codec.nack_message(version, f"{type(e).__name__}: {e}")))
            continue
        receiver.applied(update)
        writer.write(codec.frame(codec.ack_message(update.version)))
