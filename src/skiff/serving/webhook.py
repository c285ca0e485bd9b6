"""Serving's admission: defaulting and validation of Services, Configurations, Revisions
and Routes, as the upstream webhook (pkg/apis/serving/v1 *_defaults.go, *_validation.go,
pkg/apis/serving/k8s_validation.go). Pure functions of (object, old object, config).

Defaults: containerConcurrency (config-defaults, 0), timeoutSeconds (300),
the container name (user-container, numbered when several), a TCP readiness
probe with successThreshold 1 on the serving container, enableServiceLinks
on create, and a Service's traffic [{latestRevision: true, percent: 100}].
Validation, with upstream's messages: traffic (via traffic.py), BYO
revision names (`<parent>-` prefix; a template change without a name change
is rejected with "Saw the following changes without a name change
(-old +new)"), timeoutSeconds and containerConcurrency bounds, images,
container ports (one across all containers), reserved names, env vars and
ports, autoscaling annotations (autoscaler/validate.py, against the live
config-autoscaler), labels, and the immutability of a Revision's spec; a
PodAutoscaler's annotations, scale target, concurrency and protocol. A status update (spec unchanged) is not re-validated, as
upstream elides spec checks in status updates.

Neighbours: core/admission.py (where setup.py registers these),
config.py (the ConfigHolder with the current defaults), apis.py (errors),
traffic.py.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from skiff.core.client import Obj
from skiff.core.validation import Cause, dns1035_label
from skiff.serving import apis, names, resources, traffic
from skiff.serving.apis import FieldError
from skiff.serving.autoscaler import durations
from skiff.serving.autoscaler.config import PROGRESS_DEADLINE_KEY
from skiff.serving.autoscaler.validate import validate_annotations
from skiff.serving.config import ConfigHolder, ServingConfig
from skiff.serving.names import (
    CONFIGURATION_GENERATION_LABEL,
    CONFIGURATION_LABEL,
    CONFIGURATION_UID_LABEL,
    ROUTE_LABEL,
    ROUTING_STATE_LABEL,
    SERVICE_LABEL,
    SERVICE_UID_LABEL,
    VISIBILITY_CLUSTER_LOCAL,
    VISIBILITY_LABEL,
)

_MAX_INT32 = 2147483647


# --- defaulting --------------------------------------------------------------------

def default_revision_spec(spec: Obj, cfg: ServingConfig, creating: bool) -> None:
    """RevisionSpec.SetDefaults, in place."""
    if not spec.get("timeoutSeconds"):
        spec["timeoutSeconds"] = cfg.revision_timeout_seconds
    if spec.get("containerConcurrency") is None:
        spec["containerConcurrency"] = cfg.container_concurrency
    containers = spec.get("containers")
    if not isinstance(containers, list):
        return
    taken = {c.get("name") for c in containers if isinstance(c, dict) and c.get("name")}
    suffix = 0
    for c in containers:
        if not isinstance(c, dict) or c.get("name"):
            continue
        name = cfg.container_name_template
        if len(containers) > 1 or name in taken:
            while True:
                name = names.child_name(cfg.container_name_template, f"-{suffix}")
                suffix += 1
                if name not in taken:
                    break
        c["name"] = name
        taken.add(name)
    for c in containers:
        if not isinstance(c, dict):
            continue
        c.setdefault("resources", {})
        # Default probes only on the serving container (the one with the port).
        if len(containers) == 1 or c.get("ports"):
            probe = c.get("readinessProbe")
            if not isinstance(probe, dict):
                probe = c["readinessProbe"] = {}
            if not any(k in probe for k in ("tcpSocket", "httpGet", "exec", "grpc")):
                probe["tcpSocket"] = {"port": 0}
            if not probe.get("successThreshold"):
                probe["successThreshold"] = 1
            if probe.get("periodSeconds"):
                probe.setdefault("failureThreshold", 3)
                probe.setdefault("timeoutSeconds", 1)
    if creating and spec.get("enableServiceLinks") is None and cfg.enable_service_links is not None:
        spec["enableServiceLinks"] = cfg.enable_service_links


def _template_spec(obj: Obj) -> Obj | None:
    tmpl = (obj.get("spec") or {}).get("template")
    if isinstance(tmpl, dict) and isinstance(tmpl.get("spec"), dict):
        return tmpl["spec"]  # type: ignore[no-any-return]
    return None


def default_service(obj: Obj, old: Obj | None, cfg: ServingConfig) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if (ts := _template_spec(obj)) is not None:
        default_revision_spec(ts, cfg, old is None)
    t = spec.get("traffic")
    if t is None or isinstance(t, list):
        spec["traffic"] = traffic.default_traffic(t, in_service=True)


def default_configuration(obj: Obj, old: Obj | None, cfg: ServingConfig) -> None:
    if (ts := _template_spec(obj)) is not None:
        default_revision_spec(ts, cfg, old is None)


def default_revision(obj: Obj, old: Obj | None, cfg: ServingConfig) -> None:
    if isinstance(obj.get("spec"), dict):
        default_revision_spec(obj["spec"], cfg, old is None)


def default_route(obj: Obj, old: Obj | None, cfg: ServingConfig) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("traffic"), list):
        spec["traffic"] = traffic.default_traffic(spec["traffic"], in_service=False)


# --- validation: revision spec -----------------------------------------------------

def _validate_probe(p: Any, port_name: str, readiness: bool) -> list[FieldError]:
    if not isinstance(p, dict):
        return []
    errs: list[FieldError] = []
    handlers = [h for h in ("httpGet", "tcpSocket", "exec", "grpc") if p.get(h) is not None]
    if not handlers:
        errs.append(apis.missing_one_of("httpGet", "tcpSocket", "exec", "grpc"))
    elif len(handlers) > 1:
        errs.append(apis.multiple_one_of(*handlers))
    for h in ("httpGet", "tcpSocket"):
        port = (p.get(h) or {}).get("port") if isinstance(p.get(h), dict) else None
        if isinstance(port, str) and not port.isdigit() and port != port_name:
            errs.append(apis.invalid_value(port, f"{h}.port", "Probe port must match container port"))
    if readiness:
        period = int(p.get("periodSeconds") or 0)
        if p.get("successThreshold") is not None and int(p["successThreshold"]) < 1:
            errs.append(apis.out_of_bounds(p["successThreshold"], 1, _MAX_INT32, "successThreshold"))
        if period == 0:
            if p.get("failureThreshold"):
                errs.append(FieldError("failureThreshold is disallowed when periodSeconds is zero",
                                       ("failureThreshold",)))
            if p.get("timeoutSeconds"):
                errs.append(FieldError("timeoutSeconds is disallowed when periodSeconds is zero",
                                       ("timeoutSeconds",)))
    return errs


def _validate_container(c: Obj, serving: bool, port_name: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not c:
        return [apis.missing_field("")]
    if c.get("name") == names.QUEUE_PROXY_CONTAINER:
        errs.append(FieldError(f'"{c["name"]}" is a reserved container name', ("name",)))
    for i, e in enumerate(c.get("env") or []):
        if not isinstance(e, dict):
            continue
        reserved = names.RESERVED_ENV if serving else names.RESERVED_ENV[1:]
        if not e.get("name"):
            errs.append(apis.missing_field(f"env[{i}].name"))
        elif e["name"] in reserved:
            errs.append(FieldError(f'"{e["name"]}" is a reserved environment variable',
                                   (f"env[{i}].name",)))
    if not c.get("image"):
        errs.append(apis.missing_field("image"))
    ports = c.get("ports") or []
    if ports and isinstance(ports[0], dict):
        p = ports[0]
        cp = p.get("containerPort")
        if isinstance(cp, int):
            if cp in names.RESERVED_PORTS:
                errs.append(apis.invalid_value(f"{cp} is a reserved port", "ports.containerPort",
                                               f"{cp} is a reserved port, please use a different value"))
            if not 0 <= cp <= 65535:
                errs.append(apis.out_of_bounds(cp, 0, 65535, "ports.containerPort"))
        if p.get("protocol") not in (None, "", "TCP"):
            errs.append(apis.invalid_value(p["protocol"], "ports.protocol"))
        if p.get("name") not in (None, "", "h2c", "http1"):
            errs.append(FieldError(f"Port name {p['name']} is not allowed", ("ports",),
                                   "Name must be empty, or one of: 'h2c', 'http1'"))
    if serving:
        errs += apis.via(_validate_probe(c.get("livenessProbe"), port_name, False), "livenessProbe")
        errs += apis.via(_validate_probe(c.get("readinessProbe"), port_name, True), "readinessProbe")
    return errs


def validate_revision_spec(spec: Obj, cfg: ServingConfig) -> list[FieldError]:
    """RevisionSpec.Validate, paths relative to the spec."""
    errs: list[FieldError] = []
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    count = sum(len(c.get("ports") or []) for c in containers)
    port_name = next((str((c.get("ports") or [{}])[0].get("name") or "") for c in containers
                      if c.get("ports")), "") or "http"
    if count == 0 and len(containers) > 1:
        errs.append(apis.missing_field("containers[*].ports"))
    if count > 1:
        errs.append(FieldError("more than one container port is set", ("containers[*].ports",),
                               "Only a single port is allowed across all containers"))
    if not containers:
        errs.append(apis.missing_field("containers"))
    elif len(containers) > 1 and not cfg.multi_container:
        errs.append(FieldError(f"multi-container is off, but found {len(containers)} containers"))
    else:
        seen: set[str] = set()
        for i, c in enumerate(containers):
            if len(containers) > 1 and c.get("name") in seen:
                errs.append(FieldError(f'duplicate container name "{c.get("name")}"',
                                       (f"containers[{i}].name",)))
            seen.add(str(c.get("name")))
            serving = len(containers) == 1 or bool(c.get("ports"))
            errs += apis.via(_validate_container(c, serving, port_name), f"containers[{i}]")
    ts = spec.get("timeoutSeconds")
    if isinstance(ts, int) and ts != 0 and not 0 <= ts <= cfg.max_revision_timeout_seconds:
        errs.append(apis.out_of_bounds(ts, 0, cfg.max_revision_timeout_seconds, "timeoutSeconds"))
    # validateTimeoutSeconds: the response may start no later than the request must end; idle
    # is bounded by the largest timeout a revision may have
    timeout = ts if isinstance(ts, int) and ts > 0 else cfg.revision_timeout_seconds
    for key, top in (("responseStartTimeoutSeconds", timeout),
                     ("idleTimeoutSeconds", cfg.max_revision_timeout_seconds)):
        v = spec.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and not 0 <= v <= top:
            errs.append(apis.out_of_bounds(v, 0, top, key))
    cc = spec.get("containerConcurrency")
    if isinstance(cc, int) and not 0 <= cc <= cfg.container_concurrency_max_limit:
        errs.append(apis.out_of_bounds(cc, 0, cfg.container_concurrency_max_limit,
                                       "containerConcurrency"))
    elif cc == 0 and not cfg.allow_container_concurrency_zero:
        errs.append(apis.out_of_bounds(cc, 1, cfg.container_concurrency_max_limit,
                                       "containerConcurrency"))
    return errs


def validate_autoscaling_annotations(ann: dict[str, str], cfg: ServingConfig) -> list[FieldError]:
    """autoscaling.ValidateAnnotations (autoscaler/validate.py) against the live
    config-autoscaler, paths relative to the annotations. One error per message, with every
    path that has it (upstream's max-scale < min-scale names both keys)."""
    by_msg: dict[str, list[str]] = {}
    for path, msg in validate_annotations(ann, resources.autoscaler_config(cfg)):
        paths = by_msg.setdefault(msg, [])
        if path not in paths:
            paths.append(path)
    return [FieldError(msg, tuple(paths)) for msg, paths in by_msg.items()]


def validate_progress_deadline(ann: dict[str, str]) -> list[FieldError]:
    """validateProgressDeadlineAnnotation: serving.knative.dev/progress-deadline, when set, is
    a duration in whole seconds and not negative (it becomes the Deployment's
    progressDeadlineSeconds, resources.progress_deadline), paths relative to the annotations."""
    key = PROGRESS_DEADLINE_KEY
    raw = ann.get(key)
    if not raw:
        return []
    try:
        ns = durations.parse_duration(str(raw))
    except durations.DurationError:
        return [apis.invalid_value(raw, key)]
    if ns % 1_000_000_000:
        return [FieldError(f"progress-deadline={raw} is not at second precision", (key,))]
    if ns < 0:
        return [FieldError(f"progress-deadline={raw} must be positive", (key,))]
    return []


def _parent_meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def validate_template(tmpl: Obj, parent: Obj, cfg: ServingConfig) -> list[FieldError]:
    """RevisionTemplateSpec.Validate, paths relative to the template."""
    errs = apis.via(validate_revision_spec(tmpl.get("spec") or {}, cfg), "spec")
    meta = tmpl.get("metadata") or {}
    ann = meta.get("annotations") or {}
    errs += apis.via(validate_autoscaling_annotations(ann, cfg) + validate_progress_deadline(ann),
                     "metadata.annotations")
    name, gen = meta.get("name") or "", meta.get("generateName") or ""
    if gen and (problem := dns1035_label(gen.rstrip("-") or gen)):
        errs.append(apis.invalid_value(f"not a DNS 1035 label prefix: [{problem}]",
                                       "metadata.generateName"))
    if name:
        pm = _parent_meta(parent)
        if problem := dns1035_label(name):
            errs.append(apis.invalid_value(f"not a DNS 1035 label: [{problem}]", "metadata.name"))
        elif not pm.get("name") and pm.get("generateName"):
            errs.append(apis.disallowed_fields("metadata.name"))
        elif not name.startswith(f"{pm.get('name', '')}-"):
            errs.append(apis.invalid_value(f'"{name}" must have prefix "{pm.get("name", "")}-"',
                                           "metadata.name"))
    return errs


# --- validation: changes -----------------------------------------------------------

def short_diff(old: Any, new: Any, path: str = "") -> list[str]:
    """A go-cmp-like report of what changed between two JSON values (kmp.ShortDiff)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            out += short_diff(old.get(k), new.get(k), f"{path}.{k}" if path else str(k))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            out += short_diff(a, b, f"{path}[{i}]")
        return out
    if old == new:
        return []
    return [f"{{*v1.RevisionTemplateSpec}}.{path}:\n\t-: {json.dumps(old)}\n\t+: {json.dumps(new)}"]


def verify_name_change(new_tmpl: Obj, old_tmpl: Obj) -> list[FieldError]:
    """VerifyNameChange: with a BYO name, a changed template must change the name too."""
    name = (new_tmpl.get("metadata") or {}).get("name") or ""
    if not name or name != ((old_tmpl.get("metadata") or {}).get("name") or ""):
        return []
    def comparable(t: Obj) -> Obj:
        t = copy.deepcopy(t)
        (t.get("metadata") or {}).pop("creationTimestamp", None)
        return t
    diff = short_diff(comparable(old_tmpl), comparable(new_tmpl))
    if not diff:
        return []
    return [FieldError("Saw the following changes without a name change (-old +new)",
                       ("metadata.name",), "\n".join(diff))]


def _validate_labels(obj: Obj, allowed: dict[str, str | None]) -> list[FieldError]:
    """Labels in serving.knative.dev/ must be known (with an owner when they name one);
    the visibility label may only say cluster-local. Paths relative to metadata.labels."""
    errs: list[FieldError] = []
    refs = obj["metadata"].get("ownerReferences") or []
    for key, val in (obj["metadata"].get("labels") or {}).items():
        if key == VISIBILITY_LABEL and "visibility" in allowed:
            if val != VISIBILITY_CLUSTER_LOCAL:
                errs.append(apis.invalid_value(val, VISIBILITY_LABEL))
        elif key in allowed:
            owner_kind = allowed[key]
            if owner_kind and not any(r.get("kind") == owner_kind and r.get("name") == val
                                      for r in refs):
                errs.append(apis.missing_field(key))
        elif key.startswith(f"{names.GROUP}/"):
            errs.append(apis.invalid_key_name(key, ""))
    return errs


def _no_autoscaling_annotations(obj: Obj) -> list[FieldError]:
    return [apis.invalid_key_name(k, "", 'autoscaling annotations must be put under '
                                        '"spec.template.metadata.annotations" to work')
            for k in obj["metadata"].get("annotations") or {}
            if k.startswith(names.AUTOSCALING_GROUP)]


def _spec_unchanged(obj: Obj, old: Obj | None) -> bool:
    return old is not None and obj.get("spec") == old.get("spec") and \
        obj["metadata"].get("labels") == old["metadata"].get("labels") and \
        obj["metadata"].get("annotations") == old["metadata"].get("annotations")


def validate_service(obj: Obj, old: Obj | None, cfg: ServingConfig) -> list[Cause]:
    errs: list[FieldError] = []
    if not _spec_unchanged(obj, old):
        meta = apis.via(_validate_labels(obj, {"visibility": None}), "labels")
        meta += apis.via(_no_autoscaling_annotations(obj), "annotations")
        errs += apis.via(meta, "metadata")
        spec = obj.get("spec") or {}
        errs += apis.via(validate_template(spec.get("template") or {}, obj, cfg), "spec.template")
        errs += apis.via(traffic.validate_traffic(spec.get("traffic"), in_service=True),
                         "spec.traffic")
    if old is not None:
        errs += apis.via(verify_name_change((obj.get("spec") or {}).get("template") or {},
                                            (old.get("spec") or {}).get("template") or {}),
                         "spec.template")
    return apis.to_causes(errs)


def validate_configuration(obj: Obj, old: Obj | None, cfg: ServingConfig) -> list[Cause]:
    errs: list[FieldError] = []
    if not _spec_unchanged(obj, old):
        meta = apis.via(_validate_labels(obj, {
            SERVICE_LABEL: "Service", ROUTE_LABEL: None, CONFIGURATION_UID_LABEL: None,
            SERVICE_UID_LABEL: None}), "labels")
        meta += apis.via(_no_autoscaling_annotations(obj), "annotations")
        errs += apis.via(meta, "metadata")
        errs += apis.via(validate_template((obj.get("spec") or {}).get("template") or {}, obj, cfg),
                         "spec.template")
    if old is not None:
        errs += apis.via(verify_name_change((obj.get("spec") or {}).get("template") or {},
                                            (old.get("spec") or {}).get("template") or {}),
                         "spec.template")
    return apis.to_causes(errs)


def validate_revision(obj: Obj, old: Obj | None, cfg: ServingConfig) -> list[Cause]:
    errs = apis.via(_validate_labels(obj, {
        ROUTING_STATE_LABEL: None, ROUTE_LABEL: None, SERVICE_LABEL: None,
        CONFIGURATION_UID_LABEL: None, SERVICE_UID_LABEL: None,
        CONFIGURATION_GENERATION_LABEL: None, CONFIGURATION_LABEL: "Configuration"}),
        "metadata.labels")
    if old is not None:
        diff = short_diff(old.get("spec") or {}, obj.get("spec") or {})
        if diff:
            errs.append(FieldError("Immutable fields changed (-old +new)", ("spec",),
                                   "\n".join(diff)))
    else:
        errs += apis.via(validate_revision_spec(obj.get("spec") or {}, cfg), "spec")
    return apis.to_causes(errs)


def validate_route(obj: Obj, old: Obj | None, cfg: ServingConfig) -> list[Cause]:
    if _spec_unchanged(obj, old):
        return []
    errs = apis.via(_validate_labels(obj, {"visibility": None, SERVICE_LABEL: "Service"}),
                    "metadata.labels")
    errs += apis.via(traffic.validate_traffic((obj.get("spec") or {}).get("traffic"),
                                              in_service=False), "spec.traffic")
    return apis.to_causes(errs)


_PROTOCOL_TYPES = (resources.PROTOCOL_HTTP1, resources.PROTOCOL_H2C)


def validate_pod_autoscaler(obj: Obj, old: Obj | None, cfg: ServingConfig) -> list[Cause]:
    """PodAutoscaler.Validate: its autoscaling annotations, the scale target reference, the
    container concurrency and the protocol type."""
    if _spec_unchanged(obj, old):
        return []
    errs = apis.via(validate_autoscaling_annotations(obj["metadata"].get("annotations") or {},
                                                     cfg), "metadata.annotations")
    spec = obj.get("spec")
    if not isinstance(spec, dict) or not spec:
        return apis.to_causes(errs + [apis.missing_field("spec")])
    ref = spec.get("scaleTargetRef")
    ref = ref if isinstance(ref, dict) else {}
    missing = [f for f in ("apiVersion", "kind", "name") if not ref.get(f)]
    if missing:
        errs.append(apis.missing_field(*missing).via("spec.scaleTargetRef"))
    cc = spec.get("containerConcurrency")
    if isinstance(cc, int) and not 0 <= cc <= cfg.container_concurrency_max_limit:
        errs.append(apis.out_of_bounds(cc, 0, cfg.container_concurrency_max_limit,
                                       "spec.containerConcurrency"))
    pt = spec.get("protocolType")
    if pt not in (None, "", *_PROTOCOL_TYPES):
        errs.append(apis.invalid_value(pt, "spec.protocolType"))
    return apis.to_causes(errs)


class Webhook:
    """The hooks bound to the live config (what setup.py registers with Admission)."""

    def __init__(self, holder: ConfigHolder) -> None:
        self.holder = holder

    def default_service(self, obj: Obj, old: Obj | None) -> None:
        default_service(obj, old, self.holder.get())

    def default_configuration(self, obj: Obj, old: Obj | None) -> None:
        default_configuration(obj, old, self.holder.get())

    def default_revision(self, obj: Obj, old: Obj | None) -> None:
        default_revision(obj, old, self.holder.get())

    def default_route(self, obj: Obj, old: Obj | None) -> None:
        default_route(obj, old, self.holder.get())

    def validate_service(self, obj: Obj, old: Obj | None) -> list[Cause]:
        return validate_service(obj, old, self.holder.get())

    def validate_configuration(self, obj: Obj, old: Obj | None) -> list[Cause]:
        return validate_configuration(obj, old, self.holder.get())

    def validate_revision(self, obj: Obj, old: Obj | None) -> list[Cause]:
        return validate_revision(obj, old, self.holder.get())

    def validate_route(self, obj: Obj, old: Obj | None) -> list[Cause]:
        return validate_route(obj, old, self.holder.get())

    def validate_pod_autoscaler(self, obj: Obj, old: Obj | None) -> list[Cause]:
        return validate_pod_autoscaler(obj, old, self.holder.get())
