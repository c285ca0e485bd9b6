"""Server-side Tables: ages, pod STATUS, built-in columns, CRD printer columns.

Expected values follow kube-apiserver v1.32 (pkg/printers/internalversion,
apiextensions tableconvertor, apimachinery duration.HumanDuration).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from skiff.core import printers
from skiff.core.builtin_kinds import KINDS
from skiff.core.clock import human_age
from skiff.core.kinds import Kind, kinds_from_crd
from skiff.core.printers import pod_status_reason, table

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def ago(**kw: float) -> str:
    return (NOW - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


def kind(k: str) -> Kind:
    return next(x for x in KINDS if x.kind == k)


# --- human_age --------------------------------------------------------------------

HUMAN = [
    (timedelta(0), "0s"),
    (timedelta(milliseconds=1900), "1s"),
    (timedelta(seconds=-1.5), "0s"),          # clock skew under 2s is "now"
    (timedelta(seconds=-2), "<invalid>"),
    (timedelta(seconds=59), "59s"),
    (timedelta(seconds=119), "119s"),
    (timedelta(minutes=2), "2m"),
    (timedelta(minutes=2, seconds=30), "2m30s"),
    (timedelta(minutes=9, seconds=59), "9m59s"),
    (timedelta(minutes=10, seconds=30), "10m"),
    (timedelta(minutes=179), "179m"),
    (timedelta(hours=3), "3h"),
    (timedelta(hours=5, minutes=3), "5h3m"),
    (timedelta(hours=7, minutes=59, seconds=59), "7h59m"),
    (timedelta(hours=8, minutes=30), "8h"),
    (timedelta(hours=47), "47h"),
    (timedelta(hours=48), "2d"),
    (timedelta(days=3, hours=5), "3d5h"),
    (timedelta(days=7, hours=23), "7d23h"),
    (timedelta(days=8, hours=5), "8d"),
    (timedelta(days=729), "729d"),
    (timedelta(days=730), "2y"),
    (timedelta(days=775), "2y45d"),
    (timedelta(days=365 * 8 - 1), "7y364d"),
    (timedelta(days=365 * 8), "8y"),
    (timedelta(days=365 * 10 + 100), "10y"),
]


@pytest.mark.parametrize(("delta", "want"), HUMAN, ids=[w for _, w in HUMAN])
def test_human_age(delta: timedelta, want: str) -> None:
    assert human_age(NOW - delta, NOW) == want


def test_human_age_naive_datetimes_are_utc() -> None:
    assert human_age(datetime(2024, 5, 1, 11, 55), NOW) == "5m"


@pytest.mark.parametrize(("value", "want"), [
    (None, "<unknown>"), ("", "<unknown>"), ("garbage", "<unknown>"),
    ("2024-05-01T11:59:30Z", "30s"), ("2024-05-01T11:59:30.123456Z", "29s"),
    ("2024-05-01T13:59:30+02:00", "30s"),
])
def test_translate_timestamp(value: Any, want: str) -> None:
    assert printers.translate_timestamp(value, NOW) == want


# --- pod STATUS ---------------------------------------------------------------------


def pod(phase: str = "Running", containers: list[dict[str, Any]] | None = None,
        init: list[dict[str, Any]] | None = None, init_specs: list[dict[str, Any]] | None = None,
        conditions: list[dict[str, Any]] | None = None, deleted: bool = False,
        reason: str = "") -> dict[str, Any]:
    statuses = containers if containers is not None else [
        {"name": "app", "ready": True, "restartCount": 0, "state": {"running": {}}}]
    p: dict[str, Any] = {
        "metadata": {"name": "p", "creationTimestamp": ago(minutes=5)},
        "spec": {"containers": [{"name": s["name"], "image": "i"} for s in statuses] or
                 [{"name": "app", "image": "i"}]},
        "status": {"phase": phase, "containerStatuses": statuses},
    }
    if init is not None:
        p["spec"]["initContainers"] = init_specs or [{"name": s["name"]} for s in init]
        p["status"]["initContainerStatuses"] = init
    if conditions is not None:
        p["status"]["conditions"] = conditions
    if deleted:
        p["metadata"]["deletionTimestamp"] = ago(seconds=1)
    if reason:
        p["status"]["reason"] = reason
    return p


def waiting(reason: str, name: str = "app") -> dict[str, Any]:
    return {"name": name, "ready": False, "restartCount": 0, "state": {"waiting": {"reason": reason}}}


def terminated(name: str = "app", **term: Any) -> dict[str, Any]:
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": term}}


def running(name: str = "app", ready: bool = True) -> dict[str, Any]:
    return {"name": name, "ready": ready, "restartCount": 0, "state": {"running": {}}}


READY = [{"type": "Ready", "status": "True"}]

POD_STATUS = [
    ("running", pod(), "Running"),
    ("pending-no-statuses", pod("Pending", containers=[]), "Pending"),
    ("container-creating", pod("Pending", [waiting("ContainerCreating")]), "ContainerCreating"),
    ("crashloop", pod("Running", [waiting("CrashLoopBackOff")]), "CrashLoopBackOff"),
    ("err-image-pull", pod("Pending", [waiting("ErrImagePull")]), "ErrImagePull"),
    ("image-pull-backoff", pod("Pending", [waiting("ImagePullBackOff")]), "ImagePullBackOff"),
    ("completed", pod("Succeeded", [terminated(reason="Completed", exitCode=0)]), "Completed"),
    ("error", pod("Failed", [terminated(reason="Error", exitCode=1)]), "Error"),
    ("oomkilled", pod("Running", [terminated(reason="OOMKilled", exitCode=137)]), "OOMKilled"),
    ("exit-code", pod("Failed", [terminated(exitCode=3)]), "ExitCode:3"),
    ("signal", pod("Failed", [terminated(exitCode=0, signal=9)]), "Signal:9"),
    ("evicted", pod("Failed", [], reason="Evicted"), "Evicted"),
    ("terminating", pod(deleted=True), "Terminating"),
    ("terminating-but-done", pod("Succeeded", [terminated(reason="Completed", exitCode=0)],
                                 deleted=True), "Completed"),
    ("node-lost", pod(deleted=True, reason="NodeLost"), "Unknown"),
    ("scheduling-gated", pod("Pending", [], conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]),
     "SchedulingGated"),
    # The last container in the list decides; a finished one beside a running one.
    ("completed-beside-running-ready", pod("Running", [
        running("a"), terminated("b", reason="Completed", exitCode=0)], conditions=READY),
     "Running"),
    ("completed-beside-running-not-ready", pod("Running", [
        running("a"), terminated("b", reason="Completed", exitCode=0)]), "NotReady"),
    ("init-pending", pod("Pending", [waiting("PodInitializing")],
                         init=[waiting("PodInitializing", "init")]), "Init:0/1"),
    ("init-second-of-two", pod("Pending", [waiting("PodInitializing")], init=[
        terminated("i1", reason="Completed", exitCode=0), running("i2", ready=False)]),
     "Init:1/2"),
    ("init-crashloop", pod("Pending", [waiting("PodInitializing")],
                           init=[waiting("CrashLoopBackOff", "init")]), "Init:CrashLoopBackOff"),
    ("init-error", pod("Pending", [waiting("PodInitializing")],
                       init=[terminated("init", reason="Error", exitCode=1)]), "Init:Error"),
    ("init-exit-code", pod("Pending", [waiting("PodInitializing")],
                           init=[terminated("init", exitCode=2)]), "Init:ExitCode:2"),
    ("init-signal", pod("Pending", [waiting("PodInitializing")],
                        init=[terminated("init", exitCode=1, signal=15)]), "Init:Signal:15"),
    ("init-done", pod("Running", init=[terminated("init", reason="Completed", exitCode=0)]),
     "Running"),
]


@pytest.mark.parametrize(("p", "want"), [(p, w) for _, p, w in POD_STATUS],
                         ids=[i for i, _, _ in POD_STATUS])
def test_pod_status_reason(p: dict[str, Any], want: str) -> None:
    assert pod_status_reason(p) == want


def test_pod_row_ready_restarts_and_wide_cells() -> None:
    p = pod("Running", [
        {"name": "app", "ready": True, "restartCount": 2, "state": {"running": {}},
         "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(seconds=5)}}},
        waiting("CrashLoopBackOff", "sidecar") | {"restartCount": 1},
    ])
    p["spec"]["nodeName"] = "node-1"
    p["spec"]["readinessGates"] = [{"conditionType": "a"}, {"conditionType": "b"}]
    p["status"]["podIPs"] = [{"ip": "10.0.0.7"}]
    p["status"]["conditions"] = [{"type": "a", "status": "True"}, {"type": "b", "status": "False"}]
    row = table(kind("Pod"), [p], NOW)["rows"][0]
    assert row["cells"] == ["p", "1/2", "CrashLoopBackOff", "3 (5s ago)", "5m",
                            "10.0.0.7", "node-1", "<none>", "1/2"]


def test_pod_row_defaults_and_sidecar_counts() -> None:
    p = pod("Running", [running("app")], init=[
        {"name": "proxy", "ready": True, "started": True, "restartCount": 0,
         "state": {"running": {}}}],
        init_specs=[{"name": "proxy", "restartPolicy": "Always"}])
    cells = table(kind("Pod"), [p], NOW)["rows"][0]["cells"]
    assert cells == ["p", "2/2", "Running", "0", "5m", "<none>", "<none>", "<none>", "<none>"]


@pytest.mark.parametrize(("phase", "reason"), [("Succeeded", "Succeeded"), ("Failed", "Failed")])
def test_finished_pods_carry_row_conditions(phase: str, reason: str) -> None:
    row = table(kind("Pod"), [pod(phase, [terminated(reason="Completed", exitCode=0)])], NOW)
    assert row["rows"][0]["conditions"][0]["type"] == "Completed"
    assert row["rows"][0]["conditions"][0]["reason"] == reason
    assert "conditions" not in table(kind("Pod"), [pod()], NOW)["rows"][0]


# --- Table shape ---------------------------------------------------------------------

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "hello", "namespace": "tenant-1", "uid": "u1", "resourceVersion": "42",
                 "labels": {"app": "hello"}, "creationTimestamp": ago(days=3, hours=5)},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "hello", "tier": "web"},
                     "matchExpressions": [{"key": "env", "operator": "In",
                                           "values": ["prod", "canary"]},
                                          {"key": "legacy", "operator": "DoesNotExist"}]},
        "template": {"metadata": {"labels": {"app": "hello"}}, "spec": {"containers": [
            {"name": "user-container", "image": "docker.io/openshift/hello-openshift"},
            {"name": "queue-proxy", "image": "skiff/queue-proxy"}]}},
    },
    "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2},
}


def test_deployment_table_shape() -> None:
    t = table(kind("Deployment"), [DEPLOYMENT], NOW, resource_version="42")
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    assert t["metadata"] == {"resourceVersion": "42"}
    cols = t["columnDefinitions"]
    assert [(c["name"], c["priority"]) for c in cols] == [
        ("Name", 0), ("Ready", 0), ("Up-to-date", 0), ("Available", 0), ("Age", 0),
        ("Containers", 1), ("Images", 1), ("Selector", 1)]
    assert all(set(c) == {"name", "type", "format", "description", "priority"} for c in cols)
    assert cols[0]["format"] == "name"
    (row,) = t["rows"]
    assert row["cells"] == [
        "hello", "2/3", 3, 2, "3d5h", "user-container,queue-proxy",
        "docker.io/openshift/hello-openshift,skiff/queue-proxy",
        "app=hello,env in (canary,prod),!legacy,tier=web"]
    assert row["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": DEPLOYMENT["metadata"]}


def test_include_object_and_no_headers() -> None:
    k = kind("Deployment")
    assert table(k, [DEPLOYMENT], NOW, "Object")["rows"][0]["object"] is DEPLOYMENT
    assert "object" not in table(k, [DEPLOYMENT], NOW, "None")["rows"][0]
    t = table(k, [DEPLOYMENT], NOW, no_headers=True)
    assert t["columnDefinitions"] == [] and len(t["rows"]) == 1
    assert table(k, [], NOW)["rows"] == []
    assert table(k, [], NOW)["metadata"] == {}


def test_deployment_defaults() -> None:
    d = {"metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": []}}}}
    assert table(kind("Deployment"), [d], NOW)["rows"][0]["cells"] == [
        "d", "0/1", 0, 0, "<unknown>", "", "", ""]


def _svc(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "s", "creationTimestamp": ago(minutes=2)}, "spec": spec,
            "status": status or {}}


SERVICES = [
    ("clusterip", _svc({"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
                        "selector": {"app": "hello"}}),
     ["s", "ClusterIP", "10.96.0.1", "<none>", "80/TCP", "2m", "app=hello"]),
    ("defaults", _svc({"ports": [{"port": 53, "protocol": "UDP"}, {"port": 80}]}),
     ["s", "ClusterIP", "<none>", "<none>", "53/UDP,80/TCP", "2m", "<none>"]),
    ("nodeport", _svc({"type": "NodePort", "clusterIPs": ["10.96.0.2"], "externalIPs": ["1.2.3.4"],
                       "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}),
     ["s", "NodePort", "10.96.0.2", "1.2.3.4", "80:30080/TCP", "2m", "<none>"]),
    ("lb-pending", _svc({"type": "LoadBalancer", "clusterIPs": ["10.96.0.3"],
                         "ports": [{"port": 443, "nodePort": 30443, "protocol": "TCP"}]}),
     ["s", "LoadBalancer", "10.96.0.3", "<pending>", "443:30443/TCP", "2m", "<none>"]),
    ("lb-ingress", _svc({"type": "LoadBalancer", "clusterIPs": ["10.96.0.3"],
                         "externalIPs": ["9.9.9.9"], "ports": []},
                        {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"},
                                                      {"ip": "192.0.2.10"}]}}),
     ["s", "LoadBalancer", "10.96.0.3", "192.0.2.10,lb.example.com,9.9.9.9", "<none>", "2m",
      "<none>"]),
    ("externalname", _svc({"type": "ExternalName", "externalName": "example.com"}),
     ["s", "ExternalName", "<none>", "example.com", "<none>", "2m", "<none>"]),
]


@pytest.mark.parametrize(("svc", "cells"), [(s, c) for _, s, c in SERVICES],
                         ids=[i for i, _, _ in SERVICES])
def test_service_rows(svc: dict[str, Any], cells: list[Any]) -> None:
    t = table(kind("Service"), [svc], NOW)
    assert [c["name"] for c in t["columnDefinitions"]] == [
        "Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"]
    assert t["rows"][0]["cells"] == cells


META = {"name": "x", "creationTimestamp": ago(seconds=30)}

OTHER_ROWS = [
    ("Namespace", {"metadata": META, "status": {"phase": "Active"}},
     ["Name", "Status", "Age"], ["x", "Active", "30s"]),
    ("Namespace", {"metadata": {**META, "deletionTimestamp": ago(seconds=1)}},
     ["Name", "Status", "Age"], ["x", "Terminating", "30s"]),
    ("ConfigMap", {"metadata": META, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}},
     ["Name", "Data", "Age"], ["x", 3, "30s"]),
    ("Secret", {"metadata": META, "type": "kubernetes.io/tls",
                "data": {"tls.crt": "", "tls.key": ""}},
     ["Name", "Type", "Data", "Age"], ["x", "kubernetes.io/tls", 2, "30s"]),
    ("ServiceAccount", {"metadata": META},
     ["Name", "Secrets", "Age"], ["x", 0, "30s"]),
    ("NetworkPolicy", {"metadata": META, "spec": {"podSelector": {}}},
     ["Name", "Pod-Selector", "Age"], ["x", "<none>", "30s"]),
    ("NetworkPolicy", {"metadata": META, "spec": {"podSelector": {"matchLabels": {"role": "db"}}}},
     ["Name", "Pod-Selector", "Age"], ["x", "role=db", "30s"]),
    ("Event", {"metadata": META, "type": "Warning", "reason": "BackOff",
               "message": " Back-off restarting failed container \n",
               "involvedObject": {"kind": "Pod", "name": "web-0",
                                  "fieldPath": "spec.containers{app}"},
               "source": {"component": "kubelet", "host": "node-1"},
               "firstTimestamp": ago(minutes=10), "lastTimestamp": ago(minutes=1), "count": 7},
     ["Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message", "First Seen",
      "Count", "Name"],
     ["60s", "Warning", "BackOff", "pod/web-0", "spec.containers{app}", "kubelet, node-1",
      "Back-off restarting failed container", "10m", 7, "x"]),
    # An events.k8s.io-style singleton: eventTime only, no count, reporting fields.
    ("Event", {"metadata": META, "type": "Normal", "reason": "Scheduled", "message": "ok",
               "involvedObject": {"kind": "Pod"}, "eventTime": "2024-05-01T11:59:00.000001Z",
               "reportingComponent": "default-scheduler"},
     None, ["59s", "Normal", "Scheduled", "pod", "", "default-scheduler", "ok", "59s", 1, "x"]),
    ("Event", {"metadata": META, "involvedObject": {"kind": "Pod", "name": "p"},
               "series": {"count": 4, "lastObservedTime": ago(seconds=3)},
               "firstTimestamp": ago(hours=1)},
     None, ["3s", "", "", "pod/p", "", "", "", "60m", 4, "x"]),
    ("CustomResourceDefinition", {"metadata": {"name": "crontabs.stable.example.com",
                                               "creationTimestamp": "2024-04-01T08:00:00Z"}},
     ["Name", "Created At"], ["crontabs.stable.example.com", "2024-04-01T08:00:00Z"]),
]


@pytest.mark.parametrize(("k", "o", "columns", "cells"), OTHER_ROWS,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(OTHER_ROWS)])
def test_builtin_rows(k: str, o: dict[str, Any], columns: list[str] | None,
                      cells: list[Any]) -> None:
    t = table(kind(k), [o], NOW)
    if columns is not None:
        assert [c["name"] for c in t["columnDefinitions"]] == columns
    assert t["rows"][0]["cells"] == cells
    assert len(t["rows"][0]["cells"]) == len(t["columnDefinitions"])


def test_event_wide_columns_have_priority() -> None:
    cols = printers.column_definitions(kind("Event"))
    assert [c["name"] for c in cols if c["priority"] == 0] == [
        "Last Seen", "Type", "Reason", "Object", "Message"]


def test_crd_created_at_column_is_a_date() -> None:
    cols = printers.column_definitions(kind("CustomResourceDefinition"))
    assert cols[1] == {**cols[1], "name": "Created At", "type": "date", "priority": 0}


@pytest.mark.parametrize(("selector", "want"), [
    (None, "<none>"), ({}, "<none>"), ({"matchLabels": {}}, "<none>"),
    ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2"),
    ({"matchExpressions": [{"key": "k", "operator": "NotIn", "values": ["z", "y"]},
                           {"key": "e", "operator": "Exists"}]}, "e,k notin (y,z)"),
])
def test_format_label_selector(selector: Any, want: str) -> None:
    assert printers.format_label_selector(selector) == want


# --- CRD printer columns -----------------------------------------------------------------


def crd(columns: list[dict[str, Any]] | None) -> Kind:
    version: dict[str, Any] = {"name": "v1", "served": True, "storage": True}
    if columns is not None:
        version["additionalPrinterColumns"] = columns
    return kinds_from_crd({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "services.serving.knative.dev"},
        "spec": {"group": "serving.knative.dev", "scope": "Namespaced",
                 "names": {"plural": "services", "kind": "Service", "shortNames": ["ksvc"]},
                 "versions": [version]},
    })


KSVC_COLUMNS: list[dict[str, Any]] = [
    {"name": "URL", "type": "string", "jsonPath": ".status.url"},
    {"name": "LatestCreated", "type": "string", "jsonPath": ".status.latestCreatedRevisionName"},
    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"},
    {"name": "Reason", "type": "string",
     "jsonPath": ".status.conditions[?(@.type=='Ready')].reason"},
    {"name": "Generation", "type": "integer", "jsonPath": ".metadata.generation", "priority": 1,
     "description": "The generation"},
    {"name": "Traffic", "type": "string", "jsonPath": ".status.traffic", "priority": 1},
    {"name": "Created", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

KSVC = {
    "apiVersion": "serving.knative.dev/v1", "kind": "Service",
    "metadata": {"name": "hello", "namespace": "tenant-1", "generation": 2,
                 "creationTimestamp": ago(hours=5, minutes=3)},
    "status": {"url": "https://hello-tenant-1.apps.example.com",
               "latestCreatedRevisionName": "hello-00002",
               "traffic": [{"revisionName": "hello-00002", "percent": 100}],
               "conditions": [{"type": "ConfigurationsReady", "status": "True"},
                              {"type": "Ready", "status": "True"}]},
}


def test_crd_columns() -> None:
    t = table(crd(KSVC_COLUMNS), [KSVC], NOW)
    cols = t["columnDefinitions"]
    assert [(c["name"], c["type"], c["priority"]) for c in cols] == [
        ("Name", "string", 0), ("URL", "string", 0), ("LatestCreated", "string", 0),
        ("Ready", "string", 0), ("Reason", "string", 0), ("Generation", "integer", 1),
        ("Traffic", "string", 1), ("Created", "date", 0)]
    assert cols[1]["description"] == (
        "Custom resource definition column (in JSONPath format): .status.url")
    assert cols[5]["description"] == "The generation"
    # No "Age" is added: the CRD declares columns of its own.
    assert t["rows"][0]["cells"] == [
        "hello", "https://hello-tenant-1.apps.example.com", "hello-00002", "True", None, 2,
        '[{"percent":100,"revisionName":"hello-00002"}]', "5h3m"]


def test_crd_without_columns_gets_age() -> None:
    for k in (crd(None), crd([])):
        t = table(k, [KSVC], NOW)
        assert [(c["name"], c["type"]) for c in t["columnDefinitions"]] == [
            ("Name", "string"), ("Age", "date")]
        assert t["rows"][0]["cells"] == ["hello", "5h3m"]


def test_crd_bad_jsonpath_gives_empty_cell() -> None:
    k = crd([{"name": "Bad", "type": "string", "jsonPath": ".status[?(@.x=="}])
    assert table(k, [KSVC], NOW)["rows"][0]["cells"] == ["hello", None]


@pytest.mark.parametrize(("col_type", "value", "want"), [
    ("string", "x", "x"), ("string", 3, "3"), ("string", 2.0, "2"), ("string", 1.5, "1.5"),
    ("string", True, "true"), ("string", {"b": 1, "a": [1, 2]}, '{"a":[1,2],"b":1}'),
    ("string", None, None),
    ("integer", 3, 3), ("integer", 3.9, 3), ("integer", "3", None), ("integer", True, None),
    ("number", 3, 3.0), ("number", 2.5, 2.5), ("number", "2.5", None),
    ("boolean", False, False), ("boolean", "true", None),
    ("date", ago(minutes=7), "7m"), ("date", "yesterday", "<invalid>"), ("date", 5, None),
    ("weird", "x", None),
])
def test_crd_cell_conversion(col_type: str, value: Any, want: Any) -> None:
    assert printers._crd_cell(col_type, value, NOW) == want
