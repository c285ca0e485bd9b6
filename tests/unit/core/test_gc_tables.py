"""The garbage collector and the namespace reconciler as tables: world (+ an object deleted)
-> the deletes they make, over the MemoryClient. The owner index alone is test_gc_index.py's.

The garbage collector is driven by watches, so a row runs it for real (start: index every
kind, sweep the orphans, watch) and then waits for its own quiescence, not for a time: its
index holds exactly the objects the store holds (every event delivered) and no object in it
has lost all its owners without being deleted. Then the deletes it made are compared with
the row's, as a set (the watches of different kinds are not ordered)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from skiff.core.client import Ref
from skiff.core.memclient import MemoryClient
from skiff.core.reconcilers.gc import NAMESPACE, GarbageCollector, NamespaceReconciler
from skiff.core.store import key_for
from tabletest import Row, run

Obj = dict[str, Any]
DEADLINE = 10.0


def owned(kind: str, name: str, *owners: tuple[str, str, str], api: str = "v1",
          ns: str = "default", **more: Any) -> Obj:
    """An object with a uid of its name and ownerReferences to (apiVersion, kind, name)
    whose uids are their names too."""
    return {"apiVersion": api, "kind": kind,
            "metadata": {"name": name, "namespace": ns, "uid": name,
                         **({"ownerReferences": [
                             {"apiVersion": a, "kind": k, "name": n, "uid": n,
                              **({"controller": True} if i == 0 else {})}
                             for i, (a, k, n) in enumerate(owners)]} if owners else {})},
            **more}


DEPLOY = ("apps/v1", "Deployment", "web")
RS = ("apps/v1", "ReplicaSet", "web-1")
TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
WORKLOAD = {"selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE}


def deployment() -> Obj:
    return owned("Deployment", "web", api="apps/v1", spec={"replicas": 2, **WORKLOAD})


def replicaset(*owners: tuple[str, str, str]) -> Obj:
    return owned("ReplicaSet", "web-1", *owners, api="apps/v1",
                 spec={"replicas": 2, **WORKLOAD})


def pod(name: str) -> Obj:
    return owned("Pod", name, RS, spec=TEMPLATE["spec"])


def cm(name: str, *owners: str) -> Obj:
    return owned("ConfigMap", name, *(("v1", "ConfigMap", o) for o in owners))


@dataclass
class GcRow:
    name: str
    objects: list[Obj]
    delete: tuple[str, str] | None = None            # (kind, name) deleted once it runs
    want_deletes: set[tuple[str, str]] = field(default_factory=set)

    def __str__(self) -> str:
        return self.name


GC_ROWS = [
    GcRow("an owner deleted while skiff was down: its dependents go when the GC starts",
          [replicaset(DEPLOY), pod("web-1-a"), pod("web-1-b")],
          want_deletes={("ReplicaSet", "web-1"), ("Pod", "web-1-a"), ("Pod", "web-1-b")}),
    GcRow("a Deployment deleted: its ReplicaSet, then the ReplicaSet's pods",
          [deployment(), replicaset(DEPLOY), pod("web-1-a"), pod("web-1-b")],
          delete=("Deployment", "web"),
          want_deletes={("ReplicaSet", "web-1"), ("Pod", "web-1-a"), ("Pod", "web-1-b")}),
    GcRow("a dependent with another owner alive stays",
          [cm("a"), cm("b"), cm("child", "a", "b")], delete=("ConfigMap", "a")),
    GcRow("the last live owner deleted: the dependent goes",
          [cm("b"), cm("child", "a", "b")], delete=("ConfigMap", "b"),
          want_deletes={("ConfigMap", "child")}),
    GcRow("nothing owned by what was deleted: nothing else goes",
          [cm("a"), cm("b"), cm("child", "b")], delete=("ConfigMap", "a")),
    GcRow("an intact world at start: nothing goes",
          [deployment(), replicaset(DEPLOY), pod("web-1-a")]),
]

REFS = {"Deployment": Ref("apps/v1", "Deployment"), "ReplicaSet": Ref("apps/v1", "ReplicaSet"),
        "Pod": Ref("v1", "Pod"), "ConfigMap": Ref("v1", "ConfigMap")}


async def _store(client: MemoryClient) -> dict[str, Obj]:
    out: dict[str, Obj] = {}
    for k in list(client.registry.kinds):
        try:
            for o in await client.list(Ref(k.api_version, k.kind)):
                out[o["metadata"]["uid"]] = o
        except Exception:       # a kind that is registered but not served
            continue
    return out


async def _quiet(client: MemoryClient, gc: GarbageCollector) -> None:
    """Until the GC has seen every object the store has, and nothing it indexes has lost its
    owners without being deleted (a signal of its own state, not a waiting window)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while True:
        store = await _store(client)
        pending = [t for t, owners in gc.index.objects.values()
                   if owners and not any(o in gc.index.objects for o in owners)
                   and any(o["metadata"]["name"] == t[2] and o["kind"] == t[0].kind
                           and not o["metadata"].get("deletionTimestamp")
                           for o in store.values())]
        if set(gc.index.objects) == set(store) and not pending:
            return
        assert loop.time() < end, f"the GC never settled: pending {pending}"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("row", GC_ROWS, ids=str)
def test_garbage_collector(row: GcRow) -> None:
    async def go() -> set[tuple[str, str]]:
        client = MemoryClient(row.objects)
        gc = GarbageCollector(client, client.registry.kinds)
        await gc.start()
        try:
            await _quiet(client, gc)
            if row.delete is not None:
                kind, name = row.delete
                await client.delete(REFS[kind], name, "default")
                await _quiet(client, gc)
        finally:
            await gc.stop()
        deletes = [(a.kind, a.name) for a in client.actions if a.verb == "delete"]
        if row.delete is not None:
            deletes.remove(row.delete)             # the row's own
        assert len(deletes) == len(set(deletes)), f"deleted twice: {deletes}"
        assert not [a for a in client.actions if a.verb != "delete"]
        return set(deletes)
    assert asyncio.run(go()) == row.want_deletes


# --- namespaces -----------------------------------------------------------------------------


def terminating(name: str) -> Any:
    """A make() that first marks the namespace `name` Terminating (deletionTimestamp and the
    kubernetes finalizer, as `kubectl delete namespace` leaves it): the registry would not let
    a row seed objects into a namespace already terminating."""
    def make(client: MemoryClient) -> NamespaceReconciler:
        k = client.registry.kinds.for_api_version("v1", "Namespace")
        assert k is not None
        key = key_for(k.group, k.plural, "", name)
        ns = client.registry.store.get(key)
        if ns is None:
            ns = client.seed({"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": name}})
        ns["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        ns["spec"] = {"finalizers": ["kubernetes"]}
        client.registry.store.update(key, ns)
        return NamespaceReconciler(client, client.registry.kinds)
    return make


ACTIVE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}
A = owned("ConfigMap", "a", ns="team")
B = owned("Secret", "b", ns="team")

NAMESPACE_ROWS = [
    (Row("Terminating with objects in it: each is deleted, and a look again soon",
         [A, B], "team", want_deletes=[("ConfigMap", "a"), ("Secret", "b")],
         want_requeue=0.2), terminating("team")),
    (Row("Terminating and empty: its kubernetes finalizer is removed", [], "team",
         want_updates=[{"kind": "Namespace", "spec": {"finalizers": []}}], want_requeue=None),
     terminating("team")),
    (Row("active: nothing to do", [ACTIVE, A], "team", want_requeue=None),
     lambda c: NamespaceReconciler(c, c.registry.kinds)),
    (Row("gone: nothing to do", [], "team", want_requeue=None),
     lambda c: NamespaceReconciler(c, c.registry.kinds)),
]


@pytest.mark.parametrize("row,make", NAMESPACE_ROWS, ids=[str(r[0]) for r in NAMESPACE_ROWS])
def test_namespace_reconciler(row: Row, make: Any) -> None:
    run(row, make)


def test_a_terminating_namespace_empties_then_goes() -> None:
    """Two reconciles: the objects are deleted, then (nothing left) the finalizer goes and the
    registry removes the namespace."""
    client = run(NAMESPACE_ROWS[0][0], terminating("team"))
    r = NamespaceReconciler(client, client.registry.kinds)
    assert asyncio.run(r.reconcile("", "team")) is None
    with pytest.raises(Exception, match="not found"):
        asyncio.run(client.get(NAMESPACE, "team"))
