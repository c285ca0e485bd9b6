"""watch_into keeps a ClusterView current from the API (core/memclient.py: the real registry in memory)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from dnslib import RCODE, DNSRecord

from skiff.core.client import Ref
from skiff.core.memclient import MemoryClient
from skiff.node.network.dns import answer
from skiff.node.network.dnsview import ClusterView, watch_into

DEADLINE = 10.0
SERVICE = Ref("v1", "Service")
POD = Ref("v1", "Pod")


def svc(name: str, ip: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "default", "name": name},
            "spec": {"clusterIP": ip, "clusterIPs": [ip],
                     "ports": [{"name": "http", "protocol": "TCP", "port": 80}]}}


def a(view: ClusterView, name: str) -> list[str]:
    r = answer(DNSRecord.question(name), view)
    assert r is not None
    return [str(rr.rdata) for rr in r.rr] if r.header.rcode == RCODE.NOERROR else ["NXDOMAIN"]


async def until(cond: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not cond():
        assert loop.time() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def test_watch_into_follows_creates_updates_and_deletes_and_waits_for_a_missing_kind() -> None:
    async def main() -> None:
        client = MemoryClient([svc("first", "10.96.0.30")])
        kinds = client.registry.kinds
        slice_kind = kinds.for_api_version("discovery.k8s.io/v1", "EndpointSlice")
        assert slice_kind is not None
        # The API does not serve EndpointSlices yet: the others must flow regardless.
        kinds.remove(slice_kind.group, slice_kind.plural)
        view = ClusterView()
        synced = asyncio.Event()
        task = asyncio.create_task(watch_into(client, view, synced))
        try:
            await until(lambda: a(view, "first.default.svc.cluster.local") == ["10.96.0.30"], "the list")
            await client.create(svc("second", "10.96.0.31"))
            await until(lambda: a(view, "second.default.svc.cluster.local") == ["10.96.0.31"], "a create")
            await client.delete(SERVICE, "first", "default")
            await until(lambda: a(view, "first.default.svc.cluster.local") == ["NXDOMAIN"], "a delete")
            client.seed({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"namespace": "default", "name": "web"},
                         "spec": {"containers": [{"name": "app", "image": "hello-openshift"}]},
                         "status": {"phase": "Running", "podIP": "10.244.0.5",
                                    "podIPs": [{"ip": "10.244.0.5"}]}})
            await until(lambda: a(view, "10-244-0-5.default.pod.cluster.local") == ["10.244.0.5"],
                        "a pod")
            assert not synced.is_set()
            # The kind appears: the back-off re-list finds it and the view is complete.
            kinds.add(slice_kind)
            await client.create(svc("db", "None"))
            await client.create({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                "metadata": {"namespace": "default", "name": "db-1",
                             "labels": {"kubernetes.io/service-name": "db"}},
                "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": True}}]})
            await asyncio.wait_for(synced.wait(), DEADLINE)
            await until(lambda: a(view, "db.default.svc.cluster.local") == ["10.244.0.5"], "a slice")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()

    asyncio.run(main())
