"""CustomResourceDefinition reconciler: keeps the kinds registry in step with CRDs.

A CRD object in the store is the source of truth for its kind: when one is
created or changed the kind is (re)registered, so discovery, openapi, routing
and validation serve it at once; when one is deleted its kind goes. Status
gets the upstream NamesAccepted and Established conditions. Also the CRD
validator used by admission (a CRD skiff cannot turn into a kind is rejected).
"""

from __future__ import annotations

from typing import Any

from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.clock import rfc3339, utcnow
from skiff.core.controller import Mapper
from skiff.core.kinds import Kind, Kinds, kinds_from_crd
from skiff.core.validation import Cause

CRD = Ref("apiextensions.k8s.io/v1", "CustomResourceDefinition")
CLEANUP = "customresourcecleanup.apiextensions.k8s.io"


def validate_crd(crd: Obj, old: Obj | None) -> list[Cause]:
    """Upstream's checks that matter here: name = plural.group, one storage version, a kind. Pure."""
    causes: list[Cause] = []
    spec: Any = crd.get("spec") or {}
    names = spec.get("names") or {}
    name = (crd.get("metadata") or {}).get("name", "")
    if names.get("plural") and spec.get("group") and name != f"{names['plural']}.{spec['group']}":
        causes.append(Cause("metadata.name", "FieldValueInvalid",
                            f'metadata.name: Invalid value: "{name}": must be spec.names.plural+"."+'
                            f"spec.group"))
    for f in ("group",):
        if not spec.get(f):
            causes.append(Cause(f"spec.{f}", "FieldValueRequired", f"spec.{f}: Required value"))
    for f in ("plural", "kind"):
        if not names.get(f):
            causes.append(Cause(f"spec.names.{f}", "FieldValueRequired", f"spec.names.{f}: Required value"))
    versions = spec.get("versions") or []
    if not versions:
        causes.append(Cause("spec.versions", "FieldValueRequired", "spec.versions: Required value"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(Cause("spec.versions", "FieldValueInvalid",
                            "spec.versions: Invalid value: must have exactly one version marked as storage version"))
    if old is not None:
        o = old.get("spec") or {}
        if o.get("group") != spec.get("group"):
            causes.append(Cause("spec.group", "FieldValueInvalid", "spec.group: Invalid value: field is immutable"))
    return causes


def crd_status(crd: Obj, k: Kind, now: str) -> Obj:
    names = dict((crd.get("spec") or {}).get("names") or {})
    names.setdefault("singular", k.singular)
    names.setdefault("listKind", k.list_kind)
    conds = [
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
         "message": "no conflicts found", "lastTransitionTime": now},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
         "message": "the initial names have been accepted", "lastTransitionTime": now},
    ]
    return {"acceptedNames": names, "conditions": conds, "storedVersions": [k.version]}


class CRDReconciler:
    name = "customresourcedefinition"
    primary = CRD

    def __init__(self, client: Client, kinds: Kinds) -> None:
        self.client = client
        self.kinds = kinds
        self._by_crd: dict[str, tuple[str, str]] = {}

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        return []

    async def reconcile(self, namespace: str, name: str) -> float | None:
        try:
            crd = await self.client.get(CRD, name)
        except ApiError as e:
            if e.code != 404:
                raise
            gone = self._by_crd.pop(name, None)
            if gone:
                self.kinds.remove(*gone)
            return None
        k = kinds_from_crd(crd)
        finalizers = crd["metadata"].get("finalizers") or []
        if crd["metadata"].get("deletionTimestamp"):
            return await self._clean_up(crd, k, finalizers)
        self.kinds.add(k)
        self._by_crd[name] = (k.group, k.plural)
        if CLEANUP not in finalizers:
            crd["metadata"]["finalizers"] = [*finalizers, CLEANUP]
            crd = await self.client.update(crd)
        status = crd.get("status") or {}
        if not any(c.get("type") == "Established" and c.get("status") == "True"
                   for c in status.get("conditions") or []):
            crd["status"] = crd_status(crd, k, rfc3339(utcnow()))
            await self.client.update_status(crd)
        return None

    async def _clean_up(self, crd: Obj, k: Kind, finalizers: list[str]) -> float | None:
        """Deleting a CRD deletes every object of its kind first (upstream's cleanup finalizer)."""
        ref = Ref(k.api_version, k.kind)
        if self.kinds.get(k.group, k.plural) is not None:
            left = await self.client.list(ref)
            for o in left:
                if not o["metadata"].get("deletionTimestamp"):
                    await self.client.delete(ref, o["metadata"]["name"], o["metadata"].get("namespace", ""))
            if left:
                return 0.2
        self.kinds.remove(k.group, k.plural)
        self._by_crd.pop(crd["metadata"]["name"], None)
        crd["metadata"]["finalizers"] = [f for f in finalizers if f != CLEANUP]
        await self.client.update(crd)
        return None
