"""Defaulting and validation of the workload kinds: Job, CronJob, DaemonSet, StatefulSet.

What kube-apiserver's batch and apps strategies and SetDefaults_* do (v1.32),
as admission hooks (core/admission.py) the registry runs on every create and
update: field defaults that `kubectl get -o yaml` shows, the Job's generated
selector and pod labels (batch.kubernetes.io/controller-uid, job-name and
their legacy twins; manualSelector false), and the rules with upstream's
field paths and messages (restart policies, selector vs template labels,
immutable fields). Pure: (new, old or None) in, the object defaulted in place
or causes out. install() registers them; platform.py calls it. Neighbours:
builtin_kinds.py (schemas, checked before these run), the reconcilers in
core/reconcilers/ (which rely on these defaults), apiserver/registry.py.
"""

from __future__ import annotations

import json
import zoneinfo
from typing import Any

from skiff.core.admission import Admission
from skiff.core.client import Obj
from skiff.core.selectors import from_label_selector_object
from skiff.core.validation import Cause

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"
CRONJOB_MAX_NAME = 52    # validation.ValidateCronJob: 63 minus the 11 of the job suffix


def _default_pod_template(tmpl: Any) -> None:
    from skiff.core.defaults import default_workload  # the Pod defaults, shared
    if isinstance(tmpl, dict) and isinstance(tmpl.get("spec"), dict):
        tmpl.setdefault("metadata", {})
        default_workload("Pod", tmpl)


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


# --- batch/v1 Job -------------------------------------------------------------------

def default_job_spec(spec: Obj) -> None:
    """SetDefaults_Job for the spec (also used for a CronJob's jobs as they are created)."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    spec.setdefault("parallelism", 1)
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy",
                    "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed")
    spec.setdefault("manualSelector", False)
    _default_pod_template(spec.get("template"))


def generate_selector(job: Obj) -> None:
    """The strategy's generateSelector: job-name and controller-uid labels on the template
    (kept where the user set them) and a selector on the controller uid."""
    meta, spec = job.get("metadata") or {}, _spec(job)
    tmpl = spec.setdefault("template", {})
    labels = tmpl.setdefault("metadata", {}).setdefault("labels", {})
    for key in (LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL):
        labels.setdefault(key, str(meta.get("name", "")))
    for key in (LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL):
        labels.setdefault(key, str(meta.get("uid", "")))
    sel = spec.get("selector")
    if not isinstance(sel, dict):
        sel = spec["selector"] = {}
    sel.setdefault("matchLabels", {}).setdefault(CONTROLLER_UID_LABEL, str(meta.get("uid", "")))


def default_job(obj: Obj, old: Obj | None) -> None:
    spec = _spec(obj)
    if not spec:
        return
    default_job_spec(spec)
    if old is None and not spec.get("manualSelector"):
        generate_selector(obj)
    tmpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
    meta = obj.setdefault("metadata", {})
    if tmpl_labels and not meta.get("labels"):
        meta["labels"] = dict(tmpl_labels)


def _restart_policy_causes(tmpl: Any, path: str, allowed: tuple[str, ...]) -> list[Cause]:
    policy = ((tmpl or {}).get("spec") or {}).get("restartPolicy", "") if isinstance(tmpl, dict) else ""
    field = f"{path}.spec.restartPolicy"
    supported = ", ".join(f'"{p}"' for p in allowed)
    if not policy:
        return [Cause(field, "FieldValueRequired",
                      f"{field}: Required value: valid values: {supported}")]
    if policy not in allowed:
        return [Cause(field, "FieldValueNotSupported",
                      f'{field}: Unsupported value: "{policy}": supported values: {supported}')]
    return []


def _go_map(m: Any) -> str:
    items = ", ".join(f'"{k}":"{v}"' for k, v in sorted((m or {}).items()))
    return f"map[string]string{{{items}}}"


def _selector_causes(spec: Obj, path: str) -> list[Cause]:
    sel = spec.get("selector")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not isinstance(sel, dict) or not (sel.get("matchLabels") or sel.get("matchExpressions")):
        return [Cause(f"{path}.selector", "FieldValueRequired", f"{path}.selector: Required value")]
    try:
        ok = from_label_selector_object(sel).matches(labels)
    except Exception:   # a malformed selector: the schema reports its shape
        ok = False
    if ok:
        return []
    field = f"{path}.template.metadata.labels"
    return [Cause(field, "FieldValueInvalid",
                  f"{field}: Invalid value: {_go_map(labels)}: `selector` does not match "
                  "template `labels`")]


def _immutable(new: Any, old: Any, field: str, shown: str = "") -> list[Cause]:
    if new == old:
        return []
    value = shown or json.dumps(new)
    return [Cause(field, "FieldValueInvalid", f"{field}: Invalid value: {value}: field is immutable")]


_SCHEDULING = ("nodeSelector", "tolerations", "affinity", "schedulingGates")


def _template_without_scheduling(tmpl: Any) -> Any:
    """A template minus what a suspended, never-started Job may still change."""
    if not isinstance(tmpl, dict):
        return tmpl
    spec = {k: v for k, v in (tmpl.get("spec") or {}).items() if k not in _SCHEDULING}
    meta = {k: v for k, v in (tmpl.get("metadata") or {}).items()
            if k not in ("labels", "annotations")}
    return {**tmpl, "spec": spec, "metadata": meta}


def validate_job_spec(spec: Obj, path: str, generated: bool) -> list[Cause]:
    causes = _restart_policy_causes(spec.get("template"), f"{path}.template", ("OnFailure", "Never"))
    if generated:
        causes += _selector_causes(spec, path)
    if spec.get("completionMode") == "Indexed" and spec.get("completions") is None:
        causes.append(Cause(f"{path}.completions", "FieldValueRequired",
                            f"{path}.completions: Required value: when completion mode is Indexed"))
    return causes


def validate_job(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = _spec(obj)
    if not spec:
        return []
    causes = validate_job_spec(spec, "spec", True)
    if old is None:
        return causes
    old_spec = _spec(old)
    may_reschedule = bool(old_spec.get("suspend")) and not (old.get("status") or {}).get("startTime")
    new_t, old_t = spec.get("template"), old_spec.get("template")
    if may_reschedule:
        new_t, old_t = _template_without_scheduling(new_t), _template_without_scheduling(old_t)
    causes += _immutable(new_t, old_t, "spec.template", "core.PodTemplateSpec{...}")
    causes += _immutable(spec.get("selector"), old_spec.get("selector"), "spec.selector",
                         "v1.LabelSelector{...}")
    causes += _immutable(spec.get("completionMode"), old_spec.get("completionMode"),
                         "spec.completionMode", f'"{spec.get("completionMode")}"')
    if spec.get("completionMode") != "Indexed":
        causes += _immutable(spec.get("completions"), old_spec.get("completions"),
                             "spec.completions")
    return causes


# --- batch/v1 CronJob -----------------------------------------------------------------

def default_cronjob(obj: Obj, old: Obj | None) -> None:
    spec = _spec(obj)
    if not spec:
        return
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    job_spec = (spec.get("jobTemplate") or {}).get("spec")
    if isinstance(job_spec, dict):
        _default_pod_template(job_spec.get("template"))


def schedule_problem(schedule: str) -> str:
    """Why a schedule does not parse (robfig/cron's ParseStandard as upstream uses it), or ""."""
    from skiff.core.reconcilers.cronjob import parse_schedule  # croniter, loaded on use
    if "TZ=" in schedule:
        return "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
    try:
        parse_schedule(schedule)
    except ValueError as e:
        return str(e)
    return ""


def validate_cronjob(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = _spec(obj)
    causes: list[Cause] = []
    name = str((obj.get("metadata") or {}).get("name", ""))
    if len(name) > CRONJOB_MAX_NAME:
        causes.append(Cause("metadata.name", "FieldValueInvalid",
                            f'metadata.name: Invalid value: "{name}": must be no more than '
                            f"{CRONJOB_MAX_NAME} characters"))
    if not spec:
        return causes
    schedule = str(spec.get("schedule", ""))
    problem = schedule_problem(schedule) if schedule else "Required value"
    if problem == "Required value":
        causes.append(Cause("spec.schedule", "FieldValueRequired", "spec.schedule: Required value"))
    elif problem:
        causes.append(Cause("spec.schedule", "FieldValueInvalid",
                            f'spec.schedule: Invalid value: "{schedule}": {problem}'))
    tz = spec.get("timeZone")
    if isinstance(tz, str) and (not tz or not _known_zone(tz)):
        causes.append(Cause("spec.timeZone", "FieldValueInvalid",
                            f'spec.timeZone: Invalid value: "{tz}": unknown time zone {tz}'))
    job_spec = (spec.get("jobTemplate") or {}).get("spec")
    if isinstance(job_spec, dict):
        causes += _restart_policy_causes(job_spec.get("template"), "spec.jobTemplate.spec.template",
                                         ("OnFailure", "Never"))
    return causes


def _known_zone(tz: str) -> bool:
    if tz.lower() == "local":
        return False     # upstream refuses "Local": it would depend on the controller's host
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


# --- apps/v1 DaemonSet, StatefulSet -----------------------------------------------

def default_daemonset(obj: Obj, old: Obj | None) -> None:
    spec = _spec(obj)
    if not spec:
        return
    strategy = spec.setdefault("updateStrategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            if isinstance(ru, dict):
                ru.setdefault("maxUnavailable", 1)
                ru.setdefault("maxSurge", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    _default_pod_template(spec.get("template"))


def default_statefulset(obj: Obj, old: Obj | None) -> None:
    spec = _spec(obj)
    if not spec:
        return
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = spec.setdefault("updateStrategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            if isinstance(ru, dict):
                ru.setdefault("partition", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("persistentVolumeClaimRetentionPolicy",
                    {"whenDeleted": "Retain", "whenScaled": "Retain"})
    _default_pod_template(spec.get("template"))


def validate_daemonset(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = _spec(obj)
    if not spec:
        return []
    causes = _selector_causes(spec, "spec")
    causes += _restart_policy_causes(spec.get("template"), "spec.template", ("Always",))
    if old is not None:
        causes += _immutable(spec.get("selector"), _spec(old).get("selector"), "spec.selector",
                             "v1.LabelSelector{...}")
    return causes


_STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy",
                "persistentVolumeClaimRetentionPolicy", "minReadySeconds")


def validate_statefulset(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = _spec(obj)
    if not spec:
        return []
    causes = _selector_causes(spec, "spec")
    causes += _restart_policy_causes(spec.get("template"), "spec.template", ("Always",))
    if old is not None:
        fixed = {k: v for k, v in spec.items() if k not in _STS_MUTABLE}
        old_fixed = {k: v for k, v in _spec(old).items() if k not in _STS_MUTABLE}
        if fixed != old_fixed:
            causes.append(Cause("spec", "FieldValueForbidden",
                                "spec: Forbidden: updates to statefulset spec for fields other than "
                                "'replicas', 'ordinals', 'template', 'updateStrategy', "
                                "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are "
                                "forbidden"))
    return causes


def install(admission: Admission) -> None:
    admission.default("batch", "Job", default_job)
    admission.validate("batch", "Job", validate_job)
    admission.default("batch", "CronJob", default_cronjob)
    admission.validate("batch", "CronJob", validate_cronjob)
    admission.default("apps", "DaemonSet", default_daemonset)
    admission.validate("apps", "DaemonSet", validate_daemonset)
    admission.default("apps", "StatefulSet", default_statefulset)
    admission.validate("apps", "StatefulSet", validate_statefulset)
