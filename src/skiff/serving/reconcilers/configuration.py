"""Configuration reconciler: one Revision per generation; track the latest created and ready.

As upstream pkg/reconciler/configuration: the Revision for the current
generation is found by its labels (configuration + configurationGeneration)
or, with a BYO name, by name; if there is none, resources.make_revision
stamps it out (`<config>-%05d` of the generation, or the template's name).
latestCreatedRevisionName follows it; Ready is Unknown until that Revision
is ready, True when it is (latestReadyRevisionName catches up), False with
"RevisionFailed" / 'Revision "x" failed with message: ...' when it fails. The
latest ready revision only moves forward: it is the newest ready Revision
between the current latest ready one and this generation (a BYO-named
template's Revision first). A BYO name held by a conflicting Revision is
"Revision creation failed with message: ...". The pure part
(latest_created, name_conflict, latest_ready, apply_revision_state) is
table-tested. Neighbours: revision.py (readiness), service.py (mirrors this
status), resources.py.
"""

from __future__ import annotations

import copy

from skiff.core import conditions
from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.conditions import ConditionSet
from skiff.core.controller import Mapper, owned_by
from skiff.core.reconcile import get_or_none, now, write_status
from skiff.serving import resources
from skiff.serving.names import CONFIGURATION_GENERATION_LABEL, CONFIGURATION_LABEL, GROUP
from skiff.serving.reconcilers.base import CONFIGURATION, REVISION

CONFIGURATION_CONDITIONS = ConditionSet(())


def _gen(rev: Obj) -> int | None:
    try:
        return int((rev["metadata"].get("labels") or {}).get(CONFIGURATION_GENERATION_LABEL, ""))
    except ValueError:
        return None


def _template_name(config: Obj) -> str:
    return str((((config.get("spec") or {}).get("template") or {}).get("metadata") or {})
               .get("name") or "")


def latest_created(config: Obj, revisions: list[Obj]) -> Obj | None:
    """The Revision labelled with this Configuration and its current generation."""
    gen = int(config["metadata"].get("generation") or 1)
    for r in revisions:
        labels = r["metadata"].get("labels") or {}
        if labels.get(CONFIGURATION_LABEL) == config["metadata"]["name"] and _gen(r) == gen:
            return r
    return None


def name_conflict(config: Obj, rev: Obj | None) -> bool:
    """CheckNameAvailability: the BYO name is held by a Revision that is not this template's."""
    if not _template_name(config) or rev is None:
        return False
    if not resources.is_controlled_by(rev, config):
        return True
    if _gen(rev) == int(config["metadata"].get("generation") or 1):
        return False
    tmpl = (config.get("spec") or {}).get("template") or {}
    return bool(rev.get("spec") != tmpl.get("spec"))


def _is_ready(rev: Obj) -> bool:
    return conditions.status_of(rev.get("status") or {}, conditions.READY) == conditions.TRUE


def latest_ready(config: Obj, status: Obj, revisions: list[Obj]) -> str | None:
    """findAndSetLatestReadyRevision: newest ready Revision from the current latest ready one's
    generation up to the Configuration's (inclusive); the BYO-named one first."""
    mine = [r for r in revisions
            if (r["metadata"].get("labels") or {}).get(CONFIGURATION_LABEL)
            == config["metadata"]["name"]]
    gen = int(config["metadata"].get("generation") or 1)
    lrr = status.get("latestReadyRevisionName")
    start = None
    if lrr:
        cur = next((r for r in mine if r["metadata"]["name"] == lrr), None)
        if cur is not None:
            start = _gen(cur)
    if start is not None:
        mine = [r for r in mine if (g := _gen(r)) is not None and start <= g <= gen]
    byo = _template_name(config)
    mine.sort(key=lambda r: (r["metadata"]["name"] != byo, -(_gen(r) or 0)))
    for r in mine:
        if _is_ready(r):
            return str(r["metadata"]["name"])
    return None


def apply_revision_state(status: Obj, lcr: Obj, lrr: str | None) -> None:
    """Set the latest created/ready names and Ready as ConfigurationStatus's markers do."""
    m = CONFIGURATION_CONDITIONS.manage(status)
    name = lcr["metadata"]["name"]
    status["latestCreatedRevisionName"] = name
    if status.get("latestReadyRevisionName") != name:
        m.mark_unknown(conditions.READY, "", "")
    rc = conditions.get(lcr.get("status") or {}, conditions.READY) or {}
    if rc.get("status") == conditions.FALSE:
        m.mark_false(conditions.READY, "RevisionFailed",
                     f'Revision "{name}" failed with message: {rc.get("message", "")}.')
    if lrr:
        status["latestReadyRevisionName"] = lrr
        if lrr == name:
            m.mark_true(conditions.READY)


def mark_creation_failed(status: Obj, message: str) -> None:
    CONFIGURATION_CONDITIONS.manage(status).mark_false(
        conditions.READY, "RevisionFailed", f"Revision creation failed with message: {message}.")


class ConfigurationReconciler:
    name = "serving-configuration"
    primary = CONFIGURATION

    def __init__(self, client: Client) -> None:
        self.client = client

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        return [(REVISION, owned_by("Configuration", GROUP))]

    async def reconcile(self, namespace: str, name: str) -> float | None:
        config = await get_or_none(self.client, CONFIGURATION, name, namespace)
        if config is None or config["metadata"].get("deletionTimestamp"):
            return None
        old_status = config.get("status") or {}
        status = copy.deepcopy(old_status)
        gen = int(config["metadata"].get("generation") or 1)
        conditions.pre_process(CONFIGURATION_CONDITIONS, status, gen)
        try:
            await self._reconcile(config, status)
        finally:
            status["observedGeneration"] = gen
            await write_status(self.client, config, status, old_status)
        return None

    async def _reconcile(self, config: Obj, status: Obj) -> None:
        ns = config["metadata"]["namespace"]
        revisions = await self.client.list(REVISION, ns,
                                           label_selector=f"{CONFIGURATION_LABEL}="
                                                          f"{config['metadata']['name']}")
        lcr = latest_created(config, revisions)
        if lcr is None and (byo := _template_name(config)):
            held = await get_or_none(self.client, REVISION, byo, ns)
            if name_conflict(config, held):
                mark_creation_failed(status, f'revisions.{GROUP} "{byo}" already exists')
                return
            lcr = held
        if lcr is None:
            try:
                lcr = await self.client.create(resources.make_revision(config, now()))
            except ApiError as e:
                if e.code != 409:
                    mark_creation_failed(status, e.message)
                raise
            revisions.append(lcr)
        apply_revision_state(status, lcr, latest_ready(config, status, revisions))
