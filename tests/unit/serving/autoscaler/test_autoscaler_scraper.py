"""The scraper reads each watched revision's ready pods' queue-proxy metrics into RevisionStats.

Real sockets: each "pod" is a small HTTP server on loopback answering /metrics
the way queue-proxy does, found through the pod's skiff.dev/ports mapping
(the loopback fallback); the pods are in an in-memory client.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from skiff.core.memclient import MemoryClient
from skiff.serving.autoscaler.scraper import Scraper
from skiff.serving.autoscaler.stats import RevisionStats
from skiff.serving.queue import stats as qstats

Answer = Callable[[], bytes]


async def metrics_server(answer: Answer) -> tuple[asyncio.AbstractServer, int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = answer()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()
    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1]


def pod(name: str, rev: str, port: int | None, ready: bool = True,
        deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": name,
                            "labels": {"serving.knative.dev/revision": rev},
                            "annotations": {} if port is None else {
                                "skiff.dev/ports": json.dumps({"9090": port, "8012": 1})}}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-03T00:00:00Z"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def text(concurrency: float, rps: float) -> Answer:
    return lambda: qstats.prometheus_text(qstats.Report(rps, 0.0, concurrency, 0.0, 1.0),
                                          "ns", "c", "r", "p")


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro())


def test_sums_the_ready_pods_of_watched_revisions() -> None:
    async def go() -> None:
        servers = [await metrics_server(a) for a in (
            text(2.0, 10.0), text(3.0, 5.0), text(50.0, 50.0), text(70.0, 70.0),
            lambda: b"garbage", text(90.0, 90.0))]
        ports = [p for _, p in servers]
        client = MemoryClient([
            pod("a", "hello-00001", ports[0]), pod("b", "hello-00001", ports[1]),
            pod("c", "hello-00001", ports[2], ready=False),       # not ready: skipped
            pod("d", "hello-00001", ports[3], deleting=True),     # terminating: skipped
            pod("e", "hello-00001", ports[4]),                    # nonsense: skipped
            pod("f", "other-00001", ports[5]),                    # no PA watches it
            pod("g", "hello-00001", None)])                      # no mapping: skipped
        st = RevisionStats()
        st.configure("ns/hello-00001", 60.0, 6.0, 100.0)
        scraper = Scraper(client, st, None, clock=lambda: 100.0)
        assert await scraper.tick() == 2
        assert st.stable_and_panic("ns/hello-00001", "concurrency", 100.0) == (
            pytest.approx(5.0), pytest.approx(5.0))
        assert st.stable_and_panic("ns/hello-00001", "rps", 100.0) == (
            pytest.approx(15.0), pytest.approx(15.0))
        assert st.stable_and_panic("ns/other-00001", "concurrency", 100.0) is None
        assert scraper.failures == 1
        for srv, _ in servers:
            srv.close()
    run(go)


def test_nothing_watched_means_nothing_listed_or_dialled() -> None:
    async def go() -> None:
        dialled: list[tuple[str, str]] = []

        def dialer(ns: str, name: str) -> None:
            dialled.append((ns, name))

        scraper = Scraper(MemoryClient([pod("a", "hello-00001", 1)]), RevisionStats(), dialer)
        assert await scraper.tick() == 0 and dialled == []
    run(go)


def test_a_pod_in_its_own_namespace_is_dialled_through_the_node() -> None:
    async def go() -> None:
        srv, port = await metrics_server(text(4.0, 8.0))
        asked: list[tuple[str, str, int]] = []

        def dialer(ns: str, name: str) -> Callable[[int], Awaitable[Any]]:
            async def dial(p: int) -> Any:
                asked.append((ns, name, p))
                return await asyncio.open_connection("127.0.0.1", port)
            return dial

        st = RevisionStats()
        st.configure("ns/hello-00001", 60.0, 6.0, 5.0)
        scraper = Scraper(MemoryClient([pod("a", "hello-00001", None)]), st, dialer,
                          clock=lambda: 5.0)
        assert await scraper.tick() == 1
        assert asked == [("ns", "a", 9090)]
        assert st.stable_and_panic("ns/hello-00001", "concurrency", 5.0) == (
            pytest.approx(4.0), pytest.approx(4.0))
        srv.close()
    run(go)
