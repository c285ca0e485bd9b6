"""The API registry: Kubernetes REST semantics over the store.

One place decides what create, update, patch, delete, get, list and watch
mean for every kind (kube-apiserver's generic registry + strategies): strict
schema validation, name rules, admission hooks, uid/creationTimestamp/
generation, optimistic concurrency, the status subresource, finalizers and
graceful deletion (pods, namespaces). The HTTP handlers (server.py) and the
in-process client (LocalClient, below) both call it, so kubectl and the
reconcilers see identical behaviour. Raises client.ApiError with Kubernetes
Status reasons; a rejected request never touches the store.
"""

from __future__ import annotations

import base64
import builtins
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from skiff.core import bodies, notimplemented, selectors
from skiff.core.admission import Admission
from skiff.core.apiserver.strategy import Strategies
from skiff.core.client import ApiError, Obj, Ref, WatchEvent
from skiff.core.clock import rfc3339, utcnow
from skiff.core.clusterip import DEFAULT_SERVICE_CIDR
from skiff.core.jsoncopy import clone
from skiff.core.kinds import Kind, Kinds
from skiff.core.patch import (
    PatchError,
    PatchTooLarge,
    apply_patch,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from skiff.core.store import (
    AlreadyExists,
    Conflict,
    NotFound,
    Store,
    TooLarge,
    TooOld,
    Watch,
    key_for,
    prefix_for,
)
from skiff.core.validation import NAME_RULES, Cause, label_causes, validate

_SERVER_META = ("uid", "creationTimestamp", "generation", "resourceVersion", "deletionTimestamp",
                "deletionGracePeriodSeconds", "selfLink")

Clock = Callable[[], datetime]
T = TypeVar("T")


def not_found(k: Kind, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{k.resource} "{name}" not found',
                    {"name": name, "group": k.group, "kind": k.plural})


def invalid(k: Kind, name: str, causes: list[Cause]) -> ApiError:
    label = f"{k.kind}.{k.group}" if k.group else k.kind
    msgs = [c.message if c.message.startswith(c.field) or not c.field else f"{c.field}: {c.message}"
            for c in causes]
    body = msgs[0] if len(msgs) == 1 else "[" + ", ".join(msgs) + "]"
    return ApiError(422, "Invalid", f'{label} "{name}" is invalid: {body}',
                    {"name": name, "group": k.group, "kind": k.kind,
                     "causes": [c.as_dict() for c in causes]})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _spec_part(obj: Obj) -> Obj:
    """Everything that counts for metadata.generation: all but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Registry:
    def __init__(self, store: Store, kinds: Kinds, admission: Admission | None = None,
                 clock: Clock = utcnow, service_cidr: str = DEFAULT_SERVICE_CIDR) -> None:
        self.store = store
        self.kinds = kinds
        self.admission = admission or Admission()
        self.clock = clock
        self.strategies = Strategies(store, service_cidr)

    # --- helpers ------------------------------------------------------------
    def kind_for(self, ref: Ref) -> Kind:
        k = self.kinds.for_api_version(ref.api_version, ref.kind)
        if k is None:
            raise ApiError(404, "NotFound", f'the server could not find the requested resource '
                                            f'({ref.kind} in {ref.api_version})')
        return k

    def _key(self, k: Kind, namespace: str, name: str) -> str:
        return key_for(k.group, k.plural, namespace if k.namespaced else "", name)

    def _out(self, k: Kind, obj: Obj, version: str = "") -> Obj:
        obj["apiVersion"] = f"{k.group}/{version or k.version}" if k.group else (version or k.version)
        obj["kind"] = k.kind
        return obj

    def _stored(self, k: Kind, obj: Obj) -> Obj:
        """The form every write stores: apiVersion (the storage version) and kind first, so that
        a watch can tell from the first bytes of the text that it is what `get` would serve."""
        rest = {f: v for f, v in obj.items() if f not in ("apiVersion", "kind")}
        return {"apiVersion": f"{k.group}/{k.version}" if k.group else k.version, "kind": k.kind, **rest}

    def _check_namespace(self, k: Kind, namespace: str, creating: bool) -> None:
        if not k.namespaced:
            return
        if not namespace:
            raise bad_request("the namespace of the object must be set")
        if not creating:
            return
        ns = self.store.get(key_for("", "namespaces", "", namespace))
        if ns is None:
            raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                           {"name": namespace, "kind": "namespaces"})
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(403, "Forbidden",
                           f"unable to create new content in namespace {namespace} because it is "
                           "being terminated")

    def _validate(self, k: Kind, obj: Obj, old: Obj | None) -> None:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name", ""))
        causes = validate(k.schema, obj, old=old)
        if not causes:
            rule = NAME_RULES.get(k.name_rule, NAME_RULES["dns1123-subdomain"])
            problem = rule(name) if name else "name or generateName is required"
            if problem:
                causes.append(Cause("metadata.name", "FieldValueInvalid" if name else "FieldValueRequired",
                                    f'metadata.name: Invalid value: "{name}": {problem}' if name
                                    else f"metadata.name: Required value: {problem}"))
            causes += label_causes(meta.get("labels"), "metadata.labels")
            causes += self.strategies.for_kind(k).validate(obj, old)
            causes += self.admission.run(k.group, k.kind, obj, old)
        if causes:
            raise invalid(k, name, causes)

    # --- reads --------------------------------------------------------------
    def get(self, k: Kind, namespace: str, name: str, version: str = "") -> Obj:
        obj = self.store.get(self._key(k, namespace, name))
        if obj is None:
            raise not_found(k, name)
        return self._out(k, obj, version)

    def list(self, k: Kind, namespace: str = "", label_selector: str = "", field_selector: str = "",
             limit: int = 0, continue_token: str = "", version: str = "") -> tuple[list[Obj], int, str]:
        match = self._matcher(label_selector, field_selector)
        prefix = prefix_for(k.group, k.plural, namespace if k.namespaced else "")
        rv = self.store.rv
        start = ""
        if continue_token:
            try:
                start = str(json.loads(base64.b64decode(continue_token))["start"])
            except (ValueError, KeyError, TypeError) as e:
                raise bad_request(f"continue key is not valid: {e}") from None
        out: list[Obj] = []
        next_token = ""
        last_key = ""
        for key, o in self.store.iter(prefix, start):
            if not match(o):
                continue
            if limit and len(out) >= limit:
                next_token = base64.b64encode(json.dumps({"rv": rv, "start": last_key}).encode()).decode()
                break
            out.append(self._out(k, o, version))
            last_key = key
        return out, rv, next_token

    def _matcher(self, label_selector: str, field_selector: str) -> Callable[[Obj], bool]:
        return self._selector(label_selector, field_selector) or (lambda _o: True)

    def _selector(self, label_selector: str, field_selector: str) -> Callable[[Obj], bool] | None:
        """The match function of the selectors, or None when there are none (everything matches)."""
        try:
            ls = selectors.parse_label_selector(label_selector) if label_selector else None
            fs = selectors.parse_field_selector(field_selector) if field_selector else None
        except selectors.SelectorError as e:
            raise bad_request(str(e)) from None
        if ls is None and fs is None:
            return None

        def match(o: Obj) -> bool:
            if ls is not None and not ls.matches(o["metadata"].get("labels") or {}):
                return False
            return fs is None or fs.matches(o)
        return match

    async def watch(self, k: Kind, namespace: str = "", resource_version: str = "",
                    label_selector: str = "", field_selector: str = "",
                    version: str = "", shared: bool = False) -> AsyncIterator[WatchEvent]:
        """Watch events; without a resourceVersion (or "0") the current objects come first as ADDED.
        Each event's object is the watcher's own copy (in-process consumers may mutate it), or,
        with `shared`, for consumers that only read it (the controllers' watches, which map an
        object to keys), one object decoded once for all of them: a pod's write wakes a dozen."""
        match = self._matcher(label_selector, field_selector)
        w, initial = self._open_watch(k, namespace, resource_version)
        return _Stream(self._watch_events(k, w, initial, match, version, shared and not version), w)

    async def watch_json(self, k: Kind, namespace: str = "", resource_version: str = "",
                         label_selector: str = "", field_selector: str = "",
                         version: str = "") -> AsyncIterator[tuple[str, str]]:
        """The same events as `watch`, for a consumer that only serialises them (the HTTP watch):
        (type, the object's JSON text as `watch` would give it). Text that every write stores
        (see _stored) is passed on as it is, one encoding shared by every watcher; an object is
        decoded only to match selectors, or to restamp text of another version or older form."""
        match = self._selector(label_selector, field_selector)
        w, initial = self._open_watch(k, namespace, resource_version)
        return _Stream(self._watch_texts(k, w, initial, match, version), w)

    def _open_watch(self, k: Kind, namespace: str, resource_version: str) -> tuple[Watch, builtins.list[str]]:
        prefix = prefix_for(k.group, k.plural, namespace if k.namespaced else "")
        initial: builtins.list[str] = []
        try:
            since = int(resource_version) if resource_version not in ("", "0") else 0
        except ValueError:
            raise bad_request(f'invalid resource version "{resource_version}"') from None
        if not since:
            initial, since = self.store.texts(prefix)   # JSON text: a fifth the size of dicts
        try:
            w = self.store.watch(prefix, since)
        except TooOld as e:
            raise ApiError(410, "Expired", str(e)) from None
        initial.reverse()   # popped from the end as sent, so a long watch does not pin the first list
        return w, initial

    async def _watch_events(self, k: Kind, w: Watch, initial: builtins.list[str], match: Callable[[Obj], bool],
                            version: str, shared: bool = False) -> AsyncGenerator[WatchEvent, None]:
        # No local keeps an object while the watch waits for the next event: a long watch would
        # pin it, and with it the allocator's arenas it was decoded into (on a CRD list, MiBs).
        try:
            while initial:
                o = json.loads(initial.pop())
                if match(o):
                    yield WatchEvent("ADDED", self._out(k, o, version))
                del o
            async for ev in w:
                # a private copy per watcher, as consumers may mutate it, unless they only read
                # (stored text is in the storage version: _out changes nothing in a shared one)
                obj = ev.shared() if shared else ev.decode()
                if match(obj):
                    yield WatchEvent(ev.type, self._out(k, obj, version))
                del obj
        finally:
            w.close()

    async def _watch_texts(self, k: Kind, w: Watch, initial: builtins.list[str],
                           match: Callable[[Obj], bool] | None, version: str) -> AsyncGenerator[tuple[str, str], None]:
        served = self._out(k, {}, version)
        head = ('{"apiVersion":' + json.dumps(served["apiVersion"]) + ',"kind":'
                + json.dumps(served["kind"]) + ",")

        def served_text(text: str) -> str | None:
            as_stored = text.startswith(head)
            if match is None and as_stored:
                return text
            o: Obj = json.loads(text)
            if match is not None and not match(o):
                return None
            if as_stored:
                return text
            return json.dumps(self._out(k, o, version), separators=(",", ":"))

        try:
            while initial:
                t = served_text(initial.pop())
                if t is not None:
                    yield "ADDED", t
            async for ev in w:
                t = served_text(ev.text)
                if t is not None:
                    yield ev.type, t
        finally:
            w.close()

    # --- writes -------------------------------------------------------------
    def create(self, k: Kind, namespace: str, body: Any, dry_run: bool = False,
               status: Obj | None = None) -> Obj:
        """`status`: for objects skiff creates born with their status (its own CRDs at start-up),
        one write where a create and then a status update would be two."""
        if not isinstance(body, dict):
            raise bad_request(f"the body of the request must be a JSON object, not {type(body).__name__}")
        obj = clone(body)
        self._check_envelope(k, obj)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise invalid(k, "", [Cause("metadata", "FieldValueTypeInvalid",
                                        "metadata: Invalid value: must be of type object")])
        if k.namespaced:
            body_ns = meta.get("namespace") or namespace
            if namespace and body_ns != namespace:
                raise bad_request("the namespace of the provided object does not match the namespace "
                                  "sent on the request")
            meta["namespace"] = body_ns
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = str(meta["generateName"]) + uuid.uuid4().hex[:5]
        for f in _SERVER_META:
            meta.pop(f, None)
        if k.status_subresource and k.kind not in ("Namespace",):
            obj.pop("status", None)
        if status is not None:
            obj["status"] = clone(status)
        elif k.not_implemented and k.status_subresource:
            obj["status"] = {"conditions": [notimplemented.condition(k, rfc3339(self.clock()))]}
        # The uid first, as kube-apiserver fills it in before the strategy runs: a Job's
        # generated selector (core/workloadadmission.py) is made of it.
        meta["uid"] = str(uuid.uuid4())
        self.strategies.for_kind(k).prepare_for_create(obj)
        self._validate(k, obj, None)
        self._check_namespace(k, meta.get("namespace", ""), creating=True)
        meta["creationTimestamp"] = rfc3339(self.clock())
        meta["generation"] = 1
        self._out(k, obj)
        if dry_run:
            meta["resourceVersion"] = str(self.store.rv)
            return self._out(k, obj)
        try:
            stored = self.store.create(self._key(k, meta.get("namespace", ""), meta["name"]),
                                       self._stored(k, obj))
        except AlreadyExists:
            raise ApiError(409, "AlreadyExists", f'{k.resource} "{meta["name"]}" already exists',
                           {"name": meta["name"], "group": k.group, "kind": k.plural}) from None
        except TooLarge as e:
            raise too_large(k, meta["name"], e) from None
        return self._out(k, stored)

    def _check_envelope(self, k: Kind, obj: Obj) -> None:
        av, kind = obj.get("apiVersion"), obj.get("kind")
        if kind and kind != k.kind:
            raise bad_request(f"the kind of the provided object ({kind}) does not match the resource "
                              f"({k.kind})")
        if av and av not in k.group_versions():
            raise bad_request(f'the API version in the data ({av}) does not match the expected API '
                              f'version ({k.api_version})')

    def update(self, k: Kind, namespace: str, name: str, body: Any, subresource: str = "",
               dry_run: bool = False) -> Obj:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        key = self._key(k, namespace, name)
        old = self.store.get(key)
        if old is None:
            raise not_found(k, name)
        obj = clone(body)
        self._check_envelope(k, obj)
        meta = obj.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise bad_request(f'the name of the object ({meta.get("name")}) does not match the name on '
                              f'the URL ({name})')
        want_rv = meta.get("resourceVersion")
        if want_rv and str(want_rv) != old["metadata"]["resourceVersion"]:
            raise self._conflict(k, name)
        new = self._merge_update(k, old, obj, subresource)
        return self._commit_update(k, key, old, new, dry_run)

    def _conflict(self, k: Kind, name: str) -> ApiError:
        return ApiError(409, "Conflict",
                        f'Operation cannot be fulfilled on {k.resource} "{name}": the object has been '
                        "modified; please apply your changes to the latest version and try again",
                        {"name": name, "group": k.group, "kind": k.plural})

    def _merge_update(self, k: Kind, old: Obj, obj: Obj, subresource: str) -> Obj:
        """The object to store: server-owned metadata kept; status or the rest kept by subresource."""
        meta = obj["metadata"]
        for f in ("uid", "creationTimestamp", "generation", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "namespace"):
            if f in old["metadata"]:
                meta[f] = old["metadata"][f]
            else:
                meta.pop(f, None)
        meta["name"] = old["metadata"]["name"]
        if subresource == "status":
            new = clone(old)
            if "status" in obj:
                new["status"] = obj["status"]
            return new
        if k.status_subresource and "status" in old:
            obj["status"] = old["status"]
        elif k.status_subresource:
            obj.pop("status", None)
        return obj

    def _commit_update(self, k: Kind, key: str, old: Obj, new: Obj, dry_run: bool) -> Obj:
        self.strategies.for_kind(k).prepare_for_update(new, old)
        self._validate(k, new, old)   # runs the admission defaulters too
        # After defaulting, as kube-apiserver: a re-apply that defaulting makes equal is no change.
        if _spec_part(new) != _spec_part(old):
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if dry_run:
            return self._out(k, new)
        old_rv = int(old["metadata"]["resourceVersion"])
        new["metadata"].pop("resourceVersion", None)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers") \
                and not self.strategies.for_kind(k).held(new):
            try:
                return self._out(k, self.store.delete(key, old_rv))
            except Conflict:
                raise self._conflict(k, new["metadata"]["name"]) from None
        # Skip a no-op write: no new resourceVersion, no watch event (as upstream). apiVersion and
        # kind do not count: every write stores the storage version (see _stored).
        cmp_old = {**old, "apiVersion": None, "kind": None,
                   "metadata": {**old["metadata"], "resourceVersion": None}}
        cmp_new = {**new, "apiVersion": None, "kind": None,
                   "metadata": {**new["metadata"], "resourceVersion": None}}
        if cmp_old == cmp_new:
            return self._out(k, old)
        try:
            return self._out(k, self.store.update(key, self._stored(k, new), old_rv))
        except Conflict:
            raise self._conflict(k, new["metadata"]["name"]) from None
        except NotFound:
            raise not_found(k, new["metadata"]["name"]) from None
        except TooLarge as e:
            raise too_large(k, new["metadata"]["name"], e) from None

    def patch(self, k: Kind, namespace: str, name: str, patch_type: str, body: Any,
              subresource: str = "", dry_run: bool = False) -> Obj:
        key = self._key(k, namespace, name)
        for _attempt in range(5):
            old = self.store.get(key)
            if old is None:
                if patch_type == "apply":
                    if not isinstance(body, dict):
                        raise bad_request("apply patch must be an object")
                    return self.create(k, namespace, body, dry_run)
                raise not_found(k, name)
            old = self._out(k, old)
            try:
                if patch_type == "merge":
                    new = merge_patch(old, body)
                elif patch_type == "json":
                    if not isinstance(body, list):
                        raise bad_request("json patch must be a list of operations")
                    new = json_patch(old, body)
                elif patch_type == "strategic":
                    if not k.builtin:
                        raise ApiError(415, "UnsupportedMediaType",
                                       "the body of the request was in an unknown format - accepted "
                                       "media types include: application/json-patch+json, "
                                       "application/merge-patch+json, application/apply-patch+yaml")
                    new = strategic_merge_patch(old, body, k.kind)
                elif patch_type == "apply":
                    new = apply_patch(old, body, k.kind, k.builtin)
                else:
                    raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {patch_type}")
            except PatchTooLarge as e:
                raise ApiError(413, "RequestEntityTooLarge", str(e)) from None
            except PatchError as e:
                raise ApiError(422, "Invalid", str(e)) from None
            if not isinstance(new, dict):
                raise bad_request("the patch does not produce an object")
            new.setdefault("metadata", {})
            want_rv = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
            if want_rv and str(want_rv) != old["metadata"]["resourceVersion"]:
                raise self._conflict(k, name)
            new["metadata"]["name"] = name
            merged = self._merge_update(k, old, new, subresource)
            try:
                return self._commit_update(k, key, old, merged, dry_run)
            except ApiError as e:
                if e.code == 409 and e.reason == "Conflict" and not want_rv:
                    continue   # someone wrote in between: patch the newer object
                raise
        raise self._conflict(k, name)

    def delete(self, k: Kind, namespace: str, name: str, grace_period_seconds: int | None = None,
               propagation: str = "Background", preconditions: Obj | None = None,
               dry_run: bool = False) -> Obj:
        key = self._key(k, namespace, name)
        old = self.store.get(key)
        if old is None:
            raise not_found(k, name)
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
            raise ApiError(409, "Conflict", f'Precondition failed: UID in precondition: {pre["uid"]}, '
                                            f'UID in object meta: {old["metadata"]["uid"]}')
        if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise self._conflict(k, name)
        if dry_run:
            return self._out(k, old)
        meta = old["metadata"]
        strategy = self.strategies.for_kind(k)
        grace = strategy.grace(old, grace_period_seconds)
        hold = bool(meta.get("finalizers")) or strategy.held(old) or grace > 0
        if propagation == "Orphan":
            self._orphan_dependents(meta["uid"])
        if hold:
            if meta.get("deletionTimestamp") and grace >= int(meta.get("deletionGracePeriodSeconds", 0)):
                return self._out(k, old)   # already being deleted
            new = clone(old)
            now = self.clock()
            new["metadata"]["deletionTimestamp"] = rfc3339(now + timedelta(seconds=max(grace, 0)))
            new["metadata"]["deletionGracePeriodSeconds"] = max(grace, 0)
            strategy.on_delete(new)
            if not meta.get("finalizers") and not strategy.held(new) and grace <= 0:
                return self._out(k, self.store.delete(key))
            new["metadata"].pop("resourceVersion", None)
            return self._out(k, self.store.update(key, self._stored(k, new)))
        try:
            return self._out(k, self.store.delete(key))
        except NotFound:
            raise not_found(k, name) from None

    def _orphan_dependents(self, uid: str) -> None:
        objs, _ = self.store.list("/")
        for o in objs:
            refs = o["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == uid for r in refs):
                o["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                k = self.kinds.for_api_version(o.get("apiVersion", ""), o.get("kind", ""))
                if k is not None:
                    o["metadata"].pop("resourceVersion", None)
                    self.store.update(self._key(k, o["metadata"].get("namespace", ""), o["metadata"]["name"]),
                                      self._stored(k, o))


class _Stream(Generic[T]):
    """A watch's events; closing it ends the store watch, also when it was never iterated
    (an async generator closed before its first step never runs its `finally`)."""

    def __init__(self, events: AsyncGenerator[T, None], w: Watch) -> None:
        self._events = events
        self._w = w

    def __aiter__(self) -> _Stream[T]:
        return self

    def __anext__(self) -> Awaitable[T]:
        return self._events.__anext__()

    async def aclose(self) -> None:
        self._w.close()
        await self._events.aclose()


def parse_bool(v: str | None) -> bool:
    """Query booleans as the Python client sends them ("True") or kubectl does ("true")."""
    return (v or "").lower() in ("true", "1", "yes")


def json_body(raw: bytes) -> Any:
    try:
        return bodies.decode_json(raw)
    except bodies.BodyError as e:
        raise body_error(e) from None


def yaml_body(raw: bytes) -> Any:
    try:
        return bodies.decode_yaml(raw)
    except bodies.BodyError as e:
        raise body_error(e) from None


def body_error(e: bodies.BodyError) -> ApiError:
    return ApiError(e.code, "RequestEntityTooLarge" if e.code == 413 else "BadRequest", e.message)


def too_large(k: Kind, name: str, e: TooLarge) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge",
                    f'{k.resource} "{name}" is too large to store: {e.size} bytes; the limit is '
                    f"{e.limit} bytes (1.5 MiB, etcd's request size limit)",
                    {"name": name, "group": k.group, "kind": k.plural})


__all__ = ["Registry", "rfc3339", "parse_bool", "json_body", "yaml_body", "bad_request", "not_found",
           "invalid"]
