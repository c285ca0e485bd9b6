"""A container's environment, the way kubelet builds it. Pure.

Inputs are data: the pod, the container, the ConfigMaps and Secrets it
references (fetched by pod.py through the Client; references() says which),
the pod's assigned loopback port and the API server address. Order, as in
kubelet: image env, service variables (KUBERNETES_SERVICE_HOST/PORT...),
HOSTNAME, envFrom in order, env in order with $(VAR) expansion against what
is defined so far; finally $PORT, which the runtime always sets because every
pod shares the host's loopback. A missing ConfigMap, Secret or key (not
optional) is an EnvError whose message is kubelet's; the runtime shows it as
waiting reason CreateContainerConfigError.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from skiff.core.client import Obj

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_LABEL_PATH = re.compile(r"^metadata\.(labels|annotations)\['([^']*)'\]$")


@dataclass(frozen=True)
class EnvError:
    message: str


@dataclass(frozen=True)
class Refs:
    """What a container's env needs fetched: names -> optional (all refs optional)."""
    configmaps: dict[str, bool] = field(default_factory=dict)
    secrets: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class EnvContext:
    """Everything besides the pod and container that the env depends on."""
    port: int
    api_host: str
    api_port: int
    node_name: str
    pod_ip: str = "127.0.0.1"
    host_ip: str = "127.0.0.1"
    configmaps: Mapping[str, Obj] = field(default_factory=dict)   # name -> ConfigMap (found ones)
    secrets: Mapping[str, Obj] = field(default_factory=dict)
    image_env: Mapping[str, str] = field(default_factory=dict)
    node_allocatable: Mapping[str, float] = field(default_factory=dict)  # cpu cores, memory bytes


def references(container: Obj) -> Refs:
    refs = Refs()
    for src in container.get("envFrom") or []:
        for key, table in (("configMapRef", refs.configmaps), ("secretRef", refs.secrets)):
            r = src.get(key)
            if r and r.get("name"):
                table[r["name"]] = table.get(r["name"], True) and bool(r.get("optional"))
    for e in container.get("env") or []:
        vf = e.get("valueFrom") or {}
        for key, table in (("configMapKeyRef", refs.configmaps), ("secretKeyRef", refs.secrets)):
            r = vf.get(key)
            if r and r.get("name"):
                table[r["name"]] = table.get(r["name"], True) and bool(r.get("optional"))
    return refs


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes $(VAR) expansion: $$ escapes, unknown references stay as written."""
    out: list[str] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c == "$" and i + 1 < n:
            nxt = value[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = value.find(")", i + 2)
                if end != -1:
                    name = value[i + 2:end]
                    out.append(env[name] if name in env else value[i:end + 1])
                    i = end + 1
                    continue
        out.append(c)
        i += 1
    return "".join(out)


def _decode(b64: str) -> str:
    try:
        return base64.b64decode(b64, validate=False).decode("utf-8", "surrogateescape")
    except (binascii.Error, ValueError):
        return ""


def configmap_data(cm: Obj) -> dict[str, str]:
    data = {k: str(v) for k, v in (cm.get("data") or {}).items()}
    for k, v in (cm.get("binaryData") or {}).items():
        data.setdefault(k, _decode(str(v)))
    return data


def secret_data(secret: Obj) -> dict[str, str]:
    data = {k: _decode(str(v)) for k, v in (secret.get("data") or {}).items()}
    for k, v in (secret.get("stringData") or {}).items():
        data.setdefault(k, str(v))
    return data


def service_env(api_host: str, api_port: int) -> dict[str, str]:
    return {
        "KUBERNETES_SERVICE_HOST": api_host,
        "KUBERNETES_SERVICE_PORT": str(api_port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(api_port),
        "KUBERNETES_PORT": f"tcp://{api_host}:{api_port}",
        f"KUBERNETES_PORT_{api_port}_TCP": f"tcp://{api_host}:{api_port}",
        f"KUBERNETES_PORT_{api_port}_TCP_PROTO": "tcp",
        f"KUBERNETES_PORT_{api_port}_TCP_PORT": str(api_port),
        f"KUBERNETES_PORT_{api_port}_TCP_ADDR": api_host,
    }


def field_value(pod: Obj, path: str, ctx: EnvContext) -> str | EnvError:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName") or ctx.node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
        "status.podIP": ctx.pod_ip,
        "status.podIPs": ctx.pod_ip,
        "status.hostIP": ctx.host_ip,
        "status.hostIPs": ctx.host_ip,
    }
    if path in simple:
        return str(simple[path])
    m = _LABEL_PATH.match(path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    return EnvError(f"unsupported fieldRef fieldPath: {path}")


_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
             "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
             "P": 1e15, "E": 1e18}


def quantity(q: object) -> float:
    """A Kubernetes quantity ("500m", "1Gi", "2", 3) as a float; ValueError if malformed."""
    s = str(q).strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if s.endswith(suffix) and s[:-len(suffix)]:
            return float(s[:-len(suffix)]) * _SUFFIXES[suffix]
    return float(s)


def resource_value(container: Obj, ref: Obj, ctx: EnvContext) -> str | EnvError:
    res = ref.get("resource", "")
    kind, _, name = res.partition(".")
    if kind not in ("limits", "requests") or not name:
        return EnvError(f"unsupported resourceFieldRef resource: {res}")
    resources = container.get("resources") or {}
    raw = (resources.get(kind) or {}).get(name)
    if raw is None and kind == "requests":
        raw = (resources.get("limits") or {}).get(name)
    try:
        divisor = quantity(ref.get("divisor") or "1")
        value = quantity(raw) if raw is not None else (
            ctx.node_allocatable.get(name, 0.0) if kind == "limits" else 0.0)
    except ValueError:
        return EnvError(f"invalid quantity for resourceFieldRef {res}")
    if divisor <= 0:
        return EnvError(f"invalid divisor for resourceFieldRef {res}")
    return str(max(0, math.ceil(value / divisor - 1e-9)))


def build_env(pod: Obj, container: Obj, ctx: EnvContext) -> dict[str, str] | EnvError:
    """The container's environment, or why it cannot be built."""
    meta = pod.get("metadata") or {}
    ns = meta.get("namespace", "")
    env: dict[str, str] = dict(ctx.image_env)
    env.update(service_env(ctx.api_host, ctx.api_port))
    env["HOSTNAME"] = (pod.get("spec") or {}).get("hostname") or meta.get("name", "")
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix") or ""
        if src.get("configMapRef"):
            r = src["configMapRef"]
            cm = ctx.configmaps.get(r.get("name", ""))
            if cm is None:
                if r.get("optional"):
                    continue
                return EnvError(f'configmap "{r.get("name", "")}" not found')
            values = configmap_data(cm)
        elif src.get("secretRef"):
            r = src["secretRef"]
            secret = ctx.secrets.get(r.get("name", ""))
            if secret is None:
                if r.get("optional"):
                    continue
                return EnvError(f'secret "{r.get("name", "")}" not found')
            values = secret_data(secret)
        else:
            continue
        for k, v in values.items():
            if _ENV_NAME.match(prefix + k):
                env[prefix + k] = v
    for e in container.get("env") or []:
        name = e.get("name", "")
        vf = e.get("valueFrom")
        if not vf:
            env[name] = expand(str(e.get("value", "")), env)
            continue
        value: str | EnvError | None
        if vf.get("configMapKeyRef"):
            value = _key_ref(vf["configMapKeyRef"], ctx.configmaps, ns, "configmap", "ConfigMap",
                             configmap_data)
        elif vf.get("secretKeyRef"):
            value = _key_ref(vf["secretKeyRef"], ctx.secrets, ns, "secret", "Secret", secret_data)
        elif vf.get("fieldRef"):
            value = field_value(pod, vf["fieldRef"].get("fieldPath", ""), ctx)
        elif vf.get("resourceFieldRef"):
            value = resource_value(container, vf["resourceFieldRef"], ctx)
        else:
            value = EnvError(f"unsupported valueFrom for env {name}")
        if isinstance(value, EnvError):
            return value
        if value is not None:
            env[name] = value
    env["PORT"] = str(ctx.port)
    return env


def _key_ref(ref: Obj, objs: Mapping[str, Obj], ns: str, noun: str, kind: str,
             data: Callable[[Obj], dict[str, str]]) -> str | EnvError | None:
    name, key, optional = ref.get("name", ""), ref.get("key", ""), bool(ref.get("optional"))
    obj = objs.get(name)
    if obj is None:
        return None if optional else EnvError(f'{noun} "{name}" not found')
    values: dict[str, str] = data(obj)
    if key not in values:
        return None if optional else EnvError(f"couldn't find key {key} in {kind} {ns}/{name}")
    return values[key]


def expand_argv(argv: list[str], env: Mapping[str, str]) -> list[str]:
    return [expand(a, env) for a in argv]
