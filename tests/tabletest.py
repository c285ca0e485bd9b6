"""Table tests of reconcilers in the knative/serving style: objects in the world + a key ->
the creates, updates, status updates, patches and deletes one reconcile makes.

Each row's wants are partial objects: a want matches the action's object when every field it
names has that value (recursively; a list matches a list of the same length item by item). The world is a MemoryClient
(core/memclient.py): the real registry semantics in memory, every write recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from skiff.core.client import ApiError
from skiff.core.kinds import Kind
from skiff.core.memclient import Action, MemoryClient

Obj = dict[str, Any]


@dataclass
class Row:
    name: str
    objects: list[Obj]
    key: str                                           # "namespace/name" (or "name")
    want_creates: list[Obj] = field(default_factory=list)
    want_updates: list[Obj] = field(default_factory=list)
    want_status_updates: list[Obj] = field(default_factory=list)
    want_patches: list[tuple[str, str, Obj]] = field(default_factory=list)   # (kind, name, patch)
    want_deletes: list[tuple[str, str]] = field(default_factory=list)        # (kind, name)
    want_err: str = ""                                 # a part of the error's message
    fail_on: list[tuple[str, str]] = field(default_factory=list)             # (verb, kind)
    want_requeue: Any = "unchecked"                    # what reconcile returns (seconds or None)

    def __str__(self) -> str:
        return self.name


def subset(want: Any, got: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and subset(v, got[k]) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(got, list) and len(want) == len(got) and \
            all(subset(w, g) for w, g in zip(want, got, strict=True))
    return bool(want == got)


def _check(label: str, wants: Sequence[Any], got: list[Any], match: Callable[[Any, Any], bool]) -> None:
    assert len(got) == len(wants), f"{label}: want {len(wants)}, got {len(got)}: {got}"
    for i, (w, g) in enumerate(zip(wants, got, strict=True)):
        assert match(w, g), f"{label}[{i}]: want {w}\n got {g}"


def run(row: Row, make: Callable[[MemoryClient], Any], kinds: Sequence[Kind] = ()) -> MemoryClient:
    client = MemoryClient(row.objects, kinds)
    for verb, kind in row.fail_on:
        client.fail_on(verb, kind)
    reconciler = make(client)
    ns, _, name = row.key.rpartition("/")
    err = ""
    requeue: Any = None
    try:
        requeue = asyncio.run(reconciler.reconcile(ns, name))
    except ApiError as e:
        err = e.message
    if row.want_err:
        assert row.want_err in err, f"want an error with {row.want_err!r}, got {err!r}"
    else:
        assert not err, f"unexpected error: {err}"
    acts: list[Action] = client.actions
    by = {v: [a for a in acts if a.verb == v]
          for v in ("create", "update", "update_status", "patch", "delete")}
    _check("creates", row.want_creates, [a.object for a in by["create"]], subset)
    _check("updates", row.want_updates, [a.object for a in by["update"]], subset)
    _check("status updates", row.want_status_updates, [a.object for a in by["update_status"]],
           subset)
    _check("patches", row.want_patches, [(a.kind, a.name, a.object) for a in by["patch"]],
           lambda w, g: w[0] == g[0] and w[1] == g[1] and subset(w[2], g[2]))
    _check("deletes", row.want_deletes, [(a.kind, a.name) for a in by["delete"]],
           lambda w, g: bool(w == g))
    if row.want_requeue != "unchecked":
        assert requeue == row.want_requeue, f"requeue: want {row.want_requeue}, got {requeue}"
    return client
