"""Structural validation of objects against their kind's OpenAPI v3 schema.

Pure: value + schema in, a list of Kubernetes-style causes out (field path,
reason, message), the way the API server reports a 422 Invalid. Unknown
fields are errors (fieldValidation=Strict), so a mis-indented key or a
callout number left inside YAML is caught here. Also holds the name and
label rules (DNS-1123/1035, qualified names). Used by the API registry
(core/apiserver/registry.py) and by `skiff apply`'s pre-flight check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from skiff.core.bodies import shown
from skiff.core.schema import Schema


@dataclass(frozen=True)
class Cause:
    field: str
    reason: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


_JSON_TYPE = {
    dict: "object", list: "array", str: "string", bool: "boolean",
    int: "integer", float: "number", type(None): "null",
}

_QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?\d+))?$")


def _type_name(v: Any) -> str:
    return _JSON_TYPE.get(type(v), type(v).__name__)


def _fmt(v: Any) -> str:
    if isinstance(v, str):
        return shown(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return _type_name(v)
    return str(v)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def validate(schema: Schema, value: Any, path: str = "", old: Any = None) -> list[Cause]:
    """Every way `value` breaks `schema`, as causes with field paths. With `old` (the stored
    object an update replaces), a field whose value is unchanged is not checked again, as
    Kubernetes' CRD validation ratcheting does: it was checked when it was stored, so only
    what the update changes can break the schema. Most writes are a controller's status
    update, which leaves the spec and nearly all metadata as they were."""
    out: list[Cause] = []
    if old is None:
        _check(schema, value, path, out)
    else:
        _check_changed(schema, value, old, path, out)
    return out


_ABSENT = object()


def _check_changed(s: Schema, v: Any, old: Any, path: str, out: list[Cause]) -> None:
    if type(v) is not dict or type(old) is not dict or s.get("type") != "object" \
            or s.get("x-kubernetes-int-or-string"):
        _check(s, v, path, out)
        return
    _check_properties(s, v, old, path, out)


def _check_properties(s: Schema, v: dict[Any, Any], old: dict[Any, Any] | None, path: str,
                      out: list[Cause]) -> None:
    """An object's fields against its schema; with `old`, the fields it has unchanged are
    skipped (see validate)."""
    props: dict[str, Schema] = s.get("properties", {})
    addl = s.get("additionalProperties")
    preserve = s.get("x-kubernetes-preserve-unknown-fields", False)
    for k, sub in v.items():
        was = _ABSENT if old is None else old.get(k, _ABSENT)
        if was is not _ABSENT and was == sub:
            continue
        key = str(k)
        sub_schema = props.get(key) if key in props else addl if isinstance(addl, dict) else None
        if sub_schema is not None:
            if was is _ABSENT:
                _check(sub_schema, sub, _join(path, key), out)
            else:
                _check_changed(sub_schema, sub, was, _join(path, key), out)
        elif not preserve:
            out.append(Cause(_join(path, key), "FieldValueInvalid",
                             f'unknown field "{_join(path, key)}"' + _suggest(key, props)))
    for r in s.get("required", []):
        if r not in v or v[r] is None:
            out.append(Cause(_join(path, r), "FieldValueRequired",
                             f"{_join(path, r)}: Required value"))


def _check(s: Schema, v: Any, path: str, out: list[Cause]) -> None:
    if v is None:
        if s.get("nullable") or "type" not in s:
            return
        # Kubernetes drops explicit nulls for optional fields; so do we.
        return
    if s.get("x-kubernetes-int-or-string"):
        if isinstance(v, bool) or not isinstance(v, (int, str, float)):
            out.append(Cause(path, "FieldValueTypeInvalid",
                             f"{path}: Invalid value: {_fmt(v)}: {path} in body must be of type "
                             f"integer or string: \"{_type_name(v)}\""))
        elif s.get("pattern") == "quantity" and isinstance(v, str) and not _QUANTITY.match(v):
            out.append(Cause(path, "FieldValueInvalid",
                             f"{path}: Invalid value: {_fmt(v)}: quantities must match the regular "
                             "expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"))
        return
    t = s.get("type")
    if t is None:
        return
    actual = _type_name(v)
    ok = actual == t or (t == "number" and actual == "integer")
    if not ok:
        hint = ""
        if t == "array" and actual in ("integer", "string"):
            hint = " (a YAML list must follow the key directly; is a callout number left after the colon?)"
        out.append(Cause(path, "FieldValueTypeInvalid",
                         f"{path or '<root>'}: Invalid value: {_fmt(v)}: {path or 'body'} in body must be "
                         f"of type {t}: \"{actual}\"{hint}"))
        return
    if t == "object":
        assert isinstance(v, dict)
        _check_properties(s, v, None, path, out)
    elif t == "array":
        assert isinstance(v, list)
        items = s.get("items")
        if items:
            for i, sub in enumerate(v):
                _check(items, sub, f"{path}[{i}]", out)
        keys = s.get("x-kubernetes-list-map-keys")
        if s.get("x-kubernetes-list-type") == "map" and keys:
            seen: dict[tuple[Any, ...], int] = {}
            for i, sub in enumerate(v):
                if not isinstance(sub, dict):
                    continue
                ident = tuple(sub.get(k) for k in keys)
                if ident in seen:
                    shown = ", ".join(f'"{k}":{_fmt(sub.get(k))}' for k in keys)
                    out.append(Cause(f"{path}[{i}]", "FieldValueDuplicate",
                                     f"{path}[{i}]: Duplicate value: map[{shown}] (also at "
                                     f"{path}[{seen[ident]}])"))
                else:
                    seen[ident] = i
    elif t == "string":
        enum = s.get("enum")
        if enum and v not in enum:
            allowed = ", ".join(f'"{e}"' for e in enum)
            out.append(Cause(path, "FieldValueNotSupported",
                             f"{path}: Unsupported value: {_fmt(v)}: supported values: {allowed}"))
    elif t == "integer" and isinstance(v, int):
        mn, mx = s.get("minimum"), s.get("maximum")
        if mn is not None and v < mn:
            out.append(Cause(path, "FieldValueInvalid",
                             f"{path}: Invalid value: {v}: {path} in body should be greater than or equal to {mn}"))
        if mx is not None and v > mx:
            out.append(Cause(path, "FieldValueInvalid",
                             f"{path}: Invalid value: {v}: {path} in body should be less than or equal to {mx}"))


def _suggest(key: str, props: dict[str, Schema]) -> str:
    """A 'did you mean' hint for a mistyped or mis-indented key."""
    import difflib
    close = difflib.get_close_matches(key, list(props), n=1, cutoff=0.75)
    return f' (did you mean "{close[0]}"?)' if close else ""


# --- names and labels (k8s.io/apimachinery/pkg/util/validation) -------------

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def dns1123_label(name: str) -> str | None:
    if len(name) > 63:
        return "must be no more than 63 characters"
    if not _DNS1123_LABEL.match(name):
        return ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
                "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
                "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
    return None


def dns1123_subdomain(name: str) -> str | None:
    if len(name) > 253:
        return "must be no more than 253 characters"
    if not _DNS1123_SUBDOMAIN.match(name):
        return ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                "'-' or '.', and must start and end with an alphanumeric character (e.g. "
                "'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
    return None


def dns1035_label(name: str) -> str | None:
    if len(name) > 63:
        return "must be no more than 63 characters"
    if not _DNS1035_LABEL.match(name):
        return ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
                "with an alphabetic character, and end with an alphanumeric character (e.g. "
                "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
    return None


def path_segment_name(name: str) -> str | None:
    """path.ValidatePathSegmentName: RBAC names (system:aggregate-to-admin) need only be a
    URL path segment."""
    if name in (".", ".."):
        return f"may not be '{name}'"
    for bad in ("/", "%"):
        if bad in name:
            return f"may not contain '{bad}'"
    return None


NAME_RULES = {"dns1123-label": dns1123_label, "dns1123-subdomain": dns1123_subdomain,
              "dns1035-label": dns1035_label, "path-segment": path_segment_name}


def label_causes(labels: Any, path: str) -> list[Cause]:
    out: list[Cause] = []
    if not isinstance(labels, dict):
        return out
    for k, v in labels.items():
        k = str(k)
        prefix, _, name = k.rpartition("/")
        if (prefix and dns1123_subdomain(prefix)) or len(name) > 63 or not _QUALIFIED_NAME.match(name):
            out.append(Cause(f"{path}", "FieldValueInvalid",
                             f"{path}: Invalid value: {shown(k)}: name part must consist of alphanumeric "
                             "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                             "character"))
        if isinstance(v, str) and (len(v) > 63 or not _LABEL_VALUE.match(v)):
            msgs = ["must be no more than 63 characters"] if len(v) > 63 else []
            if not _LABEL_VALUE.match(v):
                msgs.append("a valid label must be an empty string or consist of alphanumeric "
                            "characters, '-', '_' or '.', and must start and end with an "
                            "alphanumeric character")
            out.append(Cause(f"{path}", "FieldValueInvalid",
                             f"{path}: Invalid value: {shown(v)}: {'; '.join(msgs)}"))
    return out
