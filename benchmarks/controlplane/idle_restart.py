"""Idle CPU after a restart, with 1,000 objects in the store (goal: under 1% of a core).

    python benchmarks/controlplane/idle_restart.py [--objects 1000] [--window 20]

Starts its own `skiff up` (the Skiff helper of run.py: temporary home, free loopback ports),
creates the objects (ConfigMaps through the API, and the last write a delete, so that no
stored object carries the store's resourceVersion: the case that used to loop on 410 Expired),
measures the CPU seconds of skiff and its children over an idle window, stops it with
SIGTERM, starts it again on the same home and measures the same window. The peer is the
first, fresh run: after the restart skiff should be as idle as before it. A benchmark, never
part of the test suite; it ends only the process it started, by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from run import Skiff, create_many, machine, new_session  # noqa: E402


def idle_share(s: Skiff, settle: float, window: float) -> float:
    """CPU seconds per second of skiff (+ children) over an idle window, after settling."""
    time.sleep(settle)
    before = s.cpu_seconds()
    time.sleep(window)
    return (s.cpu_seconds() - before) / window


async def delete_one(s: Skiff, ns: str, name: str) -> None:
    async with new_session(s, 1) as session, \
            session.delete(f"/api/v1/namespaces/{ns}/configmaps/{name}") as r:
        await r.read()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=1000)
    ap.add_argument("--window", type=float, default=20.0)
    ap.add_argument("--settle", type=float, default=3.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="skiff-idle-") as tmp:
        s = Skiff(Path(tmp))
        try:
            s.start()
            secs, errors = asyncio.run(create_many(s, ["default"], args.objects + 1, 16))
            asyncio.run(delete_one(s, "default", f"cm-{args.objects:05d}"))
            print(f"created {args.objects + 1} ConfigMaps in {secs:.1f} s ({errors} errors), "
                  "deleted the last", flush=True)
            fresh = idle_share(s, args.settle, args.window)
            s.stop()
            s.start()
            restarted = idle_share(s, args.settle, args.window)
        finally:
            s.stop()
    print(f"machine: {machine()}")
    print(f"idle CPU over {args.window:.0f} s with {args.objects} objects:")
    print(f"  fresh start (peer)  {fresh * 100:6.2f}% of a core")
    print(f"  after a restart     {restarted * 100:6.2f}% of a core   (goal < 1%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
