"""The README's main command: `skiff up --example` makes the certificates, applies the guide's
1.3/1.4.4 procedure and prints a curl line that really answers through the TLS gateway."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from skiffproc import new_skiff

ROOT = Path(__file__).parent.parent.parent


def test_example_files_match_the_packaged_copies() -> None:
    packaged = ROOT / "src" / "skiff" / "examples"
    for f in sorted((ROOT / "examples" / "serving-mesh").glob("*.yaml")):
        assert (packaged / f.name).read_text() == f.read_text(), f.name
    assert (packaged / "hello.yaml").read_text() == \
        (ROOT / "examples" / "getting-started" / "hello.yaml").read_text()


def test_up_with_example_prints_a_working_curl_line(tmp_path_factory: pytest.TempPathFactory) -> None:
    s = new_skiff(tmp_path_factory.mktemp("example"))
    s.extra_args = ["--example"]
    s.start()
    try:
        out = s.wait_for(lambda: "curl --cacert" in s.log() and s.log(), timeout=90, what="example output")
        line = next(ln.strip() for ln in out.splitlines() if ln.strip().startswith("curl --cacert"))
        assert re.search(r"https://hello-default\.apps\.127\.0\.0\.1\.sslip\.io:\d+$", line), line
        r = subprocess.run(shlex.split(line) + ["-sS"], capture_output=True, text=True, timeout=30)
        assert r.stdout == "Hello OpenShift!\n", r.stderr
        # the client saw the wildcard certificate made for the example, not skiff's router cert
        host = line.split("https://")[1].split(":")[0]
        port = line.rsplit(":", 1)[1]
        cert = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", host],
                              input="", capture_output=True, text=True, timeout=30).stdout
        assert "Example Inc." in cert
        exec_line = s.kubectl("exec", "-n", "demo", "hello", "--", "sh", "-c", "curl -s http://127.0.0.1:$PORT")
        assert exec_line.stdout == "Hello from skiff!\n"
    finally:
        s.stop()


def test_seed_procedure_script_verbatim(tmp_path_factory: pytest.TempPathFactory) -> None:
    """examples/serving-mesh/run.sh: seed 1.3's openssl commands, `kubectl create secret tls`, the
    gateways, KnativeServing and knative-service.yaml of 1.4.4, then curl --cacert root.crt."""
    s = new_skiff(tmp_path_factory.mktemp("seed"))
    s.extra_args = ["--domain", "apps.openshift.example.com"]
    s.start()
    try:
        work = tmp_path_factory.mktemp("seedwork")
        env = {**s.env(), "HTTPS_PORT": str(s.ports["--https-port"]), "WORK": str(work),
               "KUBECACHEDIR": str(work / "cache")}
        r = subprocess.run(["bash", str(ROOT / "examples" / "serving-mesh" / "run.sh")], env=env,
                           capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stderr[-3000:]
        assert r.stdout.strip().endswith("Hello OpenShift!"), r.stdout[-2000:]
        assert "secret/wildcard-certs created" in r.stdout
        assert (work / "root.crt").exists() and (work / "wildcard.crt").exists()
    finally:
        s.stop()
