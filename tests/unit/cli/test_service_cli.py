"""`skiff service` against an in-memory API: kn's output lines, the Ready wait, retries, errors.

A FakeApi stands in for cli/api.py's Api (request + stream); watch events
are scripted per test, so the wait logic (generation check, "..." for a
repeated message, the error window, the deadline, 410 Expired) runs without
sockets or a control plane.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from skiff.cli import knflags, service
from skiff.cli.api import ApiFailure

Obj = dict[str, Any]
IMAGE = "docker.io/openshift/hello-openshift"
URL = "https://hello-default.apps.example"
SVC = "/apis/serving.knative.dev/v1/namespaces/default/services"


def status_ksvc(obj: Obj, generation: int, ready: str, message: str = "", reason: str = "",
                revision: str = "hello-00001", observed: int | None = None) -> Obj:
    o = copy.deepcopy(obj)
    o["metadata"]["generation"] = generation
    cond = {"type": "Ready", "status": ready}
    if message:
        cond["message"] = message
    if reason:
        cond["reason"] = reason
    o["status"] = {"observedGeneration": generation if observed is None else observed,
                   "conditions": [cond]}
    if ready == "True":
        o["status"].update({"url": URL, "latestReadyRevisionName": revision,
                            "latestCreatedRevisionName": revision})
    return o


class FakeApi:
    namespace = "default"

    def __init__(self) -> None:
        self.objects: dict[str, Obj] = {}
        self.calls: list[tuple[str, str]] = []
        self.bodies: list[Obj] = []
        self.events: list[list[tuple[str, Obj]]] = []   # one list per stream() call
        self.stream_queries: list[dict[str, str]] = []
        self.conflicts = 0
        self.rv = 10
        self.on_ready: Obj | None = None   # what GET returns once the wait is over

    def _fail(self, code: int, reason: str, message: str) -> ApiFailure:
        return ApiFailure(code, {"kind": "Status", "code": code, "reason": reason, "message": message})

    def request(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None,
                content_type: str = "application/json") -> Any:
        self.calls.append((method, path))
        self.rv += 1
        if method == "GET" and path in self.objects:
            return copy.deepcopy(self.objects[path])
        if method == "GET" and path == SVC:
            return {"kind": "ServiceList", "items": [copy.deepcopy(o) for p, o in self.objects.items()
                                                     if p.startswith(SVC + "/")]}
        if method == "GET" and path.endswith("/revisions"):
            return {"items": []}
        if method == "POST":
            obj = copy.deepcopy(body)
            obj["metadata"].update({"generation": 1, "resourceVersion": str(self.rv),
                                    "creationTimestamp": "2024-05-01T11:59:00Z"})
            self.objects[f"{path}/{obj['metadata']['name']}"] = obj
            self.bodies.append(body)
            return copy.deepcopy(obj)
        if method == "PUT" and path in self.objects:
            if self.conflicts:
                self.conflicts -= 1
                raise self._fail(409, "Conflict", "the object has been modified")
            old = self.objects[path]
            obj = copy.deepcopy(body)
            gen = old["metadata"].get("generation", 1)
            obj["metadata"]["generation"] = gen + (1 if obj.get("spec") != old.get("spec") else 0)
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self.objects[path] = obj
            self.bodies.append(body)
            return copy.deepcopy(obj)
        if method == "DELETE" and path in self.objects:
            return self.objects.pop(path)
        name = path.rsplit("/", 1)[-1]
        raise self._fail(404, "NotFound", f'services.serving.knative.dev "{name}" not found')

    def stream(self, path: str, query: dict[str, str] | None = None, timeout: float = 30) -> Iterator[Obj]:
        self.stream_queries.append(dict(query or {}))
        if not self.events:
            time.sleep(min(timeout, 0.05))
            return
        batch = self.events.pop(0)
        for event_type, obj in batch:
            if event_type == "EXPIRED":
                raise self._fail(410, "Expired", "too old resource version")
            if event_type == "MODIFIED" and obj.get("status", {}).get("url") and self.on_ready is None:
                self.objects[f"{SVC}/{obj['metadata']['name']}"] = copy.deepcopy(obj)
            yield {"type": event_type, "object": obj}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi()
    monkeypatch.setattr(service, "connect", lambda home: fake)
    return fake


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(service.service_app, list(args))
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.stdout, r.stderr


def seed(api: FakeApi, **extra: Any) -> Obj:
    """A ready hello-00001, as if created earlier."""
    code, _, _ = run("create", "hello", "--image", IMAGE, "--no-wait")
    assert code == 0
    obj = status_ksvc(api.objects[f"{SVC}/hello"], 1, "True")
    obj["spec"]["traffic"] = [{"latestRevision": True, "percent": 100}]
    obj["status"]["traffic"] = [{"revisionName": "hello-00001", "latestRevision": True, "percent": 100}]
    obj.update(extra)
    api.objects[f"{SVC}/hello"] = obj
    api.bodies.clear()
    return obj


# --- create ---------------------------------------------------------------------------------------
def test_create_no_wait(api: FakeApi) -> None:
    code, out, _ = run("create", "hello", "--image", IMAGE, "-e", "A=1", "--limit", "nvidia.com/gpu=1",
                       "--no-wait")
    assert (code, out) == (0, "Service 'hello' created in namespace 'default'.\n")
    body = api.bodies[0]
    assert body["spec"]["template"]["spec"]["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    assert ("POST", SVC) in api.calls


def test_create_requires_an_image(api: FakeApi) -> None:
    code, _, err = run("create", "hello")
    assert code == 1
    assert err.strip() == ("error: 'service create' requires the image name to run provided with the "
                           "--image option")


def test_create_refuses_an_existing_service_without_force(api: FakeApi) -> None:
    seed(api)
    code, _, err = run("create", "hello", "--image", IMAGE)
    assert code == 1
    assert err.strip() == ("error: cannot create service 'hello' in namespace 'default' because the service "
                           "already exists and no --force option was given")


def test_create_force_replaces(api: FakeApi) -> None:
    seed(api)
    code, out, _ = run("create", "hello", "--image", "quay.io/x/y", "--force", "--no-wait")
    assert (code, out) == (0, "Service 'hello' replaced in namespace 'default'.\n")
    assert api.bodies[0]["metadata"]["resourceVersion"]
    assert "env" not in api.bodies[0]["spec"]["template"]["spec"]["containers"][0]


def test_create_flag_errors_print_one_line(api: FakeApi) -> None:
    code, _, err = run("create", "hello", "--image", IMAGE, "--scale", "5..2")
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: max-scale=2 is less than min-scale=5")
    assert api.calls == []


def test_create_waits_and_prints_kns_lines(api: FakeApi) -> None:
    created = knflags.new_service("hello", "default")
    created["metadata"].update({"generation": 1})
    api.events = [[
        ("ADDED", status_ksvc(created, 1, "Unknown", "ignored: not a MODIFIED event")),
        ("MODIFIED", status_ksvc(created, 1, "Unknown", "ignored: generation not observed yet",
                                 observed=0)),
        ("MODIFIED", status_ksvc(created, 1, "Unknown",
                                 'Configuration "hello" is waiting for a Revision to become ready.')),
        ("MODIFIED", status_ksvc(created, 1, "Unknown",
                                 'Configuration "hello" is waiting for a Revision to become ready.')),
        ("MODIFIED", status_ksvc(created, 1, "Unknown", "Ingress has not yet been reconciled.")),
        ("MODIFIED", status_ksvc(created, 1, "True")),
    ]]
    code, out, err = run("create", "hello", "--image", IMAGE)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:2] == ["Creating service 'hello' in namespace 'default':", ""]
    assert [line[9:] for line in lines[2:6]] == [
        'Configuration "hello" is waiting for a Revision to become ready.', "...",
        "Ingress has not yet been reconciled.", "Ready to serve."]
    assert all(line[7] == "s" and line[:7].strip().replace(".", "").isdigit() for line in lines[2:6])
    assert lines[6:] == ["", "Service 'hello' created to latest revision 'hello-00001' is available at URL:", URL]
    q = api.stream_queries[0]
    assert q["watch"] == "true" and q["fieldSelector"] == "metadata.name=hello" and q["resourceVersion"]


def test_ready_false_fails_with_the_condition_after_the_window(api: FakeApi) -> None:
    created = knflags.new_service("hello", "default")
    failed = status_ksvc(created, 1, "False", 'Revision "hello-00001" failed with message: '
                                              "Back-off pulling image \"nope\".", "RevisionFailed")
    api.events = [[("MODIFIED", failed)]]
    code, out, err = run("create", "hello", "--image", "nope", "--wait-window", "0")
    assert code == 1
    assert err.strip() == ('error: RevisionFailed: Revision "hello-00001" failed with message: '
                           'Back-off pulling image "nope".')
    assert "Back-off pulling image" in out   # the progress line, as kn prints it


def test_ready_false_may_recover_within_the_window(api: FakeApi) -> None:
    created = knflags.new_service("hello", "default")
    api.events = [[("MODIFIED", status_ksvc(created, 1, "False", "not yet", "Pending")),
                   ("MODIFIED", status_ksvc(created, 1, "True"))]]
    code, out, _ = run("create", "hello", "--image", IMAGE, "--wait-window", "5")
    assert code == 0 and "is available at URL:" in out


def test_wait_has_a_deadline(api: FakeApi) -> None:
    t0 = time.monotonic()
    code, _, err = run("create", "hello", "--image", IMAGE, "--wait-timeout", "1")
    assert code == 1
    assert err.strip() == "error: timeout: service 'hello' not ready after 1 seconds"
    assert time.monotonic() - t0 < 5


def test_expired_watch_resumes_from_the_object(api: FakeApi) -> None:
    api.events = [[("EXPIRED", {})]]
    api.on_ready = {}

    def ready_on_get(method: str, path: str, *a: Any, **kw: Any) -> Any:
        result = FakeApi.request(api, method, path, *a, **kw)
        if method == "GET" and path == f"{SVC}/hello":
            api.objects[path] = status_ksvc(api.objects[path], 1, "True")
            return status_ksvc(result, 1, "True")
        return result

    api.request = ready_on_get  # type: ignore[method-assign]
    code, out, err = run("create", "hello", "--image", IMAGE, "--wait-timeout", "5")
    assert code == 0, err
    assert "Ready to serve." in out


def test_no_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    code, _, err = run("list", "--home", str(tmp_path))
    assert code == 1 and "start the platform first with `skiff up`" in err


# --- update -------------------------------------------------------------------------------------------
def test_update_without_flags(api: FakeApi) -> None:
    code, _, err = run("update", "hello")
    assert code == 1 and err.startswith("error: flag(s) not set")


def test_update_waits_for_the_new_revision(api: FakeApi) -> None:
    obj = seed(api)
    api.events = [[("MODIFIED", status_ksvc(obj, 2, "Unknown", "Revision is not ready")),
                   ("MODIFIED", status_ksvc(obj, 2, "True", revision="hello-00002"))]]
    code, out, err = run("update", "hello", "-e", "B=2")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "Warning: No revision found to update image digest"
    assert lines[1:3] == ["Updating Service 'hello' in namespace 'default':", ""]
    assert lines[-2:] == ["Service 'hello' updated to latest revision 'hello-00002' is available at URL:", URL]
    env = api.bodies[-1]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "B", "value": "2"}]


def test_update_that_changes_nothing_says_so(api: FakeApi) -> None:
    obj = seed(api)
    obj["metadata"]["labels"] = {"networking.knative.dev/visibility": "cluster-local"}
    code, out, _ = run("update", "hello", "--cluster-local")
    assert (code, out) == (0, "Service 'hello' updated in namespace 'default'.\nNo new revision has been created.\n")


def test_update_retries_on_conflict(api: FakeApi) -> None:
    seed(api)
    api.conflicts = 2
    code, out, _ = run("update", "hello", "--scale-max", "3", "--no-wait")
    assert code == 0 and out.endswith("Service 'hello' updated in namespace 'default'.\n")
    assert [m for m, p in api.calls if m == "PUT"] == ["PUT"] * 3


def test_update_traffic_and_tags(api: FakeApi) -> None:
    seed(api)
    code, _, err = run("update", "hello", "--tag", "hello-00001=stable,@latest=current",
                       "--traffic", "stable=10", "--traffic", "@latest=90", "--no-wait")
    assert code == 0, err
    assert api.bodies[-1]["spec"]["traffic"] == [
        {"latestRevision": True, "percent": 90, "tag": "current"},
        {"tag": "stable", "latestRevision": False, "revisionName": "hello-00001", "percent": 10}]


def test_update_traffic_error(api: FakeApi) -> None:
    seed(api)
    code, _, err = run("update", "hello", "--traffic", "hello-00001=60,@latest=50")
    assert code == 1 and err.strip() == "error: given traffic percents sum to 110, want <=100"


def test_update_missing_service(api: FakeApi) -> None:
    code, _, err = run("update", "nope", "-e", "A=1")
    assert code == 1 and err.strip() == 'error: services.serving.knative.dev "nope" not found'


# --- delete, list, describe -----------------------------------------------------------------------------
def test_delete(api: FakeApi) -> None:
    seed(api)
    code, out, err = run("delete", "hello", "nope")
    assert code == 1
    assert out == "Service 'hello' successfully deleted in namespace 'default'.\n"
    assert err.strip() == 'error: services.serving.knative.dev "nope" not found'


def test_delete_all_of_nothing(api: FakeApi) -> None:
    assert run("delete", "--all")[:2] == (0, "No services found.\n")
    assert run("delete")[0] == 1


def test_list_and_describe(api: FakeApi) -> None:
    seed(api)
    code, out, _ = run("list")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["NAME", "URL", "LATEST", "AGE", "CONDITIONS", "READY", "REASON"]
    cells = row.split()
    assert cells[:3] == ["hello", URL, "hello-00001"]
    assert cells[4:] == ["1", "OK", "/", "1", "True"]
    assert run("describe", "hello", "-o", "url")[1] == URL + "\n"
    code, out, _ = run("describe", "hello")
    assert code == 0
    lines = out.splitlines()
    assert lines[:2] == ["Name:       hello", "Namespace:  default"]
    assert f"URL:        {URL}" in lines and "Revisions:" in lines and "Conditions:" in lines
    assert "  100?  @latest (hello-00001) [0] ()" in out   # no Revision object: readiness unknown
    assert "  ++ Ready" in out
    assert '"kind": "Service"' in run("describe", "hello", "-o", "json")[1]
