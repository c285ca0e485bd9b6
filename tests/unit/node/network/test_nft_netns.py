"""The compiled rulesets in the kernel: real namespaces, a real bridge, real connections.

A module fixture builds the pod-network topology podnet.py builds, under test
names: bridge skiffnt0 (10.245.0.1/16, forwarding, route_localnet and no
redirects on it alone), one netns skiffnt-<ns>-<pod> per pod with a veth
(host side skntv<i>) carrying the pod IP as a /32 and the routes via the
bridge, and a host route for a test service CIDR (10.97.0.0/16) via the
bridge. Every pod serves "<ns>/<pod>" on TCP 80 and 81 and UDP 81, from
listeners this process opens inside the pod's namespace (setns on a thread).
Rules go into tables skiffnt-proxy / skiffnt-policy, which teardown deletes.

NetworkPolicy cases are truth tables in the style of Kubernetes'
test/e2e/network/netpol: for each policy set, every pod probes every pod on
every port in parallel and the whole matrix is compared with the expected one.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import selectors
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
import yaml

from skiff.node.network.nft import Nft, delete_tables, list_tables
from skiff.node.network.policy import compile_policies
from skiff.node.network.proxier import compile_proxy

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("ip") is None,
    reason="needs root (network namespaces, nftables) and the `nft` and `ip` commands")

BRIDGE, BRIDGE_IP, POD_CIDR, SERVICE_CIDR = "skiffnt0", "10.245.0.1", "10.245.0.0/16", "10.97.0.0/16"
PREFIX = "skiffnt"
PROXY_TABLE, POLICY_TABLE = "skiffnt-proxy", "skiffnt-policy"
PORTS = (80, 81)
PROBE_TIMEOUT = 1.0
T = TypeVar("T")

# (namespace, labels) and (namespace, pod, labels): the e2e netpol model (x, y, z; a, b, c)
# plus the namespaces of the guide's chapters 1.5 and 1.6.
NAMESPACES: dict[str, dict[str, str]] = {
    "x": {"ns": "x"}, "y": {"ns": "y"}, "z": {"ns": "z"},
    "knative-serving": {"knative.openshift.io/part-of": "openshift-serverless"},
    "knative-serving-ingress": {"knative.openshift.io/part-of": "openshift-serverless"},
    "openshift-monitoring": {"name": "openshift-monitoring"},
    "team-alpha": {},
}
PODS = [(ns, p, {"pod": p}) for ns in "xyz" for p in "abc"] + [
    ("knative-serving", "activator", {"app": "activator"}),
    ("knative-serving-ingress", "gateway", {"app": "kourier-gateway"}),
    ("openshift-monitoring", "prometheus", {"app": "prometheus"}),
    ("team-alpha", "webapp", {"app": "webapp"}),
]

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def sysctl(key: str, value: str) -> None:
    with open(f"/proc/sys/{key.replace('.', '/')}", "w") as f:
        f.write(value)


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


@dataclass
class Pod:
    namespace: str
    name: str
    labels: dict[str, str]
    ip: str
    netns: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def obj(self) -> dict[str, Any]:
        ports = [{"name": f"serve-{p}-tcp", "containerPort": p, "protocol": "TCP"} for p in PORTS]
        ports.append({"name": "serve-81-udp", "containerPort": 81, "protocol": "UDP"})
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"namespace": self.namespace, "name": self.name,
                             "labels": self.labels},
                "spec": {"containers": [{"name": "c", "ports": ports}]},
                "status": {"phase": "Running", "podIP": self.ip}}


@dataclass
class Servers:
    """Every pod's listeners, served by one selector thread."""
    sel: selectors.DefaultSelector = field(default_factory=selectors.DefaultSelector)
    stop: threading.Event = field(default_factory=threading.Event)
    sockets: list[socket.socket] = field(default_factory=list)

    def add(self, sock: socket.socket, reply: bytes) -> None:
        sock.setblocking(False)
        self.sockets.append(sock)
        self.sel.register(sock, selectors.EVENT_READ, reply)

    def serve(self) -> None:
        while not self.stop.is_set():
            for key, _ in self.sel.select(timeout=0.1):
                sock, reply = key.fileobj, key.data
                assert isinstance(sock, socket.socket)
                try:
                    if sock.type == socket.SOCK_STREAM:
                        conn, peer = sock.accept()
                        with conn:
                            conn.setblocking(True)
                            conn.sendall(reply + b" " + peer[0].encode() + b"\n")
                    else:
                        _, peer = sock.recvfrom(512)
                        sock.sendto(reply + b" " + peer[0].encode() + b"\n", peer)
                except OSError:
                    pass


@dataclass
class World:
    pods: dict[str, Pod]
    nft: Nft
    host_port: int           # a 127.0.0.1 listener pods reach as BRIDGE_IP:6443
    bridge_port: int         # a listener on BRIDGE_IP itself

    def pod(self, key: str) -> Pod:
        return self.pods[key]

    def namespaces(self) -> list[dict[str, Any]]:
        return [{"metadata": {"name": n, "labels": labels}} for n, labels in NAMESPACES.items()]

    def apply_policies(self, policies: list[dict[str, Any]]) -> None:
        self.nft.run(compile_policies(policies, [p.obj() for p in self.pods.values()],
                                      self.namespaces(), pod_cidr=POD_CIDR,
                                      bridge_ip=BRIDGE_IP, table=POLICY_TABLE))

    def apply_proxy(self, services: list[dict[str, Any]], slices: list[dict[str, Any]]) -> None:
        self.nft.run(compile_proxy(services, slices, bridge_ip=BRIDGE_IP, pod_cidr=POD_CIDR,
                                   host_ports={6443: self.host_port}, table=PROXY_TABLE,
                                   bridge=BRIDGE))


def _sweep() -> None:
    for line in subprocess.run(["ip", "netns", "list"], capture_output=True,
                               text=True).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(PREFIX + "-"):
            ip("netns", "del", name, check=False)
    ip("link", "del", BRIDGE, check=False)
    delete_tables(PREFIX)


def _listen(kind: int, addr: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    if kind == socket.SOCK_STREAM:
        s.listen(128)
    return s


def _wait(cond: Callable[[], bool], what: str, deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    _sweep()
    servers = Servers()
    thread = threading.Thread(target=servers.serve, daemon=True)
    nft = Nft()
    try:
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{BRIDGE_IP}/16", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        for key, value in (("forwarding", "1"), ("send_redirects", "0"),
                           ("route_localnet", "1")):
            sysctl(f"net.ipv4.conf.{BRIDGE}.{key}", value)
        ip("route", "add", SERVICE_CIDR, "dev", BRIDGE)
        pods: dict[str, Pod] = {}
        for i, (ns, name, labels) in enumerate(PODS):
            netns, addr, veth = f"{PREFIX}-{ns[:12]}-{name[:8]}", f"10.245.0.{10 + i}", f"skntv{i}"
            ip("netns", "add", netns)
            ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
            ip("link", "set", veth, "master", BRIDGE, "up")
            # With br_netfilter loaded (bridge-nf-call-iptables=1), a DNAT back to the sender
            # is bridged out of the port it came in on: the port needs hairpin, as kubelet's
            # hairpin-veth mode sets.
            ip("link", "set", veth, "type", "bridge_slave", "hairpin", "on")
            for args in (("link", "set", "lo", "up"), ("link", "set", "eth0", "up"),
                         ("addr", "add", f"{addr}/32", "dev", "eth0"),
                         ("route", "add", BRIDGE_IP, "dev", "eth0", "scope", "link"),
                         ("route", "add", "default", "via", BRIDGE_IP, "dev", "eth0", "onlink")):
                ip("-n", netns, *args)
            pod = Pod(ns, name, labels, addr, netns)
            pods[pod.key] = pod
            reply = pod.key.encode()
            for port in PORTS:
                servers.add(in_netns(netns, lambda p=port: _listen(socket.SOCK_STREAM,
                                                                   "0.0.0.0", p)), reply)
            servers.add(in_netns(netns, lambda: _listen(socket.SOCK_DGRAM, "0.0.0.0", 81)), reply)
        host = _listen(socket.SOCK_STREAM, "127.0.0.1", 0)
        servers.add(host, b"host-loopback")
        on_bridge = _listen(socket.SOCK_STREAM, BRIDGE_IP, 0)
        servers.add(on_bridge, b"host-bridge")
        thread.start()
        w = World(pods, nft, host.getsockname()[1], on_bridge.getsockname()[1])
        first = next(iter(pods.values()))
        _wait(lambda: connect_from(None, first.ip, 80) == first.key, "the pods' listeners")
        yield w
    finally:
        servers.stop.set()
        if thread.is_alive():
            thread.join(timeout=5)
        for s in servers.sockets:
            s.close()
        _sweep()
        nft.close()


@pytest.fixture
def no_rules(world: World) -> Iterator[World]:
    """Each test starts and ends without test tables in the kernel."""
    delete_tables(PREFIX, world.nft)
    try:
        yield world
    finally:
        delete_tables(PREFIX, world.nft)


def connect_from(netns: str | None, addr: str, port: int, *, udp: bool = False,
                 timeout: float = PROBE_TIMEOUT) -> str | None:
    """The name the server at addr:port answers with, from netns (None: the host);
    None when the connection is dropped. A refusal raises ConnectionRefusedError."""
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM

    def make() -> socket.socket:
        return socket.socket(socket.AF_INET, kind)

    sock = in_netns(netns, make) if netns else make()
    with sock:
        sock.settimeout(timeout)
        try:
            if udp:
                sock.sendto(b"?", (addr, port))
                data = sock.recv(512)
            else:
                sock.connect((addr, port))
                data = sock.makefile("rb").readline()
        except TimeoutError:
            return None
        return data.decode().split()[0] if data else None


def connect_full(netns: str | None, addr: str, port: int) -> tuple[str, str] | None:
    """(server name, the source address the server saw)."""
    def make() -> socket.socket:
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    sock = in_netns(netns, make) if netns else make()
    with sock:
        sock.settimeout(PROBE_TIMEOUT)
        try:
            sock.connect((addr, port))
            name, seen = sock.makefile("rb").readline().decode().split()
        except TimeoutError:
            return None
        return name, seen


# ---------------------------------------------------------------------------
# Services

def service(name: str, vip: str, *, affinity: bool = False,
            ports: tuple[tuple[str, int, str], ...] = (("http", 8080, "TCP"),)) -> dict[str, Any]:
    spec: dict[str, Any] = {"clusterIP": vip, "ports": [
        {"name": n, "port": p, "protocol": proto} for n, p, proto in ports]}
    if affinity:
        spec["sessionAffinity"] = "ClientIP"
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": "x", "name": name}, "spec": spec}


def endpoint_slice(svc: str, pods: list[Pod],
                   ports: tuple[tuple[str, int, str], ...] = (("http", 80, "TCP"),)
                   ) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"namespace": "x", "name": f"{svc}-abc",
                         "labels": {"kubernetes.io/service-name": svc}},
            "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports],
            "endpoints": [{"addresses": [p.ip], "conditions": {"ready": True}} for p in pods]}


def test_service_vip_spreads_over_ready_endpoints_from_host_and_pods(no_rules: World) -> None:
    w = no_rules
    a, b, c = w.pod("x/a"), w.pod("x/b"), w.pod("y/c")
    w.apply_proxy([service("web", "10.97.0.10")], [endpoint_slice("web", [a, b])])
    for source in (None, c.netns):
        seen: set[str | None] = set()
        deadline = time.monotonic() + 10
        while seen != {a.key, b.key} and time.monotonic() < deadline:
            seen.add(connect_from(source, "10.97.0.10", 8080))
        assert seen == {a.key, b.key}, f"from {source or 'the host'}"


def test_udp_service_vip(no_rules: World) -> None:
    w = no_rules
    a = w.pod("x/a")
    udp = (("dns", 53, "UDP"),)
    w.apply_proxy([service("dns", "10.97.0.53", ports=udp)],
                  [endpoint_slice("dns", [a], ports=(("dns", 81, "UDP"),))])
    assert connect_from(w.pod("y/b").netns, "10.97.0.53", 53, udp=True) == a.key


def test_client_ip_affinity_sticks(no_rules: World) -> None:
    w = no_rules
    a, b = w.pod("x/a"), w.pod("x/b")
    w.apply_proxy([service("sticky", "10.97.0.11", affinity=True)],
                  [endpoint_slice("sticky", [a, b])])
    for client in (w.pod("y/a"), w.pod("y/b"), w.pod("z/c")):
        answers = {connect_from(client.netns, "10.97.0.11", 8080) for _ in range(12)}
        assert len(answers) == 1 and answers <= {a.key, b.key}, client.key


def test_service_without_endpoints_is_refused_not_left_hanging(no_rules: World) -> None:
    w = no_rules
    w.apply_proxy([service("empty", "10.97.0.12")], [endpoint_slice("empty", [])])
    for source in (None, w.pod("y/a").netns):
        # A drop would surface as a timeout (None); a reject is ConnectionRefusedError.
        with pytest.raises(ConnectionRefusedError):
            connect_from(source, "10.97.0.12", 8080, timeout=5.0)


def test_hairpin_pod_reaches_itself_through_its_service(no_rules: World) -> None:
    w = no_rules
    a = w.pod("x/a")
    w.apply_proxy([service("self", "10.97.0.13")], [endpoint_slice("self", [a])])
    # Masqueraded to the bridge address, or the reply would never find its way back.
    assert connect_full(a.netns, "10.97.0.13", 8080) == (a.key, BRIDGE_IP)
    # Other clients keep their own address.
    assert connect_full(w.pod("y/a").netns, "10.97.0.13", 8080) == (a.key, w.pod("y/a").ip)


def test_hairpin_through_a_service_of_several_endpoints(no_rules: World) -> None:
    # The endpoint is chosen by the DNAT map; the hairpin mark comes after it, in nat
    # postrouting: masqueraded only when the pod landed on itself.
    w = no_rules
    a, b = w.pod("x/a"), w.pod("x/b")
    w.apply_proxy([service("pair", "10.97.0.14")], [endpoint_slice("pair", [a, b])])
    want = {(a.key, BRIDGE_IP), (b.key, a.ip)}
    seen: set[tuple[str, str] | None] = set()
    deadline = time.monotonic() + 10
    while not want <= seen and time.monotonic() < deadline:
        seen.add(connect_full(a.netns, "10.97.0.14", 8080))
    assert seen == want


def test_pods_reach_host_loopback_listeners_through_the_bridge_address(no_rules: World) -> None:
    w = no_rules
    w.apply_proxy([], [])
    assert connect_from(w.pod("z/a").netns, BRIDGE_IP, 6443) == "host-loopback"


def test_reapply_is_atomic_and_tables_are_swept(no_rules: World) -> None:
    w = no_rules
    a, b = w.pod("x/a"), w.pod("x/b")
    w.apply_proxy([service("web", "10.97.0.10")], [endpoint_slice("web", [a])])
    w.apply_proxy([service("web", "10.97.0.10")], [endpoint_slice("web", [b])])
    assert connect_from(w.pod("y/a").netns, "10.97.0.10", 8080) == b.key
    w.apply_policies([])
    assert sorted(list_tables(w.nft, PREFIX)) == [("inet", POLICY_TABLE), ("ip", PROXY_TABLE)]
    assert sorted(delete_tables(PREFIX, w.nft)) == [f"inet {POLICY_TABLE}", f"ip {PROXY_TABLE}"]
    assert list_tables(w.nft, PREFIX) == []


# ---------------------------------------------------------------------------
# NetworkPolicy truth tables

Expect = Callable[[Pod, Pod, int], bool]


def probe_matrix(w: World, pods: list[Pod]) -> dict[tuple[str, str, int], bool]:
    cases = list(itertools.product(pods, pods, PORTS))
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        got = list(pool.map(lambda c: connect_from(c[0].netns, c[1].ip, c[2]) == c[1].key, cases))
    return {(s.key, d.key, port): ok for (s, d, port), ok in zip(cases, got, strict=True)}


def check_truth_table(w: World, policies: list[dict[str, Any]], expect: Expect,
                      pods: list[str] | None = None) -> None:
    w.apply_policies(policies)
    chosen = [w.pod(k) for k in (pods or [f"{ns}/{p}" for ns in "xyz" for p in "abc"])]
    got = probe_matrix(w, chosen)
    # A pod always reaches itself: that traffic never leaves its namespace (AllowLoopback).
    want = {(s.key, d.key, port): s is d or expect(s, d, port)
            for s, d, port in itertools.product(chosen, chosen, PORTS)}
    wrong = sorted(k for k in want if want[k] != got[k])
    assert not wrong, "\n".join(
        f"{s} -> {d}:{port}: expected {'allowed' if want[(s, d, port)] else 'denied'}"
        for s, d, port in wrong)


def policy(ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"namespace": ns, "name": name}, "spec": spec}


def sel(**labels: str) -> dict[str, Any]:
    return {"matchLabels": labels}


TRUTH_TABLES: list[tuple[str, list[dict[str, Any]], Expect]] = [
    ("no policy: all allowed", [], lambda s, d, port: True),
    ("deny all ingress in x",
     [policy("x", "deny", {"podSelector": {}, "policyTypes": ["Ingress"]})],
     lambda s, d, port: d.namespace != "x"),
    ("x/a admits namespace y on port 80 only",
     [policy("x", "allow-y", {"podSelector": sel(pod="a"), "ingress": [
         {"from": [{"namespaceSelector": sel(ns="y")}], "ports": [{"port": 80}]}]})],
     lambda s, d, port: d.key != "x/a" or (s.namespace == "y" and port == 80)),
    ("namespaceSelector AND podSelector in one peer",
     [policy("x", "and", {"podSelector": sel(pod="a"), "ingress": [
         {"from": [{"namespaceSelector": sel(ns="y"), "podSelector": sel(pod="b")}]}]})],
     lambda s, d, port: d.key != "x/a" or s.key == "y/b"),
    ("namespaceSelector OR podSelector as two peers",
     [policy("x", "or", {"podSelector": sel(pod="a"), "ingress": [
         {"from": [{"namespaceSelector": sel(ns="y")}, {"podSelector": sel(pod="b")}]}]})],
     lambda s, d, port: d.key != "x/a" or s.namespace == "y" or s.key == "x/b"),
    ("union of two policies; named port resolved on the destination",
     [policy("x", "from-z", {"podSelector": sel(pod="c"), "ingress": [
         {"from": [{"namespaceSelector": sel(ns="z")}]}]}),
      policy("x", "81-from-all", {"podSelector": sel(pod="c"), "ingress": [
          {"from": [{"namespaceSelector": {}}], "ports": [{"port": "serve-81-tcp"}]}]})],
     lambda s, d, port: d.key != "x/c" or s.namespace == "z" or port == 81),
    ("egress from y only to x on named port serve-81-tcp; both sides must allow",
     [policy("y", "egress", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
         {"to": [{"namespaceSelector": sel(ns="x")}], "ports": [{"port": "serve-81-tcp"}]}]}),
      policy("x", "deny-x-b", {"podSelector": sel(pod="b"), "policyTypes": ["Ingress"]})],
     lambda s, d, port: (s.namespace != "y" or (d.namespace == "x" and port == 81))
     and d.key != "x/b"),
    ("ipBlock with except: z/c admits the pod CIDR but x/a",
     [policy("z", "cidr", {"podSelector": sel(pod="c"), "ingress": [
         {"from": [{"ipBlock": {"cidr": POD_CIDR, "except": ["10.245.0.10/32"]}}]}]})],
     lambda s, d, port: d.key != "z/c" or s.key != "x/a"),
    ("endPort range 81-90 on y/a",
     [policy("y", "range", {"podSelector": sel(pod="a"), "ingress": [
         {"ports": [{"protocol": "TCP", "port": 81, "endPort": 90}]}]})],
     lambda s, d, port: d.key != "y/a" or port == 81),
    ("UDP only on z/b: TCP denied",
     [policy("z", "udp", {"podSelector": sel(pod="b"), "ingress": [
         {"ports": [{"protocol": "UDP"}]}]})],
     lambda s, d, port: d.key != "z/b"),
    ("policyTypes Egress ignores ingress rules; egress deny all from z/a",
     [policy("z", "egress-only", {"podSelector": sel(pod="a"), "policyTypes": ["Egress"],
                                  "ingress": [{"from": [{"podSelector": sel(pod="b")}]}]})],
     lambda s, d, port: s.key != "z/a"),
]


@pytest.mark.parametrize("title,policies,expect", TRUTH_TABLES, ids=[t[0] for t in TRUTH_TABLES])
def test_network_policy_truth_table(no_rules: World, title: str,
                                    policies: list[dict[str, Any]], expect: Expect) -> None:
    check_truth_table(no_rules, policies, expect)


# The guide's policies, 1.5 and 1.6, in their intended indentation (the PDF's YAML puts
# podSelector inside the ingress list in 1.5 and flattens 1.6's spec).
GUIDE_1_5 = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-from-openshift-monitoring-ns
  namespace: knative-serving
spec:
  ingress:
    - from:
      - namespaceSelector:
          matchLabels:
            name: "openshift-monitoring"
  podSelector: {}
"""
GUIDE_1_6 = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-from-serving-system-namespace
  namespace: team-alpha
spec:
  ingress:
  - from:
    - namespaceSelector:
        matchLabels:
          knative.openshift.io/part-of: "openshift-serverless"
  podSelector: {}
  policyTypes:
  - Ingress
"""
GUIDE_PODS = ["knative-serving/activator", "knative-serving-ingress/gateway",
              "openshift-monitoring/prometheus", "team-alpha/webapp", "x/a"]


def test_guide_policies_1_5_and_1_6(no_rules: World) -> None:
    def expect(s: Pod, d: Pod, port: int) -> bool:
        if d.namespace == "knative-serving":
            return s.namespace == "openshift-monitoring"
        if d.namespace == "team-alpha":
            return s.namespace in ("knative-serving", "knative-serving-ingress")
        return True

    check_truth_table(no_rules, [yaml.safe_load(GUIDE_1_5), yaml.safe_load(GUIDE_1_6)],
                      expect, GUIDE_PODS)


def test_node_reaches_isolated_pods(no_rules: World) -> None:
    w = no_rules
    w.apply_policies([policy("x", "deny", {"podSelector": {},
                                           "policyTypes": ["Ingress", "Egress"]})])
    # Kubelet probes and skiff's gateways come from the node: always admitted.
    assert connect_from(None, w.pod("x/a").ip, 80) == "x/a"
    assert connect_from(w.pod("y/a").netns, w.pod("x/a").ip, 80) is None


def test_egress_to_the_host_is_policed_on_the_original_destination(no_rules: World) -> None:
    w = no_rules
    w.apply_proxy([], [])
    w.apply_policies([policy("y", "to-api", {"podSelector": sel(pod="a"),
                                             "policyTypes": ["Egress"], "egress": [
        {"to": [{"ipBlock": {"cidr": f"{BRIDGE_IP}/32"}}], "ports": [{"port": 6443}]}]})])
    ya, yb = w.pod("y/a").netns, w.pod("y/b").netns
    # 6443 is DNATed to a 127.0.0.1 listener; the policy still reads it as BRIDGE_IP:6443.
    assert connect_from(ya, BRIDGE_IP, 6443) == "host-loopback"
    assert connect_from(ya, BRIDGE_IP, w.bridge_port) is None
    assert connect_from(yb, BRIDGE_IP, w.bridge_port) == "host-bridge"
    assert connect_from(ya, w.pod("x/a").ip, 80) is None
