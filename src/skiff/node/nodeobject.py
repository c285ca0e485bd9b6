"""The Node object: the one node skiff runs on, registered as the kubelet registers itself.

node_object() is pure (facts about the machine + now -> the Node); gather_facts()
reads them (cores, memory, disk, GPUs, kernel, OS); register_node() writes the
Node at start, keeping what users set on it (labels such as chapter 3's cost
labels, annotations, taints, unschedulable) and replacing only what the node
reports (capacity, allocatable, conditions, addresses, nodeInfo). Chapter 5
needs `nvidia.com/gpu` in capacity where the machine has GPUs. Neighbours:
node.py (the runtime that runs the pods bound to this node), platform.py
(calls register_node after the API is up).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from skiff.core.client import ApiError, Client, Obj, Ref

NODE = Ref("v1", "Node")
KUBELET_VERSION = "v1.32.0"   # the API skiff serves, as `kubectl version` shows it
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
         "s390x": "s390x"}
# What the node reports: replaced on each registration. Everything else is the users'.
_REPORTED_LABELS = ("kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch",
                    "beta.kubernetes.io/os", "beta.kubernetes.io/arch")


@dataclass(frozen=True)
class NodeFacts:
    name: str
    hostname: str
    host_ip: str
    cpus: int
    memory_bytes: int
    ephemeral_bytes: int
    gpus: int
    max_pods: int
    arch: str
    kernel: str
    os_image: str
    machine_id: str
    boot_id: str
    runtime_version: str


def node_object(f: NodeFacts, now: str) -> Obj:
    """The Node as the kubelet would register it. Allocatable equals capacity: skiff reserves
    nothing for system daemons (no --kube-reserved)."""
    capacity = {"cpu": str(f.cpus), "memory": f"{f.memory_bytes // 1024}Ki",
                "ephemeral-storage": f"{f.ephemeral_bytes // 1024}Ki",
                "pods": str(f.max_pods)}
    if f.gpus:
        capacity["nvidia.com/gpu"] = str(f.gpus)

    def condition(type_: str, status: str, reason: str, message: str) -> Obj:
        return {"type": type_, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": now, "lastTransitionTime": now}

    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": f.name, "labels": {
            "kubernetes.io/hostname": f.name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": f.arch, "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": f.arch,
            "node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": "",
        }},
        "spec": {},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory",
                          "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure",
                          "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID",
                          "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": f.host_ip},
                          {"type": "Hostname", "address": f.hostname}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": f.machine_id, "systemUUID": f.machine_id, "bootID": f.boot_id,
                "kernelVersion": f.kernel, "osImage": f.os_image,
                "containerRuntimeVersion": f.runtime_version, "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION, "operatingSystem": "linux",
                "architecture": f.arch,
            },
        },
    }


def merged(existing: Obj | None, wanted: Obj) -> Obj:
    """The Node to store: the reported labels and status from `wanted`, the users' labels,
    annotations and spec from `existing` (a restart must not drop `kubectl label node`)."""
    if existing is None:
        return wanted
    out = dict(existing)
    meta = dict(existing.get("metadata") or {})
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in _REPORTED_LABELS}
    for k, v in wanted["metadata"]["labels"].items():
        if k in _REPORTED_LABELS or k not in labels:
            labels[k] = v
    meta["labels"] = labels
    out["metadata"] = meta
    out["status"] = wanted["status"]
    return out


def _read(path: str) -> str:
    with contextlib.suppress(OSError):
        return Path(path).read_text().strip()
    return ""


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.partition("=")[2].strip().strip('"')
    return f"{platform.system()} {platform.release()}"


def _memory_bytes() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _gpus() -> int:
    """NVIDIA GPUs the driver shows (/proc/driver/nvidia/gpus/<bus id>), as the device plugin
    would advertise them."""
    with contextlib.suppress(OSError):
        return sum(1 for _ in Path("/proc/driver/nvidia/gpus").iterdir())
    return 0


def gather_facts(name: str, home: Path, host_ip: str, max_pods: int,
                 runtime_version: str) -> NodeFacts:
    machine = platform.machine()
    return NodeFacts(
        name=name, hostname=socket.gethostname(), host_ip=host_ip,
        cpus=os.cpu_count() or 1, memory_bytes=_memory_bytes(),
        ephemeral_bytes=shutil.disk_usage(home).total, gpus=_gpus(), max_pods=max_pods,
        arch=_ARCH.get(machine, machine), kernel=platform.release(), os_image=_os_image(),
        machine_id=_read("/etc/machine-id") or _read("/var/lib/dbus/machine-id"),
        boot_id=_read("/proc/sys/kernel/random/boot_id"), runtime_version=runtime_version)


LEASE = Ref("coordination.k8s.io/v1", "Lease")


def node_lease(node: Obj, now: str) -> Obj:
    """The node's Lease in kube-node-lease, owned by the Node (`kubectl describe node` shows
    it). skiff's node cannot be lost to the API server it runs beside, so the lease is written
    when the node registers and not renewed every 10 s: an idle skiff does no work."""
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": node["metadata"]["name"], "namespace": "kube-node-lease",
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                                              "name": node["metadata"]["name"],
                                              "uid": node["metadata"]["uid"]}]},
            "spec": {"holderIdentity": node["metadata"]["name"], "leaseDurationSeconds": 40,
                     "renewTime": now.replace("Z", ".000000Z")}}


async def register_node(client: Client, facts: NodeFacts, now: str) -> Obj:
    """Create the Node (or refresh what the node reports on an existing one) and its Lease."""
    node = await _register(client, facts, now)
    lease = node_lease(node, now)
    try:
        old = await client.get(LEASE, facts.name, "kube-node-lease")
        old["spec"] = lease["spec"]
        old["metadata"]["ownerReferences"] = lease["metadata"]["ownerReferences"]
        await client.update(old)
    except ApiError as e:
        if e.code != 404:
            raise
        await client.create(lease)
    return node


async def _register(client: Client, facts: NodeFacts, now: str) -> Obj:
    wanted = node_object(facts, now)
    try:
        existing = await client.get(NODE, facts.name)
    except ApiError as e:
        if e.code != 404:
            raise
        existing = None
    if existing is None:
        created = await client.create({k: v for k, v in wanted.items() if k != "status"})
        created["status"] = wanted["status"]
        return await client.update_status(created)
    node = merged(existing, wanted)
    node = await client.update(node)
    node["status"] = wanted["status"]
    return await client.update_status(node)
