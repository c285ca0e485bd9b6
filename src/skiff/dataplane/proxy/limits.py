"""Connection and request limits of the proxy, and the pure decisions that apply them.

Envoy's defaults where it has them: request headers at most 60 KiB
(max_request_headers_kb) and 100 headers (max_headers_count), 100 concurrent
HTTP/2 streams per connection, the premature-reset rule Envoy added against
the HTTP/2 rapid-reset attack (CVE-2023-44487), and a 15 s route timeout.
Where Envoy waits an hour (the HCM idle timeout) skiff picks 300 s; the
request-headers timeout, which Envoy leaves off, is 15 s (nginx's
client_header_timeout idea), counted from the connection's start or from the
first byte of a request's head. A deferred dispatch waits at most the request timeout.

The shells that enforce these (ProxyConfig's sweeper and the server
protocols in http1.py and h2.py) ask the functions here what to do; nothing
here reads a clock or touches a socket: `elapsed` and counts are passed in.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int = 60 * 1024     # request line + header lines (Envoy: 60 KiB)
    max_headers: int = 100                # Envoy max_headers_count
    header_timeout: float = 15.0          # to receive a whole request head
    idle_timeout: float = 300.0           # keep-alive with no request in flight
    request_timeout: float = 15.0         # head received -> response done (Envoy route timeout); 0: none
    # Knative's responseStartTimeoutSeconds: head received -> the response begins; 0: none
    response_start_timeout: float = 0.0
    # Knative's idleTimeoutSeconds: no response byte for this long; 0: none
    stream_idle_timeout: float = 0.0
    max_concurrent_streams: int = 100     # HTTP/2, advertised; more are refused (REFUSED_STREAM)
    premature_reset_streams: int = 500    # Envoy overload.premature_reset_total_stream_count
    drain_idle: float = 1.0               # while draining, an idle HTTP/1.1 connection is closed after this
    drain_timeout: float = 5.0            # drain bound (Istio terminationDrainDuration); then closed

    @property
    def h2_stream_hard_cap(self) -> int:
        """Streams h2 itself lets open before a connection error: above the advertised limit, so
        that a client going over it gets REFUSED_STREAM from the proxy first."""
        return max(2 * self.max_concurrent_streams, self.max_concurrent_streams + 100)

    @property
    def h2_header_list_hard_cap(self) -> int:
        """HPACK's decoded-size bound (RFC 7541 sizes, 32 bytes per entry): a header block this
        big ends the connection; one between the limit and this gets a 431."""
        return 2 * (self.max_header_bytes + 32 * self.max_headers)


class Phase(enum.Enum):
    IDLE = "idle"          # keep-alive, nothing in flight
    HEAD = "head"          # a request head is being received (or a new connection said nothing yet)
    BUSY = "busy"          # a request is in flight


class Verdict(enum.Enum):
    KEEP = "keep"
    CLOSE = "close"                  # close quietly (idle, or a connection that sent nothing)
    HEADER_TIMEOUT = "408"           # answer 408 and close
    REQUEST_TIMEOUT = "504"          # the oldest request has run out of time


def verdict(phase: Phase, elapsed: float, limits: Limits, draining: bool = False) -> Verdict:
    """What a connection that has been in `phase` for `elapsed` seconds should do now."""
    if phase is Phase.BUSY:
        t = limits.request_timeout
        return Verdict.REQUEST_TIMEOUT if t > 0 and elapsed >= t else Verdict.KEEP
    if phase is Phase.HEAD:
        return Verdict.HEADER_TIMEOUT if elapsed >= limits.header_timeout else Verdict.KEEP
    limit = min(limits.drain_idle, limits.idle_timeout) if draining else limits.idle_timeout
    return Verdict.CLOSE if elapsed >= limit else Verdict.KEEP


def exchange_verdict(elapsed: float, started: bool, quiet: float, limits: Limits) -> Verdict:
    """A request in flight for `elapsed` seconds, whose response has `started` or not, and
    whose response has sent no byte for `quiet` seconds: keep it, or time it out."""
    t = limits.request_timeout
    if 0 < t <= elapsed:
        return Verdict.REQUEST_TIMEOUT
    t = limits.response_start_timeout
    if not started and 0 < t <= elapsed:
        return Verdict.REQUEST_TIMEOUT
    t = limits.stream_idle_timeout
    return Verdict.REQUEST_TIMEOUT if 0 < t <= quiet else Verdict.KEEP


def defer_timeout(requested: float | None, limits: Limits) -> float | None:
    """How long a deferred dispatch (an activator holding a request until a pod is ready) may
    wait: its own timeout when it names one, else the request timeout; None: no bound."""
    t = limits.request_timeout if requested is None else requested
    return t if t > 0 else None


def sweep_period(limits: Limits, draining: bool = False) -> float:
    """How often connections are checked: a quarter of the shortest timeout, within 50 ms..1 s
    (a timeout fires up to one period late). Draining checks often, so that an idle connection
    is closed soon after its drain_idle and never early."""
    if draining:
        return 0.05
    ts = [t for t in (limits.header_timeout, limits.idle_timeout, limits.request_timeout,
                      limits.response_start_timeout, limits.stream_idle_timeout) if t > 0]
    return min(1.0, max(0.05, min(ts) / 4)) if ts else 1.0


def head_fits(counted: int, data_len: int, end: int, limits: Limits) -> bool:
    """Whether a request head stays within max_header_bytes: `counted` bytes of it came before
    this read of `data_len` bytes, in which the head's blank line ends at `end` (-1: not in it)."""
    if end >= 0:
        return counted + end <= limits.max_header_bytes
    return counted + data_len <= limits.max_header_bytes


def too_many_headers(count: int, limits: Limits) -> bool:
    return count > limits.max_headers


def header_list_too_large(size: int, count: int, limits: Limits) -> bool:
    """An HTTP/2 request's headers (name + value bytes, pseudo-headers included) over the limits."""
    return size > limits.max_header_bytes or count > limits.max_headers


def premature_reset_abuse(closed: int, premature: int, limits: Limits) -> bool:
    """Envoy's rule against rapid reset: once a connection has closed `premature_reset_streams`
    streams, or half that many were reset by the client before their response began, the
    connection is closed if at least half of its closed streams were such premature resets."""
    n = limits.premature_reset_streams
    if closed < n and premature < n // 2:
        return False
    return premature * 2 >= closed
