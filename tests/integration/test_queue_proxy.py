"""queue-proxy in the revision pods of a real `skiff up` (loopback pod network), through the gateway.

The app is a slow one: a local image (`skiff.local/slow`, an image.json and a
Python script in the home's image store, as a pipeline would leave them)
that sleeps ?sleep=seconds before answering and counts how many requests it
holds at once (GET /peak). Checked with real curl through the gateway:
- the pod is 2/2 with user-container and queue-proxy, whose log says what it serves;
- containerConcurrency 1: parallel clients are served one at a time, all 200;
- its queue (10 x cc) full: 503 "pending request queue full", the rest 200;
- timeoutSeconds: 504;
- a pod that never becomes ready: the activator answers 503 once the revision's
  timeoutSeconds have passed, and the revision says so (Active False, TimedOut);
- the activator in the path picks the pod with free capacity, and with a
  containerConcurrency holds what no pod has room for (upstream's throttler);
- a scale-down under steady load loses no request: the pods that go are
  drained (the user container's preStop waits on queue-proxy's
  /wait-for-drain) while the gateway already sends elsewhere.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from manifests import SHORT_WINDOWS
from skiffproc import Skiff, new_skiff

DOMAIN = "apps.127.0.0.1.sslip.io"

SLOW_APP = r'''
import os, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse
lock = threading.Lock()
now = peak = served = 0

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        global now, peak, served
        if self.path == "/peak":
            body = str(peak).encode()
        elif self.path == "/count":
            body = str(served).encode()
        elif self.path == "/now":
            body = str(now).encode()
        else:
            with lock:
                now += 1
                peak = max(peak, now)
            try:
                time.sleep(float(parse_qs(urlparse(self.path).query).get("sleep", ["0"])[0]))
            finally:
                with lock:
                    now -= 1
                    served += 1
            body = b"slow\n"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

s = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H)
s.daemon_threads = True
print("listening", flush=True)
s.serve_forever()
'''

KSVC = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  template:
    metadata:
      annotations: {annotations}
    spec:
      containerConcurrency: {cc}
      timeoutSeconds: {timeout}
      containers:
        - image: skiff.local/{image}
"""


@pytest.fixture(scope="module")
def skiff(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Skiff]:
    s = new_skiff(tmp_path_factory.mktemp("skiff"))
    s.extra_args = ["--pod-network", "loopback"]
    image = s.home / "images" / "slow"
    image.mkdir(parents=True)
    (image / "app.py").write_text(SLOW_APP)
    (image / "image.json").write_text(json.dumps({"cmd": ["python3", "app.py"], "workdir": "."}))
    s.start()
    try:
        s.kubectl("apply", "-f", "-", input=SHORT_WINDOWS)
        s.kubectl("wait", "--for=condition=Ready", "knativeserving/knative-serving",
                  "-n", "knative-serving", "--timeout=60s", timeout=70)
        yield s
    finally:
        if s.proc is not None:
            s.stop()


def deploy(skiff: Skiff, name: str, cc: int = 0, timeout: int = 300,
           annotations: dict[str, str] | None = None, image: str = "slow") -> None:
    skiff.kubectl("apply", "-f", "-", input=KSVC.format(
        name=name, cc=cc, timeout=timeout, annotations=json.dumps(annotations or {}),
        image=image))
    skiff.kubectl("wait", "--for=condition=Ready", f"ksvc/{name}", "--timeout=90s", timeout=100)


def curl(skiff: Skiff, name: str, path: str = "/", max_time: int = 30) -> tuple[str, str]:
    host = f"{name}-default.{DOMAIN}"
    port = skiff.ports["--http-port"]
    r = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", "--max-time", str(max_time),
                        "--resolve", f"{host}:{port}:127.0.0.1", f"http://{host}:{port}{path}"],
                       capture_output=True, text=True, timeout=max_time + 10)
    body, _, code = r.stdout.rpartition("\n")
    return code, body.rstrip("\n")


def pods(skiff: Skiff, rev: str) -> list[dict[str, Any]]:
    items = skiff.kubectl_json("get", "pods", "-l", f"serving.knative.dev/revision={rev}")
    return list(items["items"])


PINNED = {"autoscaling.knative.dev/min-scale": "1", "autoscaling.knative.dev/max-scale": "1"}


def deploy_burst(skiff: Skiff, name: str, tbc: str, mode: str) -> None:
    """cc 1 on one pod, with this target-burst-capacity; waits for the SKS to be in `mode`."""
    deploy(skiff, name, cc=1, annotations={
        **PINNED, "autoscaling.knative.dev/target-burst-capacity": tbc})
    skiff.wait_for(lambda: skiff.kubectl_json("get", "sks", f"{name}-00001")["spec"].get(
        "mode") == mode, timeout=30, what=f"the SKS in {mode} mode")


def test_the_pod_has_its_queue_proxy(skiff: Skiff) -> None:
    deploy(skiff, "plain", annotations=PINNED)
    assert curl(skiff, "plain") == ("200", "slow")
    (pod,) = pods(skiff, "plain-00001")
    assert [c["name"] for c in pod["spec"]["containers"]] == ["user-container", "queue-proxy"]
    assert all(s["ready"] for s in pod["status"]["containerStatuses"])
    table = skiff.kubectl("get", "pods", "-l", "serving.knative.dev/revision=plain-00001").stdout
    assert " 2/2 " in table, table
    logs = skiff.kubectl("logs", pod["metadata"]["name"], "-c", "queue-proxy").stdout
    assert "queue-proxy: serving default/plain-00001 on 8012, app on 8080" in logs
    eps = skiff.kubectl_json("get", "endpoints", "plain-00001-private")
    assert eps["subsets"][0]["ports"][0]["port"] != 8080   # the queue's, not the app's


def test_cc1_serves_parallel_clients_one_at_a_time(skiff: Skiff) -> None:
    deploy(skiff, "serial", cc=1, annotations=PINNED)
    with ThreadPoolExecutor(5) as ex:
        results = list(ex.map(lambda _: curl(skiff, "serial", "/?sleep=0.3"), range(5)))
    assert results == [("200", "slow")] * 5
    assert curl(skiff, "serial", "/peak") == ("200", "1")


def test_a_full_queue_is_503_and_the_rest_are_served(skiff: Skiff) -> None:
    # target-burst-capacity 0: the activator leaves the path once the pod is ready (SKS
    # Serve), so the pod's own queue takes the burst (in the path, the activator would hold
    # the excess: the throttling test below)
    deploy_burst(skiff, "full", tbc="0", mode="Serve")
    with ThreadPoolExecutor(16) as ex:
        results = list(ex.map(lambda _: curl(skiff, "full", "/?sleep=1"), range(16)))
    codes = [c for c, _ in results]
    assert set(codes) == {"200", "503"}, results
    assert all(b == "pending request queue full" for c, b in results if c == "503"), results
    assert codes.count("200") >= 10


def test_timeout_seconds_is_504(skiff: Skiff) -> None:
    deploy(skiff, "hasty", timeout=1, annotations=PINNED)
    code, body = curl(skiff, "hasty", "/?sleep=4")
    assert code == "504" and "timeout" in body
    assert curl(skiff, "hasty") == ("200", "slow")


def test_a_scale_down_under_load_loses_nothing(skiff: Skiff) -> None:
    # three pods to start, a target no steady trickle needs three pods for: the KPA takes
    # them away (after the 6 s stable window) while four clients keep asking
    deploy(skiff, "shrink", annotations={"autoscaling.knative.dev/initial-scale": "3",
                                         "autoscaling.knative.dev/target": "100"})
    skiff.wait_for(lambda: len([p for p in pods(skiff, "shrink-00001")
                                if all(s["ready"] for s in p["status"].get(
                                    "containerStatuses") or [])]) == 3,
                   timeout=60, what="three ready pods")
    stop = threading.Event()
    outcomes: list[tuple[str, str]] = []
    lock = threading.Lock()

    def client() -> None:
        while not stop.is_set():
            r = curl(skiff, "shrink", "/?sleep=0.2")
            with lock:
                outcomes.append(r)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        skiff.wait_for(lambda: len(pods(skiff, "shrink-00001")) <= 1, timeout=90,
                       interval=0.5, what="scaled down to one pod")
        time.sleep(2)     # requests across the last pod's removal, too
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    errors = [r for r in outcomes if r != ("200", "slow")]
    assert len(outcomes) > 20 and not errors, (len(outcomes), errors[:5])


def test_a_revision_retired_by_a_traffic_change_loses_nothing(skiff: Skiff) -> None:
    deploy(skiff, "roll", annotations={"autoscaling.knative.dev/min-scale": "1"})
    stop = threading.Event()
    outcomes: list[tuple[str, str]] = []
    lock = threading.Lock()

    def client() -> None:
        while not stop.is_set():
            r = curl(skiff, "roll", "/?sleep=0.2")
            with lock:
                outcomes.append(r)

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(1)
        # a new template: revision roll-00002 takes all traffic; roll-00001's pod goes
        deploy(skiff, "roll", annotations={"autoscaling.knative.dev/min-scale": "1",
                                           "skiff.test/generation": "2"})
        skiff.wait_for(lambda: not pods(skiff, "roll-00001"), timeout=90, interval=0.5,
                       what="the old revision's pod gone")
        time.sleep(1)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    errors = [r for r in outcomes if r != ("200", "slow")]
    assert len(outcomes) > 10 and not errors, (len(outcomes), errors[:5])
    # the retired revision: reserve, scaled to zero though its min-scale says 1 (upstream
    # honours min-scale only while a revision is routable), still Ready, and says NoTraffic
    old = skiff.kubectl_json("get", "revision", "roll-00001")
    assert old["metadata"]["labels"]["serving.knative.dev/routingState"] == "reserve"
    assert skiff.kubectl_json("get", "deployment", "roll-00001-deployment")["spec"]["replicas"] == 0

    def active(rev: dict[str, Any]) -> dict[str, Any]:
        return next((c for c in rev["status"].get("conditions") or [] if c["type"] == "Active"),
                    {})
    ready = next(c for c in old["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", old["status"]
    skiff.wait_for(lambda: active(skiff.kubectl_json("get", "revision", "roll-00001"))
                   .get("reason") == "NoTraffic", timeout=30, what="roll-00001 NoTraffic")


def test_the_activator_in_the_path_sends_to_the_pod_with_free_capacity(skiff: Skiff) -> None:
    # target-burst-capacity -1: the activator stays in the path with pods ready (SKS Proxy)
    deploy(skiff, "lb", annotations={"autoscaling.knative.dev/min-scale": "2",
                                     "autoscaling.knative.dev/max-scale": "2",
                                     "autoscaling.knative.dev/target-burst-capacity": "-1"})
    skiff.wait_for(lambda: len([p for p in pods(skiff, "lb-00001") if all(
        s["ready"] for s in p["status"].get("containerStatuses") or [])]) == 2,
        timeout=60, what="two ready pods")
    sks = skiff.kubectl_json("get", "sks", "lb-00001")
    assert sks["spec"]["mode"] == "Proxy"
    names = [p["metadata"]["name"] for p in pods(skiff, "lb-00001")]

    def app(pod: str, path: str) -> int:
        r = skiff.kubectl("exec", pod, "-c", "user-container", "--", "sh", "-c",
                          f"curl -s 127.0.0.1:$PORT{path}")
        return int(r.stdout)

    def served(pod: str) -> int:
        return app(pod, "/count")

    before = {n: served(n) for n in names}
    with ThreadPoolExecutor(1) as ex:
        busy = ex.submit(curl, skiff, "lb", "/?sleep=3")
        skiff.wait_for(lambda: sum(app(n, "/now") for n in names) == 1, timeout=10,
                       interval=0.05, what="the slow request to reach a pod")
        # one pod holds the slow request: every short one goes to the other
        for _ in range(6):
            assert curl(skiff, "lb") == ("200", "slow")
        after = {n: served(n) for n in names}
        assert busy.result() == ("200", "slow")
    gained = sorted(after[n] - before[n] for n in names)
    assert gained == [0, 6], (before, after)


def test_the_activator_in_the_path_throttles_to_container_concurrency(skiff: Skiff) -> None:
    # cc 1, one pod, the activator in the path: 14 parallel clients would overflow the pod's
    # own queue (1 + 10 x cc) and get 503s (the test above); the activator holds them
    # instead and sends one at a time, so every one is served and the app never sees two
    deploy_burst(skiff, "throttle", tbc="-1", mode="Proxy")
    with ThreadPoolExecutor(14) as ex:
        results = list(ex.map(lambda _: curl(skiff, "throttle", "/?sleep=0.25"), range(14)))
    assert results == [("200", "slow")] * 14, results
    assert curl(skiff, "throttle", "/peak") == ("200", "1")


def test_a_pod_that_never_becomes_ready_is_a_503_after_the_deadline(skiff: Skiff) -> None:
    # an image whose app never listens once the file "broken" is in its directory
    image = skiff.home / "images" / "stuck"
    image.mkdir(parents=True, exist_ok=True)
    (image / "app.py").write_text(
        'import os, time\nif os.path.exists("broken"):\n    time.sleep(3600)\n' + SLOW_APP)
    (image / "image.json").write_text(json.dumps({"cmd": ["python3", "app.py"],
                                                  "workdir": "."}))
    deploy(skiff, "stuck", timeout=3, image="stuck",
           annotations={"serving.knative.dev/progress-deadline": "5s"})
    skiff.wait_for(lambda: not pods(skiff, "stuck-00001"), timeout=60, interval=0.5,
                   what="the revision at zero")
    (image / "broken").write_text("")
    try:
        started = time.monotonic()
        code, body = curl(skiff, "stuck", max_time=20)
        waited = time.monotonic() - started
        # held by the activator for the revision's timeoutSeconds, then a clear 503
        assert code == "503" and "no ready pod" in body, (code, body)
        assert 2.5 < waited < 15, waited
        assert pods(skiff, "stuck-00001")                   # it did try to start one

        # once the progress deadline and the autoscaler's 30 s buffer have passed, the
        # autoscaler gives up and the revision says so (Active False, TimedOut, upstream's words)
        def says_why() -> Any:
            rev = skiff.kubectl_json("get", "revision", "stuck-00001")
            return next((c for c in rev["status"].get("conditions") or []
                         if c.get("type") == "Active" and c.get("status") == "False"
                         and c.get("reason") == "TimedOut"), None)
        cond = skiff.wait_for(says_why, timeout=60, interval=1,
                              what="the revision to say its pod could not be activated")
        assert cond["message"] == "The target could not be activated."
    finally:
        (image / "broken").unlink()
        skiff.kubectl("delete", "ksvc", "stuck", "--wait=false")


def test_stopping_skiff_up_finishes_the_requests_in_flight(skiff: Skiff) -> None:
    # the last test of the module: it stops the module's skiff
    deploy(skiff, "last", annotations=PINNED)
    with ThreadPoolExecutor(3) as ex:
        inflight = [ex.submit(curl, skiff, "last", "/?sleep=2") for _ in range(3)]
        pod = pods(skiff, "last-00001")[0]["metadata"]["name"]
        skiff.wait_for(lambda: skiff.kubectl("exec", pod, "-c", "user-container", "--", "sh",
                                             "-c", "curl -s 127.0.0.1:$PORT/now").stdout
                       .strip() == "3", timeout=10, interval=0.05,
                       what="the three requests to reach the app")
        assert skiff.stop() == 0
        assert [f.result() for f in inflight] == [("200", "slow")] * 3
