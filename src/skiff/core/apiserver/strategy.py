"""Per-kind strategies: what create, update and delete mean beyond the generic REST rules.

Kubernetes' registry/strategy pattern (k8s.io/apiserver's RESTCreateStrategy,
RESTUpdateStrategy, RESTDeleteStrategy and each kind's strategy.go): the
registry (registry.py) runs the same steps for every kind and asks the
kind's Strategy for the parts that differ: defaulting on create and update
(PrepareForCreate/Update + the defaulters), validation beyond the schema,
whether deletion waits for a built-in finalizer (a Namespace's "kubernetes"),
what deletion marks (a Namespace turns Terminating) and a pod's grace
period. Custom resources and kinds without special rules get the base
Strategy, which does nothing. Each Registry has its own Strategies: the
Service strategy keeps the ClusterIP allocator of that registry's store
(upstream's service REST storage + ipallocator). Neighbours: registry.py,
core/defaults.py (the defaulting, pure), core/corevalidation.py and
core/netpolvalidation.py (the validation, pure), core/clusterip.py (the
allocation arithmetic, pure).
"""

from __future__ import annotations

import random

from skiff.core.client import ApiError, Obj
from skiff.core.clusterip import (
    DEFAULT_SERVICE_CIDR,
    ERR_FULL,
    NONE,
    ServiceRange,
    next_free,
    request_problem,
)
from skiff.core.corevalidation import (
    DecodeError,
    cluster_ips,
    decode_secret_data,
    default_ip_families,
    go_strings,
    needs_cluster_ip,
    normalize_cluster_ips,
    validate_configmap,
    validate_pod,
    validate_pod_template,
    validate_secret,
    validate_service_ips,
)
from skiff.core.defaults import (
    default_namespace,
    default_workload,
    fold_string_data,
    initial_pod_status,
)
from skiff.core.kinds import Kind
from skiff.core.netpolvalidation import validate_network_policy
from skiff.core.store import Store, key_for, prefix_for
from skiff.core.validation import Cause


class Strategy:
    """The generic behaviour: nothing to add."""

    def prepare_for_create(self, obj: Obj) -> None:
        """Defaults for a new object (its status already cleared when the kind has one)."""

    def prepare_for_update(self, obj: Obj, old: Obj) -> None:
        """Defaults re-applied on every update (`old`: the stored object)."""

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

    def prepare_for_update(self, obj: Obj, old: Obj) -> None:
        default_workload(self.kind, obj)

    def validate(self, obj: Obj, old: Obj | None) -> list[Cause]:
        return validate_pod_template(obj, old)


class PodStrategy(WorkloadStrategy):
    def __init__(self) -> None:
        super().__init__("Pod")

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        if "status" not in obj:
            obj["status"] = initial_pod_status(obj)

    def validate(self, obj: Obj, old: Obj | None) -> list[Cause]:
        return validate_pod(obj, old)

    def held(self, obj: Obj) -> bool:
        """A pod deleted with a grace period stays (Terminating) until its kubelet has stopped
        it and deletes it again with grace 0; a status write meanwhile does not remove it."""
        return int((obj.get("metadata") or {}).get("deletionGracePeriodSeconds") or 0) > 0

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

    def prepare_for_update(self, obj: Obj, old: Obj) -> None:
        # The kubernetes.io/metadata.name label is the API server's, set on every write:
        # a client that removes or changes it gets it back (upstream's namespace strategy).
        obj.setdefault("metadata", {}).setdefault("labels", {})["kubernetes.io/metadata.name"] = \
            old["metadata"]["name"]

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

    def prepare_for_update(self, obj: Obj, old: Obj) -> None:
        obj.setdefault("type", "Opaque")
        _decoded(obj)
        fold_string_data(obj)

    def validate(self, obj: Obj, old: Obj | None) -> list[Cause]:
        return validate_secret(obj, old)


class ConfigMapStrategy(Strategy):
    def validate(self, obj: Obj, old: Obj | None) -> list[Cause]:
        return validate_configmap(obj, old)


class ServiceStrategy(Strategy):
    """ClusterIPs from the service CIDR, unique among the stored Services.

    Which addresses are taken is derived from the store, under the registry's write path:
    the registry's create and update are synchronous from this strategy to the store write,
    so two creates cannot pick the same address. `_claims` (offset -> the Service's store
    key) is built from the stored Services on first use and then kept by every allocation;
    it may hold stale claims (a create that failed validation, a Service since deleted or
    turned ExternalName), never miss a stored address. A requested address is checked
    against the store itself; a dynamic one avoids every claim, and a full range is
    re-derived from the store once before it is called full. Nothing to release on delete.
    """

    def __init__(self, store: Store | None = None, service_cidr: str = DEFAULT_SERVICE_CIDR,
                 rng: random.Random | None = None) -> None:
        self.range = ServiceRange.parse(service_cidr)
        self._store = store
        self._rng = rng or random.Random()
        self._claims: dict[int, str] | None = None

    # --- the taken set ----------------------------------------------------------------------
    def _claimed(self) -> dict[int, str]:
        if self._claims is None:
            self._claims = self._derive()
        return self._claims

    def _derive(self) -> dict[int, str]:
        claims: dict[int, str] = {}
        if self._store is None:
            return claims
        for key, svc in self._store.iter(prefix_for("", "services")):
            for ip in cluster_ips(svc):
                off = self.range.offset_of(ip)
                if off is not None:
                    claims[off] = key
        return claims

    def _holder(self, off: int) -> str | None:
        """The store key of the stored Service that holds the address at `off`, if any."""
        key = self._claimed().get(off)
        if key is None or self._store is None:
            return None
        stored = self._store.get(key)
        return key if stored is not None and self.range.ip_at(off) in cluster_ips(stored) else None

    # --- allocation ---------------------------------------------------------------------------
    def _allocate(self, obj: Obj) -> None:
        """Give `obj` an address (none wanted: headless; one requested: claimed if free).
        A requested address that cannot be had is left for validate() to report."""
        spec = obj["spec"]
        ips = cluster_ips(obj)
        key = _service_key(obj)
        if ips and ips[0] == NONE:
            return
        if ips:
            off = self.range.offset_of(ips[0])
            if off is not None and self._holder(off) is None:
                self._claimed()[off] = key
            return
        off = self._next()
        if off is None:
            # Upstream answers a full range with an internal error, not a field error.
            raise ApiError(500, "InternalError",
                           f"Internal error occurred: failed to allocate a serviceIP: {ERR_FULL}")
        self._claimed()[off] = key
        ip = self.range.ip_at(off)
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]

    def _next(self) -> int | None:
        start = self._rng.randrange(max(self.range.size, 1))
        off = next_free(self.range, self._claimed().__contains__, start)
        if off is None:
            self._claims = self._derive()   # forget stale claims once before calling it full
            off = next_free(self.range, self._claimed().__contains__, start)
        return off

    def _request_causes(self, obj: Obj) -> list[Cause]:
        """The allocator's answer to requested addresses (Invalid spec.clusterIPs, as upstream)."""
        ips = cluster_ips(obj)
        if not ips or ips[0] == NONE:
            return []
        key = _service_key(obj)

        def taken(off: int) -> bool:
            holder = self._holder(off)
            return holder is not None and holder != key
        problem = request_problem(ips[0], self.range, taken)
        if problem is None:
            return []
        return [Cause("spec.clusterIPs", "FieldValueInvalid",
                      f"spec.clusterIPs: Invalid value: {go_strings(ips)}: failed to allocate IP "
                      f"{ips[0]}: {problem}")]

    # --- the strategy --------------------------------------------------------------------------
    def prepare_for_create(self, obj: Obj) -> None:
        if "status" not in obj:
            obj["status"] = {"loadBalancer": {}}
        if not isinstance(obj.get("spec"), dict):
            return   # the schema reports it
        normalize_cluster_ips(obj, None)
        default_ip_families(obj, None, self.range.family)
        if needs_cluster_ip(obj) and not validate_service_ips(obj, None, self.range.family):
            self._allocate(obj)

    def prepare_for_update(self, obj: Obj, old: Obj) -> None:
        if not isinstance(obj.get("spec"), dict):
            return
        normalize_cluster_ips(obj, old)
        default_ip_families(obj, old, self.range.family)
        # From ExternalName to a type with a ClusterIP: allocated as on create.
        if needs_cluster_ip(obj) and not needs_cluster_ip(old) \
                and not validate_service_ips(obj, old, self.range.family):
            self._allocate(obj)

    def validate(self, obj: Obj, old: Obj | None) -> list[Cause]:
        causes = validate_service_ips(obj, old, self.range.family)
        if causes or not needs_cluster_ip(obj):
            return causes
        if old is None or not needs_cluster_ip(old):
            causes += self._request_causes(obj)
        return causes


def _service_key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return key_for("", "services", str(meta.get("namespace", "")), str(meta.get("name", "")))


class NetworkPolicyStrategy(Strategy):
    def validate(self, obj: Obj, old: Obj | None) -> list[Cause]:
        return validate_network_policy(obj)


GENERIC = Strategy()
_SHARED: dict[str, Strategy] = {
    "Pod": PodStrategy(),
    "Deployment": WorkloadStrategy("Deployment"),
    "ReplicaSet": WorkloadStrategy("ReplicaSet"),
    "Namespace": NamespaceStrategy(),
    "Secret": SecretStrategy(),
    "ConfigMap": ConfigMapStrategy(),
    "NetworkPolicy": NetworkPolicyStrategy(),
}


class Strategies:
    """The strategies of one registry: most are stateless and shared; the Service strategy
    holds the ClusterIP allocator of this registry's store."""

    def __init__(self, store: Store | None = None,
                 service_cidr: str = DEFAULT_SERVICE_CIDR) -> None:
        self.service = ServiceStrategy(store, service_cidr)
        self._by_kind: dict[str, Strategy] = {**_SHARED, "Service": self.service}

    def for_kind(self, k: Kind) -> Strategy:
        return self._by_kind.get(k.kind, GENERIC) if k.builtin else GENERIC
