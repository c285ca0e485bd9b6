"""`skiff apply -f`: every document checked first; one bad document means nothing is applied."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from skiffproc import Skiff

GOLDEN = Path(__file__).parent.parent / "golden"

GOOD = """apiVersion: v1
kind: Namespace
metadata:
  name: tenant-a
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: tenant-a
data:
  a: "1"
"""


def test_applies_good_files_including_new_namespace(skiff: Skiff, tmp_path: Path) -> None:
    f = tmp_path / "good.yaml"
    f.write_text(GOOD)
    r = skiff.skiff("apply", "-f", str(f))
    assert r.returncode == 0, r.stderr
    assert "namespace/tenant-a created" in r.stdout and "configmap/settings created" in r.stdout
    r = skiff.skiff("apply", "-f", str(f))
    assert "configmap/settings unchanged" in r.stdout


def test_seed_smmr_with_callout_is_rejected_and_nothing_applied(skiff: Skiff, tmp_path: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir()
    (d / "a-ok.yaml").write_text(GOOD.replace("tenant-a", "tenant-b"))
    (d / "b-bad.yaml").write_text((GOLDEN / "seeds_bad" / "1_3_smmr_members_callout.yaml").read_text())
    r = skiff.skiff("apply", "-f", str(d))
    assert r.returncode == 1
    assert "b-bad.yaml:" in r.stderr and "spec.members" in r.stderr and "callout" in r.stderr
    assert "ServiceMeshMemberRoll istio-system/default" in r.stderr
    assert "nothing was applied" in r.stderr
    assert skiff.kubectl("get", "ns", "tenant-b", check=False).returncode != 0


def test_server_side_schema_errors_name_the_field(skiff: Skiff, tmp_path: Path) -> None:
    f = tmp_path / "gw.yaml"
    f.write_text("""apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: knative-local-gateway
  namespace: knative-serving
spec:
  selector:
    istio: ingressgateway
  servers:
    - port:
        number: 8081
        name: http
        protocol: HTTP
      hostss:
        - "*.svc.cluster.local"
""")
    r = skiff.skiff("apply", "-f", str(f))
    assert r.returncode == 1
    assert f"{f}:14" in r.stderr and 'unknown field "spec.servers[0].hostss"' in r.stderr
    assert 'did you mean "hosts"' in r.stderr


def test_every_corrected_seed_document_applies(skiff: Skiff) -> None:
    for f in sorted((GOLDEN / "seeds").glob("*.yaml")):
        if f.name.startswith(("2_4", "3_2", "4_2", "5_1", "1_3_ksvc", "1_4_4")):
            continue  # these start workloads; the serving tests cover them
        r = skiff.skiff("apply", "-f", str(f))
        assert r.returncode == 0, (f.name, r.stderr)


def test_missing_file_and_no_server(skiff: Skiff, tmp_path: Path) -> None:
    r = skiff.skiff("apply", "-f", str(tmp_path / "nope.yaml"))
    assert r.returncode == 1 and "does not exist" in r.stderr
    f = tmp_path / "ok.yaml"
    f.write_text(GOOD)
    env = {k: v for k, v in skiff.env().items() if k not in ("KUBECONFIG", "SKIFF_HOME")}
    r = subprocess.run([sys.executable, "-m", "skiff.cli.main", "apply", "-f", str(f), "--home",
                        str(tmp_path / "nohome")], capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 1 and "skiff up" in r.stderr
