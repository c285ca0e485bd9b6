"""Service reconciler: a Knative Service keeps a Configuration and a Route of its name.

As upstream pkg/reconciler/service: create or update the two children
(resources.make_configuration / make_route), then mirror their status:
ConfigurationsReady from the Configuration's Ready, RoutesReady from the
Route's Ready, each "OutOfDate" while the child has not observed its latest
generation; url, address, traffic and the latest revision names are copied.
With a BYO revision name the Route is not reprogrammed before the
Configuration has caught up, and a name taken by a conflicting Revision
stops it (RevisionNameTaken). RoutesReady drops to Unknown
(TrafficNotMigrated) while the Route's traffic is not yet what the spec
asks. propagate_configuration / propagate_route / check_routes_not_ready
are the pure part, table-tested. Neighbours: configuration.py and route.py
(the children's reconcilers), resources.py, conditions.py.
"""

from __future__ import annotations

import copy
from typing import Any

from skiff.core import conditions
from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.conditions import ConditionSet
from skiff.core.controller import Mapper, owned_by
from skiff.core.reconcile import desired, differs, get_or_none, write_status
from skiff.serving import resources
from skiff.serving.names import GROUP
from skiff.serving.reconcilers.base import CONFIGURATION, REVISION, ROUTE, SERVICE
from skiff.serving.reconcilers.configuration import name_conflict

CONFIGURATIONS_READY = "ConfigurationsReady"
ROUTES_READY = "RoutesReady"
SERVICE_CONDITIONS = ConditionSet((CONFIGURATIONS_READY, ROUTES_READY))


def _observed(obj: Obj) -> bool:
    return int((obj.get("status") or {}).get("observedGeneration") or 0) == \
        int(obj["metadata"].get("generation") or 1)


def _propagate_ready(m: conditions.Manager, t: str, child: Obj) -> None:
    c = conditions.get(child.get("status") or {}, conditions.READY)
    if c is None:
        return
    if c.get("status") == conditions.TRUE:
        m.mark_true(t)
    elif c.get("status") == conditions.FALSE:
        m.mark_false(t, c.get("reason", ""), c.get("message", ""))
    else:
        m.mark_unknown(t, c.get("reason", ""), c.get("message", ""))


def propagate_configuration(status: Obj, config: Obj) -> bool:
    """Mirror the Configuration; False when a BYO-named Configuration must catch up first."""
    m = SERVICE_CONDITIONS.manage(status)
    if not _observed(config):
        m.mark_unknown(CONFIGURATIONS_READY, "OutOfDate",
                       "The Configuration is still working to reflect the latest desired "
                       "specification.")
        tmpl_meta = ((config.get("spec") or {}).get("template") or {}).get("metadata") or {}
        return not tmpl_meta.get("name")
    cs = config.get("status") or {}
    for f in ("latestReadyRevisionName", "latestCreatedRevisionName"):
        if cs.get(f):
            status[f] = cs[f]
        else:
            status.pop(f, None)
    _propagate_ready(m, CONFIGURATIONS_READY, config)
    return True


def propagate_route(status: Obj, route: Obj, config: Obj) -> None:
    m = SERVICE_CONDITIONS.manage(status)
    if not _observed(route):
        m.mark_unknown(ROUTES_READY, "OutOfDate",
                       "The Route is still working to reflect the latest desired specification.")
    else:
        rs = route.get("status") or {}
        for f in ("url", "address", "traffic"):
            if rs.get(f) is not None:
                status[f] = copy.deepcopy(rs[f])
            else:
                status.pop(f, None)
        _propagate_ready(m, ROUTES_READY, route)
    check_routes_not_ready(status, route, config)


def check_routes_not_ready(status: Obj, route: Obj, config: Obj) -> None:
    """RoutesReady is Unknown (TrafficNotMigrated) until the Route serves what its spec asks."""
    if conditions.status_of(status, ROUTES_READY) != conditions.TRUE:
        return
    m = SERVICE_CONDITIONS.manage(status)
    want = (route.get("spec") or {}).get("traffic") or []
    got = (route.get("status") or {}).get("traffic") or []
    if len(want) != len(got):
        m.mark_unknown(ROUTES_READY, "TrafficNotMigrated",
                       "Traffic is not yet migrated to the latest revision.")
        return
    lrr = (config.get("status") or {}).get("latestReadyRevisionName", "")

    def key(tt: Obj, resolve: bool) -> tuple[Any, ...]:
        rev, cfg = tt.get("revisionName") or "", tt.get("configurationName") or ""
        if resolve and cfg == config["metadata"]["name"]:
            rev, cfg = lrr, ""
        return (tt.get("tag") or "", rev, cfg, tt.get("percent"))
    if [key(t, True) for t in want] != [key(t, False) for t in got]:
        m.mark_unknown(ROUTES_READY, "TrafficNotMigrated",
                       "Traffic is not yet migrated to the latest revision.")


def mark_not_owned(status: Obj, kind: str, name: str) -> None:
    t = CONFIGURATIONS_READY if kind == "Configuration" else ROUTES_READY
    SERVICE_CONDITIONS.manage(status).mark_false(
        t, "NotOwned", f'There is an existing {kind} "{name}" that we do not own.')


class ServiceReconciler:
    name = "serving-service"
    primary = SERVICE

    def __init__(self, client: Client) -> None:
        self.client = client

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        return [(CONFIGURATION, owned_by("Service", GROUP)), (ROUTE, owned_by("Service", GROUP))]

    async def _child(self, ref: Ref, svc: Obj, want: Obj, status: Obj) -> Obj | None:
        """Create or update one child; None (status marked) when someone else owns the name."""
        m = svc["metadata"]
        have = await get_or_none(self.client, ref, want["metadata"]["name"], m["namespace"])
        if have is None:
            return await self.client.create(want)
        if not resources.is_controlled_by(have, svc):
            mark_not_owned(status, ref.kind, want["metadata"]["name"])
            return None
        if differs(have, want):
            upd = desired(have, want)
            return await self.client.update(upd)
        return have

    async def reconcile(self, namespace: str, name: str) -> float | None:
        svc = await get_or_none(self.client, SERVICE, name, namespace)
        if svc is None or svc["metadata"].get("deletionTimestamp"):
            return None
        old_status = svc.get("status") or {}
        status = copy.deepcopy(old_status)
        gen = int(svc["metadata"].get("generation") or 1)
        conditions.pre_process(SERVICE_CONDITIONS, status, gen)
        requeue: float | None = None
        try:
            requeue = await self._reconcile(svc, status)
        finally:
            status["observedGeneration"] = gen
            try:
                await write_status(self.client, svc, status, old_status)
            except ApiError as e:
                if e.code not in (404, 409):
                    raise
                requeue = 0.1 if e.code == 409 else requeue
        return requeue

    async def _reconcile(self, svc: Obj, status: Obj) -> float | None:
        existing = await get_or_none(self.client, CONFIGURATION, svc["metadata"]["name"],
                                     svc["metadata"]["namespace"])
        config = await self._child(CONFIGURATION, svc,
                                   resources.make_configuration(svc, existing), status)
        if config is None:
            return 5.0   # not ours: look again later, the owner may go away
        if not propagate_configuration(status, config):
            return None
        tmpl_name = (((config.get("spec") or {}).get("template") or {}).get("metadata") or {}) \
            .get("name")
        if tmpl_name:
            rev = await get_or_none(self.client, REVISION, tmpl_name, config["metadata"]["namespace"])
            if name_conflict(config, rev):
                SERVICE_CONDITIONS.manage(status).mark_false(
                    ROUTES_READY, "RevisionNameTaken",
                    f'The revision name "{tmpl_name}" is taken by a conflicting Revision, so '
                    "traffic will not be migrated")
                return None
        route = await self._child(ROUTE, svc, resources.make_route(svc), status)
        if route is None:
            return 5.0
        propagate_route(status, route, config)
        return None
