"""Decode Kubernetes protobuf request bodies into ordinary JSON-form objects.

kubectl's imperative creates (`kubectl create namespace|secret|configmap|
serviceaccount|deployment|service`, `kubectl run`) send their object as
`application/vnd.kubernetes.protobuf`: the magic `k8s\\x00` and a
runtime.Unknown envelope {typeMeta{apiVersion, kind}, raw, contentEncoding,
contentType} whose raw is the serialized k8s.io/api object. The API server's
request decoding (core/apiserver) calls is_protobuf() on the Content-Type and
decode() on the body, then handles the result exactly like a JSON body.

The wire format is decoded by hand (varint, fixed32/64, length-delimited):
only decoding of a handful of message types is needed, so a dependency on
the protobuf package and generated code is not worth it. The message
descriptors below are data, field number -> Field(json name, type, flags),
taken from kubernetes v1.32 generated.proto files (k8s.io/api core/v1,
apps/v1, batch/v1, rbac/v1, authorization/v1 and authentication/v1; apimachinery meta/v1, runtime, util/intstr, api/resource).

The result matches what the Go JSON encoding of the same object gives:
Go's gogo-protobuf writes every non-pointer field, zero or not, so zero
scalars are dropped (omitempty) unless the field is flagged "k" (a pointer,
written only when set, or a field without omitempty); messages present on
the wire become objects, possibly empty ({} like Go's structs); a zero Time
is omitted. Unknown field numbers are skipped, as protobuf decoders do.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"


class ProtobufError(ValueError):
    """The body is not a well-formed Kubernetes protobuf object skiff can decode."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Field(NamedTuple):
    name: str
    type: str        # a scalar (see _SCALARS), a message name, or "map:<value type>"
    flags: str = ""  # "r" repeated, "k" keep zero values, "i" inline into the parent


F = Field
_SCALARS = {"string", "bytes", "int32", "int64", "bool"}
_VARINTS = {"int32", "int64", "bool"}

# Messages with a custom JSON form (see _special).
_SPECIAL = {"Time", "IntOrString", "Quantity", "FieldsV1"}

_LOR = F("", "LocalObjectReference", "i")  # embedded LocalObjectReference: {"name"}

MESSAGES: dict[str, dict[int, Field]] = {
    # --- apimachinery meta/v1 ---
    "ObjectMeta": {
        1: F("name", "string"), 2: F("generateName", "string"),
        3: F("namespace", "string"), 4: F("selfLink", "string"), 5: F("uid", "string"),
        6: F("resourceVersion", "string"), 7: F("generation", "int64"),
        8: F("creationTimestamp", "Time"), 9: F("deletionTimestamp", "Time"),
        10: F("deletionGracePeriodSeconds", "int64", "k"),
        11: F("labels", "map:string"), 12: F("annotations", "map:string"),
        13: F("ownerReferences", "OwnerReference", "r"), 14: F("finalizers", "string", "r"),
        17: F("managedFields", "ManagedFieldsEntry", "r"),
    },
    "OwnerReference": {
        5: F("apiVersion", "string", "k"), 1: F("kind", "string", "k"),
        3: F("name", "string", "k"), 4: F("uid", "string", "k"),
        6: F("controller", "bool", "k"), 7: F("blockOwnerDeletion", "bool", "k"),
    },
    "ManagedFieldsEntry": {
        1: F("manager", "string"), 2: F("operation", "string"), 3: F("apiVersion", "string"),
        4: F("time", "Time"), 6: F("fieldsType", "string"), 7: F("fieldsV1", "FieldsV1"),
        8: F("subresource", "string"),
    },
    "LabelSelector": {
        1: F("matchLabels", "map:string"),
        2: F("matchExpressions", "LabelSelectorRequirement", "r"),
    },
    "LabelSelectorRequirement": {
        1: F("key", "string", "k"), 2: F("operator", "string", "k"),
        3: F("values", "string", "r"),
    },
    "Condition": {
        1: F("type", "string", "k"), 2: F("status", "string", "k"),
        3: F("observedGeneration", "int64"), 4: F("lastTransitionTime", "Time"),
        5: F("reason", "string", "k"), 6: F("message", "string", "k"),
    },
    # --- core/v1: simple kinds ---
    "Namespace": {1: F("metadata", "ObjectMeta"), 2: F("spec", "NamespaceSpec"),
                  3: F("status", "NamespaceStatus")},
    "NamespaceSpec": {1: F("finalizers", "string", "r")},
    "NamespaceStatus": {1: F("phase", "string"),
                        2: F("conditions", "NamespaceCondition", "r")},
    "NamespaceCondition": {
        1: F("type", "string", "k"), 2: F("status", "string", "k"),
        4: F("lastTransitionTime", "Time"), 5: F("reason", "string"),
        6: F("message", "string"),
    },
    "Secret": {
        1: F("metadata", "ObjectMeta"), 5: F("immutable", "bool", "k"),
        2: F("data", "map:bytes"), 4: F("stringData", "map:string"), 3: F("type", "string"),
    },
    "ConfigMap": {
        1: F("metadata", "ObjectMeta"), 4: F("immutable", "bool", "k"),
        2: F("data", "map:string"), 3: F("binaryData", "map:bytes"),
    },
    "ServiceAccount": {
        1: F("metadata", "ObjectMeta"), 2: F("secrets", "ObjectReference", "r"),
        3: F("imagePullSecrets", "LocalObjectReference", "r"),
        4: F("automountServiceAccountToken", "bool", "k"),
    },
    "ObjectReference": {
        1: F("kind", "string"), 2: F("namespace", "string"), 3: F("name", "string"),
        4: F("uid", "string"), 5: F("apiVersion", "string"),
        6: F("resourceVersion", "string"), 7: F("fieldPath", "string"),
    },
    "LocalObjectReference": {1: F("name", "string")},
    # --- core/v1 Service ---
    "Service": {1: F("metadata", "ObjectMeta"), 2: F("spec", "ServiceSpec"),
                3: F("status", "ServiceStatus")},
    "ServiceSpec": {
        1: F("ports", "ServicePort", "r"), 2: F("selector", "map:string"),
        3: F("clusterIP", "string"), 18: F("clusterIPs", "string", "r"),
        4: F("type", "string"), 5: F("externalIPs", "string", "r"),
        7: F("sessionAffinity", "string"), 8: F("loadBalancerIP", "string"),
        9: F("loadBalancerSourceRanges", "string", "r"), 10: F("externalName", "string"),
        11: F("externalTrafficPolicy", "string"), 12: F("healthCheckNodePort", "int32"),
        13: F("publishNotReadyAddresses", "bool"),
        14: F("sessionAffinityConfig", "SessionAffinityConfig"),
        19: F("ipFamilies", "string", "r"), 17: F("ipFamilyPolicy", "string", "k"),
        20: F("allocateLoadBalancerNodePorts", "bool", "k"),
        21: F("loadBalancerClass", "string", "k"),
        22: F("internalTrafficPolicy", "string", "k"),
        23: F("trafficDistribution", "string", "k"),
    },
    "ServicePort": {
        1: F("name", "string"), 2: F("protocol", "string"),
        6: F("appProtocol", "string", "k"), 3: F("port", "int32", "k"),
        4: F("targetPort", "IntOrString"), 5: F("nodePort", "int32"),
    },
    "SessionAffinityConfig": {1: F("clientIP", "ClientIPConfig")},
    "ClientIPConfig": {1: F("timeoutSeconds", "int32", "k")},
    "ServiceStatus": {1: F("loadBalancer", "LoadBalancerStatus"),
                      2: F("conditions", "Condition", "r")},
    "LoadBalancerStatus": {1: F("ingress", "LoadBalancerIngress", "r")},
    "LoadBalancerIngress": {
        1: F("ip", "string"), 2: F("hostname", "string"), 3: F("ipMode", "string", "k"),
        4: F("ports", "PortStatus", "r"),
    },
    "PortStatus": {1: F("port", "int32", "k"), 2: F("protocol", "string", "k"),
                   3: F("error", "string", "k")},
    # --- core/v1 Pod ---
    "Pod": {1: F("metadata", "ObjectMeta"), 2: F("spec", "PodSpec"),
            3: F("status", "PodStatus")},
    "PodTemplateSpec": {1: F("metadata", "ObjectMeta"), 2: F("spec", "PodSpec")},
    "PodSpec": {
        1: F("volumes", "Volume", "r"), 20: F("initContainers", "Container", "r"),
        2: F("containers", "Container", "r"),
        34: F("ephemeralContainers", "EphemeralContainer", "r"),
        3: F("restartPolicy", "string"),
        4: F("terminationGracePeriodSeconds", "int64", "k"),
        5: F("activeDeadlineSeconds", "int64", "k"), 6: F("dnsPolicy", "string"),
        7: F("nodeSelector", "map:string"), 8: F("serviceAccountName", "string"),
        9: F("serviceAccount", "string"),
        21: F("automountServiceAccountToken", "bool", "k"),
        10: F("nodeName", "string"), 11: F("hostNetwork", "bool"), 12: F("hostPID", "bool"),
        13: F("hostIPC", "bool"), 27: F("shareProcessNamespace", "bool", "k"),
        14: F("securityContext", "PodSecurityContext"),
        15: F("imagePullSecrets", "LocalObjectReference", "r"),
        16: F("hostname", "string"), 17: F("subdomain", "string"),
        18: F("affinity", "Affinity"), 19: F("schedulerName", "string"),
        22: F("tolerations", "Toleration", "r"), 23: F("hostAliases", "HostAlias", "r"),
        24: F("priorityClassName", "string"), 25: F("priority", "int32", "k"),
        26: F("dnsConfig", "PodDNSConfig"), 28: F("readinessGates", "PodReadinessGate", "r"),
        29: F("runtimeClassName", "string", "k"), 30: F("enableServiceLinks", "bool", "k"),
        31: F("preemptionPolicy", "string", "k"), 32: F("overhead", "map:Quantity"),
        33: F("topologySpreadConstraints", "TopologySpreadConstraint", "r"),
        35: F("setHostnameAsFQDN", "bool", "k"), 36: F("os", "PodOS"),
        37: F("hostUsers", "bool", "k"), 38: F("schedulingGates", "PodSchedulingGate", "r"),
        39: F("resourceClaims", "PodResourceClaim", "r"),
        40: F("resources", "ResourceRequirements"), 41: F("hostnameOverride", "string", "k"),
    },
    "PodStatus": {
        1: F("phase", "string"), 2: F("conditions", "PodCondition", "r"),
        3: F("message", "string"), 4: F("reason", "string"),
        11: F("nominatedNodeName", "string"), 5: F("hostIP", "string"),
        16: F("hostIPs", "HostIP", "r"), 6: F("podIP", "string"),
        12: F("podIPs", "PodIP", "r"), 7: F("startTime", "Time"), 9: F("qosClass", "string"),
        17: F("observedGeneration", "int64"),
    },
    "PodCondition": {
        1: F("type", "string", "k"), 7: F("observedGeneration", "int64"),
        2: F("status", "string", "k"), 3: F("lastProbeTime", "Time"),
        4: F("lastTransitionTime", "Time"), 5: F("reason", "string"),
        6: F("message", "string"),
    },
    "PodIP": {1: F("ip", "string", "k")},
    "HostIP": {1: F("ip", "string", "k")},
    "PodOS": {1: F("name", "string", "k")},
    "PodReadinessGate": {1: F("conditionType", "string", "k")},
    "PodSchedulingGate": {1: F("name", "string", "k")},
    "PodResourceClaim": {1: F("name", "string", "k"), 3: F("resourceClaimName", "string", "k"),
                         4: F("resourceClaimTemplateName", "string", "k")},
    "HostAlias": {1: F("ip", "string", "k"), 2: F("hostnames", "string", "r")},
    "PodDNSConfig": {1: F("nameservers", "string", "r"), 2: F("searches", "string", "r"),
                     3: F("options", "PodDNSConfigOption", "r")},
    "PodDNSConfigOption": {1: F("name", "string"), 2: F("value", "string", "k")},
    "Toleration": {
        1: F("key", "string"), 2: F("operator", "string"), 3: F("value", "string"),
        4: F("effect", "string"), 5: F("tolerationSeconds", "int64", "k"),
    },
    "TopologySpreadConstraint": {
        1: F("maxSkew", "int32", "k"), 2: F("topologyKey", "string", "k"),
        3: F("whenUnsatisfiable", "string", "k"), 4: F("labelSelector", "LabelSelector"),
        5: F("minDomains", "int32", "k"), 6: F("nodeAffinityPolicy", "string", "k"),
        7: F("nodeTaintsPolicy", "string", "k"), 8: F("matchLabelKeys", "string", "r"),
    },
    "Affinity": {1: F("nodeAffinity", "NodeAffinity"), 2: F("podAffinity", "PodAffinity"),
                 3: F("podAntiAffinity", "PodAffinity")},
    "NodeAffinity": {
        1: F("requiredDuringSchedulingIgnoredDuringExecution", "NodeSelector"),
        2: F("preferredDuringSchedulingIgnoredDuringExecution", "PreferredSchedulingTerm", "r"),
    },
    "NodeSelector": {1: F("nodeSelectorTerms", "NodeSelectorTerm", "r")},
    "NodeSelectorTerm": {1: F("matchExpressions", "NodeSelectorRequirement", "r"),
                         2: F("matchFields", "NodeSelectorRequirement", "r")},
    "NodeSelectorRequirement": {1: F("key", "string", "k"), 2: F("operator", "string", "k"),
                                3: F("values", "string", "r")},
    "PreferredSchedulingTerm": {1: F("weight", "int32", "k"),
                                2: F("preference", "NodeSelectorTerm")},
    "PodAffinity": {  # also PodAntiAffinity: same shape
        1: F("requiredDuringSchedulingIgnoredDuringExecution", "PodAffinityTerm", "r"),
        2: F("preferredDuringSchedulingIgnoredDuringExecution", "WeightedPodAffinityTerm", "r"),
    },
    "PodAffinityTerm": {
        1: F("labelSelector", "LabelSelector"), 2: F("namespaces", "string", "r"),
        3: F("topologyKey", "string", "k"), 4: F("namespaceSelector", "LabelSelector"),
        5: F("matchLabelKeys", "string", "r"), 6: F("mismatchLabelKeys", "string", "r"),
    },
    "WeightedPodAffinityTerm": {1: F("weight", "int32", "k"),
                                2: F("podAffinityTerm", "PodAffinityTerm")},
    "PodSecurityContext": {
        1: F("seLinuxOptions", "SELinuxOptions"),
        8: F("windowsOptions", "WindowsSecurityContextOptions"),
        2: F("runAsUser", "int64", "k"), 6: F("runAsGroup", "int64", "k"),
        3: F("runAsNonRoot", "bool", "k"), 4: F("supplementalGroups", "int64", "r"),
        12: F("supplementalGroupsPolicy", "string", "k"), 5: F("fsGroup", "int64", "k"),
        7: F("sysctls", "Sysctl", "r"), 9: F("fsGroupChangePolicy", "string", "k"),
        10: F("seccompProfile", "SeccompProfile"),
        11: F("appArmorProfile", "AppArmorProfile"),
        13: F("seLinuxChangePolicy", "string", "k"),
    },
    "SecurityContext": {
        1: F("capabilities", "Capabilities"), 2: F("privileged", "bool", "k"),
        3: F("seLinuxOptions", "SELinuxOptions"),
        10: F("windowsOptions", "WindowsSecurityContextOptions"),
        4: F("runAsUser", "int64", "k"), 8: F("runAsGroup", "int64", "k"),
        5: F("runAsNonRoot", "bool", "k"), 6: F("readOnlyRootFilesystem", "bool", "k"),
        7: F("allowPrivilegeEscalation", "bool", "k"), 9: F("procMount", "string", "k"),
        11: F("seccompProfile", "SeccompProfile"),
        12: F("appArmorProfile", "AppArmorProfile"),
    },
    "Capabilities": {1: F("add", "string", "r"), 2: F("drop", "string", "r")},
    "SELinuxOptions": {1: F("user", "string"), 2: F("role", "string"), 3: F("type", "string"),
                       4: F("level", "string")},
    "WindowsSecurityContextOptions": {
        1: F("gmsaCredentialSpecName", "string", "k"), 2: F("gmsaCredentialSpec", "string", "k"),
        3: F("runAsUserName", "string", "k"), 4: F("hostProcess", "bool", "k"),
    },
    "SeccompProfile": {1: F("type", "string", "k"), 2: F("localhostProfile", "string", "k")},
    "AppArmorProfile": {1: F("type", "string", "k"), 2: F("localhostProfile", "string", "k")},
    "Sysctl": {1: F("name", "string", "k"), 2: F("value", "string", "k")},
    # --- core/v1 Container ---
    "Container": {
        1: F("name", "string", "k"), 2: F("image", "string"), 3: F("command", "string", "r"),
        4: F("args", "string", "r"), 5: F("workingDir", "string"),
        6: F("ports", "ContainerPort", "r"), 19: F("envFrom", "EnvFromSource", "r"),
        7: F("env", "EnvVar", "r"), 8: F("resources", "ResourceRequirements"),
        23: F("resizePolicy", "ContainerResizePolicy", "r"),
        24: F("restartPolicy", "string", "k"), 9: F("volumeMounts", "VolumeMount", "r"),
        21: F("volumeDevices", "VolumeDevice", "r"), 10: F("livenessProbe", "Probe"),
        11: F("readinessProbe", "Probe"), 22: F("startupProbe", "Probe"),
        12: F("lifecycle", "Lifecycle"), 13: F("terminationMessagePath", "string"),
        20: F("terminationMessagePolicy", "string"), 14: F("imagePullPolicy", "string"),
        15: F("securityContext", "SecurityContext"), 16: F("stdin", "bool"),
        17: F("stdinOnce", "bool"), 18: F("tty", "bool"),
    },
    # EphemeralContainerCommon carries Container's field numbers.
    "EphemeralContainer": {1: F("", "Container", "i"),
                           2: F("targetContainerName", "string")},
    "ContainerPort": {
        1: F("name", "string"), 2: F("hostPort", "int32"), 3: F("containerPort", "int32", "k"),
        4: F("protocol", "string"), 5: F("hostIP", "string"),
    },
    "ContainerResizePolicy": {1: F("resourceName", "string", "k"),
                              2: F("restartPolicy", "string", "k")},
    "EnvVar": {1: F("name", "string", "k"), 2: F("value", "string"),
               3: F("valueFrom", "EnvVarSource")},
    "EnvVarSource": {
        1: F("fieldRef", "ObjectFieldSelector"),
        2: F("resourceFieldRef", "ResourceFieldSelector"),
        3: F("configMapKeyRef", "ConfigMapKeySelector"),
        4: F("secretKeyRef", "SecretKeySelector"),
    },
    "ObjectFieldSelector": {1: F("apiVersion", "string"), 2: F("fieldPath", "string", "k")},
    "ResourceFieldSelector": {1: F("containerName", "string"), 2: F("resource", "string", "k"),
                              3: F("divisor", "Quantity")},
    "ConfigMapKeySelector": {1: _LOR, 2: F("key", "string", "k"),
                             3: F("optional", "bool", "k")},
    "SecretKeySelector": {1: _LOR, 2: F("key", "string", "k"),
                          3: F("optional", "bool", "k")},
    "EnvFromSource": {1: F("prefix", "string"), 2: F("configMapRef", "ConfigMapEnvSource"),
                      3: F("secretRef", "SecretEnvSource")},
    "ConfigMapEnvSource": {1: _LOR, 2: F("optional", "bool", "k")},
    "SecretEnvSource": {1: _LOR, 2: F("optional", "bool", "k")},
    "ResourceRequirements": {1: F("limits", "map:Quantity"), 2: F("requests", "map:Quantity"),
                             3: F("claims", "ResourceClaim", "r")},
    "ResourceClaim": {1: F("name", "string", "k"), 2: F("request", "string")},
    "VolumeMount": {
        1: F("name", "string", "k"), 2: F("readOnly", "bool"),
        7: F("recursiveReadOnly", "string", "k"), 3: F("mountPath", "string", "k"),
        4: F("subPath", "string"), 5: F("mountPropagation", "string", "k"),
        6: F("subPathExpr", "string"),
    },
    "VolumeDevice": {1: F("name", "string", "k"), 2: F("devicePath", "string", "k")},
    "Probe": {
        1: F("", "ProbeHandler", "i"), 2: F("initialDelaySeconds", "int32"),
        3: F("timeoutSeconds", "int32"), 4: F("periodSeconds", "int32"),
        5: F("successThreshold", "int32"), 6: F("failureThreshold", "int32"),
        7: F("terminationGracePeriodSeconds", "int64", "k"),
    },
    "ProbeHandler": {1: F("exec", "ExecAction"), 2: F("httpGet", "HTTPGetAction"),
                     3: F("tcpSocket", "TCPSocketAction"), 4: F("grpc", "GRPCAction")},
    "Lifecycle": {1: F("postStart", "LifecycleHandler"), 2: F("preStop", "LifecycleHandler"),
                  3: F("stopSignal", "string", "k")},
    "LifecycleHandler": {1: F("exec", "ExecAction"), 2: F("httpGet", "HTTPGetAction"),
                         3: F("tcpSocket", "TCPSocketAction"), 4: F("sleep", "SleepAction")},
    "ExecAction": {1: F("command", "string", "r")},
    "HTTPGetAction": {
        1: F("path", "string"), 2: F("port", "IntOrString"), 3: F("host", "string"),
        4: F("scheme", "string"), 5: F("httpHeaders", "HTTPHeader", "r"),
    },
    "HTTPHeader": {1: F("name", "string", "k"), 2: F("value", "string", "k")},
    "TCPSocketAction": {1: F("port", "IntOrString"), 2: F("host", "string")},
    "GRPCAction": {1: F("port", "int32", "k"), 2: F("service", "string", "k")},
    "SleepAction": {1: F("seconds", "int64", "k")},
    # --- core/v1 volumes (the common sources) ---
    "Volume": {1: F("name", "string", "k"), 2: F("", "VolumeSource", "i")},
    "VolumeSource": {
        1: F("hostPath", "HostPathVolumeSource"), 2: F("emptyDir", "EmptyDirVolumeSource"),
        6: F("secret", "SecretVolumeSource"), 7: F("nfs", "NFSVolumeSource"),
        10: F("persistentVolumeClaim", "PersistentVolumeClaimVolumeSource"),
        16: F("downwardAPI", "DownwardAPIVolumeSource"),
        19: F("configMap", "ConfigMapVolumeSource"),
        26: F("projected", "ProjectedVolumeSource"), 28: F("csi", "CSIVolumeSource"),
    },
    "HostPathVolumeSource": {1: F("path", "string", "k"), 2: F("type", "string", "k")},
    "EmptyDirVolumeSource": {1: F("medium", "string"), 2: F("sizeLimit", "Quantity")},
    "SecretVolumeSource": {
        1: F("secretName", "string"), 2: F("items", "KeyToPath", "r"),
        3: F("defaultMode", "int32", "k"), 4: F("optional", "bool", "k"),
    },
    "ConfigMapVolumeSource": {
        1: _LOR, 2: F("items", "KeyToPath", "r"), 3: F("defaultMode", "int32", "k"),
        4: F("optional", "bool", "k"),
    },
    "KeyToPath": {1: F("key", "string", "k"), 2: F("path", "string", "k"),
                  3: F("mode", "int32", "k")},
    "NFSVolumeSource": {1: F("server", "string", "k"), 2: F("path", "string", "k"),
                        3: F("readOnly", "bool")},
    "PersistentVolumeClaimVolumeSource": {1: F("claimName", "string", "k"),
                                          2: F("readOnly", "bool")},
    "DownwardAPIVolumeSource": {1: F("items", "DownwardAPIVolumeFile", "r"),
                                2: F("defaultMode", "int32", "k")},
    "DownwardAPIVolumeFile": {
        1: F("path", "string", "k"), 2: F("fieldRef", "ObjectFieldSelector"),
        3: F("resourceFieldRef", "ResourceFieldSelector"), 4: F("mode", "int32", "k"),
    },
    "ProjectedVolumeSource": {1: F("sources", "VolumeProjection", "r"),
                              2: F("defaultMode", "int32", "k")},
    "VolumeProjection": {
        1: F("secret", "SecretProjection"), 2: F("downwardAPI", "DownwardAPIProjection"),
        3: F("configMap", "ConfigMapProjection"),
        4: F("serviceAccountToken", "ServiceAccountTokenProjection"),
    },
    "SecretProjection": {1: _LOR, 2: F("items", "KeyToPath", "r"),
                         4: F("optional", "bool", "k")},
    "ConfigMapProjection": {1: _LOR, 2: F("items", "KeyToPath", "r"),
                            4: F("optional", "bool", "k")},
    "DownwardAPIProjection": {1: F("items", "DownwardAPIVolumeFile", "r")},
    "ServiceAccountTokenProjection": {1: F("audience", "string"),
                                      2: F("expirationSeconds", "int64", "k"),
                                      3: F("path", "string", "k")},
    "CSIVolumeSource": {
        1: F("driver", "string", "k"), 2: F("readOnly", "bool", "k"),
        3: F("fsType", "string", "k"), 4: F("volumeAttributes", "map:string"),
        5: F("nodePublishSecretRef", "LocalObjectReference"),
    },
    # --- apps/v1 Deployment ---
    "Deployment": {1: F("metadata", "ObjectMeta"), 2: F("spec", "DeploymentSpec"),
                   3: F("status", "DeploymentStatus")},
    "DeploymentSpec": {
        1: F("replicas", "int32", "k"), 2: F("selector", "LabelSelector"),
        3: F("template", "PodTemplateSpec"), 4: F("strategy", "DeploymentStrategy"),
        5: F("minReadySeconds", "int32"), 6: F("revisionHistoryLimit", "int32", "k"),
        7: F("paused", "bool"), 9: F("progressDeadlineSeconds", "int32", "k"),
    },
    "DeploymentStrategy": {1: F("type", "string"),
                           2: F("rollingUpdate", "RollingUpdateDeployment")},
    "RollingUpdateDeployment": {1: F("maxUnavailable", "IntOrString"),
                                2: F("maxSurge", "IntOrString")},
    "DeploymentStatus": {
        1: F("observedGeneration", "int64"), 2: F("replicas", "int32"),
        3: F("updatedReplicas", "int32"), 7: F("readyReplicas", "int32"),
        4: F("availableReplicas", "int32"), 5: F("unavailableReplicas", "int32"),
        9: F("terminatingReplicas", "int32", "k"),
        6: F("conditions", "DeploymentCondition", "r"), 8: F("collisionCount", "int32", "k"),
    },
    "DeploymentCondition": {
        1: F("type", "string", "k"), 2: F("status", "string", "k"),
        6: F("lastUpdateTime", "Time"), 7: F("lastTransitionTime", "Time"),
        4: F("reason", "string"), 5: F("message", "string"),
    },
    # --- batch/v1 Job and CronJob (`kubectl create job|cronjob`, `create job --from`) ---
    "Job": {1: F("metadata", "ObjectMeta"), 2: F("spec", "JobSpec")},
    "JobSpec": {
        1: F("parallelism", "int32", "k"), 2: F("completions", "int32", "k"),
        3: F("activeDeadlineSeconds", "int64", "k"), 7: F("backoffLimit", "int32", "k"),
        12: F("backoffLimitPerIndex", "int32", "k"), 13: F("maxFailedIndexes", "int32", "k"),
        4: F("selector", "LabelSelector"), 5: F("manualSelector", "bool", "k"),
        6: F("template", "PodTemplateSpec"), 8: F("ttlSecondsAfterFinished", "int32", "k"),
        9: F("completionMode", "string", "k"), 10: F("suspend", "bool", "k"),
        14: F("podReplacementPolicy", "string", "k"), 15: F("managedBy", "string", "k"),
    },
    "JobTemplateSpec": {1: F("metadata", "ObjectMeta"), 2: F("spec", "JobSpec")},
    "CronJob": {1: F("metadata", "ObjectMeta"), 2: F("spec", "CronJobSpec")},
    "CronJobSpec": {
        1: F("schedule", "string"), 8: F("timeZone", "string", "k"),
        2: F("startingDeadlineSeconds", "int64", "k"), 3: F("concurrencyPolicy", "string"),
        4: F("suspend", "bool", "k"), 5: F("jobTemplate", "JobTemplateSpec"),
        6: F("successfulJobsHistoryLimit", "int32", "k"),
        7: F("failedJobsHistoryLimit", "int32", "k"),
    },
    # --- authorization.k8s.io/v1 and authentication.k8s.io/v1 (`kubectl auth can-i`,
    # `kubectl create token`): create-only, answered by core/auth/reviews.py ---
    "SelfSubjectAccessReview": {1: F("metadata", "ObjectMeta"),
                                2: F("spec", "SelfSubjectAccessReviewSpec")},
    "SelfSubjectAccessReviewSpec": {1: F("resourceAttributes", "ResourceAttributes"),
                                    2: F("nonResourceAttributes", "NonResourceAttributes")},
    "ResourceAttributes": {
        1: F("namespace", "string"), 2: F("verb", "string"), 3: F("group", "string"),
        4: F("version", "string"), 5: F("resource", "string"), 6: F("subresource", "string"),
        7: F("name", "string"),
    },
    "NonResourceAttributes": {1: F("path", "string"), 2: F("verb", "string")},
    "SubjectAccessReview": {1: F("metadata", "ObjectMeta"), 2: F("spec", "SubjectAccessReviewSpec")},
    "SubjectAccessReviewSpec": {
        1: F("resourceAttributes", "ResourceAttributes"),
        2: F("nonResourceAttributes", "NonResourceAttributes"), 3: F("user", "string"),
        4: F("groups", "string", "r"), 6: F("uid", "string"),
    },
    "SelfSubjectRulesReview": {1: F("metadata", "ObjectMeta"),
                               2: F("spec", "SelfSubjectRulesReviewSpec")},
    "SelfSubjectRulesReviewSpec": {1: F("namespace", "string")},
    "SelfSubjectReview": {1: F("metadata", "ObjectMeta")},
    "TokenRequest": {1: F("metadata", "ObjectMeta"), 2: F("spec", "TokenRequestSpec")},
    "TokenRequestSpec": {1: F("audiences", "string", "r"), 4: F("expirationSeconds", "int64", "k"),
                         3: F("boundObjectRef", "BoundObjectReference")},
    "BoundObjectReference": {1: F("kind", "string"), 2: F("apiVersion", "string"),
                             3: F("name", "string"), 4: F("uid", "string")},
    # --- rbac.authorization.k8s.io/v1 (`kubectl create role|clusterrole|rolebinding|...`) ---
    "Role": {1: F("metadata", "ObjectMeta"), 2: F("rules", "PolicyRule", "r")},
    "ClusterRole": {1: F("metadata", "ObjectMeta"), 2: F("rules", "PolicyRule", "r"),
                    3: F("aggregationRule", "AggregationRule")},
    "PolicyRule": {1: F("verbs", "string", "r"), 2: F("apiGroups", "string", "r"),
                   3: F("resources", "string", "r"), 4: F("resourceNames", "string", "r"),
                   5: F("nonResourceURLs", "string", "r")},
    "AggregationRule": {1: F("clusterRoleSelectors", "LabelSelector", "r")},
    "RoleBinding": {1: F("metadata", "ObjectMeta"), 2: F("subjects", "Subject", "r"),
                    3: F("roleRef", "RoleRef")},
    "Subject": {1: F("kind", "string", "k"), 2: F("apiGroup", "string"),
                3: F("name", "string", "k"), 4: F("namespace", "string")},
    "RoleRef": {1: F("apiGroup", "string", "k"), 2: F("kind", "string", "k"),
                3: F("name", "string", "k")},
}

# (apiVersion, kind) -> top-level message; anything else is refused.
KINDS: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "Namespace",
    ("v1", "Secret"): "Secret",
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "Service"): "Service",
    ("v1", "Pod"): "Pod",
    ("apps/v1", "Deployment"): "Deployment",
    ("batch/v1", "Job"): "Job",
    ("batch/v1", "CronJob"): "CronJob",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): "SelfSubjectRulesReview",
    ("authorization.k8s.io/v1", "SubjectAccessReview"): "SubjectAccessReview",
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"): "SubjectAccessReview",
    ("authentication.k8s.io/v1", "TokenRequest"): "TokenRequest",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "SelfSubjectReview",
    ("rbac.authorization.k8s.io/v1", "Role"): "Role",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "ClusterRole",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "RoleBinding",
}


def is_protobuf(content_type: str) -> bool:
    """True for application/vnd.kubernetes.protobuf (parameters ignored)."""
    return content_type.split(";", 1)[0].strip().lower() == CONTENT_TYPE


def decode(body: bytes) -> dict[str, Any]:
    """Decode a `k8s\\x00` + runtime.Unknown body into the JSON-form object."""
    if not body.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf body: missing the k8s\\x00 prefix")
    api_version = kind = encoding = ""
    raw = b""
    for number, wire, value in _fields(body[len(MAGIC):]):
        if number == 1:
            type_meta = _bytes(wire, value, "Unknown.typeMeta")
            for num, w, v in _fields(type_meta):
                if num == 1:
                    api_version = _string(_bytes(w, v, "TypeMeta.apiVersion"))
                elif num == 2:
                    kind = _string(_bytes(w, v, "TypeMeta.kind"))
        elif number == 2:
            raw = _bytes(wire, value, "Unknown.raw")
        elif number == 3:
            encoding = _string(_bytes(wire, value, "Unknown.contentEncoding"))
    if encoding:
        raise ProtobufError(f"unsupported protobuf contentEncoding {encoding!r}")
    message = KINDS.get((api_version, kind))
    if message is None:
        raise ProtobufError(
            f"cannot decode kind {kind!r} (apiVersion {api_version!r}) from protobuf")
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    obj.update(_message(raw, message))
    return obj


# --- wire format ---------------------------------------------------------------

def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & 0xFFFF_FFFF_FFFF_FFFF, pos
        shift += 7
        if shift >= 70:
            raise ProtobufError("varint longer than 10 bytes")


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value): int for varint/fixed, bytes otherwise."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtobufError("invalid field number 0")
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError(f"truncated field {number}: {length} bytes declared, "
                                    f"{len(data) - pos} left")
            value, pos = data[pos:pos + length], pos + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(data):
                raise ProtobufError(f"truncated fixed-width field {number}")
            value = int.from_bytes(data[pos:pos + size], "little")
            pos += size
        else:
            raise ProtobufError(f"unsupported wire type {wire} for field {number}")
        yield number, wire, value


def _bytes(wire: int, value: int | bytes, where: str) -> bytes:
    if wire != 2 or not isinstance(value, bytes):
        raise ProtobufError(f"{where}: expected a length-delimited field, got wire type {wire}")
    return value


def _string(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")  # as Go's JSON encoder does


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


# --- messages --------------------------------------------------------------------

def _message(data: bytes, name: str) -> dict[str, Any]:
    desc = MESSAGES[name]
    out: dict[str, Any] = {}
    for number, wire, value in _fields(data):
        field = desc.get(number)
        if field is None:
            continue  # a field skiff does not model: skipped, as protobuf decoders do
        where = f"{name}.{field.name or field.type}"
        if field.type.startswith("map:"):
            key, item = _map_entry(_bytes(wire, value, where), field.type[4:], where)
            out.setdefault(field.name, {})[key] = item
        elif "r" in field.flags:
            items = out.setdefault(field.name, [])
            if field.type in _VARINTS and wire == 2 and isinstance(value, bytes):
                pos = 0  # packed repeated scalars
                while pos < len(value):
                    item, pos = _varint(value, pos)
                    items.append(_scalar(field.type, 0, item, where))
            else:
                items.append(_value(field.type, wire, value, where))
        else:
            result = _value(field.type, wire, value, where)
            if "i" in field.flags:
                out.update(result)
            elif result is None or (field.type in _SCALARS and "k" not in field.flags
                                    and not result):
                out.pop(field.name, None)  # zero value: omitempty
            else:
                out[field.name] = result
    return out


def _value(type_: str, wire: int, value: int | bytes, where: str) -> Any:
    if type_ in _SCALARS:
        return _scalar(type_, wire, value, where)
    data = _bytes(wire, value, where)
    if type_ in _SPECIAL:
        return _special(type_, data)
    return _message(data, type_)


def _scalar(type_: str, wire: int, value: int | bytes, where: str) -> Any:
    if type_ in _VARINTS:
        if wire != 0 or not isinstance(value, int):
            raise ProtobufError(f"{where}: expected a varint, got wire type {wire}")
        return value != 0 if type_ == "bool" else _signed(value)
    data = _bytes(wire, value, where)
    return _string(data) if type_ == "string" else base64.b64encode(data).decode("ascii")


def _map_entry(data: bytes, value_type: str, where: str) -> tuple[str, Any]:
    key, item = "", None
    for number, wire, value in _fields(data):
        if number == 1:
            key = _string(_bytes(wire, value, where + " key"))
        elif number == 2:
            item = _value(value_type, wire, value, where + f"[{key!r}]")
    if item is None:
        item = "0" if value_type == "Quantity" else ""
    return key, item


def _special(type_: str, data: bytes) -> Any:
    """Messages whose JSON form is not an object (Time, IntOrString, Quantity...)."""
    fields: dict[int, int | bytes] = {number: value for number, _, value in _fields(data)}
    if type_ == "Time":  # {seconds, nanos} -> RFC 3339, seconds precision, UTC
        seconds, nanos = fields.get(1, 0), fields.get(2, 0)
        if not isinstance(seconds, int) or not isinstance(nanos, int):
            raise ProtobufError("Time: seconds and nanos must be varints")
        seconds = _signed(seconds)
        if seconds == 0 and nanos == 0:
            return None  # the zero time: omitted
        try:
            return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OverflowError, OSError, ValueError) as exc:
            raise ProtobufError(f"Time: seconds {seconds} out of range") from exc
    if type_ == "IntOrString":
        if fields.get(1, 0) == 1:
            str_val = fields.get(3, b"")
            return _string(str_val) if isinstance(str_val, bytes) else ""
        int_val = fields.get(2, 0)
        return _signed(int_val) if isinstance(int_val, int) else 0
    raw = fields.get(1, b"")
    if not isinstance(raw, bytes):
        raise ProtobufError(f"{type_}: expected a length-delimited field 1")
    if type_ == "Quantity":
        return _string(raw) or "0"
    try:  # FieldsV1: the raw JSON of the managed fields
        return json.loads(raw) if raw else {}
    except ValueError as exc:
        raise ProtobufError(f"FieldsV1: not JSON: {exc}") from exc


__all__ = ["CONTENT_TYPE", "KINDS", "MAGIC", "MESSAGES", "Field", "ProtobufError",
           "decode", "is_protobuf"]
