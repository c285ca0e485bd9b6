"""Services -> nftables: kube-proxy's nftables mode, as a pure compiler.

compile_proxy() turns v1 Services and discovery.k8s.io/v1 EndpointSlices
into one nft script that replaces `table ip skiff-proxy` atomically (nft.py
applies it). The shape follows kubernetes pkg/proxy/nftables/proxier.go:

- `map service-ips`, keyed `ip daddr . meta l4proto . th dport`, sends a
  ClusterIP:port to its `service-<hash>-<ns>/<name>/<proto>/<port name>`
  chain; it is consulted from nat prerouting (pods, priority dstnat) and nat
  output (the host itself, priority -100).
- A service chain marks for masquerade what does not come from the pod CIDR,
  then DNATs to one endpoint: `dnat to numgen random mod N map { 0 : ip .
  port, ... }` (equal weights), or `dnat to ip:port` for one. kube-proxy
  jumps to an endpoint chain per endpoint instead (`numgen ... vmap`); one
  rule per Service keeps 1,000 Services at about 1,000 chains rather than
  4,000 for nft to parse. Only ClientIP-affinity Services keep endpoint
  chains (below). Hairpin traffic (a pod reaching itself through its
  Service) is marked in nat postrouting, where the DNAT is done: `ct status
  dnat` with source and destination both one endpoint's address (`set
  hairpin`, `ip . ip` per endpoint address). nat postrouting masquerades
  marked packets (mark 0x4000, as kube-proxy).
- Endpoints: only ready ones; when none is ready, the serving-and-terminating
  ones (upstream's fallback); `conditions.ready` already folds
  publishNotReadyAddresses. A missing condition reads as upstream reads it
  (ready/serving nil = true, terminating nil = false).
- `sessionAffinity: ClientIP`: kube-proxy's shape. Endpoint chains
  `endpoint-<hash>-<service chain tail>__<ip>/<port>`, each with a dynamic
  set with timeout (`affinity-...`, timeoutSeconds, default 10800) that it
  updates with the client address before its `dnat`; the service chain
  checks the sets before `numgen random mod N vmap` picks a chain. The sets
  live in the table, so a re-apply starts affinity afresh (kube-proxy keeps
  them across its partial syncs; we always replace whole).
- A VIP:port with no usable endpoint is rejected in filter chains
  (`map no-endpoint-services` -> `reject-chain`: TCP reset, ICMP
  port-unreachable otherwise), never left to time out.
- Headless (clusterIP None) and ExternalName Services get nothing; IPv4 only.
- host_ports: skiff's own loopback listeners reached from pods through the
  bridge address (`iifname <bridge> ip daddr <bridge_ip> tcp dport P dnat to
  127.0.0.1:Q`), which needs route_localnet=1 on the bridge (podnet.py sets it).

Pure: objects in, text out. Neighbours: nft.py (applies), policy.py
(NetworkPolicy, its own table), podnet.py (the bridge and routes this assumes).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from skiff.core.client import Obj

__all__ = ["DEFAULT_AFFINITY_TIMEOUT", "MASQ_MARK", "ProxyEndpoint", "compile_proxy",
           "usable_endpoints"]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_AFFINITY_TIMEOUT = 10800           # v1 ClientIPConfig default, seconds
MASQ_MARK = 0x4000                         # kube-proxy's masquerade bit
_PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
_MAX_CHAIN = 200                           # nft allows 256; leave room for prefixes


@dataclass(frozen=True, order=True)
class ProxyEndpoint:
    """One endpoint address:port for one service port."""
    ip: str
    port: int


def _hash(text: str) -> str:
    # kube-proxy: the first 8 chars of base32(sha256(name)), so chain names stay unique
    # when the readable tail has to be cut.
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:8]


def _name(prefix: str, tail: str) -> str:
    # Namespaces, names and port names are DNS labels, IPs dotted quads: every part is
    # an nft identifier character, so names need no quoting.
    name = f"{prefix}-{_hash(tail)}-{tail}"
    return name[:_MAX_CHAIN]


def _is_ipv4(addr: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(addr), ipaddress.IPv4Address)
    except ValueError:
        return False


def _cond(conditions: Obj, key: str, default: bool) -> bool:
    value = conditions.get(key)
    return default if value is None else bool(value)


def usable_endpoints(service_port: Obj, slices: Iterable[Obj]) -> list[ProxyEndpoint]:
    """The endpoints one service port sends to: ready ones, else serving+terminating ones.

    The target port comes from the slice's port of the same name and protocol
    (the EndpointSlice controller resolved named targetPorts per pod already).
    """
    name = service_port.get("name") or ""
    proto = service_port.get("protocol") or "TCP"
    ready: set[ProxyEndpoint] = set()
    fallback: set[ProxyEndpoint] = set()
    for sl in slices:
        if (sl.get("addressType") or "IPv4") != "IPv4":
            continue
        number = None
        for p in sl.get("ports") or []:
            if (p.get("name") or "") == name and (p.get("protocol") or "TCP") == proto:
                number = p.get("port")
                break
        if not isinstance(number, int):
            continue
        for ep in sl.get("endpoints") or []:
            addrs = ep.get("addresses") or []
            if not addrs or not _is_ipv4(addrs[0]):
                continue
            cond = ep.get("conditions") or {}
            e = ProxyEndpoint(addrs[0], number)   # upstream uses the first address only
            is_ready = _cond(cond, "ready", True)
            if is_ready:
                ready.add(e)
            elif _cond(cond, "serving", is_ready) and _cond(cond, "terminating", False):
                fallback.add(e)
    return sorted(ready or fallback)


def _proxied(svc: Obj) -> bool:
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return False
    ip = spec.get("clusterIP") or ""
    return ip not in ("", "None") and _is_ipv4(ip)


def compile_proxy(services: list[Obj], slices: list[Obj], *, bridge_ip: str, pod_cidr: str,
                  host_ports: dict[int, int] | None = None, table: str = "skiff-proxy",
                  bridge: str = "skiff0") -> str:
    """The nft script that makes `table ip <table>` proxy these Services (see module doc)."""
    by_service: dict[tuple[str, str], list[Obj]] = {}
    for sl in slices:
        meta = sl.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if owner:
            by_service.setdefault((meta.get("namespace") or "default", owner), []).append(sl)

    service_elems: list[str] = []
    no_endpoint_elems: list[str] = []
    sets: list[str] = []
    chains: list[str] = []
    hairpin: set[str] = set()

    def key(svc: Obj) -> tuple[str, str]:
        meta = svc.get("metadata") or {}
        return (meta.get("namespace") or "default", meta.get("name") or "")

    for svc in sorted((s for s in services if _proxied(s)), key=key):
        ns, name = key(svc)
        spec = svc["spec"]
        vip = spec["clusterIP"]
        affinity = spec.get("sessionAffinity") == "ClientIP"
        timeout = (((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
                   .get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT)
        for sp in spec.get("ports") or []:
            proto = _PROTOCOLS.get(sp.get("protocol") or "TCP")
            port = sp.get("port")
            if proto is None or not isinstance(port, int):
                continue
            tail = f"{ns}/{name}/{proto}/{sp.get('name') or ''}"
            match = f"{vip} . {proto} . {port}"
            eps = usable_endpoints(sp, by_service.get((ns, name), []))
            if not eps:
                no_endpoint_elems.append(f"{match} : goto reject-chain")
                continue
            svc_chain = _name("service", tail)
            service_elems.append(f"{match} : goto {svc_chain}")
            body = [f"ip daddr {vip} {proto} dport {port} ip saddr != {pod_cidr} "
                    f"jump mark-for-masquerade"]
            hairpin.update(e.ip for e in eps)
            if affinity:
                ep_chains: list[str] = []
                for ep in eps:
                    ep_tail = f"{tail}__{ep.ip}/{ep.port}"
                    ep_chain = _name("endpoint", ep_tail)
                    aff = _name("affinity", ep_tail)
                    ep_chains.append(ep_chain)
                    sets.append(f"set {aff} {{\n\t\ttype ipv4_addr\n"
                                f"\t\tflags dynamic,timeout\n\t\ttimeout {int(timeout)}s\n\t}}")
                    body.append(f"ip saddr @{aff} goto {ep_chain}")
                    chains.append(_chain(ep_chain, [
                        f"update @{aff} {{ ip saddr }}",
                        f"meta l4proto {proto} dnat to {ep.ip}:{ep.port}"]))
                vmap = ", ".join(f"{i} : goto {c}" for i, c in enumerate(ep_chains))
                body.append(f"numgen random mod {len(ep_chains)} vmap {{ {vmap} }}")
            elif len(eps) == 1:
                body.append(f"meta l4proto {proto} dnat to {eps[0].ip}:{eps[0].port}")
            else:
                picks = ", ".join(f"{i} : {e.ip} . {e.port}" for i, e in enumerate(eps))
                body.append(f"meta l4proto {proto} dnat to numgen random mod {len(eps)} "
                            f"map {{ {picks} }}")
            chains.append(_chain(svc_chain, body))

    host_rules = [f"iifname \"{bridge}\" ip daddr {bridge_ip} tcp dport {p} "
                  f"dnat to 127.0.0.1:{q}" for p, q in sorted((host_ports or {}).items())]
    base = [
        _map("service-ips", service_elems),
        _map("no-endpoint-services", no_endpoint_elems),
        _set("hairpin", "ipv4_addr . ipv4_addr",
             [f"{a} . {a}" for a in sorted(hairpin, key=ipaddress.IPv4Address)]),
        *sets,
        _chain("filter-input", ["ct state new jump service-endpoints-check"],
               "type filter hook input priority -110; policy accept;"),
        _chain("filter-forward", ["ct state new jump service-endpoints-check"],
               "type filter hook forward priority -110; policy accept;"),
        _chain("filter-output", ["ct state new jump service-endpoints-check"],
               "type filter hook output priority -110; policy accept;"),
        _chain("service-endpoints-check",
               ["ip daddr . meta l4proto . th dport vmap @no-endpoint-services"]),
        _chain("reject-chain", ["meta l4proto tcp reject with tcp reset", "reject"]),
        _chain("nat-prerouting", [*host_rules, "jump services"],
               "type nat hook prerouting priority dstnat; policy accept;"),
        _chain("nat-output", ["jump services"],
               "type nat hook output priority -100; policy accept;"),
        _chain("nat-postrouting", ["ct status dnat ip saddr . ip daddr @hairpin "
                                   "jump mark-for-masquerade", "jump masquerading"],
               "type nat hook postrouting priority srcnat; policy accept;"),
        _chain("services", ["ip daddr . meta l4proto . th dport vmap @service-ips"]),
        _chain("mark-for-masquerade", [f"meta mark set meta mark | {MASQ_MARK:#x}"]),
        _chain("masquerading", [f"meta mark & {MASQ_MARK:#x} == 0 return",
                                f"meta mark set meta mark ^ {MASQ_MARK:#x}",
                                "masquerade fully-random"]),
    ]
    return replace_table("ip", table, [*base, *chains])


def _map(name: str, elements: list[str]) -> str:
    lines = [f"map {name} {{", "\t\ttype ipv4_addr . inet_proto . inet_service : verdict"]
    if elements:
        lines.append("\t\telements = { " + ",\n\t\t\t".join(elements) + " }")
    return "\n".join(lines) + "\n\t}"


def _set(name: str, key_type: str, elements: list[str]) -> str:
    lines = [f"set {name} {{", f"\t\ttype {key_type}"]
    if elements:
        lines.append("\t\telements = { " + ",\n\t\t\t".join(elements) + " }")
    return "\n".join(lines) + "\n\t}"


def _chain(name: str, rules: list[str], hook: str = "") -> str:
    lines = [f"chain {name} {{"]
    if hook:
        lines.append(f"\t\t{hook}")
    lines += [f"\t\t{r}" for r in rules]
    return "\n".join(lines) + "\n\t}"


def replace_table(family: str, table: str, body: list[str]) -> str:
    """A script that swaps in a whole table in one transaction (add, delete, define)."""
    inner = "".join(f"\t{part}\n" for part in body)
    return (f"add table {family} {table}\ndelete table {family} {table}\n"
            f"table {family} {table} {{\n{inner}}}\n")
