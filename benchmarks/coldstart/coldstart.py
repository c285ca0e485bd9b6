"""Cold start: request to first byte for a Knative Service at zero, beside the floor.

    python benchmarks/coldstart/coldstart.py [--trials 20] [--pod-network loopback|namespaces]

Starts a `skiff up` of this tree in a fresh home on free loopback ports, applies a
KnativeServing with the shortest windows upstream accepts (stable-window and
scale-to-zero-grace-period 6 s) and two ksvcs: the built-in hello-openshift, and a Python
app image (a local image: a script on the standard library's http.server, run by the
node's warm template), then, per trial and ksvc: waits until the revision has no pod (the
KPA scaled it to zero, the SKS is in Proxy mode) and times one curl through the router
and gateway (the activator holds it, pokes the KPA, the pod starts, the request goes
through): curl's time to first byte. Beside it, on the
same machine and in the same run:
- floor (fork): a warm Python process that has imported hello-openshift forks a child
  that binds and serves; time from the fork to the first response byte;
- python3 start: `python3 -m skiff.node.images.hello_openshift` started fresh; time to
  its first response byte.
Prints p50/p95 of each. Goal (issue 13): p50 <= 25 ms, p95 <= 50 ms through the
activator. Stops its skiff by PID; traffic only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from manifests import SHORT_WINDOWS  # noqa: E402
from skiffproc import new_skiff, wait_pod_network_free  # noqa: E402

KSVC = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: cold, namespace: default}
spec:
  template:
    spec:
      containers:
        - image: docker.io/openshift/hello-openshift
          env: [{name: RESPONSE, value: "cold"}]
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: coldpy, namespace: default}
spec:
  template:
    spec:
      containers:
        - image: skiff.local/pyapp
"""
# A Python app image as a user builds one: a local image (image.json and a script in the
# home's image store, as a pipeline leaves them) whose server is the standard library's.
PY_APP = """
import http.server, os

class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"hello from python\\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("", int(os.environ.get("PORT", "8080"))), Hello).serve_forever()
"""
IMAGES = {"cold": "built-in image (hello-openshift)", "coldpy": "Python app image (http.server)"}
DOMAIN = "apps.127.0.0.1.sslip.io"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def first_byte(port: int, deadline: float = 5.0) -> float:
    """Seconds from now until a GET to 127.0.0.1:port answers its first byte."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(1):
                    return time.perf_counter() - t0
        except OSError:
            time.sleep(0.0005)
    raise TimeoutError(f"nothing answered on {port}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def floor_fork(trials: int) -> list[float]:
    """A warm interpreter with hello-openshift imported forks; the child serves."""
    import skiff.node.images.hello_openshift as hello  # noqa: F401  (warm, as the fork server)
    out = []
    for _ in range(trials):
        port = free_port()
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os.environ["PORT"] = str(port)
            try:
                hello.main()
            finally:
                os._exit(0)
        try:
            first_byte(port)
            out.append(time.perf_counter() - t0)
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    return out


def python_start(trials: int) -> list[float]:
    out = []
    for _ in range(trials):
        port = free_port()
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "skiff.node.images.hello_openshift"],
                             env={**os.environ, "PORT": str(port)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            first_byte(port, 10)
            out.append(time.perf_counter() - t0)
        finally:
            p.kill()
            p.wait()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--pod-network", default="loopback")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    fork = floor_fork(args.trials)
    py = python_start(args.trials)

    s = new_skiff(Path(tempfile.mkdtemp(prefix="skiff-coldstart-")))
    s.extra_args = ["--pod-network", args.pod_network]
    image = s.home / "images" / "pyapp"
    image.mkdir(parents=True)
    (image / "app.py").write_text(PY_APP)
    (image / "image.json").write_text(json.dumps({"cmd": ["python3", "app.py"], "workdir": "."}))
    if args.pod_network == "namespaces":
        wait_pod_network_free()
    s.start(timeout=60)
    cold: dict[str, list[float]] = {name: [] for name in IMAGES}
    try:
        s.kubectl("apply", "-f", "-", input=SHORT_WINDOWS)
        s.kubectl("wait", "--for=condition=Ready", "knativeserving/knative-serving", "-n",
                  "knative-serving", "--timeout=60s", timeout=70)
        s.kubectl("apply", "-f", "-", input=KSVC)
        for name in IMAGES:
            s.kubectl("wait", "--for=condition=Ready", f"ksvc/{name}", "--timeout=90s",
                      timeout=100)
        port = s.ports["--http-port"]

        def at_zero(name: str) -> bool:
            pods = s.kubectl("get", "pods", "-l", f"serving.knative.dev/service={name}", "-o",
                             "name").stdout.split()
            sks = json.loads(s.kubectl("get", "sks", f"{name}-00001", "-o", "json").stdout)
            return not pods and sks["spec"]["mode"] == "Proxy"
        for i in range(args.trials):
            for name in IMAGES:
                host = f"{name}-default.{DOMAIN}"
                s.wait_for(lambda n=name: at_zero(n), timeout=120, interval=0.5,
                           what=f"{name} at zero")
                time.sleep(0.5)
                r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w",
                                    "%{http_code} %{time_starttransfer}", "--max-time", "60",
                                    "--resolve", f"{host}:{port}:127.0.0.1",
                                    f"http://{host}:{port}/"], capture_output=True, text=True,
                                   timeout=90)
                code, took = r.stdout.split()
                if code != "200":
                    raise RuntimeError(f"{name}: HTTP {code}")
                cold[name].append(float(took))
                print(f"trial {i + 1} {name}: {cold[name][-1] * 1000:.1f} ms", flush=True)
    finally:
        s.stop()

    rows = [*((f"from zero, {IMAGES[n]}", xs) for n, xs in cold.items()),
            ("floor: fork + first response", fork), ("python3 start + first response", py)]
    print(f"\n{'path':48} {'p50 ms':>9} {'p95 ms':>9} {'n':>4}")
    for name, xs in rows:
        print(f"{name:48} {statistics.median(xs) * 1000:9.1f} {pct(xs, 0.95) * 1000:9.1f} "
              f"{len(xs):4}")
    if args.json:
        args.json.write_text(json.dumps({n: xs for n, xs in rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
