"""The sidecar's capture rules (node/network/capture.py): istio-iptables' arguments parsed (known
flags, long names, unknown flags skipped, malformed values refused), the nft script as text, and
the script in the kernel: a throwaway pair of network namespaces (skiff-captest-*, which the pod
network's sweep never matches) where a client's connections to the "pod" land on 15006 with
their original destination, the pod's own outbound connections land on 15001, and the excluded
ports, the proxy's mark and UDP pass untouched."""

from __future__ import annotations

import ctypes
import os
import shutil
import socket
import struct
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from skiff.node.network.capture import (
    TABLE,
    CaptureArgs,
    apply_capture,
    capture_ruleset,
    parse_args,
)

T = TypeVar("T")

ISTIO = ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT",
         "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020",
         "--log_output_level=default:info"]


def body(script: str, chain: str) -> list[str]:
    """The rule lines of one chain of a capture script."""
    lines = script.splitlines()
    start = lines.index(f"\tchain {chain} {{")
    out = []
    for ln in lines[start + 2:]:
        if ln.strip() == "}":
            break
        out.append(ln.strip())
    return out


# --- parsing ------------------------------------------------------------------------------

def test_parse_istio_defaults() -> None:
    a = parse_args(ISTIO)
    assert a == CaptureArgs(proxy_port=15001, inbound_port=15006, proxy_uids=(1337,),
                            mode="REDIRECT", include_ips="*", exclude_ips=(),
                            include_inbound="*", exclude_inbound=(15020, 15021, 15090),
                            log_output_level="default:info")


def test_parse_long_names_equals_and_unknown_flags() -> None:
    a = parse_args(["--envoy-port=15011", "--inbound-capture-port", "15016",
                    "--istio-local-exclude-ports=8022", "--run-validation", "--future-flag",
                    "x", "--other=1", "-k", "eth1", "-n"])
    assert (a.proxy_port, a.inbound_port, a.exclude_inbound) == (15011, 15016, (8022,))
    assert a.ignored == ("--future-flag", "x", "--other=1")
    assert a.dry_run is True


BAD = [
    (["-p", "http"], "-p: invalid port 'http'"),
    (["-p", "70000"], "-p: invalid port '70000'"),
    (["-d", "15020,abc"], "-d: invalid port 'abc'"),
    (["-i", "10.0.0.0/33"], "-i: invalid CIDR '10.0.0.0/33'"),
    (["-m", "TPROXY"], "TPROXY is not supported"),
    (["-m", "BOGUS"], "invalid interception mode"),
    (["-u", "root"], "-u: invalid id"),
    (["-z"], "-z: a value is required"),
    (["stray"], "unexpected argument 'stray'"),
    (["--log_output_level=loud"], "--log_output_level: invalid value"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[b[1] for b in BAD])
def test_malformed_values_are_refused(args: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        capture_ruleset(["istio-iptables", *args])


# --- the script ---------------------------------------------------------------------------

RULES = [
    ("Istio's defaults", ISTIO,
     ['iifname "lo" return', "tcp dport { 15020, 15021, 15090 } return",
      "meta l4proto tcp redirect to :15006"],
     ["meta l4proto != tcp return", "meta mark 1337 return", "meta skuid 1337 return",
      'oifname "lo" return', "meta l4proto tcp redirect to :15001"]),
    ("the guide's excluded inbound ports and -o",
     [*ISTIO[:-2], "15090,15021,8444,8022,15020", "-o", "9092,5432"],
     ['iifname "lo" return', "tcp dport { 8022, 8444, 15020, 15021, 15090 } return",
      "meta l4proto tcp redirect to :15006"],
     ["meta l4proto != tcp return", "meta mark 1337 return", "meta skuid 1337 return",
      'oifname "lo" return', "tcp dport { 5432, 9092 } return",
      "meta l4proto tcp redirect to :15001"]),
    ("-b ports only: -d does not apply",
     ["-b", "8080,9090", "-d", "15020"],
     ['iifname "lo" return', "tcp dport { 8080, 9090 } redirect to :15006"],
     None),
    ("-b '' captures nothing inbound", ["-b", ""], ['iifname "lo" return'], None),
    ("-i CIDRs, -x, -q and a gid",
     ["-i", "10.96.0.0/16,fd00::/64", "-x", "10.96.0.1", "-q", "443", "-g", "1338"],
     None,
     ["meta l4proto != tcp return", "meta mark 1337 return", "meta skuid 1337 return",
      "meta skgid 1338 return", 'oifname "lo" return', "tcp dport 443 redirect to :15001",
      "ip daddr { 10.96.0.1/32 } return", "ip daddr { 10.96.0.0/16 } redirect to :15001",
      "ip6 daddr { fd00::/64 } redirect to :15001"]),
    ("-i '' captures nothing outbound", ["-i", ""], None,
     ["meta l4proto != tcp return", "meta mark 1337 return", "meta skuid 1337 return",
      'oifname "lo" return']),
    ("other ports and uids", ["-p", "15011", "-z", "15016", "-u", "1337,1400"],
     ['iifname "lo" return', "meta l4proto tcp redirect to :15016"],
     ["meta l4proto != tcp return", "meta mark 1337 return", "meta mark 1400 return",
      "meta skuid 1337 return", "meta skuid 1400 return", 'oifname "lo" return',
      "meta l4proto tcp redirect to :15011"]),
]


@pytest.mark.parametrize("title,args,inbound,outbound", RULES, ids=[r[0] for r in RULES])
def test_rules(title: str, args: list[str], inbound: list[str] | None,
               outbound: list[str] | None) -> None:
    script = capture_ruleset(args)
    if inbound is not None:
        assert body(script, "prerouting") == inbound
    if outbound is not None:
        assert body(script, "output") == outbound
    assert "udp" not in script


def test_script_replaces_the_table_atomically() -> None:
    script = capture_ruleset(ISTIO)
    assert script.splitlines()[:3] == [f"table inet {TABLE} {{}}", f"delete table inet {TABLE}",
                                       f"table inet {TABLE} {{"]
    assert "type nat hook prerouting priority dstnat; policy accept;" in script
    assert "type nat hook output priority -100; policy accept;" in script


# --- in the kernel ------------------------------------------------------------------------

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("ip") is None,
    reason="needs root (network namespaces, nftables) and the `nft` and `ip` commands")

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
SO_ORIGINAL_DST = 80
POD_IP, CLIENT_IP, ELSEWHERE = "10.250.7.2", "10.250.7.1", "10.250.8.9"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def in_netns(netns: str, fn: Callable[[], T]) -> T:
    """Run fn with this thread in netns; sockets made there stay there."""
    with open(f"/run/netns/{netns}") as target, open("/proc/thread-self/ns/net") as home:
        if _libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {netns}")
        try:
            return fn()
        finally:
            if _libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the host")


def run_in(netns: str, fn: Callable[[], T]) -> T:
    """in_netns on a thread of its own, so this thread's namespace never changes."""
    box: dict[str, T] = {}
    err: list[BaseException] = []

    def go() -> None:
        try:
            box["v"] = in_netns(netns, fn)
        except BaseException as e:          # handed back to the caller
            err.append(e)
    t = threading.Thread(target=go)
    t.start()
    t.join(30)
    if err:
        raise err[0]
    return box["v"]


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[str, str]]:
    """(pod netns, client netns), joined by a veth; the pod's default route is the client."""
    tag = uuid.uuid4().hex[:6]
    pod_ns, client_ns = f"skiff-captest-{tag}-p", f"skiff-captest-{tag}-c"
    made: list[str] = []
    try:
        for n in (pod_ns, client_ns):
            ip("netns", "add", n)
            made.append(n)
        ip("link", "add", f"skcp{tag}", "netns", pod_ns, "type", "veth", "peer", "name",
           f"skcc{tag}", "netns", client_ns)
        for n, dev, addr in ((pod_ns, f"skcp{tag}", POD_IP), (client_ns, f"skcc{tag}", CLIENT_IP)):
            ip("-n", n, "link", "set", "lo", "up")
            ip("-n", n, "addr", "add", f"{addr}/24", "dev", dev)
            ip("-n", n, "link", "set", dev, "up")
        # Elsewhere is through the client, which forwards nothing: what is not captured is lost.
        ip("-n", pod_ns, "route", "add", "default", "via", CLIENT_IP)
        yield pod_ns, client_ns
    finally:
        for n in made:
            subprocess.run(["ip", "netns", "del", n], capture_output=True)


def listen(port: int, kind: int = socket.SOCK_STREAM) -> socket.socket:
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    if kind == socket.SOCK_STREAM:
        s.listen(16)
    s.settimeout(3)
    return s


def original_dst(conn: socket.socket) -> tuple[str, int]:
    try:
        raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    except OSError:
        return "", 0                  # no conntrack entry: not NATed
    port, addr = struct.unpack_from("!2xH4s", raw)
    return socket.inet_ntoa(addr), port


def accepted_by(listeners: dict[int, socket.socket], connect: Callable[[], socket.socket]
                ) -> tuple[int, tuple[str, int]] | None:
    """Which listener accepted the connection `connect` makes, and its original destination."""
    client = connect()
    try:
        for lst in listeners.values():
            lst.settimeout(0.05)
        for _ in range(5):
            for port, lst in listeners.items():
                try:
                    conn, _ = lst.accept()
                except (TimeoutError, BlockingIOError):
                    continue
                with conn:
                    return port, original_dst(conn)
        return None
    finally:
        client.close()


def dial(addr: str, port: int, mark: int = 0, timeout: float = 2.0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if mark:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
    s.settimeout(timeout)
    try:
        s.connect((addr, port))
    except (TimeoutError, OSError):
        pass                  # a dropped or refused connect: nothing accepted it
    return s


@needs_root
def test_capture_in_a_pod_namespace(pair: tuple[str, str]) -> None:
    pod_ns, client_ns = pair
    script = capture_ruleset([*ISTIO[:-2], "15090,15021,8444,15020", "-o", "5432"])
    run_in(pod_ns, lambda: apply_capture(script))
    run_in(pod_ns, lambda: apply_capture(script))          # istio-init run twice: one table
    listing = subprocess.run(["ip", "netns", "exec", pod_ns, "nft", "list", "table", "inet",
                              TABLE], capture_output=True, text=True, check=True).stdout
    assert "redirect to :15006" in listing and "redirect to :15001" in listing
    tables = subprocess.run(["ip", "netns", "exec", pod_ns, "nft", "list", "tables"],
                            capture_output=True, text=True, check=True).stdout
    assert tables.count(TABLE) == 1
    # The host's own ruleset is untouched.
    host = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert TABLE not in host

    ports = (15001, 15006, 8080, 8444)
    listeners = run_in(pod_ns, lambda: {p: listen(p) for p in ports})
    udp = run_in(pod_ns, lambda: listen(5353, socket.SOCK_DGRAM))
    try:
        # Inbound: a client's connection to the app's port lands on 15006, original kept.
        assert run_in(client_ns, lambda: accepted_by(listeners, lambda: dial(POD_IP, 8080))) \
            == (15006, (POD_IP, 8080))
        # An excluded inbound port reaches its own listener.
        got = run_in(client_ns, lambda: accepted_by(listeners, lambda: dial(POD_IP, 8444)))
        assert got is not None and got[0] == 8444
        # Outbound from the pod: redirected to 15001, SO_ORIGINAL_DST names the destination.
        assert run_in(pod_ns, lambda: accepted_by(listeners, lambda: dial(ELSEWHERE, 80))) \
            == (15001, (ELSEWHERE, 80))
        # The proxy's own socket (SO_MARK 1337) and an excluded outbound port are not captured.
        assert run_in(pod_ns, lambda: accepted_by(
            listeners, lambda: dial(ELSEWHERE, 80, mark=1337, timeout=0.3))) is None
        assert run_in(pod_ns, lambda: accepted_by(
            listeners, lambda: dial(ELSEWHERE, 5432, timeout=0.3))) is None
        # Loopback inside the pod is not captured.
        got = run_in(pod_ns, lambda: accepted_by(listeners, lambda: dial("127.0.0.1", 8080)))
        assert got is not None and got[0] == 8080

        # UDP passes: the datagram reaches its own socket.
        def send_udp() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(b"q", (POD_IP, 5353))
        run_in(client_ns, send_udp)
        assert udp.recvfrom(16)[0] == b"q"
    finally:
        for s in [*listeners.values(), udp]:
            s.close()
