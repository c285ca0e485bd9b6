"""The pod network's lifecycle through real `skiff up` processes: nothing of skiff is left in
`ip netns`, `ip link` or `nft list tables` after a stop, a `kill -9` is swept by the next
start, bad ranges are refused before anything is made, and `--pod-network loopback` (where
namespaces cannot be had) says in one line what it cannot enforce. Needs root."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from skiffproc import Skiff, new_skiff, wait_pod_network_free

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

POD = """
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: default}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: docker.io/openshift/hello-openshift}]
"""


def skiff_network() -> dict[str, list[str]]:
    """What of skiff's pod network the host has now."""
    netns = [n for n in (os.listdir("/run/netns") if os.path.isdir("/run/netns") else [])
             if re.fullmatch(r"skiff-[0-9a-f]{10}", n)]
    links = [ln.split()[0] for ln in subprocess.run(["ip", "-br", "link"], capture_output=True,
                                                    text=True).stdout.splitlines()
             if re.match(r"(skiff0|skv[0-9a-f]{10})\b", ln)]
    tables = [ln for ln in subprocess.run(["nft", "list", "tables"], capture_output=True,
                                          text=True).stdout.splitlines()
              if ln.split()[-1:] in (["skiff-proxy"], ["skiff-policy"])]
    return {"netns": netns, "links": links, "tables": tables}


def running_pod(s: Skiff) -> None:
    s.kubectl("apply", "-f", "-", input=POD)
    s.kubectl("wait", "--for=condition=Ready", "pod/p", "--timeout=60s")


def test_stop_leaves_nothing(tmp_path: Path) -> None:
    s = new_skiff(tmp_path)
    s.extra_args = ["--pod-network", "namespaces"]
    wait_pod_network_free()
    s.start()
    try:
        running_pod(s)
        have = skiff_network()
        assert have["netns"] and "skiff0" in have["links"] and len(have["tables"]) == 2
    finally:
        assert s.stop() == 0
    assert skiff_network() == {"netns": [], "links": [], "tables": []}


def test_kill_9_is_swept_by_the_next_start(tmp_path: Path) -> None:
    s = new_skiff(tmp_path)
    s.extra_args = ["--pod-network", "namespaces"]
    wait_pod_network_free()
    s.start()
    running_pod(s)
    assert s.proc is not None
    left = skiff_network()["netns"]
    s.proc.kill()
    s.proc.wait(10)
    s.proc = None
    # the pods die with skiff (their parent-death signal); their namespaces stay until swept
    assert set(left) <= set(skiff_network()["netns"])
    wait_pod_network_free()
    s.start()
    try:
        now = set(skiff_network()["netns"])
        assert not (set(left) & now), "the next start sweeps what a kill -9 left"
        s.wait_for(lambda: s.kubectl_json("get", "pod", "p")["status"].get("podIP", "").startswith("10.244."),
                   timeout=60, what="the pod back with a new namespace")
    finally:
        s.stop()
    assert skiff_network() == {"netns": [], "links": [], "tables": []}


@pytest.mark.parametrize("flags, message", [
    (["--pod-cidr", "10.244.0.0/33"], "--pod-cidr: invalid CIDR address"),
    (["--pod-cidr", "10.96.0.0/12"], "overlaps --pod-cidr"),
    (["--service-cidr", "banana"], "--service-cidr: invalid CIDR address: banana"),
    (["--pod-cidr", "10.0.0.0/25"], "is too small"),
    (["--pod-network", "bridge"], "--pod-network bridge is not a mode"),
])
def test_bad_ranges_are_refused_before_anything_is_made(tmp_path: Path, flags: list[str],
                                                        message: str) -> None:
    r = subprocess.run([sys.executable, "-m", "skiff.cli.main", "up", "--home", str(tmp_path / "h"),
                        *flags], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert message in r.stderr
    assert not (tmp_path / "h" / "skiff.db").exists()


def test_loopback_mode_says_what_it_cannot_enforce(tmp_path: Path) -> None:
    s = new_skiff(tmp_path)
    s.extra_args = ["--pod-network", "loopback"]
    s.start()
    try:
        assert "pod network: shared loopback" in s.log()
        assert "NetworkPolicy and STRICT mTLS are not enforced" in s.log()
        running_pod(s)
        pod = s.kubectl_json("get", "pod", "p")
        assert pod["status"]["podIP"] == "127.0.0.1"
        r = s.kubectl("apply", "-f", "-", input="""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: default}
spec: {podSelector: {}}
""")
        assert "NetworkPolicy is not enforced" in r.stderr
    finally:
        s.stop()


def test_pods_die_with_a_killed_skiff(tmp_path: Path) -> None:
    s = new_skiff(tmp_path)
    s.extra_args = ["--pod-network", "namespaces"]
    wait_pod_network_free()
    s.start()
    try:
        running_pod(s)
        assert s.proc is not None
        kids = psutil.Process(s.proc.pid).children(recursive=True)
    finally:
        assert s.proc is not None
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait(10)
        s.proc = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(k.is_running() and k.status() != psutil.STATUS_ZOMBIE
                                              for k in kids):
        time.sleep(0.1)
    assert not any(k.is_running() and k.status() != psutil.STATUS_ZOMBIE for k in kids)
    # the next start (here: a plain start and stop) removes what was left
    wait_pod_network_free()
    s.start()
    s.stop()
    assert skiff_network() == {"netns": [], "links": [], "tables": []}
