"""The example `skiff up --example` runs: the guide's 1.3/1.4.4 procedure, done for the user.

It makes the root CA and wildcard certificate with the real openssl commands
of seed 1.3 (into <home>/example/), stores them as the istio-system Secret
wildcard-certs, applies the member roll, the gateways, the KnativeServing and
the passthrough Knative Service `hello` (the YAML of examples/serving-mesh/,
shipped in skiff/examples/), plus the getting-started pod demo/hello, waits
for Ready and prints the curl line that proves it works. Everything goes
through the in-process client, so it is exactly what `kubectl apply` would do.
Neighbours: cli/main.py, platform.py, examples/serving-mesh/.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from skiff.core.client import ApiError, Ref
from skiff.core.home import make_private_dir

EXAMPLE_FILES = ("01-servicemesh-member-roll.yaml", "02-istio-knative-gateways.yaml",
                 "03-knative-serving-config.yaml", "04-knative-service.yaml", "hello.yaml")


def example_documents(name: str) -> list[dict[str, Any]]:
    text = resources.files("skiff.examples").joinpath(name).read_text()
    return [d for d in yaml.safe_load_all(text) if d]


def make_certificates(workdir: Path, domain: str) -> tuple[Path, Path, Path]:
    """(root.crt, wildcard.crt, wildcard.key) for *.<domain>, with seed 1.3's openssl commands."""
    make_private_dir(workdir)
    root, crt, key = workdir / "root.crt", workdir / "wildcard.crt", workdir / "wildcard.key"
    if root.exists() and crt.exists() and key.exists():
        return root, crt, key
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is needed to make the example's certificates (apt-get install openssl)")
    steps = [
        [openssl, "req", "-x509", "-sha256", "-nodes", "-days", "365", "-newkey", "rsa:2048",
         "-subj", "/O=Example Inc./CN=example.com", "-keyout", "root.key", "-out", "root.crt"],
        [openssl, "req", "-nodes", "-newkey", "rsa:2048", "-subj", f"/CN=*.{domain}/O=Example Inc.",
         "-keyout", "wildcard.key", "-out", "wildcard.csr"],
        [openssl, "x509", "-req", "-days", "365", "-set_serial", "0", "-CA", "root.crt",
         "-CAkey", "root.key", "-in", "wildcard.csr", "-out", "wildcard.crt"],
    ]
    for cmd in steps:
        subprocess.run(cmd, cwd=workdir, check=True, capture_output=True, timeout=60, umask=0o077)
    return root, crt, key


async def _create(client: Any, doc: dict[str, Any]) -> None:
    try:
        await client.create(doc)
    except ApiError as e:
        if e.code != 409:
            raise


async def _wait_ready(client: Any, ref: Ref, name: str, namespace: str, timeout: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    obj: dict[str, Any] = {}
    while loop.time() < deadline:
        obj = await client.get(ref, name, namespace)
        conds = (obj.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
            return obj
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{ref.kind} {namespace}/{name} is not Ready after {timeout:.0f}s; "
                       f"see `kubectl describe {ref.kind.lower()} -n {namespace} {name}`")


async def run_example(platform: Any, console: Any) -> None:
    s = platform.settings
    client = platform.client
    workdir = s.home / "example"
    root, crt, key = await asyncio.to_thread(make_certificates, workdir, s.domain)
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": {"name": "wildcard-certs", "namespace": "istio-system"},
              "data": {"tls.crt": base64.b64encode(crt.read_bytes()).decode(),
                       "tls.key": base64.b64encode(key.read_bytes()).decode()}}
    await _create(client, secret)
    for name in EXAMPLE_FILES:
        for doc in example_documents(name):
            await _create(client, doc)
    try:
        ksvc = await _wait_ready(client, Ref("serving.knative.dev/v1", "Service"), "hello", "default", 60)
        await _wait_ready(client, Ref("v1", "Pod"), "hello", "demo", 30)
    except TimeoutError as e:
        console.print(f"[yellow]example: {e}[/]")
        return
    url = str((ksvc.get("status") or {}).get("url", ""))
    host = url.removeprefix("https://")
    port = s.https_port
    console.print(f"""
[bold]Example ready[/bold] (seed 1.3 + 1.4.4): Knative Service default/hello behind the TLS ingress
gateway with the wildcard certificate made in {workdir}, and pod demo/hello to exec into.

  export KUBECONFIG={platform.kubeconfig}
  kubectl get ksvc,rev,gw -A
  curl --cacert {root} --resolve {host}:{port}:127.0.0.1 https://{host}:{port}
  kubectl exec -n demo hello -- sh -c 'curl -s http://127.0.0.1:$PORT'
""")
