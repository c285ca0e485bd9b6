"""The child objects the serving reconcilers make: pure builders, as upstream's resources/.

make_configuration / make_route: a Service's two children (service/resources).
make_revision: the Revision a Configuration's generation stamps out
(configuration/resources/revision.go). make_deployment: a Revision's
Deployment `<rev>-deployment` (revision/resources/deploy.go, meta.go).
make_pa: a Revision's PodAutoscaler (revision/resources/pa.go); make_sks
and make_metric: a PodAutoscaler's ServerlessService and Metric
(autoscaling/kpa/resources/sks.go, autoscaling/resources/metric.go);
make_public_service / make_private_service: an SKS's two Services
(serverlessservice/resources/services.go). make_ingress: a Route's
KIngress (route/resources/ingress.go). Also the routing metadata the
route's labeler patches onto Configurations and Revisions
(serving.knative.dev/routes, routingState).

The revision's pod is upstream's (revision/resources/deploy.go, queue.go):
the user container gives its readiness probe to the `queue-proxy`
container (SERVING_READINESS_PROBE; queue-proxy probes the app and is
itself probed with `K-Network-Probe: queue`) and gets a preStop hook,
GET :8022/wait-for-drain, so it is stopped only once queue-proxy has
drained; the SKS's Services target queue-proxy's 8012 (8013 for h2c).
Replicas: a Deployment is made with the initial scale (config-autoscaler's
initial-scale, or the revision's annotation); after that the
PodAutoscaler reconciler owns spec.replicas.

Neighbours: names.py (names and keys), traffic.py (what make_ingress
routes), domains.py (hosts), autoscaler/config.py (config-autoscaler,
parsed by autoscaler_config), the reconcilers (which compare these with
what exists and write the difference).
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping

from skiff.core.client import Obj
from skiff.serving import domains, names
from skiff.serving.autoscaler import config as asc
from skiff.serving.autoscaler import durations
from skiff.serving.autoscaler.decider import SKS_MODE_SERVE
from skiff.serving.config import ServingConfig
from skiff.serving.names import (
    APP_LABEL,
    CONFIGURATION_GENERATION_LABEL,
    CONFIGURATION_LABEL,
    CONFIGURATION_UID_LABEL,
    CREATOR_ANNOTATION,
    DEFAULT_ROUTE_HEADER,
    LAST_APPLIED_ANNOTATION,
    LAST_PINNED_ANNOTATION,
    NAMESPACE_HEADER,
    REVISION_HEADER,
    REVISION_LABEL,
    REVISION_UID_LABEL,
    ROUTE_LABEL,
    ROUTE_NAMESPACE_LABEL,
    ROUTES_ANNOTATION,
    ROUTING_ACTIVE,
    ROUTING_PENDING,
    ROUTING_RESERVE,
    ROUTING_STATE_LABEL,
    ROUTING_STATE_MODIFIED_ANNOTATION,
    SERVICE_LABEL,
    SERVICE_UID_LABEL,
    TAG_HEADER,
    UPDATER_ANNOTATION,
    VISIBILITY_CLUSTER_LOCAL_RULE,
    VISIBILITY_EXTERNAL_IP,
)
from skiff.serving.traffic import DEFAULT_TARGET, RevisionTarget, TrafficConfig


def controller_ref(owner: Obj) -> Obj:
    """kmeta.NewControllerRef: the owner reference a child carries."""
    m = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": m["name"],
            "uid": m["uid"], "controller": True, "blockOwnerDeletion": True}


def is_controlled_by(child: Obj, owner: Obj) -> bool:
    return any(r.get("controller") and r.get("uid") == owner["metadata"].get("uid")
               for r in child["metadata"].get("ownerReferences") or [])


def _without_last_applied(annotations: dict[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (annotations or {}).items() if k != LAST_APPLIED_ANNOTATION}


def list_annotation(annotations: dict[str, str] | None, key: str) -> set[str]:
    return {v for v in ((annotations or {}).get(key) or "").split(",") if v}


# --- Service children --------------------------------------------------------------

def make_configuration(service: Obj, existing: Obj | None = None) -> Obj:
    """MakeConfigurationFromExisting: the Service's template, its labels and annotations."""
    m = service["metadata"]
    annotations = _without_last_applied(m.get("annotations"))
    routes = list_annotation((existing or {}).get("metadata", {}).get("annotations"),
                             ROUTES_ANNOTATION) | {names.route_name(m["name"])}
    annotations[ROUTES_ANNOTATION] = ",".join(sorted(routes))
    return {
        "apiVersion": names.API_VERSION, "kind": "Configuration",
        "metadata": {
            "name": names.configuration_name(m["name"]), "namespace": m["namespace"],
            "labels": {**(m.get("labels") or {}), SERVICE_LABEL: m["name"],
                       SERVICE_UID_LABEL: m["uid"]},
            "annotations": annotations,
            "ownerReferences": [controller_ref(service)],
        },
        "spec": {"template": copy.deepcopy((service.get("spec") or {}).get("template") or {})},
    }


def make_route(service: Obj) -> Obj:
    """MakeRoute: the Service's traffic, with its Configuration filled in where no revision is named."""
    m = service["metadata"]
    traffic = copy.deepcopy((service.get("spec") or {}).get("traffic") or [])
    for tt in traffic:
        if not tt.get("revisionName"):
            tt["configurationName"] = names.configuration_name(m["name"])
    return {
        "apiVersion": names.API_VERSION, "kind": "Route",
        "metadata": {
            "name": names.route_name(m["name"]), "namespace": m["namespace"],
            "labels": {**(m.get("labels") or {}), SERVICE_LABEL: m["name"]},
            "annotations": _without_last_applied(m.get("annotations")),
            "ownerReferences": [controller_ref(service)],
        },
        "spec": {"traffic": traffic},
    }


# --- Revision ----------------------------------------------------------------------

def revision_label_value(key: str, config: Obj) -> str:
    """RevisionLabelValueForKey: what a Revision's label says about its Configuration."""
    m = config["metadata"]
    labels = m.get("labels") or {}
    return str({
        CONFIGURATION_LABEL: m["name"],
        SERVICE_LABEL: labels.get(SERVICE_LABEL, ""),
        CONFIGURATION_GENERATION_LABEL: str(m.get("generation", 1)),
        CONFIGURATION_UID_LABEL: m.get("uid", ""),
        SERVICE_UID_LABEL: labels.get(SERVICE_UID_LABEL, ""),
    }.get(key, ""))


def revision_name_for(config: Obj) -> str:
    tmpl_meta = ((config.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return tmpl_meta.get("name") or names.revision_name(config["metadata"]["name"],
                                                        int(config["metadata"].get("generation", 1)))


def make_revision(config: Obj, now: str) -> Obj:
    """MakeRevision: the template's metadata and spec, stamped with the Configuration's facts."""
    tmpl = (config.get("spec") or {}).get("template") or {}
    tmeta = tmpl.get("metadata") or {}
    labels = dict(tmeta.get("labels") or {})
    for key in (CONFIGURATION_LABEL, SERVICE_LABEL, CONFIGURATION_GENERATION_LABEL,
                CONFIGURATION_UID_LABEL, SERVICE_UID_LABEL):
        if value := revision_label_value(key, config):
            labels[key] = value
    labels[ROUTING_STATE_LABEL] = ROUTING_PENDING
    annotations = dict(tmeta.get("annotations") or {})
    cann = config["metadata"].get("annotations") or {}
    if UPDATER_ANNOTATION in cann:
        annotations[CREATOR_ANNOTATION] = cann[UPDATER_ANNOTATION]
    if ROUTES_ANNOTATION in cann:
        annotations[ROUTES_ANNOTATION] = cann[ROUTES_ANNOTATION]
    annotations[ROUTING_STATE_MODIFIED_ANNOTATION] = now
    return {
        "apiVersion": names.API_VERSION, "kind": "Revision",
        "metadata": {
            "name": revision_name_for(config), "namespace": config["metadata"]["namespace"],
            "labels": labels, "annotations": annotations,
            "ownerReferences": [controller_ref(config)],
        },
        "spec": copy.deepcopy(tmpl.get("spec") or {}),
    }


# --- Deployment --------------------------------------------------------------------

_EXCLUDED_LABELS = (ROUTE_LABEL, ROUTING_STATE_LABEL)
_EXCLUDED_ANNOTATIONS = (LAST_PINNED_ANNOTATION, ROUTES_ANNOTATION,
                         ROUTING_STATE_MODIFIED_ANNOTATION, LAST_APPLIED_ANNOTATION)
_REVISION_ONLY_FIELDS = ("containerConcurrency", "timeoutSeconds",
                         "responseStartTimeoutSeconds", "idleTimeoutSeconds")


def pod_labels(rev: Obj) -> dict[str, str]:
    """makeLabels: the Revision's labels (minus routing state) + revision, revisionUID, app."""
    m = rev["metadata"]
    labels = {k: v for k, v in (m.get("labels") or {}).items() if k not in _EXCLUDED_LABELS}
    labels[REVISION_LABEL] = m["name"]
    labels[REVISION_UID_LABEL] = m["uid"]
    labels.setdefault(APP_LABEL, m["name"])   # the user's own app label wins
    return labels


def pod_annotations(rev: Obj) -> dict[str, str]:
    return {k: v for k, v in (rev["metadata"].get("annotations") or {}).items()
            if k not in _EXCLUDED_ANNOTATIONS}


def user_port(rev: Obj) -> int:
    """getUserPort: the one declared containerPort, else 8080."""
    for c in (rev.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            return int(p.get("containerPort") or names.DEFAULT_USER_PORT)
    return names.DEFAULT_USER_PORT


def _rewrite_probe(probe: Obj | None, port: int) -> None:
    """Point a probe's HTTP/TCP action at the user port (rewriteUserProbe)."""
    if not probe:
        return
    for action in ("httpGet", "tcpSocket"):
        if isinstance(probe.get(action), dict):
            probe[action]["port"] = port


def build_user_containers(rev: Obj) -> list[Obj]:
    """BuildUserContainers: env PORT + K_REVISION/K_CONFIGURATION/K_SERVICE, the user port."""
    spec = rev.get("spec") or {}
    containers = spec.get("containers") or []
    labels = rev["metadata"].get("labels") or {}
    kenv = [{"name": "K_REVISION", "value": rev["metadata"]["name"]},
            {"name": "K_CONFIGURATION", "value": labels.get(CONFIGURATION_LABEL, "")},
            {"name": "K_SERVICE", "value": labels.get(SERVICE_LABEL, "")}]
    port = user_port(rev)
    out = []
    for c in containers:
        c = copy.deepcopy(c)
        serving = bool(c.get("ports")) or len(containers) == 1
        env = list(c.get("env") or [])
        if serving:
            c["ports"] = [{"name": names.USER_PORT_NAME, "containerPort": port}]
            env.append({"name": "PORT", "value": str(port)})
            # the readiness probe goes to queue-proxy (user_readiness_probe); the preStop
            # hook holds the app until queue-proxy has drained
            c.pop("readinessProbe", None)
            c["lifecycle"] = {**(c.get("lifecycle") or {}), "preStop": {"httpGet": {
                "port": names.QUEUE_ADMIN_PORT, "path": names.QUEUE_DRAIN_PATH}}}
            _rewrite_probe(c.get("livenessProbe"), port)
            _rewrite_probe(c.get("startupProbe"), port)
        c["env"] = env + kenv
        c.setdefault("terminationMessagePolicy", "FallbackToLogsOnError")
        out.append(c)
    return out


def user_readiness_probe(rev: Obj) -> Obj:
    """The serving container's readiness probe as queue-proxy runs it (its port the user
    port); a container without one gets upstream's default, TCP on the user port. Knative
    reads an unset period as "probe aggressively until ready"."""
    port = user_port(rev)
    containers = (rev.get("spec") or {}).get("containers") or []
    serving = [c for c in containers if c.get("ports")] or containers[:1]
    probe = copy.deepcopy(serving[0].get("readinessProbe")) if serving else None
    if not isinstance(probe, dict) or not any(k in probe for k in ("httpGet", "tcpSocket",
                                                                   "exec", "grpc")):
        probe = {"tcpSocket": {"port": port}}
    _rewrite_probe(probe, port)
    probe.setdefault("periodSeconds", 0)
    probe.setdefault("successThreshold", 1)
    return probe


def make_queue_container(rev: Obj, cfg: ServingConfig) -> Obj:
    """makeQueueContainer: queue-proxy's image, ports, env and its own readiness probe."""
    m = rev["metadata"]
    spec = rev.get("spec") or {}
    labels = m.get("labels") or {}
    dep = cfg.data.get("deployment") or {}
    h2c = protocol_type(rev) == PROTOCOL_H2C
    serving_port = names.QUEUE_H2C_PORT if h2c else names.QUEUE_HTTP_PORT
    probe = user_readiness_probe(rev)
    timeout = int(spec.get("timeoutSeconds") or cfg.revision_timeout_seconds)

    def field(path: str) -> Obj:
        return {"valueFrom": {"fieldRef": {"fieldPath": path}}}

    env: list[Obj] = [
        {"name": "SERVING_NAMESPACE", "value": m["namespace"]},
        {"name": "SERVING_SERVICE", "value": labels.get(SERVICE_LABEL, "")},
        {"name": "SERVING_CONFIGURATION", "value": labels.get(CONFIGURATION_LABEL, "")},
        {"name": "SERVING_REVISION", "value": m["name"]},
        {"name": "QUEUE_SERVING_PORT", "value": str(serving_port)},
        {"name": "QUEUE_SERVING_TLS_PORT", "value": "8112"},
        {"name": "CONTAINER_CONCURRENCY", "value": str(int(spec.get("containerConcurrency")
                                                              or 0))},
        {"name": "REVISION_TIMEOUT_SECONDS", "value": str(timeout)},
        {"name": "REVISION_RESPONSE_START_TIMEOUT_SECONDS",
         "value": str(int(spec.get("responseStartTimeoutSeconds") or 0))},
        {"name": "REVISION_IDLE_TIMEOUT_SECONDS",
         "value": str(int(spec.get("idleTimeoutSeconds") or 0))},
        {"name": "SERVING_POD", **field("metadata.name")},
        {"name": "SERVING_POD_IP", **field("status.podIP")},
        {"name": "SERVING_LOGGING_LEVEL", "value": ""},
        {"name": "SERVING_REQUEST_METRICS_BACKEND", "value": "prometheus"},
        {"name": "USER_PORT", "value": str(user_port(rev))},
        {"name": "SYSTEM_NAMESPACE", "value": "knative-serving"},
        {"name": "METRICS_DOMAIN", "value": "knative.dev/internal/serving"},
        {"name": "SERVING_READINESS_PROBE", "value": json.dumps(probe, separators=(",", ":"))},
        {"name": "ENABLE_PROFILING", "value": "false"},
        {"name": "SERVING_ENABLE_PROBE_REQUEST_LOG", "value": "false"},
        {"name": "ENABLE_HTTP2_AUTO_DETECTION", "value": "false"},
    ]
    ports = [{"name": "http-queueadm", "containerPort": names.QUEUE_ADMIN_PORT,
              "protocol": "TCP"},
             {"name": "http-autometric", "containerPort": names.AUTOSCALER_METRICS_PORT,
              "protocol": "TCP"},
             {"name": "http-usermetric", "containerPort": names.USER_METRICS_PORT,
              "protocol": "TCP"},
             {"name": "queue-port" if not h2c else "h2c", "containerPort": serving_port,
              "protocol": "TCP"}]
    # upstream sets only the CPU request by default (25m); the other sizes are opt-in
    requests: Obj = {"cpu": dep.get("queue-sidecar-cpu-request") or "25m"}
    return {
        "name": names.QUEUE_PROXY_CONTAINER,
        "image": dep.get("queue-sidecar-image") or names.DEFAULT_QUEUE_IMAGE,
        "ports": ports,
        "env": env,
        "resources": {"requests": requests},
        "readinessProbe": {
            "httpGet": {"port": serving_port,
                        "httpHeaders": [{"name": "K-Network-Probe", "value": "queue"}]},
            "periodSeconds": probe.get("periodSeconds", 0),
            "timeoutSeconds": probe.get("timeoutSeconds", 1) or 1,
            "successThreshold": 1,
            "failureThreshold": probe.get("failureThreshold", 3),
        },
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


@functools.lru_cache(maxsize=16)
def _parse_autoscaler(items: tuple[tuple[str, str], ...]) -> tuple[asc.AutoscalerConfig, str]:
    try:
        return asc.parse_config(dict(items)), ""
    except asc.ConfigError as e:
        return asc.AutoscalerConfig(), str(e)


def autoscaler_config_or_error(cfg: ServingConfig) -> tuple[asc.AutoscalerConfig, str]:
    """config-autoscaler from the effective config (the KnativeServing's spec.config.autoscaler
    over the defaults), and upstream's parse error when it does not parse (then the defaults)."""
    data: Mapping[str, str] = cfg.data.get("autoscaler") or {}
    return _parse_autoscaler(tuple(sorted((str(k), str(v)) for k, v in data.items())))


def autoscaler_config(cfg: ServingConfig) -> asc.AutoscalerConfig:
    return autoscaler_config_or_error(cfg)[0]


def progress_deadline(cfg: ServingConfig, rev: Obj | None = None) -> float:
    """The revision's serving.knative.dev/progress-deadline annotation, else config-deployment's
    progress-deadline, in seconds (600 when absent or bad), as upstream's MakeDeployment."""
    ann = ((rev or {}).get("metadata") or {}).get("annotations") or {}
    own = asc.ann_duration(ann, (asc.PROGRESS_DEADLINE_KEY,))
    if own is not None:
        return own
    raw = str((cfg.data.get("deployment") or {}).get("progress-deadline", "") or "600s")
    try:
        return durations.seconds(durations.parse_duration(raw))
    except durations.DurationError:
        return asc.DEFAULT_PROGRESS_DEADLINE


def initial_replicas(rev: Obj, acfg: asc.AutoscalerConfig) -> int:
    """MakeDeployment's replicas: the initial scale (GetInitialScale)."""
    return asc.initial_scale(rev["metadata"].get("annotations") or {}, acfg)


def make_deployment(rev: Obj, cfg: ServingConfig) -> Obj:
    """MakeDeployment: `<rev>-deployment`, selected by revisionUID, owned by the Revision."""
    m = rev["metadata"]
    spec = rev.get("spec") or {}
    pod_spec = {k: copy.deepcopy(v) for k, v in spec.items() if k not in _REVISION_ONLY_FIELDS}
    pod_spec["containers"] = [*build_user_containers(rev), make_queue_container(rev, cfg)]
    pod_spec["terminationGracePeriodSeconds"] = int(spec.get("timeoutSeconds")
                                                    or cfg.revision_timeout_seconds)
    if "enableServiceLinks" not in pod_spec and cfg.enable_service_links is not None:
        pod_spec["enableServiceLinks"] = cfg.enable_service_links
    labels, annotations = pod_labels(rev), pod_annotations(rev)
    tmpl_meta: Obj = {"labels": labels}
    meta: Obj = {"name": names.deployment_name(m["name"]), "namespace": m["namespace"],
                 "labels": labels, "ownerReferences": [controller_ref(rev)]}
    if annotations:
        tmpl_meta["annotations"] = annotations
        meta["annotations"] = annotations
    progress = int(progress_deadline(cfg, rev))
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
        "spec": {
            "replicas": initial_replicas(rev, autoscaler_config(cfg)),
            "selector": {"matchLabels": {REVISION_UID_LABEL: m["uid"]}},
            "progressDeadlineSeconds": max(progress, 1),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
            "template": {"metadata": tmpl_meta, "spec": pod_spec},
        },
    }


# --- PodAutoscaler, ServerlessService, Metric -------------------------------------

PA_API_VERSION = "autoscaling.internal.knative.dev/v1alpha1"
SKS_API_VERSION = f"{names.NETWORKING_GROUP}/v1alpha1"
REACHABLE = "Reachable"
UNREACHABLE = "Unreachable"
REACHABILITY_UNKNOWN = ""          # upstream's ReachabilityUnknown is the empty string
PROTOCOL_HTTP1 = "http1"
PROTOCOL_H2C = "h2c"
SKS_LABEL = f"{names.NETWORKING_GROUP}/serverlessservice"
SERVICE_TYPE_LABEL = f"{names.NETWORKING_GROUP}/serviceType"


def protocol_type(rev: Obj) -> str:
    """Revision.GetProtocol: h2c when the serving port is named so, else http1."""
    for c in (rev.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            return PROTOCOL_H2C if p.get("name") == PROTOCOL_H2C else PROTOCOL_HTTP1
    return PROTOCOL_HTTP1


def reachability(rev: Obj) -> str:
    """MakePA's reachability: Unreachable when the revision's resources or containers have
    failed, else by its routing state (active: Reachable, reserve: Unreachable, pending or
    none: unknown)."""
    for c in (rev.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("ResourcesAvailable", "ContainerHealthy") and \
                c.get("status") == "False":
            return UNREACHABLE
    state = (rev["metadata"].get("labels") or {}).get(ROUTING_STATE_LABEL)
    return {ROUTING_ACTIVE: REACHABLE, ROUTING_RESERVE: UNREACHABLE}.get(state or "",
                                                                        REACHABILITY_UNKNOWN)


def make_pa(rev: Obj, acfg: asc.AutoscalerConfig) -> Obj:
    """MakePA: named like the Revision and owned by it, the pods' labels and annotations, the
    Deployment as its scale target; the class and metric annotations defaulted as upstream's
    PodAutoscaler webhook does (config-autoscaler's pod-autoscaler-class, the class's metric)."""
    m = rev["metadata"]
    annotations = pod_annotations(rev)
    klass = annotations.setdefault(asc.CLASS_KEY, acfg.pod_autoscaler_class)
    if metric := asc.default_metric(klass):
        annotations.setdefault(asc.METRIC_KEY, metric)
    spec: Obj = {
        "containerConcurrency": int((rev.get("spec") or {}).get("containerConcurrency") or 0),
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                           "name": names.deployment_name(m["name"])},
        "protocolType": protocol_type(rev),
    }
    if reach := reachability(rev):
        spec["reachability"] = reach
    return {
        "apiVersion": PA_API_VERSION, "kind": "PodAutoscaler",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "labels": pod_labels(rev),
                     "annotations": annotations, "ownerReferences": [controller_ref(rev)]},
        "spec": spec,
    }


def make_sks(pa: Obj, mode: str = SKS_MODE_SERVE, num_activators: int = 2) -> Obj:
    """MakeSKS: named like the PA and owned by it, its labels and annotations, the PA's scale
    target as the object whose pods it fronts."""
    m = pa["metadata"]
    spec = pa.get("spec") or {}
    ref = spec.get("scaleTargetRef") or {}
    return {
        "apiVersion": SKS_API_VERSION, "kind": "ServerlessService",
        "metadata": {"name": m["name"], "namespace": m["namespace"],
                     "labels": dict(m.get("labels") or {}),
                     "annotations": _without_last_applied(m.get("annotations")),
                     "ownerReferences": [controller_ref(pa)]},
        "spec": {
            "protocolType": spec.get("protocolType") or PROTOCOL_HTTP1,
            "mode": mode,
            "numActivators": num_activators,
            "objectRef": {"apiVersion": ref.get("apiVersion", ""), "kind": ref.get("kind", ""),
                          "name": ref.get("name", "")},
        },
    }


def make_metric(pa: Obj, stable_window: float, panic_window: float, scrape_target: str) -> Obj:
    """MakeMetric: the collector's spec for a PA (windows in Go's nanoseconds, as
    time.Duration marshals); the windows come from autoscaler.config.resolve."""
    m = pa["metadata"]
    return {
        "apiVersion": PA_API_VERSION, "kind": "Metric",
        "metadata": {"name": m["name"], "namespace": m["namespace"],
                     "labels": dict(m.get("labels") or {}),
                     "annotations": dict(m.get("annotations") or {}),
                     "ownerReferences": [controller_ref(pa)]},
        "spec": {"stableWindow": durations.to_ns(stable_window),
                 "panicWindow": durations.to_ns(panic_window),
                 "scrapeTarget": scrape_target},
    }


def private_service_name(sks_name: str) -> str:
    return names.child_name(sks_name, "-private")


def _sks_service(sks: Obj, name: str, kind: str, port: int, target_port: int,
                 selector: Mapping[str, str]) -> Obj:
    m = sks["metadata"]
    h2c = (sks.get("spec") or {}).get("protocolType") == PROTOCOL_H2C
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": m["namespace"],
                     "labels": {**(m.get("labels") or {}), SKS_LABEL: m["name"],
                                SERVICE_TYPE_LABEL: kind},
                     "annotations": dict(m.get("annotations") or {}),
                     "ownerReferences": [controller_ref(sks)]},
        "spec": {"type": "ClusterIP", "selector": dict(selector),
                 "ports": [{"name": "http2" if h2c else "http", "protocol": "TCP",
                            "port": port, "targetPort": target_port}]},
    }


def make_public_service(sks: Obj, selector: Mapping[str, str], target_port: int) -> Obj:
    """MakePublicService: `<sks>`, port 80 (81 for h2c). Upstream's has no selector and the SKS
    reconciler copies endpoints into it (the pods' in Serve mode, the activators' in Proxy);
    skiff's activator lives in the data plane, which routes by the SKS mode itself, so this one
    selects the revision's pods directly; the target is queue-proxy's port (target_port)."""
    h2c = (sks.get("spec") or {}).get("protocolType") == PROTOCOL_H2C
    return _sks_service(sks, sks["metadata"]["name"], "Public",
                        names.SERVICE_PORT_H2C if h2c else names.SERVICE_PORT_HTTP1,
                        target_port, selector)


def make_private_service(sks: Obj, selector: Mapping[str, str], target_port: int) -> Obj:
    """MakePrivateService: `<sks>-private`, port 80 to the revision's pods (their Deployment's
    selector), targeting queue-proxy's port as the public one does."""
    return _sks_service(sks, private_service_name(sks["metadata"]["name"]), "Private",
                        names.SERVICE_PORT_HTTP1, target_port, selector)


# --- Ingress -----------------------------------------------------------------------

def ingress_class_for_route(route: Obj, cfg: ServingConfig) -> str:
    return names.first(route["metadata"].get("annotations"), names.INGRESS_CLASS_ANNOTATIONS) \
        or cfg.ingress_class


def http_option(route: Obj, cfg: ServingConfig) -> str:
    """GetHTTPOption: the route's http-protocol annotation, else config-network's; Disabled -> ""."""
    proto = names.first(route["metadata"].get("annotations"), names.HTTP_PROTOCOL_ANNOTATIONS)
    proto = (proto or cfg.http_protocol).lower()
    return {"enabled": "Enabled", "redirected": "Redirected"}.get(proto, "")


def route_hosts(cfg: ServingConfig, route: Obj, target: str, visibility: str) -> list[str]:
    """routeDomain: the hosts of one target (tag) at one visibility."""
    host = domains.hostname_from_template(cfg, route["metadata"]["name"], target)
    cluster_local = visibility == VISIBILITY_CLUSTER_LOCAL_RULE
    meta = domains.with_visibility(route["metadata"], cluster_local)
    domain = domains.domain_name_from_template(cfg, meta, host)
    return domains.expanded_hosts(domain, cfg.cluster_domain) if cluster_local else [domain]


def _base_path(ns: str, targets: list[RevisionTarget]) -> Obj:
    splits = []
    for t in targets:
        if not t.percent:
            continue
        splits.append({
            "serviceNamespace": ns,
            "serviceName": t.revision_name,
            # The public service port matches the activator's, for a seamless handoff.
            "servicePort": names.SERVICE_PORT_H2C if t.protocol == "h2c"
            else names.SERVICE_PORT_HTTP1,
            "percent": t.percent,
            "appendHeaders": {REVISION_HEADER: t.revision_name, NAMESPACE_HEADER: ns},
        })
    return {"splits": splits}


def make_ingress_spec(route: Obj, tc: TrafficConfig, cfg: ServingConfig) -> Obj:
    """MakeIngressSpec: per target (sorted, the default first), a ClusterLocal rule and,
    unless the target is cluster-local, an ExternalIP rule."""
    ns = route["metadata"]["namespace"]
    target_names = sorted(tc.targets)
    rules = []
    for name in target_names:
        visibilities = [VISIBILITY_CLUSTER_LOCAL_RULE]
        if tc.visibility.get(name, VISIBILITY_EXTERNAL_IP) == VISIBILITY_EXTERNAL_IP:
            visibilities.append(VISIBILITY_EXTERNAL_IP)
        for vis in visibilities:
            path = _base_path(ns, tc.targets[name])
            paths = [path]
            if cfg.tag_header_based_routing:
                if name == DEFAULT_TARGET:
                    # Tagged traffic must carry the tag header even on the default host.
                    path["appendHeaders"] = {DEFAULT_ROUTE_HEADER: "true"}
                    tag_paths = []
                    for tag in target_names:
                        if tag != DEFAULT_TARGET:
                            tp = _base_path(ns, tc.targets[tag])
                            tp["headers"] = {TAG_HEADER: {"exact": tag}}
                            tag_paths.append(tp)
                    paths = tag_paths + paths
                else:
                    path["appendHeaders"] = {TAG_HEADER: name}
            rules.append({"hosts": route_hosts(cfg, route, name, vis), "visibility": vis,
                          "http": {"paths": paths}})
    spec: Obj = {"rules": rules}
    if option := http_option(route, cfg):
        spec["httpOption"] = option
    return spec


def make_ingress(route: Obj, tc: TrafficConfig, cfg: ServingConfig) -> Obj:
    """MakeIngress: named like the Route, its labels + route labels, its annotations + class."""
    m = route["metadata"]
    annotations = {names.INGRESS_CLASS_ANNOTATIONS[0]: ingress_class_for_route(route, cfg),
                   **_without_last_applied(m.get("annotations"))}
    return {
        "apiVersion": names.INGRESS_API_VERSION, "kind": "Ingress",
        "metadata": {
            "name": names.ingress_name(m["name"]), "namespace": m["namespace"],
            "labels": {**(m.get("labels") or {}), ROUTE_LABEL: m["name"],
                       ROUTE_NAMESPACE_LABEL: m["namespace"]},
            "annotations": annotations,
            "ownerReferences": [controller_ref(route)],
        },
        "spec": make_ingress_spec(route, tc, cfg),
    }


# --- routing metadata (the route's labeler) ----------------------------------------

def routing_meta_patch(obj: Obj, route_name: str, remove: bool, is_revision: bool,
                       now: str) -> Obj | None:
    """The merge patch that adds (or removes) a route in serving.knative.dev/routes and, on a
    Revision, moves routingState to active (routed) or reserve (no route left). None: no change."""
    m = obj["metadata"]
    current = list_annotation(m.get("annotations"), ROUTES_ANNOTATION)
    want = current - {route_name} if remove else current | {route_name}
    ann: dict[str, str | None] = {}
    labels: dict[str, str] = {}
    if want != current:
        ann[ROUTES_ANNOTATION] = ",".join(sorted(want)) if want else None
    if is_revision and (want != current or not remove):
        state = ROUTING_ACTIVE if want else ROUTING_RESERVE
        if (m.get("labels") or {}).get(ROUTING_STATE_LABEL) != state:
            labels[ROUTING_STATE_LABEL] = state
            ann[ROUTING_STATE_MODIFIED_ANNOTATION] = now
    if not ann and not labels:
        return None
    patch_meta: Obj = {}
    if ann:
        patch_meta["annotations"] = ann
    if labels:
        patch_meta["labels"] = labels
    return {"metadata": patch_meta}


def make_k8s_service(route: Obj, ingress: Obj) -> Obj | None:
    """MakeK8sService: the Service named like the Route that makes `<route>.<ns>` (and
    .svc, .svc.cluster.local) a cluster name: an ExternalName to the ingress's private load
    balancer (knative-local-gateway.istio-system.svc.cluster.local), port 80 http2. None until
    the Ingress reports that load balancer."""
    lb = ((ingress.get("status") or {}).get("privateLoadBalancer") or {}).get("ingress") or []
    target = next((i.get("domainInternal") for i in lb if i.get("domainInternal")), None)
    if not target:
        return None
    m = route["metadata"]
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"],
            "labels": {**(m.get("labels") or {}), ROUTE_LABEL: m["name"]},
            "annotations": _without_last_applied(m.get("annotations")),
            "ownerReferences": [controller_ref(route)],
        },
        "spec": {"type": "ExternalName", "externalName": target, "sessionAffinity": "None",
                 "ports": [{"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 80}]},
    }
