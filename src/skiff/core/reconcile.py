"""What every domain's reconcilers share: get-or-None, status writes, child diffs, key indexes.

Each reconciler is a thin shell: it reads the world through the Client, calls
pure code and writes the difference. These keep the shells short: read
one object or None, write status only when it changed (times aside, kept when
nothing about a condition changed), tell whether a child must be updated,
and two small key indexes the controllers' mappers consult (KeySet: every
key seen, for "the config changed, reconcile them all"; Tracker: which
objects refer to which, knative's tracker). Neighbours: core/conditions.py,
core/controller.py, the domains' reconcilers (serving/, operator/).
"""

from __future__ import annotations

from collections.abc import Iterable

from skiff.core import conditions
from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.clock import rfc3339, utcnow
from skiff.core.controller import Key, Mapper
from skiff.core.jsoncopy import clone


def now() -> str:
    return rfc3339(utcnow())


async def get_or_none(client: Client, ref: Ref, name: str, namespace: str) -> Obj | None:
    try:
        return await client.get(ref, name, namespace)
    except ApiError as e:
        if e.code == 404:
            return None
        raise


async def write_status(client: Client, obj: Obj, status: Obj, old_status: Obj) -> Obj:
    """Write `status` unless it equals the stored one (times aside); keep unchanged times."""
    if conditions.same_status(status, old_status):
        return obj
    # a shallow copy does: the API server copies what it is sent, and only status changes
    out = {**obj, "status": conditions.stamp(status, old_status, now())}
    return await client.update_status(out)


def differs(have: Obj, want: Obj, fields: Iterable[str] = ("spec",)) -> bool:
    """Whether an existing child must be updated: its spec, labels or annotations differ."""
    if any(have.get(f) != want.get(f) for f in fields):
        return True
    hm, wm = have.get("metadata") or {}, want.get("metadata") or {}
    return any((hm.get(k) or {}) != (wm.get(k) or {}) for k in ("labels", "annotations"))


def desired(have: Obj, want: Obj) -> Obj:
    """The update that makes an existing child what `want` says: a copy of `have` (its
    resourceVersion, status, owner and other metadata kept) with want's spec, labels and
    annotations, the fields differs() compares."""
    upd = clone(have)
    upd["spec"] = want["spec"]
    meta = upd.setdefault("metadata", {})
    meta["labels"] = want["metadata"]["labels"]
    meta["annotations"] = want["metadata"]["annotations"]
    return upd


class KeySet:
    """Every key a reconciler has seen alive, so one event can requeue them all."""

    def __init__(self) -> None:
        self.keys: set[Key] = set()

    def seen(self, key: Key) -> None:
        self.keys.add(key)

    def gone(self, key: Key) -> None:
        self.keys.discard(key)

    def all(self) -> Mapper:
        return lambda _obj: sorted(self.keys)


class Tracker:
    """Which routes refer to which Configurations and Revisions (knative's tracker).

    A route tracks every target it names, found or missing, so that the
    target's appearance, readiness or deletion requeues the route.
    """

    def __init__(self) -> None:
        self.by_target: dict[tuple[str, str, str], set[Key]] = {}
        self.by_route: dict[Key, set[tuple[str, str, str]]] = {}

    def track(self, route: Key, kind: str, names: Iterable[str]) -> None:
        for n in names:
            t = (kind, route[0], n)
            self.by_target.setdefault(t, set()).add(route)
            self.by_route.setdefault(route, set()).add(t)

    def reset(self, route: Key) -> None:
        for t in self.by_route.pop(route, set()):
            routes = self.by_target.get(t)
            if routes is not None:
                routes.discard(route)
                if not routes:
                    del self.by_target[t]

    def routes_for(self, kind: str, namespace: str, name: str) -> list[Key]:
        return sorted(self.by_target.get((kind, namespace, name), set()))

    def mapper(self, kind: str, label: str = "") -> Mapper:
        """Map a Configuration/Revision event to the routes tracking it (and, for a Revision,
        the routes tracking its Configuration, named in `label`)."""
        def m(obj: Obj) -> list[Key]:
            meta = obj["metadata"]
            ns = meta.get("namespace", "")
            keys = set(self.routes_for(kind, ns, meta["name"]))
            if label and (cfg := (meta.get("labels") or {}).get(label)):
                keys |= set(self.routes_for("Configuration", ns, cfg))
            return sorted(keys)
        return m
