"""Pods as local processes, through the real kubectl and curl: readiness, exec exit codes, stdin,
logs (-f), graceful delete, Deployments, bad images, and restart persistence."""

from __future__ import annotations

import subprocess
import time

import psutil

from skiffproc import Skiff, new_skiff

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
  labels: {{app: {name}}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
    - name: main
      image: {image}
      env:
        - name: RESPONSE
          value: "hi from {name}"
      readinessProbe:
        tcpSocket:
          port: 8080
        periodSeconds: 1
"""


def pod_url(skiff: Skiff, name: str) -> str:
    """Where the host reaches the pod's app: its IP (its own, or 127.0.0.1 on the shared
    loopback) and the port it listens on (the runtime's record)."""
    pod = skiff.kubectl_json("get", "pod", name)
    return f"http://{pod['status']['podIP']}:{pod['metadata']['annotations']['skiff.dev/port']}/"


def test_pod_ready_and_serving(skiff: Skiff) -> None:
    skiff.kubectl("apply", "-f", "-", input=POD.format(name="web", image="docker.io/openshift/hello-openshift"))
    skiff.kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=30s")
    out = subprocess.run(["curl", "-s", pod_url(skiff, "web")],
                         capture_output=True, text=True, timeout=10).stdout
    assert out == "hi from web\n"
    row = skiff.kubectl("get", "pod", "web", "--no-headers").stdout.split()
    assert row[:3] == ["web", "1/1", "Running"]


def test_exec_exit_codes_and_stdin(skiff: Skiff) -> None:
    skiff.kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=30s")
    r = skiff.kubectl("exec", "web", "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert r.returncode == 3 and "out" in r.stdout and "err" in r.stderr
    assert "command terminated with exit code 3" in r.stderr
    r = skiff.kubectl("exec", "web", "--", "sh", "-c", 'curl -s "http://127.0.0.1:$PORT"')
    assert r.stdout == "hi from web\n"
    r = skiff.kubectl("exec", "-i", "web", "--", "cat", input="piped\n")
    assert r.stdout == "piped\n"


def test_logs(skiff: Skiff) -> None:
    skiff.kubectl("run", "talker", "--image=busybox", "--restart=Never", "--",
                  "sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done")
    skiff.wait_for(lambda: skiff.kubectl_json("get", "pod", "talker").get("status", {}).get("phase")
                   == "Succeeded", what="talker to finish")
    assert skiff.kubectl("logs", "talker").stdout.split() == ["line1", "line2", "line3"]
    assert skiff.kubectl("logs", "talker", "--tail=1").stdout.split() == ["line3"]
    skiff.kubectl("run", "ticker", "--image=busybox", "--restart=Never", "--",
                  "sh", "-c", "echo start; sleep 1; echo later")
    skiff.wait_for(lambda: skiff.kubectl("logs", "ticker", check=False).returncode == 0, what="ticker log")
    r = skiff.kubectl("logs", "-f", "ticker", timeout=20)
    assert r.stdout.split() == ["start", "later"]


def test_bad_image_is_reported(skiff: Skiff) -> None:
    skiff.kubectl("apply", "-f", "-", input=POD.format(name="nope", image="example.com/no/such:1"))

    def reason() -> str:
        for cs in skiff.kubectl_json("get", "pod", "nope").get("status", {}).get("containerStatuses", []):
            return str(cs.get("state", {}).get("waiting", {}).get("reason", ""))
        return ""
    assert skiff.wait_for(lambda: reason() in ("ErrImagePull", "ImagePullBackOff") and reason(),
                          what="image pull error")
    assert skiff.kubectl("get", "pod", "nope", "--no-headers").stdout.split()[2] in (
        "ErrImagePull", "ImagePullBackOff")


def test_deployment_keeps_replicas_and_exec_by_deployment(skiff: Skiff) -> None:
    skiff.kubectl("create", "deployment", "dep", "--image=docker.io/openshift/hello-openshift", "--replicas=2")
    skiff.kubectl("wait", "--for=condition=Available", "deployment/dep", "--timeout=30s")
    pods = skiff.kubectl("get", "pods", "-l", "app=dep", "-o", "name").stdout.split()
    assert len(pods) == 2
    skiff.kubectl("delete", pods[0], "--wait=true")
    skiff.wait_for(lambda: len([p for p in skiff.kubectl("get", "pods", "-l", "app=dep", "-o", "name")
                                .stdout.split() if p != pods[0]]) == 2, what="replacement pod")
    r = skiff.kubectl("exec", "deployment/dep", "--", "sh", "-c", "echo $HOSTNAME")
    assert r.stdout.strip().startswith("dep-")
    skiff.kubectl("scale", "deployment/dep", "--replicas=1")
    skiff.wait_for(lambda: len(skiff.kubectl("get", "pods", "-l", "app=dep", "-o", "name").stdout.split()) == 1,
                   timeout=30, what="scale down")


def test_graceful_delete_stops_the_process(skiff: Skiff) -> None:
    skiff.kubectl("apply", "-f", "-", input=POD.format(name="bye", image="docker.io/openshift/hello-openshift"))
    skiff.kubectl("wait", "--for=condition=Ready", "pod/bye", "--timeout=30s")
    # The container's process, as the runtime recorded it (in a network namespace of its own,
    # the pod's listener is not among the host's sockets).
    pid_files = list((skiff.home / "pods").glob("default_bye_*/main/pid"))
    pids = [int(f.read_text().split()[0]) for f in pid_files]
    assert pids and all(psutil.pid_exists(pid) for pid in pids)
    skiff.kubectl("delete", "pod", "bye", "--timeout=30s")
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_restart_keeps_objects_and_restarts_pods(tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    s = new_skiff(tmp_path_factory.mktemp("restart"))
    s.start()
    try:
        s.kubectl("apply", "-f", "-", input=POD.format(name="keep", image="docker.io/openshift/hello-openshift"))
        s.kubectl("create", "configmap", "kept", "--from-literal=a=b")
        s.kubectl("wait", "--for=condition=Ready", "pod/keep", "--timeout=30s")
        assert s.proc is not None
        children = psutil.Process(s.proc.pid).children(recursive=True)
        assert children
        t0 = time.monotonic()
        assert s.stop() == 0
        assert time.monotonic() - t0 < 30
        for c in children:
            assert not c.is_running() or c.status() == psutil.STATUS_ZOMBIE, c
        s.start()
        assert s.kubectl_json("get", "cm", "kept")["data"] == {"a": "b"}
        s.kubectl("wait", "--for=condition=Ready", "pod/keep", "--timeout=30s")
        out = subprocess.run(["curl", "-s", pod_url(s, "keep")],
                             capture_output=True, text=True, timeout=10).stdout
        assert out == "hi from keep\n"
    finally:
        if s.proc is not None:
            s.stop()
