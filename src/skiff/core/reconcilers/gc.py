"""Garbage collection: ownerReference cascades and namespace termination.

GarbageCollector watches every kind; when an object goes, its dependents
(objects whose ownerReferences name its uid and have no other live owner)
are deleted — background propagation, as `kubectl delete` asks. A sweep at
start catches owners deleted while skiff was down. NamespaceReconciler
empties a Terminating namespace, then removes its `kubernetes` finalizer so
the registry deletes it. Both reach objects only through the Client.
Neighbours: core/apiserver/registry.py (finalizers, graceful deletion).
"""

from __future__ import annotations

import asyncio
import logging

from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.controller import Mapper
from skiff.core.kinds import Kind, Kinds

log = logging.getLogger("skiff.gc")
NAMESPACE = Ref("v1", "Namespace")
CRD = Ref("apiextensions.k8s.io/v1", "CustomResourceDefinition")


def _ref(k: Kind) -> Ref:
    return Ref(k.api_version, k.kind)


def dependents_to_delete(gone_uid: str, objects: list[Obj], live_uids: set[str]) -> list[Obj]:
    """Objects owned by `gone_uid` whose other owners (if any) are gone too. Pure."""
    out = []
    for o in objects:
        refs = o["metadata"].get("ownerReferences") or []
        uids = {r.get("uid") for r in refs}
        if gone_uid in uids and not (uids - {gone_uid}) & live_uids:
            out.append(o)
    return out


class GarbageCollector:
    def __init__(self, client: Client, kinds: Kinds) -> None:
        self.client = client
        self.kinds = kinds
        self._watched: set[tuple[str, str]] = set()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.sweep()
        self._refresh()
        self._tasks.append(asyncio.create_task(self._watch_crds()))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _refresh(self) -> None:
        for k in self.kinds:
            if (k.group, k.plural) not in self._watched:
                self._watched.add((k.group, k.plural))
                self._tasks.append(asyncio.create_task(self._watch(k)))

    async def _watch_crds(self) -> None:
        while True:
            try:
                async for _ in self.client.watch(CRD):
                    await asyncio.sleep(0.05)   # let the registry register the kind first
                    self._refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("gc: CRD watch failed")
            await asyncio.sleep(0.5)

    async def _watch(self, k: Kind) -> None:
        ref = _ref(k)
        while True:
            try:
                rv = ""
                items = await self.client.list(ref)
                if items:
                    rv = str(max(int(o["metadata"]["resourceVersion"]) for o in items))
                del items   # the watch may run for hours; do not pin the listed objects
                async for ev in self.client.watch(ref, resource_version=rv):
                    if ev.type == "DELETED":
                        await self.collect(ev.object)
            except asyncio.CancelledError:
                raise
            except ApiError as e:
                if e.code == 404 and self.kinds.get(k.group, k.plural) is None:
                    self._watched.discard((k.group, k.plural))
                    return   # the CRD is gone
            except Exception:
                log.exception("gc: watch of %s failed", k.resource)
            await asyncio.sleep(0.5)

    async def _all(self, namespace: str = "") -> list[Obj]:
        out: list[Obj] = []
        for k in list(self.kinds):
            if namespace and not k.namespaced:
                continue
            try:
                out += await self.client.list(_ref(k), namespace)
            except ApiError:
                continue
        return out

    async def collect(self, gone: Obj) -> None:
        ns = gone["metadata"].get("namespace", "")
        objects = await self._all(ns)
        live = {o["metadata"]["uid"] for o in objects}
        for o in dependents_to_delete(gone["metadata"]["uid"], objects, live):
            await self._delete(o)

    async def sweep(self) -> None:
        objects = await self._all()
        live = {o["metadata"]["uid"] for o in objects}
        for o in objects:
            refs = o["metadata"].get("ownerReferences") or []
            if refs and not {r.get("uid") for r in refs} & live:
                await self._delete(o)

    async def _delete(self, o: Obj) -> None:
        m = o["metadata"]
        try:
            await self.client.delete(Ref(o["apiVersion"], o["kind"]), m["name"], m.get("namespace", ""))
        except ApiError as e:
            if e.code != 404:
                log.warning("gc: deleting %s %s: %s", o["kind"], m["name"], e.message)


class NamespaceReconciler:
    name = "namespace"
    primary = NAMESPACE

    def __init__(self, client: Client, kinds: Kinds) -> None:
        self.client = client
        self.kinds = kinds

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        return []

    async def reconcile(self, namespace: str, name: str) -> float | None:
        try:
            ns = await self.client.get(NAMESPACE, name)
        except ApiError as e:
            if e.code == 404:
                return None
            raise
        if not ns["metadata"].get("deletionTimestamp"):
            return None
        remaining = 0
        for k in list(self.kinds):
            if not k.namespaced:
                continue
            for o in await self.client.list(_ref(k), name):
                remaining += 1
                if not o["metadata"].get("deletionTimestamp"):
                    await self.client.delete(_ref(k), o["metadata"]["name"], name)
        if remaining:
            return 0.2
        ns.setdefault("spec", {})["finalizers"] = []
        try:
            await self.client.update(ns)
        except ApiError as e:
            if e.code != 404:
                raise
        return None
