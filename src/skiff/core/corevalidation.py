"""Validation of built-in core/v1 kinds beyond their schema (Kubernetes' pkg/apis/core/validation).

Pure: (new object, old object or None) -> causes, with upstream's field paths
and messages. The registry (core/apiserver/registry.py) runs these for the
built-in kinds after the structural schema check (core/validation.py); a
rejected write changes nothing. Also the decoding rule Go applies to Secret
data before validation can run: every value is standard base64 (a 400, as
kube-apiserver's decoder answers).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

from skiff.core.bodies import shown
from skiff.core.client import Obj
from skiff.core.validation import Cause

MAX_SECRET_SIZE = 1024 * 1024   # core.MaxSecretSize; ConfigMaps share it
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_IMMUTABLE = "field is immutable when `immutable` is set"


class DecodeError(Exception):
    """A body Go could not even decode into the kind (kube-apiserver: 400 BadRequest)."""


def decode_secret_data(obj: Obj) -> None:
    """Raise DecodeError unless every Secret.data value is standard, padded base64."""
    data = obj.get("data")
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        if not isinstance(value, str):
            continue   # the schema reports the type
        try:
            # Go's StdEncoding: padded to a multiple of 4 (Python alone accepts extra '='),
            # newlines skipped.
            text = value.replace("\r", "").replace("\n", "")
            if len(text) % 4:
                raise ValueError(f"length {len(text)} is not a multiple of 4")
            base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as e:
            raise DecodeError(f'Secret in version "v1" cannot be handled as a Secret: '
                              f"data[{shown(str(key))}]: illegal base64 data: {e}") from None


def _key_causes(data: Any, path: str) -> list[Cause]:
    out: list[Cause] = []
    if not isinstance(data, dict):
        return out
    for key in data:
        key = str(key)
        if len(key) > 253 or not _CONFIG_KEY.match(key) or key in (".", ".."):
            out.append(Cause(path, "FieldValueInvalid",
                             f"{path}: Invalid value: {shown(key)}: a valid config key must consist "
                             "of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
                             "'KEY_NAME',  or 'key-name', regex used for validation is "
                             "'[-._a-zA-Z0-9]+')"))
    return out


def _size(data: Any, decode: bool) -> int:
    if not isinstance(data, dict):
        return 0
    total = 0
    for v in data.values():
        if isinstance(v, str):
            total += len(base64.b64decode(v)) if decode else len(v.encode())
    return total


def _immutable_causes(new: Obj, old: Obj | None, fields: tuple[str, ...]) -> list[Cause]:
    if old is None or old.get("immutable") is not True:
        return []
    out: list[Cause] = []
    if new.get("immutable") is not True:
        out.append(Cause("immutable", "FieldValueForbidden", f"immutable: Forbidden: {_IMMUTABLE}"))
    for f in fields:
        if (new.get(f) or {}) != (old.get(f) or {}):
            out.append(Cause(f, "FieldValueForbidden", f"{f}: Forbidden: {_IMMUTABLE}"))
    return out


def validate_secret(new: Obj, old: Obj | None) -> list[Cause]:
    """Keys, total size and immutability (stringData is already folded into data)."""
    out = _key_causes(new.get("data"), "data")
    if _size(new.get("data"), decode=True) > MAX_SECRET_SIZE:
        out.append(Cause("data", "FieldValueTooLong",
                         f"data: Too long: must have at most {MAX_SECRET_SIZE} bytes"))
    if old is not None and new.get("type") != old.get("type"):
        out.append(Cause("type", "FieldValueInvalid",
                         f"type: Invalid value: {shown(str(new.get('type')))}: field is immutable"))
    return out + _immutable_causes(new, old, ("data",))


def validate_configmap(new: Obj, old: Obj | None) -> list[Cause]:
    out = _key_causes(new.get("data"), "data") + _key_causes(new.get("binaryData"), "binaryData")
    both = set(new.get("data") or {}) & set(new.get("binaryData") or {})
    for key in sorted(both):
        out.append(Cause("data", "FieldValueInvalid",
                         f"data: Invalid value: {shown(key)}: duplicate of key present in "
                         "binaryData"))
    if _size(new.get("data"), False) + _size(new.get("binaryData"), False) > MAX_SECRET_SIZE:
        out.append(Cause("", "FieldValueTooLong",
                         f"Too long: must have at most {MAX_SECRET_SIZE} bytes"))
    return out + _immutable_causes(new, old, ("data", "binaryData"))


VALIDATORS: dict[str, Callable[[Obj, Obj | None], list[Cause]]] = {
    "Secret": validate_secret,
    "ConfigMap": validate_configmap,
}
