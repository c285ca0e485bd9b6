"""`skiff authz check|matrix` and `skiff mesh tenant-policies` as commands, offline (-f files
alone, no server): exit codes 0 allow / 1 deny / 2 usage or lookup error, one-line errors,
text and JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from skiff.cli.main import app

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "tenant-isolation"
GOLDEN = ROOT / "tests" / "golden" / "tenant-policies"
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    r = runner.invoke(app, list(args))
    return r.exit_code, r.stdout, r.stderr


def offline(*args: str) -> tuple[int, str, str]:
    return run("authz", "check", "--offline", "-f", str(EXAMPLES), *args)


def test_check_allow_same_tenant() -> None:
    code, out, _ = offline("--from", "team-alpha-1/default", "--to", "test-webapp.team-alpha-1")
    assert code == 0
    # no ServerlessService in the files: the activator is assumed in the path (one pod, the
    # default target-burst-capacity), so its policy and then the pod's decide
    assert out.splitlines() == [
        "ALLOW team-alpha-1/default -> test-webapp.team-alpha-1 GET / : via the activator: "
        "allowed by ALLOW policy team-alpha-1/allow-from-knative-and-istio rule 0",
        "activator: policy: knative-serving/allow-team-alpha-to-activator rule: 0",
        "policy: team-alpha-1/allow-from-knative-and-istio rule: 0"]


def test_check_deny_other_tenant() -> None:
    code, out, err = offline("--from", "team-alpha-1/default", "--to", "test-webapp.team-bravo-1")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("DENY  team-alpha-1/default -> test-webapp.team-bravo-1 GET / : "
                               "at the activator (knative-serving/activator): "
                               "denied: no ALLOW policy matched")
    assert lines[1:] == ["response: 403 RBAC: access denied"]
    assert "no revision pod" in err   # the files hold no pods: said on stderr


@pytest.mark.parametrize("ns", ["team-alpha-1", "team-bravo-1"])
def test_check_via_ingress_allows_either(ns: str) -> None:
    code, out, _ = offline("--via", "ingress", "--to", f"test-webapp.{ns}")
    assert code == 0 and out.startswith("ALLOW ingress (istio-system/")


def test_check_json() -> None:
    code, out, _ = offline("--from", "team-alpha-1/default", "--to", "test-webapp.team-bravo-1",
                           "-o", "json", "--method", "post", "--path", "/x", "-H", "A=b")
    assert code == 1
    d = json.loads(out)
    assert (d["verdict"], d["status"], d["action"]) == ("DENY", 403, "NONE")
    assert d["request"]["method"] == "POST" and d["request"]["path"] == "/x"
    assert d["request"]["headers"] == {"a": "b"}


def test_check_namespace_defaults_to_the_callers() -> None:
    # the bare name is the Host too, which none of the activator's hosts (*.team-bravo-1...)
    # matches: denied there, as it would be on a cluster
    code, out, _ = offline("--from", "team-bravo-1/default", "--to", "test-webapp")
    assert code == 1 and "-> test-webapp.team-bravo-1 " in out and "at the activator" in out
    code, out, _ = offline("--from", "team-bravo-1/default", "--to", "test-webapp",
                           "--host", "test-webapp.team-bravo-1")
    assert code == 0 and "-> test-webapp.team-bravo-1 " in out
    code, out, _ = offline("--from", "team-bravo-1/default", "--to", "test-webapp",
                           "-n", "team-alpha-1")
    assert code == 1 and "-> test-webapp.team-alpha-1 " in out


def test_check_with_labels() -> None:
    code, out, _ = offline("--from", "knative-serving/controller", "--to",
                           "autoscaler.knative-serving", "--label", "app=autoscaler")
    assert code == 0 and "knative-serving/allow-traffic-to-autoscaler rule 0" in out
    code, out, _ = offline("--from", "team-alpha-1/default", "--to",
                           "autoscaler.knative-serving", "--label", "app=autoscaler")
    assert code == 1 and "knative-serving/deny-all-by-default" in out


@pytest.mark.parametrize(("args", "message"), [
    (("--from", "team-alpha-1/default", "--to", "test-webapp.team-bravo-2"),
     "error: service test-webapp not found in namespace team-bravo-2"),
    (("--to", "test-webapp.team-bravo-1"), "--from NAMESPACE/SERVICEACCOUNT is required"),
    (("--from", "a/b/c", "--to", "x"), "is not NAMESPACE/SERVICEACCOUNT"),
    (("--via", "sidecar", "--to", "x"), "--via sidecar is not a path"),
    (("--from", "a/b", "--to", "x", "--header", "nokv"), "--header 'nokv' is not KEY=VALUE"),
    (("--from", "a/b", "--to", "x", "-o", "yaml"), "--output yaml is not a format"),
    (("--from", "a/b", "--to", "x", "--port", "70000"), "--port 70000 is not a port number"),
])
def test_check_usage_errors_exit_2_in_one_line(args: tuple[str, ...], message: str) -> None:
    code, out, err = offline(*args)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_offline_needs_files() -> None:
    code, _, err = run("authz", "check", "--offline", "--from", "a/b", "--to", "x.y")
    assert code == 2 and "--offline needs the policies as -f files" in err


def test_invalid_policy_file_names_document_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\n"
                   "metadata:\n  name: p\n  namespace: x\nspec:\n  rules:\n  - when:\n"
                   "    - key: nope\n      values: [a]\n")
    code, _, err = run("authz", "check", "--offline", "-f", str(bad), "--from", "a/b",
                       "--to", "w.x", "--label", "app=w")
    assert code == 2
    assert f"{bad}:9: document 1 (AuthorizationPolicy x/p): spec.rules[0].when[0].key" in err
    missing = tmp_path / "missing.yaml"
    code, _, err = run("authz", "check", "--offline", "-f", str(missing), "--from", "a/b",
                       "--to", "w.x")
    assert code == 2 and "does not exist" in err


def test_no_server_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    code, _, err = run("authz", "check", "--home", str(tmp_path), "--from", "a/b", "--to", "w.x")
    assert code == 2 and "no kubeconfig" in err and "--offline" in err


def test_matrix_json_and_table() -> None:
    code, out, _ = run("authz", "matrix", "team-alpha-1", "team-bravo-1", "--offline", "-f",
                       str(EXAMPLES), "--ingress", "-o", "json")
    assert code == 0
    cells = {(e["from"], e["to"]): e["verdict"] for e in json.loads(out)}
    assert cells[("team-alpha-1/default", "test-webapp.team-alpha-1")] == "ALLOW"
    assert cells[("team-alpha-1/default", "test-webapp.team-bravo-1")] == "DENY"
    assert {v for (src, _), v in cells.items() if src.startswith("ingress")} == {"ALLOW"}
    code, out, _ = run("authz", "matrix", "team-alpha-1", "team-bravo-1", "--offline", "-f",
                       str(EXAMPLES))
    assert code == 0 and "team-alpha-1/default" in out and "DENY" in out and "ALLOW" in out


def test_tenant_policies_prints_the_golden_file() -> None:
    code, out, _ = run("mesh", "tenant-policies", "--tenant", "team-alpha", "--namespace",
                       "team-alpha-1", "--namespace", "team-alpha-2")
    assert code == 0 and out == (GOLDEN / "team-alpha.yaml").read_text()
    code, out, _ = run("mesh", "tenant-policies", "--tenant", "team-bravo", "-n", "team-bravo-1",
                       "-n", "team-bravo-2", "--no-eventing")
    assert code == 0 and "knative-eventing" not in out and out.count("---\n") == 5


@pytest.mark.parametrize(("args", "message"), [
    (("--tenant", "", "-n", "a"), "tenant name must not be empty"),
    (("--tenant", "t", "-n", "a", "-n", "a"), "namespace a is listed twice"),
    (("--tenant", "t", "-n", "A_b"), "namespace 'A_b' is not a valid namespace name"),
    (("--tenant", "t", "-n", "a", "--no-serving", "--no-eventing"), "both disabled"),
])
def test_tenant_policies_errors(args: tuple[str, ...], message: str) -> None:
    code, out, err = run("mesh", "tenant-policies", *args)
    assert code == 2 and out == "" and message in err
