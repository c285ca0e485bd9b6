"""What skiff accepts but does not act on yet says so, rather than silently pretending.

Pure: (kind, object) -> the warnings a write answers with (the `Warning: 299`
header kubectl prints and `skiff apply` repeats), and the status condition an
object of a not-implemented kind is born with (Ready Unknown, reason
NotImplemented). A kind is marked by its domain (Kind.not_implemented, in
each domain's crds.py); pod templates asking for `nvidia.com/gpu` are
flagged here until GPU scheduling lands. Neighbours: core/kinds.py, the
registry (conditions on create), the API server (headers).
"""

from __future__ import annotations

from typing import Any

from skiff.core.client import Obj
from skiff.core.kinds import Kind

GPU = "nvidia.com/gpu"
GPU_WARNING = f"{GPU} is not scheduled yet: the pod runs, but no GPU is assigned to it"

# Where each built-in or Knative kind keeps its pod spec.
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Service": ("spec", "template", "spec"),          # serving.knative.dev
    "Configuration": ("spec", "template", "spec"),
    "Revision": ("spec",),
}


# Field-level notes: a field of an implemented kind that is accepted but not acted on.
VOLUME_CLAIM_TEMPLATES_WARNING = ("spec.volumeClaimTemplates: no storage is provisioned: no "
                                  "PersistentVolumeClaims are made and the pods run without "
                                  "these volumes")


def condition(k: Kind, now: str) -> Obj:
    return {"type": "Ready", "status": "Unknown", "reason": "NotImplemented",
            "message": k.not_implemented, "lastTransitionTime": now}


def _pod_spec(k: Kind, obj: Obj) -> Obj | None:
    path = _POD_SPEC_PATHS.get(k.kind)
    if path is None or (k.kind == "Service" and k.group != "serving.knative.dev"):
        return None
    cur: Any = obj
    for key in path:
        cur = cur.get(key) if isinstance(cur, dict) else None
    return cur if isinstance(cur, dict) else None


def _asks_for_gpu(spec: Obj) -> bool:
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        res = c.get("resources") if isinstance(c, dict) else None
        if isinstance(res, dict) and any(isinstance(res.get(f), dict) and GPU in res[f]
                                         for f in ("limits", "requests")):
            return True
    return False


def warnings(k: Kind, obj: Obj) -> list[str]:
    """The warnings a successful write of `obj` answers with."""
    name = (obj.get("metadata") or {}).get("name", "")
    out: list[str] = []
    if k.not_implemented:
        out.append(f'{k.resource} "{name}": {k.not_implemented}')
    if k.builtin and k.kind == "StatefulSet" and ((obj.get("spec") or {}).get("volumeClaimTemplates")):
        out.append(f'{k.resource} "{name}": {VOLUME_CLAIM_TEMPLATES_WARNING}')
    spec = _pod_spec(k, obj)
    if spec is not None and _asks_for_gpu(spec):
        out.append(f'{k.resource} "{name}": {GPU_WARNING}')
    return out


def warning_header(text: str) -> str:
    """RFC 7234 warn-code 299 with agent "-", as kube-apiserver sends it."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'
