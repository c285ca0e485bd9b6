"""Defaulting of the built-in kinds, as kube-apiserver's defaulters fill them in. Pure.

Object in, object defaulted in place: the pod spec defaults kubectl shows in
`-o yaml`, the workloads' (Deployment, ReplicaSet) strategy and template
defaults, a Namespace's finalizer, phase and name label, a Secret's
stringData folded into data, and the status a Pod and a Service are born
with. Re-applied on every write. Callers: the per-kind strategies
(core/apiserver/strategy.py), and reconcilers that compare what they want
with what the API server would store (serving's revision reconciler, the
workload admission).
"""

from __future__ import annotations

import base64

from skiff.core.client import Obj
from skiff.node.status import qos_class


def _default_pod_spec(spec: Obj) -> None:
    """The pod spec defaults kube-apiserver fills in (kubectl shows them in -o yaml)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if not isinstance(c, dict):
            continue
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        image = str(c.get("image", ""))
        tag = image.rsplit("/", 1)[-1]
        latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
        c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        c.setdefault("resources", {})
        for p in c.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")


def default_workload(kind: str, obj: Obj) -> None:
    """Defaults for Pods, Deployments and ReplicaSets, re-applied on every write (as apiserver
    defaulting is: kubectl's apply patches `$retainKeys` away strategy.rollingUpdate,
    defaulting restores it)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if kind == "Pod":
        _default_pod_spec(spec)
        return
    spec.setdefault("replicas", 1)
    if kind == "ReplicaSet":
        _default_template(spec)
        return
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {"maxSurge": "25%", "maxUnavailable": "25%"})
    _default_template(spec)


def _default_template(spec: Obj) -> None:
    tmpl = spec.get("template")
    if isinstance(tmpl, dict) and isinstance(tmpl.get("spec"), dict):
        tmpl.setdefault("metadata", {})
        _default_pod_spec(tmpl["spec"])


def default_namespace(obj: Obj) -> None:
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {})["phase"] = "Active"
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = \
        obj["metadata"].get("name", "")


def fold_string_data(obj: Obj) -> None:
    """A Secret's write-only stringData, base64-encoded into data (stringData wins)."""
    string_data = obj.pop("stringData", None) or {}
    if string_data and isinstance(string_data, dict):
        data = obj.setdefault("data", {})
        for key, val in string_data.items():
            data[key] = base64.b64encode(str(val).encode()).decode()


def initial_pod_status(obj: Obj) -> Obj:
    """What client libraries assert on right after a create (the node fills in the rest)."""
    return {"phase": "Pending", "qosClass": qos_class(obj)}
