"""The autoscaler's metric intake (Knative's collector): what the data plane reports, by revision.

Two sources report, each every second: the revision pods' queue-proxies
(scraped by scraper.py: each pod's time-averaged requests in flight and
requests per second) and the data plane's activator, which counts the
requests it holds for a revision without a ready pod (over the snapshot
channel; serving/activator.py). A request is counted by one of them at a
time: held by the activator, then in the pod. Each report lands here
through record(); the KPA reconciler reads
stable_and_panic() for a revision with its own windows, as upstream's
MetricCollector keeps one collection per Metric object. A request for a
revision with no ready pod makes the activator poke the control plane at
once (upstream: the activator's stat with a concurrency of 1 sent straight to
the autoscaler); on_poke is told the revision's key so the KPA can scale from
zero without waiting for its next tick.

A shell around the pure metrics.MetricCollection: `now` is always passed in.
Neighbours: metrics.py (windows), dataplane/channel.py (transport), the KPA
reconciler (reads and is poked).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from skiff.serving.autoscaler.metrics import MetricCollection, Stat

MAX_REVISIONS = 10_000          # collections kept; reports for more are dropped (and logged once)


@dataclass
class _Entry:
    collection: MetricCollection
    stable_window: float
    panic_window: float
    last_seen: float = 0.0       # when a report last carried traffic for it (seconds)


class RevisionStats:
    """Per-revision metric collections fed by the data plane's reports."""

    def __init__(self) -> None:
        self._by_revision: dict[str, _Entry] = {}
        self.on_poke: Callable[[str], None] = lambda _key: None
        self.dropped = 0

    def configure(self, key: str, stable_window: float, panic_window: float, now: float) -> None:
        """The windows of one revision (from its PodAutoscaler); creates its collection."""
        e = self._by_revision.get(key)
        if e is None:
            if len(self._by_revision) >= MAX_REVISIONS:
                self.dropped += 1
                return
            self._by_revision[key] = _Entry(MetricCollection(stable_window, panic_window),
                                            stable_window, panic_window)
        elif (e.stable_window, e.panic_window) != (stable_window, panic_window):
            e.collection.resize(stable_window, panic_window, now)
            e.stable_window, e.panic_window = stable_window, panic_window

    def keys(self) -> list[str]:
        """The revisions whose PodAutoscaler configured a collection ("namespace/revision")."""
        return list(self._by_revision)

    def forget(self, key: str) -> None:
        self._by_revision.pop(key, None)

    def record(self, now: float, report: Mapping[str, Mapping[str, float]]) -> None:
        """One report: {"ns/revision": {"concurrency", "requests", "proxiedConcurrency",
        "proxiedRequests"}}; revisions nobody configured are ignored."""
        for key, v in report.items():
            e = self._by_revision.get(key)
            if e is None:
                continue
            stat = Stat(float(v.get("concurrency", 0.0)), float(v.get("proxiedConcurrency", 0.0)),
                        float(v.get("requests", 0.0)), float(v.get("proxiedRequests", 0.0)))
            e.collection.record(now, stat)
            if stat.average_concurrent_requests > 0 or stat.request_count > 0:
                e.last_seen = now

    def poke(self, key: str) -> None:
        self.on_poke(key)

    def stable_and_panic(self, key: str, metric: str, now: float) -> tuple[float, float] | None:
        """The revision's stable and panic averages of `metric` ("concurrency" or "rps");
        None when there is no data yet (upstream's ErrNoData)."""
        e = self._by_revision.get(key)
        if e is None:
            return None
        return e.collection.stable_and_panic(metric, now)

    def last_seen(self, key: str) -> float | None:
        e = self._by_revision.get(key)
        return e.last_seen if e is not None and e.last_seen else None
