"""What the serving reconcilers share: the kinds they reach and the config load.

The generic helpers (get_or_none, write_status, differs, KeySet, Tracker) are
core/reconcile.py's; here are serving's refs and load_config, which reads the
effective ServingConfig from the KnativeServing objects (the reconcilers read
it themselves, level-triggered, rather than trusting an ordering with the
KnativeServing reconciler).
"""

from __future__ import annotations

from skiff.core.client import ApiError, Client, Ref
from skiff.core.reconcile import get_or_none
from skiff.serving.config import ConfigHolder, ServingConfig, authoritative, effective_config
from skiff.serving.names import API_VERSION, INGRESS_API_VERSION

SERVICE = Ref(API_VERSION, "Service")
CONFIGURATION = Ref(API_VERSION, "Configuration")
REVISION = Ref(API_VERSION, "Revision")
ROUTE = Ref(API_VERSION, "Route")
INGRESS = Ref(INGRESS_API_VERSION, "Ingress")
DEPLOYMENT = Ref("apps/v1", "Deployment")
POD = Ref("v1", "Pod")
KNATIVE_SERVING = Ref("operator.knative.dev/v1beta1", "KnativeServing")
POD_AUTOSCALER = Ref("autoscaling.internal.knative.dev/v1alpha1", "PodAutoscaler")
METRIC = Ref("autoscaling.internal.knative.dev/v1alpha1", "Metric")
SERVERLESS_SERVICE = Ref(INGRESS_API_VERSION, "ServerlessService")
K8S_SERVICE = Ref("v1", "Service")

__all__ = ["SERVICE", "CONFIGURATION", "REVISION", "ROUTE", "INGRESS", "DEPLOYMENT", "POD",
           "KNATIVE_SERVING", "POD_AUTOSCALER", "METRIC", "SERVERLESS_SERVICE", "K8S_SERVICE",
           "load_config", "get_or_none"]


async def load_config(client: Client, holder: ConfigHolder) -> ServingConfig:
    """The effective config from the KnativeServing that rules (or the defaults); the holder
    the admission hooks read is refreshed on the way."""
    try:
        items = await client.list(KNATIVE_SERVING)
    except ApiError as e:
        if e.code != 404:
            raise
        items = []
    ks = authoritative(items)
    meta = (ks or {}).get("metadata") or {}
    # every serving reconcile asks; the answer changes only with the ruling object
    key = (meta.get("uid"), meta.get("resourceVersion"), holder.cluster_domain)
    if _last is not None and _last[0] == key:
        cfg = _last[1]
    else:
        cfg = effective_config(ks, holder.cluster_domain)
        _remember(key, cfg)
    holder.set(cfg)
    return cfg


_last: tuple[tuple[object, object, str], ServingConfig] | None = None


def _remember(key: tuple[object, object, str], cfg: ServingConfig) -> None:
    global _last
    _last = (key, cfg)
