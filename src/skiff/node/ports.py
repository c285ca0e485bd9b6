"""Which ports a pod gets, and how in-pod ports map to them. Pure.

A pod with a network namespace of its own (node/network/podnet.py) binds the
ports its spec names: own_ports() maps each to itself, $PORT is the first
(8080 when none is declared), and a probe on an undeclared port dials that
port. In the shared-loopback fallback all pods share the host's loopback, so a pod cannot bind the containerPort
its spec names. The runtime gives every declared containerPort a free host
port (and a pod with none one port still), tells each container its first
one as $PORT, and records the mapping on the pod: annotation skiff.dev/port
(the primary port: the first container's first containerPort) and
skiff.dev/ports (JSON {"<containerPort>": hostPort}). Probes, Endpoints and
the data plane translate a pod port through port_for(). pod.py allocates the
host ports (process.py's PortAllocator) from the keys planned here.
"""

from __future__ import annotations

import json

from skiff.core.client import Obj

PORT_ANNOTATION = "skiff.dev/port"
PORTS_ANNOTATION = "skiff.dev/ports"
DEFAULT_KEY = "default"     # the pod's port when no container declares one
DEFAULT_OWN_PORT = 8080     # ... and its number where the pod has a network of its own
# The env var that tells skiff's built-in programs the loopback mapping (JSON, as the annotation).
PORTS_ENV = "SKIFF_PORTS"


def planned_keys(pod: Obj) -> list[str]:
    """One key per declared containerPort (its number), in spec order; at least one."""
    keys: list[str] = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            key = str(p.get("containerPort", ""))
            if key and key not in keys and (p.get("protocol") or "TCP") == "TCP":
                keys.append(key)
    return keys or [DEFAULT_KEY]


def own_ports(keys: list[str]) -> dict[str, int]:
    """The mapping of a pod with its own network namespace: every port is itself (and the
    undeclared default is 8080, Knative's and hello-openshift's)."""
    return {k: int(k) if k.isdigit() else DEFAULT_OWN_PORT for k in keys}


def recorded(pod: Obj) -> dict[str, int]:
    """The mapping a previous run wrote on the pod, if any."""
    ann = (pod.get("metadata") or {}).get("annotations") or {}
    try:
        raw = json.loads(ann.get(PORTS_ANNOTATION) or "{}")
        return {str(k): int(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
    except (ValueError, TypeError):
        return {}


def port_annotations(mapping: dict[str, int], keys: list[str]) -> dict[str, str]:
    return {PORT_ANNOTATION: str(mapping[keys[0]]),
            PORTS_ANNOTATION: json.dumps({k: mapping[k] for k in keys}, separators=(",", ":"))}


def container_port(container: Obj, mapping: dict[str, int], keys: list[str],
                   isolated: bool = False) -> int:
    """$PORT for a container: its first declared port's host port, else the pod's primary; in
    a pod with its own network, a container that declares none gets 8080 (what the images
    listen on by default), not another container's port (an injected sidecar's 15090)."""
    for p in container.get("ports") or []:
        key = str(p.get("containerPort", ""))
        if key in mapping:
            return mapping[key]
    if isolated:
        return DEFAULT_OWN_PORT
    return mapping[keys[0]]


def port_for(pod: Obj, container: Obj, port: object, mapping: dict[str, int],
             keys: list[str], isolated: bool = False) -> int | None:
    """A probe's (or Service targetPort's) port -> the host port to dial.

    Accepts a number, a numeric string or a port name; 0/absent means the
    container's $PORT, and so does a number the pod did not declare. None
    when a name cannot be resolved.
    """
    own = container_port(container, mapping, keys, isolated)
    if port in (None, "", 0, "0"):
        return own
    if isinstance(port, str) and not port.isdigit():
        for c in [container, *((pod.get("spec") or {}).get("containers") or [])]:
            for p in c.get("ports") or []:
                if p.get("name") == port:
                    return port_for(pod, container, p.get("containerPort"), mapping, keys,
                                    isolated)
        return None
    num = str(int(str(port)))
    if num in mapping:
        return mapping[num]
    if isolated:
        return int(num)
    # In a real pod a port the spec does not declare is still the container's own (each pod has
    # its own network namespace); here every pod shares loopback and its app can only listen on
    # $PORT, so an undeclared port means $PORT, never whatever else on the host owns that number.
    return own
