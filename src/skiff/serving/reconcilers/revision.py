"""Revision reconciler: a Revision's Deployment and PodAutoscaler, and its conditions.

As upstream pkg/reconciler/revision: keep `<rev>-deployment`
(resources.make_deployment) and the PodAutoscaler named like the
Revision (resources.make_pa), both owned by the Revision, and report
ResourcesAvailable, ContainerHealthy and Ready, with Active apart
(severity Info). The Deployment is made with the initial scale; after
that its spec.replicas is the KPA's (reconcilers/podautoscaler.py), so an
update keeps the replicas the Deployment has. The Deployment's status maps
through TransformDeploymentStatus; while no pod is available the first pod
is examined: unschedulable -> ResourcesAvailable False, a container that
terminated -> ContainerHealthy False "ExitCode<n>" / "Container failed
with: ...", an image that cannot be pulled (ErrImagePull, ImagePullBackOff
from the node runtime) -> ContainerHealthy False with the pod's reason and
message at once (upstream waits for the progress deadline and the image
digest resolver; skiff has neither a registry nor a deadline worth
waiting for). The PodAutoscaler's status comes back through
PropagateAutoscalerStatus: actualReplicas/desiredReplicas from its
actualScale/desiredScale, ResourcesAvailable and ContainerHealthy once its
scale target is initialized, Active from its Ready condition (False
"NoTraffic" when scaled to zero). revision_status() is the pure part,
table-tested. Neighbours: core/reconcilers/deployment.py (which runs the
pods), reconcilers/podautoscaler.py (which scales them), configuration.py
(reads Ready), resources.py.
"""

from __future__ import annotations

import copy

from skiff.core import conditions
from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.conditions import ConditionSet
from skiff.core.controller import Key, Mapper, owned_by
from skiff.core.defaults import default_workload
from skiff.core.reconcile import KeySet, desired, differs, get_or_none, write_status
from skiff.serving import names, resources
from skiff.serving.config import ConfigHolder, ServingConfig
from skiff.serving.names import REVISION_LABEL, REVISION_UID_LABEL
from skiff.serving.reconcilers.base import (
    DEPLOYMENT,
    KNATIVE_SERVING,
    POD,
    POD_AUTOSCALER,
    REVISION,
    load_config,
)

RESOURCES_AVAILABLE = "ResourcesAvailable"
SCALE_TARGET_INITIALIZED = "ScaleTargetInitialized"     # the PodAutoscaler's
CONTAINER_HEALTHY = "ContainerHealthy"
ACTIVE = "Active"
REVISION_CONDITIONS = ConditionSet((RESOURCES_AVAILABLE, CONTAINER_HEALTHY))
DEPLOYING = "Deploying"
IMAGE_PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")


def serving_container_name(rev: Obj) -> str:
    """Spec.GetContainer(): the container with a port, else the only (first) one."""
    containers = (rev.get("spec") or {}).get("containers") or []
    for c in containers:
        if c.get("ports"):
            return str(c.get("name", ""))
    return str(containers[0].get("name", "")) if containers else ""


def propagate_deployment(m: conditions.Manager, deployment: Obj) -> None:
    """PropagateDeploymentStatus via TransformDeploymentStatus: Progressing and
    ReplicaFailure decide ResourcesAvailable."""
    progressing: tuple[str, str, str] = (conditions.UNKNOWN, DEPLOYING, "")
    replica_failure: tuple[str, str, str] | None = None
    for c in (deployment.get("status") or {}).get("conditions") or []:
        st, reason, msg = c.get("status"), c.get("reason", ""), c.get("message", "")
        if c.get("type") == "Progressing":
            progressing = (st or conditions.UNKNOWN, reason, msg)
        elif c.get("type") == "ReplicaFailure" and st == conditions.TRUE:
            replica_failure = (conditions.FALSE, reason, msg)
    st, reason, msg = replica_failure or progressing
    if st == conditions.TRUE:
        m.mark_true(RESOURCES_AVAILABLE)
    elif st == conditions.FALSE:
        m.mark_false(RESOURCES_AVAILABLE, reason, msg)
    else:
        m.mark_unknown(RESOURCES_AVAILABLE, reason, msg)


def _timed_out(deployment: Obj) -> bool:
    return any(c.get("type") == "Progressing" and c.get("status") == conditions.FALSE
               and c.get("reason") == "ProgressDeadlineExceeded"
               for c in (deployment.get("status") or {}).get("conditions") or [])


def examine_pods(m: conditions.Manager, rev: Obj, deployment: Obj, pods: list[Obj]) -> bool:
    """Surface why no pod is available: scheduling, exits, image pulls. True if it found why."""
    if not pods:
        return False
    pod = sorted(pods, key=lambda p: str(p["metadata"]["name"]))[0]
    st = pod.get("status") or {}
    found = False
    for c in st.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == conditions.FALSE:
            m.mark_false(RESOURCES_AVAILABLE, c.get("reason", ""), c.get("message", ""))
            found = True
            break
    want = serving_container_name(rev)
    for cs in st.get("containerStatuses") or []:
        if cs.get("name") != want:
            continue
        term = (cs.get("lastState") or {}).get("terminated")
        waiting = (cs.get("state") or {}).get("waiting")
        if term:
            code, msg = int(term.get("exitCode") or 0), term.get("message") or ""
            if code == 0 and not msg:
                msg = "container exited with no error"
            m.mark_false(CONTAINER_HEALTHY, f"ExitCode{code}", f"Container failed with: {msg}")
            found = True
        elif waiting and waiting.get("reason") in IMAGE_PULL_REASONS:
            m.mark_false(CONTAINER_HEALTHY, waiting.get("reason", ""), waiting.get("message", ""))
            found = True
        elif waiting and _timed_out(deployment):
            m.mark_false(RESOURCES_AVAILABLE, waiting.get("reason", ""), waiting.get("message", ""))
            found = True
        break
    return found


def propagate_autoscaler_status(m: conditions.Manager, status: Obj, pa_status: Obj,
                                failing: bool = False) -> None:
    """PropagateAutoscalerStatus: the PodAutoscaler's view of the revision's scale; `failing`:
    the pods were just found failing (that keeps ResourcesAvailable/ContainerHealthy as found)."""
    ps = pa_status
    for src, dst in (("actualScale", "actualReplicas"), ("desiredScale", "desiredReplicas")):
        v = ps.get(src)
        if isinstance(v, int) and v >= 0:
            status[dst] = v
        else:
            status.pop(dst, None)
    cond = conditions.get(ps, conditions.READY)
    if cond is None:
        m.mark_unknown(ACTIVE, DEPLOYING, "")
        return
    initialized = conditions.status_of(ps, SCALE_TARGET_INITIALIZED) == conditions.TRUE
    res_unavailable = failing or \
        conditions.status_of(status, RESOURCES_AVAILABLE) == conditions.FALSE
    if initialized and not res_unavailable:
        m.mark_true(RESOURCES_AVAILABLE)
        m.mark_true(CONTAINER_HEALTHY)
    # Scaled to zero before any service name (initial scale 0): not available yet.
    if conditions.status_of(status, RESOURCES_AVAILABLE) == conditions.TRUE and \
            not ps.get("serviceName"):
        m.mark_unknown(RESOURCES_AVAILABLE, DEPLOYING, "")
    st, reason, msg = cond.get("status"), cond.get("reason", ""), cond.get("message", "")
    if st == conditions.FALSE:
        # Scaled to zero without ever reaching the initial scale: activation failed.
        if not initialized and ps.get("serviceName") and \
                conditions.status_of(status, RESOURCES_AVAILABLE) != conditions.FALSE:
            m.mark_false(RESOURCES_AVAILABLE, "ProgressDeadlineExceeded",
                         "Initial scale was never achieved")
        m.mark_false(ACTIVE, reason, msg)
    elif st == conditions.TRUE:
        m.mark_true(ACTIVE)
        if not failing:
            m.mark_true(RESOURCES_AVAILABLE)
            m.mark_true(CONTAINER_HEALTHY)
    else:
        m.mark_unknown(ACTIVE, reason, msg)


def revision_status(rev: Obj, status: Obj, deployment: Obj, pods: list[Obj],
                    created: bool, pa: Obj | None = None) -> None:
    """Everything the reconciler reports, given the Deployment, its pods and the
    PodAutoscaler (None: not made yet). Pure."""
    m = REVISION_CONDITIONS.manage(status)
    if created:
        m.mark_unknown(RESOURCES_AVAILABLE, DEPLOYING, "")
        m.mark_unknown(CONTAINER_HEALTHY, DEPLOYING, "")
    else:
        propagate_deployment(m, deployment)
    ds = deployment.get("status") or {}
    failing = False
    if int((deployment.get("spec") or {}).get("replicas") or 0) > 0 and \
            not int(ds.get("availableReplicas") or 0):
        failing = examine_pods(m, rev, deployment, pods)
    propagate_autoscaler_status(m, status, (pa or {}).get("status") or {}, failing)
    status["serviceName"] = rev["metadata"]["name"]


def _pod_key(pod: Obj) -> list[Key]:
    rev = (pod["metadata"].get("labels") or {}).get(REVISION_LABEL)
    return [(pod["metadata"].get("namespace", ""), rev)] if rev else []


class RevisionReconciler:
    name = "serving-revision"
    primary = REVISION

    def __init__(self, client: Client, holder: ConfigHolder) -> None:
        self.client = client
        self.holder = holder
        self.known = KeySet()

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        return [(DEPLOYMENT, owned_by("Revision", names.GROUP)), (POD, _pod_key),
                (POD_AUTOSCALER, owned_by("Revision", names.GROUP)),
                (KNATIVE_SERVING, self.known.all())]

    async def reconcile(self, namespace: str, name: str) -> float | None:
        rev = await get_or_none(self.client, REVISION, name, namespace)
        if rev is None:
            self.known.gone((namespace, name))
            return None
        self.known.seen((namespace, name))
        if rev["metadata"].get("deletionTimestamp"):
            return None
        cfg = await load_config(self.client, self.holder)
        old_status = rev.get("status") or {}
        status = copy.deepcopy(old_status)
        gen = int(rev["metadata"].get("generation") or 1)
        conditions.pre_process(REVISION_CONDITIONS, status, gen)
        requeue: float | None = None
        try:
            requeue = await self._reconcile(rev, status, cfg)
        finally:
            status["observedGeneration"] = gen
            await write_status(self.client, rev, status, old_status)
        return requeue

    async def _reconcile(self, rev: Obj, status: Obj, cfg: ServingConfig) -> float | None:
        ns = rev["metadata"]["namespace"]
        want = resources.make_deployment(rev, cfg)
        # Compare with what the API server would store: its defaults filled in, or every
        # pass would see a difference (and the write would bump the generation).
        default_workload("Deployment", want)
        have = await get_or_none(self.client, DEPLOYMENT, want["metadata"]["name"], ns)
        created = False
        if have is None:
            have = await self.client.create(want)
            created = True
        elif not resources.is_controlled_by(have, rev):
            REVISION_CONDITIONS.manage(status).mark_false(
                RESOURCES_AVAILABLE, "NotOwned",
                f'There is an existing Deployment "{want["metadata"]["name"]}" that we do not own.')
            return 5.0
        else:
            # The KPA owns spec.replicas once the Deployment exists.
            want["spec"]["replicas"] = (have.get("spec") or {}).get("replicas", 1)
            merged = self._carry_over(self._keep_selector(want, have), have)
            if differs(have, merged):
                upd = copy.deepcopy(have)
                upd["spec"] = merged["spec"]
                upd["metadata"]["labels"] = merged["metadata"]["labels"]
                upd["metadata"]["annotations"] = merged["metadata"].get("annotations") or {}
                if not upd["metadata"]["annotations"]:
                    del upd["metadata"]["annotations"]
                try:
                    have = await self.client.update(upd)
                except ApiError as e:
                    if e.code != 409:
                        raise
                    return 0.1
        pa = await self._reconcile_pa(rev, status, cfg)
        if pa is None:
            return 5.0
        pods: list[Obj] = []
        if not created:
            pods = await self.client.list(
                POD, ns, label_selector=f"{REVISION_UID_LABEL}={rev['metadata']['uid']}")
        revision_status(rev, status, have, pods, created, pa)
        return None

    async def _reconcile_pa(self, rev: Obj, status: Obj, cfg: ServingConfig) -> Obj | None:
        """reconcilePA: create the PodAutoscaler, or bring its spec, labels and annotations back
        to ours. None when one of that name is not ours (reported on the status)."""
        want = resources.make_pa(rev, resources.autoscaler_config(cfg))
        ns, name = want["metadata"]["namespace"], want["metadata"]["name"]
        have = await get_or_none(self.client, POD_AUTOSCALER, name, ns)
        if have is None:
            return await self.client.create(want)
        if not resources.is_controlled_by(have, rev):
            REVISION_CONDITIONS.manage(status).mark_false(
                RESOURCES_AVAILABLE, "NotOwned",
                f'There is an existing PodAutoscaler "{name}" that we do not own.')
            return None
        if differs(have, want):
            upd = desired(have, want)
            have = await self.client.update(upd)
        return have

    @staticmethod
    def _carry_over(want: Obj, have: Obj) -> Obj:
        """As upstream's checkAndUpdateDeployment: labels and annotations others put on the
        Deployment (the Deployment controller's revision annotation) are kept beside ours."""
        meta = dict(want["metadata"])    # (copies of what changes only: `want` is not kept)
        for f in ("labels", "annotations"):
            merged = {**((have.get("metadata") or {}).get(f) or {}), **(want["metadata"].get(f) or {})}
            if merged:
                meta[f] = merged
        return {**want, "metadata": meta}

    @staticmethod
    def _keep_selector(want: Obj, have: Obj) -> Obj:
        """A Deployment's selector is immutable: keep the one it was made with."""
        if (have.get("spec") or {}).get("selector"):
            return {**want, "spec": {**want["spec"], "selector": have["spec"]["selector"]}}
        return want
