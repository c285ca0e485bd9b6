"""`skiff service` (kn 1.10's `kn service`) against a real `skiff up`, checked with the real kubectl.

The first half needs only the API server: what create/update/delete store and
print with --no-wait, the errors, list and describe. The second half needs the
Knative Serving reconcilers (Service -> Configuration/Route -> Revision ->
Ready and a URL); it probes for them once and skips, with the reason, when no
Revision appears. Every wait has a deadline.
"""

from __future__ import annotations

import json
from typing import Any

from skiffproc import Skiff

IMAGE = "docker.io/openshift/hello-openshift"


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


# --- with the Knative Serving control plane (each test makes its own Service) -------------------

def create_ready(skiff: Skiff, name: str, *flags: str) -> str:
    return ok(skiff.skiff("service", "create", name, "--image", IMAGE, *flags, "--wait-timeout", "90",
                          timeout=120))


def test_wait_timeout_when_the_revision_never_gets_ready(skiff: Skiff) -> None:
    """A container that never listens: the Revision never gets Ready, the CLI gives up on time."""
    r = skiff.skiff("service", "create", "slow", "--image", "docker.io/library/busybox",
                    "--cmd", "sleep", "--arg", "3600", "--wait-timeout", "2", timeout=60)
    assert failed(r) == "error: timeout: service 'slow' not ready after 2 seconds"
    assert r.stdout.startswith("Creating service 'slow' in namespace 'default':\n\n")


def test_create_waits_for_ready_and_prints_the_url(skiff: Skiff) -> None:
    out = create_ready(skiff, "web", "-e", "RESPONSE=v1")
    lines = out.splitlines()
    assert lines[:2] == ["Creating service 'web' in namespace 'default':", ""]
    assert any(line.endswith("s Ready to serve.") for line in lines)
    assert lines[-2] == "Service 'web' created to latest revision 'web-00001' is available at URL:"
    svc = ksvc(skiff, "web")
    assert lines[-1] == svc["status"]["url"]
    assert lines[-1].startswith("https://web-default.")


def test_update_makes_revision_two(skiff: Skiff) -> None:
    create_ready(skiff, "upd")
    out = ok(skiff.skiff("service", "update", "upd", "-e", "RESPONSE=v2", "--wait-timeout", "90",
                         timeout=120))
    lines = out.splitlines()
    assert "Updating Service 'upd' in namespace 'default':" in lines
    assert lines[-2] == "Service 'upd' updated to latest revision 'upd-00002' is available at URL:"


def test_traffic_split_and_tags(skiff: Skiff) -> None:
    create_ready(skiff, "split")
    ok(skiff.skiff("service", "update", "split", "-e", "RESPONSE=v2", "--wait-timeout", "90",
                   timeout=120))
    ok(skiff.skiff("service", "update", "split", "--tag", "split-00001=old,@latest=current",
                   "--traffic", "old=20,@latest=80", "--wait-timeout", "90", timeout=120))
    spec = ksvc(skiff, "split")["spec"]["traffic"]
    assert {"tag": "old", "revisionName": "split-00001", "latestRevision": False, "percent": 20} in spec
    assert {"tag": "current", "latestRevision": True, "percent": 80} in spec
    status = skiff.wait_for(lambda: (ksvc(skiff, "split").get("status") or {}).get("traffic"),
                            timeout=30, what="status.traffic")
    assert sorted(t["percent"] for t in status) == [20, 80]
    out = ok(skiff.skiff("service", "describe", "split"))
    assert " 80%  @latest (split-00002) #current [2]" in out
    assert " 20%  split-00001 #old [1]" in out
    line = failed(skiff.skiff("service", "update", "split", "--traffic", "old=50,@latest=60"))
    assert line == "error: given traffic percents sum to 110, want <=100"


def test_delete_after_ready(skiff: Skiff) -> None:
    create_ready(skiff, "gone")
    out = ok(skiff.skiff("service", "delete", "gone", "--wait-timeout", "30"))
    assert out == "Service 'gone' successfully deleted in namespace 'default'.\n"
    skiff.wait_for(lambda: not skiff.kubectl_json("get", "revisions", "-l",
                                                  "serving.knative.dev/service=gone")["items"],
                   timeout=30, what="revisions of gone garbage-collected")
