"""KnativeServing (operator.knative.dev/v1beta1): turns Serving on and rules its config.

skiff's serving controllers run in-process from `skiff up`, so there is
nothing to install; what the operator still owes its user is the contract
of its CR. Admission rejects an unknown config map or key in spec.config
(validate_knative_serving; the field path names spec.config.<cm>.<key>).
The reconciler publishes the effective ServingConfig (serving/config.py)
of the KnativeServing that rules (the oldest in knative-serving) to the
ConfigHolder the admission hooks read; the serving reconcilers load the
same config themselves and are requeued by their own watches on this kind.
Its status is the upstream operator's: DependenciesInstalled,
DeploymentsAvailable, InstallSucceeded, VersionMigrationEligible and Ready,
status.version (Knative Serving 1.10, as OpenShift Serverless 1.31 ships
it) and observedGeneration. Annotations such as
serverless.openshift.io/enable-secret-informer-filtering and
serving.knative.openshift.io/* are accepted and left for their readers.
knative_serving_status() is pure. Neighbours: operator/crds.py (schema),
serving/config.py, serving/setup.py (registration).
"""

from __future__ import annotations

import copy
from typing import Any

from skiff.core import conditions
from skiff.core.client import Client, Obj, Ref
from skiff.core.conditions import ConditionSet
from skiff.core.controller import Mapper
from skiff.core.reconcile import get_or_none, write_status
from skiff.core.validation import Cause
from skiff.operator.crds import KNATIVE_OPERATOR
from skiff.serving.config import (
    KNATIVE_SERVING_NAMESPACE,
    ConfigHolder,
    authoritative,
    effective_config,
    validate_spec_config,
)

# The Knative Serving release OpenShift Serverless 1.31 is built on (1.10); the
# patch level is the one skiff reports.
SERVING_VERSION = "1.10.2"
KNATIVE_SERVING = Ref(f"{KNATIVE_OPERATOR}/v1beta1", "KnativeServing")

DEPENDENCIES_INSTALLED = "DependenciesInstalled"
DEPLOYMENTS_AVAILABLE = "DeploymentsAvailable"
INSTALL_SUCCEEDED = "InstallSucceeded"
VERSION_MIGRATION_ELIGIBLE = "VersionMigrationEligible"
KNATIVE_SERVING_CONDITIONS = ConditionSet((DEPENDENCIES_INSTALLED, DEPLOYMENTS_AVAILABLE,
                                           INSTALL_SUCCEEDED, VERSION_MIGRATION_ELIGIBLE))


def validate_knative_serving(obj: Obj, old: Obj | None) -> list[Cause]:
    """Admission: spec.config must name known config maps and keys."""
    return validate_spec_config((obj.get("spec") or {}).get("config"))


def knative_serving_status(ks: Obj, ruling: Obj | None, status: Obj) -> None:
    """The operator's conditions for `ks`, given the KnativeServing that rules. Pure."""
    m = KNATIVE_SERVING_CONDITIONS.manage(status)
    m.mark_true(DEPENDENCIES_INSTALLED)
    m.mark_true(DEPLOYMENTS_AVAILABLE)
    meta = ks["metadata"]
    wanted = str((ks.get("spec") or {}).get("version") or "")
    if wanted and not (wanted == SERVING_VERSION or wanted.startswith("1.10")):
        m.mark_false(VERSION_MIGRATION_ELIGIBLE, "Error",
                     "Version migration is not eligible with message: the version "
                     f"{wanted} is not supported; skiff serves Knative Serving {SERVING_VERSION}")
    else:
        m.mark_true(VERSION_MIGRATION_ELIGIBLE)
    if meta.get("namespace") != KNATIVE_SERVING_NAMESPACE:
        m.mark_false(INSTALL_SUCCEEDED, "Error",
                     "Install failed with message: KnativeServing must be created in the "
                     f"{KNATIVE_SERVING_NAMESPACE} namespace")
    elif ruling is not None and ruling["metadata"]["name"] != meta["name"]:
        m.mark_false(INSTALL_SUCCEEDED, "Error",
                     "Install failed with message: only one KnativeServing is allowed; "
                     f"{KNATIVE_SERVING_NAMESPACE}/{ruling['metadata']['name']} is in effect")
    else:
        m.mark_true(INSTALL_SUCCEEDED)
    status["version"] = SERVING_VERSION


class KnativeServingReconciler:
    name = "knativeserving"
    primary = KNATIVE_SERVING

    def __init__(self, client: Client, holder: ConfigHolder) -> None:
        self.client = client
        self.holder = holder

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        return []

    async def reconcile(self, namespace: str, name: str) -> float | None:
        items = await self.client.list(KNATIVE_SERVING)
        ruling = authoritative(items)
        self.holder.set(effective_config(ruling, self.holder.cluster_domain))
        ks = await get_or_none(self.client, KNATIVE_SERVING, name, namespace)
        if ks is None or ks["metadata"].get("deletionTimestamp"):
            return None
        old_status: dict[str, Any] = ks.get("status") or {}
        status = copy.deepcopy(old_status)
        gen = int(ks["metadata"].get("generation") or 1)
        conditions.pre_process(KNATIVE_SERVING_CONDITIONS, status, gen)
        knative_serving_status(ks, ruling, status)
        status["observedGeneration"] = gen
        await write_status(self.client, ks, status, old_status)
        return None
