"""The one small client interface reconcilers use to reach objects.

Reconcilers, the node runtime and the garbage collector never touch the
store: they call get/list/watch/create/update/update_status/patch/delete on a
Client. Locally the implementation is in-process (core/apiserver/registry.py,
the same code behind the HTTP API, so validation, defaulting and watch are
identical); the same calls could be served by a real cluster's API. Objects
are plain JSON-shaped dicts, as kubectl sees them.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

Obj = dict[str, Any]


@dataclass(frozen=True)
class Ref:
    """Which collection: api_version ('v1', 'apps/v1', 'serving.knative.dev/v1') and kind."""
    api_version: str
    kind: str


@dataclass(frozen=True)
class WatchEvent:
    type: str          # ADDED | MODIFIED | DELETED | BOOKMARK | ERROR
    object: Obj


class ApiError(Exception):
    """A Kubernetes Status failure: code (404, 409, 422...), reason and message."""

    def __init__(self, code: int, reason: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> Obj:
        s: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            s["details"] = self.details
        return s


class Client(Protocol):
    async def get(self, ref: Ref, name: str, namespace: str = "") -> Obj: ...

    async def list(self, ref: Ref, namespace: str = "", label_selector: str = "",
                   field_selector: str = "") -> list[Obj]: ...

    async def list_with_version(self, ref: Ref, namespace: str = "", label_selector: str = "",
                                field_selector: str = "") -> tuple[builtins.list[Obj], str]:
        """The items and the list's resourceVersion (ListMeta), the point a watch resumes from
        without a gap, as client-go's reflector does (never the newest item's: after a delete
        or a restart that one can be older than the watch history, and the watch expires)."""
        ...

    def watch(self, ref: Ref, namespace: str = "", resource_version: str = "",
              shared: bool = False) -> AsyncIterator[WatchEvent]:
        """shared: the consumer only reads each event's object, so it may be the one object
        every such watcher of the event gets (decoded once); otherwise it is a private copy."""
        ...

    async def create(self, obj: Obj) -> Obj: ...

    async def update(self, obj: Obj) -> Obj: ...

    async def update_status(self, obj: Obj) -> Obj: ...

    async def patch(self, ref: Ref, name: str, patch: Obj, namespace: str = "",
                    subresource: str = "") -> Obj: ...  # JSON merge patch

    async def delete(self, ref: Ref, name: str, namespace: str = "",
                     grace_period_seconds: int | None = None) -> None:
        """Delete (gracefully for running pods); an object already gone is not an error."""
        ...
