"""A small synchronous API client for the CLI, reading a kubeconfig.

The CLI talks to skiff only through the Kubernetes API, exactly as kubectl
does (discovery to find kinds, server-side apply, dry runs). Standard library
HTTP: the CLI makes a handful of requests, so a pooled async client would be
dead weight. Neighbours: cli/main.py, cli/apply.py, cli/service.py (which
follows watches through stream()).
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

import yaml

from skiff.core.client import Obj


class ApiFailure(Exception):
    def __init__(self, code: int, status: Obj) -> None:
        self.code = code
        self.status = status
        super().__init__(status.get("message", f"HTTP {code}"))

    @property
    def reason(self) -> str:
        return str(self.status.get("reason", ""))


class NoServer(Exception):
    pass


@dataclass
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    def base(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def path(self, namespace: str, name: str = "") -> str:
        p = self.base()
        if self.namespaced:
            p += f"/namespaces/{namespace}"
        p += f"/{self.plural}"
        return p + (f"/{name}" if name else "")


def parse_warning(value: str) -> str:
    """The text of a `299 - "text"` Warning header (the value itself if it is not that form)."""
    code, _, rest = value.partition(" - ")
    if code.strip() == "299" and rest.startswith('"') and rest.endswith('"'):
        return rest[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


class Api:
    def __init__(self, kubeconfig: Path) -> None:
        if not kubeconfig.exists():
            raise NoServer(f"no kubeconfig at {kubeconfig}: start the platform first with `skiff up`")
        cfg = yaml.safe_load(kubeconfig.read_text())
        ctx_name = cfg.get("current-context")
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
        u = urlparse(cluster["server"])
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 443
        self.namespace = ctx.get("namespace", "default")
        self.token = user.get("token", "")
        self.tls = ssl.create_default_context(cafile=cluster.get("certificate-authority"))
        self._resources: dict[tuple[str, str], Resource] | None = None
        self.warnings: list[str] = []   # Warning headers of the responses, oldest first

    def request(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None,
                content_type: str = "application/json") -> Any:
        if query:
            path += "?" + urlencode(query)
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.tls, timeout=30)
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            self.warnings += [parse_warning(v) for k, v in resp.getheaders() if k.lower() == "warning"]
        except (ConnectionRefusedError, OSError) as e:
            raise NoServer(f"cannot reach the skiff API at {self.host}:{self.port} ({e}): is `skiff up` "
                           "running?") from None
        finally:
            conn.close()
        doc = json.loads(raw) if raw else {}
        if resp.status >= 400:
            raise ApiFailure(resp.status, doc if isinstance(doc, dict) else {"message": str(doc)})
        return doc

    def stream(self, path: str, query: dict[str, str] | None = None,
               timeout: float = 30) -> Iterator[Obj]:
        """GET a streaming endpoint (a watch) and yield each JSON line as it arrives.

        `timeout` bounds each socket read: a read that waits longer raises
        TimeoutError, so the caller's deadline is never left to the server.
        The stream ends when the server closes it (e.g. at timeoutSeconds).
        """
        if query:
            path += "?" + urlencode(query)
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.tls, timeout=timeout)
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        try:
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
            except TimeoutError:
                raise
            except OSError as e:
                raise NoServer(f"cannot reach the skiff API at {self.host}:{self.port} ({e}): is `skiff up` "
                               "running?") from None
            if resp.status >= 400:
                raw = resp.read()
                doc = json.loads(raw) if raw else {}
                raise ApiFailure(resp.status, doc if isinstance(doc, dict) else {"message": str(doc)})
            while True:
                line = resp.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()

    def resources(self) -> dict[tuple[str, str], Resource]:
        """(apiVersion, kind) -> Resource, from legacy discovery."""
        if self._resources is None:
            out: dict[tuple[str, str], Resource] = {}
            gvs = [("", "v1")]
            for g in self.request("GET", "/apis").get("groups", []):
                gvs += [(g["name"], v["version"]) for v in g["versions"]]
            for group, version in gvs:
                base = f"/apis/{group}/{version}" if group else f"/api/{version}"
                for r in self.request("GET", base).get("resources", []):
                    if "/" in r["name"]:
                        continue
                    av = f"{group}/{version}" if group else version
                    out[(av, r["kind"])] = Resource(group, version, r["name"], r["kind"], r["namespaced"])
            self._resources = out
        return self._resources

    def resource_for(self, api_version: str, kind: str) -> Resource | None:
        return self.resources().get((api_version, kind))


def kubeconfig_path(home: Path) -> Path:
    env = os.environ.get("KUBECONFIG")
    if env and not (home / "kubeconfig").exists():
        return Path(env.split(os.pathsep)[0])
    return home / "kubeconfig"
