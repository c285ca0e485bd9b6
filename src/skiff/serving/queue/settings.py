"""queue-proxy's settings: the environment the revision reconciler gives its container. Pure.

Upstream's queue-proxy (pkg/queue/sharedmain) reads its whole configuration
from env vars that the Revision's Deployment sets (revision/resources/
queue.go; serving/resources.py makes them here): the serving port 8012 (8013
for h2c), the admin port 8022 (/wait-for-drain), the autoscaler metrics port
9090, the user metrics port 9091, the user port, containerConcurrency, the
three timeouts and the user container's readiness probe as JSON
(SERVING_READINESS_PROBE). parse() turns that env into QueueSettings or
raises SettingsError naming the variable; the process (main.py) says so in
one line and exits 1, as upstream's does.

In skiff's loopback fallback every port above is a number the pod declared
but could not bind; the node tells skiff's own programs the host port each
one got (SKIFF_PORTS, node/ports.py) and port() translates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

QUEUE_HTTP_PORT = 8012
QUEUE_H2C_PORT = 8013
QUEUE_ADMIN_PORT = 8022
AUTOSCALER_METRICS_PORT = 9090
USER_METRICS_PORT = 9091
PROBE_HEADER = "k-network-probe"          # network.ProbeHeaderName
PROBE_VALUE = "queue"                      # the kubelet's probe of queue-proxy itself
MAX_TIMEOUT_SECONDS = 3600 * 24
# How long aggressive probing (periodSeconds 0) keeps trying before it says not ready; upstream
# keeps the kubelet's probe request open meanwhile (pkg/queue/readiness: aggressiveProbeTimeout).
AGGRESSIVE_PROBE_TIMEOUT = 10.0
AGGRESSIVE_PROBE_PERIOD = 0.025           # upstream's retryInterval: 25 ms


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class AppProbe:
    """The user container's readiness probe, run by queue-proxy against the app."""
    kind: str = "tcp"                    # tcp | http
    port: int = 8080
    path: str = "/"
    scheme: str = "http"
    headers: tuple[tuple[str, str], ...] = ()
    period: float = 0.0                  # 0: aggressive (every 25 ms until first ready)
    timeout: float = 1.0
    failure_threshold: int = 3
    success_threshold: int = 1


@dataclass(frozen=True)
class QueueSettings:
    namespace: str
    revision: str
    pod: str
    configuration: str = ""
    service: str = ""
    serving_port: int = QUEUE_HTTP_PORT
    admin_port: int = QUEUE_ADMIN_PORT
    metrics_port: int = AUTOSCALER_METRICS_PORT
    user_metrics_port: int = USER_METRICS_PORT
    user_port: int = 8080
    container_concurrency: int = 0
    timeout: float = 300.0                # REVISION_TIMEOUT_SECONDS: the whole request
    response_start_timeout: float = 0.0   # to the first response byte; 0: the whole timeout
    idle_timeout: float = 0.0             # between bytes; 0: none
    probe: AppProbe = field(default_factory=AppProbe)
    ports: Mapping[str, int] = field(default_factory=dict)   # loopback: declared -> host

    def port(self, declared: int) -> int:
        """Where a port the pod declared is bound here (itself in a pod's own network)."""
        return int(self.ports.get(str(declared), declared))


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: not an integer") from None
    if not lo <= v <= hi:
        raise SettingsError(f"{name}={raw!r}: must be between {lo} and {hi}")
    return v


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    return _int(env, name, default, 1, 65535)


def _required(env: Mapping[str, str], name: str) -> str:
    v = env.get(name, "")
    if not v:
        raise SettingsError(f"{name} is required")
    return v


def parse_probe(raw: str, user_port: int) -> AppProbe:
    """SERVING_READINESS_PROBE: the user container's probe (empty: TCP on the user port, the
    default upstream gives a container without one)."""
    if not raw:
        return AppProbe(port=user_port)
    try:
        p = json.loads(raw)
    except ValueError as e:
        raise SettingsError(f"SERVING_READINESS_PROBE: not JSON: {e}") from None
    if not isinstance(p, dict):
        raise SettingsError("SERVING_READINESS_PROBE: must be an object")

    def num(key: str, default: float, lo: float) -> float:
        v = p.get(key, default)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < lo:
            raise SettingsError(f"SERVING_READINESS_PROBE.{key}: must be a number >= {lo:g}")
        return float(v)

    common = {"period": num("periodSeconds", 0, 0), "timeout": num("timeoutSeconds", 1, 0) or 1.0,
              "failure_threshold": int(num("failureThreshold", 3, 1)),
              "success_threshold": int(num("successThreshold", 1, 1))}
    if isinstance(p.get("httpGet"), dict):
        h = p["httpGet"]
        headers = tuple((str(x.get("name", "")), str(x.get("value", "")))
                        for x in h.get("httpHeaders") or [] if isinstance(x, dict))
        scheme = str(h.get("scheme") or "HTTP").lower()
        if scheme not in ("http", "https"):
            raise SettingsError(f"SERVING_READINESS_PROBE.httpGet.scheme: {scheme!r}")
        return AppProbe("http", _probe_port(h.get("port"), user_port),
                        str(h.get("path") or "/"), scheme, headers, **common)  # type: ignore[arg-type]
    if isinstance(p.get("tcpSocket"), dict):
        return AppProbe("tcp", _probe_port(p["tcpSocket"].get("port"), user_port),
                        **common)  # type: ignore[arg-type]
    if p.get("exec") is not None or p.get("grpc") is not None:
        # exec/grpc stay with the kubelet upstream; the queue then only checks the port
        return AppProbe("tcp", user_port, **common)  # type: ignore[arg-type]
    raise SettingsError("SERVING_READINESS_PROBE: needs httpGet, tcpSocket, exec or grpc")


def _probe_port(v: object, user_port: int) -> int:
    if v in (None, "", 0):
        return user_port
    if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65535:
        return v
    if isinstance(v, str) and v.isdigit() and 1 <= int(v) <= 65535:
        return int(v)
    return user_port     # a named port: the user port is the only one a revision has


def parse(env: Mapping[str, str]) -> QueueSettings:
    user_port = _port(env, "USER_PORT", 8080)
    raw_ports = env.get("SKIFF_PORTS", "")
    ports: dict[str, int] = {}
    if raw_ports:
        try:
            loaded = json.loads(raw_ports)
            ports = {str(k): int(v) for k, v in loaded.items()}
        except (ValueError, AttributeError, TypeError):
            raise SettingsError("SKIFF_PORTS: not a JSON object of ports") from None
    timeout = _int(env, "REVISION_TIMEOUT_SECONDS", 300, 0, MAX_TIMEOUT_SECONDS)
    return QueueSettings(
        namespace=_required(env, "SERVING_NAMESPACE"),
        revision=_required(env, "SERVING_REVISION"),
        pod=env.get("SERVING_POD", "") or env.get("HOSTNAME", ""),
        configuration=env.get("SERVING_CONFIGURATION", ""),
        service=env.get("SERVING_SERVICE", ""),
        serving_port=_port(env, "QUEUE_SERVING_PORT", QUEUE_HTTP_PORT),
        admin_port=_port(env, "QUEUE_ADMIN_PORT", QUEUE_ADMIN_PORT),
        metrics_port=_port(env, "QUEUE_METRICS_PORT", AUTOSCALER_METRICS_PORT),
        user_metrics_port=_port(env, "USER_METRICS_PORT", USER_METRICS_PORT),
        user_port=user_port,
        container_concurrency=_int(env, "CONTAINER_CONCURRENCY", 0, 0, 1000),
        timeout=float(timeout),
        response_start_timeout=float(_int(env, "REVISION_RESPONSE_START_TIMEOUT_SECONDS", 0,
                                          0, MAX_TIMEOUT_SECONDS)),
        idle_timeout=float(_int(env, "REVISION_IDLE_TIMEOUT_SECONDS", 0, 0, MAX_TIMEOUT_SECONDS)),
        probe=parse_probe(env.get("SERVING_READINESS_PROBE", ""), user_port),
        ports=ports,
    )
