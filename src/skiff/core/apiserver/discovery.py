"""Discovery and OpenAPI documents, built from the kinds registry. Pure.

kubectl reads aggregated discovery (apidiscovery.k8s.io/v2) or the legacy
APIVersions/APIGroupList/APIResourceList to resolve `kubectl get ksvc`, short
names and categories; it reads /openapi/v3 to decide that the server validates
fields (fieldValidation on each kind's PATCH operation) and for `kubectl
explain`. Neighbours: core/kinds.py (the data), server.py (serves these).
"""

from __future__ import annotations

import hashlib
import json

from skiff.core.client import Obj
from skiff.core.kinds import Kind, Kinds

AGGREGATED_CT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
VERSION = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.0-skiff", "gitCommit": "skiff",
    "gitTreeState": "clean", "buildDate": "2026-11-25T00:00:00Z", "goVersion": "go1.23",
    "compiler": "gc", "platform": "linux/amd64",
}


def _verbs(k: Kind) -> list[str]:
    return list(k.verbs)


def _subresources(k: Kind) -> list[tuple[str, list[str]]]:
    subs: list[tuple[str, list[str]]] = []
    if k.status_subresource:
        subs.append(("status", ["get", "patch", "update"]))
    for s in k.extra_subresources:
        subs.append((s, ["get", "patch", "update"] if s == "scale"
                     else ["create"] if s == "token" else ["create", "get"]))
    return subs


def _gv_kinds(kinds: Kinds, group: str, version: str) -> list[Kind]:
    return [k for k in kinds.in_group_version(group, version)]


def aggregated(kinds: Kinds, core: bool) -> Obj:
    """APIGroupDiscoveryList for /api (core=True) or /apis."""
    groups: list[tuple[str, list[str]]] = [("", ["v1"])] if core else kinds.group_versions()
    items = []
    for group, versions in groups:
        vs = []
        for v in versions:
            resources = []
            for k in _gv_kinds(kinds, group, v):
                rk = {"group": group, "version": v, "kind": k.kind}
                r: Obj = {"resource": k.plural, "responseKind": rk,
                          "scope": "Namespaced" if k.namespaced else "Cluster",
                          "singularResource": k.singular, "verbs": _verbs(k)}
                if k.short_names:
                    r["shortNames"] = list(k.short_names)
                if k.categories:
                    r["categories"] = list(k.categories)
                subs = _subresources(k)
                if subs:
                    r["subresources"] = [{"subresource": s, "responseKind": rk, "verbs": verbs}
                                         for s, verbs in subs]
                resources.append(r)
            vs.append({"version": v, "resources": resources, "freshness": "Current"})
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": vs})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": items}


def api_versions(server_address: str) -> Obj:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def api_group(group: str, versions: list[str]) -> Obj:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def api_group_list(kinds: Kinds) -> Obj:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [api_group(g, vs) for g, vs in kinds.group_versions()]}


def api_resource_list(kinds: Kinds, group: str, version: str) -> Obj | None:
    ks = _gv_kinds(kinds, group, version)
    if not ks:
        return None
    resources: list[Obj] = []
    for k in ks:
        r: Obj = {"name": k.plural, "singularName": k.singular, "namespaced": k.namespaced,
                  "kind": k.kind, "verbs": _verbs(k)}
        if k.short_names:
            r["shortNames"] = list(k.short_names)
        if k.categories:
            r["categories"] = list(k.categories)
        resources.append(r)
        for s, verbs in _subresources(k):
            resources.append({"name": f"{k.plural}/{s}", "singularName": "", "namespaced": k.namespaced,
                              "kind": k.kind, "verbs": verbs})
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": resources}


# --- OpenAPI v3 ----------------------------------------------------------------

def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def schema_name(k: Kind, version: str) -> str:
    """io.k8s.api.core.v1.Pod for built-ins, reversed-group names for CRDs (as upstream)."""
    if k.builtin:
        if k.group == "apiextensions.k8s.io":
            return f"io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}.{k.kind}"
        g = {"": "core", "apps": "apps", "networking.k8s.io": "networking",
             "rbac.authorization.k8s.io": "rbac", "authorization.k8s.io": "authorization",
             "authentication.k8s.io": "authentication"}.get(k.group, k.group)
        return f"io.k8s.api.{g}.{version}.{k.kind}"
    return ".".join(reversed(k.group.split("."))) + f".{version}.{k.kind}"


def openapi_root(kinds: Kinds) -> Obj:
    paths: Obj = {}
    gvs = [("", "v1")] + [(g, v) for g, vs in kinds.group_versions() for v in vs]
    for g, v in gvs:
        doc = openapi_gv(kinds, g, v)
        digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
        p = _gv_path(g, v)
        paths[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={digest}"}
    return {"paths": paths}


def openapi_gv(kinds: Kinds, group: str, version: str) -> Obj:
    paths: Obj = {}
    schemas: Obj = {}
    for k in _gv_kinds(kinds, group, version):
        gvk = {"group": group, "version": version, "kind": k.kind}
        name = schema_name(k, version)
        ref = {"$ref": f"#/components/schemas/{name}"}
        s = dict(k.schema)
        s["x-kubernetes-group-version-kind"] = [gvk]
        schemas[name] = s
        base = "/" + _gv_path(group, version)
        coll = f"{base}/namespaces/{{namespace}}/{k.plural}" if k.namespaced else f"{base}/{k.plural}"
        json_body = {"content": {"application/json": {"schema": ref}}}
        params = [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
                  {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
                  {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}}]
        ok = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}
        paths[coll] = {
            "get": {"x-kubernetes-action": "list", "x-kubernetes-group-version-kind": gvk,
                    "responses": {"200": {"description": "OK"}}},
            "post": {"x-kubernetes-action": "post", "x-kubernetes-group-version-kind": gvk,
                     "parameters": params, "requestBody": json_body, "responses": ok},
        }
        patch_body = {"content": {ct: {"schema": {"type": "object"}} for ct in (
            "application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")}}
        paths[f"{coll}/{{name}}"] = {
            "get": {"x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk, "responses": ok},
            "put": {"x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk,
                    "parameters": params, "requestBody": json_body, "responses": ok},
            "patch": {"x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk,
                      "parameters": params + [{"name": "force", "in": "query",
                                               "schema": {"type": "boolean", "uniqueItems": True}}],
                      "requestBody": patch_body, "responses": ok},
            "delete": {"x-kubernetes-action": "delete", "x-kubernetes-group-version-kind": gvk,
                       "responses": ok},
        }
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": schemas}}


# /openapi/v2: kubectl reads it only when a kind is missing from the /openapi/v3 document of its
# group-version (a wrong version in an existing group, a mistyped kind). An empty Swagger 2.0
# document lets its validator skip the unknown kind, so that kubectl goes on to its REST mapping
# and says what upstream says: `no matches for kind "X" in version "g/v"`. Every schema skiff
# has is in /openapi/v3, which kubectl 1.32 reads first.
OPENAPI_V2_INFO = {"title": "Kubernetes", "version": VERSION["gitVersion"]}
OPENAPI_V2_PB_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def _pb_string(field: int, text: str) -> bytes:
    data = text.encode()
    assert len(data) < 128   # one-byte lengths are all these short strings need
    return bytes([field << 3 | 2, len(data)]) + data


def openapi_v2_json() -> Obj:
    return {"swagger": "2.0", "info": dict(OPENAPI_V2_INFO), "paths": {}, "definitions": {}}


def openapi_v2_protobuf() -> bytes:
    """The same document as gnostic's openapi_v2.Document in protobuf (what client-go asks for):
    swagger = 1, info = 2 {title = 1, version = 2}, paths = 8, definitions = 9."""
    info = _pb_string(1, OPENAPI_V2_INFO["title"]) + _pb_string(2, OPENAPI_V2_INFO["version"])
    return (_pb_string(1, "2.0") + bytes([2 << 3 | 2, len(info)]) + info
            + bytes([8 << 3 | 2, 0, 9 << 3 | 2, 0]))
