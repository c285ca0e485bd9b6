"""Sidecar injection: Istio's injection webhook, as OpenShift Service Mesh 2.4 (Istio 1.16) runs it.

inject(pod, cfg) is pure: a pod and the mesh's MeshConfig (mesh/membership.py) in,
the injected pod (a new dict) or None out. Maistra's rules decide whether: the
pod's namespace is a mesh member, the pod asks for a sidecar
(`sidecar.istio.io/inject`, label or annotation, with Istio's y/yes/true/on),
it is not hostNetwork and it carries no sidecar yet (no `istio-proxy`
container, no `sidecar.istio.io/status`). What it adds follows Istio's
injection-template.yaml and pkg/kube/inject field for field:
- the `istio-init` init container running `istio-iptables` with Istio's
  arguments (-p 15001 -z 15006 -u 1337 -m REDIRECT -i -x -b -d [-q] [-o] [-k]);
  the pod's traffic.sidecar.istio.io/* annotations replace the mesh-wide
  values exactly as the template's `annotation` function does (an annotation
  wins; the status port is merged into -d by excludeInboundPort);
- the `istio-proxy` container (`proxy sidecar ...`, its env, the 15021
  readiness probe, resources, security context) after the app containers;
- probe rewriting (pkg/kube/inject/app_probe.go): httpGet and tcpSocket (and
  grpc) probes of app containers go to the agent's 15020
  /app-health/<container>/readyz|livez|startupz, and ISTIO_KUBE_APP_PROBERS
  carries the originals as Go's json.Marshal writes them;
- labels security.istio.io/tlsMode, service.istio.io/canonical-name and
  canonical-revision; annotations sidecar.istio.io/status and
  kubectl.kubernetes.io/default-container / default-logs-container.
No volumes are injected: skiff's sidecar gets its identity from the mesh CA
through the data plane, not from mounted sockets or tokens, so the status
annotation lists none (null, as Go marshals an empty slice).

Pure. The shell, injectview.py (InjectionView), keeps the latest MeshConfig
from watches of ServiceMeshControlPlanes, ServiceMeshMemberRolls,
ServiceMeshMembers and Namespaces through the Client, and is the Pod
defaulter mesh/setup.py registers on create. The istio-init container is run
by the node as the built-in proxyv2 image (node/images/proxyv2.py), which
turns these arguments into nftables rules (node/network/capture.py).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from skiff.core.client import Obj
from skiff.mesh.membership import MeshConfig

PROXY_IMAGE = "registry.redhat.io/openshift-service-mesh/proxyv2-rhel8:2.4"
PROXY_CONTAINER = "istio-proxy"
INIT_CONTAINER = "istio-init"

# Istio's well-known ports and the proxy's uid (the template's literals).
OUTBOUND_PORT = 15001         # -p: Envoy's outbound listener
INBOUND_PORT = 15006          # -z: Envoy's inbound listener
STATUS_PORT = 15020           # the agent's merged metrics and /app-health
HEALTH_PORT = 15021           # /healthz/ready
PROM_PORT = 15090             # Envoy's /stats/prometheus
PROXY_UID = 1337

# Annotations and labels (istio.io/api annotation and label names).
INJECT = "sidecar.istio.io/inject"
STATUS = "sidecar.istio.io/status"
REWRITE_PROBERS = "sidecar.istio.io/rewriteAppHTTPProbers"
INTERCEPTION_MODE = "sidecar.istio.io/interceptionMode"
PROXY_IMAGE_ANNOTATION = "sidecar.istio.io/proxyImage"
STATUS_PORT_ANNOTATION = "status.sidecar.istio.io/port"
INCLUDE_OUTBOUND_IPS = "traffic.sidecar.istio.io/includeOutboundIPRanges"
EXCLUDE_OUTBOUND_IPS = "traffic.sidecar.istio.io/excludeOutboundIPRanges"
INCLUDE_INBOUND_PORTS = "traffic.sidecar.istio.io/includeInboundPorts"
EXCLUDE_INBOUND_PORTS = "traffic.sidecar.istio.io/excludeInboundPorts"
INCLUDE_OUTBOUND_PORTS = "traffic.sidecar.istio.io/includeOutboundPorts"
EXCLUDE_OUTBOUND_PORTS = "traffic.sidecar.istio.io/excludeOutboundPorts"
KUBEVIRT_INTERFACES = "traffic.sidecar.istio.io/kubevirtInterfaces"
READINESS_INITIAL_DELAY = "readiness.status.sidecar.istio.io/initialDelaySeconds"
READINESS_PERIOD = "readiness.status.sidecar.istio.io/periodSeconds"
READINESS_FAILURE_THRESHOLD = "readiness.status.sidecar.istio.io/failureThreshold"
PROXY_CPU = "sidecar.istio.io/proxyCPU"
PROXY_MEMORY = "sidecar.istio.io/proxyMemory"
PROXY_CPU_LIMIT = "sidecar.istio.io/proxyCPULimit"
PROXY_MEMORY_LIMIT = "sidecar.istio.io/proxyMemoryLimit"
DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"
DEFAULT_LOGS_CONTAINER = "kubectl.kubernetes.io/default-logs-container"
TLS_MODE = "security.istio.io/tlsMode"
CANONICAL_NAME = "service.istio.io/canonical-name"
CANONICAL_REVISION = "service.istio.io/canonical-revision"
KUBE_APP_PROBERS = "ISTIO_KUBE_APP_PROBERS"

# The values Maistra 2.4 renders the template with.
DEFAULT_RESOURCES: Obj = {"requests": {"cpu": "10m", "memory": "40Mi"}}
LOG_LEVEL = "warning"
COMPONENT_LOG_LEVEL = "misc:error"
AGENT_LOG_LEVEL = "default:info"
CLUSTER_DOMAIN = "cluster.local"
CLUSTER_ID = "Kubernetes"
JWT_POLICY = "third-party-jwt"
CERT_PROVIDER = "istiod"

_TRUE = ("y", "yes", "true", "on")                 # injectRequired's YAML booleans
_CRONJOB_JOB = re.compile(r"^(.+)-\d{8,10}$")       # a CronJob's Job name (Istio's heuristic)


# --- whether -------------------------------------------------------------------------------

def _meta(o: Obj) -> Obj:
    m: Obj = o.get("metadata") or {}
    return m


def _annotations(pod: Obj) -> dict[str, str]:
    return {str(k): str(v) for k, v in (_meta(pod).get("annotations") or {}).items()}


def inject_requested(pod: Obj) -> bool:
    """The pod asks for a sidecar: `sidecar.istio.io/inject` as a label (preferred, Istio 1.16)
    or an annotation, "true"/"y"/"yes"/"on" in any case. Maistra injects nothing by default."""
    value = _annotations(pod).get(INJECT, "")
    labels = _meta(pod).get("labels") or {}
    if INJECT in labels:
        value = str(labels[INJECT])
    return value.strip().lower() in _TRUE


def already_injected(pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    return bool(_annotations(pod).get(STATUS)) or any(
        c.get("name") == PROXY_CONTAINER for c in spec.get("containers") or [])


def should_inject(pod: Obj, cfg: MeshConfig) -> bool:
    """Maistra's decision: a member namespace, an explicit request, no host network, no
    sidecar yet."""
    spec = pod.get("spec") or {}
    return (cfg.is_member(str(_meta(pod).get("namespace") or ""))
            and inject_requested(pod)
            and not spec.get("hostNetwork")
            and not already_injected(pod))


# --- the template's helpers --------------------------------------------------------------

def _go_parse_bool(text: str) -> bool | None:
    """Go's strconv.ParseBool; None where it fails."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def exclude_inbound_port(port: str, excluded: str) -> str:
    """Istio's excludeInboundPort: `port` appended to the comma list unless already there."""
    port = port.strip()
    if not port or port == "0":
        return excluded
    out = []
    for p in excluded.split(","):
        if p == port:
            return excluded
        if p.strip():
            out.append(p.strip())
    out.append(port)
    return ",".join(out)


def _ports(ports: Iterable[int]) -> str:
    return ",".join(str(p) for p in ports)


def _status_port(ann: Mapping[str, str]) -> str:
    return ann.get(STATUS_PORT_ANNOTATION, str(STATUS_PORT))


def iptables_args(pod: Obj, cfg: MeshConfig) -> list[str]:
    """istio-init's args, as the template renders them for `pod` in the mesh `cfg`."""
    ann = _annotations(pod)
    excluded = exclude_inbound_port(
        _status_port(ann), ann.get(EXCLUDE_INBOUND_PORTS, _ports(cfg.excluded_inbound_ports)))
    args = ["istio-iptables",
            "-p", str(OUTBOUND_PORT),
            "-z", str(INBOUND_PORT),
            "-u", str(PROXY_UID),
            "-m", ann.get(INTERCEPTION_MODE, "REDIRECT"),
            "-i", ann.get(INCLUDE_OUTBOUND_IPS, "*"),
            "-x", ann.get(EXCLUDE_OUTBOUND_IPS, ""),
            "-b", ann.get(INCLUDE_INBOUND_PORTS, "*"),
            "-d", f"{PROM_PORT},{HEALTH_PORT},{excluded}" if excluded
            else f"{PROM_PORT},{HEALTH_PORT}"]
    if INCLUDE_OUTBOUND_PORTS in ann:
        args += ["-q", ann[INCLUDE_OUTBOUND_PORTS]]
    if EXCLUDE_OUTBOUND_PORTS in ann or cfg.excluded_outbound_ports:
        args += ["-o", ann.get(EXCLUDE_OUTBOUND_PORTS, _ports(cfg.excluded_outbound_ports))]
    if KUBEVIRT_INTERFACES in ann:
        args += ["-k", ann[KUBEVIRT_INTERFACES]]
    args.append(f"--log_output_level={AGENT_LOG_LEVEL}")
    return args


def _resources(ann: Mapping[str, str]) -> Obj:
    """The template's "resources": the proxy* annotations, else the mesh's defaults."""
    req = {k: ann[a] for k, a in (("cpu", PROXY_CPU), ("memory", PROXY_MEMORY)) if a in ann}
    lim = {k: ann[a] for k, a in (("cpu", PROXY_CPU_LIMIT), ("memory", PROXY_MEMORY_LIMIT))
           if a in ann}
    if not req and not lim:
        return copy.deepcopy(DEFAULT_RESOURCES)
    out: Obj = {}
    if req:
        out["requests"] = req
    if lim:
        out["limits"] = lim
    return out


def _int_annotation(ann: Mapping[str, str], key: str, default: int) -> int:
    try:
        return int(ann[key])
    except (KeyError, ValueError):
        return default


def deploy_meta(pod: Obj) -> tuple[str, str, str]:
    """Istio's GetDeployMetaFromPod: (name, kind, apiVersion) of the workload that made the pod:
    a Deployment behind a ReplicaSet (pod-template-hash), a CronJob behind a Job, else the
    controller, else the pod itself. Istio looks at the controller only for generateName pods
    (a webhook sees them nameless); skiff's controllers name their pods themselves, so any pod
    with a controller reference is asked."""
    meta = _meta(pod)
    name, kind, api_version = str(meta.get("name") or ""), "Pod", "v1"
    ref = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
    if ref is not None:
        kind, api_version = str(ref.get("kind") or ""), str(ref.get("apiVersion") or "")
        name = str(ref.get("name") or "")
        pth = (meta.get("labels") or {}).get("pod-template-hash") or ""
        if kind == "ReplicaSet" and pth and name.endswith(pth):
            name, kind = name.removesuffix("-" + pth), "Deployment"
        elif kind == "ReplicationController" and (meta.get("labels") or {}).get(
                "deploymentconfig"):
            name, kind = str(meta["labels"]["deploymentconfig"]), "DeploymentConfig"
        elif kind == "Job" and (m := _CRONJOB_JOB.match(name)):
            name, kind, api_version = m.group(1), "CronJob", "batch/v1"
    return name or str(meta.get("name") or ""), kind, api_version


def go_duration(seconds: float) -> str:
    """A duration as Go's time.Duration.String() writes it ("35s", "1m30s", "500ms")."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    out = f"{int(h)}h" if h else ""
    if h or m:
        out += f"{int(m)}m"
    return out + f"{s:g}s"


# --- probes (app_probe.go) ---------------------------------------------------------------

PROBES = (("readinessProbe", "readyz"), ("livenessProbe", "livez"), ("startupProbe", "startupz"))


def prober_url(container: str, which: str) -> str:
    """status.FormatProberURL: /app-health/<container>/readyz|livez|startupz."""
    return f"/app-health/{container}/{which}"


def should_rewrite_probes(ann: Mapping[str, str], default: bool = True) -> bool:
    """ShouldRewriteAppHTTPProbers: the annotation when Go's ParseBool reads it, else the
    mesh's setting (true in Maistra 2.4)."""
    parsed = _go_parse_bool(ann.get(REWRITE_PROBERS, ""))
    return default if parsed is None else parsed


def _port_value(port: Any, ports: Mapping[str, int]) -> int | None:
    """A probe port as an int: named ports through the container's ports (None: unknown)."""
    if isinstance(port, bool):
        return None
    if isinstance(port, int):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    return ports.get(text)


def _timeout(probe: Obj) -> int:
    # The API server defaults timeoutSeconds to 1 before a webhook sees the pod.
    t = probe.get("timeoutSeconds")
    return int(t) if t else 1


def internal_prober(probe: Obj | None, ports: Mapping[str, int], status_port: int) -> Obj | None:
    """kubeProbeToInternalProber + updateNamedPort: what the agent is told to run, with the
    fields in Go's order and Kubernetes' defaults (path "/", scheme HTTP) filled in, as the
    webhook sees a defaulted pod. None for exec probes, unknown named ports, and probes
    already pointing at the status port."""
    if not probe:
        return None
    if isinstance(probe.get("grpc"), dict):
        g = probe["grpc"]
        return {"grpc": {"port": g.get("port"), "service": g.get("service") or ""},
                "timeoutSeconds": _timeout(probe)}
    if isinstance(probe.get("httpGet"), dict):
        h = probe["httpGet"]
        port = _port_value(h.get("port"), ports)
        if port is None or (not isinstance(h.get("port"), str) and port == status_port):
            return None
        action: Obj = {"path": h.get("path") or "/", "port": port}
        if h.get("host"):
            action["host"] = h["host"]
        action["scheme"] = h.get("scheme") or "HTTP"
        if h.get("httpHeaders"):
            action["httpHeaders"] = [{"name": x.get("name"), "value": x.get("value")}
                                     for x in h["httpHeaders"]]
        return {"httpGet": action, "timeoutSeconds": _timeout(probe)}
    if isinstance(probe.get("tcpSocket"), dict):
        t = probe["tcpSocket"]
        port = _port_value(t.get("port"), ports)
        if port is None or (not isinstance(t.get("port"), str) and port == status_port):
            return None
        sock: Obj = {"port": port}
        if t.get("host"):
            sock["host"] = t["host"]
        return {"tcpSocket": sock, "timeoutSeconds": _timeout(probe)}
    return None


def rewrite_probe(probe: Obj | None, url: str, status_port: int) -> Obj | None:
    """convertAppProber: the probe the kubelet runs instead (httpGet on the status port), or
    None when the probe is left alone (exec, none)."""
    if not probe or not any(isinstance(probe.get(k), dict)
                            for k in ("httpGet", "tcpSocket", "grpc")):
        return None
    out = copy.deepcopy(probe)
    if isinstance(out.get("httpGet"), dict):
        h = out["httpGet"]
        h["port"], h["path"] = status_port, url
        # HTTPS apps: the kubelet speaks HTTP to the agent, the agent HTTPS to the app.
        h["scheme"] = "HTTP"
    else:
        out.pop("tcpSocket", None)
        out.pop("grpc", None)
        out["httpGet"] = {"path": url, "port": status_port, "scheme": "HTTP"}
    return out


def go_json(value: Any) -> str:
    """json.Marshal's text: compact, map keys sorted by the caller, <>& escaped as Go does."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def app_probers(containers: Iterable[Obj], status_port: int = STATUS_PORT) -> dict[str, Obj]:
    """DumpAppProbers: URL -> prober for every app container's probes."""
    out: dict[str, Obj] = {}
    for c in containers:
        name = str(c.get("name") or "")
        if name == PROXY_CONTAINER:
            continue
        ports = {str(p["name"]): int(p["containerPort"]) for p in c.get("ports") or []
                 if p.get("name") and p.get("containerPort") is not None}
        for field, which in PROBES:
            p = internal_prober(c.get(field), ports, status_port)
            if p is not None:
                out[prober_url(name, which)] = p
    return dict(sorted(out.items()))          # Go marshals map keys sorted


# --- the sidecar ---------------------------------------------------------------------------

def _field_env(name: str, path: str) -> Obj:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _go_port(p: Obj) -> Obj:
    """A ContainerPort in Go's field order (structToJSON)."""
    out: Obj = {}
    for k in ("name", "hostPort"):
        if p.get(k):
            out[k] = p[k]
    out["containerPort"] = p.get("containerPort")
    out["protocol"] = p.get("protocol") or "TCP"
    if p.get("hostIP"):
        out["hostIP"] = p["hostIP"]
    return out


def proxy_env(pod: Obj, cfg: MeshConfig, apps: list[Obj]) -> list[Obj]:
    """istio-proxy's env, in the template's order (values as Maistra 2.4 renders them)."""
    ann = _annotations(pod)
    meta = _meta(pod)
    name, kind, api_version = deploy_meta(pod)
    istiod = f"istiod-{cfg.name or 'basic'}.{cfg.control_plane}.svc:15012"
    proxy_config = {"discoveryAddress": istiod,
                    "terminationDrainDuration": go_duration(cfg.termination_drain_s)}
    ports = [_go_port(p) for c in apps for p in c.get("ports") or []]
    env: list[Obj] = [
        {"name": "JWT_POLICY", "value": JWT_POLICY},
        {"name": "PILOT_CERT_PROVIDER", "value": CERT_PROVIDER},
        {"name": "CA_ADDR", "value": istiod},
        _field_env("POD_NAME", "metadata.name"),
        _field_env("POD_NAMESPACE", "metadata.namespace"),
        _field_env("INSTANCE_IP", "status.podIP"),
        _field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        _field_env("HOST_IP", "status.hostIP"),
        {"name": "PROXY_CONFIG", "value": go_json(proxy_config)},
        {"name": "ISTIO_META_POD_PORTS", "value": go_json(ports)},
        {"name": "ISTIO_META_APP_CONTAINERS",
         "value": ",".join(str(c.get("name")) for c in apps)},
        {"name": "ISTIO_META_CLUSTER_ID", "value": CLUSTER_ID},
        {"name": "ISTIO_META_INTERCEPTION_MODE", "value": ann.get(INTERCEPTION_MODE, "REDIRECT")},
    ]
    if name:
        env.append({"name": "ISTIO_META_WORKLOAD_NAME", "value": name})
        env.append({"name": "ISTIO_META_OWNER",
                    "value": f"kubernetes://apis/{api_version}/namespaces/"
                             f"{meta.get('namespace') or 'default'}/{kind.lower()}s/{name}"})
    env += [
        {"name": "ISTIO_META_MESH_ID", "value": cfg.trust_domain},
        {"name": "TRUST_DOMAIN", "value": cfg.trust_domain},
        # pilot-agent's drain time (ProxyConfig.terminationDrainDuration, whole seconds)
        {"name": "TERMINATION_DRAIN_DURATION_SECONDS",
         "value": str(max(0, round(cfg.termination_drain_s)))},
    ]
    return env


def proxy_container(pod: Obj, cfg: MeshConfig, apps: list[Obj], image: str) -> Obj:
    ann = _annotations(pod)
    c: Obj = {
        "name": PROXY_CONTAINER,
        "image": image,
        "ports": [{"containerPort": PROM_PORT, "protocol": "TCP", "name": "http-envoy-prom"}],
        "args": ["proxy", "sidecar", "--domain", f"$(POD_NAMESPACE).svc.{CLUSTER_DOMAIN}",
                 f"--proxyLogLevel={ann.get('sidecar.istio.io/logLevel', LOG_LEVEL)}",
                 "--proxyComponentLogLevel="
                 f"{ann.get('sidecar.istio.io/componentLogLevel', COMPONENT_LOG_LEVEL)}",
                 f"--log_output_level={ann.get('sidecar.istio.io/agentLogLevel', AGENT_LOG_LEVEL)}"],
        "env": proxy_env(pod, cfg, apps),
    }
    if _status_port(ann) != "0":
        c["readinessProbe"] = {
            "httpGet": {"path": "/healthz/ready", "port": HEALTH_PORT},
            "initialDelaySeconds": _int_annotation(ann, READINESS_INITIAL_DELAY, 1),
            "periodSeconds": _int_annotation(ann, READINESS_PERIOD, 2),
            "timeoutSeconds": 3,
            "failureThreshold": _int_annotation(ann, READINESS_FAILURE_THRESHOLD, 30)}
    c["securityContext"] = {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
        "privileged": False, "readOnlyRootFilesystem": True, "runAsGroup": PROXY_UID,
        "runAsNonRoot": True, "runAsUser": PROXY_UID}
    c["resources"] = _resources(ann)
    return c


def init_container(pod: Obj, cfg: MeshConfig, image: str) -> Obj:
    return {
        "name": INIT_CONTAINER,
        "image": image,
        "args": iptables_args(pod, cfg),
        "resources": _resources(_annotations(pod)),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "privileged": False, "readOnlyRootFilesystem": False, "runAsGroup": 0,
            "runAsNonRoot": False, "runAsUser": 0},
    }


def status_annotation(init: list[str], containers: list[str], revision: str) -> str:
    """sidecar.istio.io/status as Istio marshals SidecarInjectionStatus (nil slices: null)."""
    return go_json({"initContainers": init or None, "containers": containers or None,
                    "volumes": None, "imagePullSecrets": None, "revision": revision})


def inject(pod: dict[str, Any], cfg: MeshConfig, *, revision: str = "basic"
           ) -> dict[str, Any] | None:
    """The pod with Istio's sidecar injected, or None when it must not be injected. Pure."""
    if not should_inject(pod, cfg):
        return None
    out = copy.deepcopy(pod)
    meta = out.setdefault("metadata", {})
    spec = out.setdefault("spec", {})
    ann = _annotations(pod)
    apps = [c for c in spec.get("containers") or [] if c.get("name") != PROXY_CONTAINER]
    image = ann.get(PROXY_IMAGE_ANNOTATION, "") if "/" in ann.get(PROXY_IMAGE_ANNOTATION, "") \
        else PROXY_IMAGE

    inits: list[str] = []
    if ann.get(INTERCEPTION_MODE, "REDIRECT") != "NONE":
        spec["initContainers"] = [*(spec.get("initContainers") or []),
                                  init_container(pod, cfg, image)]
        inits.append(INIT_CONTAINER)
    proxy = proxy_container(pod, cfg, apps, image)

    status_port = _status_port(ann)
    if should_rewrite_probes(ann) and status_port.isdigit() and int(status_port) > 0:
        sp = int(status_port)
        # The agent's table is made of the probes as the app wrote them, then they move.
        probers = app_probers(apps, sp)
        if probers:
            proxy["env"].append({"name": KUBE_APP_PROBERS, "value": go_json(probers)})
        for c in apps:
            for field, which in PROBES:
                new = rewrite_probe(c.get(field), prober_url(str(c.get("name")), which), sp)
                if new is not None:
                    c[field] = new
    spec["containers"] = [*(spec.get("containers") or []), proxy]

    labels = meta.setdefault("labels", {})
    name, _, _ = deploy_meta(pod)
    labels[TLS_MODE] = labels.get(TLS_MODE) or "istio"
    labels[CANONICAL_NAME] = (labels.get(CANONICAL_NAME) or labels.get("app.kubernetes.io/name")
                              or labels.get("app") or name)
    labels[CANONICAL_REVISION] = (labels.get(CANONICAL_REVISION)
                                  or labels.get("app.kubernetes.io/version")
                                  or labels.get("version") or "latest")
    annotations = meta.setdefault("annotations", {})
    if apps:
        annotations.setdefault(DEFAULT_LOGS_CONTAINER, apps[0].get("name"))
        annotations.setdefault(DEFAULT_CONTAINER, apps[0].get("name"))
    annotations[STATUS] = status_annotation(inits, [PROXY_CONTAINER], revision)
    return out
