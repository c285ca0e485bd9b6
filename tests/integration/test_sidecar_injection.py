"""Sidecar injection for real: a `skiff up` with the pod network, the guide's SMCP and SMMR
(1.4.2) applied with the real kubectl, a Deployment whose template asks for a sidecar in a member
namespace: its pod gets istio-init and istio-proxy (mesh/sidecar/inject.py), istio-init runs the
built-in proxyv2 image and exits 0 having programmed table inet skiff-capture inside the pod's
network namespace (read back with `kubectl exec ... nft list table`), and kubectl shows two
containers. The same Deployment in a namespace outside the mesh is left alone. A pod told to
stop keeps its sidecar's listeners for terminationDrainDuration (the SMCP's, made 1 s) and
no longer, though its app outlives it. READY 2/2 is not asserted here: istio-proxy's readiness
(15021) belongs to the sidecar data plane. Needs root (network namespaces), as CI has."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skiffproc import Skiff, new_skiff, wait_pod_network_free

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

SEEDS = Path(__file__).resolve().parents[1] / "golden" / "seeds"

SLEEPER = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: sleep, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: sleep}}}}
  template:
    metadata:
      labels: {{app: sleep}}
      annotations: {{sidecar.istio.io/inject: "true"}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: sleep
          image: docker.io/curlimages/curl
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Skiff]:
    s = new_skiff(tmp_path_factory.mktemp("inject"))
    s.extra_args = ["--pod-network", "namespaces"]
    wait_pod_network_free()
    s.start(timeout=60)
    try:
        s.kubectl("apply", "-f", str(SEEDS / "1_4_2_smcp.yaml"))
        s.kubectl("apply", "-f", str(SEEDS / "1_4_2_smmr.yaml"))
        s.wait_for(lambda: _roll_configured(s, "default"), timeout=30,
                   what="the member roll configuring default")
        yield s
    finally:
        if s.proc is not None:
            s.stop()


def _roll_configured(s: Skiff, ns: str) -> bool:
    roll = s.kubectl_json("get", "smmr", "default", "-n", "istio-system")
    return ns in ((roll.get("status") or {}).get("configuredMembers") or [])


def _pod(s: Skiff, ns: str) -> dict[str, Any] | None:
    items = s.kubectl_json("get", "pods", "-n", ns, "-l", "app=sleep")["items"]
    live = [p for p in items if not p["metadata"].get("deletionTimestamp")]
    return live[0] if live else None


def _init_exit(p: dict[str, Any]) -> int | None:
    for st in (p.get("status") or {}).get("initContainerStatuses") or []:
        if st.get("name") == "istio-init":
            term = (st.get("state") or {}).get("terminated")
            if term is not None:
                return int(term.get("exitCode"))
    return None


def _running(p: dict[str, Any], name: str) -> bool:
    return any(st.get("name") == name and "running" in (st.get("state") or {})
               for st in (p.get("status") or {}).get("containerStatuses") or [])


def test_member_pod_is_injected_and_captured(mesh: Skiff) -> None:
    s = mesh
    s.kubectl("apply", "-f", "-", input=SLEEPER.format(ns="default"))
    pod = s.wait_for(lambda: _pod(s, "default"), timeout=30, what="the sleep pod")
    name = pod["metadata"]["name"]
    spec = pod["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["istio-init"]
    assert [c["name"] for c in spec["containers"]] == ["sleep", "istio-proxy"]
    init = spec["initContainers"][0]
    assert init["image"] == "registry.redhat.io/openshift-service-mesh/proxyv2-rhel8:2.4"
    # The guide's SMCP excludes 8444 and 8022 inbound; the status port comes last, as Istio's.
    assert init["args"][init["args"].index("-d") + 1] == "15090,15021,8022,8444,15020"
    ann = pod["metadata"]["annotations"]
    assert json.loads(ann["sidecar.istio.io/status"]) == {
        "initContainers": ["istio-init"], "containers": ["istio-proxy"], "volumes": None,
        "imagePullSecrets": None, "revision": "basic"}
    assert ann["kubectl.kubernetes.io/default-container"] == "sleep"
    labels = pod["metadata"]["labels"]
    assert labels["security.istio.io/tlsMode"] == "istio"
    assert labels["service.istio.io/canonical-name"] == "sleep"
    env = {e["name"]: e.get("value") for e in spec["containers"][1]["env"]}
    assert env["TERMINATION_DRAIN_DURATION_SECONDS"] == "35"     # the guide's 35s
    assert env["ISTIO_META_WORKLOAD_NAME"] == "sleep"

    # istio-init ran the proxyv2 image inside the pod's namespace and exited 0.
    def init_done() -> dict[str, Any] | None:
        p = _pod(s, "default")
        return p if p is not None and _init_exit(p) is not None else None
    done = s.wait_for(init_done, timeout=60, what="istio-init to finish")
    assert _init_exit(done) == 0, json.dumps(done.get("status"), indent=1)
    log = s.kubectl("logs", name, "-c", "istio-init").stdout
    assert "table inet skiff-capture applied" in log, log

    # Both containers run; kubectl counts two.
    s.wait_for(lambda: (p := _pod(s, "default")) is not None and _running(p, "sleep")
               and _running(p, "istio-proxy"), timeout=60, what="sleep and istio-proxy running")
    row = next(ln.split() for ln in s.kubectl("get", "pods", "-l", "app=sleep").stdout
               .splitlines() if ln.startswith(name))
    assert row[1].endswith("/2"), row

    # The capture table is in the pod's own namespace: exec into the app container reads it.
    listing = s.kubectl("exec", name, "-c", "sleep", "--", "nft", "list", "table", "inet",
                        "skiff-capture").stdout
    assert "redirect to :15006" in listing and "redirect to :15001" in listing, listing
    assert "8444" in listing and "15020" in listing and "meta mark 0x00000539" in listing
    # ... and not on the node.
    assert "skiff-capture" not in os.popen("nft list tables").read()


def test_non_member_pod_is_not_injected(mesh: Skiff) -> None:
    s = mesh
    s.kubectl("create", "namespace", "outsider")
    s.kubectl("apply", "-f", "-", input=SLEEPER.format(ns="outsider"))
    pod = s.wait_for(lambda: _pod(s, "outsider"), timeout=30, what="the outsider's pod")
    assert [c["name"] for c in pod["spec"]["containers"]] == ["sleep"]
    assert not pod["spec"].get("initContainers")
    assert "sidecar.istio.io/status" not in (pod["metadata"].get("annotations") or {})


# An app that outlives its sidecar: it ignores SIGTERM, so the pod stays Terminating for its
# grace period after istio-proxy has drained and exited.
STUBBORN_APP = ("import signal, time\n"
                "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                "time.sleep(120)\n")
DRAINER = """
apiVersion: v1
kind: Pod
metadata:
  name: drainer
  namespace: default
  labels: {{app: drainer}}
  annotations: {{sidecar.istio.io/inject: "true"}}
spec:
  terminationGracePeriodSeconds: 30
  containers:
    - name: app
      image: docker.io/library/busybox
      command: [{python}, "-c", {script}]
"""


def _connects(ip: str, port: int) -> bool:
    """A TCP handshake with the pod's port: its inbound capture sends it to the sidecar's
    15006, so it completes while the sidecar listens and is refused once it has closed."""
    import socket
    try:
        with socket.create_connection((ip, port), timeout=2):
            return True
    except OSError:
        return False


def test_the_sidecar_closes_its_listeners_when_istio_proxy_has_drained(mesh: Skiff) -> None:
    import sys
    s = mesh
    # the guide's 35 s drain, made short: the injected istio-proxy drains for 1 s
    s.kubectl("patch", "smcp", "basic", "-n", "istio-system", "--type=merge", "-p", json.dumps(
        {"spec": {"techPreview": {"meshConfig": {"defaultConfig": {
            "terminationDrainDuration": "1s"}}}}}))
    s.kubectl("apply", "-f", "-", input=DRAINER.format(python=json.dumps(sys.executable),
                                                         script=json.dumps(STUBBORN_APP)))
    try:
        def up() -> dict[str, Any] | None:
            p = s.kubectl_json("get", "pod", "drainer")
            ok = _running(p, "app") and _running(p, "istio-proxy") and p["status"].get("podIP")
            return p if ok else None
        pod = s.wait_for(up, timeout=60, what="the drainer pod with its sidecar")
        env = {e["name"]: e.get("value") for c in pod["spec"]["containers"]
               if c["name"] == "istio-proxy" for e in c.get("env") or []}
        assert env["TERMINATION_DRAIN_DURATION_SECONDS"] == "1"
        ip = pod["status"]["podIP"]
        s.wait_for(lambda: _connects(ip, 8080), timeout=30, what="the sidecar's inbound listener")
        s.kubectl("delete", "pod", "drainer", "--wait=false")
        # istio-proxy drains 1 s and exits; its listeners close then, while the app still runs
        s.wait_for(lambda: not _connects(ip, 8080), timeout=20,
                   what="the sidecar's listeners to close after its drain")
        p = s.kubectl_json("get", "pod", "drainer")
        assert p["metadata"].get("deletionTimestamp") and _running(p, "app"), p["status"]
        assert not _running(p, "istio-proxy"), p["status"]
    finally:
        s.kubectl("delete", "pod", "drainer", "--grace-period=0", "--force", "--wait=false",
                  check=False)
