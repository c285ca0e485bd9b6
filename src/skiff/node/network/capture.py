"""A sidecar's traffic capture: istio-iptables' arguments -> one nftables table in the pod's netns.

Istio's istio-init container runs `istio-iptables -p 15001 -z 15006 -u 1337
-m REDIRECT -i '*' -x "" -b '*' -d 15090,15021,15020 [-o ports] ...`
(mesh/sidecar/inject.py writes those arguments, as Istio's injection template
does). parse_args() reads them (short flags and istio-iptables' long names,
`--flag value` or `--flag=value`; unknown flags are skipped with their value;
malformed values raise ValueError naming the flag), and capture_ruleset()
turns them into a script for table `inet skiff-capture`, which lives inside
the pod's own network namespace:

- chain prerouting (nat, dstnat): inbound TCP that did not come over
  loopback is redirected to :15006 (-z), except the -d ports (Envoy's stats,
  the health and status ports, the mesh's and the pod's excluded ports); with
  -b naming ports, only those are captured (Istio's rule: -d then does not
  apply); -b "" captures nothing inbound;
- chain output (nat, -100): outbound TCP is redirected to :15001 (-p) except
  the proxy's own (sockets marked with SO_MARK = the -u value: every pod
  process runs as root here, so the uid owner match Istio uses cannot tell the
  proxy apart; a process that does run as that uid is exempt too), loopback
  (oifname "lo"), the -o ports and the -x ranges; -i names what is captured
  ("*" all, "" nothing, else CIDRs), -q ports are captured whatever -i says.

UDP (DNS) is never captured. Redirect is NAT, so the proxy reads each
connection's original destination with getsockopt(SO_ORIGINAL_DST). The
script replaces the table atomically (create, delete, create: one netlink
transaction), so running istio-init twice leaves one set of rules.
TPROXY interception is not supported (ValueError).

capture_ruleset() is pure; apply_capture() hands the script to nft.py in the
network namespace of the calling thread (node/images/proxyv2.py runs it
inside the pod's, as the node runs init containers there).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["TABLE", "CaptureArgs", "apply_capture", "capture_ruleset", "parse_args"]

TABLE = "skiff-capture"
LOG_LEVELS = ("none", "fatal", "error", "warn", "warning", "info", "debug")

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class CaptureArgs:
    """istio-iptables' settings that decide the rules; the rest is accepted and ignored."""
    proxy_port: int = 15001                         # -p
    inbound_port: int = 15006                       # -z
    proxy_uids: tuple[int, ...] = (1337,)           # -u
    proxy_gids: tuple[int, ...] = ()                # -g
    mode: str = "REDIRECT"                          # -m
    include_ips: str | tuple[Net, ...] = "*"        # -i: "*" or CIDRs (() = none)
    exclude_ips: tuple[Net, ...] = ()               # -x
    include_inbound: str | tuple[int, ...] = "*"    # -b: "*" or ports (() = none)
    exclude_inbound: tuple[int, ...] = ()           # -d
    exclude_outbound: tuple[int, ...] = ()          # -o
    include_outbound: tuple[int, ...] = ()          # -q
    dry_run: bool = False                           # -n
    log_output_level: str = "default:info"
    ignored: tuple[str, ...] = field(default=())    # unknown flags, as given


# flag -> (field, parser name); long names are istio-iptables' own (tools/istio-iptables).
_VALUED = {
    "-p": "proxy_port", "--envoy-port": "proxy_port",
    "-z": "inbound_port", "--inbound-capture-port": "inbound_port",
    "-u": "proxy_uids", "--proxy-uid": "proxy_uids",
    "-g": "proxy_gids", "--proxy-gid": "proxy_gids",
    "-m": "mode", "--istio-inbound-interception-mode": "mode",
    "-i": "include_ips", "--istio-service-cidr": "include_ips",
    "-x": "exclude_ips", "--istio-service-exclude-cidr": "exclude_ips",
    "-b": "include_inbound", "--istio-inbound-ports": "include_inbound",
    "-d": "exclude_inbound", "--istio-local-exclude-ports": "exclude_inbound",
    "-o": "exclude_outbound", "--istio-local-outbound-ports-exclude": "exclude_outbound",
    "-q": "include_outbound", "--istio-include-outbound-ports": "include_outbound",
    "-k": "", "--kube-virt-interfaces": "",
    "-t": "", "--inbound-tunnel-port": "",
    "--log_output_level": "log_output_level",
}
_BOOLEAN = {"-n": "dry_run", "--dry-run": "dry_run", "--run-validation": "",
            "--skip-rule-apply": "", "--redirect-dns": "", "--capture-all-dns": "",
            "--restore-format": "", "-v": "", "--verbose": ""}


def _port(flag: str, text: str) -> int:
    t = text.strip()
    if not t.isdigit() or not 0 < int(t) < 65536:
        raise ValueError(f"{flag}: invalid port {text!r}: must be a number from 1 to 65535")
    return int(t)


def _ports(flag: str, text: str) -> tuple[int, ...]:
    """A comma list of ports ("" = none), sorted and without duplicates."""
    return tuple(sorted({_port(flag, p) for p in text.split(",") if p.strip()}))


def _ids(flag: str, text: str) -> tuple[int, ...]:
    out = []
    for p in text.split(","):
        if not p.strip().isdigit():
            raise ValueError(f"{flag}: invalid id {p!r}: must be a non-negative number")
        out.append(int(p))
    return tuple(out)


def _cidrs(flag: str, text: str) -> tuple[Net, ...]:
    out: list[Net] = []
    for p in text.split(","):
        if not p.strip():
            continue
        try:
            out.append(ipaddress.ip_network(p.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{flag}: invalid CIDR {p.strip()!r}") from None
    return tuple(out)


def _log_level(flag: str, text: str) -> str:
    for part in text.split(","):
        scope, sep, level = part.partition(":")
        if not sep or not scope.strip() or level.strip() not in LOG_LEVELS:
            raise ValueError(f"{flag}: invalid value {text!r}: want scope:level "
                             f"(level one of {', '.join(LOG_LEVELS)})")
    return text


def _value(name: str, flag: str, text: str) -> Any:
    if name in ("proxy_port", "inbound_port"):
        return _port(flag, text)
    if name in ("proxy_uids", "proxy_gids"):
        return _ids(flag, text)
    if name == "mode":
        mode = text.strip().upper()
        if mode == "TPROXY":
            raise ValueError(f"{flag}: interception mode TPROXY is not supported by skiff's "
                             "capture; use REDIRECT")
        if mode != "REDIRECT":
            raise ValueError(f"{flag}: invalid interception mode {text!r}: want REDIRECT")
        return mode
    if name == "include_ips":
        return "*" if text.strip() == "*" else _cidrs(flag, text)
    if name == "exclude_ips":
        return _cidrs(flag, text)
    if name == "include_inbound":
        return "*" if text.strip() == "*" else _ports(flag, text)
    if name in ("exclude_inbound", "exclude_outbound", "include_outbound"):
        return _ports(flag, text)
    if name == "log_output_level":
        return _log_level(flag, text)
    raise AssertionError(name)


def parse_args(args: Sequence[str]) -> CaptureArgs:
    """istio-iptables' argv (with or without the leading `istio-iptables`) -> CaptureArgs."""
    argv = list(args)
    if argv and argv[0] == "istio-iptables":
        argv = argv[1:]
    values: dict[str, Any] = {}
    ignored: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        i += 1
        if not tok.startswith("-") or tok in ("-", "--"):
            raise ValueError(f"unexpected argument {tok!r}")
        flag, eq, inline = tok.partition("=")
        if flag in _BOOLEAN:
            if _BOOLEAN[flag]:
                values[_BOOLEAN[flag]] = not eq or inline.lower() in ("true", "1", "t")
            continue
        if flag in _VALUED:
            if eq:
                text = inline
            elif i < len(argv):
                text = argv[i]
                i += 1
            else:
                raise ValueError(f"{flag}: a value is required")
            if _VALUED[flag]:
                values[_VALUED[flag]] = _value(_VALUED[flag], flag, text)
            continue
        # An unknown flag: skipped, with the value that follows it (one not looking like a flag).
        ignored.append(tok)
        if not eq and i < len(argv) and not argv[i].startswith("-"):
            ignored.append(argv[i])
            i += 1
    return replace(CaptureArgs(ignored=tuple(ignored)), **values)


def _set(ports: Sequence[int]) -> str:
    return str(ports[0]) if len(ports) == 1 else "{ " + ", ".join(str(p) for p in ports) + " }"


def _addr_rules(nets: Sequence[Net], verdict: str) -> list[str]:
    out = []
    for fam, version in (("ip", 4), ("ip6", 6)):
        mine = [str(n) for n in nets if n.version == version]
        if mine:
            out.append(f"{fam} daddr {{ {', '.join(mine)} }} {verdict}")
    return out


def capture_ruleset(args: Sequence[str] | CaptureArgs, table: str = TABLE) -> str:
    """The nft script for istio-iptables `args` (see the module docstring). Pure."""
    a = args if isinstance(args, CaptureArgs) else parse_args(args)
    inbound = [
        'iifname "lo" return',
    ]
    if a.include_inbound == "*":
        if a.exclude_inbound:
            inbound.append(f"tcp dport {_set(a.exclude_inbound)} return")
        inbound.append(f"meta l4proto tcp redirect to :{a.inbound_port}")
    elif isinstance(a.include_inbound, tuple) and a.include_inbound:
        inbound.append(f"tcp dport {_set(a.include_inbound)} redirect to :{a.inbound_port}")
    outbound = ["meta l4proto != tcp return"]
    outbound += [f"meta mark {uid} return" for uid in a.proxy_uids]
    outbound += [f"meta skuid {uid} return" for uid in a.proxy_uids]
    outbound += [f"meta skgid {gid} return" for gid in a.proxy_gids]
    outbound.append('oifname "lo" return')
    if a.exclude_outbound:
        outbound.append(f"tcp dport {_set(a.exclude_outbound)} return")
    if a.include_outbound:
        outbound.append(f"tcp dport {_set(a.include_outbound)} redirect to :{a.proxy_port}")
    outbound += _addr_rules(a.exclude_ips, "return")
    if a.include_ips == "*":
        outbound.append(f"meta l4proto tcp redirect to :{a.proxy_port}")
    else:
        nets = a.include_ips if isinstance(a.include_ips, tuple) else ()
        outbound += _addr_rules(nets, f"redirect to :{a.proxy_port}")

    def chain(name: str, hook: str, priority: str, rules: list[str]) -> str:
        body = "".join(f"\t\t{r}\n" for r in rules)
        return (f"\tchain {name} {{\n\t\ttype nat hook {hook} priority {priority}; "
                f"policy accept;\n{body}\t}}\n")

    return (f"table inet {table} {{}}\n"
            f"delete table inet {table}\n"
            f"table inet {table} {{\n"
            + chain("prerouting", "prerouting", "dstnat", inbound)
            + chain("output", "output", "-100", outbound)
            + "}\n")


def apply_capture(script: str) -> None:
    """Apply a capture script in the calling thread's network namespace (NftError on refusal)."""
    from skiff.node.network.nft import Nft  # ctypes and libnftables only where rules are made
    with Nft() as nft:
        nft.run(script)
