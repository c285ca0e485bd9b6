"""queue-proxy's request statistics and their Prometheus text. Pure: `now` is always passed in.

Upstream's queue-proxy counts every request it takes (pkg/queue/stats.go:
ReqIn/ReqOut events, proxied ones apart when the activator sent them, header
K-Proxy-Request: activator), and once a reporting period (1 s) turns the
counts into averages that its :9090/metrics serves as gauges
(prometheus_stats_reporter.go): queue_requests_per_second,
queue_proxied_operations_per_second, queue_average_concurrent_requests,
queue_average_proxied_concurrent_requests and process_uptime, labelled with
the destination namespace, configuration, revision and pod. The autoscaler
scrapes them every second (serving/autoscaler/scraper.py reads them back
with parse_metrics).

Neighbours: main.py (feeds events, serves report()), the scraper.
"""

from __future__ import annotations

from dataclasses import dataclass

REQUESTS_PER_SECOND = "queue_requests_per_second"
PROXIED_PER_SECOND = "queue_proxied_operations_per_second"
AVERAGE_CONCURRENCY = "queue_average_concurrent_requests"
AVERAGE_PROXIED_CONCURRENCY = "queue_average_proxied_concurrent_requests"
UPTIME = "process_uptime"
MAX_METRICS_BYTES = 64 * 1024        # what a scraper reads of one pod's answer
_NAMES = (REQUESTS_PER_SECOND, PROXIED_PER_SECOND, AVERAGE_CONCURRENCY,
          AVERAGE_PROXIED_CONCURRENCY, UPTIME)


@dataclass(frozen=True)
class Report:
    requests_per_second: float = 0.0
    proxied_per_second: float = 0.0
    average_concurrency: float = 0.0
    average_proxied_concurrency: float = 0.0
    uptime: float = 0.0


class _Area:
    """A count of requests in flight and its integral over time."""
    __slots__ = ("n", "area", "since")

    def __init__(self, now: float) -> None:
        self.n = 0
        self.area = 0.0
        self.since = now

    def step(self, now: float, delta: int) -> None:
        self.area += self.n * (now - self.since)
        self.since = now
        self.n += delta

    def take(self, now: float) -> float:
        self.step(now, 0)
        a, self.area = self.area, 0.0
        return a


class RequestStats:
    """stats.go's RequestStats: in/out events -> averages over each reporting period."""

    def __init__(self, now: float) -> None:
        self.started = now
        self.period_start = now
        self.all = _Area(now)
        self.proxied = _Area(now)
        self.requests = 0
        self.proxied_requests = 0
        self.last = Report()

    @property
    def in_flight(self) -> int:
        return self.all.n

    def request_in(self, now: float, proxied: bool) -> None:
        self.all.step(now, 1)
        self.requests += 1
        if proxied:
            self.proxied.step(now, 1)
            self.proxied_requests += 1

    def request_out(self, now: float, proxied: bool) -> None:
        if self.all.n > 0:
            self.all.step(now, -1)
        if proxied and self.proxied.n > 0:
            self.proxied.step(now, -1)

    def report(self, now: float) -> Report:
        """Close the period: its averages become the report the metrics endpoint serves."""
        period = max(now - self.period_start, 1e-3)
        self.period_start = now
        self.last = Report(self.requests / period, self.proxied_requests / period,
                           self.all.take(now) / period, self.proxied.take(now) / period,
                           now - self.started)
        self.requests = self.proxied_requests = 0
        return self.last


def _label(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def prometheus_text(r: Report, namespace: str, configuration: str, revision: str,
                    pod: str) -> bytes:
    """The 0.0.4 text exposition of a report, as queue-proxy's :9090/metrics serves it."""
    labels = (f'{{destination_configuration="{_label(configuration)}",'
              f'destination_namespace="{_label(namespace)}",'
              f'destination_pod="{_label(pod)}",destination_revision="{_label(revision)}"}}')
    values = (r.requests_per_second, r.proxied_per_second, r.average_concurrency,
              r.average_proxied_concurrency, r.uptime)
    lines = []
    for name, v in zip(_NAMES, values, strict=True):
        lines.append(f"# TYPE {name} gauge")
        lines.append(f"{name}{labels} {v:.6g}")
    return ("\n".join(lines) + "\n").encode()


def parse_metrics(text: bytes) -> Report:
    """The scraper's side: a report back from the text (ValueError when a gauge is missing or
    is not a finite, non-negative number)."""
    found: dict[str, float] = {}
    for raw in text[:MAX_METRICS_BYTES].decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name not in _NAMES:
            continue
        try:
            v = float(line.rsplit(" ", 1)[1])
        except (IndexError, ValueError):
            raise ValueError(f"metric {name}: no number") from None
        if not (v >= 0.0 and v < float("inf")):
            raise ValueError(f"metric {name}: {v} is not a non-negative number")
        found[name] = v
    missing = [n for n in _NAMES[:4] if n not in found]
    if missing:
        raise ValueError(f"missing metrics: {', '.join(missing)}")
    return Report(found[REQUESTS_PER_SECOND], found[PROXIED_PER_SECOND],
                  found[AVERAGE_CONCURRENCY], found[AVERAGE_PROXIED_CONCURRENCY],
                  found.get(UPTIME, 0.0))
