"""The injection webhook's shell: the mesh as it looks to the Pod defaulter (inject.py's caller).

InjectionView keeps the latest MeshConfig (mesh/membership.py) from watches of
ServiceMeshControlPlanes, ServiceMeshMemberRolls, ServiceMeshMembers and
Namespaces through the Client, and its defaulter() runs inject() on every Pod
create; InjectionComponent starts and stops the watches with the platform
(mesh/setup.py). Neighbours: inject.py (pure), membership.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.mesh import membership
from skiff.mesh.membership import MeshConfig
from skiff.mesh.sidecar.inject import _meta, inject

log = logging.getLogger("skiff.mesh.sidecar")

# --- the shell: the mesh as the webhook sees it ---------------------------------------------

WATCHED = (membership.SMCP, membership.SMMR, membership.SMM, membership.NAMESPACE)
RETRY_S = 0.5


def _fingerprint(o: Obj) -> Any:
    """What membership.mesh_config reads of an object (status churn is ignored)."""
    m = _meta(o)
    return (json.dumps(o.get("spec"), sort_keys=True), m.get("labels"),
            m.get("creationTimestamp"), bool(m.get("deletionTimestamp")))


class InjectionView:
    """The latest MeshConfig (None: no ServiceMeshControlPlane) and the Pod defaulter that injects
    with it. watch() keeps it current; the defaulter only reads it, so admission stays
    synchronous and never waits on the store."""

    def __init__(self) -> None:
        self.config: MeshConfig | None = None
        self.synced = asyncio.Event()
        self._cache: dict[str, dict[tuple[str, str], Obj]] = {r.kind: {} for r in WATCHED}
        self._listed: set[str] = set()

    def refresh(self) -> None:
        objs = [o for items in self._cache.values() for o in items.values()]
        self.config = membership.mesh_config(objs)

    def defaulter(self, obj: Obj, old: Obj | None) -> None:
        """Admission's Pod defaulter: inject on create (Istio's webhook sees CREATE only)."""
        cfg = self.config
        if old is not None or cfg is None:
            return
        try:
            out = inject(obj, cfg, revision=cfg.name or "basic")
        except Exception:          # a webhook bug must not make pods uncreatable
            log.exception("sidecar injection failed for pod %s/%s; created without a sidecar",
                          _meta(obj).get("namespace"), _meta(obj).get("name"))
            return
        if out is not None:
            obj.clear()
            obj.update(out)

    async def watch(self, client: Client) -> None:
        """List and watch the four kinds until cancelled; each change recomputes the config."""
        await asyncio.gather(*(self._watch_kind(client, ref) for ref in WATCHED))

    def _apply(self, kind: str, ev_type: str, o: Obj) -> bool:
        items = self._cache[kind]
        key = (str(_meta(o).get("namespace") or ""), str(_meta(o).get("name") or ""))
        old = items.get(key)
        if ev_type == "DELETED":
            return items.pop(key, None) is not None
        items[key] = o
        return old is None or _fingerprint(old) != _fingerprint(o)

    async def _watch_kind(self, client: Client, ref: Ref) -> None:
        while True:
            try:
                items, rv = await client.list_with_version(ref)
                self._cache[ref.kind] = {(str(_meta(o).get("namespace") or ""),
                                          str(_meta(o).get("name") or "")): o for o in items}
                self._listed.add(ref.kind)
                self.refresh()
                if len(self._listed) == len(WATCHED):
                    self.synced.set()
                async for ev in client.watch(ref, "", rv):
                    if ev.type == "ERROR":
                        break
                    if ev.type in ("ADDED", "MODIFIED", "DELETED") and \
                            self._apply(ref.kind, ev.type, ev.object):
                        self.refresh()
            except asyncio.CancelledError:
                raise
            except ApiError as e:
                log.debug("sidecar injection: watch %s restarts: %s", ref.kind, e.message)
            except Exception:
                log.exception("sidecar injection: watch %s failed", ref.kind)
            await asyncio.sleep(RETRY_S)


class InjectionComponent:
    """The view's watch as a platform component. begin() starts it early (at install, before
    the controllers make pods); start() waits briefly for the first lists; stop() cancels."""

    SYNC_S = 5.0

    def __init__(self, client: Client, view: InjectionView | None = None) -> None:
        self.client = client
        self.view = view or InjectionView()
        self._task: asyncio.Task[None] | None = None

    def begin(self) -> None:
        if self._task is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:       # installed outside a loop (a test): start() begins it
            return
        self._task = loop.create_task(self.view.watch(self.client))

    async def start(self) -> None:
        self.begin()
        try:
            await asyncio.wait_for(self.view.synced.wait(), self.SYNC_S)
        except TimeoutError:
            log.warning("sidecar injection: the mesh's objects are not listed after %.0f s; "
                        "pods created meanwhile get no sidecar", self.SYNC_S)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
