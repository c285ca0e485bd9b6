"""Mesh membership and the mesh CA for real: the guide's SMCP and SMMR (1.4.2) applied with
the real kubectl to a real `skiff up`; the SMCP/SMMR columns and status, the member-of labels,
istio-ca-secret and the istio-ca-root-cert ConfigMaps (checked with openssl), namespaces
joining late and leaving, the guide's warning when knative-* are not members, and the CA kept
across a restart."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

from skiffproc import Skiff

SEEDS = Path(__file__).resolve().parents[1] / "golden" / "seeds"
MEMBER_OF = "maistra.io/member-of"
GUIDE_MEMBERS = ("knative-serving", "knative-eventing", "default")


def cond(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}


def smmr(s: Skiff) -> dict[str, Any]:
    return dict(s.kubectl_json("get", "smmr", "default", "-n", "istio-system"))


def labels_of(s: Skiff, ns: str) -> dict[str, str]:
    r = s.kubectl("get", "namespace", ns, "-o", "json", check=False)
    if r.returncode != 0:
        return {}
    return dict(json.loads(r.stdout)["metadata"].get("labels") or {})


def root_cm(s: Skiff, ns: str) -> str | None:
    r = s.kubectl("get", "configmap", "istio-ca-root-cert", "-n", ns,
                  "-o", "jsonpath={.data.root-cert\\.pem}", check=False)
    return r.stdout if r.returncode == 0 and r.stdout else None


def ca_root(s: Skiff) -> str:
    b64 = s.kubectl("get", "secret", "istio-ca-secret", "-n", "istio-system",
                    "-o", "jsonpath={.data.root-cert\\.pem}").stdout
    return base64.b64decode(b64).decode()


def apply_guide(s: Skiff) -> None:
    s.kubectl("apply", "-f", str(SEEDS / "1_4_2_smcp.yaml"))
    s.kubectl("apply", "-f", str(SEEDS / "1_4_2_smmr.yaml"))


def test_guide_smcp_and_smmr(skiff: Skiff, tmp_path: Path) -> None:
    apply_guide(skiff)

    def smcp_ready() -> bool:
        o = skiff.kubectl_json("get", "smcp", "basic", "-n", "istio-system")
        return cond(o, "Ready").get("reason") == "ComponentsReady"
    skiff.wait_for(smcp_ready, timeout=30, what="SMCP ComponentsReady")
    skiff.wait_for(lambda: cond(smmr(skiff), "Ready").get("status") == "True", timeout=30,
                   what="SMMR Configured")

    out = skiff.kubectl("get", "smcp,smmr", "-n", "istio-system").stdout
    lines = [ln.split() for ln in out.splitlines() if ln.strip()]
    assert lines[0] == ["NAME", "READY", "STATUS", "PROFILES", "VERSION", "AGE"], out
    assert lines[1][:5] == ["servicemeshcontrolplane.maistra.io/basic", "2/2", "ComponentsReady",
                            '["default"]', "2.4.6"], out
    head = next(i for i, ln in enumerate(lines) if ln[0] == "NAME" and i > 0)
    assert lines[head] == ["NAME", "READY", "STATUS", "AGE"], out
    assert lines[head + 1][:3] == ["servicemeshmemberroll.maistra.io/default", "3/3",
                                   "Configured"], out

    smcp = skiff.kubectl_json("get", "smcp", "basic", "-n", "istio-system")
    st = smcp["status"]
    assert [(c["type"], c["status"], c["reason"]) for c in st["conditions"]] == [
        ("Installed", "True", "InstallSuccessful"), ("Reconciled", "True", "InstallSuccessful"),
        ("Ready", "True", "ComponentsReady")]
    assert st["readiness"]["components"]["ready"] == ["istio-ingressgateway", "istiod"]
    assert st["appliedSpec"]["security"]["dataPlane"]["mtls"] is True
    assert st["appliedSpec"]["profiles"] == ["default"]

    roll = smmr(skiff)["status"]
    assert roll["members"] == sorted(GUIDE_MEMBERS)
    assert roll["configuredMembers"] == sorted(GUIDE_MEMBERS)
    assert roll["pendingMembers"] == [] and roll["terminatingMembers"] == []
    assert cond(smmr(skiff), "KnativeMembers")["status"] == "True"
    wide = skiff.kubectl("get", "smmr", "-n", "istio-system", "-o", "wide").stdout
    assert '["default","knative-eventing","knative-serving"]' in wide, wide

    # Each member (and the control plane's namespace) is labelled and has the mesh's root.
    root = ca_root(skiff)
    for ns in (*GUIDE_MEMBERS, "istio-system"):
        assert labels_of(skiff, ns).get(MEMBER_OF) == "istio-system", ns
        got = skiff.wait_for(lambda ns=ns: root_cm(skiff, ns), what=f"root in {ns}")
        assert got == root
    smms = skiff.kubectl("get", "smm", "-A").stdout
    assert "istio-system/basic" in smms and "True" in smms, smms
    secret = skiff.kubectl_json("get", "secret", "istio-ca-secret", "-n", "istio-system")
    assert secret["type"] == "istio.io/ca-root"
    assert sorted(secret["data"]) == ["ca-cert.pem", "ca-key.pem", "cert-chain.pem", "key.pem",
                                      "root-cert.pem"]
    (tmp_path / "root.pem").write_text(root)
    text = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "root.pem"), "-noout",
                           "-subject", "-ext", "basicConstraints,keyUsage"],
                          capture_output=True, text=True, check=True).stdout
    assert "O = cluster.local" in text and "CA:TRUE" in text and "Certificate Sign" in text

    # A namespace that is not a member has neither.
    skiff.kubectl("create", "namespace", "outsider")
    assert MEMBER_OF not in labels_of(skiff, "outsider")
    assert root_cm(skiff, "outsider") is None


def test_tenants_join_late_and_leave(skiff: Skiff) -> None:
    apply_guide(skiff)
    skiff.kubectl("apply", "-f", str(SEEDS / "2_3_smmr_tenants.yaml"))
    tenants = ["team-alpha-1", "team-alpha-2", "team-bravo-1", "team-bravo-2"]

    def pending() -> bool:
        st = smmr(skiff).get("status") or {}
        return st.get("pendingMembers") == tenants and \
            cond(smmr(skiff), "Ready").get("reason") == "ReconcileError"
    skiff.wait_for(pending, timeout=30, what="tenants pending")
    st = smmr(skiff)["status"]
    ms = {m["namespace"]: m["conditions"] for m in st["memberStatuses"]}
    assert ms["team-alpha-1"][0]["reason"] == "NamespaceNotExists"
    assert cond(smmr(skiff), "Ready")["message"] == \
        "The following namespaces are not yet configured: [" + " ".join(tenants) + "]"
    # `default` left the roll: it loses the label and the root.
    skiff.wait_for(lambda: MEMBER_OF not in labels_of(skiff, "default"), timeout=30,
                   what="default unlabelled")
    skiff.wait_for(lambda: root_cm(skiff, "default") is None, timeout=30,
                   what="root gone from default")

    for t in tenants:
        skiff.kubectl("create", "namespace", t)
    skiff.wait_for(lambda: cond(smmr(skiff), "Ready").get("reason") == "Configured",
                   timeout=30, what="tenants configured")
    out = skiff.kubectl("get", "smmr", "-n", "istio-system").stdout
    assert "6/6" in out and "Configured" in out, out
    for t in tenants:
        assert labels_of(skiff, t).get(MEMBER_OF) == "istio-system"
        skiff.wait_for(lambda t=t: root_cm(skiff, t), what=f"root in {t}")


def test_knative_missing_is_said(skiff: Skiff) -> None:
    apply_guide(skiff)
    skiff.kubectl("apply", "-f", str(SEEDS / "1_6_smmr.yaml"))     # members: [default]

    def warned() -> dict[str, Any]:
        return cond(smmr(skiff), "KnativeMembers") if \
            cond(smmr(skiff), "KnativeMembers").get("status") == "False" else {}
    c = skiff.wait_for(warned, timeout=30, what="KnativeMembers False")
    assert c["reason"] == "KnativeNamespacesMissing"
    assert c["message"].startswith("knative-serving and knative-eventing are not a member")
    skiff.wait_for(lambda: cond(smmr(skiff), "Ready").get("reason") == "Configured",
                   timeout=30, what="Configured")
    skiff.wait_for(lambda: MEMBER_OF not in labels_of(skiff, "knative-serving"), timeout=30,
                   what="knative-serving left")


def test_ca_survives_restart(skiff: Skiff) -> None:
    apply_guide(skiff)
    skiff.wait_for(lambda: root_cm(skiff, "knative-serving"), timeout=30, what="root")
    before = ca_root(skiff)
    skiff.stop()
    skiff.start()
    assert ca_root(skiff) == before
    assert skiff.wait_for(lambda: root_cm(skiff, "knative-serving"), what="root") == before
