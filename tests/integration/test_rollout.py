"""Deployments own ReplicaSets as upstream, so `kubectl rollout` works as on a cluster."""

from __future__ import annotations

from typing import Any

from skiffproc import Skiff


def replicasets(s: Skiff) -> dict[str, Any]:
    items = s.kubectl_json("get", "rs", "-l", "app=web")["items"]
    return {rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: rs for rs in items}


def rolled_out(s: Skiff) -> None:
    r = s.kubectl("rollout", "status", "deployment/web", "--timeout=60s", timeout=90)
    assert 'deployment "web" successfully rolled out' in r.stdout


def test_rollout_history_undo_restart(skiff: Skiff) -> None:
    s = skiff
    s.kubectl("create", "deployment", "web", "--image=docker.io/openshift/hello-openshift",
              "--replicas=2")
    rolled_out(s)
    out = s.kubectl("get", "rs", "-l", "app=web").stdout.splitlines()
    assert out[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert out[1].split()[1:4] == ["2", "2", "2"]
    first = replicasets(s)["1"]
    assert first["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    pods = s.kubectl_json("get", "pods", "-l", "app=web")["items"]
    assert {p["metadata"]["ownerReferences"][0]["name"] for p in pods} == {first["metadata"]["name"]}

    s.kubectl("set", "env", "deployment/web", "GREETING=v2")
    s.kubectl("annotate", "deployment/web", "kubernetes.io/change-cause=greeting v2")
    rolled_out(s)
    rss = replicasets(s)
    assert set(rss) == {"1", "2"}
    assert rss["1"]["spec"]["replicas"] == 0 and rss["2"]["spec"]["replicas"] == 2
    history = s.kubectl("rollout", "history", "deployment/web").stdout
    assert "1         <none>" in history and "2         greeting v2" in history

    s.kubectl("rollout", "undo", "deployment/web")
    rolled_out(s)
    rss = replicasets(s)
    assert set(rss) == {"2", "3"}   # revision 1's ReplicaSet came back as revision 3
    assert rss["3"]["metadata"]["name"] == first["metadata"]["name"]
    env = s.kubectl_json("get", "deployment", "web")["spec"]["template"]["spec"]["containers"][0]
    assert "env" not in env

    s.kubectl("rollout", "restart", "deployment/web")
    rolled_out(s)
    assert set(replicasets(s)) == {"2", "3", "4"}
    assert s.kubectl_json("get", "deployment", "web")["metadata"]["annotations"][
        "deployment.kubernetes.io/revision"] == "4"


def test_pause_scale_and_cascade(skiff: Skiff) -> None:
    s = skiff
    s.kubectl("create", "deployment", "paused", "--image=docker.io/openshift/hello-openshift")
    s.kubectl("rollout", "status", "deployment/paused", "--timeout=60s", timeout=90)
    s.kubectl("rollout", "pause", "deployment/paused")
    s.kubectl("set", "env", "deployment/paused", "X=1")
    cond = s.wait_for(lambda: next((c for c in s.kubectl_json("get", "deployment", "paused")
                                    ["status"]["conditions"]
                                    if c["type"] == "Progressing"
                                    and c["reason"] == "DeploymentPaused"), None),
                      what="DeploymentPaused")
    assert cond["status"] == "Unknown"
    assert len(s.kubectl_json("get", "rs", "-l", "app=paused")["items"]) == 1
    s.kubectl("rollout", "resume", "deployment/paused")
    s.kubectl("rollout", "status", "deployment/paused", "--timeout=60s", timeout=90)
    assert len(s.kubectl_json("get", "rs", "-l", "app=paused")["items"]) == 2
    s.kubectl("scale", "deployment/paused", "--replicas=3")
    s.wait_for(lambda: s.kubectl_json("get", "deployment", "paused")["status"].get(
        "readyReplicas") == 3, what="3 ready")
    s.kubectl("scale", "rs", "--all", "--replicas=0", check=False)   # the Deployment wins back
    s.wait_for(lambda: s.kubectl_json("get", "deployment", "paused")["status"].get(
        "readyReplicas") == 3, what="3 ready again")
    s.kubectl("delete", "deployment", "paused")
    s.wait_for(lambda: not s.kubectl_json("get", "rs", "-l", "app=paused")["items"]
               and not s.kubectl_json("get", "pods", "-l", "app=paused")["items"],
               what="ReplicaSets and pods gone with the Deployment", timeout=40)
