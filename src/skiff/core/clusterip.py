"""ClusterIP allocation arithmetic: the service CIDR as a range of offsets. Pure.

Kubernetes' pkg/registry/core/service/ipallocator, without its storage: a
range is the service CIDR less its network address (and, for IPv4, its
broadcast address), so offset 0 is the first usable address (10.96.0.1,
the `kubernetes` Service's). Dynamic allocations prefer the upper band and
leave the lower (static) band to requested addresses, as upstream does since
1.25 (ServiceIPStaticSubrange: offset min(max(16, size/16), 256)); each scan
starts at a position the caller chooses (upstream: random), so allocation
stays pure and testable. What is taken is the caller's to know:
core/apiserver/strategy.py derives it from the stored Services under the
registry's write path. The messages are upstream's, word for word.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_SERVICE_CIDR = "10.96.0.0/16"
NONE = "None"          # spec.clusterIP of a headless Service
# The largest range skiff keeps (a /12 of IPv4, as kubeadm's default; upstream caps IPv6
# ranges at 2^16 too): the taken set of a larger one could not be scanned in a request.
MAX_RANGE = 1 << 20

ERR_FULL = "range is full"
ERR_ALLOCATED = "provided IP is already allocated"
INVALID_IP = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class ServiceRange:
    """The addresses a service CIDR hands out, by offset from its first usable address."""
    cidr: ipaddress.IPv4Network | ipaddress.IPv6Network

    @classmethod
    def parse(cls, text: str) -> ServiceRange:
        """The range of a --service-cidr value; ValueError says what is wrong with it."""
        try:
            net = ipaddress.ip_network(text.strip(), strict=True)
        except ValueError as e:
            raise ValueError(f"invalid service CIDR {text!r}: {e}") from None
        r = cls(net)
        if r.size < 1:
            raise ValueError(f"invalid service CIDR {text!r}: it has no usable address")
        if r.size > MAX_RANGE:
            raise ValueError(f"invalid service CIDR {text!r}: more than {MAX_RANGE} addresses "
                             f"(a /{r.cidr.max_prefixlen - 20} at most)")
        return r

    @property
    def family(self) -> str:
        return "IPv4" if self.cidr.version == 4 else "IPv6"

    @property
    def size(self) -> int:
        """How many addresses can be allocated (upstream's RangeSize less the reserved ones)."""
        n = self.cidr.num_addresses
        return n - 2 if self.cidr.version == 4 else n - 1

    @property
    def static_band(self) -> int:
        """Offsets below this are left to requested addresses while the upper band has room."""
        n = self.cidr.num_addresses
        if n < 16:
            return 0
        return min(max(16, n // 16), 256)

    def ip_at(self, offset: int) -> str:
        return str(self.cidr.network_address + 1 + offset)

    def offset_of(self, ip: str) -> int | None:
        """The offset of `ip` in the range, or None when it is not an address the range gives."""
        try:
            a = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if a.version != self.cidr.version or a not in self.cidr:
            return None
        off = int(a) - int(self.cidr.network_address) - 1
        return off if 0 <= off < self.size else None

    def __str__(self) -> str:
        return str(self.cidr)


def parse_ip(text: str) -> Address | None:
    """An IP as Go's netutils.ParseIPSloppy reads it (no zones, no prefixes), or None."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def family_of(ip: str) -> str:
    a = parse_ip(ip)
    return "IPv6" if a is not None and a.version == 6 else "IPv4"


def not_in_range(ip: str, r: ServiceRange) -> str:
    """ipallocator.ErrNotInRange."""
    return f"the provided IP ({ip}) is not in the valid range. The range of valid IPs is {r}"


def request_problem(ip: str, r: ServiceRange, taken: Callable[[int], bool]) -> str | None:
    """Why a requested ClusterIP cannot be allocated (the allocator's error), or None."""
    off = r.offset_of(ip)
    if off is None:
        return not_in_range(ip, r)
    if taken(off):
        return ERR_ALLOCATED
    return None


def next_free(r: ServiceRange, taken: Callable[[int], bool], start: int) -> int | None:
    """The offset a dynamic allocation gets: the first free one from `start` (wrapping) in the
    upper band, else in the static band; None when the range is full."""
    band = r.static_band
    for lo, hi in ((band, r.size), (0, band)):
        n = hi - lo
        if n <= 0:
            continue
        first = lo + start % n
        for i in range(n):
            off = first + i
            if off >= hi:
                off -= n
            if not taken(off):
                return off
    return None
