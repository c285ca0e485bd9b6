"""The store: where desired state lives, behind one small interface.

Keys are `/<group>/<plural>/<namespace>/<name>` (`/<group>/<plural>/<name>`
for cluster-scoped kinds, group `core` for the core group). Every write is
one transaction that assigns the next resourceVersion; watchers see only
committed writes, in order. sqlite.py is the default backend; an etcd
backend can replace it behind the same interface (the API registry in
core/apiserver/registry.py is the only caller, reconcilers never are).
"""

from __future__ import annotations

import builtins
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from skiff.core.client import Obj


class StoreError(Exception):
    pass


class NotFound(StoreError):
    pass


class AlreadyExists(StoreError):
    pass


class Conflict(StoreError):
    """The object changed since the resourceVersion the caller read."""


class TooLarge(StoreError):
    """An object over the store's size limit (etcd: "request is too large")."""

    def __init__(self, key: str, size: int, limit: int) -> None:
        super().__init__(f"{key}: {size} bytes; the limit is {limit}")
        self.size = size
        self.limit = limit


class TooOld(StoreError):
    """A watch asked for history the store no longer keeps (HTTP 410 Gone)."""


@dataclass(slots=True)
class Event:
    """A committed change. The object is kept as its JSON text: history stays compact, and each
    consumer decodes its own private copy, or reads the one shared() copy that consumers which
    promise not to change it share."""
    type: str      # ADDED | MODIFIED | DELETED
    key: str
    text: str
    rv: int
    _shared: Obj | None = field(default=None, compare=False, repr=False)

    def decode(self) -> Obj:
        obj: Obj = json.loads(self.text)
        return obj

    def shared(self) -> Obj:
        if self._shared is None:
            self._shared = self.decode()
        return self._shared


class Watch(Protocol):
    def __aiter__(self) -> AsyncIterator[Event]: ...

    def close(self) -> None: ...


class Store(Protocol):
    @property
    def rv(self) -> int: ...

    def get(self, key: str) -> Obj | None: ...

    def list(self, prefix: str, start_after: str = "") -> tuple[list[Obj], int]: ...

    def texts(self, prefix: str) -> tuple[builtins.list[str], int]: ...

    def iter(self, prefix: str, start_after: str = "") -> Iterator[tuple[str, Obj]]: ...

    def create(self, key: str, obj: Obj) -> Obj: ...

    def update(self, key: str, obj: Obj, expected_rv: int | None = None) -> Obj: ...

    def delete(self, key: str, expected_rv: int | None = None) -> Obj: ...

    def watch(self, prefix: str, since_rv: int = 0) -> Watch: ...

    def close(self) -> None: ...


def key_for(group: str, plural: str, namespace: str, name: str) -> str:
    g = group or "core"
    return f"/{g}/{plural}/{namespace}/{name}" if namespace else f"/{g}/{plural}/{name}"


def prefix_for(group: str, plural: str, namespace: str = "") -> str:
    g = group or "core"
    return f"/{g}/{plural}/{namespace}/" if namespace else f"/{g}/{plural}/"
