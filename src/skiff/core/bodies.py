"""Request bodies as kube-apiserver bounds them: size, nesting, node count, numbers JSON allows.

Pure: bytes or a decoded value in, a value or a BodyError out. The API server
(core/apiserver/server.py, registry.py) decodes every JSON and YAML body
through here, so no body can make the server recurse past its stack, expand
an alias bomb, or store a number (NaN, Infinity) that would make every later
GET and LIST of its kind invalid JSON. The limits:

- a request body at most 3 MiB (kube-apiserver's MaxRequestBodyBytes) -> 413;
- a stored object at most 1.5 MiB (etcd's default request limit; the store
  enforces it, core/store/sqlite.py) -> 413;
- nesting at most MAX_DEPTH levels, at most MAX_NODES values after YAML aliases
  are expanded -> 400. Kubernetes allows deeper JSON (10,000 levels); skiff's
  validation and defaulting walk objects recursively in Python, so it refuses
  earlier, far beyond anything a real manifest nests (about 20 levels).
"""

from __future__ import annotations

import json
import math
from typing import Any

import yaml

MAX_BODY = 3 * 1024 * 1024          # kube-apiserver's request size limit
MAX_OBJECT = 3 * 512 * 1024         # etcd's default --max-request-bytes (1.5 MiB)
MAX_DEPTH = 100
MAX_NODES = 1_000_000
SHOWN = 256                          # characters of a value an error message echoes

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class BodyError(Exception):
    """A body refused before anything is done with it: code 400 or 413 and the message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def too_large(size: int, limit: int, what: str) -> BodyError:
    return BodyError(413, f"{what} is too large: {size} bytes; the limit is {limit} bytes "
                          f"({limit / 1048576:g} MiB)")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def decode_json(raw: bytes) -> Any:
    """The body as JSON: at most MAX_BODY bytes, no NaN/Infinity, at most MAX_DEPTH deep."""
    if len(raw) > MAX_BODY:
        raise too_large(len(raw), MAX_BODY, "the request body")
    if not raw:
        return {}
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        # json's C decoder checks the interpreter's recursion limit at each level: deep input
        # ends here, with no stack overflow.
        raise BodyError(400, f"the body of the request is nested too deeply: the limit is "
                             f"{MAX_DEPTH} levels") from None
    except ValueError as e:
        raise BodyError(400, f"the body of the request is not valid JSON: {e}") from None
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH:   # cannot be too deep otherwise
        check_value(value)
    return value


def decode_yaml(raw: bytes) -> Any:
    """The body as YAML (apply patches, application/yaml): the JSON limits, plus a bound on the
    values after aliases are expanded (an alias bomb is a few hundred bytes)."""
    if len(raw) > MAX_BODY:
        raise too_large(len(raw), MAX_BODY, "the request body")
    try:
        value = yaml.load(raw, Loader=_YAML_LOADER)
    except RecursionError:
        raise BodyError(400, f"the body of the request is nested too deeply: the limit is "
                             f"{MAX_DEPTH} levels") from None
    except yaml.YAMLError as e:
        if "maximum nesting depth" in str(e):   # libyaml's own limit (PyYAML >= 6.0.4)
            raise BodyError(400, f"the body of the request is nested too deeply: the limit is "
                                 f"{MAX_DEPTH} levels") from None
        raise BodyError(400, f"error decoding YAML: {e}") from None
    check_value(value)
    return value


def check_value(value: Any) -> None:
    """Refuse a decoded value nested deeper than MAX_DEPTH, with more than MAX_NODES values
    (aliases counted each time they are used) or holding a non-finite number. Iterative: the
    check itself cannot recurse too deeply."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    nodes = 0
    while stack:
        v, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise BodyError(400, f"the body of the request has too many values: the limit is "
                                 f"{MAX_NODES} (after YAML aliases are expanded)")
        if isinstance(v, dict):
            children: Any = v.values()
        elif isinstance(v, list):
            children = v
        else:
            if isinstance(v, float) and not math.isfinite(v):
                raise BodyError(400, f"the body of the request is not valid JSON: {v} is not a "
                                     "valid JSON number")
            continue
        if depth >= MAX_DEPTH and children:
            raise BodyError(400, f"the body of the request is nested too deeply: the limit is "
                                 f"{MAX_DEPTH} levels")
        stack.extend((c, depth + 1) for c in children)


def truncated(text: str) -> str:
    """`text` cut to SHOWN characters, saying how long it was."""
    return text if len(text) <= SHOWN else f"{text[:SHOWN]}...(truncated, {len(text)} characters)"


def shown(value: Any) -> str:
    """A value as an error message echoes it: strings quoted, at most SHOWN characters (an
    error about a 1 MB label value must not be a 2 MB response)."""
    if isinstance(value, str):
        return f'"{truncated(value)}"'
    return truncated(str(value))
