"""OpenShift Pipelines (Tekton) resource kinds: Task, Pipeline, PipelineRun,
TaskRun (tekton.dev v1 stored, v1beta1 still served), declared as data.

Names, short names, categories and printer columns are those of the
tektoncd/pipeline CRDs (config/300-crds). The schemas cover what the
OpenShift console's "Import from Git" pipelines and `kn`/`tkn` write:
params, workspaces, results, steps (a container subset plus script),
pipeline tasks with taskRef/taskSpec, runAfter and when expressions,
pipelineRef/pipelineSpec, taskRunTemplate and timeouts. Because one schema
serves both versions, the handful of v1beta1 spellings still found in
catalogs (step `resources`, run `serviceAccountName`/`timeout`/`podTemplate`)
are accepted too.

Left open (ANY), on purpose: param and result values (string, array or
object), matrix fan-out, step `when` expressions, podTemplate (a PodSpec
overlay), taskRunSpecs, a workspace's volumeClaimTemplate and its
configMap/secret/projected/csi sources, and the run status trees
(childReferences, provenance), which the pipeline runner writes.

Neighbours: pipelines/ (builder detection and the runner) read these
objects; core/schema_pod.py (container fields, env, resources, volumes);
core/kinds.py (Kind, crd_for). Pure data.
"""

from __future__ import annotations

from dataclasses import replace

from skiff.core.kinds import Kind, PrinterColumn
from skiff.core.schema import (
    ANY,
    BOOL,
    CONDITION,
    DATE_TIME,
    INT,
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
from skiff.core.schema_pod import CONTAINER_FIELDS, RESOURCES, VOLUME, int_range

__all__ = ["KINDS", "PIPELINE_SPEC", "STEP", "TASK_SPEC"]

GROUP = "tekton.dev"
VERSIONS = ("v1", "v1beta1")
CATEGORIES = ("tekton", "tekton-pipelines")

PARAM_TYPE = enum("string", "array", "object")

PARAM_SPEC = obj({
    "name": STR,
    "type": PARAM_TYPE,
    "description": STR,
    "default": ANY,                 # string, array or object, as `type` says
    "properties": map_of(obj({"type": PARAM_TYPE})),
    "enum": STR_LIST,
}, required=("name",))

PARAM = obj({"name": STR, "value": ANY}, required=("name", "value"))

RESULT_SPEC = obj({
    "name": STR, "type": PARAM_TYPE, "description": STR,
    "properties": map_of(obj({"type": PARAM_TYPE})),
    "value": ANY,                   # pipeline results: $(tasks.x.results.y) expressions
}, required=("name",))

WORKSPACE_DECLARATION = obj({"name": STR, "description": STR, "mountPath": STR,
                             "readOnly": BOOL, "optional": BOOL}, required=("name",))

_CONTAINER_PART: dict[str, Schema] = {
    n: CONTAINER_FIELDS[n]
    for n in ("name", "image", "command", "args", "workingDir", "env", "envFrom",
              "volumeMounts", "volumeDevices", "securityContext", "imagePullPolicy")
}

STEP = obj({
    **_CONTAINER_PART,
    "script": STR,
    "computeResources": RESOURCES,
    "resources": RESOURCES,         # v1beta1 spelling of computeResources
    "timeout": STR,
    "onError": enum("continue", "stopAndFail"),
    "stdoutConfig": obj({"path": STR}),
    "stderrConfig": obj({"path": STR}),
    "workspaces": arr(obj({"name": STR, "mountPath": STR}, required=("name",))),
    "ref": obj({"name": STR}),      # StepAction reference
    "params": arr(PARAM),
    "results": arr(RESULT_SPEC),
    "when": arr(ANY),
})

SIDECAR = obj({**CONTAINER_FIELDS, "script": STR, "computeResources": RESOURCES},
              required=("name",))

TASK_SPEC = obj({
    "description": STR,
    "displayName": STR,
    "params": arr(PARAM_SPEC),
    "results": arr(RESULT_SPEC),
    "workspaces": arr(WORKSPACE_DECLARATION),
    "steps": arr(STEP),
    "stepTemplate": obj({**_CONTAINER_PART, "computeResources": RESOURCES,
                         "resources": RESOURCES}),
    "sidecars": arr(SIDECAR),
    "volumes": arr(VOLUME),
})

EMBEDDED_METADATA = obj({"labels": STR_MAP, "annotations": STR_MAP})

REF = obj({
    "name": STR, "kind": STR, "apiVersion": STR,
    "resolver": STR,                # git, bundles, cluster, hub
    "params": arr(PARAM),
    "bundle": STR,                  # v1beta1
})

WHEN_EXPRESSION = obj({"input": STR, "operator": enum("in", "notin"), "values": STR_LIST,
                       "cel": STR})

PIPELINE_TASK = obj({
    "name": STR,
    "displayName": STR,
    "description": STR,
    "taskRef": REF,
    "taskSpec": obj({**TASK_SPEC["properties"], "metadata": EMBEDDED_METADATA,
                     "apiVersion": STR, "kind": STR, "spec": ANY}),
    "pipelineRef": REF,
    "params": arr(PARAM),
    "runAfter": STR_LIST,
    "workspaces": arr(obj({"name": STR, "workspace": STR, "subPath": STR},
                          required=("name",))),
    "when": arr(WHEN_EXPRESSION),
    "retries": int_range(0),
    "timeout": STR,
    "matrix": ANY,                  # fan-out over param combinations
    "onError": enum("continue", "stopAndFail"),
}, required=("name",))

PIPELINE_SPEC = obj({
    "description": STR,
    "displayName": STR,
    "params": arr(PARAM_SPEC),
    "workspaces": arr(obj({"name": STR, "description": STR, "optional": BOOL},
                          required=("name",))),
    "tasks": arr(PIPELINE_TASK),
    "finally": arr(PIPELINE_TASK),
    "results": arr(RESULT_SPEC),
})

WORKSPACE_BINDING = obj({
    "name": STR,
    "subPath": STR,
    "volumeClaimTemplate": ANY,     # a PersistentVolumeClaim object
    "persistentVolumeClaim": obj({"claimName": STR, "readOnly": BOOL}, required=("claimName",)),
    "emptyDir": obj({"medium": STR, "sizeLimit": ANY}),
    "configMap": ANY, "secret": ANY, "projected": ANY, "csi": ANY,
}, required=("name",))

RUN_STATUS = open_obj({
    "observedGeneration": INT, "conditions": arr(CONDITION), "annotations": STR_MAP,
    "startTime": DATE_TIME, "completionTime": DATE_TIME,
    "results": arr(open_obj()), "childReferences": arr(open_obj()),
})

PIPELINE_RUN = resource(obj({
    "pipelineRef": REF,
    "pipelineSpec": PIPELINE_SPEC,
    "params": arr(PARAM),
    "status": STR,                  # Cancelled, CancelledRunFinally, StoppedRunFinally, ...
    "timeouts": obj({"pipeline": STR, "tasks": STR, "finally": STR}),
    "taskRunTemplate": obj({"serviceAccountName": STR, "podTemplate": ANY}),
    "workspaces": arr(WORKSPACE_BINDING),
    "taskRunSpecs": arr(ANY),
    "managedBy": STR,
    # v1beta1 spellings
    "serviceAccountName": STR,
    "timeout": STR,
    "podTemplate": ANY,
}), status=RUN_STATUS)

TASK_RUN = resource(obj({
    "taskRef": REF,
    "taskSpec": TASK_SPEC,
    "params": arr(PARAM),
    "serviceAccountName": STR,
    "workspaces": arr(WORKSPACE_BINDING),
    "timeout": STR,
    "status": STR,
    "statusMessage": STR,
    "retries": int_range(0),
    "podTemplate": ANY,
    "computeResources": RESOURCES,
    "stepSpecs": arr(obj({"name": STR, "computeResources": RESOURCES}, required=("name",))),
    "sidecarSpecs": arr(obj({"name": STR, "computeResources": RESOURCES}, required=("name",))),
    "managedBy": STR,
}), status=RUN_STATUS)

_RUN_COLUMNS = (
    PrinterColumn("Succeeded", '.status.conditions[?(@.type=="Succeeded")].status'),
    PrinterColumn("Reason", '.status.conditions[?(@.type=="Succeeded")].reason'),
    PrinterColumn("StartTime", ".status.startTime", type="date"),
    PrinterColumn("CompletionTime", ".status.completionTime", type="date"),
)

KINDS: list[Kind] = [
    Kind(group=GROUP, version="v1", versions=VERSIONS, kind="Task", plural="tasks",
         singular="task", namespaced=True, schema=resource(TASK_SPEC), categories=CATEGORIES,
         crd_name=f"tasks.{GROUP}", printer_columns=()),
    Kind(group=GROUP, version="v1", versions=VERSIONS, kind="Pipeline", plural="pipelines",
         singular="pipeline", namespaced=True, schema=resource(PIPELINE_SPEC),
         categories=CATEGORIES, crd_name=f"pipelines.{GROUP}", printer_columns=()),
    Kind(group=GROUP, version="v1", versions=VERSIONS, kind="PipelineRun",
         plural="pipelineruns", singular="pipelinerun", namespaced=True, schema=PIPELINE_RUN,
         short_names=("pr", "prs"), categories=CATEGORIES, crd_name=f"pipelineruns.{GROUP}",
         printer_columns=_RUN_COLUMNS),
    Kind(group=GROUP, version="v1", versions=VERSIONS, kind="TaskRun", plural="taskruns",
         singular="taskrun", namespaced=True, schema=TASK_RUN, short_names=("tr", "trs"),
         categories=CATEGORIES, crd_name=f"taskruns.{GROUP}", printer_columns=_RUN_COLUMNS),
]


# Accepted and stored, not acted on yet: each says so (see Kind.not_implemented).
_NOT_IMPLEMENTED = {
    "Task": "Tekton Pipelines are not implemented yet: nothing is built or run",
    "Pipeline": "Tekton Pipelines are not implemented yet: nothing is built or run",
    "PipelineRun": "Tekton Pipelines are not implemented yet: nothing is built or run",
    "TaskRun": "Tekton Pipelines are not implemented yet: nothing is built or run",
}
KINDS = [replace(k, not_implemented=_NOT_IMPLEMENTED[k.kind]) if k.kind in _NOT_IMPLEMENTED else k
         for k in KINDS]
