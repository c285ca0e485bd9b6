"""MemoryClient: the Client interface in memory, recording every write (knative's fake clientset).

A first-class implementation of core/client.py's Client, for table tests of
reconcilers (world + key -> the creates, updates, status updates, patches
and deletes a reconcile makes) and for anything else that wants a
platform-less API. It is not a mock: the objects live in the same registry
kube-semantics code as `skiff up` (validation, defaulting, admission,
resourceVersions, generation, finalizers) over a SQLite store in memory, so
a reconciler sees exactly what it would see for real. What it adds:
`actions` (each write, in order, with the object as the reconciler sent it)
and reactors that make a verb fail (`fail_on`), as knative's
WithReactors does. Neighbours: core/apiserver/local_client.py (wrapped),
registry.py, tests/tabletest.py (the table runner).
"""

from __future__ import annotations

import builtins
import copy
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from skiff.core import builtin_kinds
from skiff.core.admission import Admission
from skiff.core.apiserver.local_client import LocalClient
from skiff.core.apiserver.registry import Registry
from skiff.core.client import ApiError, Obj, Ref, WatchEvent
from skiff.core.kinds import Kind, Kinds
from skiff.core.store import key_for
from skiff.core.store.sqlite import SQLiteStore


@dataclass(frozen=True)
class Action:
    verb: str               # create | update | update_status | patch | delete
    kind: str
    namespace: str
    name: str
    object: Obj = field(default_factory=dict, compare=False)   # what was sent (patch: the patch)


@dataclass
class _Reactor:
    verb: str
    kind: str
    error: ApiError


class MemoryClient:
    def __init__(self, objects: Iterable[Obj] = (), kinds: Iterable[Kind] = (),
                 admission: Admission | None = None) -> None:
        reg = Kinds()
        for k in [*builtin_kinds.KINDS, *kinds]:
            reg.add(k)
        self.registry = Registry(SQLiteStore(":memory:"), reg, admission or Admission())
        self._client = LocalClient(self.registry)
        self.actions: list[Action] = []
        self._reactors: list[_Reactor] = []
        for o in objects:
            self.seed(o)

    # --- setting up the world (not recorded) -------------------------------------------------
    def seed(self, obj: Obj) -> Obj:
        """Put `obj` in the world as it is, status included; namespaces appear as needed."""
        k = self._kind(obj)
        ns = (obj.get("metadata") or {}).get("namespace", "")
        if k.namespaced and ns:
            self._ensure_namespace(ns)
        created = self.registry.create(k, ns, copy.deepcopy(obj), status=obj.get("status"))
        # A table names its objects' uids (ownerReferences point at them), times and
        # generations: keep those the create would have assigned afresh.
        given = {f: v for f, v in (obj.get("metadata") or {}).items()
                 if f in ("uid", "creationTimestamp", "generation", "deletionTimestamp")}
        if given:
            created["metadata"].update(given)
            key = key_for(k.group, k.plural, ns if k.namespaced else "", created["metadata"]["name"])
            created = self.registry.store.update(key, created)
        return created

    def _ensure_namespace(self, name: str) -> None:
        k = self.registry.kinds.for_api_version("v1", "Namespace")
        assert k is not None
        try:
            self.registry.create(k, "", {"metadata": {"name": name}})
        except ApiError as e:
            if e.code != 409:
                raise

    def _kind(self, obj: Obj) -> Kind:
        return self.registry.kind_for(Ref(obj.get("apiVersion", ""), obj.get("kind", "")))

    def fail_on(self, verb: str, kind: str, error: ApiError | None = None) -> None:
        """Make every `verb` of `kind` fail (after it is recorded), as knative's reactors do."""
        self._reactors.append(_Reactor(verb, kind, error or ApiError(500, "InternalError",
                                                                     f"inducing failure for {verb} {kind}")))

    def _record(self, verb: str, kind: str, namespace: str, name: str, obj: Obj) -> None:
        self.actions.append(Action(verb, kind, namespace, name, copy.deepcopy(obj)))
        for r in self._reactors:
            if r.verb == verb and r.kind == kind:
                raise r.error

    def take_actions(self) -> builtins.list[Action]:
        out, self.actions = self.actions, []
        return out

    # --- the Client interface ------------------------------------------------------------------
    async def get(self, ref: Ref, name: str, namespace: str = "") -> Obj:
        return await self._client.get(ref, name, namespace)

    async def list(self, ref: Ref, namespace: str = "", label_selector: str = "",
                   field_selector: str = "") -> builtins.list[Obj]:
        return await self._client.list(ref, namespace, label_selector, field_selector)

    async def list_with_version(self, ref: Ref, namespace: str = "", label_selector: str = "",
                                field_selector: str = "") -> tuple[builtins.list[Obj], str]:
        return await self._client.list_with_version(ref, namespace, label_selector, field_selector)

    def watch(self, ref: Ref, namespace: str = "", resource_version: str = "",
              shared: bool = False) -> AsyncIterator[WatchEvent]:
        return self._client.watch(ref, namespace, resource_version, shared)

    async def create(self, obj: Obj) -> Obj:
        m = obj.get("metadata") or {}
        self._record("create", str(obj.get("kind", "")), m.get("namespace", ""), m.get("name", ""), obj)
        return await self._client.create(obj)

    async def update(self, obj: Obj) -> Obj:
        m = obj["metadata"]
        self._record("update", str(obj.get("kind", "")), m.get("namespace", ""), m["name"], obj)
        return await self._client.update(obj)

    async def update_status(self, obj: Obj) -> Obj:
        m = obj["metadata"]
        self._record("update_status", str(obj.get("kind", "")), m.get("namespace", ""), m["name"], obj)
        return await self._client.update_status(obj)

    async def patch(self, ref: Ref, name: str, patch: Obj, namespace: str = "",
                    subresource: str = "") -> Obj:
        self._record("patch", ref.kind, namespace, name, patch)
        return await self._client.patch(ref, name, patch, namespace, subresource)

    async def delete(self, ref: Ref, name: str, namespace: str = "",
                     grace_period_seconds: int | None = None) -> None:
        self._record("delete", ref.kind, namespace, name, {})
        await self._client.delete(ref, name, namespace, grace_period_seconds)
