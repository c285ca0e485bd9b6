"""The autoscaler's scraper: every second, each watched revision's pods' queue-proxy metrics.

Upstream's autoscaler scrapes queue-proxy's :9090 on the revision's pods
(pkg/autoscaler/metrics/stats_scraper.go; for large revisions a sample, here
every ready pod, up to MAX_PODS) and records one Stat per pod in the
revision's collection. Here the revisions are those a PodAutoscaler
configured in RevisionStats; their pods are listed by label, Ready and not
terminating. A pod is reached the way the kubelet's port-forward reaches it:
from inside its own network namespace on its localhost (so a meshed pod's
STRICT mTLS does not stand between the autoscaler and a plain metrics port),
or on the shared loopback at the host port its 9090 got. A pod that does not
answer within TIMEOUT, or answers nonsense, adds nothing this tick (upstream
logs and skips it too).

Requests held by the activator are counted by the data plane and arrive
through the snapshot channel (stats.py); queue-proxy counts the rest from
the moment they reach the pod, so the two add up to the revision's demand.

Neighbours: serving/queue/stats.py (the metrics text), stats.py (where the
stats go), node.py (dialer: the pod's namespace), serving/setup.py (runs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from skiff.core.client import Client, Obj, Ref
from skiff.core.reconcilers.podutil import is_ready
from skiff.node import ports
from skiff.serving.autoscaler.stats import RevisionStats
from skiff.serving.names import REVISION_LABEL
from skiff.serving.queue import stats as qstats

log = logging.getLogger("skiff.autoscaler")

POD = Ref("v1", "Pod")

PERIOD = 1.0
TIMEOUT = 0.5
MAX_PODS = 1000                  # scraped per tick, over all revisions
MAX_PARALLEL = 32
METRICS_PORT = 9090

# (namespace, pod name) -> how to open a stream to a port inside that pod, or None (loopback)
Dialer = Callable[[str, str], Callable[[int], Awaitable[Any]] | None]


def _ready(pod: Obj) -> bool:
    return is_ready(pod) and not pod["metadata"].get("deletionTimestamp")


def _loopback_port(pod: Obj) -> int | None:
    return ports.recorded(pod).get(str(METRICS_PORT))


class Scraper:
    """A Component: started with the platform, it feeds RevisionStats once a period."""

    def __init__(self, client: Client, stats: RevisionStats, dialer: Dialer | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.stats = stats
        self.dialer = dialer
        self.clock = clock
        self.task: asyncio.Task[None] | None = None
        self.failures = 0

    async def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.tick()
            except Exception:
                log.exception("scraping queue-proxy metrics failed")
            await asyncio.sleep(max(0.05, PERIOD - (loop.time() - started)))

    async def tick(self) -> int:
        """One round: every ready pod of every watched revision; returns how many answered."""
        keys = set(self.stats.keys())
        if not keys:
            return 0
        pods = [p for p in await self.client.list(POD, label_selector=REVISION_LABEL)
                if _ready(p) and self._key(p) in keys][:MAX_PODS]
        sem = asyncio.Semaphore(MAX_PARALLEL)

        async def one(p: Obj) -> tuple[str, qstats.Report] | None:
            async with sem:
                r = await self.scrape(p)
            return (self._key(p), r) if r is not None else None

        results = await asyncio.gather(*(one(p) for p in pods))
        now = self.clock()
        n = 0
        for res in results:
            if res is None:
                continue
            key, r = res
            n += 1
            self.stats.record(now, {key: {
                "concurrency": r.average_concurrency, "requests": r.requests_per_second,
                "proxiedConcurrency": r.average_proxied_concurrency,
                "proxiedRequests": r.proxied_per_second}})
        return n

    @staticmethod
    def _key(p: Obj) -> str:
        return f'{p["metadata"].get("namespace", "")}/{p["metadata"]["labels"][REVISION_LABEL]}'

    async def scrape(self, pod: Obj) -> qstats.Report | None:
        m = pod["metadata"]
        try:
            async with asyncio.timeout(TIMEOUT):
                dial = self.dialer(m.get("namespace", ""), m["name"]) if self.dialer else None
                if dial is not None:
                    reader, writer = await dial(METRICS_PORT)
                else:
                    port = _loopback_port(pod)
                    if port is None:
                        return None
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                try:
                    writer.write(b"GET /metrics HTTP/1.1\r\nhost: queue-proxy\r\n"
                                 b"connection: close\r\n\r\n")
                    data = await reader.read(qstats.MAX_METRICS_BYTES)
                    while len(data) < qstats.MAX_METRICS_BYTES:
                        more = await reader.read(qstats.MAX_METRICS_BYTES - len(data))
                        if not more:
                            break
                        data += more
                finally:
                    writer.close()
            head, _, body = data.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                return None
            return qstats.parse_metrics(body)
        except (OSError, TimeoutError, ValueError) as e:
            self.failures += 1
            log.debug("scraping %s/%s: %s", m.get("namespace"), m.get("name"), e)
            return None
