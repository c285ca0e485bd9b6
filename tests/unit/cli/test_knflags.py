"""kn 1.10's service flags as pure edits: tables of flags -> Service, and of bad flags -> kn's error.

Expected values and messages follow knative/client release-1.10
(ConfigurationEditFlags.Apply, PodSpecFlags.ResolvePodSpec, traffic.Compute)
and knative/serving's autoscaling annotation checks.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from skiff.cli import knflags as k
from skiff.cli import kntraffic as kt
from skiff.cli.knflags import EditFlags, KnError, TrafficFlags
from skiff.cli.kntraffic import ActiveRevision

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
STAMP = "2024-05-01T12:00:00Z"
IMAGE = "docker.io/openshift/hello-openshift"
Obj = dict[str, Any]


def create(**kw: Any) -> Obj:
    kw.setdefault("image", IMAGE)
    return k.apply_edits(k.new_service("hello", "default"), EditFlags(**kw), now=NOW,
                         random=lambda n: "b" * n)


def existing(**extra: Any) -> Obj:
    """A Service as the server returns it after `create --image IMAGE -e A=1`, reconciled once."""
    svc = create(env=["A=1"])
    svc["metadata"].update({"generation": 1, "resourceVersion": "7", "uid": "u1"})
    svc["spec"]["traffic"] = [{"latestRevision": True, "percent": 100}]
    svc["status"] = {"observedGeneration": 1, "latestCreatedRevisionName": "hello-00001",
                     "latestReadyRevisionName": "hello-00001", "url": "https://hello-default.apps.example",
                     "traffic": [{"revisionName": "hello-00001", "latestRevision": True, "percent": 100}]}
    for key, value in extra.items():
        svc[key] = value
    return svc


def update(svc: Obj, base: Obj | None = None, **kw: Any) -> Obj:
    return k.apply_edits(svc, EditFlags(**kw), now=NOW, base_revision=base, command="update",
                         random=lambda n: "b" * n)


def container(svc: Obj) -> Obj:
    c: Obj = svc["spec"]["template"]["spec"]["containers"][0]
    return c


def tanns(svc: Obj) -> dict[str, str]:
    return dict(svc["spec"]["template"]["metadata"].get("annotations") or {})


# --- create: the whole object ---------------------------------------------------------
def test_create_minimal_is_kns_object() -> None:
    assert create() == {
        "apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {"template": {
            "metadata": {"annotations": {k.USER_IMAGE: IMAGE, k.UPDATE_TIMESTAMP: STAMP}},
            "spec": {"containers": [{"image": IMAGE}]},
        }},
    }


def test_create_with_the_gpu_guide_flags() -> None:
    svc = create(env=["TARGET=v1", "FROM=examples"], limit=["nvidia.com/gpu=1"],
                 request=["memory=250Mi", "cpu=200m"], annotation=["sidecar.istio.io/inject=false"],
                 label=["team=a"], scale_min=1, port="h2c:8080")
    c = container(svc)
    assert c["env"] == [{"name": "TARGET", "value": "v1"}, {"name": "FROM", "value": "examples"}]
    assert c["resources"] == {"limits": {"nvidia.com/gpu": "1"},
                              "requests": {"memory": "250Mi", "cpu": "200m"}}
    assert c["ports"] == [{"containerPort": 8080, "name": "h2c"}]
    assert svc["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert svc["metadata"]["labels"] == {"team": "a"}
    assert svc["spec"]["template"]["metadata"]["labels"] == {"team": "a"}
    assert tanns(svc)["sidecar.istio.io/inject"] == "false"
    assert tanns(svc)[k.MIN_SCALE] == "1"


def test_create_does_not_touch_its_input() -> None:
    base = k.new_service("hello", "default")
    before = copy.deepcopy(base)
    create()
    k.apply_edits(base, EditFlags(image=IMAGE, env=["A=1"]), now=NOW)
    assert base == before


# --- container flags: flags -> (path in container or pod spec, value) ------------------------
CONTAINER_CASES: list[tuple[str, dict[str, Any], str, Any]] = [
    ("port alone", {"port": "8080"}, "ports", [{"containerPort": 8080}]),
    ("port with name", {"port": "h2c:8080"}, "ports", [{"containerPort": 8080, "name": "h2c"}]),
    ("cmd words", {"cmd": ["sh", "/app/start.sh"]}, "command", ["sh", "/app/start.sh"]),
    ("args", {"arg": ["--myArg2", "myArg3=3"]}, "args", ["--myArg2", "myArg3=3"]),
    ("limit cpu and memory", {"limit": ["cpu=100m", "memory=256Mi"]}, "resources",
     {"limits": {"cpu": "100m", "memory": "256Mi"}}),
    ("gpu limit", {"limit": ["nvidia.com/gpu=2"]}, "resources", {"limits": {"nvidia.com/gpu": "2"}}),
    ("request only", {"request": ["cpu=250m"]}, "resources", {"requests": {"cpu": "250m"}}),
    ("env-value-from cm", {"env_value_from": ["DB=cm:config:db"]}, "env",
     [{"name": "DB", "valueFrom": {"configMapKeyRef": {"name": "config", "key": "db"}}}]),
    ("env-value-from secret", {"env_value_from": ["PW=sc:creds:password"]}, "env",
     [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}]),
    ("env-from config-map", {"env_from": ["config-map:settings"]}, "envFrom",
     [{"configMapRef": {"name": "settings"}}]),
    ("env-from cm and secret", {"env_from": ["cm:a", "secret:b"]}, "envFrom",
     [{"configMapRef": {"name": "a"}}, {"secretRef": {"name": "b"}}]),
    ("env-from twice is once", {"env_from": ["cm:a", "config-map:a"]}, "envFrom",
     [{"configMapRef": {"name": "a"}}]),
    ("pull policy any case", {"pull_policy": "ifnotpresent"}, "imagePullPolicy", "IfNotPresent"),
    ("user", {"user": 1001}, "securityContext", {"runAsUser": 1001}),
    ("env with = in value", {"env": ["A=b=c"]}, "env", [{"name": "A", "value": "b=c"}]),
]


@pytest.mark.parametrize(("flags", "key", "want"), [c[1:] for c in CONTAINER_CASES],
                         ids=[c[0] for c in CONTAINER_CASES])
def test_container_flags(flags: dict[str, Any], key: str, want: Any) -> None:
    assert container(create(**flags))[key] == want


POD_CASES: list[tuple[str, dict[str, Any], str, Any]] = [
    ("service account", {"service_account": " robot "}, "serviceAccountName", "robot"),
    ("pull secret", {"pull_secret": "regcred"}, "imagePullSecrets", [{"name": "regcred"}]),
    ("timeout", {"timeout": 120}, "timeoutSeconds", 120),
    ("concurrency limit", {"concurrency_limit": 10}, "containerConcurrency", 10),
    ("concurrency limit zero", {"concurrency_limit": 0}, "containerConcurrency", 0),
]


@pytest.mark.parametrize(("flags", "key", "want"), [c[1:] for c in POD_CASES], ids=[c[0] for c in POD_CASES])
def test_revision_spec_flags(flags: dict[str, Any], key: str, want: Any) -> None:
    assert create(**flags)["spec"]["template"]["spec"][key] == want


# --- autoscaling flags -> template annotations ----------------------------------------------
SCALE_CASES: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    ("scale single", {"scale": "5"}, {k.MIN_SCALE: "5", k.MAX_SCALE: "5"}),
    ("scale range", {"scale": "1..5"}, {k.MIN_SCALE: "1", k.MAX_SCALE: "5"}),
    ("scale open max", {"scale": "1.."}, {k.MIN_SCALE: "1"}),
    ("scale open min", {"scale": "..5"}, {k.MAX_SCALE: "5"}),
    ("scale-min", {"scale_min": 2}, {k.MIN_SCALE: "2"}),
    ("scale-max", {"scale_max": 0}, {k.MAX_SCALE: "0"}),
    ("scale-init zero allowed", {"scale_init": 0}, {k.INITIAL_SCALE: "0"}),
    ("scale-activation", {"scale_activation": 3}, {k.ACTIVATION_SCALE: "3"}),
    ("scale-target", {"scale_target": 50}, {k.TARGET: "50"}),
    ("scale-metric not checked", {"scale_metric": "rps"}, {k.METRIC: "rps"}),
    ("scale-utilization", {"scale_utilization": 80}, {k.TARGET_UTILIZATION: "80"}),
    ("scale-window", {"scale_window": "10s"}, {k.WINDOW: "10s"}),
    ("scale-window go syntax", {"scale_window": "1m30s"}, {k.WINDOW: "1m30s"}),
    ("annotation autoscaling goes to revision only", {"annotation": [f"{k.TARGET}=10"]}, {k.TARGET: "10"}),
    ("annotation-revision", {"annotation_revision": ["a=b"]}, {"a": "b"}),
]


@pytest.mark.parametrize(("flags", "want"), [c[1:] for c in SCALE_CASES], ids=[c[0] for c in SCALE_CASES])
def test_scale_flags(flags: dict[str, Any], want: dict[str, str]) -> None:
    svc = create(**flags)
    got = {key: v for key, v in tanns(svc).items() if key not in (k.USER_IMAGE, k.UPDATE_TIMESTAMP)}
    assert got == want
    assert not any(key.startswith(k.AUTOSCALING) for key in svc["metadata"].get("annotations", {}))


# --- metadata flags ---------------------------------------------------------------------------
def test_label_flags_reach_service_and_template_separately() -> None:
    svc = create(label=["a=1"], label_service=["s=2"], label_revision=["r=3"])
    assert svc["metadata"]["labels"] == {"a": "1", "s": "2"}
    assert svc["spec"]["template"]["metadata"]["labels"] == {"a": "1", "r": "3"}


def test_bare_label_means_empty_value() -> None:
    assert create(label=["flag"])["metadata"]["labels"] == {"flag": ""}


def test_annotation_flags_reach_service_and_template_separately() -> None:
    svc = create(annotation=["a=1"], annotation_service=["s=2"], annotation_revision=["r=3"])
    assert svc["metadata"]["annotations"] == {"a": "1", "s": "2"}
    assert {key: tanns(svc)[key] for key in ("a", "r")} == {"a": "1", "r": "3"}
    assert "s" not in tanns(svc)


def test_cluster_local_sets_and_unsets_the_visibility_label() -> None:
    svc = create(cluster_local=True)
    assert svc["metadata"]["labels"] == {k.VISIBILITY_LABEL: k.CLUSTER_LOCAL}
    assert "labels" not in update(svc, cluster_local=False)["metadata"]


# --- revision names ------------------------------------------------------------------------------
@pytest.mark.parametrize(("template", "generation", "want"), [
    ("{{.Service}}-v1", 0, "hello-v1"),
    ("v2", 0, "hello-v2"),
    ("hello-blue", 0, "hello-blue"),
    ("{{.Service}}-{{.Random 5}}-{{.Generation}}", 0, "hello-bbbbb-1"),
    ("{{ .Service }}-{{.Generation}}", 4, "hello-5"),
])
def test_revision_name_templates(template: str, generation: int, want: str) -> None:
    svc = k.new_service("hello", "default")
    svc["metadata"]["generation"] = generation
    assert k.generate_revision_name(template, svc, lambda n: "b" * n) == want


def test_revision_name_flag_names_the_template() -> None:
    assert create(revision_name="{{.Service}}-one")["spec"]["template"]["metadata"]["name"] == "hello-one"
    assert "name" not in create(revision_name="")["spec"]["template"]["metadata"]


def test_random_consonants_uses_kns_alphabet() -> None:
    pick = k.random_consonants(lambda n: n - 1)
    assert pick(3) == "zzz"


def test_update_without_revision_name_lets_the_server_name_it() -> None:
    svc = existing()
    svc["spec"]["template"]["metadata"]["name"] = "hello-one"
    assert "name" not in update(svc, env=["B=2"])["spec"]["template"]["metadata"]
    assert update(svc, env=["B=2"], revision_name="two")["spec"]["template"]["metadata"]["name"] == "hello-two"


# --- update semantics -------------------------------------------------------------------------------
def test_update_env_replaces_in_place_appends_and_removes() -> None:
    svc = existing()
    container(svc)["env"] = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    got = container(update(svc, env=["A=9", "C=3", "B-"]))["env"]
    assert got == [{"name": "A", "value": "9"}, {"name": "C", "value": "3"}]


def test_update_removing_the_last_env_drops_the_list() -> None:
    assert "env" not in container(update(existing(), env=["A-"]))


def test_update_env_from_removal() -> None:
    svc = update(existing(), env_from=["cm:a", "secret:b"])
    assert container(update(svc, env_from=["cm:a-"]))["envFrom"] == [{"secretRef": {"name": "b"}}]
    assert "envFrom" not in container(update(svc, env_from=["cm:a-", "secret:b-"]))


def test_update_resources_merge_and_remove() -> None:
    svc = update(existing(), limit=["cpu=1", "memory=1Gi", "nvidia.com/gpu=1"])
    got = update(svc, limit=["nvidia.com/gpu=2", "memory-"])
    assert container(got)["resources"] == {"limits": {"cpu": "1", "nvidia.com/gpu": "2"}}
    assert "resources" not in container(update(got, limit=["cpu-", "nvidia.com/gpu-"]))


def test_update_labels_and_annotations_removal() -> None:
    svc = update(existing(), label=["a=1", "b=2"], annotation=["x=1", "y=2"])
    got = update(svc, label=["a-"], annotation=["x-"])
    assert got["metadata"]["labels"] == {"b": "2"}
    assert got["spec"]["template"]["metadata"]["labels"] == {"b": "2"}
    assert got["metadata"]["annotations"] == {"y": "2"}
    assert "x" not in tanns(got) and tanns(got)["y"] == "2"


def test_annotation_service_and_revision_unset_with_minus() -> None:
    svc = update(existing(), annotation=["x=1"])
    got = update(svc, annotation_service=["x-"], annotation_revision=["x-"])
    assert "annotations" not in got["metadata"]
    assert "x" not in tanns(got)


def test_service_account_and_pull_secret_clear_with_empty() -> None:
    svc = update(existing(), service_account="robot", pull_secret="regcred")
    got = update(svc, service_account="", pull_secret="")
    assert "serviceAccountName" not in got["spec"]["template"]["spec"]
    assert "imagePullSecrets" not in got["spec"]["template"]["spec"]


def test_update_keeps_everything_not_mentioned() -> None:
    svc = existing()
    got = update(svc, scale_max=3)
    assert got["status"] == svc["status"] and got["metadata"]["uid"] == "u1"
    assert container(got) == container(svc)
    assert got["spec"]["traffic"] == svc["spec"]["traffic"]


def test_flags_that_make_no_revision_leave_the_template_alone() -> None:
    svc = existing()
    got = update(svc, cluster_local=True)
    assert got["spec"]["template"] == svc["spec"]["template"]
    assert not EditFlags(cluster_local=True, lock_to_digest=False, pull_policy="Always").any_mutation()
    assert EditFlags(label_service=["a=b"]).any_mutation()


def test_update_timestamp_marks_every_mutation() -> None:
    svc = existing()
    svc["spec"]["template"]["metadata"]["annotations"][k.UPDATE_TIMESTAMP] = "2020-01-01T00:00:00Z"
    assert tanns(update(svc, label_service=["a=b"]))[k.UPDATE_TIMESTAMP] == STAMP


# --- lock to digest ------------------------------------------------------------------------------------
def base_revision(image: str = IMAGE, digest: str = f"{IMAGE}@sha256:{'a' * 64}") -> Obj:
    return {"metadata": {"name": "hello-00001", "labels": {k.GENERATION_LABEL: "1"}},
            "spec": {"containers": [{"image": image}]},
            "status": {"containerStatuses": [{"name": "user-container", "imageDigest": digest}]}}


def test_update_pins_the_image_to_the_base_revisions_digest() -> None:
    got = update(existing(), base_revision(), env=["B=2"])
    assert container(got)["image"] == f"{IMAGE}@sha256:{'a' * 64}"
    assert tanns(got)[k.USER_IMAGE] == IMAGE
    assert k.needs_base_revision(existing(), EditFlags(env=["B=2"]))


def test_update_with_image_is_not_pinned() -> None:
    flags = EditFlags(image="quay.io/x/y:2")
    assert not k.needs_base_revision(existing(), flags)
    got = update(existing(), base_revision(), image="quay.io/x/y:2")
    assert container(got)["image"] == "quay.io/x/y:2" and tanns(got)[k.USER_IMAGE] == "quay.io/x/y:2"


def test_no_lock_to_digest_forgets_the_user_image() -> None:
    got = update(existing(), base_revision(), env=["B=2"], lock_to_digest=False)
    assert container(got)["image"] == IMAGE and k.USER_IMAGE not in tanns(got)
    assert k.USER_IMAGE not in tanns(create(lock_to_digest=False))


def test_pinning_refuses_a_base_revision_with_another_image() -> None:
    with pytest.raises(KnError, match=r"can not pin image to digest: current revision  contains "
                                      r"unexpected image \(docker.io/openshift/hello-openshift\)"):
        update(existing(), base_revision(image="other"), env=["B=2"])


def test_base_revision_candidates_and_generation_check() -> None:
    svc = existing()
    assert k.base_revision_names(svc) == ["hello-00001"]
    assert k.is_base_revision(svc, base_revision(), by_template_name=False)
    svc["metadata"]["generation"] = 2
    assert not k.is_base_revision(svc, base_revision(), by_template_name=False)
    assert k.is_base_revision(svc, base_revision(), by_template_name=True)


# --- kn's error messages ------------------------------------------------------------------------
ERROR_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("env without =", {"env": ["foo"]},
     'Invalid --env: argument requires a value that contains the "=" character; got "foo"'),
    ("env-value-from short", {"env_value_from": ["A=cm:x"]},
     'argument requires a value in form "resourceType:name:key" where "resourceType" can be one of '
     '"config-map" ("cm") or "secret" ("sc"); got "cm:x"'),
    ("env-value-from bad type", {"env_value_from": ["A=vol:x:k"]},
     'unsupported env source type ""vol""; supported source types are "config-map" ("cm") and "secret" ("sc")'),
    ("env-value-from empty key", {"env_value_from": ["A=cm:x:"]},
     'the key referenced by resource ConfigMap "x" cannot be an empty string'),
    ("env-from dash", {"env_from": ["-"]}, '"-" is not a valid value for "--env-from"'),
    ("env-from no colon", {"env_from": ["foo"]},
     'argument requires a value that contains the : character; got "foo", ["foo"]'),
    ("env-from bad type", {"env_from": ["vol:x"]},
     'unsupported volume source type ""vol""; supported volume source types are "config-map" and "secret"'),
    ("env-from empty name", {"env_from": ["cm:"]}, "the name of config-map cannot be an empty string"),
    ("limit bad quantity", {"limit": ["cpu=abc"]},
     "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
    ("limit bare name", {"limit": ["cpu"]},
     "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
    ("limit bad suffix", {"limit": ["memory=1Qi"]},
     "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
    ("limit wrong suffix", {"limit": ["memory=1mi"]}, "unable to parse quantity's suffix"),
    ("limit duplicate", {"limit": ["cpu=1", "cpu=2"]}, 'The key "cpu" has been duplicate in [cpu=1 cpu=2]'),
    ("port not a number", {"port": "h2c:http"},
     "the port specification 'h2c:http' is not valid. Please provide in the format 'NAME:PORT', where "
     "'NAME' is optional. Examples: '--port h2c:8080' , '--port 8080'."),
    ("pull policy", {"pull_policy": "Sometimes"},
     "invalid --pull-policy Sometimes. Valid arguments (case insensitive): Always | Never | IfNotPresent"),
    ("scale format", {"scale": "many"}, "Scale must be of the format x..y or x"),
    ("scale bad max", {"scale": "1..x"}, 'strconv.Atoi: parsing "x": invalid syntax'),
    ("scale and scale-min", {"scale": "1..3", "scale_min": 1}, "only --scale or --scale-min can be specified"),
    ("scale and scale-max", {"scale": "3", "scale_max": 1}, "only --scale or --scale-max can be specified"),
    ("scale-min negative", {"scale_min": -1},
     "expected 0 <= -1 <= 2147483647: autoscaling.knative.dev/min-scale"),
    ("scale range inverted", {"scale": "5..2"},
     "max-scale=2 is less than min-scale=5: autoscaling.knative.dev/max-scale, "
     "autoscaling.knative.dev/min-scale"),
    ("scale-min above scale-max", {"scale_min": 5, "scale_max": 2},
     "max-scale=2 is less than min-scale=5: autoscaling.knative.dev/max-scale, "
     "autoscaling.knative.dev/min-scale"),
    ("scale-activation one", {"scale_activation": 1},
     "min-activate-scale=1 must be greater than 1: autoscaling.knative.dev/activation-scale"),
    ("scale-activation above max", {"scale_activation": 5, "scale_max": 3},
     "max-scale=3 is less than min-activate-scale=5: autoscaling.knative.dev/activation-scale"),
    ("scale-target zero", {"scale_target": 0},
     "target 0 should be at least 0.01: autoscaling.knative.dev/target"),
    ("scale-utilization high", {"scale_utilization": 120},
     "expected 1 <= 120 <= 100: autoscaling.knative.dev/target-utilization-percentage"),
    ("scale-window not a duration", {"scale_window": "soon"},
     "invalid duration for 'scale-window': time: invalid duration \"soon\""),
    ("scale-window missing unit", {"scale_window": "10"},
     "invalid duration for 'scale-window': time: missing unit in duration \"10\""),
    ("scale-window too short", {"scale_window": "2s"},
     "expected 6s <= 2s <= 1h0m0s: autoscaling.knative.dev/window"),
    ("scale-window sub-second", {"scale_window": "6500ms"},
     "must be specified with at most second precision: autoscaling.knative.dev/window"),
    ("scale-init negative", {"scale_init": -1},
     "invalid value: -1: autoscaling.knative.dev/initial-scale must be greater than 0"),
    ("scale-init with annotation", {"scale_init": 1, "annotation": [f"{k.INITIAL_SCALE}=2"]},
     f"only one of the --scale-init or --annotation {k.INITIAL_SCALE} can be specified"),
    ("annotation bad autoscaling value", {"annotation": [f"{k.MIN_SCALE}=lots"]},
     "invalid value: lots: autoscaling.knative.dev/min-scale"),
    ("annotation bad metric", {"annotation_revision": [f"{k.METRIC}=memory"]},
     "invalid value: memory: autoscaling.knative.dev/metric"),
    ("annotation-service autoscaling", {"annotation_service": [f"{k.MIN_SCALE}=1"]},
     "service can not have auto-scaling related annotation: autoscaling.knative.dev/min-scale , "
     "please update using '--annotation-revision'"),
    ("annotation empty key", {"annotation": ["=v"]}, "Invalid --annotation: The key is empty"),
    ("label duplicate", {"label": ["a=1", "a=2"]},
     'Invalid --label: The key "a" has been duplicate in [a=1 a=2]'),
    ("label-service empty key", {"label_service": ["=x"]},
     "Invalid --label-service: Unable to parse label flags: The key is empty"),
    ("concurrency limit negative", {"concurrency_limit": -1},
     "invalid concurrency-limit -1 (must not be less than 0)"),
]


@pytest.mark.parametrize(("flags", "message"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_kn_error_messages(flags: dict[str, Any], message: str) -> None:
    with pytest.raises(KnError) as e:
        create(**flags)
    assert str(e.value) == message


# --- traffic ----------------------------------------------------------------------------------------
def two_revisions() -> Obj:
    """hello with 00001 and 00002 split 50/50; 00002 is the latest ready one, tagged 'current'."""
    svc = existing()
    svc["spec"]["traffic"] = [{"revisionName": "hello-00001", "latestRevision": False, "percent": 50},
                              {"tag": "current", "latestRevision": True, "percent": 50}]
    svc["status"].update({"latestReadyRevisionName": "hello-00002", "latestCreatedRevisionName": "hello-00002",
                          "traffic": [{"revisionName": "hello-00001", "percent": 50},
                                      {"revisionName": "hello-00002", "tag": "current",
                                       "latestRevision": True, "percent": 50}]})
    return svc


def with_traffic(targets: list[Obj]) -> Obj:
    svc = existing()
    svc["spec"]["traffic"] = targets
    return svc


def traffic(svc: Obj, mutation: bool = False, **kw: list[str]) -> list[Obj]:
    return kt.compute_traffic(svc, TrafficFlags(**kw), kt.active_revisions(svc), mutation)


TRAFFIC_CASES: list[tuple[str, Obj, dict[str, list[str]], bool, list[Obj]]] = [
    ("tag latest", existing(), {"tag": ["@latest=current"]}, False,
     [{"latestRevision": True, "percent": 100, "tag": "current"}]),
    ("bare tag means latest", existing(), {"tag": ["current"]}, False,
     [{"latestRevision": True, "percent": 100, "tag": "current"}]),
    ("tag a revision adds a 0% target", existing(), {"tag": ["hello-00001=stable"]}, False,
     [{"latestRevision": True, "percent": 100},
      {"tag": "stable", "latestRevision": False, "revisionName": "hello-00001", "percent": 0}]),
    ("split revision and latest", existing(), {"traffic": ["hello-00001=50", "@latest=50"]}, True,
     [{"latestRevision": True, "percent": 50},
      {"latestRevision": False, "revisionName": "hello-00001", "percent": 50}]),
    ("percent sign allowed", existing(), {"traffic": ["hello-00001=50%", "@latest=50%"]}, True,
     [{"latestRevision": True, "percent": 50},
      {"latestRevision": False, "revisionName": "hello-00001", "percent": 50}]),
    ("tag then split by tag", existing(), {"tag": ["hello-00001=stable"],
                                           "traffic": ["stable=20", "@latest=80"]}, True,
     [{"latestRevision": True, "percent": 80},
      {"tag": "stable", "latestRevision": False, "revisionName": "hello-00001", "percent": 20}]),
    ("all to one revision drops the rest", two_revisions(), {"traffic": ["hello-00001=100"]}, False,
     [{"revisionName": "hello-00001", "latestRevision": False, "percent": 100},
      {"tag": "current", "latestRevision": True, "percent": 0}]),
    ("untag then retag latest", two_revisions(), {"untag": ["current"], "tag": ["@latest=next"]}, False,
     [{"revisionName": "hello-00001", "latestRevision": False, "percent": 50},
      {"tag": "next", "latestRevision": True, "percent": 50}]),
    ("untag drops a 0% target", with_traffic([
        {"latestRevision": True, "percent": 100},
        {"tag": "old", "revisionName": "hello-00001", "latestRevision": False, "percent": 0}]),
     {"untag": ["old"]}, False, [{"latestRevision": True, "percent": 100}]),
    ("remainder goes to the revision left out", existing(), {"traffic": ["70"]}, True,
     [{"latestRevision": True, "percent": 70},
      {"latestRevision": False, "revisionName": "hello-00001", "percent": 30}]),
    ("remainder with two active revisions", two_revisions(), {"traffic": ["current=10"]}, False,
     [{"revisionName": "hello-00001", "latestRevision": False, "percent": 90},
      {"tag": "current", "latestRevision": True, "percent": 10}]),
    ("empty spec traffic means 100% latest", with_traffic([]),
     {"tag": ["@latest=current"]}, False, [{"latestRevision": True, "percent": 100, "tag": "current"}]),
]


@pytest.mark.parametrize(("svc", "flags", "mutation", "want"), [c[1:] for c in TRAFFIC_CASES],
                         ids=[c[0] for c in TRAFFIC_CASES])
def test_traffic(svc: Obj, flags: dict[str, list[str]], mutation: bool, want: list[Obj]) -> None:
    assert traffic(svc, mutation, **flags) == want


TRAFFIC_ERRORS: list[tuple[str, Obj, dict[str, list[str]], bool, str]] = [
    ("sum over 100", existing(), {"traffic": ["hello-00001=60", "@latest=50"]}, True,
     "given traffic percents sum to 110, want <=100"),
    ("percent out of range", existing(), {"traffic": ["hello-00001=120"]}, False,
     "invalid value for traffic percent 120, expected 0 <= percent <= 100"),
    ("percent not a number", existing(), {"traffic": ["hello-00001=half"]}, False,
     "error converting given half to integer value for traffic distribution"),
    ("bad pair", existing(), {"traffic": ["a=b=c"]}, False,
     "expecting the value format in value1=value2, given a=b=c"),
    ("repeated revision", existing(), {"traffic": ["hello-00001=50", "hello-00001=50"]}, False,
     "repetition of revision reference hello-00001 is not allowed, use only once with --traffic flag"),
    ("repeated latest", existing(), {"traffic": ["@latest=50", "@latest=50"]}, False,
     "repetition of identifier @latest is not allowed, use only once with --traffic flag"),
    ("repeated latest tag", existing(), {"tag": ["@latest=a", "@latest=b"]}, False,
     "repetition of identifier @latest is not allowed, use only once with --tag flag"),
    ("90% to the only revision, nothing new", existing(), {"traffic": ["@latest=90"]}, False,
     "unable to allocate the remaining traffic: 10%. Reason: incorrect number of revisions specified. "
     "Only 1 revision should be missing"),
    ("90% and no revision left", two_revisions(), {"traffic": ["hello-00001=50", "hello-00002=40"]}, False,
     "unable to allocate the remaining traffic: 10%. Reason: cannot determine the missing revision"),
    ("untag unknown", existing(), {"untag": ["nope", "gone"]}, False,
     "tag(s) nope, gone not present for any revisions of service hello"),
    ("tag used elsewhere", two_revisions(), {"tag": ["hello-00001=current"]}, False,
     "refusing to overwrite existing tag in service, add flag '--untag current' in command to untag it"),
    ("latest already tagged", two_revisions(), {"tag": ["@latest=other"]}, False,
     "tag 'current' exists on latest ready revision of service, refusing to overwrite existing tag with "
     "'other', add flag '--untag current' in command to untag it"),
]


@pytest.mark.parametrize(("svc", "flags", "mutation", "message"), [c[1:] for c in TRAFFIC_ERRORS],
                         ids=[c[0] for c in TRAFFIC_ERRORS])
def test_traffic_errors(svc: Obj, flags: dict[str, list[str]], mutation: bool, message: str) -> None:
    with pytest.raises(KnError) as e:
        traffic(svc, mutation, **flags)
    assert str(e.value) == message


def test_active_revisions_come_from_status_traffic() -> None:
    assert kt.active_revisions(two_revisions()) == [ActiveRevision("hello-00001"),
                                                   ActiveRevision("hello-00002", ("current",))]


def test_split_commas_is_pflag_string_slice() -> None:
    assert k.split_commas(["a=1,b=2", "c=3"]) == ["a=1", "b=2", "c=3"]


# --- small parsers -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "seconds"), [
    ("10s", 10), ("1m30s", 90), ("1.5h", 5400), ("300ms", 0.3), ("0", 0), ("-2s", -2), ("1h0m0s", 3600),
])
def test_go_duration(text: str, seconds: float) -> None:
    assert k.go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "message"), [
    ("", 'time: invalid duration ""'), ("abc", 'time: invalid duration "abc"'),
    ("5", 'time: missing unit in duration "5"'), ("5x", 'time: unknown unit "x" in duration "5x"'),
])
def test_go_duration_errors(text: str, message: str) -> None:
    with pytest.raises(KnError, match="^" + message.replace("(", r"\(") + "$"):
        k.go_duration(text)


@pytest.mark.parametrize("q", ["1", "100m", "256Mi", "1.5Gi", "2e3", "+1", ".5", "1k"])
def test_quantities_accepted(q: str) -> None:
    assert k.check_quantity(q) == q


@pytest.mark.parametrize("anns", [
    {k.MIN_SCALE: "0", k.MAX_SCALE: "0"}, {k.MIN_SCALE: "2", k.MAX_SCALE: "2"},
    {k.TARGET: "0.01"}, {k.TARGET_UTILIZATION: "100"}, {k.WINDOW: "1h"}, {k.METRIC: "concurrency"},
    {k.INITIAL_SCALE: "0"}, {k.ACTIVATION_SCALE: "2", k.MAX_SCALE: "2"},
    {f"{k.AUTOSCALING}/class": "hpa.autoscaling.knative.dev", k.METRIC: "cpu"},
])
def test_valid_autoscaling_annotations(anns: dict[str, str]) -> None:
    assert k.validate_autoscaling(anns) == []


# --- create --force ------------------------------------------------------------------------------------------
def test_replace_keeps_creator_and_resource_version() -> None:
    old = existing()
    old["metadata"]["annotations"] = {k.CREATOR: "alice", "x": "old"}
    got = k.prepare_replace(create(), old)
    assert got["metadata"]["annotations"] == {k.CREATOR: "alice"}
    assert got["metadata"]["resourceVersion"] == "7"
