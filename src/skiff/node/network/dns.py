"""Cluster DNS answers: the Kubernetes DNS specification as a pure function of a query and a ClusterView.

`answer(request, view, ...)` returns the reply for a name skiff is
authoritative for, or None for a name to forward upstream (CoreDNS's
kubernetes plugin with `pods verified` and `fallthrough in-addr.arpa
ip6.arpa`, then `forward . /etc/resolv.conf`). What it answers, TTL 5 s:
- `<svc>.<ns>.svc.<zone>` A/AAAA: the ClusterIPs; a headless Service: every
  published endpoint address; an ExternalName Service: a CNAME to
  spec.externalName (chased here when the target is ours; dnsserver.py asks
  the upstream for other targets, as CoreDNS does);
- `<hostname>.<svc>.<ns>.svc.<zone>` for a headless Service's endpoints: the
  endpoint's hostname, or when it has none the address with dashes (the
  "system-assigned identifier" of the spec, CoreDNS's choice);
- `_<port>._<proto>.<svc>.<ns>.svc.<zone>` SRV for named ports (a headless
  Service: one target per endpoint), with the targets' addresses in the
  additional section;
- `<a-b-c-d>.<ns>.pod.<zone>` for a pod with that IP in that namespace;
- PTR for ClusterIPs, headless endpoints and pod IPs; `dns-version.<zone>` TXT;
- the cluster's apps domain and every name under it: the router's address.
Existing names asked for another type are NODATA, unknown names in the zone
NXDOMAIN, both with the zone's SOA in the authority section (negative
caching, RFC 2308). Names compare case-insensitively; the answer echoes the
question's spelling. Also here: the pure pieces dnsserver.py needs around
the bytes (UDP truncation, FORMERR from a header alone, failures) and a
pod's resolv.conf. Neighbours: dnsview.py (the index), dnsserver.py (sockets).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from dnslib import (
    AAAA,
    CNAME,
    EDNS0,
    OPCODE,
    PTR,
    QTYPE,
    RCODE,
    RR,
    SOA,
    SRV,
    TXT,
    A,
    DNSHeader,
    DNSRecord,
)

from skiff.node.network.dnsview import ClusterView, Endpoint, Port, ServiceInfo

TTL = 5
SCHEMA_VERSION = "1.1.0"        # the specification's section 2.2 record
EDNS_SIZE = 1232                # what this server offers (DNS flag day 2020)
MAX_UDP = 4096                  # never more on UDP, whatever the client offers
MAX_ANSWERS = 500               # a bound on records per reply; keeps TCP replies under 64 KiB
MAX_CHASE = 8                   # CNAME hops followed inside the zone

Labels = tuple[str, ...]


def _labels(name: str) -> Labels:
    return tuple(p for p in name.lower().strip(".").split(".") if p)


@dataclass
class _Result:
    rcode: int = RCODE.NOERROR
    answers: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)
    soa: bool = False           # a negative answer: the zone's SOA goes into authority
    soa_zone: str = ""


def answer(request: DNSRecord, view: ClusterView, zone: str = "cluster.local",
           apps_domain: str | None = None, apps_ip: str | None = None) -> DNSRecord | None:
    """The reply to `request` if the name is ours, else None (forward it)."""
    h = request.header
    if h.qr:
        return failure(request, RCODE.FORMERR)
    if h.opcode != OPCODE.QUERY:
        return failure(request, RCODE.NOTIMP)
    if len(request.questions) != 1:
        return failure(request, RCODE.FORMERR, keep_question=False)
    q = request.q
    qname = tuple(lab.decode("latin-1").lower() for lab in q.qname.label)
    zl = _labels(zone)
    al = _labels(apps_domain) if apps_domain and apps_ip else None
    ours = (al is not None and _under(qname, al)) or _under(qname, zl)
    if ours and q.qclass not in (1, 255):        # IN or ANY
        return failure(request, RCODE.REFUSED)
    res = _resolve(qname, q.qtype, view, zl, al, apps_ip, str(q.qname), 0)
    if res is None:
        return None
    reply = DNSRecord(DNSHeader(id=h.id, qr=1, aa=1, ra=1, rd=h.rd, rcode=res.rcode), q=q)
    for rr in res.answers[:MAX_ANSWERS]:
        reply.add_answer(rr)
    if res.soa:
        reply.add_auth(_soa(res.soa_zone, view.generation))
    for rr in res.additional[:MAX_ANSWERS]:
        reply.add_ar(rr)
    _echo_edns(request, reply)
    return reply


def _under(name: Labels, suffix: Labels) -> bool:
    return len(name) >= len(suffix) and name[len(name) - len(suffix):] == suffix


def _resolve(qname: Labels, qtype: int, view: ClusterView, zl: Labels, al: Labels | None,
             apps_ip: str | None, spelled: str, depth: int) -> _Result | None:
    if al is not None and apps_ip and _under(qname, al):
        # The apps domain is a wildcard record: the apex and every name below it.
        return _addresses(spelled, qtype, [apps_ip], ".".join(al))
    if _under(qname, zl):
        res = _in_zone(qname[:len(qname) - len(zl)], qtype, view, ".".join(zl), spelled)
        if res.answers and res.answers[-1].rtype == QTYPE.CNAME and qtype != QTYPE.CNAME \
                and depth < MAX_CHASE:
            target = str(res.answers[-1].rdata.label)
            tl = _labels(target)
            if _under(tl, zl) or (al is not None and _under(tl, al)):
                more = _resolve(tl, qtype, view, zl, al, apps_ip, target, depth + 1)
                if more is not None:
                    res.answers.extend(more.answers)
                    res.additional.extend(more.additional)
                    res.rcode, res.soa, res.soa_zone = more.rcode, more.soa, more.soa_zone
        return res
    if qname[-2:] in (("in-addr", "arpa"), ("ip6", "arpa")):
        return _reverse(qname, qtype, view, ".".join(zl), spelled)
    return None


def _in_zone(rel: Labels, qtype: int, view: ClusterView, zone: str, spelled: str) -> _Result:
    nodata = _Result(soa=True, soa_zone=zone)
    nxdomain = _Result(rcode=RCODE.NXDOMAIN, soa=True, soa_zone=zone)
    if not rel:
        if qtype in (QTYPE.SOA, QTYPE.ANY):
            return _Result(answers=[_soa(zone, view.generation, spelled)])
        return nodata
    if rel == ("dns-version",):
        if qtype in (QTYPE.TXT, QTYPE.ANY):
            return _Result(answers=[RR(spelled, QTYPE.TXT, ttl=TTL, rdata=TXT(SCHEMA_VERSION))])
        return nodata
    kind, rest = rel[-1], rel[:-1]
    if kind == "svc":
        return _svc(rest, qtype, view, zone, spelled) or nxdomain
    if kind == "pod":
        if not rest:
            return nodata
        if len(rest) == 1:
            return nodata if view.has_namespace(rest[0]) else nxdomain
        if len(rest) == 2:
            ip = _undash(rest[0])
            if ip is not None and view.has_pod(rest[1], ip):
                return _addresses(spelled, qtype, [ip], zone)
    return nxdomain


def _svc(rest: Labels, qtype: int, view: ClusterView, zone: str, spelled: str) -> _Result | None:
    """Names under svc.<zone>; None: no such name."""
    if not rest:
        return _Result(soa=True, soa_zone=zone)
    ns = rest[-1]
    if len(rest) == 1:
        return _Result(soa=True, soa_zone=zone) if view.has_namespace(ns) else None
    svc = view.service(ns, rest[-2])
    if svc is None:
        return None
    fqdn = f"{svc.name}.{svc.namespace}.svc.{zone}"
    if len(rest) == 2:
        if svc.external_name:
            # A CNAME owns its name for every type (RFC 1034 3.6.2).
            return _Result(answers=[RR(spelled, QTYPE.CNAME, ttl=TTL,
                                       rdata=CNAME(svc.external_name + "."))])
        if svc.headless:
            ips = _dedupe(ip for e, _ in view.endpoints(svc) for ip in e.addresses)
        else:
            ips = list(svc.cluster_ips)
        return _addresses(spelled, qtype, ips, zone)
    if len(rest) == 3:
        first = rest[0]
        if first.startswith("_"):
            # `_<proto>.<svc>...`: an empty non-terminal when some port has that protocol.
            if any(p.protocol == first[1:] for p in _srv_ports(view, svc)):
                return _Result(soa=True, soa_zone=zone)
            return None
        if not svc.headless:
            return None
        ips = _dedupe(ip for e, _ in view.endpoints(svc) if _endpoint_name(e) == first
                      for ip in e.addresses)
        return _addresses(spelled, qtype, ips, zone) if ips else None
    if len(rest) == 4:
        port_l, proto_l = rest[0], rest[1]
        if not (port_l.startswith("_") and proto_l.startswith("_")) or svc.external_name:
            return None
        name, proto = port_l[1:], proto_l[1:]
        res = _Result()
        if svc.headless:
            targets = [(e, p.port) for e, ports in view.endpoints(svc)
                       for p in ports if p.name == name and p.protocol == proto]
            if not targets:
                return None
            if qtype not in (QTYPE.SRV, QTYPE.ANY):
                return _Result(soa=True, soa_zone=zone)
            weight = max(1, 100 // len(targets))
            for e, port in targets:
                target = f"{_endpoint_name(e)}.{fqdn}"
                res.answers.append(RR(spelled, QTYPE.SRV, ttl=TTL,
                                      rdata=SRV(priority=0, weight=weight, port=port, target=target)))
                res.additional.extend(_address_rrs(target, list(e.addresses)))
            return res
        ports = [p for p in svc.ports if p.name == name and p.protocol == proto]
        if not ports:
            return None
        if qtype not in (QTYPE.SRV, QTYPE.ANY):
            return _Result(soa=True, soa_zone=zone)
        for p in ports:
            res.answers.append(RR(spelled, QTYPE.SRV, ttl=TTL,
                                  rdata=SRV(priority=0, weight=100, port=p.port, target=fqdn)))
        res.additional.extend(_address_rrs(fqdn, list(svc.cluster_ips)))
        return res
    return None


def _srv_ports(view: ClusterView, svc: ServiceInfo) -> list[Port]:
    if svc.headless:
        return [p for _, ports in view.endpoints(svc) for p in ports if p.name]
    return [p for p in svc.ports if p.name]


def _endpoint_name(e: Endpoint) -> str:
    return e.hostname or _dash(e.addresses[0])


def _reverse(qname: Labels, qtype: int, view: ClusterView, zone: str,
             spelled: str) -> _Result | None:
    ip = _reverse_ip(qname)
    if ip is None:
        return None
    names = [f"{s.name}.{s.namespace}.svc.{zone}" for s in view.services_at(ip)]
    names += [f"{_endpoint_name(e)}.{s.name}.{s.namespace}.svc.{zone}"
              for s, e in view.headless_endpoints_at(ip)]
    if not names:
        names = [f"{_dash(ip)}.{ns}.pod.{zone}" for ns in view.pod_namespaces_at(ip)]
    if not names:
        return None             # not a cluster address: the upstream may know it
    if qtype not in (QTYPE.PTR, QTYPE.ANY):
        return _Result(soa=True, soa_zone=".".join(qname[-2:]))
    return _Result(answers=[RR(spelled, QTYPE.PTR, ttl=TTL, rdata=PTR(n + "."))
                            for n in _dedupe(names)])


def _reverse_ip(qname: Labels) -> str | None:
    try:
        if qname[-2:] == ("in-addr", "arpa") and len(qname) == 6:
            return str(ipaddress.IPv4Address(".".join(reversed(qname[:4]))))
        if qname[-2:] == ("ip6", "arpa") and len(qname) == 34 and all(len(n) == 1 for n in qname[:32]):
            nibbles = "".join(reversed(qname[:32]))
            return str(ipaddress.IPv6Address(int(nibbles, 16)))
    except ValueError:
        return None
    return None


def _addresses(spelled: str, qtype: int, ips: list[str], soa_zone: str) -> _Result:
    """A name that exists: its A/AAAA records for the asked type, else NODATA."""
    want = {QTYPE.A: (4,), QTYPE.AAAA: (6,), QTYPE.ANY: (4, 6)}.get(qtype, ())
    rrs = [rr for rr in _address_rrs(spelled, ips) if _family(rr) in want]
    if not rrs:
        return _Result(soa=True, soa_zone=soa_zone)
    return _Result(answers=rrs)


def _address_rrs(name: str, ips: list[str]) -> list[RR]:
    out: list[RR] = []
    for ip in ips:
        if ":" in ip:
            out.append(RR(name, QTYPE.AAAA, ttl=TTL, rdata=AAAA(ip)))
        else:
            out.append(RR(name, QTYPE.A, ttl=TTL, rdata=A(ip)))
    return out


def _family(rr: RR) -> int:
    return 6 if rr.rtype == QTYPE.AAAA else 4


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _dash(ip: str) -> str:
    """An address as one DNS label: 10.244.0.5 -> 10-244-0-5 (IPv6: ':' -> '-')."""
    return ip.replace(".", "-").replace(":", "-")


def _undash(label: str) -> str | None:
    parts = label.split("-")
    try:
        if len(parts) == 4:
            return str(ipaddress.IPv4Address(".".join(parts)))
        return str(ipaddress.IPv6Address(label.replace("-", ":")))
    except ValueError:
        return None


def _soa(zone: str, serial: int, owner: str | None = None) -> RR:
    return RR(owner or zone + ".", QTYPE.SOA, ttl=TTL,
              rdata=SOA(f"ns.dns.{zone}.", f"hostmaster.{zone}.",
                        (serial % 2**32, 7200, 1800, 86400, TTL)))


def _echo_edns(request: DNSRecord, reply: DNSRecord) -> None:
    if any(rr.rtype == QTYPE.OPT for rr in request.ar):
        reply.add_ar(EDNS0(udp_len=EDNS_SIZE))


# --- around the bytes (pure helpers for dnsserver.py) ------------------------------------------
def failure(request: DNSRecord, rcode: int, keep_question: bool = True) -> DNSRecord:
    """An empty reply with `rcode` (FORMERR, SERVFAIL, NOTIMP, REFUSED)."""
    h = request.header
    reply = DNSRecord(DNSHeader(id=h.id, qr=1, opcode=h.opcode, ra=1, rd=h.rd, rcode=rcode),
                      q=request.q if keep_question and len(request.questions) == 1 else None)
    _echo_edns(request, reply)
    return reply


def formerr(data: bytes) -> bytes | None:
    """FORMERR for a message that does not parse, from its header alone; None when even the
    header is missing or the message is itself a response (never answer those: no loops)."""
    if len(data) < 12:
        return None
    ident, flags = struct.unpack("!HH", data[:4])
    if flags & 0x8000:
        return None
    opcode_rd = flags & 0x7900                   # keep the opcode and RD
    return struct.pack("!HHHHHH", ident, 0x8000 | opcode_rd | 0x0080 | RCODE.FORMERR, 0, 0, 0, 0)


def udp_limit(request: DNSRecord) -> int:
    """The largest UDP reply the client takes: 512, or its EDNS payload size (capped)."""
    for rr in request.ar:
        if rr.rtype == QTYPE.OPT:
            return max(512, min(int(rr.rclass), MAX_UDP))
    return 512


def pack_udp(reply: DNSRecord, limit: int) -> bytes:
    """The reply's bytes, or when they exceed `limit` the question alone with TC set, so the
    client asks again over TCP (RFC 1035 4.2.1, RFC 7766)."""
    data: bytes = reply.pack()
    if len(data) <= limit:
        return data
    short = DNSRecord(DNSHeader(id=reply.header.id, bitmap=reply.header.bitmap, tc=1), q=reply.q)
    for rr in reply.ar:
        if rr.rtype == QTYPE.OPT:
            short.add_ar(rr)
    packed: bytes = short.pack()
    return packed


def external_target(request: DNSRecord, reply: DNSRecord, zone: str = "cluster.local",
                    apps_domain: str | None = None) -> str | None:
    """The CNAME target an ExternalName reply ends in when it lies outside what this server
    answers, and the client asked for another type: the server resolves it upstream."""
    if reply.header.rcode != RCODE.NOERROR or not reply.rr or len(request.questions) != 1:
        return None
    if request.q.qtype == QTYPE.CNAME:
        return None
    last = reply.rr[-1]
    if last.rtype != QTYPE.CNAME:
        return None
    target = str(last.rdata.label)
    tl = _labels(target)
    if _under(tl, _labels(zone)) or (apps_domain and _under(tl, _labels(apps_domain))):
        return None
    return target


def resolv_conf(namespace: str, nameserver: str, zone: str = "cluster.local") -> str:
    """A pod's /etc/resolv.conf under dnsPolicy ClusterFirst, as kubelet writes it."""
    return (f"nameserver {nameserver}\n"
            f"search {namespace}.svc.{zone} svc.{zone} {zone}\n"
            "options ndots:5\n")

