"""Validation of built-in core/v1 kinds beyond their schema (Kubernetes' pkg/apis/core/validation).

Pure: (new object, old object or None) -> causes, with upstream's field paths
and messages. The registry (core/apiserver/registry.py) runs these for the
built-in kinds after the structural schema check (core/validation.py); a
rejected write changes nothing. Also the decoding rule Go applies to Secret
data before validation can run: every value is standard base64 (a 400, as
kube-apiserver's decoder answers), and a Service's ClusterIP fields as its
REST storage reconciles them before allocating (normalize_cluster_ips; the
allocation itself is core/apiserver/strategy.py's, over core/clusterip.py).
Pod specs (a Pod's, a Deployment's or ReplicaSet's template): the container
lifecycle handlers, each naming exactly one action (pod_spec_causes).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

from skiff.core.bodies import shown
from skiff.core.client import Obj
from skiff.core.clusterip import INVALID_IP, NONE, family_of, parse_ip
from skiff.core.validation import Cause, dns1123_subdomain

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


# --- Service: the ClusterIP fields (pkg/apis/core/validation, registry/core/service) ---------


def go_strings(values: Any) -> str:
    """A []string as Go's %#v prints it in a field error: []string{"a", "b"}."""
    items = values if isinstance(values, list) else []
    return "[]string{" + ", ".join(shown(str(v)) for v in items) + "}"


def _spec(obj: Obj | None) -> Obj:
    spec = (obj or {}).get("spec")
    return spec if isinstance(spec, dict) else {}


def service_type(obj: Obj | None) -> str:
    return str(_spec(obj).get("type") or "ClusterIP")


def needs_cluster_ip(obj: Obj | None) -> bool:
    return service_type(obj) != "ExternalName"


def cluster_ips(obj: Obj | None) -> list[str]:
    ips = _spec(obj).get("clusterIPs")
    return [str(i) for i in ips] if isinstance(ips, list) else []


def is_headless(obj: Obj | None) -> bool:
    return cluster_ips(obj) == [NONE]


def normalize_cluster_ips(new: Obj, old: Obj | None) -> None:
    """What the Service REST storage does before allocating: on create, clusterIP alone
    becomes clusterIPs; on update, fields only the other type uses are dropped when the type
    changes (dropTypeDependentFields), allocated values a client left out are kept
    (patchAllocatedValues), and clusterIP and clusterIPs are kept in step
    (normalizeClusterIPs)."""
    spec = new.get("spec")
    if not isinstance(spec, dict):
        return
    if old is None:
        if spec.get("clusterIP") and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [spec["clusterIP"]]
        return
    old_spec = _spec(old)
    same_ips = cluster_ips(new) == cluster_ips(old)
    if needs_cluster_ip(old) and not needs_cluster_ip(new):
        if same_ips:
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        if spec.get("ipFamilies") == old_spec.get("ipFamilies"):
            spec.pop("ipFamilies", None)
        if spec.get("ipFamilyPolicy") == old_spec.get("ipFamilyPolicy"):
            spec.pop("ipFamilyPolicy", None)
        return
    if needs_cluster_ip(old) and needs_cluster_ip(new):
        if not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
        if not spec.get("clusterIPs") and old_spec.get("clusterIPs"):
            spec["clusterIPs"] = list(old_spec["clusterIPs"])
    if old_spec.get("clusterIPs") and not spec.get("clusterIPs") \
            and old_spec.get("clusterIP") == spec.get("clusterIP"):
        spec["clusterIPs"] = list(old_spec["clusterIPs"])
    if old_spec.get("clusterIP") != spec.get("clusterIP") and cluster_ips(new) == cluster_ips(old):
        if old_spec.get("clusterIP") and not spec.get("clusterIP"):
            spec.pop("clusterIPs", None)
        else:
            spec["clusterIPs"] = [spec.get("clusterIP")]


def default_ip_families(new: Obj, old: Obj | None, family: str) -> None:
    """initIPFamilyFields for a single-stack cluster of `family`: the policy from the old
    object, else RequireDualStack for a headless Service without a selector, else
    SingleStack; the families from the clusterIPs given, else the cluster's."""
    spec = new.get("spec")
    if not isinstance(spec, dict) or not needs_cluster_ip(new):
        return
    headless_selectorless = spec.get("clusterIP") == NONE and not spec.get("selector")
    if not spec.get("ipFamilyPolicy"):
        old_policy = _spec(old).get("ipFamilyPolicy") if old is not None else None
        spec["ipFamilyPolicy"] = old_policy or (
            "RequireDualStack" if headless_selectorless else "SingleStack")
    families = spec.get("ipFamilies")
    if not isinstance(families, list):
        families = []
    ips = cluster_ips(new)
    if ips and ips[0] != NONE:
        for i, ip in enumerate(ips):
            if i >= len(families) and parse_ip(ip) is not None:
                families.append(family_of(ip))
    if not families:
        families = [family]
    if headless_selectorless and len(families) < 2 and spec["ipFamilyPolicy"] != "SingleStack":
        families.append("IPv6" if families[0] == "IPv4" else "IPv4")
    spec["ipFamilies"] = families


def _external_name_causes(obj: Obj) -> list[Cause]:
    spec = _spec(obj)
    out: list[Cause] = []
    for f in ("clusterIPs", "ipFamilies", "ipFamilyPolicy"):
        if spec.get(f):
            out.append(Cause(f"spec.{f}", "FieldValueForbidden",
                             f"spec.{f}: Forbidden: may not be set for ExternalName services"))
    cname = str(spec.get("externalName") or "").removesuffix(".")
    if not cname:
        out.append(Cause("spec.externalName", "FieldValueRequired",
                         "spec.externalName: Required value"))
    elif (problem := dns1123_subdomain(cname)) is not None:
        out.append(Cause("spec.externalName", "FieldValueInvalid",
                         f"spec.externalName: Invalid value: {shown(cname)}: {problem}"))
    return out


def _cluster_ip_causes(obj: Obj, family: str) -> list[Cause]:
    """ValidateServiceClusterIPsRelatedFields, and what a single-stack cluster cannot give."""
    spec = _spec(obj)
    ips = cluster_ips(obj)
    field = "spec.clusterIPs"
    out: list[Cause] = []

    def invalid(path: str, value: str, message: str) -> None:
        out.append(Cause(path, "FieldValueInvalid", f"{path}: Invalid value: {value}: {message}"))

    cluster_ip = str(spec.get("clusterIP") or "")
    if cluster_ip:
        if not ips:
            out.append(Cause(field, "FieldValueRequired", f"{field}: Required value"))
        elif ips[0] != cluster_ip:
            invalid(field, go_strings(ips), "first value must match `clusterIP`")
    elif ips:
        invalid(field, go_strings(ips), "must be empty when `clusterIP` is not specified")
    bad_ip = False
    for i, ip in enumerate(ips):
        if i == 0 and ip == NONE:
            if len(ips) > 1:
                bad_ip = True
                invalid(field, go_strings(ips), "'None' must be the first and only value")
            continue
        if parse_ip(ip) is None:
            bad_ip = True
            invalid(f"{field}[{i}]", shown(ip), INVALID_IP)
    if len(ips) > 2:
        invalid(field, go_strings(ips), "may only hold up to 2 values")
    if bad_ip:
        return out
    if len(ips) > 1 and len({family_of(ip) for ip in ips}) != len(ips):
        invalid(field, go_strings(ips), "may specify no more than one IP for each IP family")
    raw_families = spec.get("ipFamilies")
    families: list[Any] = raw_families if isinstance(raw_families, list) else []
    policy = spec.get("ipFamilyPolicy")
    if ips != [NONE]:
        for i, ip in enumerate(ips[: len(families)]):
            if families[i] == "IPv4" and family_of(ip) == "IPv6":
                invalid(f"{field}[{i}]", shown(ip),
                        f"expected an IPv4 value as indicated by `ipFamilies[{i}]`")
            if families[i] == "IPv6" and family_of(ip) == "IPv4":
                invalid(f"{field}[{i}]", shown(ip),
                        f"expected an IPv6 value as indicated by `ipFamilies[{i}]`")
    if out:
        return out
    if policy == "SingleStack":
        if len(ips) == 2:
            invalid("spec.ipFamilyPolicy", shown(policy), "must be 'RequireDualStack' or "
                    "'PreferDualStack' when multiple cluster IPs are specified")
        if len(families) == 2:
            invalid("spec.ipFamilyPolicy", shown(policy), "must be 'RequireDualStack' or "
                    "'PreferDualStack' when multiple IP families are specified")
    if cluster_ip == NONE and not spec.get("selector"):
        return out   # headless and selectorless: any families, as upstream allows
    if policy == "RequireDualStack":
        invalid("spec.ipFamilyPolicy", shown(policy),
                "this cluster is not configured for dual-stack services")
    for i, fam in enumerate(families):
        if fam != family:
            invalid(f"spec.ipFamilies[{i}]", shown(str(fam)), "not configured on this cluster")
    return out


def _immutable_ip_causes(new: Obj, old: Obj) -> list[Cause]:
    """validateUpgradeDowngradeClusterIPs on a single-stack cluster."""
    if not needs_cluster_ip(new) or not needs_cluster_ip(old):
        return []
    if is_headless(new) and is_headless(old):
        return []
    new_ips, old_ips = cluster_ips(new), cluster_ips(old)
    out: list[Cause] = []
    if not new_ips and old_ips:
        out.append(Cause("spec.clusterIPs[0]", "FieldValueInvalid",
                         f"spec.clusterIPs[0]: Invalid value: {go_strings(new_ips)}: primary "
                         "clusterIP can not be unset"))
    elif old_ips and new_ips[0] != old_ips[0]:
        out.append(Cause("spec.clusterIPs[0]", "FieldValueInvalid",
                         f"spec.clusterIPs[0]: Invalid value: {go_strings(new_ips)}: may not "
                         "change once set"))
    return out


def validate_service_ips(new: Obj, old: Obj | None, family: str) -> list[Cause]:
    """The ClusterIP, ipFamilies and ExternalName rules of ValidateService(Update)."""
    if not isinstance(new.get("spec"), dict):
        return []
    if not needs_cluster_ip(new):
        return _external_name_causes(new)
    out = _cluster_ip_causes(new, family)
    if old is not None:
        out += _immutable_ip_causes(new, old)
    return out


# --- Pod specs: container lifecycle handlers (validateLifecycle, validateHandler) -------------

_HANDLER_ACTIONS = ("exec", "httpGet", "tcpSocket", "sleep")   # upstream's order
_MORE_THAN_ONE = "may not specify more than 1 handler type"


def _action_causes(action: str, value: Any, path: str, grace: Any) -> list[Cause]:
    """validateExecAction (a command) and validateSleepAction (within the grace period)."""
    if action == "exec" and not (value or {}).get("command"):
        return [Cause(f"{path}.command", "FieldValueRequired", f"{path}.command: Required value")]
    seconds = (value or {}).get("seconds") if action == "sleep" else None
    if isinstance(seconds, int) and isinstance(grace, int) and not 0 < seconds <= grace:
        return [Cause(path, "FieldValueInvalid",
                      f"{path}: Invalid value: {seconds}: must be greater than 0 and less than "
                      f"terminationGracePeriodSeconds ({grace})")]
    return []


def _handler_causes(handler: Any, path: str, grace: Any) -> list[Cause]:
    """A LifecycleHandler names exactly one action (tcpSocket passes here; the kubelet then
    fails to run it)."""
    if not isinstance(handler, dict):
        return []
    out: list[Cause] = []
    seen = False
    for action in _HANDLER_ACTIONS:
        if handler.get(action) is None:
            continue
        p = f"{path}.{action}"
        if seen:
            out.append(Cause(p, "FieldValueForbidden", f"{p}: Forbidden: {_MORE_THAN_ONE}"))
            continue
        seen = True
        out += _action_causes(action, handler[action], p, grace)
    if not seen:
        out.append(Cause(path, "FieldValueRequired",
                         f"{path}: Required value: must specify a handler type"))
    return out


def _lifecycle_causes(lifecycle: Any, path: str, grace: Any) -> list[Cause]:
    if not isinstance(lifecycle, dict):
        return []
    return [c for hook in ("postStart", "preStop")
            for c in _handler_causes(lifecycle.get(hook), f"{path}.{hook}", grace)]


def _containers_of(spec: Obj) -> tuple[Any, Any]:
    return spec.get("initContainers"), spec.get("containers")


def pod_spec_causes(spec: Any, path: str, old_spec: Any = None) -> list[Cause]:
    """The lifecycle rules of ValidatePodSpec over `spec` at `path` ("spec",
    "spec.template.spec"). On update, containers the write leaves as they were are not judged
    again (what was stored before these rules stays writable: its status, its finalizing)."""
    if not isinstance(spec, dict):
        return []
    if isinstance(old_spec, dict) and _containers_of(spec) == _containers_of(old_spec):
        return []
    grace = spec.get("terminationGracePeriodSeconds", 30)
    out: list[Cause] = []
    for i, c in enumerate(spec.get("initContainers") or []):
        if not isinstance(c, dict) or c.get("lifecycle") is None:
            continue
        p = f"{path}.initContainers[{i}].lifecycle"
        if c.get("restartPolicy") == "Always":      # a sidecar has hooks as containers do
            out += _lifecycle_causes(c["lifecycle"], p, grace)
        else:
            out.append(Cause(p, "FieldValueForbidden", f"{p}: Forbidden: may not be set for "
                             "init containers without restartPolicy=Always"))
    for i, c in enumerate(spec.get("containers") or []):
        if isinstance(c, dict):
            out += _lifecycle_causes(c.get("lifecycle"), f"{path}.containers[{i}].lifecycle",
                                     grace)
    return out


def validate_pod(new: Obj, old: Obj | None) -> list[Cause]:
    return pod_spec_causes(new.get("spec"), "spec", (old or {}).get("spec"))


def validate_pod_template(new: Obj, old: Obj | None) -> list[Cause]:
    """A Deployment's or ReplicaSet's spec.template.spec, by the same rules."""
    def template_spec(obj: Obj | None) -> Any:
        return (((obj or {}).get("spec") or {}).get("template") or {}).get("spec")
    return pod_spec_causes(template_spec(new), "spec.template.spec", template_spec(old))


VALIDATORS: dict[str, Callable[[Obj, Obj | None], list[Cause]]] = {
    "Secret": validate_secret,
    "ConfigMap": validate_configmap,
}
