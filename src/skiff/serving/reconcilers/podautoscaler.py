"""PodAutoscaler reconciler: the KPA, ticking every 2 s (pkg/reconciler/autoscaling/kpa).

For each PodAutoscaler of the KPA class (a Revision's, resources.make_pa)
it keeps a ServerlessService (resources.make_sks; mode Serve or Proxy,
the activator count) and a Metric (resources.make_metric, with the
windows resolved from the PA's annotations over config-autoscaler), tells
the metric intake (platform.revision_stats, autoscaler/stats.py) the
revision's windows, and on every tick (TICK_INTERVAL, upstream's decider
tick):

1. reads the stable and panic averages and decides (autoscaler/decider.py
   decide; the decider's memory is kept here, per PA, as upstream's
   multiscaler keeps its scalers). No data (upstream's ErrNoData) keeps
   the last decision (-1, "unknown", before the first); but a revision
   whose ready pods sent no report at all is idle, which upstream learns
   by scraping their queue-proxies: skiff reads that as zero load;
2. bounds it (bounded_scale: min/max/initial scale) and runs
   scale_to_zero (the stable window while Active, then the activator in
   the path for the grace period), then patches the Deployment's
   spec.replicas when it differs (the revision reconciler leaves it alone
   after creation);
3. writes the SKS mode (Proxy when nothing is wanted or the excess burst
   capacity is negative) and the PA status: desiredScale, actualScale
   (the Deployment's readyReplicas), serviceName, metricsServiceName and
   Active / ScaleTargetInitialized / SKSReady (computeActiveCondition).

A poke (the activator saw a request for a revision with no ready pod:
RevisionStats.on_poke) enqueues the PA at once, and a PA at zero is
scaled to max(1, activation-scale) on that pass without waiting for the
metrics. The HPA class is not implemented: such a PA gets its SKS and
says so in its Active condition, and its Deployment keeps the initial
scale. Two clocks, both injectable for tests: `clock` (wall time) stamps
the conditions, whose times the scale-to-zero arithmetic reads back;
`metrics_clock` (monotonic, as the data plane's reports are recorded in
RevisionStats by mesh/setup.py) reads the metric windows and drives the
decider.

Neighbours: revision.py (creates the PA, reads its status), serverlessservice.py
(the SKS's Services and its Ready/ActivatorEndpointsPopulated), resources.py
(builders), autoscaler/ (pure decisions), setup.py (wires the poke).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from skiff.core import conditions
from skiff.core.client import Client, Obj, Ref
from skiff.core.clock import parse_time, rfc3339
from skiff.core.conditions import ConditionSet
from skiff.core.controller import Key, Mapper, owned_by
from skiff.core.jsoncopy import clone
from skiff.core.lanes import LANES
from skiff.core.reconcile import KeySet, desired, differs, get_or_none, write_status
from skiff.serving import names, resources
from skiff.serving.autoscaler import config as asc
from skiff.serving.autoscaler import decider as dec
from skiff.serving.autoscaler.stats import RevisionStats
from skiff.serving.config import ConfigHolder, ServingConfig
from skiff.serving.reconcilers.base import (
    DEPLOYMENT,
    KNATIVE_SERVING,
    METRIC,
    POD_AUTOSCALER,
    SERVERLESS_SERVICE,
    load_config,
)
from skiff.serving.reconcilers.serverlessservice import ACTIVATOR_ENDPOINTS_POPULATED

log = logging.getLogger("skiff.serving.autoscaler")

AUTOSCALING_GROUP = "autoscaling.internal.knative.dev"
ACTIVE = "Active"
SCALE_TARGET_INITIALIZED = "ScaleTargetInitialized"
SKS_READY = "SKSReady"
PA_CONDITIONS = ConditionSet((ACTIVE, SCALE_TARGET_INITIALIZED, SKS_READY))
METRIC_CONDITIONS = ConditionSet(())

NO_TRAFFIC_MESSAGE = "The target is not receiving traffic."
MESSAGES = {
    "NoTraffic": NO_TRAFFIC_MESSAGE,
    "TimedOut": "The target could not be activated.",
    "Queued": "Requests to the target are being buffered as resources are provisioned.",
}
NO_PRIVATE_SERVICE_NAME = "No Private Service Name"
CLASS_NOT_SUPPORTED = "ClassNotSupported"


@dataclass
class Scaler:
    """One PA's decider: upstream's scalerRunner (its state and its last valid decision)."""

    state: dec.DeciderState
    desired: int          # decider.Status.DesiredScale; -1 until the first valid decision
    ebc: int              # decider.Status.ExcessBurstCapacity
    scale_down_delay: float
    last_tick: float | None = None


def _initial_ebc(s: asc.RevisionScaling) -> int:
    """createScaler: with TBC above what the initial scale can take, the activator stays in."""
    tbc = s.target_burst_capacity
    if tbc in (-1.0, 0.0):
        return int(tbc)
    return int(s.initial_scale * s.total_value - tbc)


def _since(status: Obj, type_: str, default: float) -> float:
    c = conditions.get(status, type_) or {}
    t = parse_time(c.get("lastTransitionTime"))
    return t.timestamp() if t is not None else default


def compute_status(m: conditions.Manager, status: Obj, s: asc.RevisionScaling, want: int,
                   ready: int) -> None:
    """computeStatus + computeActiveCondition. Pure."""
    status["desiredScale"], status["actualScale"] = want, ready
    initialized = conditions.status_of(status, SCALE_TARGET_INITIALIZED) == conditions.TRUE
    min_ready = dec.active_threshold(s, initialized)
    if ready >= min_ready and status.get("serviceName"):
        m.mark_true(SCALE_TARGET_INITIALIZED)
    current = conditions.status_of(status, ACTIVE) or conditions.UNKNOWN
    current_reason = str((conditions.get(status, ACTIVE) or {}).get("reason") or "")
    st, reason = dec.active_condition(want, ready, current, min_ready, current_reason)
    if st == conditions.TRUE:
        m.mark_true(ACTIVE)
    elif st == conditions.UNKNOWN:
        m.mark_unknown(ACTIVE, reason, MESSAGES.get(reason, ""))
    elif reason:
        m.mark_false(ACTIVE, reason, MESSAGES.get(reason, ""))


def _revision_key(obj: Obj) -> list[Key]:
    """A revision's Deployment -> the PA named like the revision."""
    rev = (obj["metadata"].get("labels") or {}).get(names.REVISION_LABEL)
    return [(obj["metadata"].get("namespace", ""), rev)] if rev else []


class PodAutoscalerReconciler:
    name = "serving-podautoscaler"
    primary = POD_AUTOSCALER

    def __init__(self, client: Client, holder: ConfigHolder, stats: RevisionStats,
                 clock: Callable[[], float] = time.time,
                 metrics_clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.holder = holder
        self.stats = stats
        self.clock = clock
        self.metrics_clock = metrics_clock
        self.known = KeySet()
        self.scalers: dict[str, Scaler] = {}
        self.poked: set[str] = set()
        self._enqueue: Callable[[Key], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._config_error = ""

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        return [(SERVERLESS_SERVICE, owned_by("PodAutoscaler", AUTOSCALING_GROUP)),
                (METRIC, owned_by("PodAutoscaler", AUTOSCALING_GROUP)),
                (DEPLOYMENT, _revision_key),
                (KNATIVE_SERVING, self.known.all())]

    # --- the poke ------------------------------------------------------------------------------
    def bind(self, enqueue: Callable[[Key], None]) -> None:
        """How to enqueue a key from outside a watch (the controller's enqueue)."""
        self._enqueue = enqueue

    def poke(self, key: str) -> None:
        """RevisionStats.on_poke: a request is waiting for "namespace/revision"; reconcile now."""
        ns, _, name = key.partition("/")
        self.poked.add(key)
        if self._enqueue is None:
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is not None and (self._loop is None or here is self._loop):
            self._enqueue((ns, name))
        elif self._loop is not None:
            self._loop.call_soon_threadsafe(self._enqueue, (ns, name))

    # --- reconcile -----------------------------------------------------------------------------
    def _forget(self, key: str) -> None:
        self.scalers.pop(key, None)
        self.poked.discard(key)
        self.stats.forget(key)

    async def reconcile(self, namespace: str, name: str) -> float | None:
        self._loop = asyncio.get_running_loop()
        key = f"{namespace}/{name}"
        pa = await get_or_none(self.client, POD_AUTOSCALER, name, namespace)
        if pa is None:
            self.known.gone((namespace, name))
            self._forget(key)
            return None
        self.known.seen((namespace, name))
        if pa["metadata"].get("deletionTimestamp"):
            self._forget(key)
            return None
        cfg = await load_config(self.client, self.holder)
        acfg, err = resources.autoscaler_config_or_error(cfg)
        if err and err != self._config_error:
            log.warning("config-autoscaler of %s: %s; the defaults apply",
                        cfg.source or "the defaults", err)
        self._config_error = err
        now = self.clock()
        old_status = pa.get("status") or {}
        status = clone(old_status)
        gen = int(pa["metadata"].get("generation") or 1)
        conditions.pre_process(PA_CONDITIONS, status, gen)
        requeue: float | None = None
        try:
            requeue = await self._reconcile(pa, status, cfg, acfg, key, now)
        finally:
            status["observedGeneration"] = gen
            await self._write_status(pa, status, old_status, now)
        return requeue

    async def _write_status(self, pa: Obj, status: Obj, old: Obj, now: float) -> None:
        if conditions.same_status(status, old):
            return
        # shallow: the API server copies what it is sent
        out = {**pa, "status": conditions.stamp(status, old,
                                                rfc3339(datetime.fromtimestamp(now, UTC)))}
        await self.client.update_status(out)

    async def _reconcile(self, pa: Obj, status: Obj, cfg: ServingConfig,
                         acfg: asc.AutoscalerConfig, key: str, now: float) -> float | None:
        ns = pa["metadata"]["namespace"]
        spec = pa.get("spec") or {}
        m = PA_CONDITIONS.manage(status)
        s = asc.resolve(pa["metadata"].get("annotations") or {},
                        int(spec.get("containerConcurrency") or 0), acfg,
                        reachable=spec.get("reachability") != resources.UNREACHABLE,
                        progress_deadline=resources.progress_deadline(cfg))
        ref = spec.get("scaleTargetRef") or {}
        deployment = None
        if ref.get("kind") == "Deployment" and ref.get("name"):
            deployment = await get_or_none(self.client, DEPLOYMENT, ref["name"], ns)
        ready = int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0)
        sks = await get_or_none(self.client, SERVERLESS_SERVICE, pa["metadata"]["name"], ns)

        if s.pa_class != asc.KPA:
            await self._unsupported(pa, status, s, sks, deployment, ready)
            return None

        private = str(((sks or {}).get("status") or {}).get("privateServiceName") or "")
        if sks is None or not private:
            # Before the decider runs: Serve with the default activator count.
            if await self._reconcile_sks(pa, status, dec.SKS_MODE_SERVE, dec.MIN_ACTIVATORS,
                                         sks) is None:
                return None
            m.mark_unknown(SKS_READY, "NotReady", NO_PRIVATE_SERVICE_NAME)
            compute_status(m, status, s, dec.SCALE_UNKNOWN, 0)
            return asc.TICK_INTERVAL
        status["metricsServiceName"] = private

        mnow = self.metrics_clock()
        self.stats.configure(key, s.stable_window, s.panic_window, mnow)
        if not await self._reconcile_metric(pa, status, s, private):
            return None
        scaler = self._tick(key, s, ready, mnow)

        active = conditions.status_of(status, ACTIVE) or conditions.UNKNOWN
        initialized = conditions.status_of(status, SCALE_TARGET_INITIALIZED) == conditions.TRUE
        replicas = 1
        if deployment is not None and (deployment.get("spec") or {}).get("replicas") is not None:
            replicas = int(deployment["spec"]["replicas"])
        from_zero = False
        if key in self.poked:
            self.poked.discard(key)
            if scaler.desired <= 0 and (replicas == 0 or active == conditions.FALSE):
                from_zero = True
                # The activator holds a request: scale from zero now (upstream: its stat of
                # concurrency 1, sent straight to the autoscaler).
                scaler.desired = max(1, s.activation_scale)
                log.info("%s: poked at zero, scaling to %d", key, scaler.desired)

        requeue = asc.TICK_INTERVAL
        want, proceed = dec.bounded_scale(s, scaler.desired, active == conditions.UNKNOWN,
                                          initialized)
        if proceed:
            sks_st = (sks.get("status") or {})
            aep = conditions.get(sks_st, ACTIVATOR_ENDPOINTS_POPULATED) or {}
            proxied = aep.get("status") == conditions.TRUE
            mode_now = (sks.get("spec") or {}).get("mode", "")
            d = dec.scale_to_zero(
                want, enable_scale_to_zero=s.enable_scale_to_zero, active=active,
                active_since=_since(status, ACTIVE, now), stable_window=s.stable_window,
                activation_timeout=s.activation_timeout,
                activator_in_path=s.target_burst_capacity == -1 or (
                    mode_now == dec.SKS_MODE_PROXY and proxied),
                sks_mode=mode_now,
                proxy_since=_since(sks_st, ACTIVATOR_ENDPOINTS_POPULATED, now) if proxied else None,
                grace_period=s.scale_to_zero_grace_period,
                retention_period=s.scale_to_zero_pod_retention, now=now)
            want = d.scale
            if d.requeue_after is not None:
                requeue = min(requeue, max(0.1, d.requeue_after))
            if d.apply and deployment is not None and want != replicas:
                log.info("%s: scaling from %d to %d", key, replicas, want)
                await self.client.patch(DEPLOYMENT, deployment["metadata"]["name"],
                                        {"spec": {"replicas": want}}, ns)
                if from_zero:
                    # a request is held: the Deployment controller and the node go first,
                    # this reconcile's SKS and status writes after them (core/lanes.py)
                    await LANES.after_spec_writes()

        internal_tls = str((cfg.data.get("network") or {}).get("internal-encryption", "")) \
            .lower() == "true"
        mode = dec.sks_mode(want, scaler.ebc, active == conditions.FALSE, internal_tls)
        sks = await self._reconcile_sks(pa, status, mode, dec.num_activators(ready, s), sks)
        if sks is None:
            return None
        self._propagate_sks(m, status, sks)
        compute_status(m, status, s, want, ready)
        return requeue

    def _tick(self, key: str, s: asc.RevisionScaling, ready: int, now: float) -> Scaler:
        """The decider, at most once per tick interval (upstream's ticker), its last valid
        result kept. `now` on the metrics clock."""
        sc = self.scalers.get(key)
        if sc is None or sc.scale_down_delay != s.scale_down_delay:
            sc = Scaler(dec.new_decider_state(s, ready, now),
                        dec.SCALE_UNKNOWN if sc is None else sc.desired, _initial_ebc(s),
                        s.scale_down_delay)
            self.scalers[key] = sc
        if sc.last_tick is not None and now - sc.last_tick < asc.TICK_INTERVAL:
            return sc
        sc.last_tick = now
        observed = self.stats.stable_and_panic(key, s.metric, now)
        if observed is None and ready > 0:
            observed = (0.0, 0.0)    # ready pods and no report: idle (see the module note)
        if observed is not None:
            result, sc.state = dec.decide(s, sc.state, observed[0], observed[1], ready, now)
            if result.scale_valid:
                sc.desired, sc.ebc = result.desired_pod_count, result.excess_burst_capacity
        return sc

    @staticmethod
    def _propagate_sks(m: conditions.Manager, status: Obj, sks: Obj) -> None:
        st = sks.get("status") or {}
        if st.get("serviceName"):
            status["serviceName"] = st["serviceName"]
        if conditions.status_of(st, conditions.READY) == conditions.TRUE:
            m.mark_true(SKS_READY)
        else:
            msg = (conditions.get(st, conditions.READY) or {}).get("message", "")
            m.mark_unknown(SKS_READY, "NotReady", msg)

    async def _unsupported(self, pa: Obj, status: Obj, s: asc.RevisionScaling,
                           sks: Obj | None, deployment: Obj | None, ready: int) -> None:
        """A class skiff does not implement (the HPA): the SKS in Serve, the Deployment at
        whatever scale it has, and the reason in Active."""
        m = PA_CONDITIONS.manage(status)
        sks = await self._reconcile_sks(pa, status, dec.SKS_MODE_SERVE, dec.MIN_ACTIVATORS, sks)
        if sks is None:
            return
        if private := (sks.get("status") or {}).get("privateServiceName"):
            status["metricsServiceName"] = private
        self._propagate_sks(m, status, sks)
        replicas = int(((deployment or {}).get("spec") or {}).get("replicas") or 0)
        status["desiredScale"], status["actualScale"] = replicas, ready
        if ready >= 1 and status.get("serviceName"):
            m.mark_true(SCALE_TARGET_INITIALIZED)
        m.mark_unknown(ACTIVE, CLASS_NOT_SUPPORTED,
                       f'The autoscaler class "{s.pa_class}" is not supported: '
                       "the Deployment keeps its initial scale.")

    async def _reconcile_sks(self, pa: Obj, status: Obj, mode: str, num_activators: int,
                             have: Obj | None) -> Obj | None:
        """ReconcileSKS: create it, or bring its spec back; None when the name is not ours."""
        want = resources.make_sks(pa, mode, num_activators)
        if have is None:
            return await self.client.create(want)
        if not resources.is_controlled_by(have, pa):
            self._not_owned(status, "ServerlessService", want["metadata"]["name"])
            return None
        if differs(have, want):
            upd = desired(have, want)
            if have.get("spec", {}).get("mode") != mode:
                log.info("%s/%s: SKS mode %s", pa["metadata"]["namespace"],
                         pa["metadata"]["name"], mode)
            return await self.client.update(upd)
        return have

    async def _reconcile_metric(self, pa: Obj, status: Obj, s: asc.RevisionScaling,
                                target: str) -> bool:
        """ReconcileMetric, and the metric reconciler's Ready (the intake is configured)."""
        want = resources.make_metric(pa, s.stable_window, s.panic_window, target)
        ns, name = want["metadata"]["namespace"], want["metadata"]["name"]
        have = await get_or_none(self.client, METRIC, name, ns)
        if have is None:
            have = await self.client.create(want)
        elif not resources.is_controlled_by(have, pa):
            self._not_owned(status, "Metric", name)
            return False
        elif differs(have, want):
            upd = desired(have, want)
            have = await self.client.update(upd)
        old = have.get("status") or {}
        mst = clone(old)
        gen = int(have["metadata"].get("generation") or 1)
        METRIC_CONDITIONS.manage(mst).mark_true(conditions.READY)
        mst["observedGeneration"] = gen
        await write_status(self.client, have, mst, old)
        return True

    @staticmethod
    def _not_owned(status: Obj, kind: str, name: str) -> None:
        """MarkResourceNotOwned."""
        PA_CONDITIONS.manage(status).mark_false(
            ACTIVE, "NotOwned", f'There is an existing {kind} "{name}" that we do not own.')
