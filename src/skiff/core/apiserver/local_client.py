"""LocalClient: the Client interface served in-process by the API registry.

Reconcilers, the node runtime and the garbage collector use this; it runs the
same registry code as the HTTP API (validation, admission, watch), without
the HTTP hop. Neighbours: core/client.py (the interface), registry.py.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator

from skiff.core.apiserver.registry import Registry
from skiff.core.client import ApiError, Obj, Ref, WatchEvent


class LocalClient:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def _kind_of(self, obj: Obj):  # type: ignore[no-untyped-def]
        return self.registry.kind_for(Ref(obj.get("apiVersion", ""), obj.get("kind", "")))

    async def get(self, ref: Ref, name: str, namespace: str = "") -> Obj:
        return self.registry.get(self.registry.kind_for(ref), namespace, name)

    async def list(self, ref: Ref, namespace: str = "", label_selector: str = "",
                   field_selector: str = "") -> list[Obj]:
        items, _, _ = self.registry.list(self.registry.kind_for(ref), namespace, label_selector,
                                         field_selector)
        return items

    async def list_with_version(self, ref: Ref, namespace: str = "", label_selector: str = "",
                                field_selector: str = "") -> tuple[builtins.list[Obj], str]:
        items, rv, _ = self.registry.list(self.registry.kind_for(ref), namespace, label_selector,
                                          field_selector)
        return items, str(rv)

    async def watch(self, ref: Ref, namespace: str = "", resource_version: str = "",
                    shared: bool = False) -> AsyncIterator[WatchEvent]:
        events = await self.registry.watch(self.registry.kind_for(ref), namespace, resource_version,
                                           shared=shared)
        async for ev in events:
            yield ev
            del ev   # not kept while waiting for the next event (see Registry._watch_events)

    async def create(self, obj: Obj) -> Obj:
        k = self._kind_of(obj)
        return self.registry.create(k, (obj.get("metadata") or {}).get("namespace", ""), obj)

    async def update(self, obj: Obj) -> Obj:
        k = self._kind_of(obj)
        m = obj["metadata"]
        return self.registry.update(k, m.get("namespace", ""), m["name"], obj)

    async def update_status(self, obj: Obj) -> Obj:
        k = self._kind_of(obj)
        m = obj["metadata"]
        return self.registry.update(k, m.get("namespace", ""), m["name"], obj, subresource="status")

    async def patch(self, ref: Ref, name: str, patch: Obj, namespace: str = "",
                    subresource: str = "") -> Obj:
        return self.registry.patch(self.registry.kind_for(ref), namespace, name, "merge", patch,
                                   subresource)

    async def delete(self, ref: Ref, name: str, namespace: str = "",
                     grace_period_seconds: int | None = None) -> None:
        try:
            self.registry.delete(self.registry.kind_for(ref), namespace, name, grace_period_seconds)
        except ApiError as e:
            if e.code != 404:
                raise
