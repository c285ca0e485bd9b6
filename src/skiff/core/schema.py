"""A small vocabulary for writing OpenAPI v3 structural schemas in Python.

Every kind skiff serves, built-in or CRD, is described by an openAPIV3Schema
(the same structure a CustomResourceDefinition carries). These helpers keep
the schema modules (core/builtin_schemas.py, the domains' crds.py) short and
readable; validation.py checks objects against the resulting dicts, and the
API server publishes them under /openapi/v3. Pure data, no I/O.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
INT_OR_STR: Schema = {"x-kubernetes-int-or-string": True}
# Free-form JSON (a value skiff stores but does not interpret, e.g. a Helm-like
# values blob); used sparingly, only where upstream has the same escape hatch.
ANY: Schema = {"x-kubernetes-preserve-unknown-fields": True}
DATE_TIME: Schema = {"type": "string", "format": "date-time"}
QUANTITY: Schema = {"x-kubernetes-int-or-string": True, "pattern": "quantity"}


def obj(props: dict[str, Schema] | None = None, *, required: tuple[str, ...] = (),
        description: str = "") -> Schema:
    """An object with exactly these fields; anything else is an unknown field."""
    s: Schema = {"type": "object", "properties": dict(props or {})}
    if required:
        s["required"] = list(required)
    if description:
        s["description"] = description
    return s


def arr(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def map_of(values: Schema) -> Schema:
    """A string-keyed map, like map[string]string in Go."""
    return {"type": "object", "additionalProperties": values}


def enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def open_obj(props: dict[str, Schema] | None = None) -> Schema:
    """An object whose extra fields are kept (status blocks written by skiff)."""
    s = obj(props)
    s["x-kubernetes-preserve-unknown-fields"] = True
    return s


STR_MAP = map_of(STR)
STR_LIST = arr(STR)

LABEL_SELECTOR = obj({
    "matchLabels": STR_MAP,
    "matchExpressions": arr(obj({
        "key": STR,
        "operator": enum("In", "NotIn", "Exists", "DoesNotExist"),
        "values": STR_LIST,
    }, required=("key", "operator"))),
})

OWNER_REFERENCE = obj({
    "apiVersion": STR, "kind": STR, "name": STR, "uid": STR,
    "controller": BOOL, "blockOwnerDeletion": BOOL,
}, required=("apiVersion", "kind", "name", "uid"))

OBJECT_META = obj({
    "name": STR, "generateName": STR, "namespace": STR, "uid": STR,
    "resourceVersion": STR, "generation": INT, "creationTimestamp": {"type": "string", "nullable": True},
    "deletionTimestamp": STR, "deletionGracePeriodSeconds": INT,
    "labels": STR_MAP, "annotations": STR_MAP,
    "ownerReferences": arr(OWNER_REFERENCE), "finalizers": STR_LIST,
    "managedFields": arr(ANY), "selfLink": STR,
})

CONDITION = obj({
    "type": STR, "status": STR, "reason": STR, "message": STR,
    "lastTransitionTime": STR, "severity": STR, "observedGeneration": INT,
    "lastUpdateTime": STR, "lastProbeTime": {"type": "string", "nullable": True},
})

# Status is written by controllers, not users; keep it open so that a status
# shape a controller grows never breaks an older stored object.
STATUS = open_obj({"conditions": arr(CONDITION), "observedGeneration": INT})


def resource(spec: Schema | None = None, *, status: Schema | None = None,
             extra: dict[str, Schema] | None = None) -> Schema:
    """The whole object: apiVersion, kind, metadata, spec, status (+ extra top-level fields)."""
    props: dict[str, Schema] = {"apiVersion": STR, "kind": STR, "metadata": OBJECT_META}
    if spec is not None:
        props["spec"] = spec
    props["status"] = status if status is not None else STATUS
    props.update(extra or {})
    return obj(props)
