"""Autoscaling: time from a 10x load step to the new pod count.

    python benchmarks/autoscale/autoscale.py [--target 2] [--base 1] [--step 10]

Needs wrk (apt-get install wrk). Starts a `skiff up` of this tree (shared loopback) in a
fresh home, a KnativeServing with the shortest stable window upstream accepts (6 s; the
panic window is 10% of it, at least 1 s), and a ksvc of hello-openshift with
`autoscaling.knative.dev/target` = --target requests in flight per pod. It holds --base
connections of load (wrk, keep-alive) until the revision is steady, then steps to --step
connections (10x) and samples every 100 ms: the PodAutoscaler's desiredScale, the
Deployment's replicas and its ready replicas. Prints when each first reached the count the
KPA settled on for the step, counted from the step. Upstream ticks every 2 s and enters
panic mode when the panic window's average is twice what the ready pods can take, so the
floor here is about one tick plus a pod start. Stops its skiff by PID; traffic only to
127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from manifests import SHORT_WINDOWS  # noqa: E402
from skiffproc import new_skiff  # noqa: E402

KSVC = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: step, namespace: default}}
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/target: "{target}"
        autoscaling.knative.dev/min-scale: "1"
    spec:
      containers:
        - image: docker.io/openshift/hello-openshift
          env: [{{name: RESPONSE, value: "step"}}]
"""
DOMAIN = "apps.127.0.0.1.sslip.io"


def wrk(url: str, host: str, connections: int, seconds: int) -> subprocess.Popen[str]:
    return subprocess.Popen(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-H",
                             f"Host: {host}", url], stdout=subprocess.PIPE, text=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", type=float, default=2)
    ap.add_argument("--base", type=int, default=1)
    ap.add_argument("--step", type=int, default=10)
    ap.add_argument("--observe", type=int, default=30, help="seconds to watch after the step")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install -y wrk", file=sys.stderr)
        return 2

    s = new_skiff(Path(tempfile.mkdtemp(prefix="skiff-autoscale-")))
    s.extra_args = ["--pod-network", "loopback"]
    s.start(timeout=60)
    try:
        s.kubectl("apply", "-f", "-", input=SHORT_WINDOWS)
        s.kubectl("wait", "--for=condition=Ready", "knativeserving/knative-serving", "-n",
                  "knative-serving", "--timeout=60s", timeout=70)
        s.kubectl("apply", "-f", "-", input=KSVC.format(target=args.target))
        s.kubectl("wait", "--for=condition=Ready", "ksvc/step", "--timeout=90s", timeout=100)
        host = f"step-default.{DOMAIN}"
        url = f"http://127.0.0.1:{s.ports['--http-port']}/"

        def sample() -> tuple[int, int, int]:
            pa = json.loads(s.kubectl("get", "kpa", "step-00001", "-o", "json").stdout)
            d = json.loads(s.kubectl("get", "deployment", "step-00001-deployment", "-o",
                                     "json").stdout)
            return (int(pa.get("status", {}).get("desiredScale") or 0),
                    int(d["spec"].get("replicas") or 0),
                    int(d.get("status", {}).get("readyReplicas") or 0))

        base = wrk(url, host, args.base, 20 + args.observe + 5)
        time.sleep(15)
        before = sample()
        print(f"steady at {args.base} connection(s): desired/replicas/ready = {before}")
        step = wrk(url, host, args.step, args.observe)
        t0 = time.monotonic()
        timeline: list[tuple[float, tuple[int, int, int]]] = []
        while time.monotonic() - t0 < args.observe:
            timeline.append((time.monotonic() - t0, sample()))
            time.sleep(0.1)
        step.wait()
        base.kill()
        base.wait()
        settled = max(v[0] for _, v in timeline)

        def first(i: int) -> float | None:
            return next((t for t, v in timeline if v[i] >= settled), None)
        print(f"after the step to {args.step} connections the KPA asked for {settled} pods")
        for name, i in (("desiredScale (the decision)", 0), ("Deployment replicas", 1),
                        ("ready pods", 2)):
            t = first(i)
            print(f"  {name:30} {'not reached' if t is None else f'{t:.2f} s'}")
        changes, last = [], None
        for t, v in timeline:
            if v != last:
                changes.append(f"{t:.2f} s {v}")
                last = v
        print("  desired/replicas/ready as they changed:", "; ".join(changes))
        print("step's wrk:", (step.stdout.read() if step.stdout else "").strip().splitlines()[-2:])
    finally:
        s.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
