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
named sets (`pol<k>-pods` the policy's pods, `pol<k>-in<i>-peers` the peer
pods' addresses, `pol<k>-in<i>-cidrs` an interval set of its ipBlocks,
`pol<k>-in<i>-named` ip . proto . port for named ports; a set whose content
an earlier one already has is not declared again); the chain ends in drop.
Rule comments name the policy and rule. Pods are sorted by address once, and
every set keeps that order, so the script is deterministic without re-sorting.

Pure. Neighbours: nft.py (applies), proxier.py (Services, its own table),
core/selectors.py (label matching).
"""

from __future__ import annotations

import ipaddress
import socket
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
    label_key: tuple[tuple[str, str], ...] = ()       # sorted labels: a memo key


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
        labels = meta.get("labels") or {}
        out.append(PolicyPod(meta.get("namespace") or "default", meta.get("name") or "", ip,
                             labels, named, tuple(sorted(labels.items()))))
    # By address: every set and map built from this order is sorted without sorting again.
    return sorted(out, key=lambda p: _ip_key(p.ip))


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


class _Matcher:
    """Label-selector matching, memoised: pods share few distinct label sets."""

    def __init__(self, pods: list[PolicyPod], ns_labels: Mapping[str, Mapping[str, str]]) -> None:
        self.by_ns: dict[str, list[PolicyPod]] = {}
        for p in pods:
            self.by_ns.setdefault(p.namespace, []).append(p)
        self.ns_labels = ns_labels
        self._cache: dict[LabelSelector, dict[tuple[tuple[str, str], ...], bool]] = {}

    def pods(self, ns_sel: LabelSelector | None, pod_sel: LabelSelector,
             ns: str) -> list[PolicyPod]:
        """Pods matching pod_sel in ns (ns_sel None) or in every namespace ns_sel matches."""
        spaces = ([ns] if ns_sel is None else
                  [n for n in self.by_ns if ns_sel.matches(self.ns_labels.get(n, {}))])
        if pod_sel.empty:
            return [p for n in spaces for p in self.by_ns.get(n, ())]
        memo = self._cache.setdefault(pod_sel, {})
        for n in spaces:
            for p in self.by_ns.get(n, ()):
                if p.label_key not in memo:
                    memo[p.label_key] = pod_sel.matches(p.labels)
        return [p for n in spaces for p in self.by_ns.get(n, ()) if memo[p.label_key]]


def _peers(items: list[Obj] | None, ns: str, matcher: _Matcher) -> _Peers:
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
        for p in matcher.pods(ns_sel, pod_sel, ns):
            chosen[p.ip] = p
    pods = list(chosen.values())
    if len(items) > 1:
        pods.sort(key=lambda p: _ip_key(p.ip))
    return _Peers(pods, nets)


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


def _ip_key(ip: str) -> bytes:
    return socket.inet_aton(ip)


class _Sets:
    """Named sets, declared once per distinct content (many rules admit the same peers)."""

    def __init__(self) -> None:
        self.decls: list[str] = []
        self._names: dict[tuple[str, tuple[str, ...]], str] = {}

    def add(self, name: str, type_: str, elements: list[str], interval: bool = False) -> str:
        key = (type_ + (" interval" if interval else ""), tuple(elements))
        if key in self._names:
            return self._names[key]
        self._names[key] = name
        body = [f"set {name} {{", f"\t\ttype {type_}"] + (["\t\tflags interval"] if interval else [])
        if elements:
            body.append("\t\telements = { " + _elements(elements) + " }")
        self.decls.append("\n".join(body) + "\n\t}")
        return name

    def addresses(self, name: str, pods: Iterable[PolicyPod]) -> str:
        """A set of pod addresses; pods come in address order (_policed_pods), unique."""
        return self.add(name, "ipv4_addr", [p.ip for p in pods])

    def networks(self, name: str, nets: list[IPv4Net]) -> str:
        merged = [str(n.network_address) if n.prefixlen == 32 else str(n)
                  for n in ipaddress.collapse_addresses(nets)]
        return self.add(name, "ipv4_addr", merged, interval=True)


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

    matcher = _Matcher(policed, ns_labels)
    sets = _Sets()
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
        targets = list(matcher.pods(None, sel, ns))
        if not targets:
            continue
        pods_set = sets.addresses(f"pol{k}-pods", targets)
        for ptype in policy_types(spec):
            direction = ptype.lower()
            if direction not in isolated:
                continue
            for p in targets:
                isolated[direction][p.ip] = ns
            for i, rule in enumerate(spec.get(direction) or []):
                peers = _peers(rule.get("from" if direction == "ingress" else "to"), ns, matcher)
                ports = _ports(rule.get("ports"))
                tag = f"pol{k}-{direction[:2]}{i}"
                comment = _comment(f"{ns}/{pname} {direction}[{i}]")
                remotes = _remotes(tag, peers, sets)
                compiled = _rule(direction, tag, pods_set, targets, peers, remotes, ports,
                                 policed, sets)
                rules.setdefault((ns, direction), []).extend(f"{r} {comment}" for r in compiled)
                if direction == "egress":
                    host = _host_rule(peers, remotes, ports)
                    rules.setdefault((ns, "egress-host"), []).extend(
                        " ".join(filter(None, (f"ip saddr @{pods_set}", r, "accept", comment)))
                        for r in host)

    chains: list[str] = []
    maps: dict[str, list[str]] = {"ingress-isolated": [], "egress-isolated": [],
                                  "egress-host-isolated": []}
    for direction, members in isolated.items():
        for ip, ns in sorted(members.items(), key=lambda kv: _ip_key(kv[0])):
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
        *sets.decls,
        _chain("forward", ["ct state established,related accept",
                           "ip saddr vmap @egress-isolated",
                           "ip daddr vmap @ingress-isolated"],
               "type filter hook forward priority filter; policy accept;"),
        _chain("input", ["ct state established,related accept",
                         "ip saddr vmap @egress-host-isolated"],
               "type filter hook input priority filter; policy accept;"),
    ]
    return replace_table("inet", table, [*base, *chains])


@dataclass(frozen=True)
class _Remotes:
    """The far side's named sets: pod addresses (a hash set) and ipBlocks (an interval set)."""
    pods: str | None
    nets: str | None


def _remotes(tag: str, peers: _Peers, sets: _Sets) -> _Remotes:
    if peers.anyone:
        return _Remotes(None, None)
    return _Remotes(sets.addresses(f"{tag}-peers", peers.pods or [])
                    if peers.pods else None,
                    sets.networks(f"{tag}-cidrs", peers.nets) if peers.nets else None)


def _rule(direction: str, tag: str, pods_set: str, targets: list[PolicyPod], peers: _Peers,
          remotes: _Remotes, ports: _Ports, policed: list[PolicyPod], sets: _Sets) -> list[str]:
    """nft rules (without their comment) for one policy rule in the forward path."""
    ingress = direction == "ingress"
    local, remote = ("daddr", "saddr") if ingress else ("saddr", "daddr")
    verdict = "accept" if ingress else "return"   # egress allowed: go on to the ingress check
    local_match = f"ip {local} @{pods_set}"
    if peers.anyone:
        heads = [local_match]
    else:
        heads = [f"{local_match} ip {remote} @{name}" for name in (remotes.pods, remotes.nets)
                 if name]
    if ports.any:
        return [f"{head} {verdict}" for head in heads]
    out = [f"{head} meta l4proto {proto} th dport {{ {_elements(nums)} }} {verdict}"
           for head in heads for proto, nums in sorted(ports.numbers.items())]
    out += [f"{head} meta l4proto {proto} {verdict}"
            for head in heads for proto in sorted(ports.protocols)]
    if ports.named:
        # Named ports resolve on the destination: the policy's pods for ingress, the
        # peers (any pod, when the rule has no `to`) for egress; never on ipBlocks.
        dests = targets if ingress else (policed if peers.anyone else peers.pods or [])
        elems = sorted({f"{p.ip} . {_PROTOCOLS[proto]} . {p.named_ports[(name, proto)]}"
                        for p in dests for name, proto in ports.named
                        if (name, proto) in p.named_ports})
        pod_heads = [local_match] if peers.anyone else (
            [f"{local_match} ip {remote} @{remotes.pods}"] if remotes.pods else [])
        if elems and pod_heads:
            named = sets.add(f"{tag}-named", "ipv4_addr . inet_proto . inet_service", elems)
            out.append(f"{pod_heads[0]} ip daddr . meta l4proto . th dport @{named} {verdict}")
    return out


def _host_rule(peers: _Peers, remotes: _Remotes, ports: _Ports) -> list[str]:
    """Match parts of one egress rule for pod -> host (input hook), on the original destination.

    Pod selectors never select the host, so only ipBlocks (or no `to`) can admit it.
    """
    if not peers.anyone and not remotes.nets:
        return []
    head = "" if peers.anyone else f"ct original ip daddr @{remotes.nets}"
    if ports.any:
        return [head]
    out = [f"{head} meta l4proto {proto} ct original proto-dst {{ {_elements(nums)} }}"
           for proto, nums in sorted(ports.numbers.items())]
    out += [f"{head} meta l4proto {proto}" for proto in sorted(ports.protocols)]
    return [r.strip() for r in out]
