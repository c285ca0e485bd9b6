"""Traffic: admission rules with upstream's messages, and the flattening to Revisions."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.serving import apis, traffic
from skiff.serving.config import effective_config
from skiff.serving.traffic import RevisionTarget, TargetError

CFG = effective_config(None, "apps.example.com")


def texts(errs: list[apis.FieldError]) -> list[str]:
    return [e.via("spec.traffic").text() for e in errs]


@pytest.mark.parametrize("tt, in_service, want", [
    ([{"latestRevision": True, "percent": 100}], True, []),
    ([{"latestRevision": True, "percent": 90}], True,
     ["Traffic targets sum to 90, want 100: spec.traffic"]),
    ([{"latestRevision": True, "percent": 50, "tag": "a"},
      {"revisionName": "r1", "latestRevision": False, "percent": 50, "tag": "a"}], True,
     ['Multiple definitions for "a": spec.traffic[1].tag, spec.traffic[0].tag']),
    ([{"revisionName": "r1", "latestRevision": True, "percent": 100}], True,
     ['may not set revisionName "r1" when latestRevision is true: spec.traffic[0].latestRevision']),
    ([{"latestRevision": False, "percent": 100}], True,
     ['may not set revisionName "" when latestRevision is false: spec.traffic[0].latestRevision']),
    ([{"configurationName": "c", "percent": 100}], True,
     ["must not set the field(s): spec.traffic[0].configurationName"]),
    ([{"percent": 100}], False,
     ["expected exactly one, got neither: spec.traffic[0].revisionName, "
      "spec.traffic[0].configurationName"]),
    ([{"revisionName": "r", "configurationName": "c", "percent": 100}], False,
     ["expected exactly one, got both: spec.traffic[0].revisionName, "
      "spec.traffic[0].configurationName"]),
    ([{"latestRevision": True, "percent": 100, "tag": "Bad_Tag"}], True,
     ["invalid value: not a DNS 1035 label: [a DNS-1035 label must consist of lower case "
      "alphanumeric characters or '-', start with an alphabetic character, and end with an "
      "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is "
      "'[a-z]([-a-z0-9]*[a-z0-9])?')]: spec.traffic.tag[0]"]),
    ([{"latestRevision": True, "percent": 100, "url": "http://x"}], True,
     ["must not set the field(s): spec.traffic[0].url"]),
    ([{"latestRevision": True, "percent": 110}], True,
     ["expected 0 <= 110 <= 100: spec.traffic[0].percent",
      "Traffic targets sum to 110, want 100: spec.traffic"]),
])
def test_validate_traffic(tt: list[dict[str, Any]], in_service: bool, want: list[str]) -> None:
    assert texts(traffic.validate_traffic(tt, in_service)) == want


@pytest.mark.parametrize("given, in_service, want", [
    (None, True, [{"percent": 100, "latestRevision": True}]),
    ([], True, [{"percent": 100, "latestRevision": True}]),
    ([{"revisionName": "r", "percent": 100}], True,
     [{"revisionName": "r", "percent": 100, "latestRevision": False}]),
    ([{"percent": 100}], False, [{"percent": 100, "latestRevision": True}]),
    (None, False, None),
])
def test_default_traffic(given: list[dict[str, Any]] | None, in_service: bool,
                         want: list[dict[str, Any]] | None) -> None:
    assert traffic.default_traffic(given, in_service) == want


# --- build ---------------------------------------------------------------------------

def ready(status: str = "True") -> dict[str, Any]:
    return {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": status}]}


def rev(name: str, status: str = "True", config: str = "hello") -> dict[str, Any]:
    return {"metadata": {"name": name, "generation": 1,
                         "labels": {"serving.knative.dev/configuration": config}},
            "spec": {"containers": [{"image": "x"}]}, "status": ready(status)}


def cfg(name: str = "hello", lrr: str = "", status: str = "True") -> dict[str, Any]:
    st: dict[str, Any] = {"conditions": [{"type": "Ready", "status": status}]}
    if lrr:
        st["latestReadyRevisionName"] = lrr
    return {"metadata": {"name": name}, "status": st}


def route(*targets: dict[str, Any], name: str = "hello", labels: dict[str, str] | None = None
          ) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "labels": labels or {}},
            "spec": {"traffic": list(targets)}}


CONFIGS = {"hello": cfg(lrr="hello-00002")}
REVS = {n: rev(n) for n in ("hello-00001", "hello-00002")}


@pytest.mark.parametrize("targets, configs, revs, want_err, want_default", [
    ([{"configurationName": "hello", "latestRevision": True, "percent": 100}], CONFIGS, REVS,
     None, [("hello-00002", 100)]),
    ([{"configurationName": "hello", "latestRevision": True, "percent": 60},
      {"revisionName": "hello-00001", "percent": 40}], CONFIGS, REVS,
     None, [("hello-00002", 60), ("hello-00001", 40)]),
    # Two targets on one revision merge.
    ([{"configurationName": "hello", "percent": 50}, {"revisionName": "hello-00002", "percent": 50}],
     CONFIGS, REVS, None, [("hello-00002", 100)]),
    ([{"configurationName": "nope", "percent": 100}], CONFIGS, REVS,
     TargetError("missing", "Configuration", "nope"), None),
    ([{"revisionName": "hello-00009", "percent": 100}], CONFIGS, REVS,
     TargetError("missing", "Revision", "hello-00009"), None),
    ([{"configurationName": "hello", "percent": 100}], {"hello": cfg(status="Unknown")}, REVS,
     TargetError("config", "Configuration", "hello", False), None),
    ([{"configurationName": "hello", "percent": 100}], {"hello": cfg(status="False")}, REVS,
     TargetError("config", "Configuration", "hello", True), None),
    ([{"revisionName": "bad", "percent": 100}], CONFIGS, {"bad": rev("bad", "False")},
     TargetError("revision", "Revision", "bad", True), None),
    ([{"revisionName": "slow", "percent": 100}], CONFIGS, {"slow": rev("slow", "Unknown")},
     TargetError("revision", "Revision", "slow", False), None),
    # A failure wins over an earlier not-yet-ready target.
    ([{"revisionName": "slow", "percent": 50}, {"revisionName": "gone", "percent": 50}], CONFIGS,
     {"slow": rev("slow", "Unknown")}, TargetError("missing", "Revision", "gone"), None),
])
def test_build(targets: list[dict[str, Any]], configs: dict[str, Any], revs: dict[str, Any],
               want_err: TargetError | None, want_default: list[tuple[str, int]] | None) -> None:
    tc, err = traffic.build(route(*targets), configs, revs)
    assert err == want_err
    if want_default is None:
        assert tc.targets == {} and tc.revision_targets == []
    else:
        assert [(t.revision_name, t.percent) for t in tc.targets[""]] == want_default


def test_unready_revision_generation_is_not_ready() -> None:
    r = rev("hello-00001")
    r["metadata"]["generation"] = 2
    assert not traffic.revision_is_ready(r)


def test_tags_get_their_own_group_at_100() -> None:
    tc, err = traffic.build(route(
        {"configurationName": "hello", "latestRevision": True, "percent": 100},
        {"revisionName": "hello-00001", "latestRevision": False, "percent": 0, "tag": "old"}),
        CONFIGS, REVS)
    assert err is None
    assert tc.targets["old"] == [RevisionTarget("hello-00001", 100, "old", "hello", False)]
    assert [t.revision_name for t in tc.targets[""]] == ["hello-00002", "hello-00001"]
    tc.visibility = traffic.visibility(route(), CFG)
    status = traffic.status_traffic(tc, route(), CFG)
    assert status == [
        {"revisionName": "hello-00002", "latestRevision": True, "percent": 100},
        {"tag": "old", "revisionName": "hello-00001", "latestRevision": False, "percent": 0,
         "url": "http://old-hello-default.apps.example.com"}]


@pytest.mark.parametrize("err, want", [
    (TargetError("missing", "Revision", "x"),
     ("False", "RevisionMissing", 'Revision "x" referenced in traffic not found.')),
    (TargetError("config", "Configuration", "c", False),
     ("Unknown", "RevisionMissing", 'Configuration "c" is waiting for a Revision to become ready.')),
    (TargetError("config", "Configuration", "c", True),
     ("False", "RevisionMissing", 'Configuration "c" does not have any ready Revision.')),
    (TargetError("revision", "Revision", "r", False),
     ("Unknown", "RevisionMissing", 'Revision "r" is not yet ready.')),
    (TargetError("revision", "Revision", "r", True),
     ("False", "RevisionMissing", 'Revision "r" failed to become ready.')),
])
def test_target_error_conditions(err: TargetError, want: tuple[str, str, str]) -> None:
    assert err.condition() == want


def test_visibility_follows_the_route() -> None:
    local = route({"configurationName": "hello", "percent": 100, "tag": "t"},
                  labels={"networking.knative.dev/visibility": "cluster-local"})
    assert traffic.visibility(local, CFG) == {"": "ClusterLocal", "t": "ClusterLocal"}
    assert traffic.visibility(route(), CFG) == {"": "ExternalIP"}
