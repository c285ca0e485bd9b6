"""The KPA through a real `skiff up` (loopback pod network) and the real kubectl: a KnativeServing
with short windows (config-autoscaler stable-window and scale-to-zero-grace-period 6s, the
least upstream accepts), a ksvc whose PodAutoscaler, ServerlessService (and its Services) and
Metric appear, whose Revision reports the PA's replicas, and which goes to zero pods with no
traffic (Active False NoTraffic) while a min-scale one keeps its pod; annotations the webhook
refuses with upstream's words. Scale-from-zero by a request needs the activator in the data
plane: those tests (a request wakes a revision at zero; load scales one up, bounded by
max-scale) run once serving/activator.py is wired into dataplane/main.py, whose reports feed
the metrics.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from manifests import SHORT_WINDOWS
from skiffproc import Skiff, new_skiff

DOMAIN = "apps.127.0.0.1.sslip.io"   # `skiff up`'s default --domain
SRC = Path(__file__).resolve().parents[2] / "src" / "skiff"
HAS_ACTIVATOR = (SRC / "serving" / "activator.py").exists() and \
    "activator" in (SRC / "dataplane" / "main.py").read_text()


KSVC = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  template:
    metadata:
      annotations: {annotations}
    spec:
      containers:
        - image: docker.io/openshift/hello-openshift
          env: [{{name: RESPONSE, value: "{name}"}}]
"""


@pytest.fixture(scope="module")
def skiff(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Skiff]:
    """On the shared loopback: no competition for the machine's pod network lock."""
    s = new_skiff(tmp_path_factory.mktemp("skiff"))
    s.extra_args = ["--pod-network", "loopback"]
    s.start()
    try:
        yield s
    finally:
        if s.proc is not None:
            s.stop()


def apply(skiff: Skiff, text: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return skiff.kubectl("apply", "-f", "-", input=text, check=check)


def ksvc(name: str, annotations: dict[str, str] | None = None) -> str:
    return KSVC.format(name=name, annotations=json.dumps(annotations or {}))


def cond(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}


def get(skiff: Skiff, *args: str) -> dict[str, Any]:
    r = skiff.kubectl("get", *args, "-o", "json", check=False)
    return dict(json.loads(r.stdout)) if r.returncode == 0 else {}


def replicas(skiff: Skiff, rev: str) -> int:
    return int(get(skiff, "deployment", f"{rev}-deployment").get("spec", {}).get("replicas", -1))


@pytest.fixture(scope="module")
def short_windows(skiff: Skiff) -> None:
    apply(skiff, SHORT_WINDOWS)
    skiff.kubectl("wait", "--for=condition=Ready", "knativeserving/knative-serving",
                  "-n", "knative-serving", "--timeout=60s", timeout=70)


def wait_ready(skiff: Skiff, name: str, timeout: int = 90) -> None:
    skiff.kubectl("wait", "--for=condition=Ready", f"ksvc/{name}", f"--timeout={timeout}s",
                  timeout=timeout + 10)


def test_a_ksvc_gets_its_kpa_and_goes_to_zero_without_traffic(skiff: Skiff,
                                                                short_windows: None) -> None:
    apply(skiff, ksvc("idle"))
    apply(skiff, ksvc("kept", {"autoscaling.knative.dev/min-scale": "1"}))
    wait_ready(skiff, "idle")
    wait_ready(skiff, "kept")

    pa = get(skiff, "kpa", "idle-00001")
    assert pa["metadata"]["ownerReferences"][0]["kind"] == "Revision"
    assert pa["metadata"]["annotations"]["autoscaling.knative.dev/class"] == \
        "kpa.autoscaling.knative.dev"
    assert pa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                            "name": "idle-00001-deployment"}
    assert pa["spec"]["protocolType"] == "http1"
    assert pa["spec"]["reachability"] == "Reachable"
    table = skiff.kubectl("get", "kpa").stdout.splitlines()
    assert table[0].split() == ["NAME", "DESIREDSCALE", "ACTUALSCALE", "READY", "REASON"]
    assert any(line.split()[0] == "idle-00001" for line in table[1:])

    sks = get(skiff, "sks", "idle-00001")
    assert sks["metadata"]["ownerReferences"][0]["kind"] == "PodAutoscaler"
    assert sks["spec"]["objectRef"]["name"] == "idle-00001-deployment"
    assert sks["status"]["serviceName"] == "idle-00001"
    assert sks["status"]["privateServiceName"] == "idle-00001-private"
    header = skiff.kubectl("get", "sks").stdout.splitlines()[0].split()
    assert header == ["NAME", "MODE", "ACTIVATORS", "SERVICENAME", "PRIVATESERVICENAME",
                      "READY", "REASON"]
    private = get(skiff, "service", "idle-00001-private")
    assert private["spec"]["ports"][0]["targetPort"] == 8012          # queue-proxy
    assert get(skiff, "service", "idle-00001")["spec"]["type"] == "ClusterIP"
    metric = get(skiff, "metrics.autoscaling.internal.knative.dev", "idle-00001")
    assert metric["spec"]["stableWindow"] == 6_000_000_000
    assert metric["spec"]["scrapeTarget"] == "idle-00001-private"

    skiff.wait_for(lambda: get(skiff, "revision", "idle-00001")["status"].get("actualReplicas")
                   == 1, timeout=30, what="actualReplicas 1")

    # No traffic: the stable window (6 s), then behind the activator for the grace period.
    skiff.wait_for(lambda: replicas(skiff, "idle-00001") == 0, timeout=60,
                   what="idle-00001 at zero")
    skiff.wait_for(lambda: cond(get(skiff, "revision", "idle-00001"), "Active")
                   .get("reason") == "NoTraffic", timeout=30, what="Active NoTraffic")
    rev = get(skiff, "revision", "idle-00001")
    assert cond(rev, "Ready")["status"] == "True"
    assert cond(rev, "Active")["status"] == "False"
    skiff.wait_for(lambda: get(skiff, "revision", "idle-00001")["status"].get("actualReplicas")
                   == 0, timeout=30, what="actualReplicas 0")
    pa = get(skiff, "kpa", "idle-00001")
    assert pa["status"]["desiredScale"] == 0
    assert (cond(pa, "Ready")["status"], cond(pa, "Ready")["reason"]) == ("False", "NoTraffic")
    assert get(skiff, "sks", "idle-00001")["spec"]["mode"] == "Proxy"
    assert cond(get(skiff, "ksvc", "idle"), "Ready")["status"] == "True"

    # min-scale 1 keeps its pod however idle.
    assert replicas(skiff, "kept-00001") == 1
    assert cond(get(skiff, "revision", "kept-00001"), "Active")["status"] == "True"


@pytest.mark.parametrize("annotations, want", [
    ({"autoscaling.knative.dev/window": "2s"},
     "spec.template.metadata.annotations.autoscaling.knative.dev/window: "
     "expected 6s <= 2s <= 1h0m0s"),
    ({"autoscaling.knative.dev/min-scale": "3", "autoscaling.knative.dev/max-scale": "2"},
     "spec.template.metadata.annotations.autoscaling.knative.dev/max-scale: "
     "max-scale=2 is less than min-scale=3: "
     "spec.template.metadata.annotations.autoscaling.knative.dev/max-scale, "
     "spec.template.metadata.annotations.autoscaling.knative.dev/min-scale"),
    ({"autoscaling.knative.dev/metric": "cpu"},
     "spec.template.metadata.annotations.autoscaling.knative.dev/metric: invalid value: cpu"),
])
def test_the_webhook_refuses_bad_autoscaling_annotations(skiff: Skiff, annotations: dict[str, str],
                                                         want: str) -> None:
    r = apply(skiff, ksvc("refused", annotations), check=False)
    assert r.returncode != 0
    assert want in r.stderr, r.stderr


@pytest.mark.skipif(not HAS_ACTIVATOR, reason="the activator is not wired into the data plane yet")
def test_a_request_wakes_a_revision_at_zero(skiff: Skiff, short_windows: None) -> None:
    apply(skiff, ksvc("wake"))
    wait_ready(skiff, "wake")
    skiff.wait_for(lambda: replicas(skiff, "wake-00001") == 0, timeout=60, what="wake at zero")
    host = f"wake-default.{DOMAIN}"
    port = skiff.ports["--http-port"]
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "60",
                        "--resolve", f"{host}:{port}:127.0.0.1", f"http://{host}:{port}/"],
                       capture_output=True, text=True, timeout=90)
    assert r.stdout == "200", r.stdout + r.stderr
    assert replicas(skiff, "wake-00001") >= 1


@pytest.mark.skipif(not HAS_ACTIVATOR, reason="the data plane does not report load yet")
def test_load_scales_up_to_max_scale(skiff: Skiff, short_windows: None) -> None:
    # A target of 0.01 in flight per pod: any steady load wants many pods; max-scale says 3.
    apply(skiff, ksvc("busy", {"autoscaling.knative.dev/target": "0.01",
                               "autoscaling.knative.dev/max-scale": "3"}))
    wait_ready(skiff, "busy")
    host = f"busy-default.{DOMAIN}"
    port = skiff.ports["--http-port"]
    url = f"http://{host}:{port}/"
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and replicas(skiff, "busy-00001") < 3:
        subprocess.run(["curl", "-sS", "-o", "/dev/null", "--resolve", f"{host}:{port}:127.0.0.1",
                        *([url] * 200)], capture_output=True, timeout=60)
    assert replicas(skiff, "busy-00001") == 3
    skiff.wait_for(lambda: get(skiff, "kpa", "busy-00001")["status"].get("actualScale") == 3,
                   timeout=60, what="three ready pods")
    assert get(skiff, "revision", "busy-00001")["status"]["desiredReplicas"] == 3
