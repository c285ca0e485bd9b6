"""Knative Serving's resource kinds (serving.knative.dev), declared as data.

Service, Configuration, Revision and Route (v1) and DomainMapping (v1beta1,
v1alpha1 still served as in Knative 1.10, which OpenShift Serverless 1.31
ships), the internal KIngress (networking.internal.knative.dev/v1alpha1
Ingress, knative/networking config/ingress.yaml) a Route programs and the
data plane serves, and the KPA's internal kinds: PodAutoscaler and Metric
(autoscaling.internal.knative.dev/v1alpha1), which a Revision owns and the
PodAutoscaler reconciler acts on, and ServerlessService
(networking.internal.knative.dev/v1alpha1), the Services in front of a
revision's pods (config/core/300-resources/podautoscaler.yaml, metric.yaml,
serverlessservice.yaml). Names, short names, categories and printer columns are those of the
upstream CRDs (knative/serving config/core/300-resources/*.yaml); the schemas
are typed where users write (the revision template, traffic) so that a typo
in a manifest is rejected with its field path, and open in status, which
skiff's own reconcilers write.

Neighbours: core/schema_pod.py (REVISION_SPEC, the PodSpec subset a
revision template carries), core/kinds.py (Kind; crd_for turns these into
the CRD objects registered at bootstrap), the serving reconcilers that
read and write these objects. Pure data.
"""

from __future__ import annotations

from dataclasses import replace

from skiff.core.kinds import Kind, PrinterColumn
from skiff.core.schema import (
    BOOL,
    CONDITION,
    INT,
    INT_OR_STR,
    STR,
    STR_LIST,
    STR_MAP,
    Schema,
    arr,
    enum,
    map_of,
    obj,
    open_obj,
    resource,
)
from skiff.core.schema_pod import REVISION_SPEC, TEMPLATE_METADATA, int_range

__all__ = ["ADDRESS", "INGRESS", "KINDS", "METRIC", "POD_AUTOSCALER", "REVISION_TEMPLATE",
           "SERVERLESS_SERVICE", "TRAFFIC_TARGET"]

GROUP = "serving.knative.dev"
CATEGORIES = ("all", "knative", "serving")

TRAFFIC_TARGET = obj({
    "tag": STR,
    "revisionName": STR,
    "configurationName": STR,
    "latestRevision": BOOL,
    "percent": int_range(0, 100),
    "url": STR,  # status only upstream; accepted in spec so that `get -o yaml | apply` works
})

REVISION_TEMPLATE = obj({"metadata": TEMPLATE_METADATA, "spec": REVISION_SPEC})

ADDRESS = open_obj({"url": STR, "name": STR, "CACerts": STR, "audience": STR})


def _status(extra: dict[str, Schema]) -> Schema:
    """Knative's duck Status plus the kind's own fields; open for fields skiff grows."""
    return open_obj({
        "observedGeneration": INT,
        "conditions": arr(CONDITION),
        "annotations": STR_MAP,
        **extra,
    })


def _ready(quote: str = "'") -> tuple[PrinterColumn, PrinterColumn]:
    cond = f".status.conditions[?(@.type=={quote}Ready{quote})]"
    return (PrinterColumn("Ready", cond + ".status"), PrinterColumn("Reason", cond + ".reason"))


SERVICE = resource(
    obj({"template": REVISION_TEMPLATE, "traffic": arr(TRAFFIC_TARGET)}),
    status=_status({
        "url": STR, "address": ADDRESS,
        "latestCreatedRevisionName": STR, "latestReadyRevisionName": STR,
        "traffic": arr(TRAFFIC_TARGET),
    }),
)

CONFIGURATION = resource(
    obj({"template": REVISION_TEMPLATE}),
    status=_status({"latestCreatedRevisionName": STR, "latestReadyRevisionName": STR}),
)

REVISION = resource(
    REVISION_SPEC,
    status=_status({
        "serviceName": STR, "logUrl": STR,
        "actualReplicas": INT, "desiredReplicas": INT,
        "containerStatuses": arr(open_obj({"name": STR, "imageDigest": STR})),
        "initContainerStatuses": arr(open_obj({"name": STR, "imageDigest": STR})),
    }),
)

ROUTE = resource(
    obj({"traffic": arr(TRAFFIC_TARGET)}),
    status=_status({"url": STR, "address": ADDRESS, "traffic": arr(TRAFFIC_TARGET)}),
)

DOMAIN_MAPPING = resource(
    obj({
        "ref": obj({
            "apiVersion": STR, "kind": STR, "name": STR, "namespace": STR,
            "group": STR, "address": STR,
        }, required=("kind", "name")),
        "tls": obj({"secretName": STR}, required=("secretName",)),
    }, required=("ref",)),
    status=_status({"url": STR, "address": ADDRESS}),
)

NETWORKING_GROUP = "networking.internal.knative.dev"

_INGRESS_BACKEND_SPLIT = obj({
    "serviceNamespace": STR,
    "serviceName": STR,
    "servicePort": INT_OR_STR,
    "percent": int_range(0, 100),
    "appendHeaders": STR_MAP,
}, required=("serviceName", "serviceNamespace", "servicePort"))

_HTTP_INGRESS_PATH = obj({
    "path": STR,
    "rewriteHost": STR,
    "headers": map_of(obj({"exact": STR}, required=("exact",))),
    "splits": arr(_INGRESS_BACKEND_SPLIT),
    "appendHeaders": STR_MAP,
    # Deprecated upstream and ignored, still accepted for old objects.
    "retries": obj({"attempts": INT, "perTryTimeout": STR}),
    "timeout": STR,
}, required=("splits",))

_LOAD_BALANCER = open_obj({"ingress": arr(open_obj({
    "ip": STR, "domain": STR, "domainInternal": STR, "meshOnly": BOOL,
}))})

# networking.internal.knative.dev/v1alpha1 Ingress (KIngress).
INGRESS = resource(
    obj({
        "rules": arr(obj({
            "hosts": STR_LIST,
            "visibility": enum("ExternalIP", "ClusterLocal"),
            "http": obj({"paths": arr(_HTTP_INGRESS_PATH)}, required=("paths",)),
        })),
        "tls": arr(obj({
            "hosts": STR_LIST, "secretName": STR, "secretNamespace": STR,
            "privateKey": STR, "serverCertificate": STR,
        })),
        "httpOption": enum("Enabled", "Redirected"),
        "visibility": STR,   # DeprecatedVisibility
    }),
    status=_status({
        "publicLoadBalancer": _LOAD_BALANCER,
        "privateLoadBalancer": _LOAD_BALANCER,
        "loadBalancer": _LOAD_BALANCER,
    }),
)

AUTOSCALING_GROUP = "autoscaling.internal.knative.dev"

_OBJECT_REFERENCE = obj({
    "apiVersion": STR, "kind": STR, "name": STR, "namespace": STR, "uid": STR,
    "resourceVersion": STR, "fieldPath": STR,
})

# autoscaling.internal.knative.dev/v1alpha1 PodAutoscaler: one per Revision.
POD_AUTOSCALER = resource(
    obj({
        "containerConcurrency": INT,
        "scaleTargetRef": _OBJECT_REFERENCE,
        "reachability": STR,      # Reachable | Unreachable | "" (unknown)
        "protocolType": STR,      # http1 | h2c (the webhook says which are valid)
    }),
    status=_status({
        "serviceName": STR, "metricsServiceName": STR,
        "desiredScale": INT, "actualScale": INT,
    }),
)

# autoscaling.internal.knative.dev/v1alpha1 Metric: what the collector keeps for a PA.
# Windows are Go time.Durations, which JSON carries as integer nanoseconds.
METRIC = resource(
    obj({"stableWindow": INT, "panicWindow": INT, "scrapeTarget": STR}),
    status=_status({}),
)

# networking.internal.knative.dev/v1alpha1 ServerlessService (SKS).
SERVERLESS_SERVICE = resource(
    obj({
        "mode": enum("Serve", "Proxy"),
        "objectRef": _OBJECT_REFERENCE,
        "protocolType": STR,
        "numActivators": INT,
    }),
    status=_status({"serviceName": STR, "privateServiceName": STR}),
)

KINDS: list[Kind] = [
    Kind(group=GROUP, version="v1", kind="Service", plural="services", singular="service",
         namespaced=True, schema=SERVICE, short_names=("kservice", "ksvc"),
         categories=CATEGORIES, name_rule="dns1035-label", crd_name=f"services.{GROUP}",
         printer_columns=(
             PrinterColumn("URL", ".status.url"),
             PrinterColumn("LatestCreated", ".status.latestCreatedRevisionName"),
             PrinterColumn("LatestReady", ".status.latestReadyRevisionName"),
             *_ready(),
         )),
    Kind(group=GROUP, version="v1", kind="Configuration", plural="configurations",
         singular="configuration", namespaced=True, schema=CONFIGURATION,
         short_names=("config", "cfg", "kcfg"), categories=CATEGORIES, name_rule="dns1035-label",
         crd_name=f"configurations.{GROUP}",
         printer_columns=(
             PrinterColumn("LatestCreated", ".status.latestCreatedRevisionName"),
             PrinterColumn("LatestReady", ".status.latestReadyRevisionName"),
             *_ready(),
         )),
    Kind(group=GROUP, version="v1", kind="Revision", plural="revisions", singular="revision",
         namespaced=True, schema=REVISION, short_names=("rev",), categories=CATEGORIES,
         name_rule="dns1035-label", crd_name=f"revisions.{GROUP}",
         # Upstream escapes the dots inside the quoted key ('serving\.knative...'); both
         # spellings mean the same to Kubernetes, and skiff's JSONPath reads this one.
         printer_columns=(
             PrinterColumn("Config Name",
                           ".metadata.labels['serving.knative.dev/configuration']"),
             PrinterColumn("Generation",
                           ".metadata.labels['serving.knative.dev/configurationGeneration']"),
             *_ready(),
             PrinterColumn("Actual Replicas", ".status.actualReplicas", type="integer"),
             PrinterColumn("Desired Replicas", ".status.desiredReplicas", type="integer"),
         )),
    Kind(group=GROUP, version="v1", kind="Route", plural="routes", singular="route",
         namespaced=True, schema=ROUTE, short_names=("rt",), categories=CATEGORIES,
         name_rule="dns1035-label", crd_name=f"routes.{GROUP}",
         printer_columns=(PrinterColumn("URL", ".status.url"), *_ready())),
    # Knative 1.10 stored v1alpha1 and served both; the schemas are identical, and
    # skiff stores the version upstream moved to in 1.11 (knative/serving#14058).
    Kind(group=GROUP, version="v1beta1", versions=("v1beta1", "v1alpha1"),
         kind="DomainMapping", plural="domainmappings", singular="domainmapping",
         namespaced=True, schema=DOMAIN_MAPPING, short_names=("dm",), categories=CATEGORIES,
         crd_name=f"domainmappings.{GROUP}",
         printer_columns=(PrinterColumn("URL", ".status.url"), *_ready())),
    Kind(group=NETWORKING_GROUP, version="v1alpha1", kind="Ingress", plural="ingresses",
         singular="ingress", namespaced=True, schema=INGRESS, short_names=("kingress", "king"),
         categories=("knative-internal", "networking"), crd_name=f"ingresses.{NETWORKING_GROUP}",
         printer_columns=_ready()),
    Kind(group=AUTOSCALING_GROUP, version="v1alpha1", kind="PodAutoscaler",
         plural="podautoscalers", singular="podautoscaler", namespaced=True,
         # Upstream's CRD also says "pa", which Istio's PeerAuthentication says too; on a
         # cluster kubectl picks one by discovery order. skiff keeps short names unique
         # and leaves "pa" to the mesh, whose guide uses it.
         schema=POD_AUTOSCALER, short_names=("kpa",),
         categories=("knative-internal", "autoscaling"),
         crd_name=f"podautoscalers.{AUTOSCALING_GROUP}",
         printer_columns=(
             PrinterColumn("DesiredScale", ".status.desiredScale", type="integer"),
             PrinterColumn("ActualScale", ".status.actualScale", type="integer"),
             *_ready(),
         )),
    Kind(group=AUTOSCALING_GROUP, version="v1alpha1", kind="Metric", plural="metrics",
         singular="metric", namespaced=True, schema=METRIC,
         categories=("knative-internal", "autoscaling"), crd_name=f"metrics.{AUTOSCALING_GROUP}",
         printer_columns=_ready()),
    Kind(group=NETWORKING_GROUP, version="v1alpha1", kind="ServerlessService",
         plural="serverlessservices", singular="serverlessservice", namespaced=True,
         schema=SERVERLESS_SERVICE, short_names=("sks",),
         categories=("knative-internal", "networking"),
         crd_name=f"serverlessservices.{NETWORKING_GROUP}",
         printer_columns=(
             PrinterColumn("Mode", ".spec.mode"),
             PrinterColumn("Activators", ".spec.numActivators", type="integer"),
             PrinterColumn("ServiceName", ".status.serviceName"),
             PrinterColumn("PrivateServiceName", ".status.privateServiceName"),
             *_ready(),
         )),
]


# Accepted and stored, not acted on yet: each says so (see Kind.not_implemented).
_NOT_IMPLEMENTED = {
    "DomainMapping": "DomainMapping is not implemented yet: the domain is not routed",
}
KINDS = [replace(k, not_implemented=_NOT_IMPLEMENTED[k.kind]) if k.kind in _NOT_IMPLEMENTED else k
         for k in KINDS]
