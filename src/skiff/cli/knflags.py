"""kn 1.10's `service create/update` flags as pure edits of a serving.knative.dev/v1 Service.

`skiff service` (cli/service.py, the shell) parses its command line into an
EditFlags (and a TrafficFlags for update), fetches what it needs from the API
(the current Service, the base revision for digest pinning), and calls
apply_edits() / compute_traffic() here; it then sends the result and waits.
Nothing here does I/O or reads the clock: `now` and the random source for
revision-name templates come in as arguments.

The behaviour and the error messages follow knative/client release-1.10:
pkg/kn/commands/service/configuration_edit_flags.go (ConfigurationEditFlags),
pkg/kn/flags/podspec.go and podspec_helper.go (image, env, env-from, resources,
port, command, args), pkg/serving/config_changes.go (autoscaling annotations,
user-image and update-timestamp annotations, digest pinning),
and the autoscaling
annotation checks kn runs from knative/serving pkg/apis/autoscaling.
Deliberate differences are named where they occur.

Traffic arithmetic is in kntraffic.py, and what kn prints (list rows,
describe text, condition summaries, ages, the Ready reading used while
waiting) in knprint.py, so that the shell only prints.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import ClassVar

from skiff.core.client import Obj
from skiff.core.clock import rfc3339

API_VERSION = "serving.knative.dev/v1"
AUTOSCALING = "autoscaling.knative.dev"
MIN_SCALE = f"{AUTOSCALING}/min-scale"
MAX_SCALE = f"{AUTOSCALING}/max-scale"
INITIAL_SCALE = f"{AUTOSCALING}/initial-scale"
ACTIVATION_SCALE = f"{AUTOSCALING}/activation-scale"
TARGET = f"{AUTOSCALING}/target"
TARGET_UTILIZATION = f"{AUTOSCALING}/target-utilization-percentage"
WINDOW = f"{AUTOSCALING}/window"
METRIC = f"{AUTOSCALING}/metric"
USER_IMAGE = "client.knative.dev/user-image"
UPDATE_TIMESTAMP = "client.knative.dev/updateTimestamp"
VISIBILITY_LABEL = "networking.knative.dev/visibility"
CLUSTER_LOCAL = "cluster-local"
CREATOR = "serving.knative.dev/creator"
UPDATER = "serving.knative.dev/lastModifier"
SERVICE_LABEL = "serving.knative.dev/service"
GENERATION_LABEL = "serving.knative.dev/configurationGeneration"
LATEST = "@latest"

_MAX_INT32 = 2147483647
_CONSONANTS = "bcdfghjklmnpqrstvwxyz"   # kn's charChoices for {{.Random n}}


class KnError(Exception):
    """A user error, worded as kn 1.10 words it."""


def goq(s: str) -> str:
    """Go's %q for the strings kn quotes (ASCII-safe approximation)."""
    return json.dumps(s, ensure_ascii=False)


def _go_list(items: Sequence[str]) -> str:
    """Go's %v of a []string."""
    return "[" + " ".join(items) + "]"


# --- the flags ---------------------------------------------------------------
@dataclass
class EditFlags:
    """What `service create/update` was given; None / empty means "flag not set"."""
    image: str | None = None
    env: list[str] = field(default_factory=list)
    env_value_from: list[str] = field(default_factory=list)
    env_from: list[str] = field(default_factory=list)
    limit: list[str] = field(default_factory=list)     # already split at commas
    request: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    arg: list[str] = field(default_factory=list)
    port: str | None = None
    service_account: str | None = None
    pull_secret: str | None = None
    pull_policy: str | None = None
    user: int | None = None
    annotation: list[str] = field(default_factory=list)
    annotation_service: list[str] = field(default_factory=list)
    annotation_revision: list[str] = field(default_factory=list)
    label: list[str] = field(default_factory=list)
    label_service: list[str] = field(default_factory=list)
    label_revision: list[str] = field(default_factory=list)
    scale: str | None = None
    scale_min: int | None = None
    scale_max: int | None = None
    scale_init: int | None = None
    scale_activation: int | None = None
    scale_target: int | None = None
    scale_metric: str | None = None
    scale_utilization: int | None = None
    scale_window: str | None = None
    concurrency_limit: int | None = None
    timeout: int | None = None
    revision_name: str | None = None
    cluster_local: bool | None = None
    lock_to_digest: bool | None = None

    # Flags that do not make a new revision (kn does not markFlagMakesRevision them).
    _NO_REVISION: ClassVar[frozenset[str]] = frozenset({"cluster_local", "lock_to_digest",
                                                        "pull_policy"})

    def changed(self, name: str) -> bool:
        value = getattr(self, name)
        return bool(value) if isinstance(value, list) else value is not None

    def any_mutation(self) -> bool:
        """kn's AnyMutation: some flag was given that changes the revision template."""
        return any(self.changed(f.name) for f in fields(self) if f.name not in self._NO_REVISION)


@dataclass
class TrafficFlags:
    """--traffic, --tag and --untag (already split at commas)."""
    traffic: list[str] = field(default_factory=list)
    tag: list[str] = field(default_factory=list)
    untag: list[str] = field(default_factory=list)

    def changed(self) -> bool:
        return bool(self.traffic or self.tag or self.untag)


def split_commas(values: Iterable[str]) -> list[str]:
    """pflag's StringSlice: every occurrence may hold a comma-separated list."""
    out: list[str] = []
    for v in values:
        out.extend(p for p in v.split(","))
    return out


# --- small parsers (kn's pkg/util) ----------------------------------------------
def map_allowing_singles(arr: Sequence[str], delimiter: str = "=") -> dict[str, str]:
    """kn's MapFromArrayAllowingSingles: "k=v" pairs; a bare "k" maps to ""."""
    out: dict[str, str] = {}
    for pair in arr:
        key, sep, value = pair.partition(delimiter)
        if not sep:
            out[key] = ""
            continue
        if key == "":
            raise KnError("The key is empty")
        if key in out:
            raise KnError(f"The key {goq(key)} has been duplicate in {_go_list(arr)}")
        out[key] = value
    return out


def pop_minus_suffix(m: dict[str, str]) -> list[str]:
    """kn's ParseMinusSuffix: remove "k-" keys from m and return the k's."""
    gone = [k for k in m if k.endswith("-")]
    for k in gone:
        del m[k]
    return [k[:-1] for k in gone]


def ordered_and_removals(arr: Sequence[str], delimiter: str = "=") -> tuple[dict[str, str], list[str]]:
    """kn's OrderedMapAndRemovalListFromArray: "K=v" to set (in order), "K-" to remove."""
    to_set: dict[str, str] = {}
    remove: list[str] = []
    for pair in arr:
        key, sep, value = pair.partition(delimiter)
        if not sep:
            if not key.endswith("-"):
                raise KnError(f"argument requires a value that contains the {goq(delimiter)} "
                              f"character; got {goq(pair)}")
            remove.append(key[:-1])
        else:
            to_set[key] = value
    return to_set, remove


_QUANTITY_FORMAT = ("quantities must match the regular expression "
                    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_SUFFIXES = {"", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}


def check_quantity(value: str) -> str:
    """A Kubernetes resource.Quantity as resource.ParseQuantity accepts it; returns it unchanged."""
    m = _QUANTITY.match(value.strip())
    if not m or not re.fullmatch(r"\d+(\.\d*)?|\.\d+", m.group(1).lstrip("+-")):
        raise KnError(_QUANTITY_FORMAT)
    suffix = m.group(2)
    if suffix not in _SUFFIXES and not re.fullmatch(r"[eE][+-]?\d+", suffix):
        raise KnError("unable to parse quantity's suffix")
    return value.strip()


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
                   "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)([^\d.]*)")


def go_duration(s: str) -> float:
    """Go's time.ParseDuration, in seconds, with Go's error messages."""
    orig = s
    if s in ("0", "+0", "-0"):
        return 0.0
    sign = 1.0
    if s[:1] in "+-" and s:
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if not s:
        raise KnError(f"time: invalid duration {goq(orig)}")
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m:
            raise KnError(f"time: invalid duration {goq(orig)}")
        number, unit = m.group(1), m.group(2)
        if not unit:
            raise KnError(f"time: missing unit in duration {goq(orig)}")
        if unit not in _DURATION_UNITS:
            raise KnError(f"time: unknown unit {goq(unit)} in duration {goq(orig)}")
        total += float(number) * _DURATION_UNITS[unit]
        pos = m.end()
    return sign * total


def _parse_go_int(text: str) -> int:
    """strconv.Atoi / ParseInt(s, 10, 32), with Go's error text."""
    if not re.fullmatch(r"[+-]?\d+", text):
        raise KnError(f'strconv.Atoi: parsing {goq(text)}: invalid syntax')
    return int(text)


# --- autoscaling annotations (knative/serving pkg/apis/autoscaling) ---------------
def _field_error(message: str, *paths: str) -> str:
    return f"{message}: {', '.join(paths)}"


def _int_ge0(anns: dict[str, str], key: str, errs: list[str]) -> int:
    v = anns.get(key)
    if v is None:
        return 0
    if not re.fullmatch(r"[+-]?\d+", v):
        errs.append(_field_error(f"invalid value: {v}", key))
        return 0
    i = int(v)
    if i < 0 or i > _MAX_INT32:
        errs.append(_field_error(f"expected 0 <= {v} <= {_MAX_INT32}", key))
        return 0
    return i


def _is_float(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return v.strip() == v and v.lower() not in ("nan", "inf", "-inf", "+inf", "infinity")


def validate_autoscaling(anns: dict[str, str]) -> list[str]:
    """The checks kn runs (ValidateAnnotations, AllowZeroInitialScale) on the annotations it sets."""
    errs: list[str] = []
    lo = _int_ge0(anns, MIN_SCALE, errs)
    hi = _int_ge0(anns, MAX_SCALE, errs)
    if hi != 0 and hi < lo:
        errs.append(_field_error(f"max-scale={hi} is less than min-scale={lo}", MAX_SCALE, MIN_SCALE))
    if ACTIVATION_SCALE in anns:
        v = anns[ACTIVATION_SCALE]
        if not re.fullmatch(r"[+-]?\d+", v):
            errs.append(_field_error(f"invalid value: {v}", ACTIVATION_SCALE))
        else:
            nz = int(v)
            if lo > nz:
                errs.append(_field_error(f"min-scale={lo} is greater than min-activate-scale={nz}",
                                         ACTIVATION_SCALE))
            elif hi < nz and hi != 0:
                errs.append(_field_error(f"max-scale={hi} is less than min-activate-scale={nz}",
                                         ACTIVATION_SCALE))
            elif nz < 2:
                errs.append(_field_error(f"min-activate-scale={nz} must be greater than 1",
                                         ACTIVATION_SCALE))
    if TARGET in anns:
        v = anns[TARGET]
        if not _is_float(v):
            errs.append(_field_error(f"invalid value: {v}", TARGET))
        elif float(v) < 0.01:
            errs.append(_field_error(f"target {v} should be at least 0.01", TARGET))
    if TARGET_UTILIZATION in anns:
        v = anns[TARGET_UTILIZATION]
        if not _is_float(v):
            errs.append(_field_error(f"invalid value: {v}", TARGET_UTILIZATION))
        elif not 1 <= float(v) <= 100:
            errs.append(_field_error(f"expected 1 <= {v} <= 100", TARGET_UTILIZATION))
    if WINDOW in anns:
        v = anns[WINDOW]
        try:
            d = go_duration(v)
        except KnError:
            errs.append(_field_error(f"invalid value: {v}", WINDOW))
        else:
            if d < 6 or d > 3600:
                errs.append(_field_error(f"expected 6s <= {v} <= 1h0m0s", WINDOW))
            elif d != int(d):
                errs.append(_field_error("must be specified with at most second precision", WINDOW))
    if METRIC in anns and anns.get(f"{AUTOSCALING}/class", "kpa.autoscaling.knative.dev") == \
            "kpa.autoscaling.knative.dev" and anns[METRIC] not in ("concurrency", "rps"):
        errs.append(_field_error(f"invalid value: {anns[METRIC]}", METRIC))
    if INITIAL_SCALE in anns:
        v = anns[INITIAL_SCALE]
        if not re.fullmatch(r"[+-]?\d+", v):
            errs.append(_field_error(f"invalid value: {v}", INITIAL_SCALE))
        elif int(v) < 0:
            errs.append(_field_error(f"invalid value: {v}", f"{INITIAL_SCALE} must be greater than 0"))
    return errs


def _set_revision_annotations(template: Obj, to_update: dict[str, str],
                              to_remove: Sequence[str] = ()) -> None:
    """kn's UpdateRevisionTemplateAnnotations: validate what is set, then set and remove."""
    errs = validate_autoscaling(to_update)
    if errs:
        raise KnError("\n".join(errs))
    anns = template.setdefault("metadata", {}).setdefault("annotations", {})
    anns.update(to_update)
    for k in to_remove:
        anns.pop(k, None)


# --- the Service skeleton and its parts ------------------------------------------
def new_service(name: str, namespace: str) -> Obj:
    """What kn's constructService starts from before the flags are applied."""
    return {
        "apiVersion": API_VERSION, "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {
            # A placeholder: replaced by the image (or removed) as the flags are applied.
            "metadata": {"annotations": {USER_IMAGE: ""}},
            "spec": {"containers": [{}]},
        }},
    }


def template_of(service: Obj) -> Obj:
    spec = service.setdefault("spec", {})
    template: Obj = spec.setdefault("template", {})
    template.setdefault("metadata", {})
    template.setdefault("spec", {})
    return template


def container_of(pod_spec: Obj) -> Obj:
    """The user container (the first one), made if missing."""
    containers = pod_spec.setdefault("containers", [])
    if not containers:
        containers.append({})
    c: Obj = containers[0]
    return c


def _env_var_source(spec: str) -> Obj:
    parts = spec.split(":", 2)
    if len(parts) != 3:
        raise KnError('argument requires a value in form "resourceType:name:key" where "resourceType" '
                      f'can be one of "config-map" ("cm") or "secret" ("sc"); got {goq(spec)}')
    kind, name, key = (p.strip() for p in parts)
    if kind in ("config-map", "cm"):
        source_type, ref = "ConfigMap", "configMapKeyRef"
    elif kind in ("secret", "sc"):
        source_type, ref = "Secret", "secretKeyRef"
    else:
        raise KnError(f'unsupported env source type "{goq(parts[0])}"; supported source types are '
                      '"config-map" ("cm") and "secret" ("sc")')
    if not name:
        raise KnError(f"the name of {source_type} cannot be an empty string")
    if not key:
        raise KnError(f'the key referenced by resource {source_type} "{name}" cannot be an empty string')
    return {ref: {"name": name, "key": key}}


def _update_env(container: Obj, env: Sequence[str], value_from: Sequence[str]) -> None:
    try:
        to_set, remove = ordered_and_removals(env)
    except KnError as e:
        raise KnError(f"Invalid --env: {e}") from None
    try:
        vf_set, vf_remove = ordered_and_removals(value_from)
    except KnError as e:
        raise KnError(f"Invalid --env-value-from: {e}") from None
    updates: dict[str, Obj] = {k: {"name": k, "value": v} for k, v in to_set.items()}
    for k, v in vf_set.items():
        updates[k] = {"name": k, "valueFrom": _env_var_source(v)}
    current: list[Obj] = list(container.get("env") or [])
    done: set[str] = set()
    for i, ev in enumerate(current):
        if ev.get("name") in updates:
            current[i] = updates[ev["name"]]
            done.add(ev["name"])
    current += [ev for name, ev in updates.items() if name not in done]
    for name in [*remove, *vf_remove]:
        for i, ev in enumerate(current):
            if ev.get("name") == name:
                del current[i]
                break
    if current:
        container["env"] = current
    else:
        container.pop("env", None)


def _env_from_source(spec: str) -> tuple[str, str]:
    """("configMapRef"|"secretRef", name) from "config-map:name" / "cm:" / "secret:" / "sc:"."""
    parts = spec.split(":", 2)
    if len(parts) < 2:
        quoted = "[" + " ".join(goq(p) for p in parts) + "]"
        raise KnError(f"argument requires a value that contains the : character; got {goq(spec)}, {quoted}")
    kind = parts[0].strip()
    if len(parts) == 3:
        if kind in ("config-map", "cm", "secret", "sc"):
            raise KnError(f"incorrect mount details for type {goq(kind)}")
        raise KnError(f'unsupported volume type "{goq(parts[0])}"; supported volume types are '
                      '"config-map or cm", "secret or sc", "volume or vo", and "emptyDir or ed"')
    name = parts[1].strip()
    if kind in ("config-map", "cm"):
        ref, type_name = "configMapRef", "config-map"
    elif kind in ("secret", "sc"):
        ref, type_name = "secretRef", "secret"
    else:
        raise KnError(f'unsupported volume source type "{goq(parts[0])}"; supported volume source '
                      'types are "config-map" and "secret"')
    if not name:
        raise KnError(f"the name of {type_name} cannot be an empty string")
    return ref, name


def _update_env_from(container: Obj, values: Sequence[str]) -> None:
    add: list[str] = []
    remove: list[str] = []
    for v in values:
        if v == "-":
            raise KnError('"-" is not a valid value for "--env-from"')
        (remove if v.endswith("-") else add).append(v[:-1] if v.endswith("-") else v)
    sources: list[Obj] = list(container.get("envFrom") or [])
    existing: set[tuple[str, str]] = {(ref, str((s.get(ref) or {}).get("name", ""))) for s in sources
                                      for ref in ("configMapRef", "secretRef") if ref in s}
    for spec in add:
        ref, name = _env_from_source(spec)
        if (ref, name) not in existing:
            sources.append({ref: {"name": name}})
            existing.add((ref, name))
    for spec in remove:
        ref, name = _env_from_source(spec)
        for i, s in enumerate(sources):
            if (s.get(ref) or {}).get("name") == name:
                del sources[i]
                break
    if sources:
        container["envFrom"] = sources
    else:
        container.pop("envFrom", None)


def _resource_list(statements: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    if not statements:
        return {}, []
    resources = map_allowing_singles(statements)
    remove = pop_minus_suffix(resources)
    return {k: check_quantity(v) for k, v in resources.items()}, remove


def _update_resources(container: Obj, requests: Sequence[str], limits: Sequence[str]) -> None:
    req_set, req_remove = _resource_list(requests)
    lim_set, lim_remove = _resource_list(limits)
    if not (req_set or req_remove or lim_set or lim_remove):
        return
    res = container.setdefault("resources", {})
    for key, to_set, to_remove in (("requests", req_set, req_remove), ("limits", lim_set, lim_remove)):
        current = dict(res.get(key) or {})
        current.update(to_set)
        for k in to_remove:
            current.pop(k, None)
        if current:
            res[key] = current
        else:
            res.pop(key, None)
    if not res:
        container.pop("resources", None)


PORT_FORMAT_ERR = ("the port specification '{}' is not valid. Please provide in the format "
                   "'NAME:PORT', where 'NAME' is optional. Examples: '--port h2c:8080' , '--port 8080'.")


def parse_port(port: str) -> Obj:
    """kn's UpdateContainerPort: "NAME:PORT" or "PORT" -> a ContainerPort."""
    name, sep, number = port.partition(":")
    if not sep:
        name, number = "", port
    if not re.fullmatch(r"[+-]?\d+", number) or not -2**31 <= int(number) < 2**31:
        raise KnError(PORT_FORMAT_ERR.format(port))
    out: Obj = {"containerPort": int(number)}
    if name:
        out["name"] = name
    return out


_PULL_POLICIES = {"always": "Always", "never": "Never", "ifnotpresent": "IfNotPresent"}


def resolve_pod_spec(pod_spec: Obj, f: EditFlags) -> None:
    """kn's PodSpecFlags.ResolvePodSpec: the container-level flags, in kn's order."""
    container = container_of(pod_spec)
    if f.env or f.env_value_from:
        _update_env(container, f.env, f.env_value_from)
    if f.env_from:
        _update_env_from(container, f.env_from)
    if f.image is not None:
        container["image"] = f.image
    if f.pull_policy is not None:
        policy = _PULL_POLICIES.get(f.pull_policy.lower())
        if policy is None:
            raise KnError(f"invalid --pull-policy {f.pull_policy}. Valid arguments (case insensitive): "
                          "Always | Never | IfNotPresent")
        container["imagePullPolicy"] = policy
    _update_resources(container, f.request, f.limit)
    if f.cmd:
        container["command"] = list(f.cmd)
    if f.arg:
        container["args"] = list(f.arg)
    if f.port is not None:
        container["ports"] = [parse_port(f.port)]
    if f.service_account is not None:
        sa = f.service_account.strip()
        if sa:
            pod_spec["serviceAccountName"] = sa
        else:
            pod_spec.pop("serviceAccountName", None)
    if f.pull_secret is not None:
        secret = f.pull_secret.strip()
        if secret:
            pod_spec["imagePullSecrets"] = [{"name": secret}]
        else:
            pod_spec.pop("imagePullSecrets", None)
    if f.user is not None:
        container["securityContext"] = {"runAsUser": f.user}


# --- revision names -----------------------------------------------------------------
_TEMPLATE_ACTION = re.compile(r"\{\{\s*(.*?)\s*\}\}")


def generate_revision_name(template: str, service: Obj, random: Callable[[int], str]) -> str:
    """kn's GenerateRevisionName: {{.Service}}, {{.Generation}} and {{.Random n}}; prefix '<svc>-'."""
    name = service["metadata"]["name"]
    generation = int(service["metadata"].get("generation") or 0) + 1

    def action(m: re.Match[str]) -> str:
        text = m.group(1)
        if text == ".Service":
            return str(name)
        if text == ".Generation":
            return str(generation)
        r = re.fullmatch(r"\.Random\s+(\d+)", text)
        if r:
            return random(int(r.group(1)))
        raise KnError(f"template: revisionName:1: cannot evaluate {{{{{text}}}}}: "
                      "only {{.Service}}, {{.Generation}} and {{.Random n}} are known")

    res = _TEMPLATE_ACTION.sub(action, template)
    if res == "":
        return ""
    prefix = f"{name}-"
    return res if res.startswith(prefix) else prefix + res


def random_consonants(rng: Callable[[int], int]) -> Callable[[int], str]:
    """{{.Random n}}: n of kn's consonants, picked by rng(len) -> index."""
    return lambda n: "".join(_CONSONANTS[rng(len(_CONSONANTS))] for _ in range(n))


# --- digest pinning (kn's --lock-to-digest) -----------------------------------------------
def _update_user_image_annotation(template: Obj) -> None:
    containers = template["spec"].get("containers") or []
    if not containers:
        return
    image = str(containers[0].get("image", ""))
    anns = template["metadata"].setdefault("annotations", {})
    if "@" in image and USER_IMAGE in anns:
        image = anns[USER_IMAGE]
    anns[USER_IMAGE] = image


def _pin_image_to_digest(template: Obj, base_revision: Obj | None) -> None:
    if base_revision is None:
        return
    current = (template["spec"].get("containers") or [{}])[0]
    base_spec = base_revision.get("spec") or {}
    base_containers = base_spec.get("containers") or []
    name = template["metadata"].get("name", "")
    base_name = base_revision.get("metadata", {}).get("name", "")
    if not current:
        raise KnError(f"can not pin image to digest: no container given in current revision {name}")
    if not base_containers:
        raise KnError(f"can not pin image to digest: no container found in base revision {base_name}")
    if current.get("image") != base_containers[0].get("image"):
        raise KnError(f"can not pin image to digest: current revision {name} contains unexpected image "
                      f"({current.get('image')}) that does not fit to the base revision's {base_name} "
                      f"image ({base_containers[0].get('image')})")
    statuses = (base_revision.get("status") or {}).get("containerStatuses") or []
    digest = statuses[0].get("imageDigest", "") if statuses else ""
    if digest:
        current["image"] = digest


def should_pin_to_digest(service: Obj, f: EditFlags) -> bool:
    """kn pins when the user-image annotation (or --lock-to-digest) says so and a revision is made."""
    anns = (service.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {})
    if USER_IMAGE not in anns and f.lock_to_digest is None:
        return False
    return f.lock_to_digest is not False and f.any_mutation()


def needs_base_revision(service: Obj, f: EditFlags) -> bool:
    """Whether apply_edits wants the base revision (to pin the image to its digest)."""
    return f.image is None and should_pin_to_digest(service, f)


def base_revision_names(service: Obj) -> list[str]:
    """kn's GetBaseRevision candidates: the template's BYO name, then the latest created revision."""
    template_name = service.get("spec", {}).get("template", {}).get("metadata", {}).get("name", "")
    latest = (service.get("status") or {}).get("latestCreatedRevisionName", "")
    return [str(n) for n in (template_name, latest) if n]


def is_base_revision(service: Obj, revision: Obj, by_template_name: bool) -> bool:
    """A BYO-named revision always is; the latest created one only if it is of this generation."""
    if by_template_name:
        return True
    gen = (revision.get("metadata", {}).get("labels") or {}).get(GENERATION_LABEL, "")
    return str(gen) == str(service.get("metadata", {}).get("generation", ""))


# --- apply ----------------------------------------------------------------------------
def _scale_range(spec: str) -> tuple[int | None, int | None]:
    if ".." in spec:
        parts = spec.split("..")
        lo = _parse_go_int(parts[0]) if parts[0] != "" else None
        hi = _parse_go_int(parts[1]) if parts[1] != "" else None
        return lo, hi
    if re.fullmatch(r"[+-]?\d+", spec):
        return int(spec), int(spec)
    raise KnError("Scale must be of the format x..y or x")


def _update_meta_labels(meta: Obj, flag_labels: Sequence[str], all_labels: dict[str, str]) -> None:
    try:
        specific = map_allowing_singles(flag_labels)
    except KnError as e:
        raise KnError(f"Unable to parse label flags: {e}") from None
    merged = {**all_labels, **specific}
    remove = pop_minus_suffix(merged)
    labels = dict(meta.get("labels") or {})
    labels.update(merged)
    for k in remove:
        labels.pop(k, None)
    if labels:
        meta["labels"] = labels
    else:
        meta.pop("labels", None)


def apply_edits(service: Obj, f: EditFlags, *, now: datetime, base_revision: Obj | None = None,
                random: Callable[[int], str] = lambda n: "x" * n, command: str = "create") -> Obj:
    """kn's ConfigurationEditFlags.Apply on a copy of `service`; returns the edited copy.

    `base_revision` is the revision whose image digest an update pins to (see
    needs_base_revision); `random` fills {{.Random n}} in --revision-name.
    """
    svc = copy.deepcopy(service)
    meta = svc.setdefault("metadata", {})
    template = template_of(svc)
    tmeta = template["metadata"]
    mutation = f.any_mutation()

    resolve_pod_spec(template["spec"], f)

    if f.revision_name:
        name = generate_revision_name(f.revision_name, svc, random)
        if mutation:
            tmeta["name"] = name
    elif mutation and tmeta.get("name") and command == "update":
        # Deliberate difference: kn 1.10 keeps an earlier --revision-name here, which the
        # server then rejects (template changed without a new name); skiff lets the
        # server name the new revision instead.
        tmeta.pop("name", None)

    if mutation and command != "apply":
        tmeta.setdefault("annotations", {})[UPDATE_TIMESTAMP] = rfc3339(now)

    if should_pin_to_digest(svc, f):
        _update_user_image_annotation(template)
        if f.image is None:
            _pin_image_to_digest(template, base_revision)
    if f.lock_to_digest is False:
        (tmeta.get("annotations") or {}).pop(USER_IMAGE, None)
    if (tmeta.get("annotations") or {}).get(USER_IMAGE) == "":
        del tmeta["annotations"][USER_IMAGE]   # the create placeholder, never filled

    if f.scale_min is not None:
        _set_revision_annotations(template, {MIN_SCALE: str(f.scale_min)})
    if f.scale_max is not None:
        _set_revision_annotations(template, {MAX_SCALE: str(f.scale_max)})
    if f.scale is not None:
        if f.scale_max is not None:
            raise KnError("only --scale or --scale-max can be specified")
        if f.scale_min is not None:
            raise KnError("only --scale or --scale-min can be specified")
        lo, hi = _scale_range(f.scale)
        if hi is not None:
            _set_revision_annotations(template, {MAX_SCALE: str(hi)})
        if lo is not None:
            _set_revision_annotations(template, {MIN_SCALE: str(lo)})
    if f.scale_window is not None:
        try:
            go_duration(f.scale_window)
        except KnError as e:
            raise KnError(f"invalid duration for 'scale-window': {e}") from None
        _set_revision_annotations(template, {WINDOW: f.scale_window})
    if f.scale_target is not None:
        _set_revision_annotations(template, {TARGET: str(f.scale_target)})
    if f.scale_metric is not None:
        tmeta.setdefault("annotations", {})[METRIC] = f.scale_metric
    if f.scale_activation is not None:
        _set_revision_annotations(template, {ACTIVATION_SCALE: str(f.scale_activation)})
    if f.concurrency_limit is not None:
        if f.concurrency_limit < 0:
            raise KnError(f"invalid concurrency-limit {f.concurrency_limit} (must not be less than 0)")
        template["spec"]["containerConcurrency"] = f.concurrency_limit
    if f.scale_utilization is not None:
        _set_revision_annotations(template, {TARGET_UTILIZATION: str(f.scale_utilization)})

    if f.cluster_local is not None:
        labels = dict(meta.get("labels") or {})
        if f.cluster_local:
            labels[VISIBILITY_LABEL] = CLUSTER_LOCAL
        else:
            labels.pop(VISIBILITY_LABEL, None)
        if labels:
            meta["labels"] = labels
        else:
            meta.pop("labels", None)

    if f.label or f.label_service or f.label_revision:
        try:
            all_labels = map_allowing_singles(f.label)
        except KnError as e:
            raise KnError(f"Invalid --label: {e}") from None
        try:
            _update_meta_labels(meta, f.label_service, all_labels)
        except KnError as e:
            raise KnError(f"Invalid --label-service: {e}") from None
        try:
            _update_meta_labels(tmeta, f.label_revision, all_labels)
        except KnError as e:
            raise KnError(f"Invalid --label-revision: {e}") from None

    if f.annotation or f.annotation_service or f.annotation_revision:
        _apply_annotations(svc, template, f)

    if f.scale_init is not None:
        if f.annotation and any(INITIAL_SCALE in a for a in f.annotation):
            raise KnError(f"only one of the --scale-init or --annotation {INITIAL_SCALE} can be specified")
        _set_revision_annotations(template, {INITIAL_SCALE: str(f.scale_init)})

    if f.timeout is not None:
        template["spec"]["timeoutSeconds"] = f.timeout

    # The server's cross-field checks on the merged result (kn checks each flag alone,
    # so that --scale-min 5 --scale-max 2 would only fail at the webhook).
    anns = {k: v for k, v in (tmeta.get("annotations") or {}).items()
            if k in (MIN_SCALE, MAX_SCALE, ACTIVATION_SCALE)}
    errs = [e for e in validate_autoscaling(anns) if " is less than " in e or " is greater than " in e]
    if errs:
        raise KnError("\n".join(errs))
    if not tmeta.get("annotations"):
        tmeta.pop("annotations", None)
    return svc


def _apply_annotations(svc: Obj, template: Obj, f: EditFlags) -> None:
    try:
        all_map = map_allowing_singles(f.annotation)
    except KnError as e:
        raise KnError(f"Invalid --annotation: {e}") from None
    try:
        rev_map = map_allowing_singles(f.annotation_revision)
    except KnError as e:
        raise KnError(f"Invalid --annotation-revision: {e}") from None
    try:
        svc_map = map_allowing_singles(f.annotation_service)
    except KnError as e:
        raise KnError(f"Invalid --annotation-service: {e}") from None
    to_remove = pop_minus_suffix(all_map)
    # Deliberate difference: kn 1.10 documents "name-" for --annotation-revision and
    # --annotation-service but stores it as an annotation named "name-"; skiff unsets.
    rev_remove = pop_minus_suffix(rev_map)
    svc_remove = pop_minus_suffix(svc_map)
    _set_revision_annotations(template, {**all_map, **rev_map}, [*to_remove, *rev_remove])
    service_anns = {k: v for k, v in all_map.items() if not k.startswith(AUTOSCALING)}
    for k, v in svc_map.items():
        if k.startswith(AUTOSCALING):
            raise KnError(f"service can not have auto-scaling related annotation: {k} , please update "
                          "using '--annotation-revision'")
        service_anns[k] = v
    meta = svc["metadata"]
    anns = dict(meta.get("annotations") or {})
    anns.update(service_anns)
    for k in [*to_remove, *svc_remove]:
        anns.pop(k, None)
    if anns:
        meta["annotations"] = anns
    else:
        meta.pop("annotations", None)


def prepare_replace(new: Obj, existing: Obj) -> Obj:
    """`create --force`: the new Service keeps the creator/updater annotations and resourceVersion."""
    out = copy.deepcopy(new)
    meta = out.setdefault("metadata", {})
    anns = meta.setdefault("annotations", {})
    old = existing.get("metadata", {})
    for k in (CREATOR, UPDATER):
        if k in (old.get("annotations") or {}):
            anns[k] = old["annotations"][k]
    if not anns:
        meta.pop("annotations", None)
    meta["resourceVersion"] = old.get("resourceVersion", "")
    return out
