"""The Node object the node registers (pure: facts -> Node; users' labels kept on refresh)."""

from __future__ import annotations

import pytest

from skiff.node.nodeobject import NodeFacts, merged, node_lease, node_object

FACTS = NodeFacts(name="skiff", hostname="h", host_ip="127.0.0.1", cpus=4, memory_bytes=8 << 30,
                  ephemeral_bytes=100 << 30, gpus=0, max_pods=110, arch="amd64", kernel="6.1",
                  os_image="Debian", machine_id="m", boot_id="b", runtime_version="skiff://0.1.0")


@pytest.mark.parametrize("gpus, expect", [(0, None), (2, "2")])
def test_node_object_gpu_capacity(gpus: int, expect: str | None) -> None:
    f = NodeFacts(**{**FACTS.__dict__, "gpus": gpus})
    cap = node_object(f, "2026-01-01T00:00:00Z")["status"]["capacity"]
    assert cap.get("nvidia.com/gpu") == expect
    assert cap["memory"] == f"{8 << 20}Ki" and cap["pods"] == "110"


def test_merged_keeps_users_labels_and_spec() -> None:
    wanted = node_object(FACTS, "2026-01-01T00:00:00Z")
    existing = {"metadata": {"name": "skiff", "labels": {"team": "a", "kubernetes.io/arch": "old",
                                                         "node-role.kubernetes.io/worker": "x"}},
                "spec": {"unschedulable": True}, "status": {"capacity": {"pods": "5"}}}
    out = merged(existing, wanted)
    assert out["metadata"]["labels"]["team"] == "a"
    assert out["metadata"]["labels"]["kubernetes.io/arch"] == "amd64"   # reported: refreshed
    assert out["metadata"]["labels"]["node-role.kubernetes.io/worker"] == "x"   # user's value
    assert out["spec"] == {"unschedulable": True} and out["status"] == wanted["status"]


def test_lease_is_owned_by_the_node() -> None:
    node = node_object(FACTS, "2026-01-01T00:00:00Z")
    node["metadata"]["uid"] = "u1"
    lease = node_lease(node, "2026-01-01T00:00:00Z")
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert lease["spec"]["holderIdentity"] == "skiff"
