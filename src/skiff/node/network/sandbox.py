"""A pod's sandbox as its processes see it, and how a fresh child enters it.

A Sandbox names what the pod network (podnet.py) made for one pod: its
network namespace (/run/netns/skiff-<id>), its IP, and the files that become
its /etc/resolv.conf and /etc/hosts. enter() runs in a freshly forked child,
before the container's code or exec (forkserver.py, process.py,
execsession.py, the port-forward dialer's thread): it joins the network
namespace, then takes a mount namespace and a UTS namespace of its own,
bind-mounts the pod's resolv.conf and hosts over the host's (what `ip netns
exec` does with /etc/netns/NAME/) and sets the pod's hostname. Every
container and exec of a pod does this alike, so they all see one network,
one `localhost`, one resolv.conf and one hostname, as in a Kubernetes pod.

Python 3.11 has no os.setns/os.unshare (3.12 adds them), so libc is called
through ctypes; the calls are few and their flags are stable kernel ABI.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_SLAVE = 1 << 19

NETNS_DIR = "/run/netns"


@dataclass(frozen=True)
class Sandbox:
    id: str              # skiff-<id> is the netns name; skv<id> the host side of its veth
    ip: str
    resolv_conf: str     # file bind-mounted on /etc/resolv.conf
    hosts: str           # file bind-mounted on /etc/hosts
    hostname: str

    @property
    def netns(self) -> str:
        return f"{NETNS_DIR}/{netns_name(self.id)}"

    def wire(self) -> dict[str, str]:
        """What a spawn request carries to the fork server (JSON)."""
        return {**asdict(self), "netns": self.netns}


def netns_name(sid: str) -> str:
    return f"skiff-{sid}"


_libc: Any = None


def _lib() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def join_netns(path: str) -> None:
    """Move the calling thread into the network namespace at `path` (setns(2))."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_lib().setns(fd, CLONE_NEWNET), f"setns {path}")
    finally:
        os.close(fd)


def enter(sb: dict[str, str]) -> None:
    """In a fresh single-threaded child: become a process of the pod `sb` (Sandbox.wire())."""
    lib = _lib()
    join_netns(sb["netns"])
    _check(lib.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare")
    # Slave, not private: mounts the host makes later still reach the pod, ours never leave it.
    _check(lib.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None), "mount --make-rslave /")
    for src, dst in ((sb["resolv_conf"], "/etc/resolv.conf"), (sb["hosts"], "/etc/hosts")):
        target = os.path.realpath(dst)
        _check(lib.mount(src.encode(), target.encode(), None, MS_BIND, None),
               f"bind {src} on {target}")
    name = sb["hostname"].encode()[:64]
    _check(lib.sethostname(name, len(name)), "sethostname")


def hosts_file(ip: str, hostname: str) -> str:
    """The kubelet-managed /etc/hosts of a pod."""
    return ("# Kubernetes-managed hosts file.\n"
            "127.0.0.1\tlocalhost\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"{ip}\t{hostname}\n")


_dialer = ThreadPoolExecutor(1, thread_name_prefix="skiff-netns-dial")

MNT_DETACH = 2


@contextlib.contextmanager
def inside(netns: str) -> Iterator[None]:
    """Run the calling thread inside `netns` for the block (sockets made there stay there).
    Only for threads skiff owns: the thread goes back to where it was when the block ends."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        join_netns(netns)
        try:
            yield
        finally:
            _check(_lib().setns(own, CLONE_NEWNET), "setns back")
    finally:
        os.close(own)


def create_netns(name: str) -> str:
    """`ip netns add NAME` without a fork: a fresh network namespace pinned by a bind mount
    on /run/netns/NAME. (A library that forks a helper here would share the event loop's
    signal wake-up fd with it, and a signal to that helper would look like one to skiff.)"""
    os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
    path = f"{NETNS_DIR}/{name}"
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        lib = _lib()
        _check(lib.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        try:
            _check(lib.mount(b"/proc/thread-self/ns/net", path.encode(), None, MS_BIND, None),
                   f"bind the namespace on {path}")
        finally:
            _check(lib.setns(own, CLONE_NEWNET), "setns back")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    finally:
        os.close(own)
    return path


def remove_netns(name: str) -> None:
    """`ip netns delete NAME`: the namespace goes once nothing else holds it."""
    path = f"{NETNS_DIR}/{name}"
    _lib().umount2(path.encode(), MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _connect_in(netns: str, host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection made from inside `netns` (a socket stays in the namespace it was made
    in). Blocking, on a thread of its own, which goes back where it was before returning."""
    with inside(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.setblocking(False)
        return sock
    except BaseException:
        sock.close()
        raise


async def dial(netns: str, port: int, host: str = "127.0.0.1", timeout: float = 5.0,
               ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to host:port as seen from inside the pod (the kubelet's port-forward dials the
    pod's own localhost from within its network namespace)."""
    loop = asyncio.get_running_loop()
    sock = await loop.run_in_executor(_dialer, _connect_in, netns, host, port, timeout)
    return await asyncio.open_connection(sock=sock)
