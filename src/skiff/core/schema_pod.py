"""Pod-spec subsets for the custom kinds that embed containers.

Knative's RevisionSpec (Service, Configuration, Revision templates) and
Tekton's steps (Task, Pipeline, PipelineRun, TaskRun) both carry pieces of a
Kubernetes PodSpec. Rather than write those fields again, this module cuts
them out of the built-in Pod schema (core/builtin_kinds.py: CONTAINER,
POD_SPEC) with pick(), and adds only what differs: Knative's narrower
container (no lifecycle hooks, no stdin/tty, probes whose port may be left
out because the queue-proxy fills it in) and its own revision fields
(containerConcurrency and the three timeouts).

Neighbours: builtin_kinds.py (the full Pod/Container schemas cut from here),
serving/crds.py (Knative kinds built on REVISION_SPEC), pipelines/crds.py
(Tekton steps built from CONTAINER_FIELDS), schema.py (the DSL). Pure data.
"""

from __future__ import annotations

import copy

from skiff.core.builtin_kinds import CONTAINER, POD_SPEC, POD_TEMPLATE_SPEC
from skiff.core.schema import (
    DATE_TIME,
    INT,
    STR,
    STR_LIST,
    STR_MAP,
    Schema,
    arr,
    obj,
)

__all__ = [
    "CONTAINER", "CONTAINER_FIELDS", "ENV_FROM_SOURCE", "ENV_VAR", "KNATIVE_CONTAINER",
    "KNATIVE_PROBE", "POD_SPEC", "POD_TEMPLATE_SPEC", "PROBE", "RESOURCES", "REVISION_SPEC",
    "SECURITY_CONTEXT", "TEMPLATE_METADATA", "TOLERATION", "VOLUME", "VOLUME_MOUNT", "int_range",
    "pick",
]


def pick(s: Schema, *names: str, required: tuple[str, ...] | None = None) -> Schema:
    """The object schema `s` narrowed to the properties `names` (each must exist in `s`).

    `required` replaces the required list; by default the required names that
    survive the cut are kept.
    """
    props: dict[str, Schema] = s["properties"]
    missing = [n for n in names if n not in props]
    if missing:
        raise KeyError(f"schema has no properties {missing}")
    keep = required if required is not None else tuple(
        r for r in s.get("required", []) if r in names)
    return obj({n: props[n] for n in names}, required=keep)


def int_range(minimum: int | None = None, maximum: int | None = None) -> Schema:
    """An integer with optional bounds."""
    s: Schema = dict(INT)
    if minimum is not None:
        s["minimum"] = minimum
    if maximum is not None:
        s["maximum"] = maximum
    return s


def _optional(s: Schema, *names: str) -> Schema:
    """A copy of `s` where `names` are no longer required."""
    out = copy.deepcopy(s)
    req = [r for r in out.get("required", []) if r not in names]
    if req:
        out["required"] = req
    else:
        out.pop("required", None)
    return out


CONTAINER_FIELDS: dict[str, Schema] = CONTAINER["properties"]
_POD_FIELDS: dict[str, Schema] = POD_SPEC["properties"]

ENV_VAR: Schema = CONTAINER_FIELDS["env"]["items"]
ENV_FROM_SOURCE: Schema = CONTAINER_FIELDS["envFrom"]["items"]
VOLUME_MOUNT: Schema = CONTAINER_FIELDS["volumeMounts"]["items"]
RESOURCES: Schema = CONTAINER_FIELDS["resources"]
SECURITY_CONTEXT: Schema = CONTAINER_FIELDS["securityContext"]
PROBE: Schema = CONTAINER_FIELDS["readinessProbe"]
VOLUME: Schema = _POD_FIELDS["volumes"]["items"]
TOLERATION: Schema = _POD_FIELDS["tolerations"]["items"]

# --- Knative ---------------------------------------------------------------------

# Knative probes may leave the port out: the queue-proxy probes the user
# container on the port it serves (knative.dev/serving pkg/apis/serving/k8s_validation.go).
KNATIVE_PROBE: Schema = copy.deepcopy(PROBE)
for _action in ("httpGet", "tcpSocket", "grpc"):
    KNATIVE_PROBE["properties"][_action] = _optional(PROBE["properties"][_action], "port")

# The container fields a Revision accepts (the upstream CRD's container schema);
# name is defaulted (user-container), image is the one field Knative insists on.
KNATIVE_CONTAINER: Schema = obj({
    **pick(CONTAINER, "name", "image", "command", "args", "workingDir", "env", "envFrom",
           "resources", "volumeMounts", "imagePullPolicy", "securityContext",
           "terminationMessagePath", "terminationMessagePolicy")["properties"],
    # Only name, containerPort and protocol are allowed on a serving container's port.
    "ports": arr(pick(CONTAINER_FIELDS["ports"]["items"], "name", "containerPort", "protocol",
                      required=())),
    "readinessProbe": KNATIVE_PROBE,
    "livenessProbe": KNATIVE_PROBE,
    "startupProbe": KNATIVE_PROBE,
}, required=("image",))

# The PodSpec fields a RevisionSpec inlines (most behind Knative feature flags
# upstream; skiff accepts them all and lets the reconciler decide).
REVISION_SPEC: Schema = obj({
    **pick(POD_SPEC, "volumes", "serviceAccountName", "automountServiceAccountToken",
           "imagePullSecrets", "enableServiceLinks", "nodeSelector", "tolerations", "affinity",
           "runtimeClassName", "priorityClassName", "schedulerName", "dnsPolicy", "dnsConfig",
           "hostAliases", "securityContext", "initContainers", "topologySpreadConstraints",
           "shareProcessNamespace")["properties"],
    "containers": arr(KNATIVE_CONTAINER),
    "containerConcurrency": int_range(0, 1000),
    "timeoutSeconds": int_range(0),
    "responseStartTimeoutSeconds": int_range(0),
    "idleTimeoutSeconds": int_range(0),
}, required=("containers",))

# The metadata of an embedded template (Knative's spec.template, Tekton's
# embedded specs): what a user may set, typed so that a typo is caught.
TEMPLATE_METADATA: Schema = obj({
    "name": STR, "generateName": STR, "namespace": STR,
    "labels": STR_MAP, "annotations": STR_MAP, "finalizers": STR_LIST,
    # `kn ... --target` and `kubectl get -o yaml` write `creationTimestamp: null` here.
    "creationTimestamp": {**DATE_TIME, "nullable": True},
})
