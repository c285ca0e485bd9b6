"""dataplane/channel.py over a real Unix socket, in one event loop: the control plane's
SnapshotServer and a data plane's run_client. Acks per version; a data plane keeps its last
snapshot while the control plane is away and resyncs when one returns (even one whose versions
start again from zero); a frame over the bound drops the connection, not the snapshot."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path

from skiff.dataplane import codec
from skiff.dataplane.channel import SnapshotServer, run_client
from skiff.dataplane.model import EMPTY, Snapshot

DEADLINE = 10.0


def snap(header: str, eps: dict[str, tuple[tuple[str, int], ...]] | None = None) -> Snapshot:
    return Snapshot(header, {}, {}, frozenset(), eps or {})


class _LogSeen(logging.Handler):
    """Notes that a log line containing `text` was emitted (the data plane's own signal)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen = True


async def until(cond: object, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not cond():  # type: ignore[operator]
        assert loop.time() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def test_resync_after_the_control_plane_returns(tmp_path: Path) -> None:
    path = tmp_path / "dp.sock"

    async def go() -> None:
        served: list[Snapshot] = []
        receiver = codec.ReceiverState()

        def apply(u: codec.Update) -> None:
            served.append(u.on(served[-1] if served else EMPTY))

        server = SnapshotServer(path)
        await server.start()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        server.publish(snap("one"))                     # before any data plane: kept
        client = asyncio.create_task(run_client(path, receiver, apply, retry=0.01))
        await until(lambda: served and served[-1].server_header == "one", "the first snapshot")
        v = server.publish_endpoints({"ns/rev": (("127.0.0.1", 1),)})
        assert await server.wait_acked(v, DEADLINE)
        assert served[-1].endpoints == {"ns/rev": (("127.0.0.1", 1),)}

        away = _LogSeen("control plane went away")
        logging.getLogger("skiff.dataplane.channel").addHandler(away)
        await server.stop()                             # the control plane goes away
        await until(lambda: away.seen, "the data plane to notice")   # its signal, no window
        logging.getLogger("skiff.dataplane.channel").removeHandler(away)
        assert served[-1].server_header == "one" and not client.done()
        kept = receiver.version

        fresh = SnapshotServer(path)                    # a new one, its versions from zero
        await fresh.start()
        fresh.publish(snap("two"))
        await until(lambda: served[-1].server_header == "two", "the resync")
        assert receiver.version > kept
        assert await fresh.wait_acked(receiver.version, DEADLINE)

        # a frame over the bound: the connection is dropped, the snapshot stays, and the
        # data plane reconnects and is sent the current snapshot again
        conn = fresh.conns[0]
        conn.writer.write(codec.HEADER.pack(codec.MAX_FRAME + 1))
        await until(lambda: fresh.conns and fresh.conns[0] is not conn, "a reconnect")
        assert served[-1].server_header == "two"
        v = fresh.publish(snap("three"))
        assert await fresh.wait_acked(v, DEADLINE)
        assert served[-1].server_header == "three"
        client.cancel()
        await asyncio.gather(client, return_exceptions=True)
        await fresh.stop()

    asyncio.run(go())


def test_no_ack_without_a_data_plane(tmp_path: Path) -> None:
    async def go() -> None:
        server = SnapshotServer(tmp_path / "dp.sock")
        await server.start()
        v = server.publish(snap("one"))
        assert not await server.wait_acked(v, 0.2)
        await server.stop()
    asyncio.run(go())


def routed(header: str, weight: int) -> Snapshot:
    """A snapshot whose one listener names the "external" route configuration."""
    from types import MappingProxyType

    from skiff.dataplane.model import Listener, Server, Split, VirtualHost, build_table, http_path
    vh = VirtualHost("default/hello", ("hello.example.com",), (http_path(splits=(
        Split("default/hello-00001", weight), Split("default/hello-00002", 100 - weight))),))
    li = Listener("http", ("127.0.0.1", 8080), (Server("gw", 0, 80, "HTTP", ("*",), "http"),),
                  "external")
    return Snapshot(header, MappingProxyType({"http": li}),
                    MappingProxyType({"external": build_table([("hello.example.com", vh)])}),
                    frozenset())


def test_a_route_change_sends_routes_only_and_a_refusal_resyncs(tmp_path: Path) -> None:
    path = tmp_path / "dp.sock"

    async def go() -> None:
        served: list[Snapshot] = []
        refuse = {"routes": 1}                          # the data plane refuses one routes update

        def apply(u: codec.Update) -> None:
            if u.routes is not None and refuse["routes"]:
                refuse["routes"] -= 1
                raise codec.CodecError("refused for the test")
            served.append(u.on(served[-1] if served else EMPTY))

        server = SnapshotServer(path)
        await server.start()
        server.publish(routed("one", 50))
        client = asyncio.create_task(run_client(path, codec.ReceiverState(), apply, retry=0.01))
        await until(lambda: server.acked(server.version), "the first snapshot")
        before = dict(server.sent_by_type)

        # a routes-only change is refused: the server answers the nack with the whole snapshot
        v = server.publish(routed("one", 90))
        assert server.sent_by_type.get("routes", 0) > before.get("routes", 0)
        await until(lambda: server.sent_by_type["snapshot"] > before["snapshot"], "a resync")
        assert await server.wait_acked(server.version, DEADLINE) and server.version > v
        assert served[-1] == routed("one", 90)

        # the next one is taken: routes only, nothing else sent
        before = dict(server.sent_by_type)
        v = server.publish(routed("one", 20))
        assert await server.wait_acked(v, DEADLINE)
        grew = {k for k, n in server.sent_by_type.items() if n != before.get(k, 0)}
        assert grew == {"routes"} and served[-1] == routed("one", 20)
        assert v == server.publish(routed("one", 20))   # nothing changed: nothing sent
        client.cancel()
        await asyncio.gather(client, return_exceptions=True)
        await server.stop()

    asyncio.run(go())
