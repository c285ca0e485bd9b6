"""The PodAutoscaler and ServerlessService reconcilers as knative's tables (world + key -> writes),
with the metric intake (RevisionStats) fed by hand and the KPA on a fake clock; and a PA's life
(up from load, idle, to zero, poked back) over a small world with both reconcilers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from skiff.core.clock import rfc3339
from skiff.core.memclient import MemoryClient
from skiff.operator import crds as operator_crds
from skiff.serving import crds, resources
from skiff.serving.autoscaler.config import AutoscalerConfig
from skiff.serving.autoscaler.stats import RevisionStats
from skiff.serving.config import ConfigHolder, effective_config
from skiff.serving.reconcilers.base import DEPLOYMENT, POD_AUTOSCALER, SERVERLESS_SERVICE
from skiff.serving.reconcilers.podautoscaler import MESSAGES, PodAutoscalerReconciler
from skiff.serving.reconcilers.serverlessservice import ServerlessServiceReconciler
from tabletest import Row, run

Obj = dict[str, Any]
DOMAIN = "apps.example.com"
KEY = "default/hello-00001"
NOW = 1_800_000_000.0
KINDS = [*crds.KINDS, *operator_crds.KINDS]
KPA = "kpa.autoscaling.knative.dev"


def at(seconds_ago: float) -> str:
    return rfc3339(datetime.fromtimestamp(NOW - seconds_ago, UTC))


def revision() -> Obj:
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Revision",
            "metadata": {"name": "hello-00001", "namespace": "default", "uid": "rev-uid",
                         "labels": {"serving.knative.dev/configuration": "hello",
                                    "serving.knative.dev/routingState": "active"},
                         "annotations": {}},
            "spec": {"containerConcurrency": 0,
                     "containers": [{"name": "user-container", "image": "img"}]}}


def pa(annotations: dict[str, str] | None = None, active: tuple[str, str, float] | None = None,
       initialized: bool = True, **status: Any) -> Obj:
    """The revision's PA; `active` = (status, reason, seconds since it became so)."""
    p = resources.make_pa(revision(), AutoscalerConfig())
    p["metadata"]["uid"] = "pa-uid"
    p["metadata"]["generation"] = 1
    p["metadata"]["annotations"].update(annotations or {})
    if active:
        st, reason, ago = active
        why = {"reason": reason, "message": MESSAGES[reason]} if reason else {}
        conds = [{"type": "Active", "status": st, "lastTransitionTime": at(ago), **why},
                 {"type": "Ready", "status": st, "lastTransitionTime": at(ago), **why},
                 {"type": "SKSReady", "status": "True", "lastTransitionTime": at(ago)},
                 {"type": "ScaleTargetInitialized",
                  "status": "True" if initialized else "Unknown", "lastTransitionTime": at(ago)}]
        p["status"] = {"observedGeneration": 1, "serviceName": "hello-00001",
                       "metricsServiceName": "hello-00001-private", "conditions": conds, **status}
    return p


def sks(mode: str = "Proxy", activators: int = 4, proxied_for: float | None = 1000.0,
        private: bool = True, owner: Obj | None = None) -> Obj:
    """The PA's SKS as the KPA wrote it (activators: computeNumActivators, 4 for one pod of
    100 plus the TBC of 211), and its status as the SKS reconciler wrote it."""
    s = resources.make_sks(owner or pa(), mode, activators)
    s["metadata"]["uid"] = "sks-uid"
    if private:
        conds = [{"type": "EndpointsPopulated", "status": "True"},
                 {"type": "Ready", "status": "True"}]
        if proxied_for is not None:
            conds.append({"type": "ActivatorEndpointsPopulated", "status": "True",
                          "reason": "ActivatorEndpointsPopulated",
                          "lastTransitionTime": at(proxied_for)})
        s["status"] = {"serviceName": "hello-00001", "privateServiceName": "hello-00001-private",
                       "conditions": conds}
    return s


def deployment(replicas: int = 1, ready: int | None = None) -> Obj:
    rev = revision()
    d = resources.make_deployment(rev, effective_config(None, DOMAIN))
    d["spec"]["replicas"] = replicas
    ready = replicas if ready is None else ready
    d["status"] = {"replicas": replicas, **({"readyReplicas": ready} if ready else {})}
    return d


def make(stats: RevisionStats | None = None, poke: bool = False
         ) -> Callable[[MemoryClient], PodAutoscalerReconciler]:
    def build(c: MemoryClient) -> PodAutoscalerReconciler:
        r = PodAutoscalerReconciler(c, ConfigHolder(DOMAIN), stats or RevisionStats(),
                                    clock=lambda: NOW, metrics_clock=lambda: NOW)
        if poke:
            r.poke(KEY)
        return r
    return build


def fed(concurrency: float, seconds: int = 6) -> RevisionStats:
    """A revision that saw `concurrency` requests in flight over the last `seconds`."""
    st = RevisionStats()
    st.configure(KEY, 60.0, 6.0, NOW)
    for i in range(seconds, -1, -1):
        st.record(NOW - i, {KEY: {"concurrency": concurrency, "requests": concurrency}})
    return st


def active_cond(st: str, reason: str = "") -> Obj:
    c: Obj = {"type": "Active", "status": st}
    if reason:
        c["reason"] = reason
    return c


def pa_status(want: int, ready: int, active: Obj, **more: Any) -> Obj:
    return {"status": {"desiredScale": want, "actualScale": ready, "serviceName": "hello-00001",
                       "conditions": [active, {"type": "Ready"}, {"type": "SKSReady"},
                                      {"type": "ScaleTargetInitialized"}], **more}}


METRIC_READY = {"kind": "Metric", "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
SKS_PROXY = {"kind": "ServerlessService", "spec": {"mode": "Proxy"}}
SKS_SERVE = {"kind": "ServerlessService", "spec": {"mode": "Serve"}}

ROWS: list[tuple[Row, Callable[[MemoryClient], PodAutoscalerReconciler]]] = [
    (Row("a new PA gets its SKS in Serve mode and waits for its private service",
         [pa(), deployment(1, ready=0)], KEY,
         want_creates=[{"kind": "ServerlessService", "metadata": {"name": "hello-00001"},
                        "spec": {"mode": "Serve", "numActivators": 2,
                                 "objectRef": {"kind": "Deployment",
                                               "name": "hello-00001-deployment"}}}],
         want_status_updates=[{"status": {"desiredScale": -1, "actualScale": 0, "conditions": [
             active_cond("Unknown", "Queued"), {"type": "Ready", "status": "Unknown"},
             {"type": "SKSReady", "status": "Unknown", "reason": "NotReady",
              "message": "No Private Service Name"},
             {"type": "ScaleTargetInitialized", "status": "Unknown"}]}}]),
     make()),
    (Row("first ready pod, no metrics yet: the Metric is made, the PA turns Active, "
         "the activator stays in the path (TBC 211 > 1 pod)",
         [pa(), sks("Serve", proxied_for=None), deployment(1)], KEY,
         want_creates=[{"kind": "Metric", "spec": {
             "stableWindow": 60_000_000_000, "panicWindow": 6_000_000_000,
             "scrapeTarget": "hello-00001-private"}}],
         want_updates=[SKS_PROXY],
         want_status_updates=[METRIC_READY, {"status": {
             "desiredScale": -1, "actualScale": 1, "metricsServiceName": "hello-00001-private",
             "conditions": [active_cond("True"), {"type": "Ready", "status": "True"},
                            {"type": "SKSReady", "status": "True"},
                            {"type": "ScaleTargetInitialized", "status": "True"}]}}]),
     make()),
    (Row("load: 200 in flight against a target of 70 per pod scales to 3",
         [pa(active=("True", "", 100)), sks(), deployment(1)], KEY,
         want_creates=[{"kind": "Metric"}],
         want_patches=[("Deployment", "hello-00001-deployment", {"spec": {"replicas": 3}})],
         want_status_updates=[METRIC_READY, pa_status(3, 1, active_cond("True"))]),
     make(fed(200.0))),
    (Row("idle for the stable window: report 0, go inactive, the activator in the path",
         [pa(active=("True", "", 61)), sks("Serve", proxied_for=None), deployment(1)], KEY,
         want_creates=[{"kind": "Metric"}], want_updates=[SKS_PROXY],
         want_status_updates=[METRIC_READY,
                              pa_status(0, 1, active_cond("False", "NoTraffic"))]),
     make()),
    (Row("idle for less than the stable window: one pod held",
         [pa(active=("True", "", 30)), sks(), deployment(1)], KEY,
         want_creates=[{"kind": "Metric"}],
         want_status_updates=[METRIC_READY, pa_status(1, 1, active_cond("True"))]),
     make()),
    (Row("inactive, inside the grace period behind the activator: not yet",
         [pa(active=("False", "NoTraffic", 10), desiredScale=0, actualScale=1),
          sks("Proxy", proxied_for=10), deployment(1)], KEY,
         want_creates=[{"kind": "Metric"}], want_status_updates=[METRIC_READY]),
     make()),
    (Row("inactive past the grace period: scaled to zero",
         [pa(active=("False", "NoTraffic", 31), desiredScale=0, actualScale=1),
          sks("Proxy", proxied_for=31), deployment(1)], KEY,
         want_creates=[{"kind": "Metric"}],
         want_patches=[("Deployment", "hello-00001-deployment", {"spec": {"replicas": 0}})],
         want_status_updates=[METRIC_READY]),
     make()),
    (Row("min-scale keeps its pods however idle",
         [pa({"autoscaling.knative.dev/min-scale": "2"}, active=("True", "", 600)),
          sks(activators=5, owner=pa({"autoscaling.knative.dev/min-scale": "2"})),
          deployment(2)], KEY,
         want_creates=[{"kind": "Metric"}],
         want_status_updates=[METRIC_READY, pa_status(2, 2, active_cond("True"))]),
     make()),
    (Row("poked at zero: one pod at once, activating",
         [pa(active=("False", "NoTraffic", 300), desiredScale=0, actualScale=0),
          sks("Proxy", activators=3, proxied_for=300), deployment(0)], KEY,
         want_creates=[{"kind": "Metric"}],
         want_patches=[("Deployment", "hello-00001-deployment", {"spec": {"replicas": 1}})],
         want_status_updates=[METRIC_READY, pa_status(1, 0, active_cond("Unknown", "Queued"))]),
     make(poke=True)),
    (Row("poked at zero with an activation scale: that many",
         [pa({"autoscaling.knative.dev/activation-scale": "3"},
             active=("False", "NoTraffic", 300), desiredScale=0, actualScale=0),
          sks("Proxy", activators=3, proxied_for=300, owner=pa(
              {"autoscaling.knative.dev/activation-scale": "3"})), deployment(0)], KEY,
         want_creates=[{"kind": "Metric"}],
         want_patches=[("Deployment", "hello-00001-deployment", {"spec": {"replicas": 3}})],
         want_status_updates=[METRIC_READY, pa_status(3, 0, active_cond("Unknown", "Queued"))]),
     make(poke=True)),
    (Row("burst capacity to spare (TBC 0): the activator leaves the path",
         [pa({"autoscaling.knative.dev/target-burst-capacity": "0"}, active=("True", "", 100)),
          sks("Proxy", activators=2, owner=pa(
              {"autoscaling.knative.dev/target-burst-capacity": "0"})), deployment(1)], KEY,
         want_creates=[{"kind": "Metric"}], want_updates=[SKS_SERVE],
         want_status_updates=[METRIC_READY, pa_status(1, 1, active_cond("True"))]),
     make(fed(50.0))),
    (Row("the HPA class is not implemented, and says so",
         [pa({"autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev"}),
          sks("Serve", activators=2, proxied_for=None, owner=pa(
              {"autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev"})),
          deployment(1)], KEY,
         want_status_updates=[{"status": {"desiredScale": 1, "actualScale": 1, "conditions": [
             {"type": "Active", "status": "Unknown", "reason": "ClassNotSupported",
              "message": 'The autoscaler class "hpa.autoscaling.knative.dev" is not supported: '
                         "the Deployment keeps its initial scale."},
             {"type": "Ready", "status": "Unknown", "reason": "ClassNotSupported"},
             {"type": "SKSReady", "status": "True"},
             {"type": "ScaleTargetInitialized", "status": "True"}]}}]),
     make()),
    (Row("an SKS of that name that is not ours stops it",
         [pa(), {**sks(), "metadata": {**sks()["metadata"], "ownerReferences": []}},
          deployment(1)], KEY,
         want_creates=[{"kind": "Metric"}],
         want_status_updates=[METRIC_READY, {"status": {"conditions": [
             {"type": "Active", "status": "False", "reason": "NotOwned",
              "message": 'There is an existing ServerlessService "hello-00001" that we do not '
                         "own."},
             {"type": "Ready", "status": "False", "reason": "NotOwned"},
             {"type": "SKSReady", "status": "Unknown"},
             {"type": "ScaleTargetInitialized", "status": "Unknown"}]}}]),
     make()),
]


@pytest.mark.parametrize("row, build", ROWS, ids=[str(r[0]) for r in ROWS])
def test_pod_autoscaler_reconciler(row: Row,
                                   build: Callable[[MemoryClient], PodAutoscalerReconciler]) -> None:
    run(row, build, KINDS)


SKS_ROWS = [
    Row("an SKS gets its private and public Services and says who is in the path",
        [sks("Serve", private=False), deployment(1, ready=0)], KEY,
        want_creates=[
            {"kind": "Service", "metadata": {"name": "hello-00001-private", "labels": {
                "networking.internal.knative.dev/serviceType": "Private"}},
             "spec": {"selector": {"serving.knative.dev/revisionUID": "rev-uid"},
                      "ports": [{"name": "http", "protocol": "TCP", "port": 80,
                                 "targetPort": 8012}]}},
            {"kind": "Service", "metadata": {"name": "hello-00001"},
             "spec": {"ports": [{"name": "http", "protocol": "TCP", "port": 80,
                                 "targetPort": 8012}]}}],
        want_status_updates=[{"status": {
            "serviceName": "hello-00001", "privateServiceName": "hello-00001-private",
            "conditions": [{"type": "ActivatorEndpointsPopulated", "status": "True",
                            "severity": "Info", "reason": "ActivatorEndpointsPopulated",
                            "message": "Revision is backed by Activator"},
                           {"type": "EndpointsPopulated", "status": "True"},
                           {"type": "Ready", "status": "True"}]}}]),
]


@pytest.mark.parametrize("row", SKS_ROWS, ids=str)
def test_serverless_service_reconciler(row: Row) -> None:
    run(row, ServerlessServiceReconciler, KINDS)


# --- a PA's life over a small world ----------------------------------------------------------

class World:
    """The PA and SKS reconcilers over a MemoryClient; the test plays the Deployment
    controller (ready = spec.replicas at once) and moves the clock."""

    def __init__(self) -> None:
        self.client = MemoryClient([revision(), deployment(1, ready=0), pa()], KINDS)
        self.stats = RevisionStats()
        self.now = time.time()      # SKS conditions carry real times; stay beside them
        self.kpa = PodAutoscalerReconciler(self.client, ConfigHolder(DOMAIN), self.stats,
                                           clock=lambda: self.now,
                                           metrics_clock=lambda: self.now)
        self.sks = ServerlessServiceReconciler(self.client)

    async def step(self, seconds: float = 2.0) -> None:
        self.now += seconds
        for _ in range(3):
            await self.kpa.reconcile("default", "hello-00001")
            await self.sks.reconcile("default", "hello-00001")
            d = await self.client.get(DEPLOYMENT, "hello-00001-deployment", "default")
            want = int(d["spec"]["replicas"])
            if int((d.get("status") or {}).get("readyReplicas") or 0) != want:
                d["status"] = {"replicas": want, **({"readyReplicas": want} if want else {})}
                await self.client.update_status(d)

    async def replicas(self) -> int:
        d = await self.client.get(DEPLOYMENT, "hello-00001-deployment", "default")
        return int(d["spec"]["replicas"])

    async def get(self, ref: Any) -> Obj:
        return await self.client.get(ref, "hello-00001", "default")

    def load(self, concurrency: float) -> None:
        self.stats.record(self.now, {KEY: {"concurrency": concurrency,
                                           "requests": concurrency}})


def cond(obj: Obj, t: str) -> tuple[str, str]:
    c = next(c for c in obj["status"]["conditions"] if c["type"] == t)
    return c["status"], c.get("reason", "")


def test_a_pod_autoscalers_life() -> None:
    async def go() -> None:
        w = World()
        await w.step()
        assert cond(await w.get(POD_AUTOSCALER), "Active") == ("True", "")
        # Load: 300 in flight for a few seconds -> panic -> 5 pods (ceil(300/70)).
        for _ in range(3):
            w.load(300.0)
            await w.step(1.0)
        assert await w.replicas() == 5
        assert (await w.get(POD_AUTOSCALER))["status"]["actualScale"] == 5
        # Five pods take 500 - 211 - 300 < 0: the activator stays in the path.
        assert (await w.get(SERVERLESS_SERVICE))["spec"]["mode"] == "Proxy"
        # Quiet: the panic ends after a stable window, then scale down, then zero.
        for _ in range(70):
            await w.step()
            if await w.replicas() == 0:
                break
        assert await w.replicas() == 0
        pa_obj = await w.get(POD_AUTOSCALER)
        assert cond(pa_obj, "Active") == ("False", "NoTraffic")
        assert pa_obj["status"]["desiredScale"] == 0
        assert (await w.get(SERVERLESS_SERVICE))["spec"]["mode"] == "Proxy"
        # Stays at zero without traffic.
        await w.step(30)
        assert await w.replicas() == 0
        # The activator pokes: back to one pod, Active again once it is ready.
        w.kpa.poke(KEY)
        await w.step(0.5)
        assert await w.replicas() == 1
        await w.step()
        assert cond(await w.get(POD_AUTOSCALER), "Active") == ("True", "")
    asyncio.run(go())
