"""Revision reconciler: a Revision's Deployment, and its conditions from the pods.

As upstream pkg/reconciler/revision: keep `<rev>-deployment`
(resources.make_deployment) owned by the Revision and report
ResourcesAvailable, ContainerHealthy and Ready, with Active apart
(severity Info). The Deployment's status maps through
TransformDeploymentStatus; while no pod is available the first pod is
examined: unschedulable -> ResourcesAvailable False, a container that
terminated -> ContainerHealthy False "ExitCode<n>" / "Container failed
with: ...", an image that cannot be pulled (ErrImagePull, ImagePullBackOff
from the node runtime) -> ContainerHealthy False with the pod's reason and
message at once (upstream waits for the progress deadline and the image
digest resolver; skiff has neither a registry nor a deadline worth
waiting for). skiff has no PodAutoscaler yet; emulate_autoscaler() stands
in for PropagateAutoscalerStatus: the scale target counts as initialized
once a pod has been ready (then ResourcesAvailable and ContainerHealthy
turn True), Active follows the ready pods, and a Revision scaled to zero
because no route uses it is Active False "NoTraffic". revision_status() is
the pure part, table-tested. Neighbours: core/reconcilers/deployment.py
(which runs the pods), configuration.py (reads Ready), resources.py.
"""

from __future__ import annotations

import copy
from typing import Any

from skiff.core import conditions
from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.conditions import ConditionSet
from skiff.core.controller import Key, Mapper, owned_by
from skiff.core.defaults import default_workload
from skiff.core.reconcile import KeySet, differs, get_or_none, write_status
from skiff.serving import names, resources
from skiff.serving.config import ConfigHolder, ServingConfig
from skiff.serving.names import REVISION_LABEL, REVISION_UID_LABEL
from skiff.serving.reconcilers.base import DEPLOYMENT, KNATIVE_SERVING, POD, REVISION, load_config

RESOURCES_AVAILABLE = "ResourcesAvailable"
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


def emulate_autoscaler(m: conditions.Manager, status: Obj, deployment: Obj,
                       was_initialized: bool, failing: bool = False) -> None:
    """PropagateAutoscalerStatus with the KPA's view derived from the Deployment; `failing`:
    the pods were just found failing (that keeps ContainerHealthy False)."""
    ds = deployment.get("status") or {}
    ready = int(ds.get("readyReplicas") or 0)
    desired = int((deployment.get("spec") or {}).get("replicas") or 0)
    initialized = was_initialized or ready > 0
    status["actualReplicas"] = ready
    status["desiredReplicas"] = desired
    res_unavailable = failing or \
        conditions.status_of(status, RESOURCES_AVAILABLE) == conditions.FALSE
    if initialized and not res_unavailable:
        m.mark_true(RESOURCES_AVAILABLE)
        m.mark_true(CONTAINER_HEALTHY)
    if conditions.status_of(status, RESOURCES_AVAILABLE) == conditions.TRUE and not initialized:
        m.mark_unknown(RESOURCES_AVAILABLE, DEPLOYING, "")
    if ready > 0:
        m.mark_true(ACTIVE)
    elif desired == 0 and initialized:
        m.mark_false(ACTIVE, "NoTraffic", "The target is not receiving traffic.")
    else:
        m.mark_unknown(ACTIVE, "Queued",
                       "Requests to the target are being buffered as resources are provisioned.")


def revision_status(rev: Obj, status: Obj, deployment: Obj, pods: list[Obj],
                    created: bool) -> None:
    """Everything the reconciler reports, given the Deployment and its pods. Pure."""
    m = REVISION_CONDITIONS.manage(status)
    was_initialized = conditions.status_of(status, CONTAINER_HEALTHY) == conditions.TRUE or \
        conditions.status_of(status, conditions.READY) == conditions.TRUE
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
    emulate_autoscaler(m, status, deployment, was_initialized, failing)
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
        elif differs(have, self._carry_over(self._keep_selector(want, have), have)):
            upd = copy.deepcopy(have)
            merged = self._carry_over(self._keep_selector(want, have), have)
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
        pods: list[Obj] = []
        if not created:
            pods = await self.client.list(
                POD, ns, label_selector=f"{REVISION_UID_LABEL}={rev['metadata']['uid']}")
        revision_status(rev, status, have, pods, created)
        return None

    @staticmethod
    def _carry_over(want: Obj, have: Obj) -> Obj:
        """As upstream's checkAndUpdateDeployment: labels and annotations others put on the
        Deployment (the Deployment controller's revision annotation) are kept beside ours."""
        out: dict[str, Any] = copy.deepcopy(want)
        for f in ("labels", "annotations"):
            merged = {**((have.get("metadata") or {}).get(f) or {}), **(want["metadata"].get(f) or {})}
            if merged:
                out["metadata"][f] = merged
        return out

    @staticmethod
    def _keep_selector(want: Obj, have: Obj) -> Obj:
        """A Deployment's selector is immutable: keep the one it was made with."""
        out: dict[str, Any] = copy.deepcopy(want)
        if (have.get("spec") or {}).get("selector"):
            out["spec"]["selector"] = have["spec"]["selector"]
        return out
