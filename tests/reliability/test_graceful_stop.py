"""SIGTERM to `skiff up` under load: no request that was accepted is lost, and the process exits.

A real `skiff up` serves a Knative service; a few keep-alive clients loop on it through the
router's HTTP port (bounded in time and count) while SIGTERM is sent. The stop closes the
listeners first (later connections are refused: counted apart, expected), lets in-flight
requests finish (each keep-alive client gets `connection: close` on a response), and only then
stops the pods. Any failure after a request was written is an error; there must be none, and
the process must exit within a deadline. One limit is checked through the same platform too.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rawhttp import read_response
from skiffproc import new_skiff

DOMAIN = "apps.127.0.0.1.sslip.io"
HOST = f"hello-default.{DOMAIN}"
CLIENTS = 4
LOOP_SECONDS = 6.0          # a client gives up after this, stop or no stop
MAX_REQUESTS = 20_000       # per client
EXIT_DEADLINE = 60.0


@dataclass
class Tally:
    ok: int = 0
    closes: int = 0                     # responses that said `connection: close`
    ok_after_term: int = 0
    refused: int = 0                    # connect() refused: the listener was closed
    errors: list[str] = field(default_factory=list)


def client(port: int, tally: Tally, lock: threading.Lock, termed: threading.Event) -> None:
    request = f"GET / HTTP/1.1\r\nhost: {HOST}\r\n\r\n".encode()
    end = time.monotonic() + LOOP_SECONDS
    sock: socket.socket | None = None
    try:
        for _ in range(MAX_REQUESTS):
            if time.monotonic() > end:
                return
            if sock is None:
                try:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                except ConnectionRefusedError:
                    with lock:
                        tally.refused += 1
                    return                  # the listener is gone: this client is done
            try:
                sock.sendall(request)
                status, headers, _ = read_response(sock)
            except OSError as e:
                with lock:
                    tally.errors.append(f"{type(e).__name__}: {e}")
                sock.close()
                sock = None
                continue
            with lock:
                if status == 200:
                    tally.ok += 1
                    if termed.is_set():
                        tally.ok_after_term += 1
                else:
                    tally.errors.append(f"status {status}")
            if headers.get("connection") == "close":
                with lock:
                    tally.closes += 1
                sock.close()
                sock = None
    finally:
        if sock is not None:
            sock.close()


def get(port: int, extra: bytes = b"") -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET / HTTP/1.1\r\nhost: {HOST}\r\n".encode() + extra + b"\r\n")
        return read_response(s)[0]


def test_sigterm_under_load_finishes_accepted_requests_and_exits(tmp_path: Path) -> None:
    s = new_skiff(tmp_path)
    s.start()
    try:
        r = s.skiff("service", "create", "hello", "--image",
                    "docker.io/openshift/hello-openshift", timeout=90)
        assert r.returncode == 0, r.stdout + r.stderr
        port = s.ports["--http-port"]
        s.wait_for(lambda: get(port) == 200, timeout=30, what="hello to answer")

        # a limit through the real router and gateway: 101 headers -> 431, then served
        assert get(port, b"".join(b"x-h%d: v\r\n" % i for i in range(101))) == 431
        assert get(port) == 200

        tally, lock, termed = Tally(), threading.Lock(), threading.Event()
        threads = [threading.Thread(target=client, args=(port, tally, lock, termed), daemon=True)
                   for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(1.0)                       # load running
        assert s.proc is not None
        proc: subprocess.Popen[bytes] = s.proc
        termed.set()
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(LOOP_SECONDS + 15)
        try:
            code = proc.wait(EXIT_DEADLINE)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"skiff up still running {EXIT_DEADLINE:.0f} s after SIGTERM:\n"
                                 f"{s.log()}") from None
        s.proc = None
        assert not tally.errors, f"{len(tally.errors)} errors: {tally.errors[:10]} ({tally})"
        assert tally.ok > 0 and tally.closes >= 1, tally
        assert code == 0, s.log()
    finally:
        if s.proc is not None:
            s.proc.kill()
            s.proc.wait(10)


STUBBORN = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: stubborn, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: stubborn}}
  template:
    metadata: {labels: {app: stubborn}}
    spec:
      terminationGracePeriodSeconds: 60
      containers:
        - name: app
          image: docker.io/library/busybox
          command: [%s, -c, "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)", %s]
"""


def test_a_second_sigterm_kills_the_pods_at_once(tmp_path: Path) -> None:
    """A pod that ignores SIGTERM with a 60 s grace period holds the first stop for up to 60 s;
    a second SIGTERM (the second Ctrl-C) kills it now, and skiff up exits with no pod left.
    Meanwhile SIGUSR2 and SIGUSR1 dump the tasks' and threads' stacks into the log, and the
    slow step is named there."""
    import json
    import sys

    import psutil
    marker = f"stubborn-{tmp_path.name}"
    s = new_skiff(tmp_path)
    s.start()
    try:
        s.kubectl("apply", "-f", "-", input=STUBBORN % (json.dumps(sys.executable), marker))
        s.kubectl("rollout", "status", "deployment/stubborn", "--timeout=60s", timeout=70)

        def app() -> list[psutil.Process]:
            out = []
            for p in psutil.process_iter(["cmdline"]):
                if marker in " ".join(p.info["cmdline"] or []):
                    out.append(p)
            return out
        assert app(), "the pod's process"
        assert s.proc is not None
        proc = s.proc
        proc.send_signal(signal.SIGTERM)
        termed = time.monotonic()
        time.sleep(2)
        assert proc.poll() is None and app(), "the first SIGTERM waits out the grace period"
        # a stop that seems stuck says where: SIGUSR2 writes every asyncio task's stack to
        # the log (here the stop waits for the pods), SIGUSR1 every thread's
        proc.send_signal(signal.SIGUSR2)
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while "most recent call first" not in s.log() or "asyncio tasks:" not in s.log():
            assert time.monotonic() < deadline, s.log()
            time.sleep(0.1)
        assert "Platform.stop (platform.py:" in s.log() and "NodeRuntime.shutdown" in s.log(), s.log()
        assert proc.poll() is None
        while time.monotonic() < termed + 4:     # the pods' step has held the stop over 2 s
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
        s.proc = None
        assert code == 0, s.log()
        log = s.log()
        assert "stopping now: pods get SIGKILL" in log
        assert "stopping pods took" in log, log        # a slow step of the stop is named
        assert not app()
    finally:
        if s.proc is not None:
            s.proc.kill()
            s.proc.wait(10)
