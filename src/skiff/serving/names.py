"""Names, label keys and annotation keys of Knative Serving, as upstream spells them. Pure.

The child names (Revision `<config>-00001`, Deployment `<rev>-deployment`,
the Ingress named like its Route) follow knative/serving
pkg/reconciler/*/resources/names and kmeta.ChildName, which keeps a name
within 63 characters by hashing when it must. The keys are those of
pkg/apis/serving/register.go and knative.dev/networking. Neighbours:
resources.py (the builders that stamp these), traffic.py, webhook.py and the
reconcilers, which match on them.
"""

from __future__ import annotations

import hashlib

GROUP = "serving.knative.dev"
API_VERSION = f"{GROUP}/v1"
NETWORKING_GROUP = "networking.internal.knative.dev"
INGRESS_API_VERSION = f"{NETWORKING_GROUP}/v1alpha1"

# --- labels (pkg/apis/serving/register.go) --------------------------------------
SERVICE_LABEL = f"{GROUP}/service"
SERVICE_UID_LABEL = f"{GROUP}/serviceUID"
CONFIGURATION_LABEL = f"{GROUP}/configuration"
CONFIGURATION_UID_LABEL = f"{GROUP}/configurationUID"
CONFIGURATION_GENERATION_LABEL = f"{GROUP}/configurationGeneration"
REVISION_LABEL = f"{GROUP}/revision"
REVISION_UID_LABEL = f"{GROUP}/revisionUID"
ROUTE_LABEL = f"{GROUP}/route"
ROUTE_NAMESPACE_LABEL = f"{GROUP}/routeNamespace"
ROUTING_STATE_LABEL = f"{GROUP}/routingState"
APP_LABEL = "app"

# Routing states a Revision moves through (pkg/apis/serving/v1 RoutingState).
ROUTING_PENDING = "pending"
ROUTING_ACTIVE = "active"
ROUTING_RESERVE = "reserve"

# --- annotations ------------------------------------------------------------------
ROUTES_ANNOTATION = f"{GROUP}/routes"
ROUTING_STATE_MODIFIED_ANNOTATION = f"{GROUP}/routingStateModified"
LAST_PINNED_ANNOTATION = f"{GROUP}/lastPinned"
CREATOR_ANNOTATION = f"{GROUP}/creator"
UPDATER_ANNOTATION = f"{GROUP}/lastModifier"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
# OpenShift's router reads this from the Ingress to pass TLS through to the gateway.
PASSTHROUGH_ANNOTATION = "serving.knative.openshift.io/enablePassthrough"

AUTOSCALING_GROUP = "autoscaling.knative.dev"
MIN_SCALE_ANNOTATIONS = (f"{AUTOSCALING_GROUP}/min-scale", f"{AUTOSCALING_GROUP}/minScale")
MAX_SCALE_ANNOTATIONS = (f"{AUTOSCALING_GROUP}/max-scale", f"{AUTOSCALING_GROUP}/maxScale")
INITIAL_SCALE_ANNOTATIONS = (f"{AUTOSCALING_GROUP}/initial-scale",
                             f"{AUTOSCALING_GROUP}/initialScale")

# --- networking (knative.dev/networking) -----------------------------------------
VISIBILITY_LABEL = "networking.knative.dev/visibility"
VISIBILITY_CLUSTER_LOCAL = "cluster-local"
INGRESS_CLASS_ANNOTATIONS = ("networking.knative.dev/ingress.class",
                             "networking.knative.dev/ingress-class")
HTTP_PROTOCOL_ANNOTATIONS = ("networking.knative.dev/http-protocol",
                             "networking.knative.dev/httpProtocol")
ISTIO_INGRESS_CLASS = "istio.ingress.networking.knative.dev"
KOURIER_INGRESS_CLASS = "kourier.ingress.networking.knative.dev"
VISIBILITY_EXTERNAL_IP = "ExternalIP"
VISIBILITY_CLUSTER_LOCAL_RULE = "ClusterLocal"

# Headers the ingress appends so the activator and queue-proxy know the target.
REVISION_HEADER = "Knative-Serving-Revision"
NAMESPACE_HEADER = "Knative-Serving-Namespace"
TAG_HEADER = "Knative-Serving-Tag"
DEFAULT_ROUTE_HEADER = "Knative-Serving-Default-Route"

# --- ports and containers ---------------------------------------------------------
USER_PORT_NAME = "user-port"
DEFAULT_USER_PORT = 8080
SERVICE_PORT_HTTP1 = 80
SERVICE_PORT_H2C = 81
QUEUE_PROXY_CONTAINER = "queue-proxy"
QUEUE_HTTP_PORT = 8012           # networking.BackendHTTPPort: queue-proxy's serving port
QUEUE_H2C_PORT = 8013            # networking.BackendHTTP2Port
QUEUE_ADMIN_PORT = 8022          # networking.QueueAdminPort: /wait-for-drain
AUTOSCALER_METRICS_PORT = 9090
USER_METRICS_PORT = 9091
QUEUE_DRAIN_PATH = "/wait-for-drain"
DEFAULT_QUEUE_IMAGE = "gcr.io/knative-releases/knative.dev/serving/cmd/queue"
RESERVED_ENV = ("PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION")
# networking.BackendHTTPPort, BackendHTTP2Port, QueueAdminPort, the two metrics
# ports and the profiling port: the queue-proxy owns them.
RESERVED_PORTS = (8012, 8013, 8022, 9090, 9091, 8008)

_LONGEST = 63
_MD5_LEN = 32
_HEAD = _LONGEST - _MD5_LEN


def child_name(parent: str, suffix: str) -> str:
    """kmeta.ChildName: parent+suffix, hashed down to 63 characters when longer."""
    if len(parent) <= _LONGEST - len(suffix):
        return parent + suffix
    if _HEAD - len(suffix) <= 0:
        h = hashlib.md5((parent + suffix).encode()).hexdigest()
        ret = parent[:_HEAD] + h
        if (d := _LONGEST - len(ret)) > 0:
            ret += suffix[:d]
        return ret.rstrip("-")
    return parent[:_HEAD - len(suffix)] + hashlib.md5(parent.encode()).hexdigest() + suffix


def revision_name(configuration: str, generation: int) -> str:
    """The Revision a Configuration's generation stamps out: `<config>-00001`."""
    return child_name(configuration, f"-{generation:05d}")


def deployment_name(revision: str) -> str:
    return child_name(revision, "-deployment")


def configuration_name(service: str) -> str:
    return service


def route_name(service: str) -> str:
    return service


def ingress_name(route: str) -> str:
    return route


def k8s_service_fullname(name: str, namespace: str, cluster_domain: str = "cluster.local") -> str:
    """The cluster-local host of a Route: `<name>.<ns>.svc.<cluster domain>`."""
    return f"{name}.{namespace}.svc.{cluster_domain}"


def first(mapping: dict[str, str] | None, keys: tuple[str, ...]) -> str | None:
    """The value of the first key present (upstream's kmap.KeyPriority lookup)."""
    for k in keys:
        if mapping and k in mapping:
            return mapping[k]
    return None
