"""The node's network daemons: kube-proxy, the NetworkPolicy enforcer and cluster DNS.

On a cluster these are three programs (kube-proxy, the CNI's policy agent,
CoreDNS); here they are one component that `skiff up` starts when the pod
network has namespaces (podnet.py). It lists and watches Services,
EndpointSlices, Pods, Namespaces and NetworkPolicies through the Client and,
after each burst of changes, recompiles the two rule sets (proxier.py for
`table ip skiff-proxy`, policy.py for `table inet skiff-policy`) and applies
each that changed as one atomic nft transaction (nft.py). The DNS server
(dnsserver.py over dnsview.py's ClusterView) answers on the bridge address,
port 53, where every pod's resolv.conf points. Pods reach skiff's own
loopback listeners through the bridge address: host_ports maps
bridge-address ports (443 and 80 for the router, the API server's) to
127.0.0.1 ports, DNATed by the proxy table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from skiff.core.client import Client, Obj, Ref
from skiff.core.controller import RELIST_MIN, relist_delay
from skiff.node.network.dnsserver import DnsServer
from skiff.node.network.dnsview import ClusterView, watch_into
from skiff.node.network.nft import Nft, NftError
from skiff.node.network.policy import compile_policies
from skiff.node.network.proxier import compile_proxy

log = logging.getLogger("skiff.network")

SERVICE = Ref("v1", "Service")
ENDPOINT_SLICE = Ref("discovery.k8s.io/v1", "EndpointSlice")
POD = Ref("v1", "Pod")
NAMESPACE = Ref("v1", "Namespace")
NETWORK_POLICY = Ref("networking.k8s.io/v1", "NetworkPolicy")
PROXY_KINDS = ("Service", "EndpointSlice")
POLICY_KINDS = ("Pod", "Namespace", "NetworkPolicy")
DEBOUNCE = 0.01          # seconds: a burst of events (a rollout) is one rule update
RETRY_APPLY = 1.0


class NetworkAgent:
    def __init__(self, client: Client, *, bridge_ip: str, pod_cidr: str, domain: str,
                 host_ports: dict[int, int], dns_port: int = 53) -> None:
        self.client = client
        self.bridge_ip = bridge_ip
        self.pod_cidr = pod_cidr
        self.domain = domain
        self.host_ports = host_ports
        self.objects: dict[str, dict[tuple[str, str], Obj]] = {
            k: {} for k in (*PROXY_KINDS, *POLICY_KINDS)}
        self.view = ClusterView()
        self.dns = DnsServer(self.view, host=bridge_ip, port=dns_port, apps_domain=domain,
                             apps_ip=bridge_ip)
        self.applied: dict[str, str] = {}           # table -> the script last applied
        self.synced = asyncio.Event()               # both tables applied at least once
        self._dirty: set[str] = {"proxy", "policy"}
        self._wake = asyncio.Event()
        self._listed: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._nft: Nft | None = None

    async def start(self) -> None:
        self._nft = Nft()
        await self.dns.start()
        self._tasks = [asyncio.create_task(watch_into(self.client, self.view), name="dns-view")]
        for ref in (SERVICE, ENDPOINT_SLICE, POD, NAMESPACE, NETWORK_POLICY):
            self._tasks.append(asyncio.create_task(self._watch(ref), name=f"net-{ref.kind}"))
        self._tasks.append(asyncio.create_task(self._sync_loop(), name="net-sync"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.dns.close()
        if self._nft is not None:
            self._nft.close()
            self._nft = None

    async def wait_synced(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.synced.wait(), timeout)
        return self.synced.is_set()

    # ---- watches -------------------------------------------------------------------------

    def _changed(self, kind: str) -> None:
        self._dirty.add("proxy" if kind in PROXY_KINDS else "policy")
        self._wake.set()

    async def _watch(self, ref: Ref) -> None:
        """List then watch one kind into self.objects; re-list after errors, backing off."""
        delay = RELIST_MIN
        cache = self.objects[ref.kind]
        while True:
            try:
                items, rv = await self.client.list_with_version(ref)
                cache.clear()
                for o in items:
                    cache[_key(o)] = o
                self._listed.add(ref.kind)
                self._changed(ref.kind)
                async for ev in self.client.watch(ref, resource_version=rv if rv != "0" else ""):
                    delay = RELIST_MIN
                    key = _key(ev.object)
                    before = cache.get(key)
                    if ev.type in ("ADDED", "MODIFIED"):
                        cache[key] = ev.object
                    elif ev.type == "DELETED":
                        cache.pop(key, None)
                    else:
                        break        # ERROR (410 Gone): list afresh
                    # Most pod events are status churn (probes, restarts) that no rule reads.
                    if ref.kind != "Pod" or ev.type != "MODIFIED" \
                            or before is None or policy_view(before) != policy_view(ev.object):
                        self._changed(ref.kind)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.debug("network agent: watching %s failed: %s", ref.kind, e)
            await asyncio.sleep(delay)
            delay = relist_delay(delay)

    # ---- rules ---------------------------------------------------------------------------

    def proxy_rules(self) -> str:
        return compile_proxy(list(self.objects["Service"].values()),
                             list(self.objects["EndpointSlice"].values()),
                             bridge_ip=self.bridge_ip, pod_cidr=self.pod_cidr,
                             host_ports=self.host_ports)

    def policy_rules(self) -> str:
        return compile_policies(list(self.objects["NetworkPolicy"].values()),
                                list(self.objects["Pod"].values()),
                                list(self.objects["Namespace"].values()),
                                pod_cidr=self.pod_cidr, bridge_ip=self.bridge_ip)

    async def _sync_loop(self) -> None:
        compilers: dict[str, Callable[[], str]] = {"proxy": self.proxy_rules,
                                                   "policy": self.policy_rules}
        while True:
            await self._wake.wait()
            await asyncio.sleep(DEBOUNCE)
            self._wake.clear()
            # Rules from a partial list would open or close too much: wait for every kind.
            if len(self._listed) < len(self.objects):
                continue
            dirty, self._dirty = self._dirty, set()
            for which in sorted(dirty):
                script = compilers[which]()
                if self.applied.get(which) == script:
                    continue
                if not await self._apply(script):
                    self._dirty.add(which)
                    self._retry_later()
                    continue
                self.applied[which] = script
            if len(self.applied) == len(compilers):
                self.synced.set()

    async def _apply(self, script: str) -> bool:
        nft = self._nft
        if nft is None:
            return False
        try:
            await asyncio.get_running_loop().run_in_executor(None, nft.run, script)
            return True
        except NftError as e:
            log.error("network agent: nft refused the rules: %s", str(e)[:2000])
            return False

    def _retry_later(self) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(RETRY_APPLY, self._wake.set)


def policy_view(pod: Obj) -> tuple[object, ...]:
    """What of a pod the NetworkPolicy rules read: its address, labels, ports, whether it is
    policed at all (hostNetwork, finished)."""
    m, spec, st = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    return (st.get("podIP"), st.get("phase") in ("Succeeded", "Failed"), m.get("labels"),
            spec.get("hostNetwork"), [c.get("ports") for c in spec.get("containers") or []])


def _key(o: Obj) -> tuple[str, str]:
    m = o.get("metadata") or {}
    return (m.get("namespace") or "", m.get("name") or "")


