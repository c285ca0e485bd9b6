"""`kubectl port-forward` (SPDY/3.1 tunneled in WebSocket, and the plain SPDY fallback) and
`kubectl exec -i` stdin close, through the real kubectl 1.32, curl and a real `skiff up`."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import aiohttp
import pytest
import yaml

from skiff.core.apiserver import spdy
from skiffproc import Skiff

HELLO = "Hello OpenShift!\n"

MANIFESTS = """
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  labels: {app: web}
spec:
  terminationGracePeriodSeconds: 2
  containers:
    - name: main
      image: docker.io/openshift/hello-openshift
      ports:
        - {name: http, containerPort: 8080}
        - {containerPort: 8888}       # declared, but nothing listens there
      readinessProbe:
        tcpSocket: {port: 8080}
        periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: websvc, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
"""

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: main
          image: docker.io/openshift/hello-openshift
          env: [{name: RESPONSE, value: "hi from the deployment"}]
          ports: [{containerPort: 8080}]
"""


@pytest.fixture(scope="module")
def pods(skiff: Skiff) -> Skiff:
    skiff.kubectl("apply", "-f", "-", input=MANIFESTS)
    skiff.kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=30s")
    return skiff


class PortForward:
    """A running `kubectl port-forward TARGET :REMOTE`; its local port read from its output."""

    def __init__(self, skiff: Skiff, target: str, remote: int, *flags: str,
                 env: dict[str, str] | None = None) -> None:
        cmd = ["kubectl", "--kubeconfig", str(skiff.kubeconfig),
               "--cache-dir", str(skiff.home / "kubectl-cache"), "port-forward", *flags,
               target, f":{remote}"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env={**os.environ, **(env or {})})
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.readers = [threading.Thread(target=self._read, args=(stream, keep), daemon=True)
                        for stream, keep in ((self.proc.stdout, self.stdout),
                                             (self.proc.stderr, self.stderr))]
        for t in self.readers:
            t.start()
        self.port = self._local_port()

    def _read(self, stream: object, keep: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            keep.append(line)
            if keep is self.stdout:
                self.lines.put(line)

    def _local_port(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            # "-> 8080" for svc/websvc :80 too: kubectl prints the pod port it resolved
            m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> \d+$", line.strip())
            if m:
                return int(m.group(1))
        self.stop()
        raise AssertionError(f"kubectl port-forward did not start: {''.join(self.stderr)}")

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def wait_exit(self, timeout: float = 30) -> int:
        rc = self.proc.wait(timeout)
        self._drain()
        return rc

    def _drain(self) -> None:
        """The process is gone; its last lines may still be in the pipes: read them all."""
        for t in self.readers:
            t.join(10)

    def stop(self, timeout: float = 10) -> int:
        """Ctrl-C, by PID, as a user ends it; kubectl then exits 0."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise
        finally:
            self._drain()


@contextmanager
def port_forward(skiff: Skiff, target: str, remote: int, *flags: str,
                 env: dict[str, str] | None = None) -> Iterator[PortForward]:
    pf = PortForward(skiff, target, remote, *flags, env=env)
    try:
        yield pf
    finally:
        pf.stop()


def curl(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-s", "-m", "10", *args, url], capture_output=True,
                          text=True, timeout=20)


def test_port_forward_pod_sequential_and_parallel(pods: Skiff, tmp_path: object) -> None:
    with port_forward(pods, "pod/web", 8080, "-v=6") as pf:
        for _ in range(5):
            assert curl(pf.url()).stdout == HELLO
        with ThreadPoolExecutor(16) as pool:
            outs = list(pool.map(lambda _: curl(pf.url()).stdout, range(32)))
        assert outs == [HELLO] * 32
        # a body larger than any one frame or buffer goes through (2 MB up, the answer back)
        body = pods.home.parent / "body.bin"
        body.write_bytes(os.urandom(2 << 20))
        assert curl(pf.url(), "--data-binary", f"@{body}").stdout == HELLO
        # keep-alive: several requests on one forwarded connection
        r = curl(pf.url(), "--next", "-s", pf.url(), "--next", "-s", pf.url())
        assert r.stdout == HELLO * 3
    assert pf.proc.returncode == 0
    log = "".join(pf.stderr)
    # kubectl 1.32 tunnels SPDY in a WebSocket (GET) and did not fall back to SPDY (POST)
    assert re.search(r"GET https://\S+/pods/web/portforward 101", log), log[-2000:]
    assert not re.search(r"POST https://\S+/portforward", log)
    assert "".join(pf.stdout).count("Handling connection for") >= 38


def test_port_forward_spdy_fallback(pods: Skiff) -> None:
    # what kubectl does against servers without the WebSocket tunnel: POST + Upgrade: SPDY/3.1
    with port_forward(pods, "pod/web", 8080, "-v=6",
                      env={"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}) as pf:
        with ThreadPoolExecutor(8) as pool:
            outs = list(pool.map(lambda _: curl(pf.url()).stdout, range(16)))
        assert outs == [HELLO] * 16
    assert pf.proc.returncode == 0
    assert re.search(r"POST https://\S+/pods/web/portforward 101", "".join(pf.stderr))


def test_port_forward_service(pods: Skiff) -> None:
    # kubectl resolves the service to a pod itself: port 80 -> targetPort http -> 8080
    with port_forward(pods, "svc/websvc", 80) as svc:
        assert curl(svc.url()).stdout == HELLO
        assert curl(svc.url()).stdout == HELLO


def test_port_forward_deployment(pods: Skiff) -> None:
    pods.kubectl("apply", "-f", "-", input=DEPLOYMENT)
    pods.kubectl("rollout", "status", "deployment/hello", "--timeout=30s", timeout=40)
    with port_forward(pods, "deployment/hello", 8080) as dep:
        assert curl(dep.url()).stdout == "hi from the deployment\n"


@pytest.mark.parametrize("remote", [8888, 9999], ids=["declared-not-listening", "undeclared"])
def test_port_forward_to_a_port_nothing_listens_on(pods: Skiff, remote: int) -> None:
    pf = PortForward(pods, "pod/web", remote)
    try:
        r = curl(pf.url())
        assert r.stdout == ""
        # kubectl prints the error from the error stream and drops the connection
        rc = pf.wait_exit(30)
    finally:
        pf.stop()
    err = "".join(pf.stderr)
    assert rc != 0
    assert f"an error occurred forwarding {pf.port} -> {remote}" in err, err
    assert f"error forwarding port {remote} to pod web" in err and "connection refused" in err
    assert "lost connection to pod" in err


def test_port_forward_to_a_pod_that_does_not_exist(pods: Skiff) -> None:
    r = pods.kubectl("port-forward", "pod/nosuch", ":8080", check=False, timeout=30)
    assert r.returncode != 0 and 'pods "nosuch" not found' in r.stderr


def _client_ssl(skiff: Skiff) -> tuple[ssl.SSLContext, str]:
    ctx = ssl.create_default_context(cafile=str(skiff.home / "pki" / "ca.crt"))
    cfg = yaml.safe_load(skiff.kubeconfig.read_text())
    return ctx, str(cfg["users"][0]["user"]["token"])


async def _send_garbage(skiff: Skiff) -> list[spdy.Frame]:
    ctx, token = _client_ssl(skiff)
    url = f"https://127.0.0.1:{skiff.api_port}/api/v1/namespaces/default/pods/web/portforward"
    got: list[spdy.Frame] = []
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, protocols=("SPDY/3.1+portforward.k8s.io",), ssl=ctx,
                                   headers={"Authorization": f"Bearer {token}"}) as ws:
            assert ws.protocol == "SPDY/3.1+portforward.k8s.io"
            enc, dec = spdy.Encoder(), spdy.Decoder()
            await ws.send_bytes(enc.encode(spdy.Ping(1)))
            # a SPDY/2 control frame: malformed for this server
            await ws.send_bytes(b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x03")
            async with asyncio.timeout(10):
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        got += dec.feed(msg.data)
    return got


def test_malformed_spdy_closes_only_that_connection(pods: Skiff) -> None:
    with port_forward(pods, "pod/web", 8080) as pf:
        assert curl(pf.url()).stdout == HELLO
        got = asyncio.run(_send_garbage(pods))
        # the ping was answered, then GOAWAY PROTOCOL_ERROR, then the connection closed
        assert got == [spdy.Ping(1), spdy.GoAway(0, spdy.GOAWAY_PROTOCOL_ERROR)]
        assert curl(pf.url()).stdout == HELLO        # the other connection is unaffected
    assert pf.proc.returncode == 0
    assert "malformed SPDY from the client" in pods.log()


# ---- kubectl exec -i: the v5 close signal ends the command's stdin ------------------------

@pytest.mark.parametrize("command,stdin,out", [
    (["cat"], "hi\n", "hi\n"),
    (["sh", "-c", "cat; echo done"], "hi\n", "hi\ndone\n"),
    (["sh", "-c", "cat; echo done"], "", "done\n"),
    (["sh", "-c", "read x; echo got $x; cat; echo end"], "a\nb\nc\n", "got a\nb\nc\nend\n"),
    (["wc", "-c"], "x" * 3_000_000, "3000000\n"),
    (["head", "-c", "5"], "y" * 2_000_000, "yyyyy"),      # exits without reading it all
], ids=["cat", "cat-then-echo", "empty", "read-then-cat", "large", "early-exit"])
def test_exec_stdin_close(pods: Skiff, command: list[str], stdin: str, out: str) -> None:
    r = pods.kubectl("exec", "-i", "web", "--", *command, input=stdin, timeout=60)
    assert r.stdout.replace(" ", "") == out.replace(" ", "")


def test_exec_stdin_close_then_exit_code(pods: Skiff) -> None:
    r = pods.kubectl("exec", "-i", "web", "--", "sh", "-c", "cat >/dev/null; echo bye >&2; exit 3",
                     input="data\n", check=False, timeout=60)
    assert r.returncode == 3 and "bye" in r.stderr
    assert "command terminated with exit code 3" in r.stderr
