"""Knative Serving's configuration, with the KnativeServing CR as its single source. Pure.

Upstream, each config map in knative-serving (config/core/configmaps/*.yaml
of release-1.10: config-network, config-domain, config-autoscaler, ...)
holds key/value strings, and the operator's KnativeServing `spec.config`
overrides them by config-map name. OpenShift Serverless (the serverless
operator's KnativeServing extension) changes some defaults in memory, never
in the CR: the domain template `{{.Name}}-{{.Namespace}}.{{.Domain}}`, the
external scheme https, Kourier as the ingress unless spec.ingress.istio is
enabled, the cluster's apps domain as the default domain, and Prometheus
metrics.

This module holds the known keys and defaults as data (CONFIG_MAPS),
checks a KnativeServing's spec.config (validate_spec_config: an unknown
key is an error that names spec.config.<cm>.<key>), and computes the
ServingConfig every serving reconciler and the admission webhook use
(effective_config). Without a KnativeServing the defaults hold, so a
developer can run services at once; once one exists, its config rules.

Neighbours: operator/serving.py (the KnativeServing reconciler, which
publishes the current config through a ConfigHolder), webhook.py (defaults
and limits), domains.py (templates), the route and revision reconcilers.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from skiff.core.client import Obj
from skiff.core.validation import Cause, dns1123_subdomain
from skiff.serving import domains
from skiff.serving.names import ISTIO_INGRESS_CLASS, KOURIER_INGRESS_CLASS

KNATIVE_SERVING_NAMESPACE = "knative-serving"
EXAMPLE_KEY = "_example"

# Upstream defaults, per config map (release-1.10 config/core/configmaps and
# knative.dev/networking config/config-network.yaml). "" means "unset".
CONFIG_MAPS: dict[str, dict[str, str]] = {
    "network": {
        "ingress-class": ISTIO_INGRESS_CLASS,
        "certificate-class": "cert-manager.certificate.networking.knative.dev",
        "namespace-wildcard-cert-selector": "",
        "domain-template": "{{.Name}}.{{.Namespace}}.{{.Domain}}",
        "tag-template": "{{.Tag}}-{{.Name}}",
        "auto-tls": "Disabled",
        "http-protocol": "Enabled",
        "rollout-duration": "0",
        "autocreate-cluster-domain-claims": "false",
        "enable-mesh-pod-addressability": "false",
        "mesh-compatibility-mode": "auto",
        "default-external-scheme": "http",
        "internal-encryption": "false",
        "activator-ca": "",
        "activator-san": "",
    },
    "domain": {},   # keys are domain names; values select routes by label (see below)
    "autoscaler": {
        "container-concurrency-target-percentage": "70",
        "container-concurrency-target-default": "100",
        "requests-per-second-target-default": "200",
        "target-burst-capacity": "211",
        "stable-window": "60s",
        "panic-window-percentage": "10.0",
        "panic-threshold-percentage": "200.0",
        "max-scale-up-rate": "1000.0",
        "max-scale-down-rate": "2.0",
        "enable-scale-to-zero": "true",
        "scale-to-zero-grace-period": "30s",
        "scale-to-zero-pod-retention-period": "0s",
        "pod-autoscaler-class": "kpa.autoscaling.knative.dev",
        "activator-capacity": "100.0",
        "initial-scale": "1",
        "allow-zero-initial-scale": "false",
        "min-scale": "0",
        "max-scale": "0",
        "scale-down-delay": "0s",
        "max-scale-limit": "0",
    },
    "defaults": {
        "revision-timeout-seconds": "300",
        "max-revision-timeout-seconds": "600",
        "revision-response-start-timeout-seconds": "",
        "revision-idle-timeout-seconds": "0",
        "revision-cpu-request": "",
        "revision-memory-request": "",
        "revision-ephemeral-storage-request": "",
        "revision-cpu-limit": "",
        "revision-memory-limit": "",
        "revision-ephemeral-storage-limit": "",
        "container-name-template": "user-container",
        "init-container-name-template": "init-container",
        "container-concurrency": "0",
        "container-concurrency-max-limit": "1000",
        "allow-container-concurrency-zero": "true",
        "enable-service-links": "false",
    },
    "features": {
        "multi-container": "enabled",
        "kubernetes.podspec-affinity": "disabled",
        "kubernetes.podspec-topologyspreadconstraints": "disabled",
        "kubernetes.podspec-hostaliases": "disabled",
        "kubernetes.podspec-fieldref": "disabled",
        "kubernetes.podspec-nodeselector": "disabled",
        "kubernetes.podspec-runtimeclassname": "disabled",
        "kubernetes.podspec-securitycontext": "disabled",
        "kubernetes.podspec-priorityclassname": "disabled",
        "kubernetes.podspec-schedulername": "disabled",
        "kubernetes.containerspec-addcapabilities": "disabled",
        "kubernetes.podspec-tolerations": "disabled",
        "kubernetes.podspec-volumes-emptydir": "enabled",
        "kubernetes.podspec-persistent-volume-claim": "disabled",
        "kubernetes.podspec-persistent-volume-write": "disabled",
        "kubernetes.podspec-init-containers": "disabled",
        "kubernetes.podspec-dnspolicy": "disabled",
        "kubernetes.podspec-dnsconfig": "disabled",
        "kubernetes.podspec-shareprocessnamespace": "disabled",
        "kubernetes.podspec-dryrun": "allowed",
        "tag-header-based-routing": "disabled",
        "autodetect-http2": "disabled",
        "queueproxy.mount-podinfo": "disabled",
        "queueproxy.resource-defaults": "disabled",
        "secure-pod-defaults": "disabled",
    },
    "deployment": {
        "queue-sidecar-image": "gcr.io/knative-releases/knative.dev/serving/cmd/queue",
        "progress-deadline": "600s",
        "registries-skipping-tag-resolving": "kind.local,ko.local,dev.local",
        "digest-resolution-timeout": "10s",
        "queue-sidecar-cpu-request": "25m",
        "queue-sidecar-cpu-limit": "1000m",
        "queue-sidecar-memory-request": "400Mi",
        "queue-sidecar-memory-limit": "800Mi",
        "queue-sidecar-ephemeral-storage-request": "512Mi",
        "queue-sidecar-ephemeral-storage-limit": "1024Mi",
        "queue-sidecar-token-audiences": "",
        "queue-sidecar-rootca": "",
        "concurrency-state-endpoint": "",
        "concurrency-state-token-path": "",
    },
    "gc": {
        "retain-since-create-time": "48h",
        "retain-since-last-active-time": "15h",
        "min-non-active-revisions": "20",
        "max-non-active-revisions": "1000",
    },
    "leader-election": {
        "lease-duration": "60s",
        "renew-deadline": "40s",
        "retry-period": "10s",
        "buckets": "1",
    },
    "logging": {
        "zap-logger-config": "",
        "loglevel.controller": "info",
        "loglevel.autoscaler": "info",
        "loglevel.queueproxy": "info",
        "loglevel.webhook": "info",
        "loglevel.activator": "info",
        "loglevel.hpaautoscaler": "info",
        "loglevel.net-istio-controller": "info",
        "loglevel.net-kourier-controller": "info",
        "loglevel.domainmapping": "info",
        "loglevel.domainmapping-webhook": "info",
    },
    "observability": {
        "logging.enable-var-log-collection": "false",
        "logging.revision-url-template": "",
        "logging.request-log-template": "",
        "logging.enable-request-log": "false",
        "logging.enable-probe-request-log": "false",
        "metrics.backend-destination": "prometheus",
        "metrics.reporting-period-seconds": "",
        "metrics.request-metrics-backend-destination": "prometheus",
        "metrics.request-metrics-reporting-period-seconds": "",
        "metrics.opencensus-address": "",
        "profiling.enable": "false",
    },
    "tracing": {
        "backend": "none",
        "zipkin-endpoint": "http://zipkin.istio-system.svc.cluster.local:9411/api/v2/spans",
        "debug": "false",
        "sample-rate": "0.1",
    },
    "istio": {
        "gateway.knative-serving.knative-ingress-gateway":
            "istio-ingressgateway.istio-system.svc.cluster.local",
        "local-gateway.knative-serving.knative-local-gateway":
            "knative-local-gateway.istio-system.svc.cluster.local",
        "enable-virtualservice-status": "false",
    },
    "certmanager": {
        "issuerRef": "",
        "clusterLocalIssuerRef": "",
        "systemInternalIssuerRef": "",
    },
    "kourier": {
        "enable-service-access-logging": "true",
        "enable-proxy-protocol": "false",
        "cluster-cert-secret": "",
        "stream-idle-timeout": "0s",
        "tracing-collector-full-endpoint": "",
    },
}

# Key families whose names carry data (a gateway per key, a log level per component).
KEY_PREFIXES: dict[str, tuple[str, ...]] = {
    "istio": ("gateway.", "local-gateway."),
    "logging": ("loglevel.",),
}

# Older spellings upstream still reads (networking's config parser asks for both).
ALIASES: dict[str, dict[str, str]] = {
    "network": {
        "ingress.class": "ingress-class",
        "certificate.class": "certificate-class",
        "domainTemplate": "domain-template",
        "tagTemplate": "tag-template",
        "autoTLS": "auto-tls",
        "httpProtocol": "http-protocol",
        "autocreateClusterDomainClaims": "autocreate-cluster-domain-claims",
        "defaultExternalScheme": "default-external-scheme",
    },
}

# What OpenShift Serverless sets unless spec.config says otherwise.
OPENSHIFT_DEFAULTS: dict[str, dict[str, str]] = {
    "network": {
        "domain-template": "{{.Name}}-{{.Namespace}}.{{.Domain}}",
        "default-external-scheme": "https",
        "ingress-class": KOURIER_INGRESS_CLASS,
    },
    "observability": {"metrics.backend-destination": "prometheus"},
}

_ENUMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("network", "default-external-scheme"): ("http", "https"),
    ("network", "http-protocol"): ("Enabled", "Redirected", "Disabled"),
    ("network", "auto-tls"): ("Enabled", "Disabled"),
    ("network", "mesh-compatibility-mode"): ("auto", "enabled", "disabled"),
}
_INTS: dict[str, tuple[str, ...]] = {
    "defaults": ("revision-timeout-seconds", "max-revision-timeout-seconds",
                 "revision-response-start-timeout-seconds", "revision-idle-timeout-seconds",
                 "container-concurrency", "container-concurrency-max-limit"),
    "autoscaler": ("initial-scale", "min-scale", "max-scale", "max-scale-limit"),
    "gc": ("min-non-active-revisions", "max-non-active-revisions"),
}
_FEATURE_VALUES = ("enabled", "disabled", "allowed")


def cm_name(name: str) -> str:
    """The short config-map name: spec.config accepts `network` and `config-network` alike."""
    return name[len("config-"):] if name.startswith("config-") else name


def _known(cm: str, key: str) -> bool:
    if key == EXAMPLE_KEY:
        return True
    if key in CONFIG_MAPS[cm] or key in ALIASES.get(cm, {}):
        return True
    return any(key.startswith(p) for p in KEY_PREFIXES.get(cm, ()))


def _canonical(cm: str, key: str) -> str:
    return ALIASES.get(cm, {}).get(key, key)


def domain_selector(value: str) -> dict[str, str] | None:
    """A config-domain value: "" (every route) or YAML `selector: {label: value}`; None if bad."""
    if not value.strip():
        return {}
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return None
    if parsed is None:
        return {}
    if not isinstance(parsed, dict):
        return None
    sel = parsed.get("selector") or {}
    if not isinstance(sel, dict):
        return None
    return {str(k): str(v) for k, v in sel.items()}


def validate_spec_config(config: Any, path: str = "spec.config") -> list[Cause]:
    """Every unknown config map, unknown key and malformed value in a KnativeServing's spec.config."""
    out: list[Cause] = []
    if not isinstance(config, dict):
        return out
    for raw_cm, data in config.items():
        cm = cm_name(str(raw_cm))
        cm_path = f"{path}.{raw_cm}"
        if cm not in CONFIG_MAPS:
            close = difflib.get_close_matches(cm, list(CONFIG_MAPS), n=1, cutoff=0.6)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            out.append(Cause(cm_path, "FieldValueNotSupported",
                             f'Unsupported value: "{raw_cm}": not a Knative Serving config map'
                             f"{hint}"))
            continue
        if not isinstance(data, dict):
            continue
        for key, value in data.items():
            key = str(key)
            kpath = f"{cm_path}.{key}"
            if cm == "domain":
                if key == EXAMPLE_KEY:
                    continue
                problem = dns1123_subdomain(key)
                if problem:
                    out.append(Cause(kpath, "FieldValueInvalid",
                                     f'Invalid value: "{key}": {problem}'))
                elif domain_selector(str(value)) is None:
                    out.append(Cause(kpath, "FieldValueInvalid",
                                     f'Invalid value: "{value}": must be empty or YAML '
                                     "`selector: {label: value}`"))
                continue
            if not _known(cm, key):
                known = list(CONFIG_MAPS[cm]) + list(ALIASES.get(cm, {}))
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                # Suggest today's spelling even when the typo is closer to an old alias.
                hint = f' (did you mean "{_canonical(cm, close[0])}"?)' if close else ""
                out.append(Cause(kpath, "FieldValueNotSupported",
                                 f'Unsupported value: "{key}": not a key of ConfigMap '
                                 f"config-{cm}{hint}"))
                continue
            out += _check_value(cm, _canonical(cm, key), str(value), kpath)
        if cm == "autoscaler" and not any(c.field.startswith(cm_path) for c in out):
            # the whole map as the autoscaler reads it: durations, ranges, cross-key rules
            from skiff.serving.autoscaler.config import ConfigError, parse_config
            try:
                parse_config({_canonical(cm, str(k)): str(v) for k, v in data.items()})
            except ConfigError as e:
                # name the key upstream's message is about, when it names one
                field = next((f"{cm_path}.{k}" for k in data if str(k) in str(e)), cm_path)
                out.append(Cause(field, "FieldValueInvalid", f"Invalid value: {e}"))
    return out


def _check_value(cm: str, key: str, value: str, path: str) -> list[Cause]:
    def bad(why: str) -> list[Cause]:
        return [Cause(path, "FieldValueInvalid", f'Invalid value: "{value}": {why}')]
    if cm == "network" and key == "domain-template":
        err = domains.check_domain_template(value)
        return bad(err) if err else []
    if cm == "network" and key == "tag-template":
        err = domains.check_tag_template(value)
        return bad(err) if err else []
    allowed = _ENUMS.get((cm, key))
    if allowed and value not in allowed:
        return bad("must be one of " + ", ".join(allowed))
    if cm == "features" and value.lower() not in _FEATURE_VALUES:
        return bad("must be one of " + ", ".join(_FEATURE_VALUES))
    if key in _INTS.get(cm, ()) and value != "":
        try:
            if int(value) < 0:
                return bad("must be a non-negative integer")
        except ValueError:
            return bad("must be an integer")
    return []


@dataclass(frozen=True)
class ServingConfig:
    """The configuration the serving reconcilers and webhook act on."""
    default_domain: str
    domains: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # domain -> selector
    domain_template: str = OPENSHIFT_DEFAULTS["network"]["domain-template"]
    tag_template: str = CONFIG_MAPS["network"]["tag-template"]
    default_external_scheme: str = "https"
    ingress_class: str = KOURIER_INGRESS_CLASS
    http_protocol: str = "Enabled"
    auto_tls: bool = False
    cluster_domain: str = "cluster.local"
    tag_header_based_routing: bool = False
    multi_container: bool = True
    revision_timeout_seconds: int = 300
    max_revision_timeout_seconds: int = 600
    container_concurrency: int = 0
    container_concurrency_max_limit: int = 1000
    allow_container_concurrency_zero: bool = True
    container_name_template: str = "user-container"
    enable_service_links: bool | None = False
    initial_scale: int = 1
    allow_zero_initial_scale: bool = False
    min_scale: int = 0
    max_scale: int = 0
    data: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # effective cm data
    source: str = ""      # "<ns>/<name>" of the KnativeServing, "" for the built-in defaults

    def lookup_domain(self, labels: Mapping[str, str] | None) -> str:
        return domains.lookup_domain_for_labels(self, labels or {})


def _int(data: Mapping[str, str], key: str, default: int) -> int:
    try:
        return int(data.get(key, "") or default)
    except ValueError:
        return default


def _bool(data: Mapping[str, str], key: str, default: bool) -> bool:
    v = str(data.get(key, "")).strip().lower()
    return default if v == "" else v == "true"


def effective_config(ks: Obj | None, cluster_domain: str) -> ServingConfig:
    """The ServingConfig a KnativeServing (or None) gives, on a cluster whose apps domain
    (OpenShift's ingress domain, `skiff up --domain`) is `cluster_domain`."""
    spec = (ks or {}).get("spec") or {}
    overrides: dict[str, dict[str, str]] = {}
    for raw_cm, kv in (spec.get("config") or {}).items():
        cm = cm_name(str(raw_cm))
        if cm in CONFIG_MAPS and isinstance(kv, dict):
            overrides.setdefault(cm, {}).update(
                {_canonical(cm, str(k)): "" if v is None else str(v) for k, v in kv.items()})
    data: dict[str, dict[str, str]] = {}
    for cm, defaults in CONFIG_MAPS.items():
        merged = {**defaults, **OPENSHIFT_DEFAULTS.get(cm, {})}
        if cm == "network":
            istio = bool(((spec.get("ingress") or {}).get("istio") or {}).get("enabled"))
            merged["ingress-class"] = ISTIO_INGRESS_CLASS if istio else KOURIER_INGRESS_CLASS
        merged.update(overrides.get(cm, {}))
        merged.pop(EXAMPLE_KEY, None)
        data[cm] = merged
    # config-domain: the user's domains, else the cluster's apps domain for every route.
    doms: dict[str, dict[str, str]] = {}
    for dom, value in data["domain"].items():
        sel = domain_selector(value)
        if sel is not None:
            doms[dom] = sel
    if not any(not sel for sel in doms.values()):
        doms[cluster_domain] = {}
        data["domain"] = {**data["domain"], cluster_domain: ""}
    net, dfl, auto, feat = data["network"], data["defaults"], data["autoscaler"], data["features"]
    esl = str(dfl.get("enable-service-links", "")).strip().lower()
    ns = (ks or {}).get("metadata") or {}
    return ServingConfig(
        default_domain=cluster_domain,
        domains=doms,
        domain_template=net["domain-template"] or CONFIG_MAPS["network"]["domain-template"],
        tag_template=net["tag-template"] or CONFIG_MAPS["network"]["tag-template"],
        default_external_scheme=net["default-external-scheme"] or "http",
        ingress_class=net["ingress-class"],
        http_protocol=net["http-protocol"],
        auto_tls=net["auto-tls"].lower() == "enabled",
        tag_header_based_routing=feat.get("tag-header-based-routing", "").lower() == "enabled",
        multi_container=feat.get("multi-container", "").lower() != "disabled",
        revision_timeout_seconds=_int(dfl, "revision-timeout-seconds", 300),
        max_revision_timeout_seconds=_int(dfl, "max-revision-timeout-seconds", 600),
        container_concurrency=_int(dfl, "container-concurrency", 0),
        container_concurrency_max_limit=_int(dfl, "container-concurrency-max-limit", 1000),
        allow_container_concurrency_zero=_bool(dfl, "allow-container-concurrency-zero", True),
        container_name_template=dfl.get("container-name-template") or "user-container",
        enable_service_links=None if esl in ("", "default") else esl == "true",
        initial_scale=_int(auto, "initial-scale", 1),
        allow_zero_initial_scale=_bool(auto, "allow-zero-initial-scale", False),
        min_scale=_int(auto, "min-scale", 0),
        max_scale=_int(auto, "max-scale", 0),
        data=data,
        source=f"{ns.get('namespace', '')}/{ns.get('name', '')}" if ks else "",
    )


def authoritative(objs: list[Obj]) -> Obj | None:
    """The KnativeServing whose config rules: the oldest live one in knative-serving."""
    live = [o for o in objs
            if (o.get("metadata") or {}).get("namespace") == KNATIVE_SERVING_NAMESPACE
            and not (o.get("metadata") or {}).get("deletionTimestamp")]
    live.sort(key=lambda o: (o["metadata"].get("creationTimestamp", ""), o["metadata"]["name"]))
    return live[0] if live else None


class ConfigHolder:
    """The current ServingConfig, for admission hooks (which cannot read the store).

    The KnativeServing reconciler and every reconciler that loads the config
    refresh it; upstream's webhook keeps the same kind of in-memory copy of
    the config maps it watches.
    """

    def __init__(self, cluster_domain: str) -> None:
        self.cluster_domain = cluster_domain
        self._cfg = effective_config(None, cluster_domain)

    def get(self) -> ServingConfig:
        return self._cfg

    def set(self, cfg: ServingConfig) -> None:
        self._cfg = cfg
