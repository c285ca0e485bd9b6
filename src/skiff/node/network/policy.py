"""NetworkPolicy (networking.k8s.io/v1) -> nftables, as a pure compiler.

compile_policies() turns every NetworkPolicy, Pod and Namespace into one nft
script that replaces `table inet skiff-policy` atomically (nft.py applies it).
Semantics are upstream's:

- A pod is isolated for ingress (egress) once a policy of its namespace selects
  it with Ingress (Egress) in policyTypes; policyTypes defaults to Ingress,
  plus Egress when the policy has egress rules. What an isolated pod may do is
  the union of the rules of all policies selecting it for that direction; a
  policy's ingress (egress) rules count only when its policyTypes names the
  direction. Pods without an IPv4 podIP, finished pods and hostNetwork pods
  are not policed (nor selectable as peers).
- Peers: podSelector (pods of the policy's namespace), namespaceSelector
  (every pod of the matching namespaces; `kubernetes.io/metadata.name` is
  always a namespace label), both in one peer (AND), ipBlock {cidr, except}.
  No `from`/`to` = every peer. Ports: number, named port (resolved on each
  destination pod from its containers' ports and protocol), endPort ranges,
  protocol (TCP default); no ports = every port and protocol.
- pod A -> pod B needs A's egress and B's ingress to allow it; replies of an
  allowed connection pass (`ct state established,related accept` first).
- ipBlock is plain address matching: it matches pod IPs and the bridge
  address too (as Calico does; upstream leaves this implementation-defined),
  so `except` is how a policy carves the pod CIDR out of a wide block.
- Where: pod -> pod (and pod -> outside) in the forward hook, after the
  service proxy's DNAT, so policies see real endpoints as upstream; pod ->
  host (the bridge address: DNS, skiff's API server and router through
  proxier.py's host ports) in the input hook, egress only, matched on the
  connection's original destination (`ct original`) so a host port reads as
  bridge_ip:port, not as the 127.0.0.1 it is DNATed to. Named ports never
  match the host. Traffic the node itself starts (host -> pod: kubelet probes
  and skiff's gateways, which play knative-serving's and the ingress pods)
  is always admitted, as kubelet probes are upstream: it takes the output
  hook, which this table does not police.
- Denied packets are dropped (the connection times out), as most network
  plugins do.

Layout, so that 1,000 pods under 100 policies stay a few thousand set
elements and a short walk per new connection: `map ingress-isolated` /
`egress-isolated` / `egress-host-isolated` (pod IP -> the chain of its
namespace); per namespace, one rule per policy rule and protocol, matching
named sets (`pol<k>-pods` the policy's pods, `pol<k>-in<i>-peers` an interval
set of peer addresses, `pol<k>-in<i>-named` ip . proto . port for named
ports); the chain ends in drop. Rule comments name the policy and rule.

Pure. Neighbours: nft.py (applies), proxier.py (Services, its own table),
core/selectors.py (label matching).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from skiff.core.client import Obj
from skiff.core.selectors import LabelSelector, SelectorError, from_label_selector_object
from skiff.node.network.proxier import replace_table

__all__ = ["PolicyPod", "compile_policies", "policy_types"]

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
_PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
IPv4Net = ipaddress.IPv4Network


@dataclass(frozen=True)
class PolicyPod:
    """What policy needs of a pod: where it is, its labels and its named ports."""
    namespace: str
    name: str
    ip: str
    labels: Mapping[str, str]
    named_ports: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (name, proto)


def policy_types(spec: Obj) -> list[str]:
    """spec.policyTypes with upstream's defaulting (SetDefaults_NetworkPolicySpec)."""
    types = spec.get("policyTypes")
    if types:
        return [str(t) for t in types]
    return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def _policed_pods(pods: Iterable[Obj]) -> list[PolicyPod]:
    out = []
    for pod in pods:
        meta, spec, status = (pod.get("metadata") or {}, pod.get("spec") or {},
                              pod.get("status") or {})
        ip = status.get("podIP") or ""
        if (not ip or spec.get("hostNetwork") or status.get("phase") in ("Succeeded", "Failed")
                or ":" in ip):
            continue
        named: dict[tuple[str, str], int] = {}
        for c in spec.get("containers") or []:
            for p in c.get("ports") or []:
                if p.get("name") and isinstance(p.get("containerPort"), int):
                    named.setdefault((p["name"], p.get("protocol") or "TCP"), p["containerPort"])
        out.append(PolicyPod(meta.get("namespace") or "default", meta.get("name") or "", ip,
                             meta.get("labels") or {}, named))
    return sorted(out, key=lambda p: (p.namespace, p.name))


def _selector(sel: Any) -> LabelSelector | None:
    # An invalid selector is refused by API validation; here it selects nothing rather than
    # failing the whole ruleset.
    try:
        return from_label_selector_object(sel if sel is not None else {})
    except SelectorError:
        return None


@dataclass
class _Peers:
    """Who a rule admits on the far side: None = anyone."""
    pods: list[PolicyPod] | None = None
    nets: list[IPv4Net] = field(default_factory=list)

    @property
    def anyone(self) -> bool:
        return self.pods is None


def _ip_block(block: Obj) -> list[IPv4Net]:
    try:
        net = ipaddress.ip_network(str(block.get("cidr")), strict=False)
    except ValueError:
        return []
    if not isinstance(net, IPv4Net):
        return []
    nets = [net]
    for text in block.get("except") or []:
        try:
            hole = ipaddress.ip_network(str(text), strict=False)
        except ValueError:
            continue
        if not isinstance(hole, IPv4Net):
            continue
        kept: list[IPv4Net] = []
        for n in nets:
            if hole.subnet_of(n):
                kept.extend(n.address_exclude(hole))
            elif not n.subnet_of(hole):
                kept.append(n)
        nets = kept
    return nets


def _peers(items: list[Obj] | None, ns: str, pods: list[PolicyPod],
           ns_labels: Mapping[str, Mapping[str, str]]) -> _Peers:
    if not items:
        return _Peers()
    chosen: dict[str, PolicyPod] = {}
    nets: list[IPv4Net] = []
    for peer in items:
        if peer.get("ipBlock") is not None:
            nets.extend(_ip_block(peer["ipBlock"]))
            continue
        has_pod, has_ns = peer.get("podSelector") is not None, peer.get("namespaceSelector") is not None
        if not (has_pod or has_ns):
            continue
        pod_sel = _selector(peer.get("podSelector"))
        ns_sel = _selector(peer.get("namespaceSelector")) if has_ns else None
        if pod_sel is None or (has_ns and ns_sel is None):
            continue
        for p in pods:
            in_ns = (ns_sel.matches(ns_labels.get(p.namespace, {})) if ns_sel is not None
                     else p.namespace == ns)
            if in_ns and pod_sel.matches(p.labels):
                chosen[p.ip] = p
    return _Peers(list(chosen.values()), nets)


@dataclass
class _Ports:
    """Which ports a rule admits: any, numbers per protocol, whole protocols, names."""
    any: bool = True
    numbers: dict[str, list[str]] = field(default_factory=dict)   # "tcp" -> ["80", "90-99"]
    protocols: set[str] = field(default_factory=set)
    named: list[tuple[str, str]] = field(default_factory=list)    # (name, "TCP")


def _ports(items: list[Obj] | None) -> _Ports:
    if not items:
        return _Ports()
    out = _Ports(any=False)
    for item in items:
        proto_name = item.get("protocol") or "TCP"
        proto = _PROTOCOLS.get(proto_name)
        if proto is None:
            continue
        port = item.get("port")
        if isinstance(port, str) and port.isdigit():
            port = int(port)
        if port is None:
            out.protocols.add(proto)
        elif isinstance(port, int):
            end = item.get("endPort")
            text = f"{port}-{end}" if isinstance(end, int) and end > port else str(port)
            out.numbers.setdefault(proto, []).append(text)
        else:
            out.named.append((str(port), proto_name))
    return out


def _elements(values: Iterable[str]) -> str:
    return ", ".join(values)


def _addr_set(name: str, nets: list[IPv4Net]) -> str:
    body = [f"set {name} {{", "\t\ttype ipv4_addr", "\t\tflags interval"]
    merged = list(ipaddress.collapse_addresses(nets))
    if merged:
        body.append("\t\telements = { " + _elements(
            str(n.network_address) if n.prefixlen == 32 else str(n) for n in merged) + " }")
    return "\n".join(body) + "\n\t}"


def _hash_set(name: str, type_: str, elements: list[str]) -> str:
    body = [f"set {name} {{", f"\t\ttype {type_}"]
    if elements:
        body.append("\t\telements = { " + _elements(elements) + " }")
    return "\n".join(body) + "\n\t}"


def _vmap(name: str, elements: list[str]) -> str:
    body = [f"map {name} {{", "\t\ttype ipv4_addr : verdict"]
    if elements:
        body.append("\t\telements = { " + _elements(elements) + " }")
    return "\n".join(body) + "\n\t}"


def _chain(name: str, rules: list[str], hook: str = "") -> str:
    lines = [f"chain {name} {{"] + ([f"\t\t{hook}"] if hook else []) + [f"\t\t{r}" for r in rules]
    return "\n".join(lines) + "\n\t}"


def _comment(text: str) -> str:
    return 'comment "' + text.replace('"', "'")[:120] + '"'


def compile_policies(policies: list[Obj], pods: list[Obj], namespaces: list[Obj], *,
                     pod_cidr: str, bridge_ip: str, table: str = "skiff-policy") -> str:
    """The nft script that makes `table inet <table>` enforce these policies (module doc).

    pod_cidr and bridge_ip are what the node's network uses; they are recorded
    in the table's comment (ipBlock matching needs neither).
    """
    policed = _policed_pods(pods)
    ns_labels: dict[str, dict[str, str]] = {}
    for namespace in namespaces:
        meta = namespace.get("metadata") or {}
        name = meta.get("name") or ""
        ns_labels[name] = {**(meta.get("labels") or {}), NAMESPACE_NAME_LABEL: name}
    for p in policed:
        ns_labels.setdefault(p.namespace, {NAMESPACE_NAME_LABEL: p.namespace})

    decls: list[str] = []
    # Per namespace and direction, the rules of its chain; per direction, pod IP -> namespace.
    rules: dict[tuple[str, str], list[str]] = {}
    isolated: dict[str, dict[str, str]] = {"ingress": {}, "egress": {}}

    def key(pol: Obj) -> tuple[str, str]:
        meta = pol.get("metadata") or {}
        return (meta.get("namespace") or "default", meta.get("name") or "")

    for k, pol in enumerate(sorted(policies, key=key)):
        ns, pname = key(pol)
        spec = pol.get("spec") or {}
        sel = _selector(spec.get("podSelector"))
        if sel is None:
            continue
        targets = [p for p in policed if p.namespace == ns and sel.matches(p.labels)]
        if not targets:
            continue
        pods_set = f"pol{k}-pods"
        decls.append(_hash_set(pods_set, "ipv4_addr", [p.ip for p in targets]))
        for ptype in policy_types(spec):
            direction = ptype.lower()
            if direction not in isolated:
                continue
            for p in targets:
                isolated[direction][p.ip] = ns
            for i, rule in enumerate(spec.get(direction) or []):
                peers = _peers(rule.get("from" if direction == "ingress" else "to"),
                               ns, policed, ns_labels)
                ports = _ports(rule.get("ports"))
                tag = f"pol{k}-{direction[:2]}{i}"
                comment = _comment(f"{ns}/{pname} {direction}[{i}]")
                compiled = _rule(direction, tag, pods_set, targets, peers, ports, policed, decls)
                rules.setdefault((ns, direction), []).extend(f"{r} {comment}" for r in compiled)
                if direction == "egress":
                    host = _host_rule(tag, peers, ports)
                    rules.setdefault((ns, "egress-host"), []).extend(
                        " ".join(filter(None, (f"ip saddr @{pods_set}", r, "accept", comment)))
                        for r in host)

    chains: list[str] = []
    maps: dict[str, list[str]] = {"ingress-isolated": [], "egress-isolated": [],
                                  "egress-host-isolated": []}
    for direction, members in isolated.items():
        for ip, ns in sorted(members.items(), key=lambda kv: ipaddress.ip_address(kv[0])):
            if direction == "ingress":
                maps["ingress-isolated"].append(f"{ip} : goto ingress-{ns}")
            else:
                maps["egress-isolated"].append(f"{ip} : jump egress-{ns}")
                maps["egress-host-isolated"].append(f"{ip} : goto egress-host-{ns}")
        for ns in sorted(set(members.values())):
            chains.append(_chain(f"{direction}-{ns}", [*rules.get((ns, direction), []), "drop"]))
            if direction == "egress":
                chains.append(_chain(f"egress-host-{ns}",
                                     [*rules.get((ns, "egress-host"), []), "drop"]))

    base = [
        f'comment "NetworkPolicy for pods in {pod_cidr} (bridge {bridge_ip})"',
        *(_vmap(name, elems) for name, elems in maps.items()),
        *decls,
        _chain("forward", ["ct state established,related accept",
                           "ip saddr vmap @egress-isolated",
                           "ip daddr vmap @ingress-isolated"],
               "type filter hook forward priority filter; policy accept;"),
        _chain("input", ["ct state established,related accept",
                         "ip saddr vmap @egress-host-isolated"],
               "type filter hook input priority filter; policy accept;"),
    ]
    return replace_table("inet", table, [*base, *chains])


def _rule(direction: str, tag: str, pods_set: str, targets: list[PolicyPod], peers: _Peers,
          ports: _Ports, policed: list[PolicyPod], decls: list[str]) -> list[str]:
    """nft rules (without verdict's comment) for one policy rule in the forward path."""
    ingress = direction == "ingress"
    local, remote = ("daddr", "saddr") if ingress else ("saddr", "daddr")
    verdict = "accept" if ingress else "return"   # egress allowed: go on to the ingress check
    head = f"ip {local} @{pods_set}"
    if not peers.anyone:
        nets = [IPv4Net(p.ip) for p in peers.pods or []] + peers.nets
        if not nets:
            return []
        decls.append(_addr_set(f"{tag}-peers", nets))
        head += f" ip {remote} @{tag}-peers"
    if ports.any:
        return [f"{head} {verdict}"]
    out = [f"{head} meta l4proto {proto} th dport {{ {_elements(nums)} }} {verdict}"
           for proto, nums in sorted(ports.numbers.items())]
    out += [f"{head} meta l4proto {proto} {verdict}" for proto in sorted(ports.protocols)]
    if ports.named:
        # Named ports resolve on the destination: the policy's pods for ingress, the
        # peers (any pod, when the rule has no `to`) for egress.
        dests = targets if ingress else (policed if peers.anyone else peers.pods or [])
        elems = sorted({f"{p.ip} . {_PROTOCOLS[proto]} . {p.named_ports[(name, proto)]}"
                        for p in dests for name, proto in ports.named
                        if (name, proto) in p.named_ports})
        if elems:
            decls.append(_hash_set(f"{tag}-named", "ipv4_addr . inet_proto . inet_service", elems))
            out.append(f"{head} ip daddr . meta l4proto . th dport @{tag}-named {verdict}")
    return out


def _host_rule(tag: str, peers: _Peers, ports: _Ports) -> list[str]:
    """Match parts of one egress rule for pod -> host (input hook), on the original destination.

    The peers set (declared by _rule for the forward path) holds addresses; pod IPs in it
    never equal the host's, so only ipBlocks (or no `to`) can admit the host.
    """
    if not peers.anyone and not peers.nets:
        return []
    head = "" if peers.anyone else f"ct original ip daddr @{tag}-peers"
    if ports.any:
        return [head]
    out = [f"{head} meta l4proto {proto} ct original proto-dst {{ {_elements(nums)} }}"
           for proto, nums in sorted(ports.numbers.items())]
    out += [f"{head} meta l4proto {proto}" for proto in sorted(ports.protocols)]
    return [r.strip() for r in out]
