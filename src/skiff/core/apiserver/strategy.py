"""Per-kind strategies: what create, update and delete mean beyond the generic REST rules.

Kubernetes' registry/strategy pattern (k8s.io/apiserver's RESTCreateStrategy,
RESTUpdateStrategy, RESTDeleteStrategy and each kind's strategy.go): the
registry (registry.py) runs the same steps for every kind and asks the
kind's Strategy for the parts that differ: defaulting on create and update
(PrepareForCreate/Update + the defaulters), validation beyond the schema,
whether deletion waits for a built-in finalizer (a Namespace's "kubernetes"),
what deletion marks (a Namespace turns Terminating) and a pod's grace
period. Custom resources and kinds without special rules get the base
Strategy, which does nothing. Neighbours: registry.py, core/defaults.py
(the defaulting, pure), core/corevalidation.py (the validation, pure).
"""

from __future__ import annotations

from skiff.core.client import ApiError, Obj
from skiff.core.corevalidation import (
    DecodeError,
    decode_secret_data,
    validate_configmap,
    validate_secret,
)
from skiff.core.defaults import (
    default_namespace,
    default_workload,
    fold_string_data,
    initial_pod_status,
)
from skiff.core.kinds import Kind
from skiff.core.validation import Cause


class Strategy:
    """The generic behaviour: nothing to add."""

    def prepare_for_create(self, obj: Obj) -> None:
        """Defaults for a new object (its status already cleared when the kind has one)."""

    def prepare_for_update(self, obj: Obj) -> None:
        """Defaults re-applied on every update."""

    def validate(self, obj: Obj, old: Obj | None) -> list[Cause]:
        return []

    def held(self, obj: Obj) -> bool:
        """Whether deletion waits for a built-in finalizer (beyond metadata.finalizers)."""
        return False

    def on_delete(self, obj: Obj) -> None:
        """What a deletion that must wait marks on the object."""

    def grace(self, obj: Obj, requested: int | None) -> int:
        """The graceful-deletion period, in seconds (0: delete at once)."""
        return 0


class WorkloadStrategy(Strategy):
    def __init__(self, kind: str) -> None:
        self.kind = kind

    def prepare_for_create(self, obj: Obj) -> None:
        default_workload(self.kind, obj)

    def prepare_for_update(self, obj: Obj) -> None:
        default_workload(self.kind, obj)


class PodStrategy(WorkloadStrategy):
    def __init__(self) -> None:
        super().__init__("Pod")

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        if "status" not in obj:
            obj["status"] = initial_pod_status(obj)

    def grace(self, obj: Obj, requested: int | None) -> int:
        """A pod a node runs waits for the kubelet to stop it; others go at once."""
        spec = obj.get("spec") or {}
        phase = (obj.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        if requested is not None:
            return requested if requested > 0 else 0
        return int(spec.get("terminationGracePeriodSeconds", 30))


class NamespaceStrategy(Strategy):
    def prepare_for_create(self, obj: Obj) -> None:
        default_namespace(obj)

    def held(self, obj: Obj) -> bool:
        """A namespace waits to be emptied (its "kubernetes" finalizer)."""
        return bool((obj.get("spec") or {}).get("finalizers"))

    def on_delete(self, obj: Obj) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"


def _decoded(obj: Obj) -> None:
    try:
        decode_secret_data(obj)
    except DecodeError as e:
        raise ApiError(400, "BadRequest", str(e)) from None


class SecretStrategy(Strategy):
    def prepare_for_create(self, obj: Obj) -> None:
        obj.setdefault("type", "Opaque")
        _decoded(obj)
        fold_string_data(obj)

    def prepare_for_update(self, obj: Obj) -> None:
        obj.setdefault("type", "Opaque")
        _decoded(obj)
        fold_string_data(obj)

    def validate(self, obj: Obj, old: Obj | None) -> list[Cause]:
        return validate_secret(obj, old)


class ConfigMapStrategy(Strategy):
    def validate(self, obj: Obj, old: Obj | None) -> list[Cause]:
        return validate_configmap(obj, old)


class ServiceStrategy(Strategy):
    def prepare_for_create(self, obj: Obj) -> None:
        if "status" not in obj:
            obj["status"] = {"loadBalancer": {}}


GENERIC = Strategy()
BUILTIN: dict[str, Strategy] = {
    "Pod": PodStrategy(),
    "Deployment": WorkloadStrategy("Deployment"),
    "ReplicaSet": WorkloadStrategy("ReplicaSet"),
    "Namespace": NamespaceStrategy(),
    "Secret": SecretStrategy(),
    "ConfigMap": ConfigMapStrategy(),
    "Service": ServiceStrategy(),
}


def strategy_for(k: Kind) -> Strategy:
    return BUILTIN.get(k.kind, GENERIC) if k.builtin else GENERIC
