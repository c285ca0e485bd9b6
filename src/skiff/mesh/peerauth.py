"""PeerAuthentication and DestinationRule TLS: which mTLS a sidecar accepts, which TLS it sends.

Inbound, `effective_mtls` is Istio's ComposePeerAuthentication (pilot/pkg/security/
authn/policy_applier.go) over the policies getConfigsForWorkload (pilot/pkg/model/
authentication.go) picks for a workload:
- levels: workload (a selector whose matchLabels are a subset of the workload's
  labels, in the workload's namespace) > namespace (no selector or empty
  matchLabels, same namespace) > mesh (no selector, root namespace). A policy with a
  selector in the root namespace is ignored, also for workloads of the root
  namespace itself (Istio: "PeerAuthentication policies with workload selectors
  are ignored when deployed in the root namespace");
- at each level only the oldest policy counts (creationTimestamp, then name, as
  Istio's sortConfigByCreationTime); a younger one never fills in for an UNSET;
- UNSET (or no `mtls`) inherits from the level above; above the mesh level is the
  mesh's own mode, `mesh_default` (Maistra: STRICT when the SMCP sets
  spec.security.dataPlane.mtls, MeshConfig.mtls_mode() in membership.py);
- portLevelMtls counts only on the chosen workload policy; its keys are the
  workload's (target) ports; a port entry with UNSET takes the policy's resolved mode.

Outbound, `outbound_tls` is the TLS mode a client sidecar originates to a host:port:
the DestinationRule Istio's PushContext.destinationRule picks (client namespace,
then the destination service's namespace, then the root namespace; exportTo
honoured; host exact before wildcard, the most specific wildcard first; rules for
one host in one namespace consolidated oldest first), its trafficPolicy merged with
portLevelSettings for the service port (and a subset's policy, as MergeTrafficPolicy
does); without a `tls` there, auto mTLS (cluster_builder's buildAutoMtlsSettings).

Pure: no I/O, no clock. Neighbours: mesh/crds.py (the schemas), peerauth_validate.py
(the apply-time checks), membership.py (root namespace and the mesh mode); the
sidecars' inbound listeners and the outbound side read the answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "MESH_DEFAULT",
    "MODES",
    "MtlsMode",
    "destination_rule_for",
    "effective_mtls",
    "outbound_tls",
    "port_level_modes",
    "resolve_host",
]

MODES = ("UNSET", "DISABLE", "PERMISSIVE", "STRICT")
MESH_DEFAULT = "mesh default"
_EPOCH = datetime.min.replace(tzinfo=UTC)   # Go's zero time: older than any object


@dataclass(frozen=True)
class MtlsMode:
    """The inbound mTLS mode of one workload port and what decided it."""

    mode: str            # "STRICT" | "PERMISSIVE" | "DISABLE"
    source: str          # "<namespace>/<name>" of the deciding PeerAuthentication, or "mesh default"
    port_level: bool = False   # decided by a portLevelMtls entry with a mode of its own


# --- shared helpers ----------------------------------------------------------------------


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    m = obj.get("metadata")
    return m if isinstance(m, Mapping) else {}


def _created(obj: Mapping[str, Any]) -> datetime:
    raw = _meta(obj).get("creationTimestamp")
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=UTC)
    if isinstance(raw, str) and raw:
        try:
            t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return _EPOCH
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    return _EPOCH


def _age_key(obj: Mapping[str, Any]) -> tuple[datetime, str, str]:
    m = _meta(obj)
    return _created(obj), str(m.get("name", "")), str(m.get("namespace", ""))


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    s = obj.get("spec")
    return s if isinstance(s, Mapping) else {}


def _ref(obj: Mapping[str, Any]) -> str:
    m = _meta(obj)
    return f"{m.get('namespace', '')}/{m.get('name', '')}"


def _match_labels(spec: Mapping[str, Any], key: str = "selector") -> Mapping[str, Any]:
    sel = spec.get(key)
    if not isinstance(sel, Mapping):
        return {}
    labels = sel.get("matchLabels")
    return labels if isinstance(labels, Mapping) else {}


def _subset(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    return all(k in labels and labels[k] == v for k, v in selector.items())


# --- PeerAuthentication ------------------------------------------------------------------


def _mode_of(mtls: Any) -> str:
    """A MutualTLS message's mode; UNSET when absent (Istio's isMtlsModeUnset)."""
    if not isinstance(mtls, Mapping):
        return "UNSET"
    mode = mtls.get("mode")
    return str(mode) if mode in MODES else "UNSET"


def _port_key(key: Any) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key
    if isinstance(key, str) and key.isascii() and key.isdigit():
        return int(key)
    return None


def _levels(peer_auths: Iterable[Mapping[str, Any]], workload_ns: str,
            workload_labels: Mapping[str, str], root_namespace: str
            ) -> tuple[Mapping[str, Any] | None, Mapping[str, Any] | None, Mapping[str, Any] | None]:
    """The oldest mesh-, namespace- and workload-level policy that applies (or None each)."""
    mesh = namespace = workload = None
    for pa in sorted(peer_auths, key=_age_key):
        ns = str(_meta(pa).get("namespace", ""))
        if ns not in (workload_ns, root_namespace):
            continue
        selector = _match_labels(_spec(pa))
        if not selector:
            if ns == root_namespace:
                mesh = mesh or pa
            else:
                namespace = namespace or pa
        elif ns != root_namespace and _subset(selector, workload_labels):
            workload = workload or pa
    return mesh, namespace, workload


def _compose(peer_auths: Iterable[Mapping[str, Any]], workload_ns: str,
             workload_labels: Mapping[str, str], root_namespace: str, mesh_default: str
             ) -> tuple[MtlsMode, Mapping[str, Any] | None]:
    mesh, namespace, workload = _levels(peer_auths, workload_ns, workload_labels, root_namespace)
    out = MtlsMode(mesh_default, MESH_DEFAULT)
    for pa in (mesh, namespace, workload):
        if pa is not None and (mode := _mode_of(_spec(pa).get("mtls"))) != "UNSET":
            out = MtlsMode(mode, _ref(pa))
    return out, workload


def effective_mtls(peer_auths: Iterable[Mapping[str, Any]], workload_ns: str,
                   workload_labels: Mapping[str, str], port: int, *,
                   root_namespace: str = "istio-system",
                   mesh_default: str = "PERMISSIVE") -> MtlsMode:
    """The mTLS mode a workload's sidecar enforces on inbound `port` (its target port)."""
    out, workload = _compose(peer_auths, workload_ns, workload_labels, root_namespace,
                             mesh_default)
    if workload is None:
        return out
    levels = _spec(workload).get("portLevelMtls")
    if isinstance(levels, Mapping):
        for key, mtls in levels.items():
            if _port_key(key) == port:
                mode = _mode_of(mtls)
                if mode != "UNSET":
                    return MtlsMode(mode, _ref(workload), port_level=True)
                return out
    return out


def port_level_modes(peer_auths: Iterable[Mapping[str, Any]], workload_ns: str,
                     workload_labels: Mapping[str, str], *,
                     root_namespace: str = "istio-system",
                     mesh_default: str = "PERMISSIVE") -> tuple[MtlsMode, dict[int, MtlsMode]]:
    """The workload's mode and its per-port exceptions (Istio's MergedPeerAuthentication):
    what an inbound listener needs to build one filter chain per listed port."""
    pas = list(peer_auths)
    out, workload = _compose(pas, workload_ns, workload_labels, root_namespace, mesh_default)
    per_port: dict[int, MtlsMode] = {}
    levels = _spec(workload).get("portLevelMtls") if workload is not None else None
    if isinstance(levels, Mapping):
        for key in levels:
            p = _port_key(key)
            if p is not None:
                per_port[p] = effective_mtls(pas, workload_ns, workload_labels, p,
                                             root_namespace=root_namespace,
                                             mesh_default=mesh_default)
    return out, per_port


# --- DestinationRule ---------------------------------------------------------------------


def resolve_host(host: str, namespace: str, domain: str = "cluster.local") -> str:
    """Istio's ResolveShortnameToFQDN: a name without a dot is `<name>.<ns>.svc.<domain>`;
    `*`, IP addresses and anything with a dot are kept (so `reviews.bar` stays as written)."""
    h = host.strip().lower()
    if not h or h == "*" or "." in h or ":" in h:
        return h
    return f"{h}.{namespace}.svc.{domain}"


def _host_matches(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return host.endswith(pattern[1:])
    return pattern == host


def _most_specific(host: str, rules: list[tuple[str, Mapping[str, Any]]]
                   ) -> list[Mapping[str, Any]]:
    """MostSpecificHostMatch: the rules for the exact host, else for the longest matching
    wildcard; oldest first."""
    exact = [r for h, r in rules if h == host]
    if exact:
        return exact
    wild = [(h, r) for h, r in rules if h.startswith("*") and _host_matches(h, host)]
    if not wild:
        return []
    best = max(len(h) for h, _ in wild)
    return [r for h, r in wild if len(h) == best]


def _export_to(dr: Mapping[str, Any]) -> list[str]:
    raw = _spec(dr).get("exportTo")
    return [str(x) for x in raw] if isinstance(raw, list) else []


def _visible_locally(dr: Mapping[str, Any], ns: str) -> bool:
    exp = _export_to(dr)
    return not exp or "*" in exp or "." in exp or ns in exp


def _exported(dr: Mapping[str, Any], ns: str) -> bool:
    """Not private to its own namespace (Istio's exportedByNamespace index)."""
    exp = _export_to(dr)
    return not exp or any(e not in (".", ns) for e in exp)


def _exported_to(dr: Mapping[str, Any], client_ns: str) -> bool:
    exp = _export_to(dr)
    return not exp or "*" in exp or client_ns in exp


def _service_namespace(host: str, domain: str) -> str:
    parts = host.split(".")
    suffix = ["svc", *domain.split(".")]
    if len(parts) == 2 + len(suffix) and parts[2:] == suffix:
        return parts[1]
    return ""


def destination_rule_for(destination_rules: Iterable[Mapping[str, Any]], host: str,
                         client_ns: str, *, root_namespace: str = "istio-system",
                         client_labels: Mapping[str, str] | None = None,
                         domain: str = "cluster.local") -> list[Mapping[str, Any]]:
    """The DestinationRules Istio applies to `host` for a client in `client_ns`, oldest first
    (several only where rules for the same host in one namespace are consolidated).

    Rules with a workloadSelector apply only to clients of their own namespace whose labels
    they select (`client_labels`); Istio lets such a rule stand before the namespace's
    selector-less rules for that host."""
    fqdn = resolve_host(host, client_ns, domain)
    by_ns: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for dr in sorted(destination_rules, key=_age_key):
        ns = str(_meta(dr).get("namespace", ""))
        spec = _spec(dr)
        selector = _match_labels(spec, "workloadSelector")
        if spec.get("workloadSelector") is not None:
            if ns != client_ns or client_labels is None or not selector \
                    or not _subset(selector, client_labels):
                continue
        h = resolve_host(str(spec.get("host") or ""), ns, domain)
        if h:
            by_ns.setdefault(ns, []).append((h, dr))

    def pick(ns: str, keep: Any) -> list[Mapping[str, Any]]:
        found = _most_specific(fqdn, [(h, r) for h, r in by_ns.get(ns, []) if keep(r)])
        # a selected (workloadSelector) rule stands before the selector-less ones
        return sorted(found, key=lambda r: _spec(r).get("workloadSelector") is None)

    # 1. the client's own namespace (the root namespace's private rules when it is the root)
    if client_ns != root_namespace:
        found = pick(client_ns, lambda r: _visible_locally(r, client_ns))
    else:
        found = pick(root_namespace, lambda r: not _exported(r, root_namespace))
    if found:
        return found
    # 2. the destination service's namespace, 3. the root namespace: rules exported to the client
    for ns in (_service_namespace(fqdn, domain), root_namespace):
        if ns:
            found = pick(ns, lambda r, ns=ns: _exported(r, ns) and _exported_to(r, client_ns))
            if found:
                return found
    return []


def _port_tls(policy: Any, port: int) -> Any:
    """MergeTrafficPolicy(nil, policy, port).tls: portLevelSettings[port].tls over tls."""
    if not isinstance(policy, Mapping):
        return None
    tls = policy.get("tls")
    for pls in policy.get("portLevelSettings") or []:
        if not isinstance(pls, Mapping):
            continue
        sel = pls.get("port")
        if isinstance(sel, Mapping) and sel.get("number") == port:
            if pls.get("tls") is not None:
                tls = pls["tls"]
            break
    return tls


def outbound_tls(destination_rules: Iterable[Mapping[str, Any]], host: str, port: int,
                 client_ns: str, *, root_namespace: str = "istio-system",
                 auto_mtls: bool = True, destination_has_sidecar: bool = True,
                 destination_mtls: str = "PERMISSIVE", subset: str | None = None,
                 client_labels: Mapping[str, str] | None = None,
                 domain: str = "cluster.local") -> str:
    """The TLS a client sidecar in `client_ns` originates to `host`:`port` (the service port):
    "ISTIO_MUTUAL", "DISABLE", "SIMPLE" or "MUTUAL".

    A DestinationRule `tls` (a `tls` without `mode` is DISABLE, the proto's zero value)
    decides; else auto mTLS: ISTIO_MUTUAL to a destination with a sidecar whose inbound mode
    (`destination_mtls`, from effective_mtls) is not DISABLE, plain text otherwise."""
    tls: Any = None
    for dr in destination_rule_for(destination_rules, host, client_ns,
                                   root_namespace=root_namespace, client_labels=client_labels,
                                   domain=domain):
        policy = _spec(dr).get("trafficPolicy")
        # consolidated rules: the oldest rule with a trafficPolicy keeps it
        if isinstance(policy, Mapping):
            tls = _port_tls(policy, port)
            break
    if subset is not None:
        for dr in destination_rule_for(destination_rules, host, client_ns,
                                       root_namespace=root_namespace,
                                       client_labels=client_labels, domain=domain):
            for s in _spec(dr).get("subsets") or []:
                if isinstance(s, Mapping) and s.get("name") == subset:
                    sub_tls = _port_tls(s.get("trafficPolicy"), port)
                    if sub_tls is not None:
                        tls = sub_tls
                    break
            else:
                continue
            break
    if isinstance(tls, Mapping):
        mode = str(tls.get("mode") or "DISABLE")
        return mode if mode in ("DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL") else "DISABLE"
    if auto_mtls and destination_has_sidecar and destination_mtls != "DISABLE":
        return "ISTIO_MUTUAL"
    return "DISABLE"
