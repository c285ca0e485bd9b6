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
from collections import OrderedDict
from dataclasses import dataclass, field

from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.controller import RELIST_MIN, Mapper, relist_delay
from skiff.core.kinds import Kind, Kinds

log = logging.getLogger("skiff.gc")
NAMESPACE = Ref("v1", "Namespace")
CRD = Ref("apiextensions.k8s.io/v1", "CustomResourceDefinition")


def _ref(k: Kind) -> Ref:
    return Ref(k.api_version, k.kind)


Target = tuple[Ref, str, str]   # (kind, namespace, name) of an object to delete


@dataclass
class OwnerIndex:
    """Who owns whom, kept from the watch events (no re-listing on each delete). Pure.

    `put` on ADDED/MODIFIED, `remove` on DELETED. remove() answers the dependents to
    delete now: those owned by the gone object whose other owners are gone too. An
    object that arrives after all its owners went (the watches of different kinds are
    not ordered) is answered by put() itself, from a bounded memory of deleted uids.
    """
    objects: dict[str, tuple[Target, frozenset[str]]] = field(default_factory=dict)
    dependents: dict[str, set[str]] = field(default_factory=dict)
    gone: OrderedDict[str, None] = field(default_factory=OrderedDict)
    remember: int = 10000

    def put(self, ref: Ref, obj: Obj) -> list[Target]:
        meta = obj["metadata"]
        uid = meta["uid"]
        owners = frozenset(str(r.get("uid")) for r in meta.get("ownerReferences") or [])
        self._unlink(uid)
        target = (ref, meta.get("namespace", ""), meta["name"])
        self.objects[uid] = (target, owners)
        for o in owners:
            self.dependents.setdefault(o, set()).add(uid)
        if owners and all(o in self.gone for o in owners):
            return [target]
        return []

    def remove(self, uid: str) -> list[Target]:
        self._unlink(uid)
        self.objects.pop(uid, None)
        self.gone[uid] = None
        while len(self.gone) > self.remember:
            self.gone.popitem(last=False)
        out = []
        for dep in sorted(self.dependents.pop(uid, set())):
            entry = self.objects.get(dep)
            if entry is not None and not any(o in self.objects for o in entry[1] - {uid}):
                out.append(entry[0])
        return out

    def resync(self, ref: Ref, objs: list[Obj]) -> list[Target]:
        """A fresh list of one kind (a re-list after a broken watch): objects of the kind the
        list no longer has were deleted during the gap and go as a DELETED event would; the
        listed ones are put. Returns the dependents to delete now."""
        listed = {o["metadata"]["uid"] for o in objs}
        out: list[Target] = []
        for uid in [u for u, (t, _) in self.objects.items() if t[0] == ref and u not in listed]:
            out += self.remove(uid)
        for o in objs:
            out += self.put(ref, o)
        return out

    def orphans(self) -> list[Target]:
        """Objects none of whose owners exist (owners deleted while skiff was down)."""
        return [t for t, owners in self.objects.values()
                if owners and not any(o in self.objects for o in owners)]

    def _unlink(self, uid: str) -> None:
        entry = self.objects.get(uid)
        if entry is None:
            return
        for o in entry[1]:
            deps = self.dependents.get(o)
            if deps is not None:
                deps.discard(uid)
                if not deps and o not in self.objects and o not in self.gone:
                    del self.dependents[o]


class GarbageCollector:
    def __init__(self, client: Client, kinds: Kinds) -> None:
        self.client = client
        self.kinds = kinds
        self.index = OwnerIndex()
        self._watched: set[tuple[str, str]] = set()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Index every kind, delete what lost its owners while skiff was down, then watch."""
        listed: list[tuple[Kind, str]] = []
        for k in list(self.kinds):
            indexed = await self._index(k)
            if indexed is not None:
                listed.append((k, indexed[0]))
        for target in self.index.orphans():
            await self._delete(target)
        for k, rv in listed:
            self._watched.add((k.group, k.plural))
            self._tasks.append(asyncio.create_task(self._watch(k, rv)))
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
                self._tasks.append(asyncio.create_task(self._watch(k, None)))

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

    async def _index(self, k: Kind) -> tuple[str, list[Target]] | None:
        """List one kind into the index: the resourceVersion to watch from ("" if empty) and
        the dependents of objects deleted since the last list (None: the kind is not served)."""
        try:
            items, rv = await self.client.list_with_version(_ref(k))
        except ApiError:
            return None
        return rv, self.index.resync(_ref(k), items)

    async def _watch(self, k: Kind, rv: str | None) -> None:
        ref = _ref(k)
        delay = RELIST_MIN
        while True:
            try:
                if rv is None:
                    indexed = await self._index(k)
                    if indexed is None and self.kinds.get(k.group, k.plural) is None:
                        self._watched.discard((k.group, k.plural))
                        return   # the CRD is gone
                    rv = indexed[0] if indexed is not None else None
                    for target in indexed[1] if indexed is not None else []:
                        await self._delete(target)
                async for ev in self.client.watch(ref, resource_version=rv or ""):
                    delay = RELIST_MIN
                    if ev.type == "DELETED":
                        targets = self.index.remove(ev.object["metadata"]["uid"])
                    elif ev.type in ("ADDED", "MODIFIED"):
                        targets = self.index.put(ref, ev.object)
                    else:
                        continue
                    for target in targets:
                        await self._delete(target)
            except asyncio.CancelledError:
                raise
            except ApiError as e:
                if e.code == 404 and self.kinds.get(k.group, k.plural) is None:
                    self._watched.discard((k.group, k.plural))
                    return   # the CRD is gone
            except Exception:
                log.exception("gc: watch of %s failed", k.resource)
            rv = None   # re-list after a broken watch
            await asyncio.sleep(delay)
            delay = relist_delay(delay)

    async def _delete(self, target: Target) -> None:
        ref, namespace, name = target
        try:
            await self.client.delete(ref, name, namespace)
        except ApiError as e:
            if e.code != 404:
                log.warning("gc: deleting %s %s: %s", ref.kind, name, e.message)


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
