"""`skiff service` (kn 1.10's `kn service`) against a real `skiff up`, checked with the real kubectl.

The first half needs only the API server: what create/update/delete store and
print with --no-wait, the errors, list and describe. The second half needs the
Knative Serving reconcilers (Service -> Configuration/Route -> Revision ->
Ready and a URL); it probes for them once and skips, with the reason, when no
Revision appears. Every wait has a deadline.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

from skiffproc import Skiff

IMAGE = "docker.io/openshift/hello-openshift"
REVISION_PROBE_SECONDS = 8.0


def ksvc(skiff: Skiff, name: str) -> Any:
    return skiff.kubectl_json("get", "ksvc", name)


def ok(r: Any) -> str:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return str(r.stdout)


def failed(r: Any) -> str:
    assert r.returncode == 1, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return str(lines[0])


# --- with the API server alone -------------------------------------------------------------
def test_create_stores_what_kn_would(skiff: Skiff) -> None:
    out = ok(skiff.skiff("service", "create", "gpu", "--image", IMAGE, "-e", "TARGET=v1",
                         "--limit", "nvidia.com/gpu=1", "--request", "cpu=100m,memory=64Mi",
                         "--annotation", "sidecar.istio.io/inject=true", "--label", "team=ml",
                         "--scale-min", "1", "--port", "h2c:8080", "--concurrency-limit", "4",
                         "--no-wait"))
    assert out == "Service 'gpu' created in namespace 'default'.\n"
    svc = ksvc(skiff, "gpu")
    meta, template = svc["metadata"], svc["spec"]["template"]
    assert meta["labels"] == {"team": "ml"}
    assert meta["annotations"]["sidecar.istio.io/inject"] == "true"
    assert template["metadata"]["labels"] == {"team": "ml"}
    anns = template["metadata"]["annotations"]
    assert anns["autoscaling.knative.dev/min-scale"] == "1"
    assert anns["sidecar.istio.io/inject"] == "true"
    assert anns["client.knative.dev/user-image"] == IMAGE
    assert "client.knative.dev/updateTimestamp" in anns
    c = template["spec"]["containers"][0]
    assert c["image"] == IMAGE
    assert c["env"] == [{"name": "TARGET", "value": "v1"}]
    assert c["resources"] == {"limits": {"nvidia.com/gpu": "1"}, "requests": {"cpu": "100m", "memory": "64Mi"}}
    assert c["ports"] == [{"containerPort": 8080, "name": "h2c"}]
    assert template["spec"]["containerConcurrency"] == 4
    ok(skiff.skiff("service", "delete", "gpu", "--wait-timeout", "20"))   # frees its GPU for later tests


def test_create_twice_needs_force(skiff: Skiff) -> None:
    ok(skiff.skiff("service", "create", "twice", "--image", IMAGE, "-e", "A=1", "--no-wait"))
    line = failed(skiff.skiff("service", "create", "twice", "--image", IMAGE, "--no-wait"))
    assert line == ("error: cannot create service 'twice' in namespace 'default' because the service "
                    "already exists and no --force option was given")
    out = ok(skiff.skiff("service", "create", "twice", "--image", IMAGE, "--force", "--no-wait"))
    assert out == "Service 'twice' replaced in namespace 'default'.\n"
    assert "env" not in ksvc(skiff, "twice")["spec"]["template"]["spec"]["containers"][0]


def test_update_no_wait_and_no_new_revision(skiff: Skiff) -> None:
    ok(skiff.skiff("service", "create", "upd", "--image", IMAGE, "-e", "A=1", "--no-wait"))
    gen = ksvc(skiff, "upd")["metadata"]["generation"]
    out = ok(skiff.skiff("service", "update", "upd", "-e", "B=2", "-e", "A-", "--limit", "nvidia.com/gpu=1",
                         "--no-wait"))
    assert out.endswith("Service 'upd' updated in namespace 'default'.\n")
    svc = ksvc(skiff, "upd")
    assert svc["metadata"]["generation"] == gen + 1
    c = svc["spec"]["template"]["spec"]["containers"][0]
    assert c["env"] == [{"name": "B", "value": "2"}]
    assert c["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    out = ok(skiff.skiff("service", "update", "upd", "--cluster-local"))
    assert out == "Service 'upd' updated in namespace 'default'.\nNo new revision has been created.\n"
    assert ksvc(skiff, "upd")["metadata"]["labels"] == {"networking.knative.dev/visibility": "cluster-local"}
    ok(skiff.skiff("service", "delete", "upd", "--wait-timeout", "20"))


def test_flag_errors_are_one_line_and_change_nothing(skiff: Skiff) -> None:
    cases = [
        (("--env", "foo"), 'error: Invalid --env: argument requires a value that contains the "=" '
                           'character; got "foo"'),
        (("--scale", "1..x"), 'error: strconv.Atoi: parsing "x": invalid syntax'),
        (("--scale", "5..2"), "error: max-scale=2 is less than min-scale=5: autoscaling.knative.dev/max-scale, "
                              "autoscaling.knative.dev/min-scale"),
        (("--port", "web"), "error: the port specification 'web' is not valid. Please provide in the format "
                            "'NAME:PORT', where 'NAME' is optional. Examples: '--port h2c:8080' , "
                            "'--port 8080'."),
    ]
    for flags, message in cases:
        assert failed(skiff.skiff("service", "create", "bad", "--image", IMAGE, *flags, "--no-wait")) == message
    r = skiff.kubectl("get", "ksvc", "bad", check=False)
    assert r.returncode != 0 and "NotFound" in r.stderr
    assert failed(skiff.skiff("service", "update", "nope", "-e", "A=1")) == \
        'error: services.serving.knative.dev "nope" not found'


def test_list_describe_delete(skiff: Skiff) -> None:
    ok(skiff.skiff("service", "create", "listed", "--image", IMAGE, "--no-wait", "-n", "default"))
    out = ok(skiff.skiff("service", "list"))
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "URL", "LATEST", "AGE", "CONDITIONS", "READY", "REASON"]
    assert any(r.split()[0] == "listed" for r in rows)
    items = json.loads(ok(skiff.skiff("service", "list", "-o", "json")))["items"]
    assert "listed" in {i["metadata"]["name"] for i in items}
    out = ok(skiff.skiff("service", "describe", "listed"))
    assert out.splitlines()[:2] == ["Name:       listed", "Namespace:  default"]
    assert "Revisions:" in out and "Conditions:" in out
    assert json.loads(ok(skiff.skiff("service", "describe", "listed", "-o", "json")))["kind"] == "Service"
    out = ok(skiff.skiff("service", "delete", "listed"))
    assert out == "Service 'listed' successfully deleted in namespace 'default'.\n"
    assert skiff.kubectl("get", "ksvc", "listed", check=False).returncode != 0
    assert failed(skiff.skiff("service", "delete", "listed")) == \
        'error: services.serving.knative.dev "listed" not found'


# --- with the Knative Serving control plane -------------------------------------------------------
_probe: dict[str, bool] = {}


def reconcilers_present(skiff: Skiff) -> bool:
    """Whether a Revision appears for a new Service within a few seconds (probed once per module)."""
    if "present" not in _probe:
        ok(skiff.skiff("service", "create", "probe", "--image", IMAGE, "--no-wait"))
        deadline = time.monotonic() + REVISION_PROBE_SECONDS
        present = False
        while time.monotonic() < deadline and not present:
            items = skiff.kubectl_json("get", "revisions", "-l", "serving.knative.dev/service=probe")["items"]
            present = bool(items)
            time.sleep(0.2)
        _probe["present"] = present
        skiff.skiff("service", "delete", "probe", "--wait-timeout", "20")
    return _probe["present"]


def require_reconcilers(skiff: Skiff) -> None:
    if not reconcilers_present(skiff):
        pytest.skip(f"no Knative Serving reconcilers: no Revision for a new Service within "
                    f"{REVISION_PROBE_SECONDS:.0f}s")


def test_wait_follows_the_status_over_a_real_watch(skiff: Skiff) -> None:
    """Without reconcilers, kubectl plays the control plane: the CLI must follow the watch to Ready."""
    if reconcilers_present(skiff):
        pytest.skip("the real reconcilers write this Service's status; see the tests below")
    cmd = [sys.executable, "-m", "skiff.cli.main", "service", "create", "fake", "--image", IMAGE,
           "--wait-timeout", "30"]
    proc = subprocess.Popen(cmd, env=skiff.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        skiff.wait_for(lambda: skiff.kubectl("get", "ksvc", "fake", check=False).returncode == 0,
                       timeout=20, what="ksvc fake")
        gen = ksvc(skiff, "fake")["metadata"]["generation"]
        waiting = 'Configuration \\"fake\\" is waiting for a Revision to become ready.'
        for status in (
            f'{{"observedGeneration": {gen}, "conditions": [{{"type": "Ready", "status": "Unknown", '
            f'"reason": "RevisionMissing", "message": "{waiting}"}}]}}',
            f'{{"observedGeneration": {gen}, "url": "https://fake-default.apps.example", '
            f'"latestReadyRevisionName": "fake-00001", "latestCreatedRevisionName": "fake-00001", '
            f'"conditions": [{{"type": "Ready", "status": "True"}}]}}',
        ):
            time.sleep(0.3)
            skiff.kubectl("patch", "ksvc", "fake", "--subresource=status", "--type=merge",
                          "-p", f'{{"status": {status}}}')
        out, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{err}"
    lines = out.splitlines()
    assert lines[:2] == ["Creating service 'fake' in namespace 'default':", ""]
    assert lines[2].endswith('s Configuration "fake" is waiting for a Revision to become ready.')
    assert lines[3].endswith("s Ready to serve.")
    assert lines[4:] == ["", "Service 'fake' created to latest revision 'fake-00001' is available at URL:",
                         "https://fake-default.apps.example"]


def test_wait_timeout_without_a_control_plane(skiff: Skiff) -> None:
    if reconcilers_present(skiff):
        pytest.skip("the real reconcilers would make the Service ready")
    t0 = time.monotonic()
    r = skiff.skiff("service", "create", "slow", "--image", IMAGE, "--wait-timeout", "2")
    assert failed(r) == "error: timeout: service 'slow' not ready after 2 seconds"
    assert r.stdout == "Creating service 'slow' in namespace 'default':\n\n"
    assert time.monotonic() - t0 < 15


def test_create_waits_for_ready_and_prints_the_url(skiff: Skiff) -> None:
    require_reconcilers(skiff)
    r = skiff.skiff("service", "create", "web", "--image", IMAGE, "-e", "RESPONSE=v1",
                    "--wait-timeout", "90", timeout=120)
    out = ok(r)
    lines = out.splitlines()
    assert lines[:2] == ["Creating service 'web' in namespace 'default':", ""]
    assert any(line.endswith("s Ready to serve.") for line in lines)
    assert lines[-2] == "Service 'web' created to latest revision 'web-00001' is available at URL:"
    svc = ksvc(skiff, "web")
    assert lines[-1] == svc["status"]["url"]
    assert lines[-1].startswith("https://web-default.")


def test_update_makes_revision_two(skiff: Skiff) -> None:
    require_reconcilers(skiff)
    if skiff.kubectl("get", "ksvc", "web", check=False).returncode != 0:
        ok(skiff.skiff("service", "create", "web", "--image", IMAGE, "--wait-timeout", "90", timeout=120))
    out = ok(skiff.skiff("service", "update", "web", "-e", "RESPONSE=v2", "--wait-timeout", "90", timeout=120))
    lines = out.splitlines()
    assert "Updating Service 'web' in namespace 'default':" in lines
    assert lines[-2] == "Service 'web' updated to latest revision 'web-00002' is available at URL:"


def test_traffic_split_and_tags(skiff: Skiff) -> None:
    require_reconcilers(skiff)
    if skiff.kubectl("get", "rev", "web-00002", check=False).returncode != 0:
        pytest.skip("needs web-00002 from test_update_makes_revision_two")
    ok(skiff.skiff("service", "update", "web", "--tag", "web-00001=old,@latest=current",
                   "--traffic", "old=20,@latest=80", "--wait-timeout", "90", timeout=120))
    spec = ksvc(skiff, "web")["spec"]["traffic"]
    assert {"tag": "old", "revisionName": "web-00001", "latestRevision": False, "percent": 20} in spec
    assert {"tag": "current", "latestRevision": True, "percent": 80} in spec
    status = skiff.wait_for(lambda: (ksvc(skiff, "web").get("status") or {}).get("traffic"), timeout=30,
                            what="status.traffic")
    assert sorted(t["percent"] for t in status) == [20, 80]
    out = ok(skiff.skiff("service", "describe", "web"))
    assert " 80%  @latest (web-00002) #current [2]" in out
    assert " 20%  web-00001 #old [1]" in out
    line = failed(skiff.skiff("service", "update", "web", "--traffic", "old=50,@latest=60"))
    assert line == "error: given traffic percents sum to 110, want <=100"


def test_delete_after_ready(skiff: Skiff) -> None:
    require_reconcilers(skiff)
    if skiff.kubectl("get", "ksvc", "web", check=False).returncode != 0:
        pytest.skip("web was not created")
    out = ok(skiff.skiff("service", "delete", "web", "--wait-timeout", "30"))
    assert out == "Service 'web' successfully deleted in namespace 'default'.\n"
    skiff.wait_for(lambda: not skiff.kubectl_json("get", "revisions", "-l",
                                                  "serving.knative.dev/service=web")["items"],
                   timeout=30, what="revisions of web garbage-collected")
