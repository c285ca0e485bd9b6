"""The gateway's control loop: watch, compile, swap, report (net-istio's and net-kourier's job).

Five watches through the Client keep local caches: Gateways (all namespaces),
Secrets of istio-system, KIngresses (networking.internal.knative.dev
Ingress; the kind may appear later, when serving's CRDs or a user's CRD
register it, so a missing kind is retried), Pods (readiness and
skiff.dev/port give endpoints) and KnativeServings (the ingress mode). A
change that matters to the data plane (each kind has a fingerprint, so
status-only writes - ours included - do not recompile) schedules one
round a few milliseconds later, which batches bursts.

A change of Gateways, Secrets, KIngresses or KnativeServings recompiles: the
compiler (compiler.SnapshotCompiler, the same result as the pure
snapshot.compile_snapshot()) makes a whole snapshot, compiling again only the
KIngresses whose version changed (and the Gateways' servers only when a
Gateway, Secret or the mode did), with the endpoints from the controller's pod
index rather than a pass over every pod; the snapshot is published
over the snapshot channel (dataplane/channel.py) to the data-plane process
(the channel sends only the parts that changed: a KIngress change the
route configurations, a certificate the listeners);
once the data plane acks that version, status is written: KIngress
conditions (LoadBalancerReady, NetworkConfigured, Ready) and load balancers,
and Gateway conditions (Ready, or why a server was skipped), each written only
when it differs from what the object already says (a KIngress whose object and
compiled status are both the ones last found in agreement is not looked at). Without an ack within
ACK_TIMEOUT no status is written; it is written when an ack comes later (the
data plane restarted, or connected late). A change of Pods only recomputes the
endpoints (snapshot.cluster_endpoints) and publishes the clusters that changed
(Envoy's EDS): no route compile, no TLS context, and the data plane's split
schedules carry on. Status does not depend on endpoints, so none is written.
Neighbours: snapshot.py and compiler.py (pure), dataplane/channel.py, proxy.py
(in the data plane), mesh/setup.py.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.clock import rfc3339, utcnow
from skiff.dataplane import model
from skiff.dataplane.model import GatewaySettings
from skiff.mesh.gateway.compiler import SnapshotCompiler
from skiff.mesh.gateway.snapshot import (
    CLASS_ANNOTATION,
    CLASS_ANNOTATION_ALIAS,
    PASSTHROUGH_ANNOTATION,
    PORT_ANNOTATION,
    REVISION_LABEL,
    SECRET_NAMESPACE,
    Condition,
    IngressStatus,
    Inputs,
    Snapshot,
    cluster_name,
    endpoints_from_pods,
    pod_endpoint,
)
from skiff.serving.activatorpart import activator_part

log = logging.getLogger("skiff.gateway.controller")

GATEWAY = Ref("networking.istio.io/v1alpha3", "Gateway")
SECRET = Ref("v1", "Secret")
INGRESS = Ref("networking.internal.knative.dev/v1alpha1", "Ingress")
POD = Ref("v1", "Pod")
KNATIVE_SERVING = Ref("operator.knative.dev/v1beta1", "KnativeServing")
SKS = Ref("networking.internal.knative.dev/v1alpha1", "ServerlessService")
POD_AUTOSCALER = Ref("autoscaling.internal.knative.dev/v1alpha1", "PodAutoscaler")
REVISION = Ref("serving.knative.dev/v1", "Revision")
ACTIVATOR_PART = "activator"

Key = tuple[str, str]
Fingerprint = Callable[[Obj], Any]


def _meta(o: Obj) -> Obj:
    return o.get("metadata") or {}


def fp_gateway(o: Obj) -> Any:
    m = _meta(o)
    return (json.dumps(o.get("spec"), sort_keys=True), m.get("creationTimestamp"),
            bool(m.get("deletionTimestamp")))


def fp_secret(o: Obj) -> Any:
    return json.dumps([o.get("data"), o.get("stringData")], sort_keys=True)


def fp_ingress(o: Obj) -> Any:
    m = _meta(o)
    ann = m.get("annotations") or {}
    return (json.dumps(o.get("spec"), sort_keys=True), m.get("generation"),
            m.get("creationTimestamp"), ann.get(CLASS_ANNOTATION), ann.get(CLASS_ANNOTATION_ALIAS),
            ann.get(PASSTHROUGH_ANNOTATION), bool(m.get("deletionTimestamp")))


def fp_pod(o: Obj) -> Any:
    m = _meta(o)
    rev = (m.get("labels") or {}).get(REVISION_LABEL)
    if not rev:
        return None               # not a revision's pod: never an endpoint
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in (o.get("status") or {}).get("conditions") or [])
    return (rev, ready, (m.get("annotations") or {}).get(PORT_ANNOTATION),
            (o.get("status") or {}).get("podIP"), bool(m.get("deletionTimestamp")))


def fp_sks(o: Obj) -> Any:
    return (o.get("spec") or {}).get("mode")


def fp_pod_autoscaler(o: Obj) -> Any:
    return (o.get("spec") or {}).get("containerConcurrency")


def fp_revision(o: Obj) -> Any:
    return (o.get("spec") or {}).get("timeoutSeconds")


def fp_knative_serving(o: Obj) -> Any:
    return json.dumps(((o.get("spec") or {}).get("ingress") or {}), sort_keys=True)


class Informer:
    """List + watch one kind into a cache; calls on_change when a fingerprint changes."""

    RETRY = 0.5

    def __init__(self, client: Client, ref: Ref, namespace: str, fingerprint: Fingerprint,
                 on_change: Callable[[], None], track: bool = False) -> None:
        self.client = client
        self.ref = ref
        self.namespace = namespace
        self.fingerprint = fingerprint
        self.on_change = on_change
        self.items: dict[Key, Obj] = {}
        # keys changed since the owner last took them (take_touched); None: all (a relist).
        # Kept only for an owner that takes them (`track`): else every key ever changed,
        # deleted objects' too, would stay in it
        self.touched: set[Key] | None = set() if track else None
        self.synced = asyncio.Event()
        self.available = False

    def apply(self, ev_type: str, obj: Obj) -> bool:
        """One watch event into the cache; whether it matters (its fingerprint changed)."""
        k = self.key(obj)
        old = self.items.get(k)
        if ev_type == "DELETED":
            if self.items.pop(k, None) is None:
                return False
        else:
            self.items[k] = obj
            if old is not None and self.fingerprint(old) == self.fingerprint(obj):
                return False
        self._touch(k)
        return True

    def _touch(self, k: Key) -> None:
        if self.touched is not None:
            self.touched.add(k)

    def take_touched(self) -> set[Key] | None:
        t, self.touched = self.touched, set()
        return t

    @staticmethod
    def key(o: Obj) -> Key:
        m = _meta(o)
        return (str(m.get("namespace") or ""), str(m.get("name")))

    async def run(self) -> None:
        while True:
            try:
                items, rv = await self.client.list_with_version(self.ref, self.namespace)
                self.available = True
                new = {self.key(o): o for o in items}
                changed = ({k: self.fingerprint(o) for k, o in new.items()}
                           != {k: self.fingerprint(o) for k, o in self.items.items()})
                self.items = new
                self.synced.set()
                if changed:
                    self.touched = None
                    self.on_change()
                async for ev in self.client.watch(self.ref, self.namespace, rv):
                    if ev.type == "ERROR":
                        break
                    if ev.type not in ("ADDED", "MODIFIED", "DELETED"):
                        continue
                    if self.apply(ev.type, ev.object):
                        self.on_change()
            except asyncio.CancelledError:
                raise
            except ApiError as e:
                if e.code == 404:
                    # the kind is not served (yet): nothing to see, look again later
                    if self.available or self.items:
                        self.items = {}
                        self.touched = None
                        self.on_change()
                    self.available = False
                    self.synced.set()
                    await asyncio.sleep(1.0)
                    continue
                log.debug("watch %s restarts: %s", self.ref.kind, e.message)
            except Exception:
                log.exception("watch %s failed", self.ref.kind)
            await asyncio.sleep(self.RETRY)


def _condition_dicts(conds: tuple[Condition, ...], old: list[Obj], now: str) -> list[Obj]:
    """Conditions as stored: lastTransitionTime kept while a condition's status stays the same."""
    prev = {c.get("type"): c for c in old or []}
    out = []
    for c in conds:
        d: Obj = c.as_dict()
        p = prev.get(c.type)
        d["lastTransitionTime"] = (p.get("lastTransitionTime") or now) if p and \
            p.get("status") == c.status else now
        out.append(d)
    return out


def _strip_times(conds: list[Obj] | None) -> list[Obj]:
    return [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conds or []]


def ingress_status(st: IngressStatus, old: Obj, now: str) -> Obj:
    return {
        "observedGeneration": st.observed_generation,
        "conditions": _condition_dicts(st.conditions, old.get("conditions") or [], now),
        "publicLoadBalancer": {"ingress": [{"domainInternal": st.public}]},
        "privateLoadBalancer": {"ingress": [{"domainInternal": st.private}]},
    }


def _same_status(a: Obj, b: Obj) -> bool:
    a2 = dict(a, conditions=_strip_times(a.get("conditions")))
    b2 = dict(b, conditions=_strip_times(b.get("conditions")))
    return a2 == b2


class Publisher(Protocol):
    """Where snapshots go (dataplane/channel.py's SnapshotServer)."""

    on_ack: Callable[[int], None]

    def publish(self, snap: model.Snapshot) -> int: ...

    def publish_endpoints(self, changes: dict[str, tuple[model.Endpoint, ...]]) -> int: ...

    def publish_part(self, name: str, data: dict[str, Any]) -> int: ...

    async def wait_acked(self, version: int, timeout: float) -> bool: ...


class Debounce:
    """Calls `fn` once, `delay` seconds after the first poke() of a burst: the pokes of those
    seconds cost one call (the first poke sets the clock, so a steady stream of pokes still
    calls every `delay`, not never)."""

    def __init__(self, delay: float, fn: Callable[[], None]) -> None:
        self.delay = delay
        self.fn = fn
        self._handle: asyncio.TimerHandle | None = None

    def poke(self) -> None:
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(self.delay, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self.fn()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class GatewayController:
    DEBOUNCE = 0.005
    ACK_TIMEOUT = 5.0

    def __init__(self, client: Client, publisher: Publisher, settings: GatewaySettings,
                 default_cert: tuple[bytes, bytes] | None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.client = client
        self.publisher = publisher
        publisher.on_ack = self._acked
        self.settings = settings
        self.default_cert = default_cert
        self.clock = clock
        self.gateways = Informer(client, GATEWAY, "", fp_gateway, self.changed)
        self.secrets = Informer(client, SECRET, SECRET_NAMESPACE, fp_secret, self.changed)
        self.ingresses = Informer(client, INGRESS, "", fp_ingress, self.changed)
        self.pods = Informer(client, POD, "", fp_pod, self.endpoints_changed, track=True)
        self.servings = Informer(client, KNATIVE_SERVING, "", fp_knative_serving, self.changed)
        # ServerlessServices in Proxy mode put the activator in their revision's path
        self.sks = Informer(client, SKS, "", fp_sks, self.activator_changed)
        # ... and their PodAutoscalers' containerConcurrency is the capacity it throttles to
        self.pas = Informer(client, POD_AUTOSCALER, "", fp_pod_autoscaler, self.activator_changed)
        # ... and their Revisions' timeoutSeconds how long it holds a request
        self.revisions = Informer(client, REVISION, "", fp_revision, self.activator_changed)
        self.activator_part: dict[str, Any] | None = None
        self._activator_debounce = Debounce(self.DEBOUNCE, self.publish_activator)
        self.informers = [self.gateways, self.secrets, self.ingresses, self.pods, self.servings,
                          self.sks, self.pas, self.revisions]
        self._tasks: list[asyncio.Task[None]] = []
        self._dirty = asyncio.Event()
        self._debounce = Debounce(self.DEBOUNCE, self._dirty.set)
        self.compiles = 0
        self.endpoint_updates = 0
        self.compiler = SnapshotCompiler()
        self.snapshot: Snapshot | None = None
        # each KIngress's compiled status and the object it was last found to agree with
        self._status_seen: dict[Key, tuple[IngressStatus, Obj]] = {}
        self.endpoints: dict[str, tuple[model.Endpoint, ...]] = {}
        # the endpoints index: each pod's (cluster, endpoint), and each cluster's members
        self._pod_endpoint: dict[Key, tuple[str, model.Endpoint]] = {}
        self._members: dict[str, dict[Key, model.Endpoint]] = {}
        self._routes_dirty = False
        self._endpoints_dirty = False
        self._status_pending: int | None = None     # the version whose status awaits its ack
        self._status_due = False

    def changed(self) -> None:
        """Routes may have changed: recompile."""
        self._routes_dirty = True
        self._debounce.poke()

    def endpoints_changed(self) -> None:
        """Only endpoints may have changed (a pod): an EDS update, sent at once when no
        compile is due (the first ready pod of a revision at zero releases the requests
        the activator holds; behind the debounce, the reconcilers the same pod write woke
        would run first). A burst of pod events still costs one small update each, of the
        clusters they touched."""
        if self.snapshot is not None and not self._routes_dirty:
            try:
                self.apply_endpoints()
                return
            except Exception:
                log.exception("gateway: endpoints update failed; recompiling")
                self._routes_dirty = True
        self._endpoints_dirty = True
        self._debounce.poke()

    def activator_changed(self) -> None:
        """An SKS, PodAutoscaler or Revision changed: the activator's part is computed again
        once the events of the next few milliseconds are in (a burst of creates costs one
        pass over them, not one per event)."""
        self._activator_debounce.poke()

    def publish_activator(self) -> None:
        """Which revision clusters the activator fronts (their SKS is in Proxy mode), their
        capacity and timeout (serving/activatorpart.py): a part of its own, so a mode flip
        touches neither routes nor endpoints."""
        part = activator_part(self.sks.items.values(), self.pas.items.values(), cluster_name,
                              self.revisions.items.values())
        if part != self.activator_part:
            self.activator_part = part
            self.publisher.publish_part(ACTIVATOR_PART, part)

    def _acked(self, version: int) -> None:
        if self._status_pending is not None and version >= self._status_pending:
            self._status_due = True
            self._dirty.set()

    async def start(self, wait: bool = False, sync_timeout: float = 10.0) -> None:
        """Start the watches; the first compile follows once they have listed. With wait=False
        (the platform's way) start returns at once: `skiff up` is not held back by the first
        sync, and a KIngress says Ready only once the data plane serves it anyway."""
        for inf in self.informers:
            self._tasks.append(asyncio.create_task(inf.run()))
        first = asyncio.create_task(self._first(sync_timeout))
        self._tasks.append(first)
        if wait:
            await asyncio.shield(first)

    async def _first(self, sync_timeout: float) -> None:
        try:
            await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in self.informers)),
                                   sync_timeout)
        except TimeoutError:
            log.warning("gateway: not every watch synced in %.0fs; serving what is known",
                        sync_timeout)
        await self.compile_and_apply()
        self._tasks.append(asyncio.create_task(self._run()))

    async def stop(self) -> None:
        self._debounce.cancel()
        self._activator_debounce.cancel()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def inputs(self, endpoints: bool = True) -> Inputs:
        """The compiler's inputs from the watch caches; endpoints=False leaves the pods out
        (the controller's pod index has them already)."""
        return Inputs(
            gateways=list(self.gateways.items.values()),
            secrets={k[1]: o for k, o in self.secrets.items.items()},
            ingresses=list(self.ingresses.items.values()),
            endpoints=endpoints_from_pods(self.pods.items.values()) if endpoints else {},
            knative_servings=list(self.servings.items.values()),
            settings=self.settings,
            default_cert=self.default_cert,
        )

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                if self._routes_dirty:
                    await self.compile_and_apply()
                elif self._endpoints_dirty:
                    self.apply_endpoints()
                elif self._status_due and self.snapshot is not None:
                    self._status_due = False
                    await self._status_after_ack(self.snapshot)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("gateway: compile failed")
                await asyncio.sleep(0.5)
                self._routes_dirty = True
                self._dirty.set()

    async def compile_and_apply(self) -> None:
        self._routes_dirty = self._endpoints_dirty = False
        self._refresh_endpoints()
        snap = self.compiler.compile(self.inputs(endpoints=False), self.endpoints)
        version = self.publisher.publish(snap.dataplane())
        self.snapshot = snap
        self.compiles += 1
        if not await self.publisher.wait_acked(version, self.ACK_TIMEOUT):
            # no data plane serves it yet: the status waits for the ack (_acked)
            log.info("gateway: version %d not acked in %.0f s; status waits", version,
                     self.ACK_TIMEOUT)
            self._status_pending = version
            return
        self._status_pending = None
        await self._status_after_ack(snap)

    async def _status_after_ack(self, snap: Snapshot) -> None:
        self._status_pending = None
        retry = await self._write_status(snap)
        if retry:
            loop = asyncio.get_running_loop()
            loop.call_later(0.2, self.changed)

    def _index_all_pods(self) -> None:
        self._pod_endpoint.clear()
        self._members.clear()
        for k in self.pods.items:
            self._index_pod(k)

    def _index_pod(self, k: Key) -> set[str]:
        """Re-index one pod; the clusters whose members changed."""
        pod = self.pods.items.get(k)
        pe = pod_endpoint(pod) if pod is not None else None
        new = (cluster_name(*pe[0]), pe[1]) if pe is not None else None
        old = self._pod_endpoint.get(k)
        if new == old:
            return set()
        touched = set()
        if old is not None:
            members = self._members.get(old[0], {})
            members.pop(k, None)
            if not members:
                self._members.pop(old[0], None)
            del self._pod_endpoint[k]
            touched.add(old[0])
        if new is not None:
            self._members.setdefault(new[0], {})[k] = new[1]
            self._pod_endpoint[k] = new
            touched.add(new[0])
        return touched

    def apply_endpoints(self) -> int:
        """Publish the clusters whose endpoints changed; how many."""
        self._endpoints_dirty = False
        changes = self._refresh_endpoints()
        if changes:
            self.publisher.publish_endpoints(changes)
            self.endpoint_updates += 1
        return len(changes)

    def _refresh_endpoints(self) -> dict[str, tuple[model.Endpoint, ...]]:
        """Bring self.endpoints up to date with the pods; the clusters that changed. Only the
        pods the watch touched are looked at (all of them after a relist, and before the
        first compile, whose caches may have been filled without events)."""
        keys = self.pods.take_touched()
        if keys is None or self.snapshot is None:
            self._index_all_pods()
            clusters = set(self._members) | set(self.endpoints)
        else:
            clusters = set()
            for k in keys:
                clusters |= self._index_pod(k)
        changes: dict[str, tuple[model.Endpoint, ...]] = {}
        for c in clusters:
            eps = tuple(sorted(set(self._members.get(c, {}).values())))
            if eps != self.endpoints.get(c, ()):
                changes[c] = eps
                if eps:
                    self.endpoints[c] = eps
                else:
                    self.endpoints.pop(c, None)
        return changes

    async def _write_status(self, snap: Snapshot) -> bool:
        """Write what differs; True when a write lost a race and must be retried."""
        now = rfc3339(self.clock())
        retry = False
        seen, self._status_seen = self._status_seen, {}
        for key, st in snap.ingress_status.items():
            obj = self.ingresses.items.get(key)
            if obj is None:
                continue
            last = seen.get(key)
            if last is not None and last[1] is obj and last[0] == st:
                self._status_seen[key] = last    # neither the object nor its status moved
                continue
            old = obj.get("status") or {}
            want = ingress_status(st, old, now)
            if _same_status({k: old.get(k) for k in want}, want):
                self._status_seen[key] = (st, obj)
                continue
            retry |= await self._update_status(obj, {**old, **want})
        for key, conds in snap.gateway_status.items():
            obj = self.gateways.items.get(key)
            if obj is None:
                continue
            old = obj.get("status") or {}
            want = {"conditions": _condition_dicts(conds, old.get("conditions") or [], now)}
            if _same_status({"conditions": old.get("conditions") or []}, want):
                continue
            retry |= await self._update_status(obj, {**old, **want})
        return retry

    async def _update_status(self, obj: Obj, status: Obj) -> bool:
        new = copy.deepcopy(obj)
        new["status"] = status
        try:
            updated = await self.client.update_status(new)
        except ApiError as e:
            if e.code == 409:
                return True
            if e.code != 404:
                log.warning("gateway: status of %s %s/%s: %s", obj.get("kind"),
                            _meta(obj).get("namespace"), _meta(obj).get("name"), e.message)
            return False
        inf = self.ingresses if obj.get("kind") == "Ingress" else self.gateways
        k = Informer.key(updated)
        if k in inf.items:
            inf.items[k] = updated      # so the next round compares with what we wrote
        return False
