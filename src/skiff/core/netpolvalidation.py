"""NetworkPolicy validation beyond its schema (Kubernetes' pkg/apis/networking/validation). Pure.

(policy) -> causes with upstream's field paths and messages: label selectors
(ValidateLabelSelector: keys, values, operators), ports (protocol, a number
in 1-65535 or an IANA_SVC_NAME, endPort only with a numeric port and not
below it), peers (at least one of podSelector, namespaceSelector, ipBlock;
ipBlock alone), ipBlock (a valid CIDR; every `except` a valid CIDR strictly
inside it) and policyTypes (Ingress, Egress, at most two). The registry runs
it through the NetworkPolicy strategy (core/apiserver/strategy.py) after the
schema check (core/validation.py); the label rules and their wording are
selectors.py's, shared with label selector parsing.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from skiff.core.bodies import shown
from skiff.core.client import Obj
from skiff.core.selectors import _LABEL_VALUE_MSG, SelectorError, _check_key
from skiff.core.validation import Cause

PROTOCOLS = ("TCP", "UDP", "SCTP")
POLICY_TYPES = ("Ingress", "Egress")
_PORT_NAME_CHARS = re.compile(r"^[-a-z0-9]+$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
INVALID_PORT = "must be between 1 and 65535, inclusive"
INVALID_CIDR = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


def _invalid(path: str, value: Any, message: str) -> Cause:
    shown_value = shown(value) if isinstance(value, str) else str(value)
    return Cause(path, "FieldValueInvalid", f"{path}: Invalid value: {shown_value}: {message}")


def port_name_problems(name: str) -> list[str]:
    """validation.IsValidPortName (IANA_SVC_NAME)."""
    out: list[str] = []
    if len(name) > 15:
        out.append("must be no more than 15 characters")
    if not _PORT_NAME_CHARS.match(name):
        out.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search(r"[a-z]", name):
        out.append("must contain at least one letter (a-z)")
    if "--" in name:
        out.append("must not contain consecutive hyphens")
    if name and (name[0] == "-" or name[-1] == "-"):
        out.append("must not begin or end with a hyphen")
    return out


def _label_name_causes(key: str, path: str) -> list[Cause]:
    try:
        _check_key(key, path)
    except SelectorError as e:
        return [Cause(path, "FieldValueInvalid", str(e))]
    return []


def _label_value_causes(value: str, path: str) -> list[Cause]:
    out: list[Cause] = []
    if len(value) > 63:
        out.append(_invalid(path, value, "must be no more than 63 characters"))
    if not _LABEL_VALUE.match(value):
        out.append(_invalid(path, value, _LABEL_VALUE_MSG))
    return out


def label_selector_causes(sel: Any, path: str) -> list[Cause]:
    """unversionedvalidation.ValidateLabelSelector."""
    if not isinstance(sel, dict):
        return []
    out: list[Cause] = []
    labels = sel.get("matchLabels")
    if isinstance(labels, dict):
        for k, v in labels.items():
            out += _label_name_causes(str(k), f"{path}.matchLabels")
            out += _label_value_causes(str(v), f"{path}.matchLabels")
    exprs = sel.get("matchExpressions")
    for i, e in enumerate(exprs if isinstance(exprs, list) else []):
        if not isinstance(e, dict):
            continue
        p = f"{path}.matchExpressions[{i}]"
        op, values = e.get("operator"), e.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                out.append(Cause(f"{p}.values", "FieldValueRequired",
                                 f"{p}.values: Required value: must be specified when `operator` "
                                 "is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                out.append(Cause(f"{p}.values", "FieldValueForbidden",
                                 f"{p}.values: Forbidden: may not be specified when `operator` is "
                                 "'Exists' or 'DoesNotExist'"))
        else:
            out.append(_invalid(f"{p}.operator", str(op), "not a valid selector operator"))
        out += _label_name_causes(str(e.get("key", "")), f"{p}.key")
        for j, v in enumerate(values if isinstance(values, list) else []):
            out += _label_value_causes(str(v), f"{p}.values[{j}]")
    return out


def _port_causes(port: Any, path: str) -> list[Cause]:
    if not isinstance(port, dict):
        return []
    out: list[Cause] = []
    proto = port.get("protocol")
    if proto is not None and proto not in PROTOCOLS:
        out.append(Cause(f"{path}.protocol", "FieldValueNotSupported",
                         f"{path}.protocol: Unsupported value: {shown(str(proto))}: supported "
                         'values: "TCP", "UDP", "SCTP"'))
    number, end = port.get("port"), port.get("endPort")
    if number is None:
        if end is not None:
            out.append(_invalid(f"{path}.endPort", end,
                                "may not be specified when `port` is not specified"))
    elif isinstance(number, int) and not isinstance(number, bool):
        if not 1 <= number <= 65535:
            out.append(_invalid(f"{path}.port", number, INVALID_PORT))
        if isinstance(end, int) and not isinstance(end, bool):
            if end < number:
                # Upstream shows the port, not endPort, as the invalid value here.
                out.append(_invalid(f"{path}.endPort", number,
                                    "must be greater than or equal to `port`"))
            if not 1 <= end <= 65535:
                out.append(_invalid(f"{path}.endPort", end, INVALID_PORT))
    else:
        if end is not None:
            out.append(_invalid(f"{path}.endPort", end,
                                "may not be specified when `port` is non-numeric"))
        for msg in port_name_problems(str(number)):
            out.append(_invalid(f"{path}.port", str(number), msg))
    return out


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """netutils.ParseCIDRSloppy: host bits may be set (masked off), a prefix is required."""
    if "/" not in text:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _ip_block_causes(block: Any, path: str) -> list[Cause]:
    if not isinstance(block, dict):
        return []
    cidr = str(block.get("cidr") or "")
    if not cidr:
        return [Cause(f"{path}.cidr", "FieldValueRequired", f"{path}.cidr: Required value")]
    net = _network(cidr)
    if net is None:
        return [_invalid(f"{path}.cidr", cidr, INVALID_CIDR)]
    out: list[Cause] = []
    excepts = block.get("except")
    for i, text in enumerate(excepts if isinstance(excepts, list) else []):
        p = f"{path}.except[{i}]"
        ex = _network(str(text))
        if ex is None:
            out.append(_invalid(p, str(text), INVALID_CIDR))
            continue
        if ex.version != net.version or ex.network_address not in net \
                or net.prefixlen >= ex.prefixlen:
            out.append(_invalid(p, str(text), "must be a strict subset of `cidr`"))
    return out


def _peer_causes(peer: Any, path: str) -> list[Cause]:
    if not isinstance(peer, dict):
        return []
    out: list[Cause] = []
    present = [f for f in ("podSelector", "namespaceSelector", "ipBlock") if peer.get(f) is not None]
    out += label_selector_causes(peer.get("podSelector"), f"{path}.podSelector")
    out += label_selector_causes(peer.get("namespaceSelector"), f"{path}.namespaceSelector")
    out += _ip_block_causes(peer.get("ipBlock"), f"{path}.ipBlock")
    if not present:
        out.append(Cause(path, "FieldValueRequired", f"{path}: Required value: must specify a peer"))
    elif len(present) > 1 and "ipBlock" in present:
        out.append(Cause(path, "FieldValueForbidden",
                         f"{path}: Forbidden: may not specify both ipBlock and another peer"))
    return out


def validate_network_policy(obj: Obj) -> list[Cause]:
    """ValidateNetworkPolicySpec: every cause, in upstream's order."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    out = label_selector_causes(spec.get("podSelector"), "spec.podSelector")
    for direction, peers in (("ingress", "from"), ("egress", "to")):
        rules = spec.get(direction)
        for i, rule in enumerate(rules if isinstance(rules, list) else []):
            if not isinstance(rule, dict):
                continue
            p = f"spec.{direction}[{i}]"
            for j, port in enumerate(rule.get("ports") or []):
                out += _port_causes(port, f"{p}.ports[{j}]")
            for j, peer in enumerate(rule.get(peers) or []):
                out += _peer_causes(peer, f"{p}.{peers}[{j}]")
    types = spec.get("policyTypes")
    if isinstance(types, list):
        if len(types) > len(POLICY_TYPES):
            go = "&[]networking.PolicyType{" + ", ".join(f'"{t}"' for t in types) + "}"
            out.append(Cause("spec.policyTypes", "FieldValueInvalid",
                             f"spec.policyTypes: Invalid value: {go}: may not specify more than "
                             "two policyTypes"))
            return out
        for i, t in enumerate(types):
            if t not in POLICY_TYPES:
                out.append(Cause(f"spec.policyTypes[{i}]", "FieldValueNotSupported",
                                 f"spec.policyTypes[{i}]: Unsupported value: {shown(str(t))}: "
                                 'supported values: "Ingress", "Egress"'))
    return out
