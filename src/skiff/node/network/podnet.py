"""The pod network: a network namespace and an IP per pod, on skiff's bridge (the CNI's job).

Topology. A bridge `skiff0` holds the bridge address (the pod CIDR's first
host, 10.244.0.1/16 by default) and a fixed MAC (BRIDGE_MAC). Each pod gets a
netns `skiff-<id>` and a veth pair: `skv<id>` on the bridge, `eth0` in the pod
with the pod IP as a /32 and the routes `<bridge> dev eth0 scope link` and
`default via <bridge> onlink`. So every packet a pod sends, to another pod
too, goes through the host's IP stack (routed, never merely bridged): the
service proxy's DNAT and NetworkPolicy see all of it without br_netfilter.
Forwarding is switched on for skiff0 alone (net.ipv4.conf.skiff0.forwarding;
the host's global ip_forward stays as it is), with send_redirects off (a pod
must not be told to go around the host) and route_localnet on (pods reach
skiff's own loopback listeners through the bridge address: proxier.py DNATs
them). The host routes the service CIDR to skiff0 so it can reach ClusterIPs
too.

Only one skiff at a time owns the pod network of a machine: a flock on
/run/skiff/podnet.lock. Whoever takes it first sweeps what a killed owner
left (namespaces skiff-<10 hex>, links skv<10 hex>, the bridge, routes, the
nft tables skiff-proxy/skiff-policy), so a `kill -9` costs nothing on the
next start. Names are exact patterns, so nothing else is ever touched.

Netlink work (pyroute2) blocks, so it runs on one worker thread; a small
pool of prepared namespaces, each with its veth, address and routes, lets a
pod start without waiting for it. NodeRuntime asks for a Sandbox per pod
(setup) and gives it back when the pod is done (teardown); LoopbackNetwork
is the fallback where namespaces cannot be made (not root, no pyroute2,
another skiff owns the network): every pod shares 127.0.0.1, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import logging
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from skiff.node.network.sandbox import (
    NETNS_DIR,
    Sandbox,
    create_netns,
    hosts_file,
    inside,
    netns_name,
    remove_netns,
)

log = logging.getLogger("skiff.network")

BRIDGE = "skiff0"
# The bridge's own MAC, set when it is made: a Linux bridge without one takes the lowest MAC
# of its ports and changes it as veths come and go, and every pod whose ARP entry still
# names the old one loses the bridge address (DNS, Services, the node) until that entry is
# probed again, seconds later. Locally administered, unicast, and "skiff" in ASCII.
BRIDGE_MAC = "02:73:6b:69:66:66"
LOCK_DIR = Path("/run/skiff")
NETNS_RE = re.compile(r"^skiff-[0-9a-f]{10}$")
VETH_RE = re.compile(r"^skv[0-9a-f]{10}$")
TABLES = ("skiff-proxy", "skiff-policy", "skiff-fence")   # the proxy's, NetworkPolicy's, ours
DEFAULT_POD_CIDR = "10.244.0.0/16"
DEFAULT_SERVICE_CIDR = "10.96.0.0/16"
POOL_SIZE = 4
REFILL_QUIET = 0.25     # seconds without a pod start before the pool refills (while not empty)


class NetworkError(Exception):
    """The pod network cannot be made; the message says why, in one line."""


class PodNetwork(Protocol):
    mode: str                      # "namespaces" or "loopback"
    bridge_ip: str | None          # where pods reach the node (DNS, skiff's listeners)

    async def start(self) -> None: ...

    async def setup(self, namespace: str, name: str, hostname: str) -> Sandbox | None: ...

    async def teardown(self, sb: Sandbox | None) -> None: ...

    async def stop(self) -> None: ...


class LoopbackNetwork:
    """Every pod on the host's loopback (no isolation): where namespaces cannot be made."""
    mode = "loopback"
    bridge_ip: str | None = None

    def __init__(self, why: str = "") -> None:
        self.why = why

    async def start(self) -> None:
        return None

    async def setup(self, namespace: str, name: str, hostname: str) -> Sandbox | None:
        return None

    async def teardown(self, sb: Sandbox | None) -> None:
        return None

    async def stop(self) -> None:
        return None


# ---- decisions (pure) ---------------------------------------------------------------------

def validate_cidrs(pod_cidr: str, service_cidr: str,
                   host_networks: list[str] | None = None) -> list[str]:
    """What is wrong with the two ranges, one line each (kube-apiserver/kube-controller-manager
    wording where they have one); empty when they can be used."""
    errors: list[str] = []
    nets: dict[str, ipaddress.IPv4Network] = {}
    for flag, value, smallest in (("--pod-cidr", pod_cidr, 24), ("--service-cidr", service_cidr, 28)):
        try:
            net = ipaddress.ip_network(value, strict=True)
        except ValueError as e:
            errors.append(f"{flag}: invalid CIDR address: {value} ({e})")
            continue
        if not isinstance(net, ipaddress.IPv4Network):
            errors.append(f"{flag}: {value}: only IPv4 ranges are supported")
            continue
        if net.prefixlen > smallest:
            errors.append(f"{flag}: {value} is too small: the prefix must be /{smallest} or shorter")
            continue
        if net.is_loopback or net.is_multicast or net.is_link_local:
            errors.append(f"{flag}: {value} is not a usable private range")
            continue
        nets[flag] = net
    if len(nets) == 2 and nets["--pod-cidr"].overlaps(nets["--service-cidr"]):
        errors.append(f"--service-cidr {service_cidr} overlaps --pod-cidr {pod_cidr}: "
                      "the ranges must be disjoint")
    for flag, net in nets.items():
        for host in host_networks or []:
            with contextlib.suppress(ValueError):
                other = ipaddress.ip_network(host, strict=False)
                if isinstance(other, ipaddress.IPv4Network) and not other.is_loopback \
                        and net.overlaps(other):
                    errors.append(f"{flag}: {net} overlaps the host's network {other}")
    return errors


class Ipam:
    """Addresses of the pod CIDR: the first is the bridge's; the rest go round, so a freed
    address is not handed out again at once (a late packet must not reach a new pod)."""

    def __init__(self, cidr: str) -> None:
        self.net = ipaddress.IPv4Network(cidr)
        self.gateway = self.net.network_address + 1
        self.used: set[ipaddress.IPv4Address] = set()
        self._next = int(self.gateway) + 1

    def allocate(self) -> str:
        first, last = int(self.gateway) + 1, int(self.net.broadcast_address) - 1
        size = last - first + 1
        for i in range(size):
            cand = ipaddress.IPv4Address(first + (self._next - first + i) % size)
            if cand not in self.used:
                self.used.add(cand)
                self._next = int(cand) + 1
                return str(cand)
        raise NetworkError(f"the pod CIDR {self.net} has no free address left")

    def release(self, ip: str) -> None:
        self.used.discard(ipaddress.IPv4Address(ip))


def resolv_conf(namespace: str, nameserver: str, zone: str = "cluster.local") -> str:
    """A ClusterFirst pod's resolv.conf (the kubelet's)."""
    return (f"nameserver {nameserver}\n"
            f"search {namespace}.svc.{zone} svc.{zone} {zone}\n"
            "options ndots:5\n")


def unavailable_reason() -> str | None:
    """Why this machine cannot have skiff's pod network, or None when it can."""
    if os.geteuid() != 0:
        return "not running as root"
    if not os.path.exists("/proc/self/ns/net"):
        return "this kernel has no network namespaces"
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        return "pyroute2 is not installed"
    from skiff.node.network import nft
    if not nft.available():
        return "nftables is not installed (apt-get install nftables)"
    return None


# ---- the namespaces (I/O) -----------------------------------------------------------------

@dataclass
class _Prepared:
    sid: str
    ip: str


class NamespaceNetwork:
    mode = "namespaces"

    def __init__(self, pod_cidr: str = DEFAULT_POD_CIDR,
                 service_cidr: str = DEFAULT_SERVICE_CIDR, pool_size: int = POOL_SIZE,
                 lock_dir: Path = LOCK_DIR,
                 sweep_tables: Callable[[], None] | None = None) -> None:
        self.ipam = Ipam(pod_cidr)
        self.pod_cidr = pod_cidr
        self.service_cidr = service_cidr
        self.bridge_ip: str | None = str(self.ipam.gateway)
        self.prefix = self.ipam.net.prefixlen
        self.pool_size = pool_size
        self.lock_dir = lock_dir
        self.sweep_tables = sweep_tables or _delete_tables
        self._pool: list[_Prepared] = []
        self._live: dict[str, str] = {}            # sid -> ip, handed out
        self._exec = ThreadPoolExecutor(1, thread_name_prefix="skiff-netlink")
        self._refill: asyncio.Task[None] | None = None
        self._lock_fd: int | None = None
        self._bridge_index = 0
        self._closed = False
        self._last_take = 0.0

    # -- lifecycle

    async def start(self) -> None:
        self._lock_fd = _take_lock(self.lock_dir)
        try:
            await self._run(self._sweep)
            await self._run(self._make_bridge)
        except Exception:
            await self.stop()
            raise
        self._kick()

    async def stop(self) -> None:
        """Remove everything the network made; safe to call twice or after a failed start."""
        self._closed = True
        if self._refill is not None:
            self._refill.cancel()
            with contextlib.suppress(BaseException):
                await self._refill
        if self._lock_fd is not None:
            with contextlib.suppress(Exception):
                await self._run(self._sweep, False)
            os.close(self._lock_fd)
            self._lock_fd = None
        self._pool.clear()
        self._live.clear()
        self._exec.shutdown(wait=False)

    async def setup(self, namespace: str, name: str, hostname: str) -> Sandbox | None:
        if self._closed:
            raise NetworkError("the pod network is stopping")
        prepared = self._pool.pop() if self._pool else None
        if prepared is None:
            prepared = await self._run(self._prepare_one)
        self._live[prepared.sid] = prepared.ip
        self._kick()
        # Beside the namespace, as `ip netns` keeps /etc/netns/NAME: what every process of the
        # pod reads (so not private, and not in skiff's private home), gone with the pod.
        files = self.lock_dir / "netns" / netns_name(prepared.sid)
        files.mkdir(mode=0o755, parents=True, exist_ok=True)
        resolv, hosts = files / "resolv.conf", files / "hosts"
        assert self.bridge_ip is not None
        resolv.write_text(resolv_conf(namespace, self.bridge_ip))
        hosts.write_text(hosts_file(prepared.ip, hostname))
        for f in (resolv, hosts):
            os.chmod(f, 0o644)    # what the pod's processes read, not a secret
        return Sandbox(prepared.sid, prepared.ip, str(resolv), str(hosts), hostname)

    async def teardown(self, sb: Sandbox | None) -> None:
        if sb is None or self._live.pop(sb.id, None) is None:
            return
        await self._run(self._remove, sb.id, sb.ip)

    # -- the pool

    def _kick(self) -> None:
        self._last_take = time.monotonic()
        if not self._closed and (self._refill is None or self._refill.done()):
            self._refill = asyncio.ensure_future(self._fill())

    async def _fill(self) -> None:
        while not self._closed and len(self._pool) < self.pool_size:
            # Refill once pods have stopped arriving for a moment: netlink work costs CPU that
            # the pods just handed a namespace need for their own start (the pool is for them).
            while self._pool and (quiet := time.monotonic() - self._last_take) < REFILL_QUIET:
                await asyncio.sleep(REFILL_QUIET - quiet)
            try:
                self._pool.append(await self._run(self._prepare_one))
            except Exception as e:
                log.warning("pod network: preparing a namespace failed: %s", e)
                return

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._exec, fn, *args)

    # -- netlink (on the worker thread)

    def _make_bridge(self) -> None:
        from pyroute2 import IPRoute
        with IPRoute() as ipr:
            ipr.link("add", ifname=BRIDGE, kind="bridge", address=BRIDGE_MAC)
            idx = ipr.link_lookup(ifname=BRIDGE)[0]
            ipr.addr("add", index=idx, address=self.bridge_ip, prefixlen=self.prefix)
            ipr.link("set", index=idx, state="up")
            for key, value in (("forwarding", "1"), ("send_redirects", "0"),
                               ("route_localnet", "1")):
                Path(f"/proc/sys/net/ipv4/conf/{BRIDGE}/{key}").write_text(value)
            svc = ipaddress.IPv4Network(self.service_cidr)
            ipr.route("add", dst=str(svc.network_address), dst_len=svc.prefixlen, oif=idx)
            self._bridge_index = idx
        _run_nft(fence_rules())

    def _prepare_one(self) -> _Prepared:
        from pyroute2 import IPRoute
        sid = secrets.token_hex(5)
        ip = self.ipam.allocate()
        name = netns_name(sid)
        try:
            path = create_netns(name)
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                with IPRoute() as ipr:
                    ipr.link("add", ifname=f"skv{sid}", kind="veth",
                             peer={"ifname": "eth0", "net_ns_fd": fd})
                    idx = ipr.link_lookup(ifname=f"skv{sid}")[0]
                    ipr.link("set", index=idx, master=self._bridge_index, state="up")
                # A pod that reaches itself through its Service: the DNATed packet goes back
                # out of the port it came in on (kubelet's hairpin-veth mode does the same).
                Path(f"/sys/class/net/skv{sid}/brport/hairpin_mode").write_text("1")
            finally:
                os.close(fd)
            # pyroute2's NetNS would fork a helper; this thread joins the namespace instead.
            with inside(path), IPRoute() as ns:
                eth0 = ns.link_lookup(ifname="eth0")[0]
                ns.addr("add", index=eth0, address=ip, prefixlen=32)
                ns.link("set", index=eth0, state="up")
                ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
                ns.route("add", dst=self.bridge_ip, dst_len=32, oif=eth0, scope=253)
                ns.route("add", dst="0.0.0.0", dst_len=0, gateway=self.bridge_ip, oif=eth0,
                         flags=4)   # RTNH_F_ONLINK: the gateway is not in a /32's subnet
        except Exception as e:
            self.ipam.release(ip)
            with contextlib.suppress(Exception):
                self._remove(sid)
            raise NetworkError(f"cannot make the pod's network namespace {name}: {e}") from e
        return _Prepared(sid, ip)

    def _remove(self, sid: str, ip: str | None = None) -> None:
        from pyroute2 import IPRoute
        if ip is not None:
            self.ipam.release(ip)     # here: the worker thread is the only one that allocates
        with contextlib.suppress(Exception), IPRoute() as ipr:
            for idx in ipr.link_lookup(ifname=f"skv{sid}"):
                ipr.link("del", index=idx)
        remove_netns(netns_name(sid))
        shutil.rmtree(self.lock_dir / "netns" / netns_name(sid), ignore_errors=True)

    def _sweep(self, left: bool = True) -> None:
        """Remove every namespace, link, route and table skiff's pod network makes (`left`:
        what a previous run left behind, worth a line in the log)."""
        from pyroute2 import IPRoute
        removed = 0
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(NETNS_DIR):
                if NETNS_RE.match(name):
                    with contextlib.suppress(Exception):
                        remove_netns(name)
                        removed += 1
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.lock_dir / "netns"):
                if NETNS_RE.match(name):
                    shutil.rmtree(self.lock_dir / "netns" / name, ignore_errors=True)
        with IPRoute() as ipr:
            for link in ipr.get_links():
                ifname = link.get_attr("IFLA_IFNAME") or ""
                if VETH_RE.match(ifname) or ifname == BRIDGE:
                    with contextlib.suppress(Exception):
                        ipr.link("del", index=link["index"])   # its routes go with it
        with contextlib.suppress(Exception):
            self.sweep_tables()
        if removed and left:
            log.info("pod network: removed %d namespaces left behind", removed)


def fence_rules(bridge: str = BRIDGE, table: str = "skiff-fence") -> str:
    """Pod traffic stays on the machine: forwarding is on for the bridge, so without this a
    pod's packet to an outside address would be routed out of the host's own interfaces."""
    return (f"table inet {table} {{}}\ndelete table inet {table}\n"
            f"table inet {table} {{\n"
            f"  chain forward {{\n    type filter hook forward priority filter - 10; policy accept;\n"
            f'    iifname "{bridge}" oifname != "{bridge}" drop\n'
            f'    oifname "{bridge}" iifname != "{bridge}" drop\n  }}\n}}\n')


def _run_nft(script: str) -> None:
    from skiff.node.network.nft import Nft
    with Nft() as nft:
        nft.run(script)


def _take_lock(lock_dir: Path) -> int:
    lock_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(lock_dir, 0o755)     # skiff's umask is 077; pods read their resolv.conf below it
    path = lock_dir / "podnet.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = ""
        with contextlib.suppress(OSError, ValueError):
            holder = f" (skiff pid {int(os.pread(fd, 32, 0).decode().strip())})"
        os.close(fd)
        raise NetworkError(f"another skiff owns this machine's pod network{holder}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _delete_tables() -> None:
    """Delete skiff's own nft tables by their exact names (nft.py lists them), never another's
    that merely shares the prefix (a test's or a benchmark's)."""
    from skiff.node.network.nft import Nft, list_tables
    with Nft() as nft:
        mine = [(fam, name) for fam, name in list_tables(nft, "skiff") if name in TABLES]
        if mine:
            nft.run("".join(f"delete table {fam} {name}\n" for fam, name in mine))


async def choose(mode: str, pod_cidr: str = DEFAULT_POD_CIDR,
                 service_cidr: str = DEFAULT_SERVICE_CIDR) -> tuple[PodNetwork, str]:
    """The started pod network for `--pod-network` (auto, namespaces, loopback), and a note
    for `skiff up` to print when it is the shared-loopback fallback ("" otherwise).
    `namespaces` that cannot be had raises NetworkError; `auto` falls back."""
    if mode == "loopback":
        return LoopbackNetwork("asked for"), LOOPBACK_NOTE.format(why="--pod-network loopback")
    why = unavailable_reason()
    if why is None:
        net = NamespaceNetwork(pod_cidr, service_cidr)
        try:
            await net.start()
            return net, ""
        except NetworkError as e:
            why = str(e)
        except Exception as e:      # netlink refused: a sandbox without the capability
            why = f"cannot make network namespaces ({e})"
    if mode == "namespaces":
        raise NetworkError(f"--pod-network namespaces: {why}")
    return LoopbackNetwork(why), LOOPBACK_NOTE.format(why=why)


LOOPBACK_NOTE = ("pod network: shared loopback ({why}): pods are not isolated, and "
                 "NetworkPolicy and STRICT mTLS are not enforced")


def host_networks() -> list[str]:
    """The host's own IPv4 networks (its interfaces' addresses), which pod and service ranges
    must not overlap; skiff's own bridge is not the host's."""
    import psutil
    nets: list[str] = []
    for ifname, addrs in psutil.net_if_addrs().items():
        if ifname == BRIDGE or VETH_RE.match(ifname):
            continue
        for a in addrs:
            if a.family == socket.AF_INET and a.netmask:
                with contextlib.suppress(ValueError):
                    nets.append(str(ipaddress.ip_network(f"{a.address}/{a.netmask}", strict=False)))
    return nets


def first_host(cidr: str) -> str:
    """The first usable address of a range: the bridge's of the pod CIDR, the kubernetes
    Service's of the service CIDR."""
    return str(ipaddress.ip_network(cidr, strict=False).network_address + 1)
