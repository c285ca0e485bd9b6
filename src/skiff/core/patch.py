"""Patch semantics of the API server: JSON merge patch, JSON patch, strategic merge patch, apply.

Pure functions of (live object, patch) -> new object; inputs are never mutated.
The API server's PATCH handler (core/apiserver/) picks one by Content-Type:

- application/merge-patch+json          -> merge_patch()            (RFC 7386)
- application/json-patch+json           -> json_patch()             (RFC 6902)
- application/strategic-merge-patch+json -> strategic_merge_patch()  (built-in kinds only)
- application/apply-patch+yaml          -> apply_patch()            (simplified server-side apply)

Strategic merge patch follows k8s.io/apimachinery pkg/util/strategicpatch (the
server side, MergeParallelList and IgnoreUnmatchedNulls on), which is what
`kubectl apply` (client-side) sends for built-in kinds. Where upstream reads
the patchMergeKey/patchStrategy struct tags of k8s.io/api types, skiff reads
MERGE_KEYS below: kind -> dotted path of a list -> merge key. Lists not in
the table are replaced wholesale, as upstream does for untagged lists.

Neighbours: core/kinds.py says whether a kind is built-in; the API server
turns PatchError into a 422/400 Status. Written by hand because no kept
Python library implements strategic merge patch (jsonpatch-style libraries
cover RFC 6902/7386 only, and these are small enough to keep beside it).
"""

from __future__ import annotations

import json
from typing import Any

from skiff.core.bodies import MAX_OBJECT, truncated
from skiff.core.jsoncopy import clone

__all__ = [
    "MERGE_KEYS",
    "PatchError",
    "PatchTooLarge",
    "apply_patch",
    "json_patch",
    "merge_keys_for",
    "merge_patch",
    "strategic_merge_patch",
]


class PatchError(Exception):
    """A patch that cannot be applied; the message says what and where."""


# ---------------------------------------------------------------------------
# RFC 7386 JSON merge patch


def merge_patch(target: dict[str, Any], patch: Any) -> Any:
    """Apply an RFC 7386 merge patch: maps merge, null deletes, anything else replaces."""
    return _merge_patch(clone(target), patch)


def _merge_patch(target: Any, patch: Any) -> Any:
    # `target` is already a private copy; `patch` is copied where it is kept.
    if not isinstance(patch, dict):
        return clone(patch)
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge_patch(target.get(key), value)
    return target


# ---------------------------------------------------------------------------
# RFC 6902 JSON patch


MAX_JSON_PATCH_OPERATIONS = 10000   # kube-apiserver's maxJSONPatchOperations


class PatchTooLarge(PatchError):
    """A patch whose result would be over the object size limit (checked as it applies)."""


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def json_patch(target: Any, ops: list[Any], max_size: int = MAX_OBJECT) -> Any:
    """Apply RFC 6902 operations in order; the first failing one raises PatchError.

    The result's size is kept as the operations apply (each add, copy or replace adds the
    size of its value), so a patch that would grow the object past `max_size` stops at the
    operation that crosses it: 24 `copy` operations of an object into itself double it 24
    times, and are refused at the tenth or so, not after filling memory."""
    if not isinstance(ops, list):
        raise PatchError("json patch must be a list of operations")
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise PatchTooLarge(f"The allowed maximum operations in a JSON patch is "
                         f"{MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}")
    doc = clone(target)
    size = _size(doc)
    for index, op in enumerate(ops):
        doc, grown = _apply_op(doc, op, index)
        size += grown
        if size > max_size:
            raise PatchTooLarge(f"json patch operation {index}: the patched object would be "
                                f"larger than {max_size} bytes (1.5 MiB, the object size limit)")
    return doc


def _apply_op(doc: Any, op: Any, index: int) -> tuple[Any, int]:
    """The document after one operation, and how many bytes of JSON it grew by (about)."""
    if not isinstance(op, dict):
        raise PatchError(f"json patch operation {index}: not an object")
    name = op.get("op")
    path = op.get("path")
    where = f"json patch operation {index} ({name})"
    if not isinstance(path, str):
        raise PatchError(f"{where}: missing 'path'")
    tokens = _pointer(path, where)
    if name in ("add", "replace", "test") and "value" not in op:
        raise PatchError(f"{where}: missing 'value'")
    if name == "add":
        value = op["value"]
        return _add(doc, tokens, clone(value), where, path), _size(value) + len(path)
    if name == "remove":
        doc, gone = _remove(doc, tokens, where, path)
        return doc, -_size(gone)
    if name == "replace":
        value = op["value"]
        grown = _size(value) - _size(_get(doc, tokens, where, path))
        return _replace(doc, tokens, clone(value), where, path), grown
    if name in ("move", "copy"):
        source = op.get("from")
        if not isinstance(source, str):
            raise PatchError(f"{where}: missing 'from'")
        from_tokens = _pointer(source, where)
        if name == "move":
            if tokens[: len(from_tokens)] == from_tokens and len(tokens) > len(from_tokens):
                raise PatchError(f"{where}: cannot move {source!r} into its own child {path!r}")
            doc, value = _remove(doc, from_tokens, where, source)
            return _add(doc, tokens, value, where, path), len(path) - len(source)
        original = _get(doc, from_tokens, where, source)
        grown = _size(original) + len(path)   # measured before the copy is made
        return _add(doc, tokens, clone(original), where, path), grown
    if name == "test":
        actual = _get(doc, tokens, where, path)
        if not _json_equal(actual, op["value"]):
            raise PatchError(f"{where}: test failed at path {path!r}: "
                             f"expected {truncated(repr(op['value']))}, found {truncated(repr(actual))}")
        return doc, 0
    raise PatchError(f"json patch operation {index}: unknown op {name!r}")


def _pointer(path: str, where: str) -> list[str]:
    """Split an RFC 6901 JSON pointer into unescaped tokens ("" is the whole document)."""
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"{where}: path {path!r} must start with '/'")
    # ~1 first, then ~0, so that "~01" reads as "~1" and not as "/" (RFC 6901 section 4).
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _list_index(token: str, length: int, where: str, path: str, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return length
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise PatchError(f"{where}: path {path!r}: {token!r} is not an array index")
    i = int(token)
    if i > length or (i == length and not allow_end):
        raise PatchError(f"{where}: path {path!r}: index {i} out of range (length {length})")
    return i


def _get(doc: Any, tokens: list[str], where: str, path: str) -> Any:
    cur = doc
    for token in tokens:
        if isinstance(cur, dict):
            if token not in cur:
                raise PatchError(f"{where}: path {path!r} not found")
            cur = cur[token]
        elif isinstance(cur, list):
            cur = cur[_list_index(token, len(cur), where, path, allow_end=False)]
        else:
            raise PatchError(f"{where}: path {path!r} not found")
    return cur


def _add(doc: Any, tokens: list[str], value: Any, where: str, path: str) -> Any:
    if not tokens:
        return value
    parent = _get(doc, tokens[:-1], where, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(last, len(parent), where, path, allow_end=True), value)
    else:
        raise PatchError(f"{where}: path {path!r}: parent is not an object or array")
    return doc


def _replace(doc: Any, tokens: list[str], value: Any, where: str, path: str) -> Any:
    if not tokens:
        return value
    parent = _get(doc, tokens[:-1], where, path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        parent[last] = value
    elif isinstance(parent, list):
        parent[_list_index(last, len(parent), where, path, allow_end=False)] = value
    else:
        raise PatchError(f"{where}: path {path!r} not found")
    return doc


def _remove(doc: Any, tokens: list[str], where: str, path: str) -> tuple[Any, Any]:
    if not tokens:
        raise PatchError(f"{where}: cannot remove the whole document")
    parent = _get(doc, tokens[:-1], where, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"{where}: path {path!r} not found")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_list_index(last, len(parent), where, path, allow_end=False))
    raise PatchError(f"{where}: path {path!r} not found")


def _json_equal(a: Any, b: Any) -> bool:
    # Python says True == 1; JSON does not.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b  # 1 and 1.0 are the same JSON number
    return type(a) is type(b) and a == b


# ---------------------------------------------------------------------------
# Strategic merge patch: the merge-key table

# Lists inside a PodSpec (k8s.io/api core/v1 types.go patchMergeKey tags).
# "" as a merge key: a list of scalars merged as a set (patchStrategy merge, no key).
_CONTAINER_LISTS = {
    "env": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
}
_POD_SPEC_LISTS = {
    "volumes": "name",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "schedulingGates": "name",
    # tolerations, readinessGates, ...: untagged, replaced.
}
_OBJECT_META_LISTS = {"finalizers": "", "ownerReferences": "uid"}


def _under(prefix: str, table: dict[str, str]) -> dict[str, str]:
    return {f"{prefix}.{path}": key for path, key in table.items()}


def _pod_spec(prefix: str) -> dict[str, str]:
    out = _under(prefix, _POD_SPEC_LISTS)
    for containers in ("containers", "initContainers", "ephemeralContainers"):
        out[f"{prefix}.{containers}"] = "name"
        out.update(_under(f"{prefix}.{containers}", _CONTAINER_LISTS))
    return out


_META = _under("metadata", _OBJECT_META_LISTS)
_CONDITIONS = {"status.conditions": "type"}

MERGE_KEYS: dict[str, dict[str, str]] = {
    "Pod": {**_META, **_pod_spec("spec"), **_CONDITIONS,
            "status.podIPs": "ip", "status.hostIPs": "ip"},
    "Deployment": {**_META, **_under("spec.template.metadata", _OBJECT_META_LISTS),
                   **_pod_spec("spec.template.spec"), **_CONDITIONS},
    "Service": {**_META, "spec.ports": "port", **_CONDITIONS},
    "ConfigMap": dict(_META),
    "Secret": dict(_META),
    "Namespace": {**_META, **_CONDITIONS},
    "ServiceAccount": {**_META, "secrets": "name"},
    "NetworkPolicy": dict(_META),
    "Event": dict(_META),
}
"""kind -> dotted path of a list field (list indices left out) -> merge key."""


def merge_keys_for(kind: str) -> dict[str, str]:
    """The list merge keys of a kind; an unknown kind gets only the ObjectMeta ones."""
    return MERGE_KEYS.get(kind, _META)


# ---------------------------------------------------------------------------
# Strategic merge patch: the algorithm

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ORDER = "$setElementOrder/"
_DELETE_FROM = "$deleteFromPrimitiveList/"


def strategic_merge_patch(target: dict[str, Any], patch: dict[str, Any], kind: str) -> dict[str, Any]:
    """Apply a Kubernetes strategic merge patch to `target` (an object of `kind`).

    Maps merge and null deletes a key; lists listed in MERGE_KEYS merge item by
    item on their merge key (scalar lists as sets), other lists are replaced.
    Directives: `$patch: replace|delete|merge` in maps and in list items,
    `$retainKeys`, `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>`.
    New items go where upstream puts them: without `$setElementOrder`, items
    named by the patch come first (in patch order), then the rest of the live list.
    """
    if not isinstance(target, dict) or not isinstance(patch, dict):
        raise PatchError("strategic merge patch: object and patch must both be JSON objects")
    return _merge_map(clone(target), clone(patch), "", merge_keys_for(kind))


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _merge_map(original: dict[str, Any], patch: dict[str, Any], path: str,
               keys: dict[str, str]) -> dict[str, Any]:
    """Merge `patch` into `original`; both are private copies and may be changed."""
    where = path or "<root>"
    if _DIRECTIVE in patch:
        directive = patch.pop(_DIRECTIVE)
        if directive == "delete":
            return {}
        if directive == "replace":
            # The patch is the new value; clean any directives nested inside it.
            return _merge_map({}, patch, path, keys)
        if directive != "merge":  # "merge" on a map is what happens anyway
            raise PatchError(f"{where}: unknown $patch directive {directive!r}")

    if _RETAIN_KEYS in patch:
        _retain_keys(original, patch, where)

    for order_key in [k for k in patch if k.startswith(_SET_ORDER)]:
        _merge_with_order(original, patch, order_key, path, keys)

    deletions = [k for k in patch if k.startswith(_DELETE_FROM)]
    for key, value in patch.items():
        if key in deletions:
            continue
        if key.startswith("$"):
            raise PatchError(f"{where}: unknown strategic merge patch directive {key!r}")
        if value is None:
            original.pop(key, None)
            continue
        sub = _child(path, key)
        current = original.get(key)
        if isinstance(value, dict):
            # A map not in the live object (or of another type) merges into
            # an empty one, which drops nulls and directives nested in it.
            original[key] = _merge_map(current if isinstance(current, dict) else {}, value, sub,
                                       keys)
        elif isinstance(value, list) and sub in keys:
            original[key] = _merge_list(current if isinstance(current, list) else [], value, sub,
                                        keys)
        else:
            original[key] = value

    # Deletions from scalar lists run after the additions, as upstream where the
    # parallel list is merged after $setElementOrder has placed the new items.
    for key in deletions:
        name = key[len(_DELETE_FROM):]
        doomed = patch[key]
        if not name or not isinstance(doomed, list):
            raise PatchError(f"{where}: {key} must name a list and hold a list of values")
        current = original.get(name)
        if isinstance(current, list):
            original[name] = [v for v in current if v not in doomed]
    return original


def _retain_keys(original: dict[str, Any], patch: dict[str, Any], where: str) -> None:
    """`$retainKeys`: drop every live key not named; every key the patch sets must be named."""
    retain = patch.pop(_RETAIN_KEYS)
    if not isinstance(retain, list) or not all(isinstance(k, str) for k in retain):
        raise PatchError(f"{where}: $retainKeys must be a list of field names")
    for key, value in patch.items():
        if value is None or key.startswith((_SET_ORDER, _DELETE_FROM)):
            continue
        if key not in retain:
            raise PatchError(f"{where}: field {key!r} is set by the patch but missing from "
                             f"$retainKeys {retain}")
    for key in list(original):
        if key not in retain:
            del original[key]


def _merge_with_order(original: dict[str, Any], patch: dict[str, Any], order_key: str,
                      path: str, keys: dict[str, str]) -> None:
    """`$setElementOrder/<list>`: merge the list (if patched) and then order it as told."""
    order = patch.pop(order_key)
    name = order_key[len(_SET_ORDER):]
    sub = _child(path, name)
    if not name or not isinstance(order, list):
        raise PatchError(f"{path or '<root>'}: {order_key} must name a list and hold a list")
    if sub not in keys:
        # Not a merging list: the list itself (if patched) replaces, order is moot.
        return
    merge_key = keys[sub]
    live = original.get(name)
    live_list = live if isinstance(live, list) else []
    if name in patch:
        patched = patch.pop(name)
        if patched is None:
            original.pop(name, None)
            return
        if not isinstance(patched, list):
            raise PatchError(f"{sub}: expected a list next to {order_key}")
        merged = _merge_list(list(live_list), patched, sub, keys)
    elif isinstance(live, list):
        merged = live
    else:
        return
    if merge_key and not _all_maps(merged + order):
        merge_key = ""  # scalars after all: order by value
    in_order, server_only = _partition(merged, order, merge_key, sub)
    original[name] = _normalize_order(in_order, server_only, order, live_list, merge_key, sub)


def _all_maps(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) for i in items)


def _merge_list(original: list[Any], patch: list[Any], path: str,
                keys: dict[str, str]) -> list[Any]:
    """Merge a patch list into a live list that has a merge key (or is a set of scalars)."""
    if not original and not patch:
        return []
    merge_key = keys[path]
    first = (original + patch)[0]
    if not isinstance(first, dict):
        # A set of scalars (e.g. finalizers): union, keeping first occurrences.
        merged: list[Any] = []
        for v in original + patch:
            if v not in merged:
                merged.append(v)
        in_patch, server_only = _partition(merged, patch, "", path)
        return _normalize_order(in_patch, server_only, patch, original, "", path)
    if not merge_key:
        raise PatchError(f"{path}: cannot merge a list of objects without a merge key")

    plain: list[dict[str, Any]] = []
    replace = False
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"{path}: list items must all be objects")
        directive = item.get(_DIRECTIVE)
        if directive is None:
            plain.append(item)
        elif directive == "delete":
            if merge_key not in item:
                raise PatchError(f"{path}: $patch: delete item {item} lacks merge key {merge_key!r}")
            original = [o for o in original
                        if not (isinstance(o, dict) and o.get(merge_key) == item[merge_key])]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchError(f"{path}: merging lists cannot yet be specified in the patch")
        else:
            raise PatchError(f"{path}: unknown $patch directive {directive!r}")
    if replace:
        # `{"$patch": "replace"}` as a list item: the other items are the whole list.
        return [_merge_map({}, item, path, keys) for item in plain]

    merged = list(original)
    for item in plain:
        if merge_key not in item:
            raise PatchError(f"{path}: item {item} does not contain declared merge key {merge_key!r}")
        at = _find(merged, merge_key, item[merge_key])
        if at is None:
            merged.append(_merge_map({}, item, path, keys))
        else:
            merged[at] = _merge_map(merged[at], item, path, keys)
    in_patch, server_only = _partition(merged, plain, merge_key, path)
    return _normalize_order(in_patch, server_only, list(plain), original, merge_key, path)


def _find(items: list[Any], merge_key: str, value: Any) -> int | None:
    for i, item in enumerate(items):
        if isinstance(item, dict) and merge_key in item and item[merge_key] == value:
            return i
    return None


def _identity(item: Any, merge_key: str, path: str) -> Any:
    if not merge_key:
        return item
    if not isinstance(item, dict) or merge_key not in item:
        raise PatchError(f"{path}: item {item} does not contain declared merge key {merge_key!r}")
    return item[merge_key]


def _index_of(items: list[Any], item: Any, merge_key: str, path: str) -> int:
    wanted = _identity(item, merge_key, path)
    for i, other in enumerate(items):
        if isinstance(other, dict) and other.get(_DIRECTIVE) == "delete":
            continue
        if _identity(other, merge_key, path) == wanted:
            return i
    return -1


def _partition(items: list[Any], by: list[Any], merge_key: str,
               path: str) -> tuple[list[Any], list[Any]]:
    """Split items into those named in `by` and the rest (server-only), keeping order."""
    named: list[Any] = []
    rest: list[Any] = []
    for item in items:
        (named if _index_of(by, item, merge_key, path) >= 0 else rest).append(item)
    return named, rest


def _normalize_order(patch_items: list[Any], server_only: list[Any], patch_order: list[Any],
                     server_order: list[Any], merge_key: str, path: str) -> list[Any]:
    """Upstream normalizeElementOrder: sort each part by its own order, then interleave.

    Patch items follow the patch (or $setElementOrder) order, server-only items
    the live order; the two are merged so that a server-only item goes before
    a patch item only when both are in the live list and it came first there.
    """
    patch_items = sorted(patch_items, key=lambda i: _index_of(patch_order, i, merge_key, path))
    server_only = sorted(server_only, key=lambda i: _index_of(server_order, i, merge_key, path))
    out: list[Any] = []
    left, right = 0, 0
    while left < len(server_only) or right < len(patch_items):
        if left >= len(server_only):
            out.append(patch_items[right])
            right += 1
        elif right >= len(patch_items):
            out.append(server_only[left])
            left += 1
        else:
            li = _index_of(server_order, server_only[left], merge_key, path)
            ri = _index_of(server_order, patch_items[right], merge_key, path)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(server_only[left])
                left += 1
            else:
                out.append(patch_items[right])
                right += 1
    return out


# ---------------------------------------------------------------------------
# Server-side apply (simplified)

SERVER_OWNED_METADATA = ("uid", "resourceVersion", "creationTimestamp", "generation",
                         "deletionTimestamp", "deletionGracePeriodSeconds")


def apply_patch(live: dict[str, Any] | None, applied: dict[str, Any], kind: str,
                builtin: bool) -> dict[str, Any]:
    """A simplified server-side apply (`application/apply-patch+yaml`).

    With no live object the applied configuration is the new object. Otherwise
    the applied configuration is merged into the live object: strategic merge
    (lists by merge key) for built-in kinds, JSON merge patch for the others.

    Simplified against upstream: there is no managedFields ownership tracking,
    so there are no conflicts (force is moot) and a field left out of a later
    apply is kept, not removed. Nulls in the applied configuration are dropped
    rather than deleting anything. The metadata the server owns (uid,
    resourceVersion, creationTimestamp, generation, deletion fields) always
    comes from the live object; a resourceVersion precondition in the applied
    configuration is the caller's to check before calling, and so is resetting
    status for kinds with a status subresource.
    """
    if not isinstance(applied, dict):
        raise PatchError("apply: the applied configuration must be a JSON object")
    config: dict[str, Any] = _drop_nulls(applied)
    if live is None:
        return config
    merged: dict[str, Any] = (strategic_merge_patch(live, config, kind) if builtin
                              else merge_patch(live, config))
    live_meta = live.get("metadata") or {}
    meta = merged.setdefault("metadata", {})
    for field in SERVER_OWNED_METADATA:
        if field in live_meta:
            meta[field] = clone(live_meta[field])
        else:
            meta.pop(field, None)
    return merged


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value
