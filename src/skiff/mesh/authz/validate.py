"""Apply-time validation of AuthorizationPolicy, with Istio's messages and a field path each.

Istio's webhook runs ValidateAuthorizationPolicy (istio pkg/config/validation/
validation.go, with pkg/config/security/security.go's value checks); its
messages are kept word for word and each is placed at the field it is about,
so a user sees e.g. `spec.rules[0].when[0].key: unknown attribute: foo`.
Warnings (a selector without labels; a DENY rule with only HTTP attributes,
which denies all TCP traffic) are returned too and never reject.
The schema (mesh/crds.py) has already checked types and unknown fields.

Pure. Neighbours: model.py compiles what passes; the API server's admission
calls admit() for AuthorizationPolicy (mesh/setup.py registers it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from typing import Any

from skiff.core.validation import Cause

__all__ = ["Problem", "admit", "problems", "validate_authorization_policy"]

# pkg/config/validation allowedTargetRefs, as Go prints the slice of GVKs.
_ALLOWED_REFS = (("core", "Service"), ("networking.istio.io", "ServiceEntry"),
                 ("gateway.networking.k8s.io", "Gateway"),
                 ("gateway.networking.k8s.io", "GatewayClass"))
_ALLOWED_REFS_TEXT = ("[core/v1/Service networking.istio.io/v1/ServiceEntry "
                      "gateway.networking.k8s.io/v1/Gateway gateway.networking.k8s.io/v1/GatewayClass]")
_VALID_LITERAL = re.compile(r"^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$")
_DENY_TCP_WARNING = ("configured AuthorizationPolicy will deny all traffic to TCP ports under its "
                     "scope due to the use of only HTTP attributes in a DENY rule; it is "
                     "recommended to explicitly specify the port")

_SOURCE_KEYS = ("principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals",
                "namespaces", "notNamespaces", "serviceAccounts", "notServiceAccounts",
                "trustDomains", "notTrustDomains", "ipBlocks", "notIpBlocks", "remoteIpBlocks",
                "notRemoteIpBlocks")
_OP_KEYS = ("hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths",
            "notPaths")
_TCP_SOURCE_KEYS = ("principals", "notPrincipals", "ipBlocks", "notIpBlocks", "namespaces",
                    "notNamespaces", "remoteIpBlocks", "notRemoteIpBlocks", "serviceAccounts",
                    "notServiceAccounts")


@dataclass(frozen=True)
class Problem:
    field: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _go_title(key: str) -> str:
    """Istio names Source/Operation fields by their Go names in messages (IpBlocks)."""
    return key[0].upper() + key[1:]


def _empty_values(key: str, values: list[Any]) -> str | None:
    if any(v == "" or v is None for v in values):
        return f"empty value not allowed, found in {key}"
    return None


def _wildcard_values(key: str, values: list[Any]) -> str | None:
    err = _empty_values(key, values)
    if err:
        return err
    for v in map(str, values):
        n = v.count("*")
        if n > 1:
            return f"at most one wildcard is allowed, found in {key}: \"{v}\""
        if n == 1 and v != "*" and not v.startswith("*") and not v.endswith("*"):
            return f"wildcard is only allowed at the start or end, found in {key}: \"{v}\""
    return None


def _trust_domains(key: str, values: list[Any]) -> str | None:
    err = _wildcard_values(key, values)
    if err:
        return err
    for v in map(str, values):
        if "/" in v:
            return f"trust domain must not contain '/', found in {key}: \"{v}\""
    return None


def _service_accounts(key: str, values: list[Any]) -> str | None:
    if len(values) > 16:
        return "may not have more than 16 values"
    fmt = "expected format 'serviceAccount' or 'namespace/serviceAccount'"
    for v in map(str, values):
        if v == "":
            return f"empty value not allowed, found in {key}"
        if "*" in v:
            return f"wildcard not allowed, found in {key}"
        if v.count("/") not in (0, 1):
            return f"{fmt}, found \"{v}\" in {key}"
        if len(v) > 320:
            return f"value cannot exceed 320 characters, found \"{v}\" in {key}"
        ns, sep, sa = v.partition("/")
        if sep and not ns:
            return f"{fmt}, found empty namespace \"{v}\" in {key}"
        if sep and not sa:
            return f"{fmt}, found empty serviceAccount \"{v}\" in {key}"
    return None


def _ips(values: list[Any]) -> list[str]:
    out = []
    for v in map(str, values):
        if "/" in v:
            addr, _, bits = v.partition("/")
            try:
                ip_address(addr)
            except ValueError:
                out.append(f"bad CIDR range ({v}): netip.ParsePrefix(\"{v}\"): ParseAddr(\"{addr}\"): "
                           "unable to parse IP")
                continue
            try:
                ip_network(v, strict=False)
            except ValueError:
                why = "prefix length out of range" if bits.isdigit() else f"bad bits after slash: \"{bits}\""
                out.append(f"bad CIDR range ({v}): netip.ParsePrefix(\"{v}\"): {why}")
        else:
            try:
                ip_address(v)
            except ValueError:
                out.append(f"bad IP address ({v})")
    return out


def _ports(values: list[Any]) -> list[str]:
    out = []
    for p in map(str, values):
        if not p.isdigit() or not p.isascii():
            out.append(f"bad port ({p}): strconv.ParseUint: parsing \"{p}\": invalid syntax")
        elif int(p) > 65535:
            # strconv succeeded, so Go prints the nil error.
            out.append(f"bad port ({p}): <nil>")
    return out


def _map_key(key: str) -> str | None:
    i = key.find("[")
    if key.endswith("]") and 0 < i < len(key) - 2:
        return None
    return f"bad key ({key}): should have format a[b]"


def _path_templates(key: str, paths: list[Any]) -> str | None:
    for raw in map(str, paths):
        has_template = "{*}" in raw or "{**}" in raw
        path = raw.strip("/")
        any_seen = False
        for glob in path.split("/"):
            if glob == "{*}" and not any_seen:
                continue
            if glob == "{**}" and not any_seen:
                any_seen = True
                continue
            if glob in ("{*}", "{**}") and any_seen:
                return (f"invalid or unsupported path {path}, found in {key}. "
                        "{**} is not the last operator")
            if "{" in glob or "}" in glob:
                return (f"invalid or unsupported path {path}, found in {key}. "
                        "Contains '{' or '}' beyond a supported path template")
            if has_template and not _VALID_LITERAL.match(glob):
                return (f"invalid or unsupported path {path}, found in {key}. "
                        f"Contains segment {glob} with invalid string literal")
    return None


def _attribute(key: str, values: list[Any]) -> list[str]:
    """security.ValidateAttribute."""
    err = _empty_values(key, values)
    if err:
        return [err]
    if key.startswith("request.headers") or key.startswith("request.auth.claims") \
            or key.startswith("experimental.envoy.filters."):
        e = _map_key(key)
        return [e] if e else []
    if key in ("source.ip", "remote.ip", "destination.ip"):
        return _ips(values)
    if key == "source.serviceAccount":
        e = _service_accounts(key, values)
        return [e] if e else []
    if key == "source.trustDomain":
        e = _wildcard_values(key, values)
        return [e] if e else []
    if key == "destination.port":
        return _ports(values)
    if key in ("source.namespace", "source.principal", "request.auth.principal",
               "request.auth.audiences", "request.auth.presenter", "connection.sni"):
        return []
    if key == "destination.namespace":
        return [f"attribute {key} is replaced by the metadata.namespace"]
    if key.startswith("destination.labels"):
        return [f"attribute {key} is replaced by the workload selector"]
    if key in ("destination.name", "destination.user"):
        return [f"deprecated attribute {key}: only supported in v1alpha1"]
    return [f"unknown attribute: {key}"]


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def problems(obj: Mapping[str, Any]) -> list[Problem]:
    """Every error and warning Istio's ValidateAuthorizationPolicy reports for `obj`."""
    spec = obj.get("spec") or {}
    out: list[Problem] = []

    def err(path: str, msg: str | None) -> None:
        if msg:
            out.append(Problem(path, msg))

    sel, ref, refs = spec.get("selector"), spec.get("targetRef"), _list(spec.get("targetRefs"))
    if sum((sel is not None, ref is not None, bool(refs))) > 1:
        err("spec", "only one of targetRefs or workloadSelector can be set")
    if isinstance(sel, Mapping):
        labels = sel.get("matchLabels") or {}
        for k, v in labels.items():
            if k == "":
                err("spec.selector.matchLabels", f"empty key is not supported in selector: \"{k}={v}\"")
            if "*" in str(k) or "*" in str(v):
                err(f"spec.selector.matchLabels[{k}]",
                    f"wildcard is not supported in selector: \"{k}={v}\"")
        if not labels:
            out.append(Problem("spec.selector", "workload selector specified without labels", True))
    for path, r in ([("spec.targetRef", ref)] if isinstance(ref, Mapping) else []) + \
            [(f"spec.targetRefs[{i}]", r) for i, r in enumerate(refs) if isinstance(r, Mapping)]:
        if not r.get("name"):
            err(f"{path}.name", "targetRef name must be set")
        if r.get("namespace"):
            err(f"{path}.namespace",
                "targetRef namespace must not be set; cross namespace referencing is not supported")
        group = r.get("group") or "core"
        if (group, r.get("kind")) not in _ALLOWED_REFS:
            err(f"{path}.kind", f"targetRef must be to one of {_ALLOWED_REFS_TEXT} but was "
                                f"{r.get('group') or ''}/{r.get('kind') or ''}")

    action = spec.get("action") or "ALLOW"
    rules = spec.get("rules")
    provider = spec.get("provider")
    if action == "CUSTOM":
        if rules is None:
            err("spec.rules", "CUSTOM action without `rules` is meaningless as it will never be "
                "triggered, add an empty rule `{}` if you want it be triggered for every request")
        elif not (provider or {}).get("name"):
            err("spec.provider.name", "`provider.name` must not be empty")
        for i, rule in enumerate(_list(rules)):
            for j, f in enumerate(_list((rule or {}).get("from"))):
                src = (f or {}).get("source") or {}
                for k in ("namespaces", "notNamespaces", "serviceAccounts", "notServiceAccounts",
                          "trustDomains", "notTrustDomains", "principals", "notPrincipals",
                          "requestPrincipals", "notRequestPrincipals"):
                    if src.get(k):
                        err(f"spec.rules[{i}].from[{j}].source.{k}",
                            f"From.{_go_title(k)} is currently not supported with CUSTOM action")
            for j, w in enumerate(_list((rule or {}).get("when"))):
                if w is None:
                    err(f"spec.rules[{i}].when[{j}]", "when field cannot be nil")
                    continue
                key = str(w.get("key") or "")
                if key in ("source.namespace", "source.serviceAccount", "source.trustDomain",
                           "source.principal") or key.startswith("request.auth."):
                    err(f"spec.rules[{i}].when[{j}].key",
                        f"{key} is currently not supported with CUSTOM action")
    if provider is not None and action != "CUSTOM":
        err("spec.provider", f"`provider` must not be with non CUSTOM action, found {action}")
    if action == "DENY" and not rules:
        err("spec.rules", "DENY action without `rules` is meaningless as it will never be "
            "triggered, add an empty rule `{}` if you want it be triggered for every request")

    for i, rule in enumerate(_list(rules)):
        rp = f"spec.rules[{i}]"
        if rule is None:
            err(rp, f"`rule` must not be nil, found at rule {i}")
            continue
        froms, tos = rule.get("from"), rule.get("to")
        if froms is not None and len(_list(froms)) == 0:
            err(f"{rp}.from", f"`from` must not be empty, found at rule {i}")
        tcp_from = tcp_to = from_exist = to_exist = False
        for j, f in enumerate(_list(froms)):
            fp = f"{rp}.from[{j}]"
            if f is None:
                err(fp, f"`from` must not be nil, found at rule {i}")
                continue
            src = f.get("source")
            if src is None:
                err(f"{fp}.source", f"`from.source` must not be nil, found at rule {i}")
                continue
            from_exist = True
            sp = f"{fp}.source"
            if any(src.get(k) for k in ("principals", "notPrincipals", "namespaces", "notNamespaces")) \
                    and any(src.get(k) for k in ("serviceAccounts", "notServiceAccounts")):
                err(sp, f"cannot set serviceAccounts with namespaces or principals, found at rule {i}")
            if not any(src.get(k) for k in _SOURCE_KEYS):
                err(sp, f"`from.source` must not be empty, found at rule {i}")
            for k in ("ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks"):
                for e in _ips(_list(src.get(k))):
                    err(f"{sp}.{k}", e)
            for k in _SOURCE_KEYS:
                vals = _list(src.get(k))
                if k in ("serviceAccounts", "notServiceAccounts"):
                    err(f"{sp}.{k}", _service_accounts(_go_title(k), vals))
                elif k in ("trustDomains", "notTrustDomains"):
                    err(f"{sp}.{k}", _trust_domains(_go_title(k), vals))
                else:
                    err(f"{sp}.{k}", _empty_values(_go_title(k), vals))
            if any(src.get(k) is not None for k in _TCP_SOURCE_KEYS):
                tcp_from = True
        if tos is not None and len(_list(tos)) == 0:
            err(f"{rp}.to", f"`to` must not be empty, found at rule {i}")
        for j, t in enumerate(_list(tos)):
            tp = f"{rp}.to[{j}]"
            if t is None:
                err(tp, f"`to` must not be nil, found at rule {i}")
                continue
            op = t.get("operation")
            if op is None:
                err(f"{tp}.operation", f"`to.operation` must not be nil, found at rule {i}")
                continue
            to_exist = True
            op_p = f"{tp}.operation"
            if not any(op.get(k) for k in _OP_KEYS):
                err(op_p, f"`to.operation` must not be empty, found at rule {i}")
            for k in ("ports", "notPorts"):
                for e in _ports(_list(op.get(k))):
                    err(f"{op_p}.{k}", e)
            for k in ("ports", "methods", "paths", "hosts", "notPorts", "notMethods", "notPaths",
                      "notHosts"):
                err(f"{op_p}.{k}", _empty_values(_go_title(k), _list(op.get(k))))
            for k in ("paths", "notPaths"):
                err(f"{op_p}.{k}", _path_templates(_go_title(k), _list(op.get(k))))
            if op.get("ports") is not None or op.get("notPorts") is not None:
                tcp_to = True
        for j, w in enumerate(_list(rule.get("when"))):
            wp = f"{rp}.when[{j}]"
            key = str((w or {}).get("key") or "")
            if not key:
                err(f"{wp}.key", "`key` must not be empty")
                continue
            values, not_values = _list(w.get("values")), _list(w.get("notValues"))
            if not values and not not_values:
                err(wp, f"at least one of `values` or `notValues` must be set for key {key}")
                continue
            # Istio checks both lists, so an unknown key is reported for each.
            for what, field, vals in (("value", "values", values), ("notValue", "notValues", not_values)):
                for e in _attribute(key, vals):
                    at = f"{wp}.key" if "attribute" in e else f"{wp}.{field}"
                    err(at, f"invalid `{what}` for `key` {key}: {e}")
        if action == "DENY" and ((from_exist and not to_exist and not tcp_from)
                                 or (to_exist and not tcp_to)):
            out.append(Problem(rp, _DENY_TCP_WARNING, True))
    return out


def validate_authorization_policy(obj: Mapping[str, Any]) -> list[str]:
    """The errors (not warnings) as `field.path: Istio's message` strings; [] when valid."""
    return [str(p) for p in problems(obj) if not p.warning]


def admit(obj: Mapping[str, Any], old: Mapping[str, Any] | None = None) -> list[Cause]:
    """Admission hook: Istio's errors as Kubernetes causes (warnings do not reject)."""
    meta = obj.get("metadata") or {}
    prefix = f"invalid policy {meta.get('name', '')}.{meta.get('namespace', '')}"
    return [Cause(p.field, "FieldValueInvalid", f"{p.field}: {prefix}: {p.message}")
            for p in problems(obj) if not p.warning]
