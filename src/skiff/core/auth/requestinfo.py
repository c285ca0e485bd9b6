"""Request attributes from an HTTP request: a port of apiserver's RequestInfoFactory.

/api/v1/... and /apis/GROUP/VERSION/... are resource requests: the verb comes
from the method (GET on a collection is list, or watch with ?watch=true;
DELETE on a collection is deletecollection), `namespaces/NS/` scopes them,
and resource/name/subresource follow. A list or watch whose field selector
pins metadata.name is authorized as that name. For the namespaces resource
itself the namespace is the name. Everything else (/api, /apis, /version,
/openapi/v3, /healthz) is a non-resource request whose verb is the method in
lower case. WebSocket upgrades of pods/exec, attach and portforward need
`create` (upstream's AuthorizePodWebsocketUpgradeCreatePermission, on by
default since 1.31). Pure. Neighbours: rbac.py (Attributes), gate.py.
"""

from __future__ import annotations

from collections.abc import Mapping

from skiff.core.auth.rbac import Attributes, UserInfo

_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update",
                 "PATCH": "patch", "DELETE": "delete"}
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_SPECIAL_VERBS = frozenset({"proxy", "watch"})
_CREATE_ON_UPGRADE = frozenset({"exec", "attach", "portforward"})


def _exact_name(field_selector: str) -> str:
    """The name a field selector requires exactly (metadata.name=X or ==X), or ""."""
    for term in field_selector.split(","):
        key, sep, value = term.partition("==")
        if not sep:
            key, sep, value = term.partition("=")
        if sep and key.strip() == "metadata.name" and not key.endswith("!"):
            value = value.strip()
            if value and "/" not in value and "%" not in value and value not in (".", ".."):
                return value
    return ""


def request_attributes(user: UserInfo, method: str, path: str, query: Mapping[str, str],
                       websocket: bool = False) -> Attributes:
    parts = [p for p in path.split("/") if p]
    verb_of_method = method.lower()
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return Attributes(user, verb_of_method, resource_request=False, path=path)
    rest = parts[1:]
    group = ""
    if parts[0] == "apis":
        if len(rest) < 3:
            return Attributes(user, verb_of_method, resource_request=False, path=path)
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]
    if rest[0] in _SPECIAL_VERBS:
        verb = rest[0]
        rest = rest[1:]
        if not rest:
            return Attributes(user, verb, True, api_group=group, api_version=version, path=path)
    else:
        verb = _METHOD_VERBS.get(method.upper(), "")
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    sub = rest[2] if len(rest) >= 3 and verb != "proxy" else ""
    if not name and verb == "get":
        # As the server reads ?watch= (registry.parse_bool), so what is authorized is what is served.
        verb = "watch" if (query.get("watch") or "").lower() in ("true", "1", "yes") else "list"
        name = _exact_name(query.get("fieldSelector", ""))
    if not name and verb == "delete":
        verb = "deletecollection"
    if websocket and verb == "get" and resource == "pods" and sub in _CREATE_ON_UPGRADE:
        verb = "create"
    return Attributes(user, verb, True, namespace=namespace, api_group=group, api_version=version,
                      resource=resource, subresource=sub, name=name, path=path)
