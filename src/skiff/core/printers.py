"""Server-side Table printing: objects in, a meta.k8s.io/v1 Table out.

kubectl has no client-side printers for built-in kinds; it asks the API
server for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the
cells verbatim. This module builds those Tables, following kube-apiserver
v1.32: the built-in printers of pkg/printers/internalversion/printers.go
(pods, services, deployments...), the CRD table convertor of
apiextensions-apiserver (Name + additionalPrinterColumns, or Name + Age when
a CRD declares none), and the default convertor (Name, Created At) for any
other built-in. Like upstream's server-side printing, every column is
generated (the "wide" ones carry priority 1 and kubectl hides them unless
`-o wide`). Ages are pre-formatted with human_age(), a port of
apimachinery's duration.HumanDuration.

Pure: `now` is always passed in, never read from the clock. Neighbours:
kinds.py (Kind, PrinterColumn), core/jsonpath.py (column_value for CRD
columns, imported lazily), the API server's get/list/watch handlers (which
call table() and fill in metadata.resourceVersion).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from skiff.core.client import Obj
from skiff.core.clock import human_age, human_duration, parse_time
from skiff.core.kinds import Kind, PrinterColumn

__all__ = [
    "column_definitions", "format_label_selector", "format_labels", "human_age",
    "pod_status_reason", "row_cells", "table", "translate_timestamp",
]

Row = list[Any]

# --- durations (k8s.io/apimachinery/pkg/util/duration) --------------------------


def translate_timestamp(value: Any, now: datetime) -> str:
    """translateTimestampSince: "<unknown>" for a missing timestamp, else its age."""
    t = parse_time(value)
    return "<unknown>" if t is None else human_age(t, now)


# --- selectors and labels (apimachinery labels / metav1 helpers) ----------------


def format_labels(labels: Any) -> str:
    """labels.FormatLabels: "a=b,c=d" sorted by key, "<none>" when empty."""
    if not isinstance(labels, dict) or not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def _selector_string(selector: Any) -> str:
    """metav1.LabelSelectorAsSelector(sel).String(): requirements sorted by key."""
    if not isinstance(selector, dict):
        return ""
    reqs: list[tuple[str, str]] = []
    for k, v in (selector.get("matchLabels") or {}).items():
        reqs.append((str(k), f"{k}={v}"))
    for e in selector.get("matchExpressions") or []:
        key, op = str(e.get("key", "")), e.get("operator")
        values = sorted(str(v) for v in e.get("values") or [])
        if op == "In":
            reqs.append((key, f"{key} in ({','.join(values)})"))
        elif op == "NotIn":
            reqs.append((key, f"{key} notin ({','.join(values)})"))
        elif op == "Exists":
            reqs.append((key, key))
        elif op == "DoesNotExist":
            reqs.append((key, f"!{key}"))
    return ",".join(s for _, s in sorted(reqs, key=lambda r: r[0]))


def format_label_selector(selector: Any) -> str:
    """metav1.FormatLabelSelector: "<none>" for an empty selector."""
    return _selector_string(selector) or "<none>"


# --- column definitions -----------------------------------------------------------

_NAME_DOC = ("Name must be unique within a namespace. Is required when creating resources, "
             "although some resources may allow a client to request the generation of an "
             "appropriate name automatically. Name is primarily intended for creation "
             "idempotence and configuration definition. Cannot be updated. More info: "
             "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
_AGE_DOC = ("CreationTimestamp is a timestamp representing the server time when this object "
            "was created. It is not guaranteed to be set in happens-before order across "
            "separate operations. Clients may not set this value. It is represented in "
            "RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for "
            "lists. More info: https://git.k8s.io/community/contributors/devel/"
            "sig-architecture/api-conventions.md#metadata")


def _col(name: str, type_: str = "string", description: str = "", *, priority: int = 0,
         format_: str = "") -> Obj:
    return {"name": name, "type": type_, "format": format_, "description": description,
            "priority": priority}


_NAME = _col("Name", "string", _NAME_DOC, format_="name")
_AGE = _col("Age", "string", _AGE_DOC)
_CONTAINERS = _col("Containers", description="Names of each container in the template.",
                   priority=1)
_IMAGES = _col("Images", description="Images referenced by each container in the template.",
               priority=1)

_BUILTIN_COLUMNS: dict[tuple[str, str], list[Obj]] = {
    ("", "pods"): [
        _NAME,
        _col("Ready", description="The aggregate readiness state of this pod for accepting "
                                  "traffic."),
        _col("Status", description="The aggregate status of the containers in this pod."),
        _col("Restarts", description="The number of times the containers in this pod have been "
                                     "restarted and when the last container in this pod has "
                                     "restarted."),
        _AGE,
        _col("IP", description="podIP address allocated to the pod.", priority=1),
        _col("Node", description="NodeName is the name of the node the pod is scheduled on.",
             priority=1),
        _col("Nominated Node", description="nominatedNodeName is set only when this pod "
                                           "preempts other pods on the node.", priority=1),
        _col("Readiness Gates", description="If specified, all readiness gates will be "
                                            "evaluated for pod readiness.", priority=1),
    ],
    ("", "namespaces"): [_NAME, _col("Status", description="The status of the namespace"), _AGE],
    ("", "nodes"): [
        _NAME,
        _col("Status", description="The status of the node"),
        _col("Roles", description="The roles of the node"),
        _AGE,
        _col("Version", description="Kubelet Version reported by the node."),
        _col("Internal-IP", description="List of addresses reachable to the node.", priority=1),
        _col("External-IP", description="List of addresses reachable to the node.", priority=1),
        _col("OS-Image", description="OS Image reported by the node from /etc/os-release "
                                     "(e.g. Debian GNU/Linux 7 (wheezy)).", priority=1),
        _col("Kernel-Version", description="Kernel Version reported by the node from 'uname -r' "
                                           "(e.g. 3.16.0-0.bpo.4-amd64).", priority=1),
        _col("Container-Runtime", description="ContainerRuntime Version reported by the node "
                                              "through runtime remote API (e.g. "
                                              "containerd://1.4.2).", priority=1),
    ],
    ("", "configmaps"): [
        _NAME, _col("Data", description="Data contains the configuration data."), _AGE],
    ("coordination.k8s.io", "leases"): [
        _NAME, _col("Holder", description="holderIdentity contains the identity of the holder "
                                          "of a current lease."), _AGE],
    ("", "secrets"): [
        _NAME,
        _col("Type", description="Used to facilitate programmatic handling of secret data."),
        _col("Data", description="Data contains the secret data."),
        _AGE,
    ],
    ("", "serviceaccounts"): [
        _NAME,
        _col("Secrets", description="Secrets is a list of the secrets in the same namespace "
                                    "that pods running using this ServiceAccount are allowed "
                                    "to use."),
        _AGE,
    ],
    ("", "services"): [
        _NAME,
        _col("Type", description="type determines how the Service is exposed."),
        _col("Cluster-IP", description="clusterIP is the IP address of the service."),
        _col("External-IP", description="externalIPs is a list of IP addresses for which nodes "
                                        "in the cluster will also accept traffic for this "
                                        "service."),
        _col("Port(s)", description="The list of ports that are exposed by this service."),
        _AGE,
        _col("Selector", description="Route service traffic to pods with label keys and values "
                                     "matching this selector.", priority=1),
    ],
    ("", "endpoints"): [
        _NAME,
        _col("Endpoints", description="The set of all endpoints is the union of all subsets. "
                                      "Addresses are placed into subsets according to the IPs "
                                      "they share. A single address with multiple ports, some "
                                      "of which are ready and some of which are not (because "
                                      "they come from different containers) will result in "
                                      "the address being displayed in different subsets for "
                                      "the different ports. No address will appear in both "
                                      "Addresses and NotReadyAddresses in the same subset. Sets "
                                      "of addresses and ports that comprise a service."),
        _AGE,
    ],
    ("discovery.k8s.io", "endpointslices"): [
        _NAME,
        _col("AddressType", description="addressType specifies the type of address carried by "
                                         "this EndpointSlice. All addresses in this slice must "
                                         "be the same type. This field is immutable after "
                                         "creation. The following address types are currently "
                                         "supported: * IPv4: Represents an IPv4 Address. * "
                                         "IPv6: Represents an IPv6 Address. * FQDN: Represents "
                                         "a Fully Qualified Domain Name."),
        _col("Ports", description="ports specifies the list of network ports exposed by each "
                                  "endpoint in this slice. Each port must have a unique name. "
                                  "When ports is empty, it indicates that there are no defined "
                                  "ports. When a port is defined with a nil port value, it "
                                  "indicates \"all ports\". Each slice may include a maximum "
                                  "of 100 ports."),
        _col("Endpoints", description="endpoints is a list of unique endpoints in this slice. "
                                      "Each slice may include a maximum of 1000 endpoints."),
        _AGE,
    ],
    ("", "events"): [
        _col("Last Seen", description="The time at which the most recent occurrence of this "
                                      "event was recorded."),
        _col("Type", description="Type of this event (Normal, Warning)."),
        _col("Reason", description="This should be a short, machine understandable string that "
                                   "gives the reason for the transition into the object's "
                                   "current status."),
        _col("Object", description="The object that this event is about."),
        _col("Subobject", description="If referring to a piece of an object instead of an entire "
                                      "object, this string should contain a valid JSON/Go-field "
                                      "access statement.", priority=1),
        _col("Source", description="The component reporting this event.", priority=1),
        _col("Message", description="A human-readable description of the status of this "
                                    "operation."),
        _col("First Seen", description="The time at which the event was first recorded.",
             priority=1),
        _col("Count", description="The number of times this event has occurred.", priority=1),
        _col("Name", "string", _NAME_DOC, priority=1, format_="name"),
    ],
    ("apps", "deployments"): [
        _NAME,
        _col("Ready", description="Number of the pod with ready state"),
        _col("Up-to-date", description="Total number of non-terminated pods targeted by this "
                                       "deployment that have the desired template spec."),
        _col("Available", description="Total number of available pods (ready for at least "
                                      "minReadySeconds) targeted by this deployment."),
        _AGE,
        _CONTAINERS,
        _IMAGES,
        _col("Selector", description="Label selector for pods.", priority=1),
    ],
    ("apps", "daemonsets"): [
        _NAME,
        _col("Desired", "integer", "The total number of nodes that should be running the "
                                    "daemon pod (including nodes correctly running the daemon "
                                    "pod)."),
        _col("Current", "integer", "The number of nodes that are running at least 1 daemon "
                                    "pod and are supposed to run the daemon pod."),
        _col("Ready", "integer", "The number of nodes that should be running the daemon pod "
                                  "and have one or more of the daemon pod running with a Ready "
                                  "Condition."),
        _col("Up-to-date", "integer", "The total number of nodes that are running updated "
                                       "daemon pod"),
        _col("Available", "integer", "The number of nodes that should be running the daemon "
                                      "pod and have one or more of the daemon pod running and "
                                      "available (ready for at least spec.minReadySeconds)"),
        _col("Node Selector", description="NodeSelector is a selector which must be true for "
                                          "the pod to fit on a node."),
        _AGE,
        _CONTAINERS,
        _IMAGES,
        _col("Selector", description="A label query over pods that are managed by the daemon "
                                     "set.", priority=1),
    ],
    ("apps", "statefulsets"): [
        _NAME,
        _col("Ready", description="Number of the pod with ready state"),
        _AGE,
        _CONTAINERS,
        _IMAGES,
    ],
    ("apps", "controllerrevisions"): [
        _NAME,
        _col("Controller", description="Controller of the object"),
        _col("Revision", "integer", "Revision indicates the revision of the state represented "
                                     "by Data."),
        _AGE,
    ],
    ("batch", "jobs"): [
        _NAME,
        _col("Status", description="Status of the job."),
        _col("Completions", description="The number of pods which reached phase Succeeded."),
        _col("Duration", description="Time required to complete the job."),
        _AGE,
        _CONTAINERS,
        _IMAGES,
        _col("Selector", description="A label query over pods that should match the pod "
                                     "count.", priority=1),
    ],
    ("batch", "cronjobs"): [
        _NAME,
        _col("Schedule", description="The schedule in Cron format, see "
                                     "https://en.wikipedia.org/wiki/Cron."),
        _col("Timezone", description="The time zone name for the given schedule, see "
                                     "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
        _col("Suspend", "boolean", "This flag tells the controller to suspend subsequent "
                                   "executions, it does not apply to already started "
                                   "executions.  Defaults to false."),
        _col("Active", "integer", "A list of pointers to currently running jobs."),
        _col("Last Schedule", description="Information when was the last time the job was "
                                          "successfully scheduled."),
        _AGE,
        _CONTAINERS,
        _IMAGES,
        _col("Selector", description="A label query over pods that should match the pod "
                                     "count.", priority=1),
    ],
    ("apps", "replicasets"): [
        _NAME,
        _col("Desired", "integer", "Number of desired pods. This is a pointer to distinguish "
                                   "between explicit zero and unspecified."),
        _col("Current", "integer", "Replicas is the most recently observed number of replicas."),
        _col("Ready", "integer", "The number of ready replicas for this replica set."),
        _AGE,
        _CONTAINERS,
        _IMAGES,
        _col("Selector", description="Selector is a label query over pods that should match "
                                     "the replica count.", priority=1),
    ],
    ("networking.k8s.io", "networkpolicies"): [
        _NAME,
        _col("Pod-Selector", description="Selects the pods to which this NetworkPolicy object "
                                         "applies."),
        _AGE,
    ],
    ("rbac.authorization.k8s.io", "rolebindings"): [
        _NAME,
        _col("Role", description="RoleRef can reference a Role in the current namespace or a "
                                 "ClusterRole in the global namespace. If the RoleRef cannot be "
                                 "resolved, the Authorizer must return an error. This field is "
                                 "immutable."),
        _AGE,
        _col("Users", description="Users in the roleBinding", priority=1),
        _col("Groups", description="Groups in the roleBinding", priority=1),
        _col("ServiceAccounts", description="ServiceAccounts in the roleBinding", priority=1),
    ],
    ("rbac.authorization.k8s.io", "clusterrolebindings"): [
        _NAME,
        _col("Role", description="RoleRef can only reference a ClusterRole in the global "
                                 "namespace. If the RoleRef cannot be resolved, the Authorizer "
                                 "must return an error. This field is immutable."),
        _AGE,
        _col("Users", description="Users in the clusterRoleBinding", priority=1),
        _col("Groups", description="Groups in the clusterRoleBinding", priority=1),
        _col("ServiceAccounts", description="ServiceAccounts in the clusterRoleBinding",
             priority=1),
    ],
}

# rest.NewDefaultTableConvertor: any other built-in (CustomResourceDefinitions among them;
# Roles and ClusterRoles too, as upstream: NAME, CREATED AT).
_DEFAULT_COLUMNS = [_NAME, _col("Created At", "date", _AGE_DOC)]

# apiextensions: a CRD version with no additionalPrinterColumns is served with this one.
_CRD_DEFAULT_AGE = PrinterColumn(name="Age", json_path=".metadata.creationTimestamp",
                                 type="date", description=_AGE_DOC)


def _crd_columns(kind: Kind) -> tuple[PrinterColumn, ...]:
    return kind.printer_columns or (_CRD_DEFAULT_AGE,)


def column_definitions(kind: Kind) -> list[Obj]:
    """The Table's columnDefinitions for `kind` (priority 1: shown only with -o wide)."""
    if (kind.group, kind.plural) in _BUILTIN_COLUMNS:
        return [dict(c) for c in _BUILTIN_COLUMNS[(kind.group, kind.plural)]]
    if kind.builtin and not kind.printer_columns:
        return [dict(c) for c in _DEFAULT_COLUMNS]
    cols = [dict(_NAME)]
    for c in _crd_columns(kind):
        desc = c.description or f"Custom resource definition column (in JSONPath format): {c.json_path}"
        cols.append(_col(c.name, c.type, desc, priority=c.priority, format_=c.format))
    return cols


# --- helpers over plain dicts -----------------------------------------------------


def _d(v: Any) -> Obj:
    return v if isinstance(v, dict) else {}


def _l(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _meta(o: Obj) -> Obj:
    return _d(o.get("metadata"))


def _age(o: Obj, now: datetime) -> str:
    return translate_timestamp(_meta(o).get("creationTimestamp"), now)


# --- Pods -------------------------------------------------------------------------


def _restartable_init(c: Obj | None) -> bool:
    return c is not None and c.get("restartPolicy") == "Always"


def _condition_true(conditions: list[Any], type_: str) -> bool:
    return any(_d(c).get("type") == type_ and _d(c).get("status") == "True" for c in conditions)


def _pod_initialized(conditions: list[Any]) -> bool:
    for c in conditions:
        if _d(c).get("type") == "Initialized":
            return bool(_d(c).get("status") == "True")
    return False


def _terminated_reason(term: Obj, prefix: str = "") -> str:
    if term.get("reason"):
        return prefix + str(term["reason"])
    if _int(term.get("signal")):
        return f"{prefix}Signal:{term['signal']}"
    return f"{prefix}ExitCode:{_int(term.get('exitCode'))}"


def _pod_summary(pod: Obj) -> tuple[str, int, int, int, datetime | None]:
    """printPod's core: (status, ready, total, restarts, last restart time)."""
    spec, status = _d(pod.get("spec")), _d(pod.get("status"))
    conditions = _l(status.get("conditions"))
    containers = _l(spec.get("containers"))
    init_specs = {_d(c).get("name"): _d(c) for c in _l(spec.get("initContainers"))}
    total = len(containers) + sum(1 for c in init_specs.values() if _restartable_init(c))
    ready = 0
    restarts = 0
    restartable_restarts = 0
    last_restart: datetime | None = None
    last_restartable_restart: datetime | None = None

    def later(a: datetime | None, cs: Obj) -> datetime | None:
        term = _d(_d(cs.get("lastState")).get("terminated"))
        t = parse_time(term.get("finishedAt")) if term else None
        if t is not None and (a is None or a < t):
            return t
        return a

    phase = str(status.get("phase") or "")
    reason = str(status.get("reason") or "") or phase
    for c in conditions:
        if _d(c).get("type") == "PodScheduled" and _d(c).get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_statuses = _l(status.get("initContainerStatuses"))
    n_init = len(_l(spec.get("initContainers")))
    initializing = False
    for i, raw in enumerate(init_statuses):
        cs = _d(raw)
        restarts += _int(cs.get("restartCount"))
        last_restart = later(last_restart, cs)
        restartable = _restartable_init(init_specs.get(cs.get("name")))
        if restartable:
            restartable_restarts += _int(cs.get("restartCount"))
            last_restartable_restart = later(last_restartable_restart, cs)
        state = _d(cs.get("state"))
        term, waiting = state.get("terminated"), state.get("waiting")
        if isinstance(term, dict) and _int(term.get("exitCode")) == 0:
            continue
        if restartable and cs.get("started") is True:
            if cs.get("ready"):
                ready += 1
            continue
        if isinstance(term, dict):
            reason = _terminated_reason(term, "Init:")
        elif (isinstance(waiting, dict) and waiting.get("reason")
              and waiting.get("reason") != "PodInitializing"):
            reason = f"Init:{waiting['reason']}"
        else:
            reason = f"Init:{i}/{n_init}"
        initializing = True
        break

    if not initializing or _pod_initialized(conditions):
        restarts = restartable_restarts
        last_restart = last_restartable_restart
        has_running = False
        for raw in reversed(_l(status.get("containerStatuses"))):
            cs = _d(raw)
            restarts += _int(cs.get("restartCount"))
            last_restart = later(last_restart, cs)
            state = _d(cs.get("state"))
            term, waiting = state.get("terminated"), state.get("waiting")
            if isinstance(waiting, dict) and waiting.get("reason"):
                reason = str(waiting["reason"])
            elif isinstance(term, dict):
                reason = _terminated_reason(term)
            elif cs.get("ready") and isinstance(state.get("running"), dict):
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(conditions, "Ready") else "NotReady"

    if _meta(pod).get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    return reason, ready, total, restarts, last_restart


def pod_status_reason(pod: Obj) -> str:
    """The STATUS column of `kubectl get pods`: CrashLoopBackOff, Init:0/1, Terminating..."""
    return _pod_summary(pod)[0]


def _pod_row(pod: Obj, now: datetime) -> Row:
    reason, ready, total, restarts, last_restart = _pod_summary(pod)
    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({human_age(last_restart, now)} ago)"
    spec, status = _d(pod.get("spec")), _d(pod.get("status"))
    ips = _l(status.get("podIPs"))
    pod_ip = str(_d(ips[0]).get("ip") or "") if ips else ""
    gates = _l(spec.get("readinessGates"))
    gates_cell = "<none>"
    if gates:
        conditions = _l(status.get("conditions"))
        true_count = 0
        for g in gates:
            for c in conditions:
                if _d(c).get("type") == _d(g).get("conditionType"):
                    true_count += _d(c).get("status") == "True"
                    break
        gates_cell = f"{true_count}/{len(gates)}"
    return [_meta(pod).get("name", ""), f"{ready}/{total}", reason, restarts_cell,
            _age(pod, now), pod_ip or "<none>", spec.get("nodeName") or "<none>",
            status.get("nominatedNodeName") or "<none>", gates_cell]


def _pod_conditions(pod: Obj) -> list[Obj] | None:
    phase = _d(pod.get("status")).get("phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "The pod has completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed",
                 "message": "The pod failed."}]
    return None


# --- the other built-ins ----------------------------------------------------------


def _namespace_row(o: Obj, now: datetime) -> Row:
    phase = _d(o.get("status")).get("phase")
    if not phase:  # upstream's registry always defaults it; be robust to undefaulted input
        phase = "Terminating" if _meta(o).get("deletionTimestamp") else "Active"
    return [_meta(o).get("name", ""), phase, _age(o, now)]


def _node_row(o: Obj, now: datetime) -> Row:
    """kubectl's printNode: Ready/NotReady/Unknown (+ SchedulingDisabled), roles from labels."""
    status = _d(o.get("status"))
    ready = "Unknown"
    for c in _l(status.get("conditions")):
        if _d(c).get("type") == "Ready":
            ready = "Ready" if _d(c).get("status") == "True" else "NotReady"
    if _d(o.get("spec")).get("unschedulable"):
        ready += ",SchedulingDisabled"
    labels = _d(_meta(o).get("labels"))
    roles = sorted({k.partition("/")[2] for k in labels
                    if k.startswith("node-role.kubernetes.io/") and k.partition("/")[2]}
                   | ({str(labels["kubernetes.io/role"])} if labels.get("kubernetes.io/role") else set()))
    addresses = {_d(a).get("type"): _d(a).get("address") for a in _l(status.get("addresses"))}
    info = _d(status.get("nodeInfo"))
    return [_meta(o).get("name", ""), ready, ",".join(roles) or "<none>", _age(o, now),
            info.get("kubeletVersion", ""), addresses.get("InternalIP") or "<none>",
            addresses.get("ExternalIP") or "<none>", info.get("osImage") or "<unknown>",
            info.get("kernelVersion") or "<unknown>", info.get("containerRuntimeVersion") or "<unknown>"]


def _lease_row(o: Obj, now: datetime) -> Row:
    return [_meta(o).get("name", ""), _d(o.get("spec")).get("holderIdentity", ""), _age(o, now)]


def _configmap_row(o: Obj, now: datetime) -> Row:
    n = len(_d(o.get("data"))) + len(_d(o.get("binaryData")))
    return [_meta(o).get("name", ""), n, _age(o, now)]


def _secret_row(o: Obj, now: datetime) -> Row:
    return [_meta(o).get("name", ""), str(o.get("type") or "Opaque"), len(_d(o.get("data"))),
            _age(o, now)]


def _serviceaccount_row(o: Obj, now: datetime) -> Row:
    return [_meta(o).get("name", ""), len(_l(o.get("secrets"))), _age(o, now)]


def _lb_ingress(svc: Obj) -> list[str]:
    out: set[str] = set()
    lb = _d(_d(svc.get("status")).get("loadBalancer"))
    for ing in _l(lb.get("ingress")):
        ing = _d(ing)
        if ing.get("ip"):
            out.add(str(ing["ip"]))
        elif ing.get("hostname"):
            out.add(str(ing["hostname"]))
    return sorted(out)


def _service_external_ip(svc: Obj, svc_type: str) -> str:
    spec = _d(svc.get("spec"))
    external = [str(x) for x in _l(spec.get("externalIPs"))]
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if svc_type == "LoadBalancer":
        lb = _lb_ingress(svc)  # server-side printing is always "wide": never clipped
        if external:
            return ",".join(lb + external)
        return ",".join(lb) if lb else "<pending>"
    if svc_type == "ExternalName":
        return str(spec.get("externalName") or "")
    return "<unknown>"


def _service_row(o: Obj, now: datetime) -> Row:
    spec = _d(o.get("spec"))
    svc_type = str(spec.get("type") or "ClusterIP")
    ips = _l(spec.get("clusterIPs"))
    cluster_ip = str(ips[0]) if ips else str(spec.get("clusterIP") or "") or "<none>"
    pieces = []
    for p in _l(spec.get("ports")):
        p = _d(p)
        proto = p.get("protocol") or "TCP"
        if _int(p.get("nodePort")) > 0:
            pieces.append(f"{p.get('port')}:{p['nodePort']}/{proto}")
        else:
            pieces.append(f"{p.get('port')}/{proto}")
    return [_meta(o).get("name", ""), svc_type, cluster_ip, _service_external_ip(o, svc_type),
            ",".join(pieces) or "<none>", _age(o, now), format_labels(spec.get("selector"))]


def _with_more(items: list[str], count: int, most: int = 3) -> str:
    """listWithMoreString: the first `most`, then "+ N more..."; "<unset>" when empty."""
    text = ",".join(items[:most])
    if count > most:
        return f"{text} + {count - most} more..."
    return text or "<unset>"


def _endpoints_row(o: Obj, now: datetime) -> Row:
    """printEndpoints: formatEndpoints, ip:port for each port of each subset (3 at most)."""
    subsets = _l(o.get("subsets"))
    if not subsets:
        cell = "<none>"
    else:
        shown: list[str] = []
        count = 0
        for ss in subsets:
            ss = _d(ss)
            addrs = [str(_d(a).get("ip", "")) for a in _l(ss.get("addresses"))]
            ports = _l(ss.get("ports"))
            for port in ports or [None]:
                count += len(addrs)
                for ip in addrs:
                    if len(shown) < 3:
                        num = _d(port).get("port") if port is not None else None
                        if num is None:
                            shown.append(ip)
                        else:
                            shown.append(f"[{ip}]:{num}" if ":" in ip else f"{ip}:{num}")
        cell = ",".join(shown) + (f" + {count - 3} more..." if count > 3 else "")
    return [_meta(o).get("name", ""), cell, _age(o, now)]


def _endpointslice_row(o: Obj, now: datetime) -> Row:
    """printEndpointSlice: formatDiscoveryPorts and formatDiscoveryEndpoints."""
    ports: list[str] = []
    for p in _l(o.get("ports")):
        p = _d(p)
        ports.append(str(p["port"]) if p.get("port") is not None
                     else str(p["name"]) if p.get("name") is not None else "*")
    addrs = [str(a) for e in _l(o.get("endpoints")) for a in _l(_d(e).get("addresses"))]
    return [_meta(o).get("name", ""), str(o.get("addressType") or ""),
            _with_more(ports, len(ports)), _with_more(addrs, len(addrs)), _age(o, now)]


def _deployment_row(o: Obj, now: datetime) -> Row:
    spec, status = _d(o.get("spec")), _d(o.get("status"))
    replicas = spec.get("replicas")
    desired = replicas if isinstance(replicas, int) else 1
    containers = [_d(c) for c in _l(_d(_d(spec.get("template")).get("spec")).get("containers"))]
    return [
        _meta(o).get("name", ""),
        f"{_int(status.get('readyReplicas'))}/{desired}",
        _int(status.get("updatedReplicas")),
        _int(status.get("availableReplicas")),
        _age(o, now),
        ",".join(str(c.get("name") or "") for c in containers),
        ",".join(str(c.get("image") or "") for c in containers),
        _selector_string(spec.get("selector")),
    ]


def _template_containers(template: Any) -> tuple[str, str]:
    """layoutContainerCells: container names and images, comma-joined."""
    containers = [_d(c) for c in _l(_d(_d(template).get("spec")).get("containers"))]
    return (",".join(str(c.get("name") or "") for c in containers),
            ",".join(str(c.get("image") or "") for c in containers))


def _daemonset_row(o: Obj, now: datetime) -> Row:
    spec, status = _d(o.get("spec")), _d(o.get("status"))
    tmpl = _d(spec.get("template"))
    names, images = _template_containers(tmpl)
    return [_meta(o).get("name", ""), _int(status.get("desiredNumberScheduled")),
            _int(status.get("currentNumberScheduled")), _int(status.get("numberReady")),
            _int(status.get("updatedNumberScheduled")), _int(status.get("numberAvailable")),
            format_labels(_d(tmpl.get("spec")).get("nodeSelector")), _age(o, now),
            names, images, format_label_selector(spec.get("selector"))]


def _statefulset_row(o: Obj, now: datetime) -> Row:
    spec, status = _d(o.get("spec")), _d(o.get("status"))
    replicas = spec.get("replicas")
    names, images = _template_containers(spec.get("template"))
    return [_meta(o).get("name", ""),
            f"{_int(status.get('readyReplicas'))}/{replicas if isinstance(replicas, int) else 1}",
            _age(o, now), names, images]


def _controllerrevision_row(o: Obj, now: datetime) -> Row:
    """printControllerRevision: the controller as `kind.group/name` (formatResourceName)."""
    controller = "<none>"
    for ref in _l(_meta(o).get("ownerReferences")):
        ref = _d(ref)
        if ref.get("controller"):
            group = str(ref.get("apiVersion", "")).rpartition("/")[0]
            kind = str(ref.get("kind", "")) + (f".{group}" if group else "")
            controller = f"{kind.lower()}/{ref.get('name', '')}"
            break
    return [_meta(o).get("name", ""), controller, _int(o.get("revision")), _age(o, now)]


def _condition_true_of(status: Obj, type_: str) -> bool:
    return any(_d(c).get("type") == type_ and _d(c).get("status") == "True"
               for c in _l(status.get("conditions")))


def _job_row(o: Obj, now: datetime) -> Row:
    """printJob (v1.32): status from the conditions, completions, duration."""
    spec, status = _d(o.get("spec")), _d(o.get("status"))
    if _condition_true_of(status, "Complete"):
        state = "Complete"
    elif _condition_true_of(status, "Failed"):
        state = "Failed"
    elif _meta(o).get("deletionTimestamp"):
        state = "Terminating"
    elif _condition_true_of(status, "Suspended"):
        state = "Suspended"
    elif _condition_true_of(status, "FailureTarget"):
        state = "FailureTarget"
    elif _condition_true_of(status, "SuccessCriteriaMet"):
        state = "SuccessCriteriaMet"
    else:
        state = "Running"
    succeeded = _int(status.get("succeeded"))
    completions, parallelism = spec.get("completions"), spec.get("parallelism")
    if isinstance(completions, int):
        done = f"{succeeded}/{completions}"
    elif isinstance(parallelism, int) and parallelism > 1:
        done = f"{succeeded}/1 of {parallelism}"
    else:
        done = f"{succeeded}/1"
    start, end = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    duration = "" if start is None else human_duration((end or now) - start)
    names, images = _template_containers(spec.get("template"))
    return [_meta(o).get("name", ""), state, done, duration, _age(o, now), names, images,
            format_label_selector(spec.get("selector"))]


def _cronjob_row(o: Obj, now: datetime) -> Row:
    spec, status = _d(o.get("spec")), _d(o.get("status"))
    last = status.get("lastScheduleTime")
    suspend = spec.get("suspend")
    job_spec = _d(_d(spec.get("jobTemplate")).get("spec"))
    names, images = _template_containers(job_spec.get("template"))
    return [_meta(o).get("name", ""), spec.get("schedule", ""), spec.get("timeZone") or "<none>",
            "<unset>" if not isinstance(suspend, bool) else ("True" if suspend else "False"),
            len(_l(status.get("active"))),
            "<none>" if not last else translate_timestamp(last, now), _age(o, now),
            names, images, format_label_selector(job_spec.get("selector"))]


def _replicaset_row(o: Obj, now: datetime) -> Row:
    spec, status = _d(o.get("spec")), _d(o.get("status"))
    containers = _l(_d(_d(spec.get("template")).get("spec")).get("containers"))
    return [_meta(o).get("name", ""), _int(spec.get("replicas", 1)), _int(status.get("replicas")),
            _int(status.get("readyReplicas")), _age(o, now),
            ",".join(str(_d(c).get("name", "")) for c in containers),
            ",".join(str(_d(c).get("image", "")) for c in containers),
            _selector_string(spec.get("selector"))]


def _networkpolicy_row(o: Obj, now: datetime) -> Row:
    return [_meta(o).get("name", ""),
            format_label_selector(_d(o.get("spec")).get("podSelector")), _age(o, now)]


def _event_row(o: Obj, now: datetime) -> Row:
    first = translate_timestamp(o.get("firstTimestamp"), now)
    if parse_time(o.get("firstTimestamp")) is None:
        first = translate_timestamp(o.get("eventTime"), now)
    last = translate_timestamp(o.get("lastTimestamp"), now)
    if parse_time(o.get("lastTimestamp")) is None:
        last = first
    count = _int(o.get("count"))
    series = o.get("series")
    if isinstance(series, dict):
        last = translate_timestamp(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
    elif count == 0:
        count = 1  # singleton events of the new API carry no count
    inv = _d(o.get("involvedObject"))
    target = str(inv.get("kind") or "").lower()
    if inv.get("name"):
        target = f"{target}/{inv['name']}"
    src = _d(o.get("source"))
    component = src.get("component") or o.get("reportingComponent") or ""
    instance = src.get("host") or o.get("reportingInstance") or ""
    source = f"{component}, {instance}" if instance else str(component)
    return [last, o.get("type", ""), o.get("reason", ""), target, inv.get("fieldPath", ""),
            source, str(o.get("message") or "").strip(), first, count,
            _meta(o).get("name", "")]


def _rolebinding_row(o: Obj, now: datetime) -> Row:
    """printRoleBinding: Kind/name of the role; subjects as rbac.SubjectsStrings splits them."""
    ref = _d(o.get("roleRef"))
    users: list[str] = []
    groups: list[str] = []
    sas: list[str] = []
    for s in _l(o.get("subjects")):
        s = _d(s)
        if s.get("kind") == "ServiceAccount":
            sas.append(f"{s.get('namespace', '')}/{s.get('name', '')}")
        elif s.get("kind") == "User":
            users.append(str(s.get("name", "")))
        elif s.get("kind") == "Group":
            groups.append(str(s.get("name", "")))
    return [_meta(o).get("name", ""), f"{ref.get('kind', '')}/{ref.get('name', '')}",
            _age(o, now), ", ".join(users), ", ".join(groups), ", ".join(sas)]


_BUILTIN_ROWS: dict[tuple[str, str], Callable[[Obj, datetime], Row]] = {
    ("rbac.authorization.k8s.io", "rolebindings"): _rolebinding_row,
    ("rbac.authorization.k8s.io", "clusterrolebindings"): _rolebinding_row,
    ("", "pods"): _pod_row,
    ("", "namespaces"): _namespace_row,
    ("", "nodes"): _node_row,
    ("coordination.k8s.io", "leases"): _lease_row,
    ("", "configmaps"): _configmap_row,
    ("", "secrets"): _secret_row,
    ("", "serviceaccounts"): _serviceaccount_row,
    ("", "services"): _service_row,
    ("", "endpoints"): _endpoints_row,
    ("discovery.k8s.io", "endpointslices"): _endpointslice_row,
    ("", "events"): _event_row,
    ("apps", "deployments"): _deployment_row,
    ("apps", "replicasets"): _replicaset_row,
    ("networking.k8s.io", "networkpolicies"): _networkpolicy_row,
    ("apps", "daemonsets"): _daemonset_row,
    ("apps", "statefulsets"): _statefulset_row,
    ("apps", "controllerrevisions"): _controllerrevision_row,
    ("batch", "jobs"): _job_row,
    ("batch", "cronjobs"): _cronjob_row,
}


def _default_row(o: Obj, now: datetime) -> Row:
    t = parse_time(_meta(o).get("creationTimestamp"))
    created = t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t else "0001-01-01T00:00:00Z"
    return [_meta(o).get("name", ""), created]


# --- CRD columns (apiextensions tableconvertor) ---------------------------------


def _go_float(f: float) -> str:
    """fmt.Sprint(float64): shortest form, no trailing ".0", exponent from 1e21."""
    if f.is_integer() and abs(f) < 1e21:
        return str(int(f))
    return repr(f)


def _jsonpath_text(value: Any) -> str:
    """jsonpath PrintResults for one value: maps and lists as compact JSON, scalars as text."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    return str(value)


def _crd_cell(col_type: str, value: Any, now: datetime) -> Any:
    """cellForJSONValue, plus the string path of ConvertToTable."""
    if value is None:
        return None
    if col_type == "string":
        return _jsonpath_text(value)
    if col_type == "integer":
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return int(value)
        return None
    if col_type == "number":
        if isinstance(value, bool):
            return None
        return float(value) if isinstance(value, (int, float)) else None
    if col_type == "boolean":
        return value if isinstance(value, bool) else None
    if col_type == "date":
        if not isinstance(value, str):
            return None
        t = parse_time(value)
        return "<invalid>" if t is None else human_age(t, now)
    return None


def _crd_row(kind: Kind, o: Obj, now: datetime) -> Row:
    from skiff.core.jsonpath import column_value  # lazily: a sibling module, optional at import

    cells: Row = [_meta(o).get("name", "")]
    for c in _crd_columns(kind):
        try:
            value = column_value(c.json_path, o)
        except Exception:  # a broken path gives an empty cell upstream, never a failed list
            value = None
        cells.append(_crd_cell(c.type, value, now))
    return cells


# --- the Table ------------------------------------------------------------------------


def row_cells(kind: Kind, obj: Obj, now: datetime) -> Row:
    """One row's cells, in column_definitions(kind) order."""
    key = (kind.group, kind.plural)
    if key in _BUILTIN_ROWS:
        return _BUILTIN_ROWS[key](obj, now)
    if kind.builtin and not kind.printer_columns:
        return _default_row(obj, now)
    return _crd_row(kind, obj, now)


def _row_object(kind: Kind, obj: Obj, include_object: str) -> Obj | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": _meta(obj)}


def table(kind: Kind, objects: list[Obj], now: datetime, include_object: str = "Metadata", *,
          resource_version: str | None = None, no_headers: bool = False) -> Obj:
    """A meta.k8s.io/v1 Table of `objects` (all of `kind`), as kube-apiserver would answer.

    include_object is the request's includeObject: "Metadata" (the default: each
    row carries a PartialObjectMetadata), "Object" (the whole object) or "None".
    no_headers leaves columnDefinitions empty (watch events after the first).
    """
    rows: list[Obj] = []
    for o in objects:
        row: Obj = {"cells": row_cells(kind, o, now)}
        conditions = _pod_conditions(o) if (kind.group, kind.plural) == ("", "pods") else None
        if conditions:
            row["conditions"] = conditions
        ro = _row_object(kind, o, include_object)
        if ro is not None:
            row["object"] = ro
        rows.append(row)
    metadata: Obj = {}
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": [] if no_headers else column_definitions(kind),
        "rows": rows,
    }
