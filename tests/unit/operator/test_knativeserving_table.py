"""The KnativeServing reconciler as a knative-style table: world + key -> the status it writes
(and the ServingConfig it hands the admission hooks). The operator's status contract itself is
test_operator_serving.py's; this is the reconcile around it, over the MemoryClient."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.core.memclient import MemoryClient
from skiff.operator import crds
from skiff.operator.serving import SERVING_VERSION, KnativeServingReconciler
from skiff.serving.config import ConfigHolder, effective_config
from tabletest import Row, run

Obj = dict[str, Any]
NS = "knative-serving"
T = "2026-01-01T00:00:00Z"


def ks(name: str = NS, ns: str = NS, created: str = T, status: Obj | None = None,
       **spec: Any) -> Obj:
    return {"apiVersion": "operator.knative.dev/v1beta1", "kind": "KnativeServing",
            "metadata": {"name": name, "namespace": ns, "generation": 1,
                         "creationTimestamp": created},
            "spec": spec, **({"status": status} if status is not None else {})}


def conds(**failed: str) -> list[Obj]:
    """The five conditions in the order they are written; `failed` names those False (with
    their reason), and Ready follows them."""
    out = []
    for t in ("DependenciesInstalled", "DeploymentsAvailable", "InstallSucceeded", "Ready",
              "VersionMigrationEligible"):
        bad = failed.get(t) or (next(iter(failed.values())) if t == "Ready" and failed else "")
        out.append({"type": t, "status": "False", "reason": bad} if bad
                   else {"type": t, "status": "True"})
    return out


READY = {"conditions": conds(), "version": SERVING_VERSION, "observedGeneration": 1}
STAMPED = {**READY, "conditions": [{**c, "lastTransitionTime": T} for c in READY["conditions"]]}

ROWS = [
    Row("a new KnativeServing: installed, Ready, the version OpenShift Serverless 1.31 ships",
        [ks()], f"{NS}/{NS}", want_status_updates=[{"status": READY}]),
    Row("steady: nothing to write", [ks(status=STAMPED)], f"{NS}/{NS}"),
    Row("a new generation: only observedGeneration moves",
        [{**ks(status=STAMPED), "metadata": {**ks()["metadata"], "generation": 2}}],
        f"{NS}/{NS}", want_status_updates=[{"status": {**READY, "observedGeneration": 2}}]),
    Row("a second one: not installed, naming the one in effect",
        [ks(), ks("second", created="2026-01-02T00:00:00Z")], f"{NS}/second",
        want_status_updates=[{"status": {"conditions": conds(InstallSucceeded="Error")}}]),
    Row("outside knative-serving: not installed", [ks(ns="default")], "default/" + NS,
        want_status_updates=[{"status": {"conditions": conds(InstallSucceeded="Error")}}]),
    Row("a version skiff does not serve: migration not eligible", [ks(version="1.12")],
        f"{NS}/{NS}",
        want_status_updates=[{"status": {"conditions": conds(VersionMigrationEligible="Error")}}]),
    Row("gone: nothing to write", [], f"{NS}/{NS}"),
    Row("the status write fails: the error is returned", [ks()], f"{NS}/{NS}",
        fail_on=[("update_status", "KnativeServing")],
        want_status_updates=[{"status": {"version": SERVING_VERSION}}], want_err="inducing"),
]


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_knative_serving_reconciler(row: Row) -> None:
    run(row, lambda c: KnativeServingReconciler(c, ConfigHolder("cluster.local")), crds.KINDS)


def test_a_failed_install_says_which_one_is_in_effect() -> None:
    client = run(ROWS[3], lambda c: KnativeServingReconciler(c, ConfigHolder("cluster.local")),
                 crds.KINDS)
    msg = next(c["message"] for c in client.actions[0].object["status"]["conditions"]
               if c["type"] == "InstallSucceeded")
    assert msg.endswith(f"only one KnativeServing is allowed; {NS}/{NS} is in effect")


@pytest.mark.parametrize("objects,key,domain", [
    # the ruling one's spec.config reaches the admission hooks, whichever key is reconciled
    ([ks(config={"domain": {"apps.example.com": ""}})], f"{NS}/{NS}", "apps.example.com"),
    ([ks(config={"domain": {"apps.example.com": ""}}),
      ks("second", created="2026-01-02T00:00:00Z", config={"domain": {"other.test": ""}})],
     f"{NS}/second", "apps.example.com"),
    # gone: back to the defaults (the cluster domain), though the holder had another
    ([], f"{NS}/{NS}", effective_config(None, "cluster.local").lookup_domain({})),
])
def test_the_ruling_config_reaches_the_holder(objects: list[Obj], key: str, domain: str) -> None:
    holder = ConfigHolder("cluster.local")
    holder.set(effective_config(ks(config={"domain": {"before.test": ""}}), "cluster.local"))
    run(Row("config", objects, key, want_status_updates=[{}] * (1 if objects else 0)),
        lambda c: KnativeServingReconciler(c, holder), crds.KINDS)
    assert holder.get().lookup_domain({}) == domain


def test_the_table_world_is_the_registrys() -> None:
    """The rows' objects pass the CRD schema as the API server would take them."""
    MemoryClient([ks(config={"network": {"ingress-class": "istio.ingress.networking.knative.dev"}})],
                 crds.KINDS)
