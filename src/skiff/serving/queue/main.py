"""queue-proxy: the revision pod's own proxy in front of the app (Knative's cmd/queue), a process.

The `queue-proxy` container the revision's Deployment carries
(serving/resources.py) runs the built-in queue image, that is this module,
forked from the node's warm template in the pod's network namespace. Its
ports are upstream's:

- 8012 (QUEUE_SERVING_PORT): every request for the revision comes here (the
  revision's Services target it) and goes on to the app on the pod's
  localhost:USER_PORT. It counts requests in and out (stats.py); with
  containerConcurrency >= 1 it lets cc requests run at once and queues up to
  10 x cc more (autoscaler/breaker.py), answering 503 "pending request queue
  full" beyond; REVISION_TIMEOUT_SECONDS bounds a request from its arrival,
  queueing included (504), REVISION_RESPONSE_START_TIMEOUT_SECONDS the time to
  the response's first byte, REVISION_IDLE_TIMEOUT_SECONDS the time without a
  byte from the app (504 before the response began, a reset after). A request carrying `K-Network-Probe: queue` is
  the kubelet's readiness probe of this container: it is answered by probing
  the app with the user container's readiness probe (SERVING_READINESS_PROBE),
  every 25 ms until the app first answers when its period is 0 (Knative's
  aggressive probing), and 503 once draining.
- 8022 (admin): GET /wait-for-drain, the user container's preStop hook:
  starts the drain and answers once it is over, so the app is stopped only
  after the last request it was given has been answered.
- 9090: the autoscaler's metrics (stats.prometheus_text): each scrape (the
  autoscaler's, once a second) closes the reporting period, so the averages
  are fresh; 9091: the user's request metrics (counts by response code).

Drain (SIGTERM, or /wait-for-drain): probes answer 503, so the pod leaves
the endpoints; requests still arriving are served; the drain is over when
none is in flight and none has arrived for DRAIN_QUIET seconds. Upstream
waits 30 s of quiet for Kubernetes to spread the endpoints change across
nodes; skiff's reaches its data plane in milliseconds, so it waits 1 s.
After SIGTERM the process then exits 0.

Neighbours: settings.py (the env), stats.py (counts, metrics text),
dataplane/proxy/http1.py (the proxy it is built on), the autoscaler's
scraper (reads 9090).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from skiff.dataplane.proxy.http1 import (
    ConnContext,
    Defer,
    Forward,
    ProxyConfig,
    Reply,
    RequestHead,
    UpstreamPool,
    h1_factory,
)
from skiff.dataplane.proxy.limits import Limits
from skiff.serving.autoscaler.breaker import (
    ERR_REQUEST_QUEUE_FULL,
    Admission,
    Breaker,
    queue_proxy_breaker_params,
)
from skiff.serving.queue import stats
from skiff.serving.queue.settings import (
    AGGRESSIVE_PROBE_PERIOD,
    AGGRESSIVE_PROBE_TIMEOUT,
    PROBE_VALUE,
    AppProbe,
    QueueSettings,
    SettingsError,
    parse,
)

try:        # imported at module level, so that the fork server's template has it loaded
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency
    uvloop = None  # type: ignore[assignment]

DRAIN_QUIET = 1.0
MIN_REPORT_PERIOD = 0.25     # the shortest period a scrape closes (see metrics())
MAX_ADMIN_CONNS = 64          # connections each of the small servers holds at once
MAX_ADMIN_HEAD = 8 * 1024
MAX_STATUS_CODES = 100        # distinct response codes the user metrics keep
_TEXT = ((b"content-type", b"text/plain; charset=utf-8"),)
QUEUE_FULL = Reply(503, ERR_REQUEST_QUEUE_FULL.encode() + b"\n", _TEXT)
TIMED_OUT = Reply(504, b"request timeout\n", _TEXT)
NOT_READY = Reply(503, b"queue: the app is not ready\n", _TEXT)
DRAINING = Reply(503, b"queue: shutting down\n", _TEXT)
READY = Reply(200, PROBE_VALUE.encode(), _TEXT)
_PROBE_HEADER = b"k-network-probe"
_PROXY_HEADER = b"k-proxy-request"


class QueueProxy:
    """The serving port's dispatcher and request hooks, the drain, and the app probe."""

    def __init__(self, s: QueueSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.s = s
        self.clock = clock
        self.stats = stats.RequestStats(clock())
        params = queue_proxy_breaker_params(s.container_concurrency)
        self.breaker = Breaker(params) if params is not None else None
        self.user = ("127.0.0.1", s.port(s.user_port))
        self.forward = Forward(self.user)      # one for every request (nothing per request)
        self.waiters: dict[int, asyncio.Future[None]] = {}
        self.granted: set[int] = set()
        self.ids = itertools.count(1)
        self.draining = False
        self.last_arrival = clock()
        self.codes: dict[int, int] = {}
        self.app_ready_once = False

    # --- the serving port ------------------------------------------------------------
    def dispatch(self, head: RequestHead) -> Forward | Reply | Defer:
        cap = head.captured           # the two headers are captured: no scan of the lines
        probe = cap.get(_PROBE_HEADER)
        if probe is not None and probe.lower() == PROBE_VALUE.encode():
            return DRAINING if self.draining else Defer(self._probe(), timeout=0)
        now = self.clock()
        self.last_arrival = now
        proxied = cap.get(_PROXY_HEADER) == b"activator"
        self.stats.request_in(now, proxied)
        b = self.breaker
        if b is None:
            head.tag = "p" if proxied else "-"       # what end() is told
            return self.forward
        token = next(self.ids)
        head.tag = f"p{token}" if proxied else str(token)
        adm = b.arrive(token)
        if adm is Admission.RUN:
            self.granted.add(token)
            return self.forward
        if adm is Admission.REJECTED:
            return QUEUE_FULL
        fut = asyncio.get_running_loop().create_future()
        self.waiters[token] = fut
        return Defer(self._queued(token, fut), timeout=self.s.timeout or 0,
                     timeout_reply=TIMED_OUT)

    async def _queued(self, token: int, fut: asyncio.Future[None]) -> Forward:
        await fut            # cancelled (timeout, client gone): end() takes it off the queue
        return self.forward

    def _wake(self, tokens: list[Hashable]) -> None:
        for t in tokens:
            assert isinstance(t, int)
            fut = self.waiters.pop(t, None)
            if fut is not None and not fut.done():
                self.granted.add(t)
                fut.set_result(None)
            elif self.breaker is not None:
                # its caller left between being woken and running: hand the slot on
                self._wake(self.breaker.finish())

    # RequestHooks
    def start(self, ctx: ConnContext, head: RequestHead) -> None:
        pass

    def end(self, ctx: ConnContext, head: RequestHead, status: int, bytes_sent: int,
            duration: float, error: str | None) -> None:
        tag = head.tag
        if tag is None:
            return
        head.tag = None
        proxied = tag[0] == "p"
        self.stats.request_out(self.clock(), proxied)
        codes = self.codes
        if status in codes:
            codes[status] += 1
        elif status and len(codes) < MAX_STATUS_CODES:
            codes[status] = 1
        b = self.breaker
        if b is None:
            return
        token = int(tag[1:] if proxied else tag)
        if token in self.granted:
            self.granted.discard(token)
            self._wake(b.finish())
        else:
            fut = self.waiters.pop(token, None)
            if fut is not None and not fut.done():
                fut.cancel()
            b.cancel(token)

    # --- readiness ---------------------------------------------------------------------
    async def _probe(self) -> Reply:
        p = self.s.probe

        def check() -> Awaitable[bool]:
            return probe_app(p, self.s.port(p.port))
        if p.period == 0 and not self.app_ready_once:
            ok = await retry_until(check, AGGRESSIVE_PROBE_PERIOD, AGGRESSIVE_PROBE_TIMEOUT)
        else:
            ok = await check()
        if self.draining:
            return DRAINING
        if ok:
            self.app_ready_once = True
        return READY if ok else NOT_READY

    # --- drain -------------------------------------------------------------------------
    def drained(self) -> bool:
        return (self.stats.in_flight == 0 and not self.waiters
                and self.clock() - self.last_arrival >= DRAIN_QUIET)

    async def drain(self) -> None:
        """Take the pod out of the endpoints (probes fail), then wait for quiet."""
        self.draining = True
        self.last_arrival = max(self.last_arrival, self.clock())
        while not self.drained():
            await asyncio.sleep(0.05)

    def user_metrics(self) -> bytes:
        lines = ["# TYPE revision_request_count counter"]
        s = self.s
        for code, n in sorted(self.codes.items()):
            lines.append(
                f'revision_request_count{{configuration_name="{s.configuration}",'
                f'namespace_name="{s.namespace}",response_code="{code}",'
                f'response_code_class="{code // 100}xx",revision_name="{s.revision}"}} {n}')
        return ("\n".join(lines) + "\n").encode()


FIRST_RETRY = 0.001   # the app is a fork of a warm template: it binds within milliseconds


def retry_wait(elapsed: float, period: float) -> float:
    """The wait before the next try, `elapsed` seconds after the first: half of that, between
    FIRST_RETRY and `period`, so a pass is seen at most a third later than it came (doubling
    from 2 ms, checks at 2, 6 and 14 ms saw an app that bound at 7 ms 7 ms late)."""
    return min(period, max(FIRST_RETRY, elapsed / 2))


async def retry_until(check: Callable[[], Awaitable[bool]], period: float,
                      deadline: float) -> bool:
    """check() until it passes or `deadline` seconds pass, waiting retry_wait() between tries
    (upstream waits its full 25 ms retry interval each time, which here would be most of a
    cold start)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + deadline
    while True:
        if await check():
            return True
        now = loop.time()
        wait = retry_wait(now - start, period)
        if now + wait >= end:
            return False
        await asyncio.sleep(wait)


async def probe_app(p: AppProbe, port: int) -> bool:
    """One readiness check of the app on the pod's localhost: a TCP connect, or an HTTP GET
    answered with 2xx/3xx."""
    try:
        async with asyncio.timeout(p.timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                if p.kind == "tcp":
                    return True
                if p.scheme == "https":
                    return True         # the connection is what a TLS app proves here
                extra = "".join(f"{k}: {v}\r\n" for k, v in p.headers)
                writer.write(f"GET {p.path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
                             f"user-agent: kube-probe/1.26\r\nk-kubelet-probe: queue\r\n"
                             f"{extra}connection: close\r\n\r\n".encode())
                line = await reader.readline()
                parts = line.split()
                return len(parts) >= 2 and parts[1].isdigit() and 200 <= int(parts[1]) < 400
            finally:
                writer.close()
    except (OSError, TimeoutError, ValueError):
        return False


# --- the small admin and metrics servers ------------------------------------------------

Handler = Callable[[str, str], Awaitable[tuple[int, bytes]]]


def small_http(handler: Handler, busy: set[asyncio.Task[Any]] | None = None,
               ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """One request per connection: the method and path go to `handler`; a head over 8 KiB or
    one that does not arrive within 10 s is dropped, and beyond MAX_ADMIN_CONNS open at once a
    new connection is closed. `busy` holds the handlers running, so that the process answers
    them (the kubelet's preStop call) before it exits."""
    open_conns = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_conns
        if open_conns >= MAX_ADMIN_CONNS:
            writer.close()                # bounded: a flood of idle connections gets closed
            return
        open_conns += 1
        task = asyncio.current_task()
        if busy is not None and task is not None:
            busy.add(task)
            task.add_done_callback(busy.discard)
        try:
            async with asyncio.timeout(10.0):
                head = await reader.readuntil(b"\r\n\r\n")
            parts = head.split(b"\r\n", 1)[0].split()
            if len(parts) != 3:
                status, body = 400, b"bad request\n"
            else:
                status, body = await handler(parts[0].decode("latin-1"),
                                             parts[1].decode("latin-1").split("?", 1)[0])
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed",
                      400: "Bad Request"}.get(status, "")
            writer.write(f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; "
                         f"version=0.0.4\r\ncontent-length: {len(body)}\r\n"
                         f"connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            open_conns -= 1
            writer.close()
    return serve


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def listen_all(s: QueueSettings) -> list[socket.socket]:
    """The serving, admin, metrics and user metrics ports' sockets, made before the event
    loop: from the bind on, the kernel queues connections (the kubelet's readiness probe
    connects at once and waits for its answer) while the loop still starts."""
    host = "127.0.0.1" if s.ports else "0.0.0.0"    # the loopback fallback: only loopback
    socks: list[socket.socket] = []
    try:
        for port in (s.serving_port, s.admin_port, s.metrics_port, s.user_metrics_port):
            socks.append(_listen(host, s.port(port)))
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return socks


async def serve(s: QueueSettings, socks: list[socket.socket] | None = None) -> int:
    loop = asyncio.get_running_loop()
    serving_sock, *admin_socks = socks if socks is not None else listen_all(s)
    q = QueueProxy(s)
    pool = UpstreamPool()
    limits = Limits(request_timeout=s.timeout, response_start_timeout=s.response_start_timeout,
                    stream_idle_timeout=s.idle_timeout)
    cfg = ProxyConfig(q.dispatch, pool, limits=limits, hooks=(q,),
                      capture=frozenset({_PROBE_HEADER, _PROXY_HEADER}))
    report = stats.Report()

    async def admin(method: str, path: str) -> tuple[int, bytes]:
        if path == "/wait-for-drain":
            await q.drain()
            return 200, b""
        return 404, b"not found\n"

    async def metrics(method: str, path: str) -> tuple[int, bytes]:
        nonlocal report
        if path != "/metrics":
            return 404, b"not found\n"
        # The period closes when the autoscaler scrapes (once a second), so what it reads is
        # fresh, not up to a reporting period old; scrapes closer together than
        # MIN_REPORT_PERIOD (a second scraper) get the last report.
        now = q.clock()
        if now - q.stats.period_start >= MIN_REPORT_PERIOD:
            report = q.stats.report(now)
        return 200, stats.prometheus_text(report, s.namespace, s.configuration, s.revision,
                                          s.pod)

    async def user_metrics(method: str, path: str) -> tuple[int, bytes]:
        return (200, q.user_metrics()) if path == "/metrics" else (404, b"not found\n")

    servers = [await loop.create_server(h1_factory(cfg), sock=serving_sock)]
    busy: set[asyncio.Task[Any]] = set()
    for sock, handler in zip(admin_socks, (admin, metrics, user_metrics), strict=True):
        servers.append(await asyncio.start_server(small_http(handler, busy), sock=sock,
                                                  limit=MAX_ADMIN_HEAD))
    print(f"queue-proxy: serving {s.namespace}/{s.revision} on {s.serving_port}, app on "
          f"{s.user_port}, containerConcurrency {s.container_concurrency}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await stopping
        print("queue-proxy: draining", flush=True)
        await q.drain()
        await cfg.drain(timeout=1.0)
        if busy:       # a /wait-for-drain waiting on the same drain: let it answer
            await asyncio.wait(list(busy), timeout=1.0)
    finally:
        for srv in servers:
            srv.close()
    print("queue-proxy: drained, exiting", flush=True)
    return 0


def main() -> None:
    try:
        settings = parse(os.environ)
    except SettingsError as e:
        print(f"queue-proxy: {e}", file=sys.stderr)
        sys.exit(1)
    try:
        socks = listen_all(settings)
        if uvloop is not None:
            uvloop.install()
        sys.exit(asyncio.run(serve(settings, socks)))
    except OSError as e:
        print(f"queue-proxy: cannot listen: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
