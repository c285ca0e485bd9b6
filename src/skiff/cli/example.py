"""The getting-started example `skiff up --example` runs: a namespace and a pod.

It applies examples/getting-started/hello.yaml (shipped inside the package
too) through the in-process client, waits for the pod to be Ready, and prints
the kubectl commands that show it working. Neighbours: cli/main.py, platform.py.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Any

import yaml

from skiff.core.client import ApiError, Ref


def example_documents() -> list[dict[str, Any]]:
    text = resources.files("skiff.cli").joinpath("hello.yaml").read_text()
    return [d for d in yaml.safe_load_all(text) if d]


async def run_example(platform: Any, console: Any) -> None:
    client = platform.client
    for doc in example_documents():
        try:
            await client.create(doc)
        except ApiError as e:
            if e.code != 409:
                raise
    deadline = asyncio.get_running_loop().time() + 30
    pod: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        pod = await client.get(Ref("v1", "Pod"), "hello", "demo")
        conds = (pod.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
            break
        await asyncio.sleep(0.1)
    else:
        console.print("[yellow]the example pod is not Ready yet; see `kubectl describe pod -n demo hello`[/]")
    kc = platform.kubeconfig
    port = (pod["metadata"].get("annotations") or {}).get("skiff.dev/port", "$PORT")
    console.print(f"""
[bold]Example ready:[/bold] namespace demo, pod hello (docker.io/openshift/hello-openshift)
  export KUBECONFIG={kc}
  kubectl get pods -n demo
  kubectl exec -n demo hello -- sh -c 'curl -s http://127.0.0.1:$PORT'
  curl -s http://127.0.0.1:{port}
""")
