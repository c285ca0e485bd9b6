"""The kinds registry: which resource types the API serves, as data.

A Kind names a type the upstream way (group, versions, kind, plural,
singular, short names, categories, scope) and carries its OpenAPI v3 schema
and printer columns. Built-in kinds are declared in core/builtin_kinds.py;
every other kind arrives as a CustomResourceDefinition object (the domains'
crds.py files at bootstrap, or a user's CRD), converted here by
kinds_from_crd(). The API server (discovery, openapi, routing, Tables) and
the registry's validation both read from one Kinds instance. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from skiff.core.schema import Schema


@dataclass(frozen=True)
class PrinterColumn:
    """A Table column: a JSONPath into the object (CRD additionalPrinterColumns)."""
    name: str
    json_path: str
    type: str = "string"
    priority: int = 0
    description: str = ""
    format: str = ""


@dataclass(frozen=True)
class Kind:
    group: str                     # "" for the core group
    version: str                   # the storage (and preferred) version
    kind: str
    plural: str
    namespaced: bool
    schema: Schema
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()  # every served version, preferred first
    status_subresource: bool = True
    printer_columns: tuple[PrinterColumn, ...] | None = None  # None: built-in printer or Age only
    name_rule: str = "dns1123-subdomain"
    builtin: bool = False
    verbs: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch",
                              "update", "watch")
    extra_subresources: tuple[str, ...] = ()   # e.g. pods: exec, log
    crd_name: str = ""             # the CRD object this kind came from
    # Accepted and stored, but not acted on yet: why, in one line. Writes of the kind answer
    # with a Warning header and its objects carry Ready=Unknown, reason NotImplemented
    # (core/notimplemented.py), so nothing silently pretends. Cleared as each feature lands.
    not_implemented: str = ""

    def __post_init__(self) -> None:
        if not self.singular:
            object.__setattr__(self, "singular", self.kind.lower())
        if not self.versions:
            object.__setattr__(self, "versions", (self.version,))

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> str:
        """`plural.group`, the name kubectl and error messages use."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def group_versions(self) -> list[str]:
        return [f"{self.group}/{v}" if self.group else v for v in self.versions]


@dataclass
class Kinds:
    """All kinds served now, looked up by (group, plural), by (group, kind), or by a short name."""
    _by_resource: dict[tuple[str, str], Kind] = field(default_factory=dict)
    generation: int = 0    # bumped on every change, so cached documents know when to rebuild

    def add(self, k: Kind) -> None:
        if self._by_resource.get((k.group, k.plural)) != k:
            self._by_resource[(k.group, k.plural)] = k
            self.generation += 1

    def remove(self, group: str, plural: str) -> None:
        if self._by_resource.pop((group, plural), None) is not None:
            self.generation += 1

    def __iter__(self) -> Iterator[Kind]:
        return iter(sorted(self._by_resource.values(), key=lambda k: (k.group != "", k.group, k.plural)))

    def get(self, group: str, plural: str) -> Kind | None:
        return self._by_resource.get((group, plural))

    def for_path(self, group: str, version: str, plural: str) -> Kind | None:
        k = self._by_resource.get((group, plural))
        return k if k and version in k.versions else None

    def for_api_version(self, api_version: str, kind: str) -> Kind | None:
        group, _, version = api_version.rpartition("/")
        for k in self._by_resource.values():
            if k.group == group and k.kind == kind and version in k.versions:
                return k
        return None

    def kinds_named(self, kind: str) -> list[Kind]:
        return [k for k in self._by_resource.values() if k.kind == kind]

    def group_versions(self) -> list[tuple[str, list[str]]]:
        """(group, [versions, preferred first]) for every non-core group, in discovery order."""
        groups: dict[str, list[str]] = {}
        for k in self:
            if not k.group:
                continue
            vs = groups.setdefault(k.group, [])
            for v in k.versions:
                if v not in vs:
                    vs.append(v)
        return [(g, _sort_versions(vs)) for g, vs in groups.items()]

    def in_group_version(self, group: str, version: str) -> list[Kind]:
        return [k for k in self if k.group == group and version in k.versions]


def _version_key(v: str) -> tuple[int, int, int]:
    """Kubernetes version priority: GA > beta > alpha, then by numbers, descending."""
    import re
    m = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", v)
    if not m:
        return (3, 0, 0)
    major = int(m.group(1))
    stage = {"alpha": 2, "beta": 1, None: 0}[m.group(2)]
    minor = int(m.group(3) or 0)
    return (stage, -major, -minor)


def _sort_versions(vs: Iterable[str]) -> list[str]:
    return sorted(vs, key=_version_key)


# --- CustomResourceDefinition <-> Kind ----------------------------------------

# A CRD skiff serves but does not act on yet carries why (Kind.not_implemented).
NOT_IMPLEMENTED_ANNOTATION = "skiff.dev/not-implemented"

def kinds_from_crd(crd: dict[str, Any]) -> Kind:
    """The Kind a CRD object defines (all served versions share the storage schema)."""
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec.get("versions", []) if v.get("served", True)]
    storage = next((v for v in served if v.get("storage")), served[0])
    schema = (storage.get("schema") or {}).get("openAPIV3Schema") or {
        "type": "object", "x-kubernetes-preserve-unknown-fields": True}
    cols = tuple(PrinterColumn(name=c["name"], json_path=c["jsonPath"], type=c.get("type", "string"),
                               priority=c.get("priority", 0), description=c.get("description", ""),
                               format=c.get("format", ""))
                 for c in storage.get("additionalPrinterColumns", []))
    subres = storage.get("subresources") or {}
    versions = [storage["name"]] + [v["name"] for v in served if v is not storage]
    annotations = (crd.get("metadata") or {}).get("annotations") or {}
    return Kind(
        group=spec["group"], version=storage["name"], kind=names["kind"], plural=names["plural"],
        singular=names.get("singular") or names["kind"].lower(),
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        schema=_with_object_envelope(schema),
        short_names=tuple(names.get("shortNames", [])), categories=tuple(names.get("categories", [])),
        versions=tuple(versions), status_subresource="status" in subres,
        printer_columns=cols, crd_name=crd["metadata"]["name"],
        name_rule=annotations.get("skiff.dev/name-rule", "dns1123-subdomain"),
        not_implemented=annotations.get(NOT_IMPLEMENTED_ANNOTATION, ""),
    )


def _with_object_envelope(schema: Schema) -> Schema:
    """apiVersion, kind and metadata are implicit in a CRD schema; make them explicit."""
    from skiff.core.schema import OBJECT_META, STR
    s = dict(schema)
    props = dict(s.get("properties") or {})
    props.setdefault("apiVersion", STR)
    props.setdefault("kind", STR)
    props["metadata"] = OBJECT_META
    s["properties"] = props
    s.setdefault("type", "object")
    return s


def crd_for(k: Kind) -> dict[str, Any]:
    """The CustomResourceDefinition object that registers `k` (used at bootstrap)."""
    schema = {key: val for key, val in k.schema.items()}
    props = {p: v for p, v in (schema.get("properties") or {}).items() if p != "metadata"}
    props["metadata"] = {"type": "object"}
    schema["properties"] = props
    versions = []
    for v in k.versions:
        entry: dict[str, Any] = {"name": v, "served": True, "storage": v == k.version,
                                 "schema": {"openAPIV3Schema": schema}}
        if k.status_subresource:
            entry["subresources"] = {"status": {}}
        if k.printer_columns:
            entry["additionalPrinterColumns"] = [
                {"name": c.name, "type": c.type, "jsonPath": c.json_path,
                 **({"priority": c.priority} if c.priority else {}),
                 **({"description": c.description} if c.description else {})}
                for c in k.printer_columns]
        versions.append(entry)
    names: dict[str, Any] = {"kind": k.kind, "listKind": k.list_kind, "plural": k.plural,
                             "singular": k.singular}
    if k.short_names:
        names["shortNames"] = list(k.short_names)
    if k.categories:
        names["categories"] = list(k.categories)
    meta: dict[str, Any] = {"name": f"{k.plural}.{k.group}"}
    if k.name_rule != "dns1123-subdomain":
        meta.setdefault("annotations", {})["skiff.dev/name-rule"] = k.name_rule
    if k.not_implemented:
        meta.setdefault("annotations", {})[NOT_IMPLEMENTED_ANNOTATION] = k.not_implemented
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": meta,
        "spec": {"group": k.group, "names": names,
                 "scope": "Namespaced" if k.namespaced else "Cluster", "versions": versions},
    }
