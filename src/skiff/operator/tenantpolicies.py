"""Tenant isolation policies: what the knative-istio-authz Helm chart (1.31.0) renders, as data.

The Serverless guide (2.3 step 4) onboards a tenant with
`helm template openshift-helm-charts/redhat-knative-istio-authz --version 1.31.0
--set name=N --set namespaces={...}`. tenant_policies() makes the same
AuthorizationPolicy objects in the same order (`helm template` sorts the
chart's templates by file name and keeps each file's document order):

1. common-allow-knative-to-ns, per tenant namespace: `allow-from-knative-and-istio`,
   from the tenant's namespaces + knative-serving + the Istio namespace
   (serving), or from knative-eventing when the Kn-Namespace header names
   one of the tenant's namespaces (eventing);
2. common-allow-via-knative-serving, per serving receiver (the activator), in
   knative-serving: `allow-N-to-activator`, hosts `*.ns`, `*.ns.svc`,
   `*.ns.svc.<cluster domain>` from the tenant (serving) or from the eventing
   senders with Kn-Namespace (eventing). The chart renders it even with
   serving disabled;
3. eventing-allow-ns-to-kafka-broker-reply: `allow-N-kafka-broker-reply`;
4. eventing-allow-ns-to-mt-channel-based-broker-reply: `allow-N-mt-channel-based-broker-reply`;
5. eventing-allow-to-knative-eventing-receiver, per eventing receiver:
   `allow-N-to-{imc,ekb,ekc,eks,broker-ingress}` (paths `/ns/*` or hosts from
   the tenant; hosts or paths from the senders with Kn-Namespace);
6. serving-allow-wait-for-drain, per tenant namespace: `allow-wait-for-drain`
   (port 8022, the queue-proxy's pre-stop drain).
Principals keep the chart's fixed trust domain `cluster.local`; only hosts
use the cluster domain, as the chart does. Inputs the chart would render
into broken or deny-all policies (no name, no namespaces, invalid or
duplicate namespace names, serving and eventing both off) are refused with
a TenantPolicyError.

Pure. Neighbours: cli/authz.py (`skiff mesh tenant-policies` prints to_yaml()),
mesh/authz/validate.py (every object here passes it; tests check),
tests/golden/tenant-policies/ (the rendered output for the guide's tenants).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import yaml

from skiff.core.validation import dns1123_label, dns1123_subdomain

__all__ = [
    "CHART", "CHART_VERSION", "EVENTING_RECEIVERS", "EVENTING_SENDERS", "SERVING_RECEIVERS",
    "TenantPolicyError", "tenant_policies", "to_yaml",
]

CHART = "redhat-knative-istio-authz"
CHART_VERSION = "1.31.0"
API_VERSION = "security.istio.io/v1beta1"
KIND = "AuthorizationPolicy"
SERVING_NS = "knative-serving"
EVENTING_NS = "knative-eventing"
KN_NAMESPACE_HEADER = "request.headers[Kn-Namespace]"
COMPONENT_LABEL = "app.kubernetes.io/component"
DRAIN_PORT = "8022"
PRINCIPAL_TRUST_DOMAIN = "cluster.local"   # fixed in the chart, not cluster.domain

# values.yaml of the chart: (component label, short name used in policy names)
SERVING_RECEIVERS: tuple[tuple[str, str], ...] = (("activator", "activator"),)
EVENTING_RECEIVERS: tuple[tuple[str, str], ...] = (
    ("imc-dispatcher", "imc"),
    ("kafka-broker-receiver", "ekb"),
    ("kafka-channel-receiver", "ekc"),
    ("kafka-sink-receiver", "eks"),
    ("broker-ingress", "broker-ingress"),
)
EVENTING_SENDERS: tuple[str, ...] = (
    "pingsource-mt-adapter",
    "imc-dispatcher",
    "mt-broker-filter",
    "knative-kafka-source-data-plane",
    "knative-kafka-broker-data-plane",
    "knative-kafka-channel-data-plane",
)
KAFKA_BROKER_REPLY_SENDERS = ("knative-kafka-broker-data-plane",)
MT_BROKER_REPLY_SENDERS = ("imc-dispatcher", "mt-broker-filter", "knative-kafka-channel-data-plane")

Obj = dict[str, Any]


class TenantPolicyError(ValueError):
    """Input the chart would render into policies that are invalid or deny everything."""


def _eventing_principal(sa: str) -> str:
    return f"{PRINCIPAL_TRUST_DOMAIN}/ns/{EVENTING_NS}/sa/{sa}"


def _policy(name: str, namespace: str, rules: list[Obj] | None,
            component: str | None = None) -> Obj:
    spec: Obj = {"action": "ALLOW"}
    if component is not None:
        spec["selector"] = {"matchLabels": {COMPONENT_LABEL: component}}
    spec["rules"] = rules
    return {"apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _validate(name: str, namespaces: Sequence[str], serving: bool, eventing: bool,
              istio_namespace: str, cluster_domain: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise TenantPolicyError("tenant name must not be empty")
    # The name becomes part of policy names: allow-<name>-mt-channel-based-broker-reply.
    longest = f"allow-{name}-mt-channel-based-broker-reply"
    if (problem := dns1123_subdomain(name)) is not None or dns1123_subdomain(longest):
        raise TenantPolicyError(f"tenant name {name!r} is not usable in policy names: "
                                f"{problem or 'allow-' + name + '-... must be no more than 253 characters'}")
    if isinstance(namespaces, str):
        raise TenantPolicyError("namespaces must be a list of names, not one string")
    if not namespaces:
        raise TenantPolicyError(f"tenant {name} needs at least one namespace")
    seen: set[str] = set()
    for ns in namespaces:
        if not isinstance(ns, str):
            raise TenantPolicyError(f"namespace {ns!r} is not a string")
        if (problem := dns1123_label(ns)) is not None:
            raise TenantPolicyError(f"namespace {ns!r} is not a valid namespace name: {problem}")
        if ns in seen:
            raise TenantPolicyError(f"namespace {ns} is listed twice")
        seen.add(ns)
        if ns in (SERVING_NS, EVENTING_NS, istio_namespace):
            raise TenantPolicyError(f"namespace {ns} is a system namespace, not a tenant's")
    if (problem := dns1123_label(istio_namespace)) is not None:
        raise TenantPolicyError(f"istio namespace {istio_namespace!r} is not valid: {problem}")
    if (problem := dns1123_subdomain(cluster_domain)) is not None:
        raise TenantPolicyError(f"cluster domain {cluster_domain!r} is not valid: {problem}")
    if not serving and not eventing:
        raise TenantPolicyError(
            "serving and eventing are both disabled: the chart would render "
            "allow-from-knative-and-istio and the activator policy without rules, which deny "
            "all traffic to them")


def tenant_policies(name: str, namespaces: Sequence[str], serving: bool = True,
                    eventing: bool = True, istio_namespace: str = "istio-system",
                    cluster_domain: str = "cluster.local") -> list[Obj]:
    """The chart's AuthorizationPolicies for tenant `name` owning `namespaces`, in
    `helm template` order. Raises TenantPolicyError on bad input."""
    _validate(name, namespaces, serving, eventing, istio_namespace, cluster_domain)
    tenant = list(namespaces)
    hosts = [h for ns in tenant for h in (f"*.{ns}", f"*.{ns}.svc", f"*.{ns}.svc.{cluster_domain}")]
    paths = [f"/{ns}/*" for ns in tenant]
    kn_namespace = [{"key": KN_NAMESPACE_HEADER, "values": list(tenant)}]
    senders = [_eventing_principal(sa) for sa in EVENTING_SENDERS]

    def from_senders(principals: Iterable[str]) -> list[Obj]:
        return [{"source": {"namespaces": [EVENTING_NS], "principals": list(principals)}}]

    out: list[Obj] = []
    # 1. common-allow-knative-to-ns.yaml
    for ns in tenant:
        rules: list[Obj] = []
        if serving:
            rules.append({"from": [{"source": {
                "namespaces": [*tenant, SERVING_NS, istio_namespace]}}]})
        if eventing:
            rules.append({"from": [{"source": {"namespaces": [EVENTING_NS]}}],
                          "when": _copy(kn_namespace)})
        out.append(_policy("allow-from-knative-and-istio", ns, rules))
    # 2. common-allow-via-knative-serving.yaml (rendered whether serving is on or not)
    for component, short in SERVING_RECEIVERS:
        rules = []
        if serving:
            rules.append({"from": [{"source": {"namespaces": list(tenant)}}],
                          "to": [{"operation": {"hosts": list(hosts)}}]})
        if eventing:
            rules.append({"from": from_senders(senders),
                          "to": [{"operation": {"hosts": list(hosts)}}],
                          "when": _copy(kn_namespace)})
        out.append(_policy(f"allow-{name}-to-{short}", SERVING_NS, rules, component))
    if eventing:
        # 3. eventing-allow-ns-to-kafka-broker-reply.yaml
        out.append(_policy(f"allow-{name}-kafka-broker-reply", EVENTING_NS, [{
            "from": from_senders(_eventing_principal(sa) for sa in KAFKA_BROKER_REPLY_SENDERS),
            "to": [{"operation": {"paths": list(paths)}}],
            "when": _copy(kn_namespace)}], "kafka-broker-receiver"))
        # 4. eventing-allow-ns-to-mt-channel-based-broker-reply.yaml
        out.append(_policy(f"allow-{name}-mt-channel-based-broker-reply", EVENTING_NS, [{
            "from": from_senders(_eventing_principal(sa) for sa in MT_BROKER_REPLY_SENDERS),
            "to": [{"operation": {"paths": list(paths)}}],
            "when": _copy(kn_namespace)}], "broker-ingress"))
        # 5. eventing-allow-to-knative-eventing-receiver.yaml
        for component, short in EVENTING_RECEIVERS:
            out.append(_policy(f"allow-{name}-to-{short}", EVENTING_NS, [
                {"from": [{"source": {"namespaces": list(tenant)}}],
                 "to": [{"operation": {"paths": list(paths)}},
                        {"operation": {"hosts": list(hosts)}}]},
                {"from": from_senders(senders),
                 "to": [{"operation": {"hosts": list(hosts)}}],
                 "when": _copy(kn_namespace)},
                {"from": from_senders(senders),
                 "to": [{"operation": {"paths": list(paths)}}],
                 "when": _copy(kn_namespace)},
            ], component))
    if serving:
        # 6. serving-allow-wait-for-drain.yaml
        for ns in tenant:
            out.append(_policy("allow-wait-for-drain", ns,
                               [{"to": [{"operation": {"ports": [DRAIN_PORT]}}]}]))
    return out


def _copy(when: list[Obj]) -> list[Obj]:
    # Fresh lists per object: PyYAML would otherwise print shared lists as anchors/aliases.
    return [{"key": w["key"], "values": list(w["values"])} for w in when]


class _Dumper(yaml.SafeDumper):
    """Block style, lists indented under their key (as the chart writes them), no aliases."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(objs: Iterable[Obj]) -> str:
    """The objects as one YAML stream, each document opened by `---` (as `helm template`)."""
    parts = []
    for o in objs:
        parts.append("---\n" + yaml.dump(o, Dumper=_Dumper, sort_keys=False,
                                         default_flow_style=False, width=1000))
    return "".join(parts)
