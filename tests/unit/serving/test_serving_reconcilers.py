"""The pure parts of the four serving reconcilers: world in -> status out."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.core import conditions
from skiff.serving.config import effective_config
from skiff.serving.reconcilers import configuration as cfgr
from skiff.serving.reconcilers import revision as revr
from skiff.serving.reconcilers import route as router
from skiff.serving.reconcilers import service as svcr

CFG = effective_config(None, "apps.example.com")


def conds(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", "")) for c in status.get("conditions") or []}


def ready_cond(status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    c = {"type": "Ready", "status": status}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


# --- service -------------------------------------------------------------------------

def child(gen: int, observed: int, ready: dict[str, Any] | None, **status: Any) -> dict[str, Any]:
    st: dict[str, Any] = {"observedGeneration": observed, **status}
    if ready:
        st["conditions"] = [ready]
    return {"metadata": {"name": "hello", "generation": gen},
            "spec": {"template": {"spec": {}}, "traffic": [
                {"configurationName": "hello", "latestRevision": True, "percent": 100}]},
            "status": st}


@pytest.mark.parametrize("config, route, want", [
    (child(1, 0, None), child(1, 0, None),
     {"ConfigurationsReady": ("Unknown", "OutOfDate"), "RoutesReady": ("Unknown", "OutOfDate"),
      "Ready": ("Unknown", "OutOfDate")}),
    (child(1, 1, ready_cond("True"), latestReadyRevisionName="hello-00001"),
     child(1, 1, ready_cond("True"), traffic=[{"revisionName": "hello-00001", "percent": 100,
                                               "latestRevision": True}]),
     {"ConfigurationsReady": ("True", ""), "RoutesReady": ("True", ""), "Ready": ("True", "")}),
    (child(1, 1, ready_cond("False", "RevisionFailed", 'Revision "x" failed with message: m.')),
     child(1, 1, ready_cond("Unknown", "RevisionMissing")),
     {"ConfigurationsReady": ("False", "RevisionFailed"), "RoutesReady": ("Unknown", "RevisionMissing"),
      "Ready": ("False", "RevisionFailed")}),
    # Route serves an older revision than the config's latest ready: not migrated yet.
    (child(2, 2, ready_cond("True"), latestReadyRevisionName="hello-00002"),
     child(1, 1, ready_cond("True"), traffic=[{"revisionName": "hello-00001", "percent": 100,
                                               "latestRevision": True}]),
     {"ConfigurationsReady": ("True", ""), "RoutesReady": ("Unknown", "TrafficNotMigrated"),
      "Ready": ("Unknown", "TrafficNotMigrated")}),
])
def test_service_propagation(config: dict[str, Any], route: dict[str, Any],
                             want: dict[str, tuple[str, str]]) -> None:
    status: dict[str, Any] = {}
    conditions.pre_process(svcr.SERVICE_CONDITIONS, status, 1)
    assert svcr.propagate_configuration(status, config)
    svcr.propagate_route(status, route, config)
    assert conds(status) == want


def test_service_copies_the_children_fields() -> None:
    status: dict[str, Any] = {"url": "stale"}
    config = child(1, 1, ready_cond("True"), latestReadyRevisionName="hello-00001",
                   latestCreatedRevisionName="hello-00001")
    route = child(1, 1, ready_cond("True"), url="https://u", address={"url": "http://a"},
                  traffic=[{"revisionName": "hello-00001", "percent": 100, "latestRevision": True}])
    svcr.propagate_configuration(status, config)
    svcr.propagate_route(status, route, config)
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        "url": "https://u", "address": {"url": "http://a"},
        "traffic": [{"revisionName": "hello-00001", "percent": 100, "latestRevision": True}],
        "latestReadyRevisionName": "hello-00001", "latestCreatedRevisionName": "hello-00001"}


def test_byo_configuration_must_catch_up_before_the_route() -> None:
    config = child(2, 1, ready_cond("True"))
    config["spec"]["template"]["metadata"] = {"name": "hello-v2"}
    assert not svcr.propagate_configuration({}, config)


# --- configuration -------------------------------------------------------------------

def config_obj(gen: int = 2, byo: str = "") -> dict[str, Any]:
    c: dict[str, Any] = {"metadata": {"name": "hello", "uid": "cfg-uid", "generation": gen},
                         "spec": {"template": {"spec": {"containers": [{"image": "i"}]}}}}
    if byo:
        c["spec"]["template"]["metadata"] = {"name": byo}
    return c


def rev(name: str, gen: int, ready: str = "True", message: str = "",
        owner: str = "cfg-uid") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {
        "serving.knative.dev/configuration": "hello",
        "serving.knative.dev/configurationGeneration": str(gen)},
        "ownerReferences": [{"kind": "Configuration", "uid": owner, "controller": True}]},
        "spec": {"containers": [{"image": "i"}]},
        "status": {"conditions": [ready_cond(ready, message=message)]}}


def test_latest_created_is_this_generations() -> None:
    revs = [rev("hello-00001", 1), rev("hello-00002", 2)]
    assert cfgr.latest_created(config_obj(2), revs) is revs[1]
    assert cfgr.latest_created(config_obj(3), revs) is None


@pytest.mark.parametrize("revs, lrr_before, want", [
    ([rev("hello-00001", 1), rev("hello-00002", 2)], "", "hello-00002"),
    ([rev("hello-00001", 1), rev("hello-00002", 2, "Unknown")], "hello-00001", "hello-00001"),
    # Only forward: an older ready revision never replaces a newer latest ready one.
    ([rev("hello-00001", 1), rev("hello-00002", 2, "False"), rev("hello-00003", 3, "Unknown")],
     "hello-00002", None),
    ([rev("hello-blue", 1), rev("hello-00002", 2)], "", "hello-blue"),   # BYO first (byo below)
])
def test_latest_ready(revs: list[dict[str, Any]], lrr_before: str, want: str | None) -> None:
    c = config_obj(3 if len(revs) == 3 else 2, byo="hello-blue")
    status = {"latestReadyRevisionName": lrr_before} if lrr_before else {}
    assert cfgr.latest_ready(c, status, revs) == want


@pytest.mark.parametrize("lcr, lrr, want_ready, want_msg", [
    (rev("hello-00002", 2, "Unknown"), "hello-00001", ("Unknown", ""), ""),
    (rev("hello-00002", 2, "True"), "hello-00002", ("True", ""), ""),
    (rev("hello-00002", 2, "False", "boom"), "hello-00001", ("False", "RevisionFailed"),
     'Revision "hello-00002" failed with message: boom.'),
])
def test_apply_revision_state(lcr: dict[str, Any], lrr: str, want_ready: tuple[str, str],
                              want_msg: str) -> None:
    status: dict[str, Any] = {}
    conditions.pre_process(cfgr.CONFIGURATION_CONDITIONS, status, 2)
    cfgr.apply_revision_state(status, lcr, lrr)
    assert conds(status)["Ready"] == want_ready
    assert conditions.get(status, "Ready").get("message", "") == want_msg  # type: ignore[union-attr]
    assert status["latestCreatedRevisionName"] == "hello-00002"
    assert status["latestReadyRevisionName"] == lrr


@pytest.mark.parametrize("held, want", [
    (None, False),
    (rev("hello-blue", 2), False),                          # ours, this generation
    (rev("hello-blue", 1), False),                          # ours, same spec
    (rev("hello-blue", 1, owner="someone-else"), True),
])
def test_name_conflict(held: dict[str, Any] | None, want: bool) -> None:
    assert cfgr.name_conflict(config_obj(2, byo="hello-blue"), held) == want


def test_name_conflict_on_a_different_spec() -> None:
    held = rev("hello-blue", 1)
    held["spec"] = {"containers": [{"image": "other"}]}
    assert cfgr.name_conflict(config_obj(2, byo="hello-blue"), held)


# --- revision ------------------------------------------------------------------------

REV = {"metadata": {"name": "hello-00001", "uid": "u"},
       "spec": {"containers": [{"name": "user-container", "image": "i"}]}}


def deployment(replicas: int = 1, ready: int = 0, progressing: str = "True") -> dict[str, Any]:
    st: dict[str, Any] = {"conditions": [{"type": "Progressing", "status": progressing,
                                          "reason": "NewReplicaSetAvailable"}]}
    if ready:
        st.update(readyReplicas=ready, availableReplicas=ready)
    return {"spec": {"replicas": replicas}, "status": st}


def pod(state: dict[str, Any], last: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "status": {"containerStatuses": [
        {"name": "user-container", "state": state, "lastState": last or {}}]}}


def pa(ready: str = "", reason: str = "", initialized: str = "Unknown", service: str = "hello-00001",
       desired: int = -1, actual: int = 0) -> dict[str, Any]:
    """A PodAutoscaler as the KPA leaves it (its Ready follows Active)."""
    if not ready:
        return {"status": {}}
    c: list[dict[str, Any]] = [{"type": "Ready", "status": ready, **({"reason": reason} if reason else {})},
                               {"type": "ScaleTargetInitialized", "status": initialized}]
    st: dict[str, Any] = {"conditions": c, "desiredScale": desired, "actualScale": actual}
    if service:
        st["serviceName"] = service
    return {"status": st}


READY_BEFORE = {"conditions": [ready_cond("True"), {"type": "ContainerHealthy", "status": "True"},
                               {"type": "ResourcesAvailable", "status": "True"}]}


@pytest.mark.parametrize("prior, dep, pods, created, the_pa, want", [
    # Just created: the PA has no status yet.
    ({}, {}, [], True, pa(), {"ResourcesAvailable": ("Unknown", "Deploying"),
                              "ContainerHealthy": ("Unknown", "Deploying"),
                              "Ready": ("Unknown", "Deploying"), "Active": ("Unknown", "Deploying")}),
    # The Deployment progresses (ResourcesAvailable, as upstream), the containers are not
    # known healthy before the PA's scale target is initialized.
    ({}, deployment(), [pod({"running": {}})], False, pa("Unknown", "Queued"),
     {"ResourcesAvailable": ("True", ""), "ContainerHealthy": ("Unknown", ""),
      "Ready": ("Unknown", ""), "Active": ("Unknown", "Queued")}),
    ({}, deployment(ready=1), [], False, pa("True", initialized="True", desired=1, actual=1),
     {"ResourcesAvailable": ("True", ""), "ContainerHealthy": ("True", ""), "Ready": ("True", ""),
      "Active": ("True", "")}),
    # Ready pods, the PA still activating but initialized: available, not yet Active.
    ({}, deployment(ready=1), [], False, pa("Unknown", "Queued", initialized="True"),
     {"ResourcesAvailable": ("True", ""), "ContainerHealthy": ("True", ""), "Ready": ("True", ""),
      "Active": ("Unknown", "Queued")}),
    ({}, deployment(), [pod({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off"}})],
     False, pa("Unknown", "Queued"),
     {"ResourcesAvailable": ("True", ""),
      "ContainerHealthy": ("False", "ImagePullBackOff"),
      "Ready": ("False", "ImagePullBackOff"), "Active": ("Unknown", "Queued")}),
    ({}, deployment(), [pod({"waiting": {"reason": "CrashLoopBackOff"}},
                            {"terminated": {"exitCode": 3, "message": "bad config"}})],
     False, pa("Unknown", "Queued"),
     {"ResourcesAvailable": ("True", ""), "ContainerHealthy": ("False", "ExitCode3"),
      "Ready": ("False", "ExitCode3"), "Active": ("Unknown", "Queued")}),
    # Scaled to zero after having served: still Ready, not Active.
    (READY_BEFORE, deployment(replicas=0), [], False,
     pa("False", "NoTraffic", initialized="True", desired=0),
     {"ResourcesAvailable": ("True", ""), "ContainerHealthy": ("True", ""), "Ready": ("True", ""),
      "Active": ("False", "NoTraffic")}),
    # Scaled to zero without ever reaching the initial scale: the activation failed.
    ({}, deployment(replicas=0), [], False, pa("False", "TimedOut", desired=0),
     {"ResourcesAvailable": ("False", "ProgressDeadlineExceeded"),
      "ContainerHealthy": ("Unknown", ""), "Ready": ("False", "ProgressDeadlineExceeded"),
      "Active": ("False", "TimedOut")}),
    # Initialized but no service name yet (initial scale 0): not available yet.
    ({}, deployment(replicas=0), [], False, pa("False", "NoTraffic", initialized="True", service=""),
     {"ResourcesAvailable": ("Unknown", "Deploying"), "ContainerHealthy": ("True", ""),
      "Ready": ("Unknown", "Deploying"), "Active": ("False", "NoTraffic")}),
])
def test_revision_status(prior: dict[str, Any], dep: dict[str, Any], pods: list[dict[str, Any]],
                         created: bool, the_pa: dict[str, Any],
                         want: dict[str, tuple[str, str]]) -> None:
    status = dict(prior)
    conditions.pre_process(revr.REVISION_CONDITIONS, status, 0)
    revr.revision_status(REV, status, dep, pods, created, the_pa)
    got = conds(status)
    assert got == want
    assert status["serviceName"] == "hello-00001"


def test_revision_image_pull_message_and_replicas() -> None:
    status: dict[str, Any] = {}
    revr.revision_status(REV, status, deployment(), [pod(
        {"waiting": {"reason": "ErrImagePull", "message": 'image "x" not found'}})], False,
        pa("Unknown", "Queued", desired=1, actual=0))
    assert conditions.get(status, "ContainerHealthy") == {
        "type": "ContainerHealthy", "status": "False", "reason": "ErrImagePull",
        "message": 'image "x" not found'}
    assert (status["actualReplicas"], status["desiredReplicas"]) == (0, 1)


def test_revision_replicas_come_from_the_pa_and_an_unknown_scale_is_left_out() -> None:
    status: dict[str, Any] = {"actualReplicas": 3, "desiredReplicas": 3}
    revr.revision_status(REV, status, deployment(), [], False, pa("Unknown", "Queued"))
    assert status["actualReplicas"] == 0 and "desiredReplicas" not in status


# --- route ---------------------------------------------------------------------------

def route_obj(labels: dict[str, str] | None = None, traffic: list[dict[str, Any]] | None = None
              ) -> dict[str, Any]:
    return {"metadata": {"name": "hello", "namespace": "default", "generation": 1,
                         "labels": labels or {}, "annotations": {}},
            "spec": {"traffic": traffic if traffic is not None else [
                {"configurationName": "hello", "latestRevision": True, "percent": 100}]}}


def world(lrr: str = "hello-00001", cfg_ready: str = "True") -> tuple[dict[str, Any], dict[str, Any]]:
    cst: dict[str, Any] = {"conditions": [ready_cond(cfg_ready)]}
    if lrr:
        cst["latestReadyRevisionName"] = lrr
        cst["latestCreatedRevisionName"] = lrr
    configs = {"hello": {"metadata": {"name": "hello", "annotations": {}}, "status": cst}}
    revs = {"hello-00001": {"metadata": {"name": "hello-00001", "generation": 1, "labels": {
        "serving.knative.dev/configuration": "hello"}, "annotations": {}, "ownerReferences": [
        {"kind": "Configuration", "name": "hello", "controller": True}]},
        "spec": {}, "status": {"observedGeneration": 1, "conditions": [ready_cond("True")]}}}
    return configs, revs


def test_route_status_ready_world() -> None:
    status: dict[str, Any] = {}
    conditions.pre_process(router.ROUTE_CONDITIONS, status, 1)
    tc = router.route_status(route_obj(), status, CFG, *world())
    assert tc is not None
    assert status["url"] == "https://hello-default.apps.example.com"
    assert status["address"] == {"url": "http://hello.default.svc.cluster.local"}
    assert status["traffic"] == [{"revisionName": "hello-00001", "latestRevision": True,
                                  "percent": 100}]
    # Ready waits for the Ingress (propagate_ingress, after the shell has created it).
    assert conds(status) == {"AllTrafficAssigned": ("True", ""),
                             "CertificateProvisioned": ("True", "TLSNotEnabled"),
                             "IngressReady": ("Unknown", ""),
                             "Ready": ("Unknown", "NewObservedGenFailure")}
    router.propagate_ingress(status, {"metadata": {"generation": 1}, "status": {}})
    assert conds(status)["Ready"] == ("Unknown", "IngressNotConfigured")


@pytest.mark.parametrize("traffic, lrr, cfg_ready, want", [
    (None, "", "Unknown", ("Unknown", "RevisionMissing",
                           'Configuration "hello" is waiting for a Revision to become ready.')),
    (None, "", "False", ("False", "RevisionMissing",
                         'Configuration "hello" does not have any ready Revision.')),
    ([{"revisionName": "nope", "percent": 100}], "hello-00001", "True",
     ("False", "RevisionMissing", 'Revision "nope" referenced in traffic not found.')),
])
def test_route_status_unroutable(traffic: list[dict[str, Any]] | None, lrr: str, cfg_ready: str,
                                 want: tuple[str, str, str]) -> None:
    status: dict[str, Any] = {}
    conditions.pre_process(router.ROUTE_CONDITIONS, status, 1)
    assert router.route_status(route_obj(traffic=traffic), status, CFG,
                               *world(lrr, cfg_ready)) is None
    c = conditions.get(status, "AllTrafficAssigned") or {}
    assert (c["status"], c["reason"], c["message"]) == want
    assert (conditions.get(status, "Ready") or {})["status"] == want[0]


def test_cluster_local_route_url() -> None:
    status: dict[str, Any] = {}
    router.route_status(route_obj({"networking.knative.dev/visibility": "cluster-local"}),
                        status, CFG, *world())
    assert status["url"] == "http://hello.default.svc.cluster.local"


@pytest.mark.parametrize("ingress_status, generation, want", [
    ({}, 1, ("Unknown", "IngressNotConfigured")),
    ({"observedGeneration": 1, "conditions": [ready_cond("True")]}, 1, ("True", "")),
    ({"observedGeneration": 1, "conditions": [ready_cond("True")]}, 2,
     ("Unknown", "IngressNotConfigured")),
    ({"observedGeneration": 1, "conditions": [ready_cond("False", "Conflict")]}, 1,
     ("False", "Conflict")),
])
def test_propagate_ingress(ingress_status: dict[str, Any], generation: int,
                           want: tuple[str, str]) -> None:
    status: dict[str, Any] = {}
    conditions.pre_process(router.ROUTE_CONDITIONS, status, 1)
    router.propagate_ingress(status, {"metadata": {"generation": generation},
                                      "status": ingress_status})
    assert conds(status)["IngressReady"] == want


def test_routing_meta_patches() -> None:
    configs, revs = world()
    revs["hello-00000"] = {"metadata": {"name": "hello-00000", "labels": {
        "serving.knative.dev/routingState": "active"},
        "annotations": {"serving.knative.dev/routes": "hello"}}}
    patches = router.routing_meta_patches(route_obj(), configs, revs, "now")
    assert patches == [
        ("Configuration", "hello", {"metadata": {"annotations": {"serving.knative.dev/routes":
                                                                 "hello"}}}),
        ("Revision", "hello-00000", {"metadata": {
            "annotations": {"serving.knative.dev/routes": None,
                            "serving.knative.dev/routingStateModified": "now"},
            "labels": {"serving.knative.dev/routingState": "reserve"}}}),
        ("Revision", "hello-00001", {"metadata": {
            "annotations": {"serving.knative.dev/routes": "hello",
                            "serving.knative.dev/routingStateModified": "now"},
            "labels": {"serving.knative.dev/routingState": "active"}}}),
    ]
