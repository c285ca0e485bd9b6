"""The built-in kinds: the slice of the Kubernetes API that skiff serves natively.

Each entry of KINDS is a Kind (core/kinds.py) whose schema is a faithful
subset of the k8s.io/api v1.32 Go types, written with the schema DSL
(core/schema.py): every field ordinary users put in manifests (what
`kubectl create ... --dry-run=client -o yaml` prints, what the docs and the
Serverless guide apply) is typed, so validation.py can reject a misspelt or
mis-indented key with its field path. Rarely written corners (affinity,
ephemeral containers, exotic volume sources) are kept open or left out; the
module says where.

Neighbours: kinds.py (the registry these are added to at start-up),
validation.py (checks objects against these schemas), printers.py (the
Table columns of the same kinds), the API server (discovery, /openapi/v3).
The Pod spec here is the built-in one; Knative's own container/pod-spec
subset lives in core/schema_pod.py and is not shared with this module.
Pure data, no I/O.
"""

from __future__ import annotations

from skiff.core.kinds import Kind
from skiff.core.schema import (
    ANY,
    BOOL,
    CONDITION,
    DATE_TIME,
    INT,
    INT_OR_STR,
    LABEL_SELECTOR,
    OBJECT_META,
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

__all__ = [
    "CONTAINER", "CRD", "DEPLOYMENT", "KINDS", "POD_SPEC", "POD_TEMPLATE_SPEC",
]


def _int(minimum: int | None = None, maximum: int | None = None) -> Schema:
    s: Schema = dict(INT)
    if minimum is not None:
        s["minimum"] = minimum
    if maximum is not None:
        s["maximum"] = maximum
    return s


def _nullable_time() -> Schema:
    # metav1.Time / MicroTime: RFC 3339 strings; Go writes null for zero values.
    return {**DATE_TIME, "nullable": True}


PORT = _int(1, 65535)
NON_NEGATIVE = _int(0)
QUANTITY_MAP = map_of(QUANTITY)
LOCAL_OBJECT_REFERENCE = obj({"name": STR})

OBJECT_REFERENCE = obj({
    "kind": STR, "namespace": STR, "name": STR, "uid": STR, "apiVersion": STR,
    "resourceVersion": STR, "fieldPath": STR,
})

# --- core/v1 Container --------------------------------------------------------

KEY_TO_PATH = obj({"key": STR, "path": STR, "mode": INT}, required=("key", "path"))

OBJECT_FIELD_SELECTOR = obj({"apiVersion": STR, "fieldPath": STR}, required=("fieldPath",))
RESOURCE_FIELD_SELECTOR = obj({"containerName": STR, "resource": STR, "divisor": QUANTITY},
                              required=("resource",))
KEY_SELECTOR = obj({"name": STR, "key": STR, "optional": BOOL}, required=("key",))

ENV_VAR = obj({
    "name": STR,
    "value": STR,
    "valueFrom": obj({
        "fieldRef": OBJECT_FIELD_SELECTOR,
        "resourceFieldRef": RESOURCE_FIELD_SELECTOR,
        "configMapKeyRef": KEY_SELECTOR,
        "secretKeyRef": KEY_SELECTOR,
    }),
}, required=("name",))

ENV_FROM_SOURCE = obj({
    "prefix": STR,
    "configMapRef": obj({"name": STR, "optional": BOOL}),
    "secretRef": obj({"name": STR, "optional": BOOL}),
})

PROTOCOL = enum("TCP", "UDP", "SCTP")

CONTAINER_PORT = obj({
    "name": STR, "hostPort": PORT, "containerPort": PORT, "protocol": PROTOCOL, "hostIP": STR,
}, required=("containerPort",))

RESOURCE_REQUIREMENTS = obj({
    "limits": QUANTITY_MAP,
    "requests": QUANTITY_MAP,
    "claims": arr(obj({"name": STR, "request": STR}, required=("name",))),
})

VOLUME_MOUNT = obj({
    "name": STR, "readOnly": BOOL, "recursiveReadOnly": enum("Disabled", "IfPossible", "Enabled"),
    "mountPath": STR, "subPath": STR,
    "mountPropagation": enum("None", "HostToContainer", "Bidirectional"), "subPathExpr": STR,
}, required=("name", "mountPath"))

VOLUME_DEVICE = obj({"name": STR, "devicePath": STR}, required=("name", "devicePath"))

EXEC_ACTION = obj({"command": STR_LIST})
HTTP_GET_ACTION = obj({
    "path": STR, "port": INT_OR_STR, "host": STR, "scheme": enum("HTTP", "HTTPS"),
    "httpHeaders": arr(obj({"name": STR, "value": STR}, required=("name", "value"))),
}, required=("port",))
TCP_SOCKET_ACTION = obj({"port": INT_OR_STR, "host": STR}, required=("port",))
GRPC_ACTION = obj({"port": PORT, "service": STR}, required=("port",))

PROBE = obj({
    "exec": EXEC_ACTION, "httpGet": HTTP_GET_ACTION, "tcpSocket": TCP_SOCKET_ACTION,
    "grpc": GRPC_ACTION,
    "initialDelaySeconds": NON_NEGATIVE, "timeoutSeconds": NON_NEGATIVE,
    "periodSeconds": NON_NEGATIVE, "successThreshold": NON_NEGATIVE,
    "failureThreshold": NON_NEGATIVE, "terminationGracePeriodSeconds": INT,
})

LIFECYCLE_HANDLER = obj({
    "exec": EXEC_ACTION, "httpGet": HTTP_GET_ACTION, "tcpSocket": TCP_SOCKET_ACTION,
    "sleep": obj({"seconds": INT}, required=("seconds",)),
})

SE_LINUX_OPTIONS = obj({"user": STR, "role": STR, "type": STR, "level": STR})
WINDOWS_OPTIONS = obj({
    "gmsaCredentialSpecName": STR, "gmsaCredentialSpec": STR, "runAsUserName": STR,
    "hostProcess": BOOL,
})
SECCOMP_PROFILE = obj({"type": enum("Unconfined", "RuntimeDefault", "Localhost"),
                       "localhostProfile": STR}, required=("type",))
APP_ARMOR_PROFILE = obj({"type": enum("Unconfined", "RuntimeDefault", "Localhost"),
                         "localhostProfile": STR}, required=("type",))

SECURITY_CONTEXT = obj({
    "capabilities": obj({"add": STR_LIST, "drop": STR_LIST}),
    "privileged": BOOL,
    "seLinuxOptions": SE_LINUX_OPTIONS,
    "windowsOptions": WINDOWS_OPTIONS,
    "runAsUser": INT, "runAsGroup": INT, "runAsNonRoot": BOOL,
    "readOnlyRootFilesystem": BOOL, "allowPrivilegeEscalation": BOOL,
    "procMount": enum("Default", "Unmasked"),
    "seccompProfile": SECCOMP_PROFILE,
    "appArmorProfile": APP_ARMOR_PROFILE,
})

CONTAINER = obj({
    "name": STR,
    "image": STR,
    "command": STR_LIST,
    "args": STR_LIST,
    "workingDir": STR,
    "ports": arr(CONTAINER_PORT),
    "envFrom": arr(ENV_FROM_SOURCE),
    "env": arr(ENV_VAR),
    "resources": RESOURCE_REQUIREMENTS,
    "resizePolicy": arr(obj({"resourceName": STR, "restartPolicy": STR},
                            required=("resourceName", "restartPolicy"))),
    "restartPolicy": enum("Always"),  # init containers only: a sidecar
    "volumeMounts": arr(VOLUME_MOUNT),
    "volumeDevices": arr(VOLUME_DEVICE),
    "livenessProbe": PROBE,
    "readinessProbe": PROBE,
    "startupProbe": PROBE,
    "lifecycle": obj({"postStart": LIFECYCLE_HANDLER, "preStop": LIFECYCLE_HANDLER}),
    "terminationMessagePath": STR,
    "terminationMessagePolicy": enum("File", "FallbackToLogsOnError"),
    "imagePullPolicy": enum("Always", "Never", "IfNotPresent"),
    "securityContext": SECURITY_CONTEXT,
    "stdin": BOOL,
    "stdinOnce": BOOL,
    "tty": BOOL,
}, required=("name",))

# --- core/v1 Volume (the common sources; the rest are rare and left out) -------

_DOWNWARD_API_FILE = obj({
    "path": STR, "fieldRef": OBJECT_FIELD_SELECTOR, "resourceFieldRef": RESOURCE_FIELD_SELECTOR,
    "mode": INT,
}, required=("path",))

VOLUME = obj({
    "name": STR,
    "hostPath": obj({"path": STR, "type": enum(
        "", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice",
        "BlockDevice")}, required=("path",)),
    "emptyDir": obj({"medium": STR, "sizeLimit": QUANTITY}),
    "secret": obj({"secretName": STR, "items": arr(KEY_TO_PATH), "defaultMode": INT,
                   "optional": BOOL}),
    "configMap": obj({"name": STR, "items": arr(KEY_TO_PATH), "defaultMode": INT,
                      "optional": BOOL}),
    "persistentVolumeClaim": obj({"claimName": STR, "readOnly": BOOL}, required=("claimName",)),
    "downwardAPI": obj({"items": arr(_DOWNWARD_API_FILE), "defaultMode": INT}),
    "projected": obj({
        "sources": arr(obj({
            "secret": obj({"name": STR, "items": arr(KEY_TO_PATH), "optional": BOOL}),
            "configMap": obj({"name": STR, "items": arr(KEY_TO_PATH), "optional": BOOL}),
            "downwardAPI": obj({"items": arr(_DOWNWARD_API_FILE)}),
            "serviceAccountToken": obj({"audience": STR, "expirationSeconds": INT, "path": STR},
                                       required=("path",)),
            "clusterTrustBundle": obj({"name": STR, "signerName": STR,
                                       "labelSelector": LABEL_SELECTOR, "optional": BOOL,
                                       "path": STR}, required=("path",)),
        })),
        "defaultMode": INT,
    }),
    "nfs": obj({"server": STR, "path": STR, "readOnly": BOOL}, required=("server", "path")),
    "csi": obj({"driver": STR, "readOnly": BOOL, "fsType": STR, "volumeAttributes": STR_MAP,
                "nodePublishSecretRef": LOCAL_OBJECT_REFERENCE}, required=("driver",)),
    "image": obj({"reference": STR, "pullPolicy": enum("Always", "Never", "IfNotPresent")}),
    "ephemeral": ANY,
}, required=("name",))

# --- core/v1 PodSpec ------------------------------------------------------------

TOLERATION = obj({
    "key": STR, "operator": enum("Exists", "Equal"), "value": STR,
    "effect": enum("", "NoSchedule", "PreferNoSchedule", "NoExecute"),
    "tolerationSeconds": INT,
})

POD_SECURITY_CONTEXT = obj({
    "seLinuxOptions": SE_LINUX_OPTIONS,
    "windowsOptions": WINDOWS_OPTIONS,
    "runAsUser": INT, "runAsGroup": INT, "runAsNonRoot": BOOL,
    "supplementalGroups": arr(INT),
    "supplementalGroupsPolicy": enum("Merge", "Strict"),
    "fsGroup": INT,
    "sysctls": arr(obj({"name": STR, "value": STR}, required=("name", "value"))),
    "fsGroupChangePolicy": enum("OnRootMismatch", "Always"),
    "seccompProfile": SECCOMP_PROFILE,
    "appArmorProfile": APP_ARMOR_PROFILE,
    "seLinuxChangePolicy": STR,
})

TOPOLOGY_SPREAD_CONSTRAINT = obj({
    "maxSkew": INT, "topologyKey": STR,
    "whenUnsatisfiable": enum("DoNotSchedule", "ScheduleAnyway"),
    "labelSelector": LABEL_SELECTOR, "minDomains": INT,
    "nodeAffinityPolicy": enum("Honor", "Ignore"), "nodeTaintsPolicy": enum("Honor", "Ignore"),
    "matchLabelKeys": STR_LIST,
}, required=("maxSkew", "topologyKey", "whenUnsatisfiable"))

POD_SPEC = obj({
    "volumes": arr(VOLUME),
    "initContainers": arr(CONTAINER),
    "containers": arr(CONTAINER),
    # Debug containers are added through the ephemeralcontainers subresource, not by hand.
    "ephemeralContainers": arr(ANY),
    "restartPolicy": enum("Always", "OnFailure", "Never"),
    "terminationGracePeriodSeconds": NON_NEGATIVE,
    "activeDeadlineSeconds": _int(1),
    "dnsPolicy": enum("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"),
    "nodeSelector": STR_MAP,
    "serviceAccountName": STR,
    "serviceAccount": STR,  # deprecated alias of serviceAccountName
    "automountServiceAccountToken": BOOL,
    "nodeName": STR,
    "hostNetwork": BOOL, "hostPID": BOOL, "hostIPC": BOOL, "shareProcessNamespace": BOOL,
    "securityContext": POD_SECURITY_CONTEXT,
    "imagePullSecrets": arr(LOCAL_OBJECT_REFERENCE),
    "hostname": STR,
    "subdomain": STR,
    # Node/pod (anti-)affinity: deep and scheduler-only here; kept open like upstream's size.
    "affinity": ANY,
    "schedulerName": STR,
    "tolerations": arr(TOLERATION),
    "hostAliases": arr(obj({"ip": STR, "hostnames": STR_LIST}, required=("ip",))),
    "priorityClassName": STR,
    "priority": INT,
    "dnsConfig": obj({"nameservers": STR_LIST, "searches": STR_LIST,
                      "options": arr(obj({"name": STR, "value": STR}))}),
    "readinessGates": arr(obj({"conditionType": STR}, required=("conditionType",))),
    "runtimeClassName": STR,
    "enableServiceLinks": BOOL,
    "preemptionPolicy": enum("PreemptLowerPriority", "Never"),
    "overhead": QUANTITY_MAP,
    "topologySpreadConstraints": arr(TOPOLOGY_SPREAD_CONSTRAINT),
    "setHostnameAsFQDN": BOOL,
    "os": obj({"name": enum("linux", "windows")}, required=("name",)),
    "hostUsers": BOOL,
    "schedulingGates": arr(obj({"name": STR}, required=("name",))),
    "resourceClaims": arr(obj({"name": STR, "resourceClaimName": STR,
                               "resourceClaimTemplateName": STR}, required=("name",))),
    "resources": RESOURCE_REQUIREMENTS,  # pod-level resources (alpha in 1.32)
}, required=("containers",))

POD_TEMPLATE_SPEC = obj({"metadata": OBJECT_META, "spec": POD_SPEC})

# Status blocks are written by skiff's own controllers: typed where the
# printers read them, open everywhere else.
POD_STATUS = open_obj({
    "phase": enum("Pending", "Running", "Succeeded", "Failed", "Unknown"),
    "conditions": arr(CONDITION),
    "message": STR, "reason": STR, "nominatedNodeName": STR,
    "hostIP": STR, "podIP": STR, "podIPs": arr(obj({"ip": STR})),
    "startTime": DATE_TIME, "qosClass": STR,
    "initContainerStatuses": arr(ANY), "containerStatuses": arr(ANY),
    "ephemeralContainerStatuses": arr(ANY),
})

POD = resource(POD_SPEC, status=POD_STATUS)

# --- apps/v1 Deployment ---------------------------------------------------------

DEPLOYMENT_SPEC = obj({
    "replicas": NON_NEGATIVE,
    "selector": LABEL_SELECTOR,
    "template": POD_TEMPLATE_SPEC,
    "strategy": obj({
        "type": enum("Recreate", "RollingUpdate"),
        "rollingUpdate": obj({"maxUnavailable": INT_OR_STR, "maxSurge": INT_OR_STR}),
    }),
    "minReadySeconds": NON_NEGATIVE,
    "revisionHistoryLimit": NON_NEGATIVE,
    "paused": BOOL,
    "progressDeadlineSeconds": _int(1),
}, required=("selector", "template"))

DEPLOYMENT_STATUS = open_obj({
    "observedGeneration": INT, "replicas": INT, "updatedReplicas": INT, "readyReplicas": INT,
    "availableReplicas": INT, "unavailableReplicas": INT, "terminatingReplicas": INT,
    "conditions": arr(CONDITION), "collisionCount": INT,
})

DEPLOYMENT = resource(DEPLOYMENT_SPEC, status=DEPLOYMENT_STATUS)

# --- apps/v1 ReplicaSet (a Deployment's, one per pod template) --------------------

REPLICASET = resource(obj({
    "replicas": NON_NEGATIVE,
    "minReadySeconds": NON_NEGATIVE,
    "selector": LABEL_SELECTOR,
    "template": POD_TEMPLATE_SPEC,
}, required=("selector",)), status=open_obj({
    "replicas": INT, "fullyLabeledReplicas": INT, "readyReplicas": INT, "availableReplicas": INT,
    "terminatingReplicas": INT, "observedGeneration": INT, "conditions": arr(CONDITION),
}))

# --- apps/v1 DaemonSet, StatefulSet, ControllerRevision; batch/v1 Job, CronJob -------
# Acted on by core/reconcilers/{daemonset,statefulset,job,cronjob}.py.

_ROLLING_STRATEGY_TYPES = enum("RollingUpdate", "OnDelete")

DAEMONSET = resource(obj({
    "selector": LABEL_SELECTOR,
    "template": POD_TEMPLATE_SPEC,
    "updateStrategy": obj({
        "type": _ROLLING_STRATEGY_TYPES,
        "rollingUpdate": obj({"maxUnavailable": INT_OR_STR, "maxSurge": INT_OR_STR}),
    }),
    "minReadySeconds": NON_NEGATIVE,
    "revisionHistoryLimit": NON_NEGATIVE,
}, required=("selector", "template")), status=open_obj({
    "currentNumberScheduled": INT, "numberMisscheduled": INT, "desiredNumberScheduled": INT,
    "numberReady": INT, "observedGeneration": INT, "updatedNumberScheduled": INT,
    "numberAvailable": INT, "numberUnavailable": INT, "collisionCount": INT,
    "conditions": arr(CONDITION),
}))

# A PersistentVolumeClaim as a StatefulSet's volumeClaimTemplates carry it (no storage is
# provisioned: core/notimplemented.py says so on write).
PVC_TEMPLATE = obj({
    "apiVersion": STR, "kind": STR, "metadata": OBJECT_META,
    "spec": open_obj({"accessModes": STR_LIST, "storageClassName": STR,
                      "resources": RESOURCE_REQUIREMENTS, "volumeMode": STR,
                      "selector": LABEL_SELECTOR}),
    "status": open_obj(),
})

STATEFULSET = resource(obj({
    "replicas": NON_NEGATIVE,
    "selector": LABEL_SELECTOR,
    "template": POD_TEMPLATE_SPEC,
    "volumeClaimTemplates": arr(PVC_TEMPLATE),
    "serviceName": STR,
    "podManagementPolicy": enum("OrderedReady", "Parallel"),
    "updateStrategy": obj({
        "type": _ROLLING_STRATEGY_TYPES,
        "rollingUpdate": obj({"partition": NON_NEGATIVE, "maxUnavailable": INT_OR_STR}),
    }),
    "revisionHistoryLimit": NON_NEGATIVE,
    "minReadySeconds": NON_NEGATIVE,
    "persistentVolumeClaimRetentionPolicy": obj({"whenDeleted": enum("Retain", "Delete"),
                                                 "whenScaled": enum("Retain", "Delete")}),
    "ordinals": obj({"start": NON_NEGATIVE}),
}, required=("selector", "template")), status=open_obj({
    "observedGeneration": INT, "replicas": INT, "readyReplicas": INT, "currentReplicas": INT,
    "updatedReplicas": INT, "availableReplicas": INT, "currentRevision": STR,
    "updateRevision": STR, "collisionCount": INT, "conditions": arr(CONDITION),
}))

JOB_SPEC = obj({
    "parallelism": NON_NEGATIVE,
    "completions": NON_NEGATIVE,
    "activeDeadlineSeconds": NON_NEGATIVE,
    "podFailurePolicy": ANY,     # accepted; the default failure counting applies
    "successPolicy": ANY,        # accepted; success is reaching completions
    "backoffLimit": NON_NEGATIVE,
    "backoffLimitPerIndex": NON_NEGATIVE,
    "maxFailedIndexes": NON_NEGATIVE,
    "selector": LABEL_SELECTOR,
    "manualSelector": BOOL,
    "template": POD_TEMPLATE_SPEC,
    "ttlSecondsAfterFinished": NON_NEGATIVE,
    "completionMode": enum("NonIndexed", "Indexed"),
    "suspend": BOOL,
    "podReplacementPolicy": enum("TerminatingOrFailed", "Failed"),
    "managedBy": STR,
}, required=("template",))

JOB = resource(JOB_SPEC, status=open_obj({
    "conditions": arr(CONDITION), "startTime": DATE_TIME, "completionTime": DATE_TIME,
    "active": INT, "succeeded": INT, "failed": INT, "terminating": INT, "ready": INT,
    "completedIndexes": STR, "failedIndexes": STR, "uncountedTerminatedPods": open_obj(),
}))

CRONJOB = resource(obj({
    "schedule": STR,
    "timeZone": STR,
    "startingDeadlineSeconds": INT,
    "concurrencyPolicy": enum("Allow", "Forbid", "Replace"),
    "suspend": BOOL,
    "jobTemplate": obj({"metadata": OBJECT_META, "spec": JOB_SPEC}),
    "successfulJobsHistoryLimit": NON_NEGATIVE,
    "failedJobsHistoryLimit": NON_NEGATIVE,
}, required=("schedule", "jobTemplate")), status=open_obj({
    "active": arr(OBJECT_REFERENCE), "lastScheduleTime": DATE_TIME,
    "lastSuccessfulTime": DATE_TIME,
}))

# --- core/v1 Service ------------------------------------------------------------

SERVICE_PORT = obj({
    "name": STR, "protocol": PROTOCOL, "appProtocol": STR, "port": PORT,
    "targetPort": INT_OR_STR, "nodePort": _int(0, 65535),
}, required=("port",))

SERVICE_SPEC = obj({
    "ports": arr(SERVICE_PORT),
    "selector": STR_MAP,
    "clusterIP": STR,
    "clusterIPs": STR_LIST,
    "type": enum("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"),
    "externalIPs": STR_LIST,
    "sessionAffinity": enum("ClientIP", "None"),
    "loadBalancerIP": STR,
    "loadBalancerSourceRanges": STR_LIST,
    "externalName": STR,
    "externalTrafficPolicy": enum("Cluster", "Local"),
    "healthCheckNodePort": INT,
    "publishNotReadyAddresses": BOOL,
    "sessionAffinityConfig": obj({"clientIP": obj({"timeoutSeconds": _int(1, 86400)})}),
    "ipFamilies": arr(enum("IPv4", "IPv6")),
    "ipFamilyPolicy": enum("SingleStack", "PreferDualStack", "RequireDualStack"),
    "allocateLoadBalancerNodePorts": BOOL,
    "loadBalancerClass": STR,
    "internalTrafficPolicy": enum("Cluster", "Local"),
    "trafficDistribution": STR,
})

SERVICE_STATUS = open_obj({
    "loadBalancer": open_obj({"ingress": arr(open_obj({"ip": STR, "hostname": STR}))}),
    "conditions": arr(CONDITION),
})

SERVICE = resource(SERVICE_SPEC, status=SERVICE_STATUS)

# --- core/v1 Namespace, ConfigMap, Secret, ServiceAccount, Event ----------------

NAMESPACE = resource(
    obj({"finalizers": STR_LIST}),
    status=open_obj({"phase": enum("Active", "Terminating"), "conditions": arr(CONDITION)}),
)


# --- core/v1 Node (the one node skiff runs on; the node runtime keeps its status) ------

NODE = resource(
    obj({
        "podCIDR": STR, "podCIDRs": STR_LIST, "providerID": STR, "unschedulable": BOOL,
        "taints": arr(obj({"key": STR, "value": STR, "effect": STR, "timeAdded": DATE_TIME},
                          required=("key", "effect"))),
    }),
    status=open_obj({
        "capacity": QUANTITY_MAP, "allocatable": QUANTITY_MAP, "conditions": arr(open_obj()),
        "addresses": arr(obj({"type": STR, "address": STR})), "nodeInfo": open_obj(),
        "daemonEndpoints": open_obj(), "images": arr(open_obj()), "phase": STR,
    }),
)


# --- coordination.k8s.io/v1 Lease (the node's heartbeat in kube-node-lease) ---------

LEASE = resource(obj({
    "holderIdentity": STR, "leaseDurationSeconds": INT, "acquireTime": DATE_TIME,
    "renewTime": DATE_TIME, "leaseTransitions": INT, "strategy": STR, "preferredHolder": STR,
}))
del LEASE["properties"]["status"]


def _no_status(props: dict[str, Schema]) -> Schema:
    """A kind without spec or status (ConfigMap, Secret...): its fields sit at the top level."""
    s = resource(extra=props)
    del s["properties"]["status"]
    return s


CONFIG_MAP = _no_status({"data": STR_MAP, "binaryData": STR_MAP, "immutable": BOOL})

SECRET = _no_status({
    "data": STR_MAP,         # base64-encoded values
    "stringData": STR_MAP,   # write-only convenience, merged into data on write
    "type": STR,             # kubernetes.io/tls, Opaque, kubernetes.io/dockerconfigjson...
    "immutable": BOOL,
})

SERVICE_ACCOUNT = _no_status({
    "secrets": arr(OBJECT_REFERENCE),
    "imagePullSecrets": arr(LOCAL_OBJECT_REFERENCE),
    "automountServiceAccountToken": BOOL,
})

EVENT = _no_status({
    "involvedObject": OBJECT_REFERENCE,
    "reason": STR,
    "message": STR,
    "source": obj({"component": STR, "host": STR}),
    "firstTimestamp": _nullable_time(),
    "lastTimestamp": _nullable_time(),
    "count": INT,
    "type": STR,  # Normal, Warning
    "eventTime": _nullable_time(),
    "series": obj({"count": INT, "lastObservedTime": _nullable_time()}),
    "action": STR,
    "related": OBJECT_REFERENCE,
    "reportingComponent": STR,
    "reportingInstance": STR,
})
EVENT["required"] = ["involvedObject"]

# apps/v1 ControllerRevision: a DaemonSet's or StatefulSet's template history (`rollout history`).
CONTROLLER_REVISION = _no_status({"data": ANY, "revision": INT})
CONTROLLER_REVISION["required"] = ["revision"]

# --- networking.k8s.io/v1 NetworkPolicy (no status since 1.28) ------------------

NETWORK_POLICY_PEER = obj({
    "podSelector": LABEL_SELECTOR,
    "namespaceSelector": LABEL_SELECTOR,
    "ipBlock": obj({"cidr": STR, "except": STR_LIST}, required=("cidr",)),
})
# endPort's range is netpolvalidation.py's to check, in upstream's words.
NETWORK_POLICY_PORT = obj({"protocol": PROTOCOL, "port": INT_OR_STR, "endPort": INT})

NETWORK_POLICY = _no_status({"spec": obj({
    "podSelector": LABEL_SELECTOR,
    "ingress": arr(obj({"ports": arr(NETWORK_POLICY_PORT), "from": arr(NETWORK_POLICY_PEER)})),
    "egress": arr(obj({"ports": arr(NETWORK_POLICY_PORT), "to": arr(NETWORK_POLICY_PEER)})),
    "policyTypes": arr(enum("Ingress", "Egress")),
})})

# --- discovery.k8s.io/v1 EndpointSlice and core/v1 Endpoints (kept by the EndpointSlice
# controller, core/reconcilers/endpointslice.py) -------------------------------------------

ENDPOINT_PORT = obj({"name": STR, "protocol": PROTOCOL, "port": INT, "appProtocol": STR})

ENDPOINT_SLICE = _no_status({
    "addressType": enum("IPv4", "IPv6", "FQDN"),
    "endpoints": arr(obj({
        "addresses": STR_LIST,
        "conditions": obj({"ready": BOOL, "serving": BOOL, "terminating": BOOL}),
        "hostname": STR,
        "targetRef": OBJECT_REFERENCE,
        "deprecatedTopology": STR_MAP,
        "nodeName": STR,
        "zone": STR,
        "hints": obj({"forZones": arr(obj({"name": STR}, required=("name",))),
                      "forNodes": arr(obj({"name": STR}, required=("name",)))}),
    }, required=("addresses",))),
    "ports": arr(ENDPOINT_PORT),
})
ENDPOINT_SLICE["required"] = ["addressType", "endpoints"]

ENDPOINT_ADDRESS = obj({"ip": STR, "hostname": STR, "nodeName": STR,
                        "targetRef": OBJECT_REFERENCE}, required=("ip",))

ENDPOINTS = _no_status({"subsets": arr(obj({
    "addresses": arr(ENDPOINT_ADDRESS),
    "notReadyAddresses": arr(ENDPOINT_ADDRESS),
    "ports": arr(obj({"name": STR, "port": INT, "protocol": PROTOCOL, "appProtocol": STR},
                     required=("port",))),
}))})

# --- apiextensions.k8s.io/v1 CustomResourceDefinition ---------------------------

CRD_COLUMN = obj({
    "name": STR, "type": enum("integer", "number", "string", "boolean", "date"),
    "format": STR, "description": STR, "priority": INT, "jsonPath": STR,
}, required=("name", "type", "jsonPath"))

CRD_VERSION = obj({
    "name": STR,
    "served": BOOL,
    "storage": BOOL,
    "deprecated": BOOL,
    "deprecationWarning": STR,
    # The user's own schema: a JSONSchemaProps tree, checked when the CRD is registered.
    "schema": obj({"openAPIV3Schema": ANY}),
    "subresources": obj({
        "status": open_obj(),
        "scale": obj({"specReplicasPath": STR, "statusReplicasPath": STR,
                      "labelSelectorPath": STR},
                     required=("specReplicasPath", "statusReplicasPath")),
    }),
    "additionalPrinterColumns": arr(CRD_COLUMN),
    "selectableFields": arr(obj({"jsonPath": STR}, required=("jsonPath",))),
}, required=("name", "served", "storage"))

CRD_SPEC = obj({
    "group": STR,
    "names": obj({
        "plural": STR, "singular": STR, "kind": STR, "listKind": STR,
        "shortNames": STR_LIST, "categories": STR_LIST,
    }, required=("plural", "kind")),
    "scope": enum("Cluster", "Namespaced"),
    "versions": arr(CRD_VERSION),
    "conversion": obj({
        "strategy": enum("None", "Webhook"),
        "webhook": obj({
            "clientConfig": obj({
                "url": STR,
                "service": obj({"namespace": STR, "name": STR, "path": STR, "port": PORT},
                               required=("namespace", "name")),
                "caBundle": STR,
            }),
            "conversionReviewVersions": STR_LIST,
        }),
    }, required=("strategy",)),
    "preserveUnknownFields": BOOL,
}, required=("group", "names", "scope", "versions"))

CRD = resource(CRD_SPEC, status=open_obj({
    "conditions": arr(CONDITION),
    "acceptedNames": open_obj(),
    "storedVersions": STR_LIST,
}))

# --- the kinds -------------------------------------------------------------------

_NO_DELETECOLLECTION = ("create", "delete", "get", "list", "patch", "update", "watch")

KINDS: list[Kind] = [
    Kind(group="", version="v1", kind="Namespace", plural="namespaces", namespaced=False,
         schema=NAMESPACE, short_names=("ns",), status_subresource=True,
         name_rule="dns1123-label", verbs=_NO_DELETECOLLECTION, builtin=True),
    Kind(group="", version="v1", kind="Node", plural="nodes", namespaced=False, schema=NODE,
         short_names=("no",), status_subresource=True, builtin=True),
    Kind(group="coordination.k8s.io", version="v1", kind="Lease", plural="leases",
         namespaced=True, schema=LEASE, status_subresource=False, builtin=True),
    Kind(group="", version="v1", kind="ConfigMap", plural="configmaps", namespaced=True,
         schema=CONFIG_MAP, short_names=("cm",), status_subresource=False, builtin=True),
    Kind(group="", version="v1", kind="Secret", plural="secrets", namespaced=True,
         schema=SECRET, status_subresource=False, builtin=True),
    Kind(group="", version="v1", kind="ServiceAccount", plural="serviceaccounts",
         namespaced=True, schema=SERVICE_ACCOUNT, short_names=("sa",),
         status_subresource=False, extra_subresources=("token",), builtin=True),
    # Service names are DNS-1035 labels upstream (they become DNS names and env vars).
    Kind(group="", version="v1", kind="Service", plural="services", namespaced=True,
         schema=SERVICE, short_names=("svc",), categories=("all",), status_subresource=True,
         name_rule="dns1035-label", builtin=True),
    Kind(group="", version="v1", kind="Endpoints", plural="endpoints", namespaced=True,
         schema=ENDPOINTS, singular="endpoints", short_names=("ep",),
         status_subresource=False, builtin=True),
    Kind(group="discovery.k8s.io", version="v1", kind="EndpointSlice", plural="endpointslices",
         namespaced=True, schema=ENDPOINT_SLICE, status_subresource=False, builtin=True),
    Kind(group="", version="v1", kind="Pod", plural="pods", namespaced=True, schema=POD,
         short_names=("po",), categories=("all",), status_subresource=True,
         extra_subresources=("exec", "log", "portforward"), name_rule="dns1123-subdomain", builtin=True),
    Kind(group="", version="v1", kind="Event", plural="events", namespaced=True, schema=EVENT,
         short_names=("ev",), status_subresource=False, builtin=True),
    Kind(group="apps", version="v1", kind="Deployment", plural="deployments", namespaced=True,
         schema=DEPLOYMENT, short_names=("deploy",), categories=("all",),
         status_subresource=True, extra_subresources=("scale",), builtin=True),
    Kind(group="apps", version="v1", kind="ReplicaSet", plural="replicasets", namespaced=True,
         schema=REPLICASET, short_names=("rs",), categories=("all",),
         status_subresource=True, extra_subresources=("scale",), builtin=True),
    Kind(group="apps", version="v1", kind="DaemonSet", plural="daemonsets", namespaced=True,
         schema=DAEMONSET, short_names=("ds",), categories=("all",), status_subresource=True,
         builtin=True),
    Kind(group="apps", version="v1", kind="StatefulSet", plural="statefulsets", namespaced=True,
         schema=STATEFULSET, short_names=("sts",), categories=("all",),
         status_subresource=True, extra_subresources=("scale",), builtin=True),
    Kind(group="apps", version="v1", kind="ControllerRevision", plural="controllerrevisions",
         namespaced=True, schema=CONTROLLER_REVISION, status_subresource=False, builtin=True),
    Kind(group="batch", version="v1", kind="Job", plural="jobs", namespaced=True, schema=JOB,
         categories=("all",), status_subresource=True, builtin=True),
    Kind(group="batch", version="v1", kind="CronJob", plural="cronjobs", namespaced=True,
         schema=CRONJOB, short_names=("cj",), categories=("all",), status_subresource=True,
         builtin=True),
    Kind(group="networking.k8s.io", version="v1", kind="NetworkPolicy",
         plural="networkpolicies", namespaced=True, schema=NETWORK_POLICY,
         short_names=("netpol",), status_subresource=False, builtin=True,
         not_implemented="NetworkPolicy is not enforced yet: pods share the host's loopback "
                         "network"),
    Kind(group="apiextensions.k8s.io", version="v1", kind="CustomResourceDefinition",
         plural="customresourcedefinitions", namespaced=False, schema=CRD,
         short_names=("crd", "crds"), categories=("api-extensions",),
         status_subresource=True, builtin=True),
]
