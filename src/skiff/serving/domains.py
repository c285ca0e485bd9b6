"""Route host names from templates: upstream pkg/reconciler/route/domains. Pure.

A Route's host is its domain template (config-network domain-template,
`{{.Name}}-{{.Namespace}}.{{.Domain}}` on OpenShift) filled with the route
name, namespace and the domain config-domain selects by the route's labels;
a tag's host first passes the name through the tag template
(`{{.Tag}}-{{.Name}}`). A cluster-local route (label
networking.knative.dev/visibility=cluster-local) always uses the upstream
default template and the domain `svc.<cluster domain>`.

The templates are Go text/template; render() implements the subset these
templates use (`{{.Field}}`, `{{.Map.key}}`, `{{index .Map "key"}}`,
trim markers), and reports anything else as an error rather than guessing.
Neighbours: config.py (the ServingConfig these read), traffic.py and
resources.py (status URLs and Ingress hosts).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from skiff.serving.names import VISIBILITY_CLUSTER_LOCAL, VISIBILITY_LABEL

if TYPE_CHECKING:
    from skiff.serving.config import ServingConfig

DEFAULT_DOMAIN_TEMPLATE = "{{.Name}}.{{.Namespace}}.{{.Domain}}"
HTTP_SCHEME = "http"

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)
_FIELD = re.compile(r"^\.([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z0-9_\-./]+))?$")
_INDEX = re.compile(r'^index\s+\.([A-Za-z_][A-Za-z0-9_]*)\s+"([^"]*)"$')
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class TemplateError(ValueError):
    pass


def render(template: str, data: Mapping[str, Any]) -> str:
    """Execute a Go text/template (the subset domain and tag templates use)."""
    out: list[str] = []
    pos = 0
    for m in _ACTION.finditer(template):
        text = template[pos:m.start()]
        if m.group(1):
            text = text.rstrip()
        out.append(text)
        out.append(_eval(m.group(2), data))
        pos = m.end()
        if m.group(3):
            rest = template[pos:]
            pos += len(rest) - len(rest.lstrip())
    tail = template[pos:]
    if "{{" in tail or "}}" in tail:
        raise TemplateError(f'template: unclosed action in "{template}"')
    out.append(tail)
    return "".join(out)


def _eval(expr: str, data: Mapping[str, Any]) -> str:
    m = _FIELD.match(expr)
    if m:
        name, key = m.group(1), m.group(2)
        if name not in data:
            raise TemplateError(f"template: can't evaluate field {name}")
        value = data[name]
        if key is None:
            if isinstance(value, Mapping):
                return "map[" + " ".join(f"{k}:{v}" for k, v in sorted(value.items())) + "]"
            return str(value)
        if not isinstance(value, Mapping):
            raise TemplateError(f"template: can't evaluate field {key} in type string")
        # Go prints a missing map key as "<no value>" with the dot syntax.
        return str(value.get(key, "<no value>"))
    m = _INDEX.match(expr)
    if m:
        name, key = m.group(1), m.group(2)
        value = data.get(name)
        if not isinstance(value, Mapping):
            raise TemplateError(f"template: can't index item of type {type(value).__name__}")
        return str(value.get(key, ""))   # index yields the zero value
    raise TemplateError(f'template: unsupported action "{{{{{expr}}}}}"')


def check_domain_template(template: str) -> str | None:
    """networking's checkDomainTemplate: a trial render must give a bare host name."""
    try:
        out = render(template, {"Name": "foo", "Namespace": "bar", "Domain": "baz.com",
                                "Annotations": {}, "Labels": {}})
    except TemplateError as e:
        return str(e)
    if not out or "/" in out or ":" in out:
        return "the template must render a host name (no scheme, port or path)"
    return None


def check_tag_template(template: str) -> str | None:
    try:
        render(template, {"Name": "foo", "Tag": "v2"})
    except TemplateError as e:
        return str(e)
    return None


def is_cluster_local(labels: Mapping[str, str] | None) -> bool:
    return (labels or {}).get(VISIBILITY_LABEL) == VISIBILITY_CLUSTER_LOCAL


def lookup_domain_for_labels(cfg: ServingConfig, labels: Mapping[str, str]) -> str:
    """config-domain's LookupDomainForLabels: the most specific matching selector wins."""
    if is_cluster_local(labels):
        return "svc." + cfg.cluster_domain
    domain, specificity = "", -1
    for dom, selector in cfg.domains.items():
        if any(labels.get(k) != v for k, v in selector.items()):
            continue
        if len(selector) < specificity:
            continue
        if len(selector) > specificity or domain < dom:
            domain, specificity = dom, len(selector)
    return domain


def fqdn_problem(host: str) -> str | None:
    """k8s IsFullyQualifiedDomainName, as upstream checks the rendered host."""
    if len(host) > 253:
        return "must be no more than 253 characters"
    labels = host.split(".")
    if len(labels) < 2:
        return "should be a domain with at least two segments separated by dots"
    for label in labels:
        if not _DNS_LABEL.match(label) or len(label) > 63:
            return ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                    "characters, '-' or '.', and must start and end with an alphanumeric character")
    return None


def domain_name_from_template(cfg: ServingConfig, meta: Mapping[str, Any], name: str) -> str:
    """The host for `name` under a route's metadata (namespace, labels, annotations)."""
    labels = dict(meta.get("labels") or {})
    template = DEFAULT_DOMAIN_TEMPLATE if is_cluster_local(labels) else cfg.domain_template
    data = {"Name": name, "Namespace": meta.get("namespace", ""),
            "Domain": lookup_domain_for_labels(cfg, labels),
            "Annotations": dict(meta.get("annotations") or {}), "Labels": labels}
    try:
        host = render(template, data)
    except TemplateError as e:
        raise TemplateError(f"error executing the DomainTemplate: {e}") from None
    problem = fqdn_problem(host)
    if problem:
        raise TemplateError(f'invalid domain name "{host}": url: Invalid value: "{host}": {problem}')
    return host


def hostname_from_template(cfg: ServingConfig, name: str, tag: str) -> str:
    """The name a tag's host starts from: `name` untagged, else the tag template's output."""
    if not tag:
        return name
    try:
        return render(cfg.tag_template, {"Name": name, "Tag": tag})
    except TemplateError as e:
        raise TemplateError(f"error executing the TagTemplate: {e}") from None


def with_visibility(meta: Mapping[str, Any], cluster_local: bool) -> dict[str, Any]:
    """labels.SetVisibility on a copy of the metadata."""
    out = dict(meta)
    labels = dict(meta.get("labels") or {})
    if cluster_local:
        labels[VISIBILITY_LABEL] = VISIBILITY_CLUSTER_LOCAL
    else:
        labels.pop(VISIBILITY_LABEL, None)
    out["labels"] = labels
    return out


def expanded_hosts(host: str, cluster_domain: str) -> list[str]:
    """ingress.ExpandedHosts: a cluster-local host and its shorter in-cluster forms, sorted."""
    out = {host}
    for suffix in ("." + cluster_domain, ".svc." + cluster_domain):
        if host.endswith(suffix):
            short = host[: -len(suffix)]
            if "." in short:
                out.add(short)
    return sorted(out)


def url(scheme: str, host: str) -> str:
    return f"{scheme}://{host}"
