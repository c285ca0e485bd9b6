"""The reconciler shells over the real registry (SQLite file, admission hooks, no sockets):
a ksvc settles into its children and statuses, and a further pass writes nothing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from skiff.core import builtin_kinds
from skiff.core.admission import Admission
from skiff.core.apiserver.local_client import LocalClient
from skiff.core.apiserver.registry import Registry
from skiff.core.client import ApiError, Ref
from skiff.core.kinds import Kinds
from skiff.core.store.sqlite import SQLiteStore
from skiff.operator import crds as operator_crds
from skiff.operator.serving import KnativeServingReconciler
from skiff.operator.setup import install as install_operator
from skiff.serving import crds as serving_crds
from skiff.serving.config import ConfigHolder
from skiff.serving.reconcilers.base import (
    CONFIGURATION,
    DEPLOYMENT,
    INGRESS,
    K8S_SERVICE,
    KNATIVE_SERVING,
    METRIC,
    POD_AUTOSCALER,
    REVISION,
    ROUTE,
    SERVERLESS_SERVICE,
    SERVICE,
)
from skiff.serving.reconcilers.configuration import ConfigurationReconciler
from skiff.serving.reconcilers.podautoscaler import PodAutoscalerReconciler
from skiff.serving.reconcilers.revision import RevisionReconciler
from skiff.serving.reconcilers.route import RouteReconciler
from skiff.serving.reconcilers.serverlessservice import ServerlessServiceReconciler
from skiff.serving.reconcilers.service import ServiceReconciler
from skiff.serving.setup import install

DOMAIN = "apps.example.com"


class World:
    def __init__(self, tmp: Path) -> None:
        kinds = Kinds()
        for k in builtin_kinds.KINDS + serving_crds.KINDS + operator_crds.KINDS:
            kinds.add(k)
        self.admission = Admission()
        self.registry = Registry(SQLiteStore(tmp / "db"), kinds, self.admission)
        ns = kinds.for_api_version("v1", "Namespace")
        assert ns is not None
        for name in ("default", "knative-serving"):
            self.registry.create(ns, "", {"metadata": {"name": name}})
        self.client = LocalClient(self.registry)
        self.manager_added: list[Any] = []
        self.components: list[Any] = []
        self.settings = type("S", (), {"domain": DOMAIN})()
        self.manager = type("M", (), {"add": lambda _s, r, workers=1: self.manager_added.append(r)})()
        install(self)   # the same wiring `skiff up` uses: serving, then the operator
        install_operator(self)
        self.holder: ConfigHolder = self.serving_config   # type: ignore[attr-defined]
        # The KPA on a clock the test moves.
        self.now = time.time()
        self.kpa = next(r for r in self.manager_added if isinstance(r, PodAutoscalerReconciler))
        self.kpa.clock = self.kpa.metrics_clock = lambda: self.now

    def reconcilers(self) -> list[Any]:
        return self.manager_added

    async def pass_once(self) -> None:
        for r in self.reconcilers():
            for o in await self.client.list(r.primary):
                await r.reconcile(o["metadata"].get("namespace", ""), o["metadata"]["name"])

    async def settle(self, data_plane: bool = True, rounds: int = 12) -> None:
        for _ in range(rounds):
            before = self.registry.store.rv
            await self.pass_once()
            if data_plane:
                await self.fake_data_plane()
            if self.registry.store.rv == before:
                return
        raise AssertionError("the world did not settle")

    async def fake_data_plane(self) -> None:
        """Stand in for the Deployment controller, the node and the gateway: all ready."""
        for d in await self.client.list(DEPLOYMENT):
            want = int(d["spec"].get("replicas", 1))
            st = {"observedGeneration": d["metadata"]["generation"], "replicas": want,
                  "conditions": [{"type": "Progressing", "status": "True",
                                  "reason": "NewReplicaSetAvailable"}]}
            if want:
                st.update(readyReplicas=want, availableReplicas=want)
            if d.get("status") != st:
                d["status"] = st
                await self.client.update_status(d)
        for i in await self.client.list(INGRESS):
            st = {"observedGeneration": i["metadata"]["generation"],
                  "conditions": [{"type": "Ready", "status": "True"}]}
            if i.get("status") != st:
                i["status"] = st
                await self.client.update_status(i)

    async def get(self, ref: Ref, name: str, ns: str = "default") -> dict[str, Any]:
        return await self.client.get(ref, name, ns)


def ksvc(image: str = "img", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "hello", "namespace": "default"},
            "spec": {"template": {"spec": {"containers": [{"image": image}]}}, **spec}}


def ready(obj: dict[str, Any]) -> str:
    return next((c["status"] for c in obj["status"]["conditions"] if c["type"] == "Ready"), "")


def test_ksvc_settles_and_a_second_pass_writes_nothing(tmp_path: Path) -> None:
    async def run() -> None:
        w = World(tmp_path)
        assert {type(r) for r in w.reconcilers()} == {
            KnativeServingReconciler, ServiceReconciler, ConfigurationReconciler,
            RevisionReconciler, RouteReconciler, PodAutoscalerReconciler,
            ServerlessServiceReconciler}
        await w.client.create(ksvc())
        await w.settle()
        svc = await w.get(SERVICE, "hello")
        assert ready(svc) == "True"
        assert svc["status"]["url"] == f"https://hello-default.{DOMAIN}"
        assert ready(await w.get(REVISION, "hello-00001")) == "True"
        assert ready(await w.get(ROUTE, "hello")) == "True"
        rv = w.registry.store.rv
        await w.pass_once()
        await w.pass_once()
        assert w.registry.store.rv == rv           # level-triggered and idempotent

        # The KPA's children: an SKS with its two Services, a Metric; the revision's scale.
        pa = await w.get(POD_AUTOSCALER, "hello-00001")
        assert ready(pa) == "True" and pa["status"]["serviceName"] == "hello-00001"
        assert pa["spec"]["reachability"] == "Reachable"
        assert (await w.get(SERVERLESS_SERVICE, "hello-00001"))["status"][
            "privateServiceName"] == "hello-00001-private"
        assert (await w.get(K8S_SERVICE, "hello-00001-private"))["spec"]["selector"] == {
            "serving.knative.dev/revisionUID": pa["metadata"]["labels"][
                "serving.knative.dev/revisionUID"]}
        assert ready(await w.get(METRIC, "hello-00001")) == "True"
        rev = await w.get(REVISION, "hello-00001")
        assert (rev["status"]["actualReplicas"], rev["status"]["desiredReplicas"]) == (1, 1)

        # An update stamps hello-00002; the old one goes to reserve, and the KPA scales it to
        # zero once it has been idle for the stable window and behind the activator.
        svc["spec"]["template"]["spec"]["containers"][0]["image"] = "img2"
        await w.client.update(svc)
        await w.settle()
        svc = await w.get(SERVICE, "hello")
        assert svc["status"]["latestReadyRevisionName"] == "hello-00002"
        assert svc["status"]["traffic"][0]["revisionName"] == "hello-00002"
        old = await w.get(REVISION, "hello-00001")
        assert old["metadata"]["labels"]["serving.knative.dev/routingState"] == "reserve"
        assert (await w.get(POD_AUTOSCALER, "hello-00001"))["spec"]["reachability"] == \
            "Unreachable"
        assert (await w.get(DEPLOYMENT, "hello-00001-deployment"))["spec"]["replicas"] == 1
        for _ in range(3):
            w.now += 61
            await w.settle()
        assert (await w.get(DEPLOYMENT, "hello-00001-deployment"))["spec"]["replicas"] == 0
        old = await w.get(REVISION, "hello-00001")
        active = next(c for c in old["status"]["conditions"] if c["type"] == "Active")
        assert (active["status"], active["reason"]) == ("False", "NoTraffic")
        assert ready(old) == "True"
        # hello-00002 is routed: it idles the same way, as upstream (the activator wakes it).
        assert (await w.get(CONFIGURATION, "hello"))["metadata"]["generation"] == 2
    asyncio.run(run())


def test_knative_serving_changes_the_domain_and_admission_rejects_unknown_keys(
        tmp_path: Path) -> None:
    async def run() -> None:
        w = World(tmp_path)
        await w.client.create(ksvc())
        await w.settle()
        bad: dict[str, Any] = {"apiVersion": "operator.knative.dev/v1beta1", "kind": "KnativeServing",
               "metadata": {"name": "knative-serving", "namespace": "knative-serving"},
               "spec": {"config": {"network": {"domainTemplate": "{{.Name}}.{{.Domain}}",
                                               "bogus": "1"}}}}
        with pytest.raises(ApiError) as e:
            await w.client.create(bad)
        assert e.value.code == 422 and "spec.config.network.bogus" in e.value.message
        del bad["spec"]["config"]["network"]["bogus"]
        bad["spec"]["config"]["domain"] = {"example.org": ""}
        await w.client.create(bad)
        await w.settle()
        ks = await w.get(KNATIVE_SERVING, "knative-serving", "knative-serving")
        assert ready(ks) == "True" and ks["status"]["version"].startswith("1.10")
        assert w.holder.get().domain_template == "{{.Name}}.{{.Domain}}"
        assert (await w.get(SERVICE, "hello"))["status"]["url"] == "https://hello.example.org"
        rules = (await w.get(INGRESS, "hello"))["spec"]["rules"]
        assert rules[-1]["hosts"] == ["hello.example.org"]
    asyncio.run(run())


def test_bad_revision_spec_defaults_apply_through_admission(tmp_path: Path) -> None:
    async def run() -> None:
        w = World(tmp_path)
        with pytest.raises(ApiError) as e:
            await w.client.create(ksvc(traffic=[{"latestRevision": True, "percent": 90}]))
        assert "spec.traffic: Traffic targets sum to 90, want 100" in e.value.message
        created = await w.client.create(ksvc())
        tspec = created["spec"]["template"]["spec"]
        assert tspec["containers"][0]["name"] == "user-container"
        assert created["spec"]["traffic"] == [{"percent": 100, "latestRevision": True}]
    asyncio.run(run())


def test_config_not_owned_is_reported(tmp_path: Path) -> None:
    async def run() -> None:
        w = World(tmp_path)
        await w.client.create({"apiVersion": "serving.knative.dev/v1", "kind": "Configuration",
                               "metadata": {"name": "hello", "namespace": "default"},
                               "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}})
        await w.client.create(ksvc())
        await w.pass_once()
        svc = await w.get(SERVICE, "hello")
        c = next(c for c in svc["status"]["conditions"] if c["type"] == "ConfigurationsReady")
        assert (c["status"], c["reason"], c["message"]) == (
            "False", "NotOwned", 'There is an existing Configuration "hello" that we do not own.')
    asyncio.run(run())


SEEDS = Path(__file__).resolve().parents[2] / "golden" / "seeds"
ADMITTED_KINDS = {"Service", "KnativeServing"}


def seed_objects() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for f in sorted(SEEDS.glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if isinstance(doc, dict) and doc.get("kind") in ADMITTED_KINDS:
                out.append((f.name, doc))
    return out


@pytest.mark.parametrize("name, obj", seed_objects(), ids=lambda v: v if isinstance(v, str) else "")
def test_the_guides_serving_yaml_passes_admission(tmp_path: Path, name: str,
                                                  obj: dict[str, Any]) -> None:
    w = World(tmp_path)
    k = w.registry.kind_for(Ref(obj["apiVersion"], obj["kind"]))
    ns = obj["metadata"].get("namespace", "default")
    if ns not in ("default", "knative-serving"):
        nsk = w.registry.kind_for(Ref("v1", "Namespace"))
        w.registry.create(nsk, "", {"metadata": {"name": ns}})
    w.registry.create(k, ns, obj, dry_run=True)
