"""The HTTP(S) API server kubectl and the Python client talk to (aiohttp).

Thin shell: authenticate and authorize (core/auth/gate.py: tokens, RBAC), parse the path into kind +
namespace + name + subresource, decode the body (JSON, YAML apply patches,
protobuf from imperative `kubectl create`), call the registry, and encode the
answer (JSON, Table for `kubectl get`, chunked watch streams, WebSocket exec,
streamed logs). Every decision lives in the registry, discovery and printers
modules. aiohttp is right here (the control plane, watch and WebSocket); the
data plane never uses it. Neighbours: registry.py, discovery.py, protobuf.py,
core/printers.py, node/ (exec and logs).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import WSMsgType, web
from multidict import CIMultiDict

from skiff.core import notimplemented, printers
from skiff.core.apiserver import discovery
from skiff.core.apiserver.registry import Registry, bad_request, json_body, parse_bool, yaml_body
from skiff.core.auth.gate import Gate
from skiff.core.bodies import truncated
from skiff.core.client import ApiError, Obj, WatchEvent
from skiff.core.clock import utcnow
from skiff.core.kinds import Kind
from skiff.node import logread

log = logging.getLogger("skiff.apiserver")

PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/json-patch+json": "json",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "apply",
}


# Media types a create or update body may have ("": no Content-Type, read as JSON, as the
# Python client's bodies are read).
BODY_TYPES = frozenset({"", "application/json", "application/yaml", "application/x-yaml",
                        "application/vnd.kubernetes.protobuf"})


class ExecSession(Protocol):
    stdout: asyncio.StreamReader | None
    stderr: asyncio.StreamReader | None

    async def write(self, data: bytes) -> None: ...

    def resize(self, width: int, height: int) -> None: ...

    def close_stdin(self) -> None: ...

    async def wait(self) -> int: ...

    def kill(self) -> None: ...


class PodProcesses(Protocol):
    """What the node runtime offers the API server for `kubectl exec` and `kubectl logs`."""

    async def exec(self, namespace: str, name: str, container: str, command: list[str],
                   stdin: bool, tty: bool) -> Any: ...

    def log_path(self, namespace: str, name: str, container: str, previous: bool = False) -> Any: ...

    def dialer(self, namespace: str, name: str) -> Any: ...


@dataclass
class Target:
    kind: Kind
    version: str
    namespace: str
    name: str
    subresource: str


def _status_response(e: ApiError) -> web.Response:
    return web.json_response(e.status(), status=e.code)


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


async def _aclose(it: AsyncIterator[Any]) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:
            pass


async def _json_lines(events: AsyncIterator[tuple[str, str]]) -> AsyncIterator[bytes]:
    """Watch lines around the objects' JSON text as the registry gives it (no decoding here)."""
    async for type_, text in events:
        yield b'{"type":"%s","object":%s}\n' % (type_.encode(), text.encode())


async def _table_lines(events: AsyncIterator[WatchEvent], k: Kind, include_object: str) -> AsyncIterator[bytes]:
    """Watch lines for `kubectl get -w`: each object as a Table row (columns in the first only)."""
    first = True
    async for ev in events:
        obj = ev.object
        tb = printers.table(k, [obj], utcnow(), include_object)
        if not first:
            tb["columnDefinitions"] = []
        tb["metadata"] = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
        first = False
        yield json.dumps({"type": ev.type, "object": tb}).encode() + b"\n"


class ApiServer:
    def __init__(self, registry: Registry, token: str, server_address: str,
                 ready: Callable[[], bool], pods: PodProcesses | None = None,
                 gate: Gate | None = None) -> None:
        self.registry = registry
        self.token = token
        self.gate = gate    # authentication + RBAC (core/auth); None: the one token, no RBAC
        self.server_address = server_address
        self.ready = ready
        self.pods = pods
        self._openapi_cache: tuple[int, Obj, dict[str, Obj]] | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=3 * 1024 * 1024 + 1024,
                              middlewares=[self._errors, self._auth])
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    # --- middleware ---------------------------------------------------------
    @web.middleware
    async def _errors(self, request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as e:
            return _status_response(e)
        except web.HTTPRequestEntityTooLarge:
            return _status_response(ApiError(413, "RequestEntityTooLarge",
                                             "the request is too large; the limit is 3 MiB"))
        except web.HTTPException:
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as e:
            log.exception("internal error on %s %s", request.method, request.path)
            return _status_response(ApiError(500, "InternalError", f"Internal error occurred: {e}"))

    @web.middleware
    async def _auth(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.path in ("/version", "/readyz", "/livez", "/healthz"):
            return await handler(request)
        if self.gate is not None:
            # 401 / 403 as ApiError (the _errors middleware answers); the user for the reviews.
            request["user"] = self.gate.check(
                request.method, request.path, request.query, request.headers,
                request.headers.get("Upgrade", "").lower() == "websocket")
            return await handler(request)
        if request.headers.get("Authorization", "") != f"Bearer {self.token}":
            return _status_response(ApiError(401, "Unauthorized", "Unauthorized"))
        return await handler(request)

    # --- routing ------------------------------------------------------------
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        if path in ("/readyz", "/livez", "/healthz"):
            if path == "/readyz" and not self.ready():
                return web.Response(status=500, text="[-]controllers not ready\nreadyz check failed")
            return web.Response(text="ok")
        if path == "/version":
            return web.json_response(discovery.VERSION)
        if path in ("/api", "/apis"):
            return self._discovery_root(request, path == "/api")
        if parts[:2] == ["openapi", "v3"]:
            return self._openapi(parts[2:])
        if parts == ["openapi", "v2"]:
            if "protobuf" in request.headers.get("Accept", ""):
                return web.Response(body=discovery.openapi_v2_protobuf(),
                                    headers={"Content-Type": discovery.OPENAPI_V2_PB_TYPE})
            return web.json_response(discovery.openapi_v2_json())
        if parts[:1] == ["openapi"]:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        elif parts[:1] == ["apis"] and len(parts) == 2:
            vs = dict(self.registry.kinds.group_versions()).get(parts[1])
            if not vs:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return web.json_response({"kind": "APIGroup", "apiVersion": "v1",
                                      **discovery.api_group(parts[1], vs)})
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            doc = discovery.api_resource_list(self.registry.kinds, group, version)
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return web.json_response(doc)
        t = self._target(group, version, rest)
        return await self._resource(request, t)

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        kinds = self.registry.kinds
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            candidate = kinds.for_path(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        k = kinds.for_path(group, version, rest[0])
        if k is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return Target(k, version, namespace, name, sub)

    def _discovery_root(self, request: web.Request, core: bool) -> web.Response:
        accept = request.headers.get("Accept", "")
        if "as=APIGroupDiscoveryList" in accept:
            body = discovery.aggregated(self.registry.kinds, core)
            return web.Response(body=json.dumps(body).encode(),
                                headers={"Content-Type": discovery.AGGREGATED_CT})
        if core:
            return web.json_response(discovery.api_versions(self.server_address))
        return web.json_response(discovery.api_group_list(self.registry.kinds))

    def _openapi(self, rest: list[str]) -> web.Response:
        kinds = self.registry.kinds
        if self._openapi_cache is None or self._openapi_cache[0] != kinds.generation:
            self._openapi_cache = (kinds.generation, discovery.openapi_root(kinds), {})
        _, root, docs = self._openapi_cache
        if not rest:
            return web.json_response(root)
        key = "/".join(rest)
        if key not in root["paths"]:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if key not in docs:
            if rest[0] == "api":
                docs[key] = discovery.openapi_gv(kinds, "", rest[1])
            else:
                docs[key] = discovery.openapi_gv(kinds, rest[1], rest[2])
        return web.json_response(docs[key])

    # --- resources ----------------------------------------------------------
    async def _resource(self, request: web.Request, t: Target) -> web.StreamResponse:
        m = request.method
        q = request.query
        reg = self.registry
        dry = q.get("dryRun") == "All"
        if self.gate is not None and self.gate.serves(t.kind.group, t.kind.plural, t.subresource):
            # Reviews and TokenRequest: create-only, answered by core/auth, never stored.
            if m != "POST":
                raise ApiError(405, "MethodNotAllowed", f"the server does not allow this method "
                                                        f"on the requested resource ({m})")
            body = await self._body(request)
            return web.json_response(self.gate.create(t.kind.group, t.kind.plural, t.subresource,
                                                      t.namespace, t.name, body, request["user"]),
                                     status=201)
        if t.subresource in ("exec", "attach") and t.kind.kind == "Pod" and t.kind.builtin:
            return await self._exec(request, t)
        if t.subresource == "log" and t.kind.kind == "Pod" and t.kind.builtin:
            return await self._log(request, t)
        if t.subresource == "portforward" and t.kind.kind == "Pod" and t.kind.builtin:
            return await self._port_forward(request, t)
        if t.subresource == "scale" and "scale" in t.kind.extra_subresources:
            return await self._scale(request, t)
        if t.subresource == "finalize" and t.kind.kind == "Namespace" and m == "PUT":
            body = await self._body(request)
            return web.json_response(reg.update(t.kind, "", t.name, body, dry_run=dry))
        if t.subresource and not (t.subresource == "status" and t.kind.status_subresource):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if m == "GET" and not t.name:
            if parse_bool(q.get("watch")):
                return await self._watch(request, t)
            items, rv, cont = reg.list(t.kind, t.namespace, q.get("labelSelector", ""),
                                       q.get("fieldSelector", ""), int(q.get("limit", 0) or 0),
                                       q.get("continue", ""), t.version)
            meta: Obj = {"resourceVersion": str(rv)}
            if cont:
                meta["continue"] = cont
            if _wants_table(request):
                table = printers.table(t.kind, items, utcnow(), q.get("includeObject", "Metadata"))
                table["metadata"] = meta
                return web.json_response(table)
            return web.json_response({"kind": t.kind.list_kind,
                                      "apiVersion": t.kind.group_versions()[t.kind.versions.index(t.version)],
                                      "metadata": meta, "items": items})
        if m == "GET":
            obj = reg.get(t.kind, t.namespace, t.name, t.version)
            if _wants_table(request):
                table = printers.table(t.kind, [obj], utcnow(), q.get("includeObject", "Metadata"))
                table["metadata"] = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
                return web.json_response(table)
            return web.json_response(obj)
        if m == "POST" and not t.name:
            body = await self._body(request)
            self._no_escalation(request, t, body)
            obj = reg.create(t.kind, t.namespace, body, dry_run=dry)
            return web.json_response(self._versioned(obj, t), status=201,
                                     headers=_warnings(t.kind, obj))
        if m == "PUT" and t.name:
            body = await self._body(request)
            self._no_escalation(request, t, body)
            obj = reg.update(t.kind, t.namespace, t.name, body, t.subresource, dry_run=dry)
            return web.json_response(self._versioned(obj, t), headers=_warnings(t.kind, obj))
        if m == "PATCH" and t.name:
            ct = request.content_type
            pt = PATCH_TYPES.get(ct)
            if pt is None:
                raise ApiError(415, "UnsupportedMediaType",
                               f"the body of the request was in an unknown format - accepted media "
                               f"types include: {', '.join(PATCH_TYPES)}")
            raw = await request.read()
            body = yaml_body(raw) if pt == "apply" else json_body(raw)
            existed = True
            if pt == "apply":
                try:
                    reg.get(t.kind, t.namespace, t.name)
                except ApiError:
                    existed = False
            if self._guards_escalation(request, t):
                # The patched object decides: see it first (a dry run), then write it.
                self._no_escalation(request, t, reg.patch(t.kind, t.namespace, t.name, pt, body,
                                                          t.subresource, dry_run=True))
            obj = reg.patch(t.kind, t.namespace, t.name, pt, body, t.subresource, dry_run=dry)
            return web.json_response(self._versioned(obj, t), status=200 if existed else 201,
                                     headers=_warnings(t.kind, obj))
        if m == "DELETE" and t.name:
            opts = json_body(await request.read()) if request.can_read_body else {}
            grace = q.get("gracePeriodSeconds", opts.get("gracePeriodSeconds"))
            obj = reg.delete(t.kind, t.namespace, t.name,
                             int(grace) if grace is not None else None,
                             q.get("propagationPolicy", opts.get("propagationPolicy", "Background")),
                             opts.get("preconditions"), dry_run=dry)
            return web.json_response(self._versioned(obj, t))
        if m == "DELETE":
            items, rv, _ = reg.list(t.kind, t.namespace, q.get("labelSelector", ""),
                                    q.get("fieldSelector", ""))
            for o in items:
                try:
                    reg.delete(t.kind, o["metadata"].get("namespace", ""), o["metadata"]["name"], dry_run=dry)
                except ApiError as e:
                    if e.code != 404:
                        raise
            return web.json_response({"kind": t.kind.list_kind, "apiVersion": t.kind.api_version,
                                      "metadata": {"resourceVersion": str(rv)}, "items": items})
        raise ApiError(405, "MethodNotAllowed", f"the server does not allow this method on the "
                                                f"requested resource ({m})")

    def _guards_escalation(self, request: web.Request, t: Target) -> bool:
        return self.gate is not None and t.kind.group == "rbac.authorization.k8s.io" \
            and not t.subresource and "user" in request

    def _no_escalation(self, request: web.Request, t: Target, obj: Any) -> None:
        """A Role, ClusterRole or binding grants only what its writer holds (core/auth)."""
        if self._guards_escalation(request, t) and isinstance(obj, dict):
            assert self.gate is not None
            self.gate.check_escalation(t.kind.kind, t.namespace, obj, request["user"])

    def _versioned(self, obj: Obj, t: Target) -> Obj:
        if t.kind.group:
            obj["apiVersion"] = f"{t.kind.group}/{t.version}"
        return obj

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        ct = request.content_type if "Content-Type" in request.headers else ""
        if ct == "application/vnd.kubernetes.protobuf":
            from skiff.core.apiserver import protobuf
            try:
                return protobuf.decode(raw)
            except protobuf.ProtobufError as e:
                raise bad_request(f"the body of the request could not be decoded: {e}") from None
        if ct in ("application/yaml", "application/x-yaml"):
            return yaml_body(raw)
        if ct not in BODY_TYPES:
            raise ApiError(415, "UnsupportedMediaType",
                           f'the body of the request was in an unknown format ("{truncated(ct)}") - '
                           f"accepted media types include: {', '.join(sorted(BODY_TYPES - {''}))}")
        return json_body(raw)

    async def _watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        q = request.query
        table = _wants_table(request)
        expired: ApiError | None = None
        events: AsyncIterator[Any] | None = None
        try:
            args = (t.kind, t.namespace, q.get("resourceVersion", ""), q.get("labelSelector", ""),
                    q.get("fieldSelector", ""), t.version)
            events = await (self.registry.watch(*args) if table else self.registry.watch_json(*args))
        except ApiError as e:
            if e.code != 410:
                raise
            expired = e
        try:
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                           "Transfer-Encoding": "chunked"})
            await resp.prepare(request)
            if events is None:
                # As kube-apiserver: the stream opens, then one ERROR event carries the 410 Status.
                assert expired is not None
                await resp.write(json.dumps({"type": "ERROR", "object": expired.status()}).encode() + b"\n")
                await resp.write_eof()
                return resp
            lines = (_table_lines(events, t.kind, q.get("includeObject", "Metadata")) if table
                     else _json_lines(events))
            await self._stream(resp, lines, t.kind, float(q.get("timeoutSeconds", 0) or 0) or 1800.0,
                               parse_bool(q.get("allowWatchBookmarks")))
        finally:
            if events is not None:
                await _aclose(events)   # ends the store watch, even if never iterated
        try:
            await resp.write_eof()
        except (ConnectionResetError, RuntimeError):
            pass
        return resp

    async def _stream(self, resp: web.StreamResponse, lines: AsyncIterator[bytes], k: Kind,
                      timeout: float, bookmarks: bool) -> None:
        """Send watch lines until the deadline, the end of the events or the client's going.

        No task or timer per event: one deadline for the whole watch and, with bookmarks, one
        task that sends a BOOKMARK after each 30 s without an event (and one at the deadline
        when the watch was waiting then). It sends one only while the loop below waits for the
        next event: then every event up to the store's resourceVersion has been sent or
        filtered out, so a client resuming from the bookmark misses none.
        """
        loop = asyncio.get_running_loop()
        waiting = True
        last = loop.time()

        async def bookmark() -> None:
            bm = {"type": "BOOKMARK", "object": {
                "kind": k.kind, "apiVersion": k.api_version,
                "metadata": {"resourceVersion": str(self.registry.store.rv)}}}
            await resp.write(json.dumps(bm).encode() + b"\n")

        async def bookmarker() -> None:
            nonlocal last
            while True:
                wait = last + 30.0 - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                await asyncio.sleep(0)   # an event already on its way goes first
                if waiting and loop.time() - last >= 30.0:
                    await bookmark()
                last = loop.time()   # a new 30 s (also after a slow client's long write)

        ticker = asyncio.ensure_future(bookmarker()) if bookmarks else None
        timed_out = False
        try:
            async with asyncio.timeout(timeout):
                async for line in lines:
                    waiting = False
                    await resp.write(line)
                    waiting, last = True, loop.time()
        except TimeoutError:
            timed_out = True
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            if ticker is not None:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)
            await _aclose(lines)
        if timed_out and bookmarks and waiting:
            try:
                await bookmark()
            except ConnectionResetError:
                pass

    async def _scale(self, request: web.Request, t: Target) -> web.Response:
        reg = self.registry

        def scale_of(o: Obj) -> Obj:
            sel = ((o.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                    "metadata": {k: o["metadata"][k] for k in ("name", "namespace", "uid",
                                                                "resourceVersion", "creationTimestamp")
                                 if k in o["metadata"]},
                    "spec": {"replicas": (o.get("spec") or {}).get("replicas", 1)},
                    "status": {"replicas": (o.get("status") or {}).get("replicas", 0),
                               "selector": ",".join(f"{k}={v}" for k, v in sel.items())}}
        if request.method == "GET":
            return web.json_response(scale_of(reg.get(t.kind, t.namespace, t.name)))
        body = json_body(await request.read())
        if request.method == "PATCH":
            pt = PATCH_TYPES.get(request.content_type, "merge")
            cur = scale_of(reg.get(t.kind, t.namespace, t.name))
            from skiff.core.patch import json_patch, merge_patch
            new = json_patch(cur, body) if pt == "json" else merge_patch(cur, body)
        elif request.method == "PUT":
            new = body
        else:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
        replicas = ((new or {}).get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(422, "Invalid", f'Scale.autoscaling "{t.name}" is invalid: spec.replicas: '
                                           f"Invalid value: {replicas}: must be greater than or equal to 0")
        obj = reg.patch(t.kind, t.namespace, t.name, "merge", {"spec": {"replicas": replicas}})
        return web.json_response(scale_of(obj))

    # --- logs and exec --------------------------------------------------------
    def _pod_container(self, t: Target, container: str) -> tuple[Obj, str]:
        pod = self.registry.get(t.kind, t.namespace, t.name)
        names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        if not container:
            if len(names) != 1 and names:
                # kubectl picks the default-container annotation or the first one.
                container = (pod["metadata"].get("annotations") or {}).get(
                    "kubectl.kubernetes.io/default-container", names[0])
            else:
                container = names[0] if names else ""
        inits = [c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []]
        if container not in names and container not in inits:
            raise bad_request(f"container {container} is not valid for pod {t.name}")
        return pod, container

    async def _log(self, request: web.Request, t: Target) -> web.StreamResponse:
        """pods/log: the run's files streamed block by block (runtime/logread.py), never loaded."""
        if self.pods is None:
            raise ApiError(503, "ServiceUnavailable", "no node runtime")
        q = request.query
        pod, container = self._pod_container(t, q.get("container", ""))
        previous = parse_bool(q.get("previous"))
        path = self.pods.log_path(t.namespace, t.name, container, previous)
        if path is None or not path.exists():
            if previous:
                raise bad_request(f'previous terminated container "{container}" in pod "{t.name}" '
                                  "not found")
            waiting = _waiting_reason(pod, container)
            raise bad_request(f'container "{container}" in pod "{t.name}" is waiting to start: '
                              f"{waiting or 'ContainerCreating'}")
        opts = logread.options(q, time.time_ns())
        if isinstance(opts, str):
            raise bad_request(opts)
        uid = str(pod["metadata"].get("uid", ""))
        number = int(path.stem) if path.stem.isdigit() else -1

        def live() -> bool:
            if previous:
                return False
            try:
                cur = self.registry.get(t.kind, t.namespace, t.name)
            except ApiError:
                return False
            return logread.run_live(cur, uid, container, number)

        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            async with contextlib.aclosing(logread.stream(path, opts, live)) as chunks:
                async for chunk in chunks:
                    await resp.write(chunk)
            await resp.write_eof()
        except ConnectionResetError:
            pass            # the client went away (kubectl logs -f interrupted)
        return resp

    async def _port_forward(self, request: web.Request, t: Target) -> web.StreamResponse:
        """pods/portforward: SPDY/3.1 in a WebSocket (kubectl 1.31+) or after an Upgrade."""
        from skiff.core.apiserver import portforward_shell
        pod = self.registry.get(t.kind, t.namespace, t.name)
        dialer = self.pods.dialer(t.namespace, t.name) if self.pods is not None else None
        return await portforward_shell.handle(request, pod, dialer)

    async def _exec(self, request: web.Request, t: Target) -> web.StreamResponse:
        if self.pods is None:
            raise ApiError(503, "ServiceUnavailable", "no node runtime")
        q = request.query
        _, container = self._pod_container(t, q.get("container", ""))
        command = q.getall("command", [])
        if not command:
            raise bad_request("you must specify at least 1 command")
        want_stdin, tty = parse_bool(q.get("stdin")), parse_bool(q.get("tty"))
        ws = web.WebSocketResponse(protocols=("v5.channel.k8s.io", "v4.channel.k8s.io",
                                              "channel.k8s.io"), heartbeat=None, autoping=True)
        if not ws.can_prepare(request).ok:
            raise bad_request("exec needs a WebSocket upgrade (v5.channel.k8s.io)")
        await ws.prepare(request)
        v5 = ws.ws_protocol == "v5.channel.k8s.io"
        try:
            session = await self.pods.exec(t.namespace, t.name, container, command, want_stdin, tty)
        except ApiError as e:
            await ws.send_bytes(b"\x03" + json.dumps({"metadata": {}, "status": "Failure",
                                                      "message": e.message, "reason": e.reason}).encode())
            await ws.close()
            return ws
        except (FileNotFoundError, PermissionError) as e:
            msg = (f'failed to exec in container: failed to start exec: OCI runtime exec failed: '
                   f'exec failed: unable to start container process: exec: "{command[0]}": '
                   f"executable file not found in $PATH: {e.strerror}")
            await ws.send_bytes(b"\x03" + json.dumps({"metadata": {}, "status": "Failure",
                                                      "message": msg, "reason": "InternalError",
                                                      "details": {"causes": [{"reason": "ExitCode",
                                                                              "message": "126"}]}}).encode())
            await ws.close()
            return ws

        async def pump(reader: asyncio.StreamReader | None, channel: int) -> None:
            if reader is None:
                return
            while True:
                chunk = await reader.read(32768)
                if not chunk:
                    return
                await ws.send_bytes(bytes([channel]) + chunk)

        async def feed() -> None:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY or not msg.data:
                    continue
                ch, data = msg.data[0], msg.data[1:]
                if ch == 0 and data:
                    await session.write(data)
                elif ch == 4 and data:
                    try:
                        size = json.loads(data)
                        session.resize(int(size.get("Width", 80)), int(size.get("Height", 24)))
                    except (ValueError, AttributeError):
                        pass
                elif ch == 255 and v5 and data[:1] == b"\x00":
                    session.close_stdin()
            session.kill()   # the client went away

        feeder = asyncio.create_task(feed()) if want_stdin or v5 else None
        try:
            await asyncio.gather(pump(session.stdout, 1), pump(session.stderr, 2))
            code = await session.wait()
            if code == 0:
                status: Obj = {"metadata": {}, "status": "Success"}
            else:
                status = {"metadata": {}, "status": "Failure",
                          "message": f"command terminated with non-zero exit code: exit status {code}",
                          "reason": "NonZeroExitCode",
                          "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
            await ws.send_bytes(b"\x03" + json.dumps(status).encode())
            await ws.close()
        finally:
            if feeder is not None:
                feeder.cancel()
            session.kill()
        return ws


def _warnings(k: Kind, obj: Obj) -> CIMultiDict[str] | None:
    """Warning headers for a write of what skiff accepts but does not act on yet."""
    found = notimplemented.warnings(k, obj)
    if not found:
        return None
    return CIMultiDict(("Warning", notimplemented.warning_header(w)) for w in found)


def _waiting_reason(pod: Obj, container: str) -> str:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == container:
            w = (cs.get("state") or {}).get("waiting") or {}
            return str(w.get("reason", ""))
    return ""

