"""The serving path's hops: what queue-proxy and the activator add to a request, in one run.

    apt-get install -y wrk
    python benchmarks/autoscale/hops.py [--seconds 5] [--rate 500] [--rounds 3]

A `skiff up` of this tree (loopback pod network, fresh home, free ports; ended by its PID)
with two ksvcs of hello-openshift at one pod each (min-scale = max-scale = 1):
`direct` with target-burst-capacity 0 (its SKS serves: the gateway sends to the pod) and
`proxied` with target-burst-capacity -1 (its SKS stays in Proxy mode: the activator picks
the pod for every request). For each, in interleaved rounds, the same client measures:
- app: the pod's user container on its loopback port (no proxy at all);
- queue: the pod's queue-proxy (8012's loopback port) -> app;
- gateway: router -> gateway -> queue-proxy -> app (Host: <ksvc>-default.<domain>);
and for `proxied`, the gateway path with the activator choosing the pod. Figures: a fixed
rate (open loop, 8 keep-alive connections) p50/p99, and wrk -t1 -c8 requests/s; the added
p50 of each hop is the difference of the medians over the rounds. Goal (issue 13): the
activator adds <= 0.3 ms p50 when it is in the path. Traffic only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "network"))
sys.path.insert(0, str(HERE.parent / "gateway"))

from _skiff import Skiff, log  # noqa: E402
from run import fixed_rate, run_wrk  # noqa: E402

DOMAIN = "apps.127.0.0.1.sslip.io"
KSVC = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/min-scale: "1"
        autoscaling.knative.dev/max-scale: "1"
        autoscaling.knative.dev/target-burst-capacity: "{tbc}"
    spec:
      containers:
        - image: docker.io/openshift/hello-openshift
"""


def pod_ports(s: Skiff, rev: str) -> dict[str, int]:
    out = json.loads(s.kubectl("get", "pods", "-l", f"serving.knative.dev/revision={rev}",
                               "-o", "json"))
    (pod,) = [p for p in out["items"] if not p["metadata"].get("deletionTimestamp")]
    return {k: int(v) for k, v in
            json.loads(pod["metadata"]["annotations"]["skiff.dev/ports"]).items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    s = Skiff("loopback")
    s.start()
    try:
        for name, tbc in (("direct", "0"), ("proxied", "-1")):
            s.kubectl("apply", "-f", "-", input=KSVC.format(name=name, tbc=tbc))
        for name in ("direct", "proxied"):
            s.kubectl("wait", "--for=condition=Ready", f"ksvc/{name}", "--timeout=90s")
        want = {"direct": "Serve", "proxied": "Proxy"}
        deadline = time.monotonic() + 60     # the KPA's first ticks with data settle the modes
        while True:
            modes = {n: json.loads(s.kubectl("get", "sks", f"{n}-00001", "-o", "json"))
                     ["spec"]["mode"] for n in want}
            if modes == want or time.monotonic() > deadline:
                break
            time.sleep(1)
        log(f"SKS modes: {modes}")
        if modes != want:
            raise RuntimeError(f"unexpected SKS modes {modes}")
        gw = s.ports["--http-port"]
        targets: dict[str, tuple[int, str]] = {}
        ports = {name: pod_ports(s, f"{name}-00001") for name in ("direct", "proxied")}
        # each kind of path for both services back to back, so that a change in the machine's
        # load between them is as small as it can be
        for name in ("direct", "proxied"):
            targets[f"{name}: app"] = (ports[name]["8080"], "127.0.0.1")
        for name in ("direct", "proxied"):
            targets[f"{name}: queue-proxy"] = (ports[name]["8012"], "127.0.0.1")
        for name in ("direct", "proxied"):
            targets[f"{name}: gateway"] = (gw, f"{name}-default.{DOMAIN}")
        results: dict[str, dict[str, list[float]]] = {k: {"p50": [], "p99": [], "rps": []}
                                                      for k in targets}
        for r in range(args.rounds):
            for label, (port, host) in targets.items():
                fr = asyncio.run(fixed_rate(port, args.rate, args.seconds, host, None))
                wk = run_wrk(f"http://127.0.0.1:{port}/", int(args.seconds), 8, host)
                results[label]["p50"].append(fr["p50_ms"])
                results[label]["p99"].append(fr["p99_ms"])
                results[label]["rps"].append(wk["rps"])
                log(f"round {r + 1} {label}: p50 {fr['p50_ms']:.3f} ms p99 {fr['p99_ms']:.3f} ms "
                    f"late {fr['late']}, wrk {wk['rps']:.0f} req/s")
        med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in results.items()}
        print(f"\n| path | p50 ms at {args.rate:.0f}/s | p99 ms | wrk -c8 req/s |")
        print("|---|---|---|---|")
        for label, m in med.items():
            print(f"| {label} | {m['p50']:.3f} | {m['p99']:.3f} | {m['rps']:.0f} |")
        for name in ("direct", "proxied"):
            q = med[f"{name}: queue-proxy"]["p50"] - med[f"{name}: app"]["p50"]
            g = med[f"{name}: gateway"]["p50"] - med[f"{name}: queue-proxy"]["p50"]
            print(f"{name}: queue-proxy adds {q:+.3f} ms p50; the gateway hop adds {g:+.3f} ms")
        diffs = [p - d for p, d in zip(results["proxied: gateway"]["p50"],
                                       results["direct: gateway"]["p50"], strict=True)]
        act = statistics.median(diffs)
        print(f"the activator in the path adds {act:+.3f} ms p50, the median of the rounds' "
              f"differences ({', '.join(f'{d:+.3f}' for d in diffs)}); goal <= 0.3 ms")
        return 0
    finally:
        s.stop()


if __name__ == "__main__":
    sys.exit(main())
