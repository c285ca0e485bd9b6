"""The operator kinds that switch Knative components on: KnativeServing,
KnativeEventing (operator.knative.dev v1beta1, v1alpha1 still served) and
KnativeKafka (operator.serverless.openshift.io v1alpha1), as data.

Names and printer columns are those of the knative/operator CRDs
(config/crd/bases) and the OpenShift Serverless operator's KnativeKafka CRD
(olm-catalog/serverless-operator/manifests); none has short names or
categories upstream. The schemas type every field of the operator's
CommonSpec (config overrides, registry, workload/service/PDB overrides,
high availability, manifests) and the Serving/Eventing/Kafka specific parts.

One deliberate tightening: upstream does not require `name` in a workload
override, so a manifest whose `name:` slid under `annotations:` (as in the
Serverless guide 1.7) is silently ignored by the real operator; here it is
an error at spec.deployments[i].name.

Neighbours: operator/ reconcilers and doctor checks read these objects;
core/schema_pod.py (ENV_VAR, PROBE, TOLERATION for workload overrides);
mesh/crds.py (the Istio gateway shape the ingress overrides mirror);
core/kinds.py (Kind, crd_for). Pure data.
"""

from __future__ import annotations

from dataclasses import replace

from skiff.core.kinds import Kind, PrinterColumn
from skiff.core.schema import (
    ANY,
    BOOL,
    CONDITION,
    INT,
    INT_OR_STR,
    QUANTITY,
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
from skiff.core.schema_pod import ENV_VAR, PROBE, TOLERATION, int_range

__all__ = ["COMMON_SPEC", "KINDS", "WORKLOAD_OVERRIDE"]

KNATIVE_OPERATOR = "operator.knative.dev"
SERVERLESS_OPERATOR = "operator.serverless.openshift.io"

_CPU_MEMORY = obj({"cpu": QUANTITY, "memory": QUANTITY})

WORKLOAD_OVERRIDE = obj({
    "name": STR,
    "labels": STR_MAP,
    "annotations": STR_MAP,
    "replicas": int_range(0),
    "env": arr(obj({"container": STR, "envVars": arr(ENV_VAR)}, required=("container",))),
    "resources": arr(obj({"container": STR, "requests": _CPU_MEMORY, "limits": _CPU_MEMORY})),
    "readinessProbes": arr(obj({"container": STR, **PROBE["properties"]},
                               required=("container",))),
    "livenessProbes": arr(obj({"container": STR, **PROBE["properties"]},
                              required=("container",))),
    "nodeSelector": STR_MAP,
    "tolerations": arr(TOLERATION),
    "affinity": ANY,                      # core/v1 Affinity: scheduler-only here
    "topologySpreadConstraints": arr(ANY),
    "hostNetwork": BOOL,
    "version": STR,
}, required=("name",))

SERVICE_OVERRIDE = obj({"name": STR, "labels": STR_MAP, "annotations": STR_MAP,
                        "selector": STR_MAP}, required=("name",))

MANIFEST = obj({"URL": STR})

# operator.knative.dev base.CommonSpec, shared by KnativeServing and KnativeEventing.
COMMON_SPEC: dict[str, Schema] = {
    # config-map name (without the config- prefix) -> key -> value, all strings.
    "config": map_of(map_of(STR)),
    "registry": obj({
        "default": STR,
        "override": STR_MAP,
        "imagePullSecrets": arr(obj({"name": STR})),
    }),
    "deployments": arr(WORKLOAD_OVERRIDE),   # deprecated alias of workloads
    "workloads": arr(WORKLOAD_OVERRIDE),
    "services": arr(SERVICE_OVERRIDE),
    "podDisruptionBudgets": arr(obj({"name": STR, "minAvailable": INT_OR_STR},
                                    required=("name",))),
    "high-availability": obj({"replicas": int_range(0)}),
    "manifests": arr(MANIFEST),
    "additionalManifests": arr(MANIFEST),
    "version": STR,
}

_GATEWAY_OVERRIDE = obj({
    "selector": STR_MAP,
    "servers": arr(obj({
        "hosts": STR_LIST,
        "port": obj({"name": STR, "number": INT, "target_port": INT, "protocol": STR}),
    })),
})

SERVING_SPEC = obj({
    **COMMON_SPEC,
    "controller-custom-certs": obj({"name": STR, "type": enum("ConfigMap", "Secret", "")}),
    "ingress": obj({
        "istio": obj({
            "enabled": BOOL,
            "knative-ingress-gateway": _GATEWAY_OVERRIDE,
            "knative-local-gateway": _GATEWAY_OVERRIDE,
        }),
        "kourier": obj({"enabled": BOOL, "service-type": enum("ClusterIP", "NodePort",
                                                              "LoadBalancer"),
                        "service-load-balancer-ip": STR, "bootstrap-configmap": STR}),
        "contour": obj({"enabled": BOOL}),
    }),
    "security": obj({"securityGuard": obj({"enabled": BOOL})}),
})

EVENTING_SPEC = obj({
    **COMMON_SPEC,
    "defaultBrokerClass": STR,
    "sinkBindingSelectionMode": STR,   # inclusion | exclusion
    "source": obj({name: obj({"enabled": BOOL})
                   for name in ("ceph", "github", "gitlab", "kafka", "rabbitmq", "redis")}),
})

OPERATOR_STATUS = open_obj({
    "observedGeneration": INT,
    "conditions": arr(CONDITION),
    "version": STR,
    "manifests": STR_LIST,
    "annotations": STR_MAP,
})

_ENABLED = obj({"enabled": BOOL}, required=("enabled",))

KAFKA_SPEC = obj({
    "config": map_of(map_of(STR)),
    "channel": obj({
        "enabled": BOOL,
        "bootstrapServers": STR,   # comma-separated host:port list
        "authSecretName": STR,
        "authSecretNamespace": STR,
    }, required=("enabled",)),
    "source": _ENABLED,
    "sink": _ENABLED,
    "broker": obj({
        "enabled": BOOL,
        "defaultConfig": obj({
            "bootstrapServers": STR,
            "numPartitions": int_range(1),
            "replicationFactor": int_range(1, 32767),
            "authSecretName": STR,
        }),
    }, required=("enabled",)),
    "high-availability": obj({"replicas": int_range(1)}),
    "logging": obj({"level": enum("TRACE", "DEBUG", "INFO", "WARN", "ERROR")}),
    "workloads": arr(WORKLOAD_OVERRIDE),
}, required=("channel", "source"))

_VERSION_READY_REASON = (
    PrinterColumn("Version", ".status.version"),
    PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status'),
    PrinterColumn("Reason", '.status.conditions[?(@.type=="Ready")].reason'),
)

KINDS: list[Kind] = [
    Kind(group=KNATIVE_OPERATOR, version="v1beta1", versions=("v1beta1", "v1alpha1"),
         kind="KnativeServing", plural="knativeservings", singular="knativeserving",
         namespaced=True, schema=resource(SERVING_SPEC, status=OPERATOR_STATUS),
         crd_name=f"knativeservings.{KNATIVE_OPERATOR}", printer_columns=_VERSION_READY_REASON),
    Kind(group=KNATIVE_OPERATOR, version="v1beta1", versions=("v1beta1", "v1alpha1"),
         kind="KnativeEventing", plural="knativeeventings", singular="knativeeventing",
         namespaced=True, schema=resource(EVENTING_SPEC, status=OPERATOR_STATUS),
         crd_name=f"knativeeventings.{KNATIVE_OPERATOR}",
         printer_columns=_VERSION_READY_REASON),
    Kind(group=SERVERLESS_OPERATOR, version="v1alpha1", kind="KnativeKafka",
         plural="knativekafkas", singular="knativekafka", namespaced=True,
         schema=resource(KAFKA_SPEC, status=OPERATOR_STATUS),
         crd_name=f"knativekafkas.{SERVERLESS_OPERATOR}",
         printer_columns=(
             PrinterColumn("Version", ".status.version"),
             PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status'),
             PrinterColumn("Reason", ".status.conditions[?(@.type=='Ready')].reason"),
         )),
]


# Accepted and stored, not acted on yet: each says so (see Kind.not_implemented).
_NOT_IMPLEMENTED = {
    "KnativeEventing": "Knative Eventing is not implemented yet: no events are delivered",
    "KnativeKafka": "Knative Kafka is not implemented yet: no Kafka broker, channel, source or sink runs",
}
KINDS = [replace(k, not_implemented=_NOT_IMPLEMENTED[k.kind]) if k.kind in _NOT_IMPLEMENTED else k
         for k in KINDS]
