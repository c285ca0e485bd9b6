"""Route hosts from Go templates and config-domain selectors (upstream route/domains)."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.serving import domains
from skiff.serving.config import effective_config

CFG = effective_config(None, "apps.example.com")


@pytest.mark.parametrize("template, data, want", [
    ("{{.Name}}.{{.Namespace}}.{{.Domain}}", {"Name": "a", "Namespace": "b", "Domain": "c.d"}, "a.b.c.d"),
    ("{{ .Name }}-{{.Namespace}}.{{.Domain}}", {"Name": "a", "Namespace": "b", "Domain": "c"}, "a-b.c"),
    ('{{.Name}}.{{ index .Annotations "sub"}}.{{.Domain}}',
     {"Name": "a", "Annotations": {"sub": "x"}, "Domain": "d"}, "a.x.d"),
    ('{{index .Annotations "missing"}}', {"Annotations": {}}, ""),
    ("{{.Annotations.sub}}", {"Annotations": {}}, "<no value>"),
    ("{{.Tag}}-{{.Name}}", {"Tag": "v2", "Name": "hello"}, "v2-hello"),
    ("x {{- .Name -}} y", {"Name": "n"}, "xny"),
])
def test_render(template: str, data: dict[str, Any], want: str) -> None:
    assert domains.render(template, data) == want


@pytest.mark.parametrize("template", ["{{.Nope}}", "{{ printf \"%s\" .Name }}", "{{.Name"])
def test_render_rejects(template: str) -> None:
    with pytest.raises(domains.TemplateError):
        domains.render(template, {"Name": "n"})


@pytest.mark.parametrize("template, ok", [
    ("{{.Name}}-{{.Namespace}}.{{.Domain}}", True),
    ("{{.Name}}.{{.Domain}}/path", False),
    ("{{.Bogus}}", False),
])
def test_check_domain_template(template: str, ok: bool) -> None:
    assert (domains.check_domain_template(template) is None) == ok


def meta(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"name": "hello", "namespace": "default", "labels": labels or {},
            "annotations": annotations or {}}


def test_openshift_default_template() -> None:
    assert domains.domain_name_from_template(CFG, meta(), "hello") == \
        "hello-default.apps.example.com"


def test_cluster_local_uses_upstream_template_and_cluster_domain() -> None:
    m = meta({"networking.knative.dev/visibility": "cluster-local"})
    assert domains.domain_name_from_template(CFG, m, "hello") == "hello.default.svc.cluster.local"


def test_tag_host_goes_through_both_templates() -> None:
    name = domains.hostname_from_template(CFG, "hello", "candidate")
    assert name == "candidate-hello"
    assert domains.domain_name_from_template(CFG, meta(), name) == \
        "candidate-hello-default.apps.example.com"
    assert domains.hostname_from_template(CFG, "hello", "") == "hello"


def test_domain_selectors_pick_the_most_specific() -> None:
    cfg = effective_config({"spec": {"config": {"domain": {
        "prod.example.com": "selector:\n  env: prod\n",
        "prod-eu.example.com": "selector:\n  env: prod\n  region: eu\n",
        "dev.example.com": ""}}}}, "apps.example.com")
    assert domains.lookup_domain_for_labels(cfg, {}) == "dev.example.com"
    assert domains.lookup_domain_for_labels(cfg, {"env": "prod"}) == "prod.example.com"
    assert domains.lookup_domain_for_labels(cfg, {"env": "prod", "region": "eu"}) == \
        "prod-eu.example.com"


def test_invalid_host_is_an_error() -> None:
    cfg = effective_config({"spec": {"config": {"network": {"domain-template": "{{.Name}}"}}}},
                           "apps.example.com")
    with pytest.raises(domains.TemplateError, match="at least two segments"):
        domains.domain_name_from_template(cfg, meta(), "hello")


def test_expanded_hosts() -> None:
    assert domains.expanded_hosts("hello.default.svc.cluster.local", "cluster.local") == [
        "hello.default", "hello.default.svc", "hello.default.svc.cluster.local"]
    assert domains.expanded_hosts("hello-default.apps.example.com", "cluster.local") == [
        "hello-default.apps.example.com"]
