"""The Node skiff runs on, as kubectl sees it: get, describe, label (chapter 3), capacity."""

from __future__ import annotations

import os
from pathlib import Path

from skiffproc import Skiff


def test_get_nodes_wide(skiff: Skiff) -> None:
    out = skiff.kubectl("get", "nodes", "-o", "wide").stdout.splitlines()
    assert out[0].split()[:5] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    cells = out[1].split()
    assert cells[0] == "skiff" and cells[1] == "Ready" and cells[2] == "control-plane,worker"
    assert cells[4] == "v1.32.0" and cells[5] == "127.0.0.1"


def test_capacity_and_pods_bound_to_the_node(skiff: Skiff) -> None:
    node = skiff.kubectl_json("get", "node", "skiff")
    cap = node["status"]["capacity"]
    assert cap["cpu"] == str(os.cpu_count())
    assert cap["pods"].isdigit() and int(cap["pods"]) > 0
    assert cap["memory"].endswith("Ki") and node["status"]["allocatable"] == cap
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.exists():
        assert cap["nvidia.com/gpu"] == str(len(list(gpus.iterdir())))
    else:
        assert "nvidia.com/gpu" not in cap
    skiff.kubectl("run", "bound", "--image=docker.io/openshift/hello-openshift")
    pod = skiff.wait_for(lambda: (p := skiff.kubectl_json("get", "pod", "bound"))["status"].get("hostIP")
                         and p, what="hostIP")
    assert pod["spec"]["nodeName"] == "skiff" and pod["status"]["hostIP"] == "127.0.0.1"
    described = skiff.kubectl("describe", "node", "skiff").stdout
    assert "KubeletReady" in described and "HolderIdentity:  skiff" in described
    assert "default                     bound" in described   # Non-terminated Pods


def test_labels_survive_a_restart(skiff: Skiff) -> None:
    skiff.kubectl("label", "node", "skiff", "cost-center=payments")
    skiff.stop()
    skiff.start()
    labels = skiff.kubectl_json("get", "node", "skiff")["metadata"]["labels"]
    assert labels["cost-center"] == "payments" and labels["kubernetes.io/os"] == "linux"
    assert skiff.kubectl("get", "nodes", "-l", "cost-center=payments", "-o", "name").stdout.strip() \
        == "node/skiff"
