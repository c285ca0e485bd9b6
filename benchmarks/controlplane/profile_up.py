"""Where `skiff up`'s start-up time and idle memory go: the platform run in-process.

    python benchmarks/controlplane/profile_up.py startup   # cProfile of imports + Platform.start()
    python benchmarks/controlplane/profile_up.py memory    # tracemalloc of an idle platform
    python benchmarks/controlplane/profile_up.py rss       # RSS and allocator state after each step

Companion to run.py (which measures from the outside). Starts skiff's Platform
in this process, in a temporary home on free loopback ports, exactly as
`skiff up` assembles it, and stops it again; nothing else is touched.
`memory` re-executes itself under `python -X tracemalloc=25` so that memory
allocated while importing is attributed too. `rss` shows where the resident
memory goes, step by step: shared libraries, pymalloc arenas (1 MiB each; one
stays resident while any object in it lives, so a transient peak of small
objects is kept as free pools) and the malloc heap. A benchmark tool, never
part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import pstats
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _up_and_down(home: Path, idle: float, on_ready=None, on_step=None) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from skiff.platform import Platform, Settings
    marks: dict[str, float] = {}
    t0 = time.perf_counter()

    def step(msg: str) -> None:
        marks[msg.split(" ")[0]] = time.perf_counter() - t0
        if on_step is not None:
            on_step("step: " + msg.split(" ")[0])

    p = Platform(Settings(home=home, api_port=free_port(), http_port=free_port(),
                          https_port=free_port(), local_gateway_port=free_port()), on_step=step)
    try:
        await p.start()
        marks["ready"] = time.perf_counter() - t0
        await asyncio.sleep(idle)
        if on_ready is not None:
            on_ready(p)
    finally:
        await p.stop()
    return marks


def startup(top: int) -> None:
    with tempfile.TemporaryDirectory(prefix="skiff-prof-") as tmp:
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        import uvloop

        import skiff.cli.main  # noqa: F401  (what `skiff up` imports before its t0)
        t_imp = time.perf_counter() - t0
        marks = uvloop.run(_up_and_down(Path(tmp) / "home", 0.0))
        prof.disable()
        print(f"imports {t_imp * 1000:.0f} ms; Platform.start steps (cumulative, under cProfile): "
              + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in marks.items()))
        for sort in ("cumulative", "tottime"):
            out = io.StringIO()
            st = pstats.Stats(prof, stream=out)
            st.sort_stats(sort).print_stats(top)
            print(f"\n--- by {sort} ---")
            print("\n".join(ln for ln in out.getvalue().splitlines() if ln.strip())[:20000])


def memory(top: int) -> None:
    if not tracemalloc.is_tracing():
        env = dict(os.environ)
        raise SystemExit(subprocess.call([sys.executable, "-X", "tracemalloc=25", *sys.argv], env=env))
    import uvloop

    import skiff.cli.main  # noqa: F401
    import skiff.platform  # noqa: F401
    gc.collect()
    after_imports = tracemalloc.take_snapshot()
    snaps: dict[str, tracemalloc.Snapshot] = {}
    types: list[tuple[str, int]] = []

    def grab(p):  # type: ignore[no-untyped-def]
        gc.collect()
        snaps["ready"] = tracemalloc.take_snapshot()
        counts = Counter(type(o).__name__ for o in gc.get_objects())
        types.extend(counts.most_common(12))

    with tempfile.TemporaryDirectory(prefix="skiff-prof-") as tmp:
        uvloop.run(_up_and_down(Path(tmp) / "home", 2.0, grab))
    imp_total = sum(s.size for s in after_imports.statistics("filename"))
    ready = snaps["ready"]
    ready_total = sum(s.size for s in ready.statistics("filename"))
    print(f"traced Python heap: after imports {imp_total / 2**20:.1f} MiB, idle platform "
          f"{ready_total / 2**20:.1f} MiB (what Python objects hold; the process RSS also has the "
          "interpreter, C extensions' memory, free pages and, here, tracemalloc's own records)")
    print("\n--- grown between imports and idle, by line (25-frame tracebacks, top frame) ---")
    for sd in ready.compare_to(after_imports, "lineno")[:top]:
        print(f"{sd.size_diff / 2**10:9.0f} KiB {sd.count_diff:8d} blocks  {sd.traceback[0]}")
    print("\n--- grown between imports and idle, by the innermost skiff frame ---")
    by_skiff: Counter[str] = Counter()
    diff = ready.compare_to(after_imports, "traceback")
    for sd in diff:
        if sd.size_diff <= 0:
            continue
        where = next((f"{f.filename.split('/src/')[-1]}:{f.lineno}" for f in sd.traceback
                      if "/skiff/" in f.filename), "(no skiff frame)")
        by_skiff[where] += sd.size_diff
    for where, size in by_skiff.most_common(top):
        print(f"{size / 2**10:9.0f} KiB  {where}")
    print("\n--- idle heap by file (imports included) ---")
    for st in ready.statistics("filename")[:top]:
        print(f"{st.size / 2**10:9.0f} KiB  {st.traceback[0].filename}")
    print("\n--- live objects by type ---")
    print(", ".join(f"{n} {c}" for n, c in types))


def _smaps() -> Counter[str]:
    """Resident KiB of this process by mapping: a shared library's path, [heap] or [anon]."""
    rss: Counter[str] = Counter()
    where = ""
    for line in Path("/proc/self/smaps").read_text().splitlines():
        parts = line.split()
        if parts and not parts[0].endswith(":"):
            where = parts[5] if len(parts) > 5 else "[anon]"
        elif parts and parts[0] == "Rss:":
            rss[where] += int(parts[1])
    return rss


def _arenas() -> str:
    """pymalloc's arenas now and the live bytes in them (from sys._debugmallocstats)."""
    r, w = os.pipe()
    saved = os.dup(2)
    os.dup2(w, 2)
    try:
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(w)
    chunks = []
    while chunk := os.read(r, 1 << 16):
        chunks.append(chunk)
    os.close(r)
    text = b"".join(chunks).decode()

    def num(label: str) -> int:
        for line in text.splitlines():
            if line.startswith(label):
                return int(line.split("=")[1].strip().replace(",", ""))
        return 0
    return (f"{num('# arenas allocated current'):3d} arenas, "
            f"{num('# bytes in allocated blocks') / 2**20:5.1f} MiB live in them")


def rss_steps() -> None:
    prev: Counter[str] = Counter()

    def show(label: str) -> None:
        nonlocal prev
        now = _smaps()
        libs = sum(v for k, v in now.items() if k.startswith("/"))
        grew = ", ".join(f"{k.rsplit('/', 1)[-1]} {(now[k] - prev[k]) / 1024:+.1f}"
                         for k in sorted(now, key=lambda k: prev[k] - now[k])
                         if abs(now[k] - prev[k]) >= 256)
        print(f"{label:28s} RSS {sum(now.values()) / 1024:5.1f} MiB: anon {now['[anon]'] / 1024:5.1f}, "
              f"heap {now['[heap]'] / 1024:5.1f}, files {libs / 1024:5.1f}; {_arenas()}"
              + (f"  ({grew})" if prev and grew else ""))
        prev = now

    show("bare interpreter + stdlib")
    import uvloop

    import skiff.cli.main  # noqa: F401
    show("imported skiff.cli.main")
    from skiff.platform import domain_installers, domain_kinds
    domain_kinds()
    domain_installers()
    gc.collect()
    show("imported what `up` imports")

    def idle(_p):  # type: ignore[no-untyped-def]
        gc.collect()
        show("idle (2 s after ready)")

    with tempfile.TemporaryDirectory(prefix="skiff-prof-") as tmp:
        uvloop.run(_up_and_down(Path(tmp) / "home", 2.0, idle, on_step=show))
    print("(in-process: without the CLI's own start-up work, e.g. typer's parameter coercion)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("startup", "memory", "rss"))
    ap.add_argument("--top", type=int, default=30)
    a = ap.parse_args()
    if a.what == "rss":
        rss_steps()
    else:
        (startup if a.what == "startup" else memory)(a.top)


if __name__ == "__main__":
    main()
