"""The gateway's p99 while the API server takes a burst of 10,000 creates (control-plane load).

    python benchmarks/gateway/isolation.py [--creates 10000] [--concurrency 16] [--measure 8]

The other half of the isolation figures of the house issue (attack.py has the first: the API
server's p99 while the data plane takes an HTTP/2 flood). Starts a real `skiff up` serving the
Knative service `hello` (attack.py's run_skiff set-up, reused), measures the normal client
(~200 req/s over 4 keep-alive connections through the router's HTTP port) and the API GET
client quiet, then again while a separate process POSTs ConfigMaps to the API server as fast
as `--concurrency` connections allow (10,000 by default), and prints both p99s and their ratio.
Goal: the gateway's p99 during the burst within 2x of quiet. It also prints the CPU the
data-plane process(es) and the rest of skiff (the platform and its pods) used in each phase:
the data plane's barely moving shows the burst sends it nothing (no recompile, no push), so
what reaches the gateway is the two shared cores. Everything targets 127.0.0.1 and is
bounded; the only processes ended are the ones this script started, by PID. A benchmark,
never part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from attack import api_client, measure, start_skiff, stop, tree_cpu  # noqa: E402


async def burst(port: int, token: str, ca: str, creates: int, concurrency: int) -> dict[str, Any]:
    import aiohttp
    ctx = ssl.create_default_context(cafile=ca)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(creates):
        queue.put_nowait(i)
    errors = 0
    conn = aiohttp.TCPConnector(limit=concurrency, ssl=ctx)
    async with aiohttp.ClientSession(f"https://127.0.0.1:{port}", connector=conn,
                                     headers={"Authorization": f"Bearer {token}"}) as session:
        async def worker() -> None:
            nonlocal errors
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                body = {"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": f"burst-{i:05d}"}, "data": {"k": "v" * 64}}
                async with session.post("/api/v1/namespaces/default/configmaps", json=body) as r:
                    await r.read()
                    errors += r.status != 201
        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), 300)
    return {"creates": creates, "errors": errors, "seconds": time.perf_counter() - t0}


def dataplane_pids(platform: int) -> list[int]:
    """The data-plane processes `skiff up` (pid `platform`) supervises, from /proc."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == platform and b"skiff.dataplane" in argv:
            out.append(int(d))
    return out


def phase_cpu(platform: int, dp: list[int]) -> tuple[float, float]:
    """(data plane, the rest of skiff) CPU seconds so far."""
    d = tree_cpu(dp)
    return d, tree_cpu([platform]) - d


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--creates", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--measure", type=float, default=8.0)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--api-rate", type=float, default=50.0)
    ap.add_argument("--burster", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.burster:
        cfg = json.loads(args.burster)
        print(json.dumps(asyncio.run(burst(**cfg))), flush=True)
        return 0
    with tempfile.TemporaryDirectory(prefix="skiff-isolation-") as tmp_s:
        up, ports, home = start_skiff(Path(tmp_s))
        try:
            second = api_client(ports, home)
            token = second["token"]
            measure(ports["--http-port"], second, 2.0, args.rate, args.api_rate)   # warm-up
            dp = dataplane_pids(up.pid)
            q0 = phase_cpu(up.pid, dp)
            quiet = measure(ports["--http-port"], second, args.measure, args.rate, args.api_rate)
            q1 = phase_cpu(up.pid, dp)
            cfg = {"port": ports["api"], "token": token, "ca": str(home / "pki" / "ca.crt"),
                   "creates": args.creates, "concurrency": args.concurrency}
            c0 = tree_cpu([up.pid])
            b = subprocess.Popen([sys.executable, __file__, "--burster", json.dumps(cfg)],
                                 stdout=subprocess.PIPE)
            try:
                time.sleep(1.0)                          # let the burst get going
                l0 = phase_cpu(up.pid, dp)
                loaded = measure(ports["--http-port"], second, args.measure, args.rate,
                                 args.api_rate)
                l1 = phase_cpu(up.pid, dp)
                out, _ = b.communicate(timeout=330)
            finally:
                stop(b)
            skiff_cpu = tree_cpu([up.pid]) - c0
            stats = json.loads(out.decode().strip().splitlines()[-1])
        finally:
            stop(up)
    print(f"normal client ~{args.rate:.0f} req/s through the gateway, API GET ~{args.api_rate:.0f}/s; "
          f"{args.measure:.0f} s measured per phase")
    print(f"{'':34}{'p50 ms':>8}{'p99 ms':>9}{'n':>7}{'late':>6}")
    for label, r in (("quiet", quiet), ("during the create burst", loaded)):
        for who in ("gateway", "api"):
            x = r[who]
            n = x["n"] if "n" in x else round(x["rate"] * args.measure)   # sent, for the open loop
            print(f"{label + ' ' + who:34}{x['p50_ms']:8.2f}{x['p99_ms']:9.2f}{n:7d}"
                  f"{x['late']:6d}")
    print(f"CPU s in the measured {args.measure:.0f} s (data plane / rest of skiff): quiet "
          f"{q1[0] - q0[0]:.2f} / {q1[1] - q0[1]:.2f}, during the burst {l1[0] - l0[0]:.2f} / "
          f"{l1[1] - l0[1]:.2f} ({len(dp)} data-plane process(es))")
    ratio = loaded["gateway"]["p99_ms"] / quiet["gateway"]["p99_ms"]
    print(f"burst: {stats['creates']} creates in {stats['seconds']:.1f} s "
          f"({stats['creates'] / stats['seconds']:.0f}/s), {stats['errors']} errors; skiff CPU "
          f"{skiff_cpu:.1f} s")
    print(f"gateway p99 during the burst: {ratio:.2f}x quiet (goal <= 2x: "
          f"{'meets' if ratio <= 2 else 'MISSES'}); API GET p99 "
          f"{loaded['api']['p99_ms'] / quiet['api']['p99_ms']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
