"""Resident memory per meshed pod: the node proxy in the data-plane process and the per-pod
istio-proxy container (the pilot-agent stand-in, node/images/proxyv2.py), at 0, 10 and 40
meshed pods.

Not part of the test suite. Needs root (network namespaces):

    python benchmarks/mesh/memory.py                 # ~2-3 minutes
    python benchmarks/mesh/memory.py --counts 0,5    # a smoke test of the benchmark
    python benchmarks/mesh/memory.py --json /tmp/mem.json

What runs: one `skiff up --pod-network namespaces` of this tree (PYTHONPATH=src) in a fresh
home on free loopback ports (it waits, --lock-wait, while another skiff owns the pod network),
a mesh (SMCP with mTLS, an SMMR with the namespace mesh-mem) and a Deployment of
docker.io/openshift/hello-openshift with sidecar.istio.io/inject: "true", scaled to each
count in turn (then back to 0, to see what is given back). At each count, once the rollout
is done and every pod is READY 2/2 (so the data plane has opened each pod's listeners: the
istio-proxy container's readiness is the data plane's 15021 inside the pod), after a settle
time, psutil reads (memory_full_info, from smaps):
  - the data-plane process (<home>/dataplane.pid): RSS, PSS, USS;
  - every istio-proxy process of this skiff (cmdline `... skiff.node.images.proxyv2 proxy
    sidecar ...`): the sum and mean of PSS and USS, and RSS;
  - for context, the app processes (children of the fork server other than istio-proxy).
Per meshed pod = the data plane's slope (RSS at the largest count - RSS at 0) / count, plus
the mean istio-proxy PSS. Goal (mesh issue): <= 5 MB per meshed pod (an Envoy sidecar is
about 60 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Skiff, log, mem_of, mesh_manifest, skiff_cli  # noqa: E402

NS = "mesh-mem"
DEPLOY = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: mem, namespace: {NS}}}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: mem}}}}
  template:
    metadata:
      labels: {{app: mem}}
      annotations: {{sidecar.istio.io/inject: "true"}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: web
          image: docker.io/openshift/hello-openshift
          # declared: without it the app's $PORT is the pod's first declared port, which
          # is the injected istio-proxy's 15090 (skiff node/ports.py container_port)
          ports: [{{containerPort: 8080}}]
          readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
"""


def container_of(p: psutil.Process) -> str | None:
    """The container a pod process runs: its stdout is <home>/pods/<pod>/<container>/<n>.log
    (or .pipe). Forked children keep the fork server's cmdline, so that is no guide."""
    try:
        out = os.readlink(f"/proc/{p.pid}/fd/1")
    except OSError:
        return None
    parts = Path(out).parts
    if "pods" in parts and len(parts) >= 3 and parts[-1].split(".")[-1] in ("log", "pipe"):
        return parts[-2]
    return None


def proxy_and_apps(root_pid: int) -> tuple[list[psutil.Process], list[psutil.Process]]:
    proxies, apps = [], []
    for p in psutil.Process(root_pid).children(recursive=True):
        name = container_of(p)
        if name == "istio-proxy":
            proxies.append(p)
        elif name == "web":
            apps.append(p)
    return proxies, apps


def wait_ready(s: Skiff, n: int, timeout: float = 300) -> float:
    t0 = time.monotonic()
    end = t0 + timeout
    while time.monotonic() < end:
        pods = json.loads(s.kubectl("get", "pods", "-n", NS, "-l", "app=mem", "-o", "json"))
        items = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
        ready = [p for p in items
                 if all(c.get("ready") for c in p.get("status", {}).get("containerStatuses", []))
                 and len(p.get("status", {}).get("containerStatuses", [])) == 2]
        if len(items) == n and len(ready) == n and len(pods["items"]) == n:
            return time.monotonic() - t0
        time.sleep(0.5)
    raise TimeoutError(f"{n} meshed pods not READY 2/2 in {timeout}s")


def sample(s: Skiff, dp_pid: int) -> dict[str, Any]:
    assert s.proc is not None
    proxies, apps = proxy_and_apps(s.proc.pid)
    pm = [mem_of(p.pid) for p in proxies]
    am = [mem_of(p.pid) for p in apps]
    dp = mem_of(dp_pid)
    nfd = len(os.listdir(f"/proc/{dp_pid}/fd"))
    threads = psutil.Process(dp_pid).num_threads()
    return {"dataplane": dp, "dataplane_fds": nfd, "dataplane_threads": threads,
            "proxies": len(pm),
            "proxy_pss_sum": sum(m["pss"] for m in pm), "proxy_uss_sum": sum(m["uss"] for m in pm),
            "proxy_pss_mean": statistics.mean(m["pss"] for m in pm) if pm else 0.0,
            "proxy_uss_mean": statistics.mean(m["uss"] for m in pm) if pm else 0.0,
            "proxy_rss_mean": statistics.mean(m["rss"] for m in pm) if pm else 0.0,
            "apps": len(am), "app_pss_mean": statistics.mean(m["pss"] for m in am) if am else 0.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", default="0,10,40")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds after READY")
    ap.add_argument("--lock-wait", type=float, default=600)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="skiff-mesh-mem-"))
    s = Skiff("namespaces", root=tmp)
    rows: list[dict[str, Any]] = []
    result: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"),
                              "nproc": os.cpu_count(), "python": platform.python_version(),
                              "load_start": os.getloadavg()}
    try:
        log("starting skiff (namespaces) ...")
        s.start(lock_deadline_s=args.lock_wait)
        dp_pid = int((s.home / "dataplane.pid").read_text().split()[0])
        base = sample(s, dp_pid)
        rows.append({"count": "before mesh", **base})
        skiff_cli(s, "apply", "-f", "-", input=mesh_manifest(NS))
        s.kubectl("apply", "-f", "-", input=DEPLOY)
        for n in [*counts, 0] if counts[-1] != 0 else counts:
            s.kubectl("scale", "deployment/mem", "-n", NS, f"--replicas={n}")
            took = wait_ready(s, n)
            time.sleep(args.settle)
            row = {"count": n, "ready_s": took, **sample(s, dp_pid)}
            rows.append(row)
            log(f"{n} meshed pods (ready in {took:.1f} s): data plane RSS "
                f"{row['dataplane']['rss']:.1f} PSS {row['dataplane']['pss']:.1f} USS "
                f"{row['dataplane']['uss']:.1f} MiB, {row['dataplane_fds']} fds; istio-proxy "
                f"x{row['proxies']}: PSS mean {row['proxy_pss_mean']:.2f} USS mean "
                f"{row['proxy_uss_mean']:.2f} RSS mean {row['proxy_rss_mean']:.2f} MiB")
        result["load_end"] = os.getloadavg()
    finally:
        s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result["rows"] = rows
    print_report(result, counts)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def print_report(r: dict[str, Any], counts: list[int]) -> None:
    rows = r["rows"]
    print(f"\nmeshed pod memory, {r['started']}, nproc {r['nproc']}, Python {r['python']}, load "
          f"{r['load_start'][0]:.2f} -> {r['load_end'][0]:.2f} (MiB)")
    print(f"{'meshed pods':<12} {'DP RSS':>8} {'DP PSS':>8} {'DP USS':>8} {'DP fds':>7} "
          f"{'proxies':>7} {'proxy PSS sum':>13} {'PSS mean':>9} {'USS mean':>9} {'RSS mean':>9} "
          f"{'app PSS mean':>12}")
    for row in rows:
        d = row["dataplane"]
        print(f"{row['count']!s:<12} {d['rss']:>8.1f} {d['pss']:>8.1f} {d['uss']:>8.1f} "
              f"{row['dataplane_fds']:>7} {row['proxies']:>7} {row['proxy_pss_sum']:>13.1f} "
              f"{row['proxy_pss_mean']:>9.2f} {row['proxy_uss_mean']:>9.2f} "
              f"{row['proxy_rss_mean']:>9.2f} {row['app_pss_mean']:>12.2f}")
    measured = [row for row in rows if isinstance(row["count"], int)]
    zero = measured[0]
    top = max(measured, key=lambda x: x["count"])
    n = top["count"]
    if not n:
        return
    slope_rss = (top["dataplane"]["rss"] - zero["dataplane"]["rss"]) / n
    slope_uss = (top["dataplane"]["uss"] - zero["dataplane"]["uss"]) / n
    per_pod = slope_rss + top["proxy_pss_mean"]
    mib = 1.048576
    print(f"\ndata plane slope 0 -> {n}: {slope_rss * 1024:.0f} KiB RSS per pod "
          f"({slope_uss * 1024:.0f} KiB USS); istio-proxy PSS {top['proxy_pss_mean']:.2f} MiB "
          f"per pod (USS {top['proxy_uss_mean']:.2f})")
    print(f"per meshed pod: {per_pod:.2f} MiB = {per_pod * mib:.2f} MB; goal <= 5 MB: "
          f"{'met' if per_pod * mib <= 5 else 'MISSED'}")


if __name__ == "__main__":
    sys.exit(main())
