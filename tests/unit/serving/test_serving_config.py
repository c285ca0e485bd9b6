"""The effective Serving config: upstream defaults, OpenShift's, and a KnativeServing's spec.config."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.serving.config import (
    CONFIG_MAPS,
    ConfigHolder,
    authoritative,
    cm_name,
    effective_config,
    validate_spec_config,
)


def ks(config: dict[str, Any] | None = None, istio: bool | None = None,
       name: str = "knative-serving", ns: str = "knative-serving", created: str = "t1") -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if config is not None:
        spec["config"] = config
    if istio is not None:
        spec["ingress"] = {"istio": {"enabled": istio}}
    return {"metadata": {"name": name, "namespace": ns, "creationTimestamp": created}, "spec": spec}


def test_defaults_without_a_knative_serving_are_openshifts() -> None:
    cfg = effective_config(None, "apps.example.com")
    assert cfg.domain_template == "{{.Name}}-{{.Namespace}}.{{.Domain}}"
    assert cfg.default_external_scheme == "https"
    assert cfg.ingress_class == "kourier.ingress.networking.knative.dev"
    assert cfg.tag_template == "{{.Tag}}-{{.Name}}"
    assert dict(cfg.domains) == {"apps.example.com": {}}
    assert (cfg.revision_timeout_seconds, cfg.max_revision_timeout_seconds) == (300, 600)
    assert (cfg.container_concurrency, cfg.container_concurrency_max_limit) == (0, 1000)
    assert cfg.container_name_template == "user-container"
    assert (cfg.min_scale, cfg.initial_scale, cfg.enable_service_links) == (0, 1, False)
    assert cfg.data["observability"]["metrics.backend-destination"] == "prometheus"
    assert cfg.data["autoscaler"]["container-concurrency-target-default"] == "100"
    assert cfg.source == ""


@pytest.mark.parametrize("spec_ks, want", [
    (ks(istio=True), "istio.ingress.networking.knative.dev"),
    (ks(istio=False), "kourier.ingress.networking.knative.dev"),
    (ks({"network": {"ingress-class": "contour.ingress.networking.knative.dev"}}, istio=True),
     "contour.ingress.networking.knative.dev"),
    (ks({"network": {"ingress.class": "x.ingress.networking.knative.dev"}}),   # the old spelling
     "x.ingress.networking.knative.dev"),
])
def test_ingress_class(spec_ks: dict[str, Any], want: str) -> None:
    assert effective_config(spec_ks, "apps.example.com").ingress_class == want


def test_overrides_rule() -> None:
    cfg = effective_config(ks({
        "network": {"domain-template": "{{.Name}}.{{.Domain}}", "defaultExternalScheme": "http"},
        "config-defaults": {"revision-timeout-seconds": "120", "container-concurrency": "5"},
        "autoscaler": {"min-scale": "2"},
        "features": {"tag-header-based-routing": "Enabled"},
        "domain": {"example.org": ""},
    }), "apps.example.com")
    assert cfg.domain_template == "{{.Name}}.{{.Domain}}"
    assert cfg.default_external_scheme == "http"
    assert (cfg.revision_timeout_seconds, cfg.container_concurrency, cfg.min_scale) == (120, 5, 2)
    assert cfg.tag_header_based_routing
    assert dict(cfg.domains) == {"example.org": {}}   # the user's domain replaces the default
    assert cfg.source == "knative-serving/knative-serving"


def test_selector_only_domains_keep_the_cluster_domain_as_default() -> None:
    cfg = effective_config(ks({"domain": {"prod.example.com": "selector:\n  app: prod\n"}}),
                           "apps.example.com")
    assert dict(cfg.domains) == {"prod.example.com": {"app": "prod"}, "apps.example.com": {}}


@pytest.mark.parametrize("config, fields", [
    ({"network": {"domain-template": "{{.Name}}-{{.Namespace}}.{{.Domain}}"}}, []),
    ({"config-network": {"ingress.class": "a"}}, []),
    ({"domain": {"apps.example.com": "", "_example": "docs"}}, []),
    ({"istio": {"gateway.knative-serving.knative-ingress-gateway": "x",
                "local-gateway.knative-serving.knative-local-gateway": "y"}}, []),
    ({"observability": {"metrics.backend-destination": "prometheus"}}, []),
    ({"logging": {"loglevel.controller": "debug"}}, []),
    ({"network": {"domainTemplat": "x"}}, ["spec.config.network.domainTemplat"]),
    ({"autoscaler": {"min-scale": "1", "minscale": "2"}}, ["spec.config.autoscaler.minscale"]),
    ({"netwrok": {"a": "b"}}, ["spec.config.netwrok"]),
    ({"network": {"domain-template": "{{.Nope}}"}}, ["spec.config.network.domain-template"]),
    ({"network": {"default-external-scheme": "ftp"}}, ["spec.config.network.default-external-scheme"]),
    ({"defaults": {"revision-timeout-seconds": "soon"}},
     ["spec.config.defaults.revision-timeout-seconds"]),
    ({"features": {"multi-container": "maybe"}}, ["spec.config.features.multi-container"]),
    ({"domain": {"Not A Domain": ""}}, ["spec.config.domain.Not A Domain"]),
    ({"domain": {"example.com": "[1, 2]"}}, ["spec.config.domain.example.com"]),
])
def test_validate_spec_config(config: dict[str, Any], fields: list[str]) -> None:
    assert [c.field for c in validate_spec_config(config)] == fields


def test_unknown_key_message_suggests() -> None:
    (c,) = validate_spec_config({"network": {"domainTemplat": "x"}})
    assert c.field == "spec.config.network.domainTemplat"
    assert c.message.startswith('Unsupported value: "domainTemplat": ')
    assert "config-network" in c.message and 'did you mean "domain-template"' in c.message


def test_every_known_key_validates_with_its_default() -> None:
    config = {cm: dict(keys) for cm, keys in CONFIG_MAPS.items() if cm != "domain"}
    assert validate_spec_config(config) == []


def test_authoritative_is_the_oldest_live_one_in_knative_serving() -> None:
    a = ks(name="a", created="t2")
    b = ks(name="b", created="t1")
    other = ks(name="c", ns="elsewhere", created="t0")
    gone = ks(name="d", created="t0")
    gone["metadata"]["deletionTimestamp"] = "t3"
    assert authoritative([a, b, other, gone]) is b
    assert authoritative([other]) is None


def test_holder_and_cm_name() -> None:
    h = ConfigHolder("apps.example.com")
    assert h.get().default_domain == "apps.example.com"
    h.set(effective_config(ks(istio=True), "apps.example.com"))
    assert h.get().ingress_class.startswith("istio")
    assert cm_name("config-network") == cm_name("network") == "network"
