"""Apply-time validation of PeerAuthentication (security.istio.io v1beta1 and v1).

Istio rejects a bad PeerAuthentication in two places, and both are kept here, word for
word, each at its field path:
- its CRD (istio/api peer_authentication.proto's kubebuilder rules, Istio 1.22+):
  `spec: Invalid value: "object": portLevelMtls requires selector` (portLevelMtls
  with no selector or empty matchLabels), `spec.portLevelMtls: Invalid value:
  "object": port must be between 1-65535` (a key 0, over 65535, or not a number),
  minProperties 1 on portLevelMtls, the closed mode enum;
- its webhook (pkg/config/validation ValidatePeerAuthentication and
  validateWorkloadSelector): an empty label key, a wildcard in a selector label.
  The webhook's own "mesh/namespace peer authentication cannot have port level mTLS"
  is never reached in Istio (the CRD rule answers first), so it is not repeated.
The schema (mesh/crds.py) has checked types and unknown fields before this runs; the
mode checks are repeated so that the function stands alone.

Pure. Neighbours: peerauth.py reads what passes; mesh/setup.py registers admit() as
the API server's admission validator for PeerAuthentication.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skiff.core.validation import Cause

__all__ = ["admit", "validate_peer_authentication"]

_MODES = ("UNSET", "DISABLE", "PERMISSIVE", "STRICT")
_SUPPORTED = ", ".join(f'"{m}"' for m in _MODES)


def _go_quote(v: Any) -> str:
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mode_cause(path: str, mtls: Any) -> list[Cause]:
    if not isinstance(mtls, Mapping):
        return []
    mode = mtls.get("mode")
    if mode is None or mode in _MODES:
        return []
    return [Cause(path, "FieldValueNotSupported",
                  f"{path}: Unsupported value: {_go_quote(mode)}: supported values: {_SUPPORTED}")]


def _port_ok(key: Any) -> bool:
    if isinstance(key, bool):
        return False
    if isinstance(key, int):
        return 0 < key <= 65535
    s = str(key)
    return s.isascii() and s.isdigit() and 0 < int(s) <= 65535


def validate_peer_authentication(obj: Mapping[str, Any],
                                 old: Mapping[str, Any] | None = None) -> list[Cause]:
    """Every reason Istio (CRD rules + webhook) rejects `obj`, as causes with field paths;
    [] when it is valid. `old` is unused: an update is checked like a create."""
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return []
    out: list[Cause] = []
    sel = spec.get("selector")
    labels = sel.get("matchLabels") if isinstance(sel, Mapping) else None
    labels = labels if isinstance(labels, Mapping) else {}
    for k, v in labels.items():
        if k == "":
            path = "spec.selector.matchLabels"
            out.append(Cause(path, "FieldValueInvalid",
                             f"{path}: empty key is not supported in selector: \"{k}={v}\""))
        if "*" in str(k) or "*" in str(v):
            path = f"spec.selector.matchLabels[{k}]"
            out.append(Cause(path, "FieldValueInvalid",
                             f"{path}: wildcard is not supported in selector: \"{k}={v}\""))
    out += _mode_cause("spec.mtls.mode", spec.get("mtls"))
    levels = spec.get("portLevelMtls")
    if isinstance(levels, Mapping):
        path = "spec.portLevelMtls"
        if not levels:
            out.append(Cause(path, "FieldValueInvalid",
                             f"{path}: Invalid value: 0: {path} in body should have at least "
                             "1 properties"))
        for key, mtls in levels.items():
            out += _mode_cause(f"{path}[{key}].mode", mtls)
        if not all(_port_ok(k) for k in levels):
            out.append(Cause(path, "FieldValueInvalid",
                             f'{path}: Invalid value: "object": port must be between 1-65535'))
        if not labels:
            out.append(Cause("spec", "FieldValueInvalid",
                             'spec: Invalid value: "object": portLevelMtls requires selector'))
    return out


def admit(obj: Mapping[str, Any], old: Mapping[str, Any] | None = None) -> list[Cause]:
    """Admission hook (core/admission.py Validator) for PeerAuthentication."""
    return validate_peer_authentication(obj, old)
