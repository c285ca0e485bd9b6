"""Traffic: a Route's spec.traffic, checked and flattened to Revisions. Pure.

validate_traffic() is the admission rule (upstream route_validation.go):
percents sum to 100, revisionName and latestRevision agree, tags are
DNS-1035 labels and unique. build() is pkg/reconciler/route/traffic:
each target is resolved to a Revision (a configuration target to its
latestReadyRevisionName; a revision target only if that Revision is
ready), grouped by tag (the untagged group "" carries the whole split; a
tag's group sends 100% to its revision) and consolidated per revision. A
missing or unready target is a TargetError that the Route reports as
AllTrafficAssigned with upstream's reason and message; no Ingress is
programmed then. status_traffic() is what Route.status.traffic shows.

Neighbours: domains.py (tag URLs), resources.py (make_ingress reads the
groups), reconcilers/route.py (the shell that fetches Configurations and
Revisions and applies the outcome).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from skiff.core.client import Obj
from skiff.core.validation import dns1035_label
from skiff.serving import apis, domains
from skiff.serving.apis import FieldError
from skiff.serving.config import ServingConfig
from skiff.serving.names import (
    CONFIGURATION_LABEL,
    VISIBILITY_CLUSTER_LOCAL_RULE,
    VISIBILITY_EXTERNAL_IP,
)

DEFAULT_TARGET = ""

_QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


# --- admission ---------------------------------------------------------------------

def validate_target(tt: Obj, in_service: bool) -> list[FieldError]:
    """TrafficTarget.Validate within a spec; `in_service` means a default configuration exists."""
    errs: list[FieldError] = []
    rev, cfg = tt.get("revisionName") or "", tt.get("configurationName") or ""
    latest = tt.get("latestRevision")
    if latest is not None and bool(latest) == (rev != ""):
        errs.append(apis.generic(
            f'may not set revisionName "{rev}" when latestRevision is {str(bool(latest)).lower()}',
            "latestRevision"))
    if in_service and cfg:
        errs.append(apis.disallowed_fields("configurationName"))
    elif rev and cfg:
        errs.append(apis.multiple_one_of("revisionName", "configurationName"))
    elif rev:
        if not _QUALIFIED.match(rev) or len(rev) > 63:
            errs.append(apis.invalid_key_name(rev, "revisionName"))
    elif cfg:
        if not _QUALIFIED.match(cfg) or len(cfg) > 63:
            errs.append(apis.invalid_key_name(cfg, "configurationName"))
    elif not in_service:
        errs.append(apis.missing_one_of("revisionName", "configurationName"))
    pct = tt.get("percent")
    if isinstance(pct, int) and not isinstance(pct, bool) and not 0 <= pct <= 100:
        errs.append(apis.out_of_bounds(pct, 0, 100, "percent"))
    if tt.get("url"):
        errs.append(apis.disallowed_fields("url"))
    return errs


def validate_traffic(traffic: list[Obj] | None, in_service: bool) -> list[FieldError]:
    """validateTrafficList, paths relative to the traffic list (the caller adds spec.traffic)."""
    errs: list[FieldError] = []
    seen: dict[str, int] = {}
    total = 0
    for i, tt in enumerate(traffic or []):
        if not isinstance(tt, dict):
            continue
        errs += apis.via(validate_target(tt, in_service), f"[{i}]")
        pct = tt.get("percent")
        if isinstance(pct, int) and not isinstance(pct, bool):
            total += pct
        tag = tt.get("tag") or ""
        if not tag:
            continue
        problem = dns1035_label(tag)
        if problem:
            errs.append(apis.invalid_array_value(f"not a DNS 1035 label: [{problem}]", "tag", i))
        if tag in seen:
            # One definition per tag, even when both point at the same target.
            errs.append(FieldError(f'Multiple definitions for "{tag}"',
                                   (f"[{i}].tag", f"[{seen[tag]}].tag")))
        else:
            seen[tag] = i
    if total != 100:
        errs.append(FieldError(f"Traffic targets sum to {total}, want 100", ("",)))
    return errs


def default_traffic(traffic: list[Obj] | None, in_service: bool) -> list[Obj] | None:
    """RouteSpec.SetDefaults: a Service routes 100% to its latest revision by default;
    every target's latestRevision defaults to "no revisionName"."""
    out = [dict(t) for t in traffic or [] if isinstance(t, dict)]
    if not out and in_service:
        out = [{"percent": 100, "latestRevision": True}]
    for t in out:
        if t.get("latestRevision") is None:
            t["latestRevision"] = not t.get("revisionName")
    return out if out or traffic is not None else None


# --- reconcile ---------------------------------------------------------------------

@dataclass(frozen=True)
class RevisionTarget:
    revision_name: str
    percent: int | None
    tag: str = ""
    configuration_name: str = ""
    latest_revision: bool | None = None
    protocol: str = "http1"


@dataclass(frozen=True)
class TargetError:
    """A traffic target that cannot be routed yet (traffic/errors.go)."""
    kind: str            # "missing" | "config" | "revision"
    target_kind: str     # "Configuration" | "Revision"
    name: str
    is_failure: bool = True

    def condition(self) -> tuple[str, str, str]:
        """(status, reason, message) of AllTrafficAssigned, as the RouteStatus markers set it."""
        if self.kind == "missing":
            return ("False", "RevisionMissing",
                    f'{self.target_kind} "{self.name}" referenced in traffic not found.')
        if self.kind == "config":
            if self.is_failure:
                return ("False", "RevisionMissing",
                        f'Configuration "{self.name}" does not have any ready Revision.')
            return ("Unknown", "RevisionMissing",
                    f'Configuration "{self.name}" is waiting for a Revision to become ready.')
        if self.is_failure:
            return ("False", "RevisionMissing", f'Revision "{self.name}" failed to become ready.')
        return ("Unknown", "RevisionMissing", f'Revision "{self.name}" is not yet ready.')


@dataclass
class TrafficConfig:
    targets: dict[str, list[RevisionTarget]] = field(default_factory=dict)
    revision_targets: list[RevisionTarget] = field(default_factory=list)
    configurations: list[str] = field(default_factory=list)   # referred and found
    revisions: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)
    visibility: dict[str, str] = field(default_factory=dict)


def _ready_condition(obj: Obj) -> str:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return str(c.get("status", "Unknown"))
    return "Unknown"


def revision_is_ready(rev: Obj) -> bool:
    """Revision.IsReady: Ready True for the generation it has observed."""
    status = rev.get("status") or {}
    return int(status.get("observedGeneration") or 0) == int(rev["metadata"].get("generation") or 1) \
        and _ready_condition(rev) == "True"


def revision_protocol(rev: Obj) -> str:
    """Revision.GetProtocol: h2c when the serving port is named so, else http1."""
    for c in (rev.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            return "h2c" if p.get("name") == "h2c" else "http1"
    return "http1"


def build(route: Obj, configurations: Mapping[str, Obj],
          revisions: Mapping[str, Obj]) -> tuple[TrafficConfig, TargetError | None]:
    """BuildTrafficConfiguration: flatten the spec's traffic to revisions; the first
    failing target error (a failure overrides a not-yet-ready) comes back alongside."""
    tc = TrafficConfig()
    err: TargetError | None = None
    targets: dict[str, list[RevisionTarget]] = {}

    def defer(e: TargetError) -> None:
        nonlocal err
        if e.kind == "missing":
            tc.missing.append((e.target_kind, e.name))
        if err is None or e.is_failure:
            err = e

    def config(name: str) -> Obj | None:
        c = configurations.get(name)
        if c is None:
            defer(TargetError("missing", "Configuration", name))
        elif name not in tc.configurations:
            tc.configurations.append(name)
        return c

    def revision(name: str) -> Obj | None:
        r = revisions.get(name)
        if r is None:
            defer(TargetError("missing", "Revision", name))
        elif name not in tc.revisions:
            tc.revisions.append(name)
        return r

    def add(t: RevisionTarget) -> None:
        tc.revision_targets.append(t)
        targets.setdefault(DEFAULT_TARGET, []).append(t)
        if t.tag:
            targets.setdefault(t.tag, []).append(t)

    for tt in (route.get("spec") or {}).get("traffic") or []:
        pct = tt.get("percent")
        base = RevisionTarget(revision_name="", percent=int(pct) if pct is not None else None,
                              tag=tt.get("tag") or "",
                              configuration_name=tt.get("configurationName") or "",
                              latest_revision=tt.get("latestRevision"))
        if tt.get("revisionName"):
            rev = revision(tt["revisionName"])
            if rev is None:
                continue
            if not revision_is_ready(rev):
                defer(TargetError("revision", "Revision", rev["metadata"]["name"],
                                  _ready_condition(rev) == "False"))
                continue
            cfg_name = (rev["metadata"].get("labels") or {}).get(CONFIGURATION_LABEL, "")
            if cfg_name and config(cfg_name) is None:
                continue
            add(replace(base, revision_name=rev["metadata"]["name"], configuration_name=cfg_name,
                        protocol=revision_protocol(rev)))
        elif tt.get("configurationName"):
            cfg = config(tt["configurationName"])
            if cfg is None:
                continue
            lrr = (cfg.get("status") or {}).get("latestReadyRevisionName") or ""
            if not lrr:
                defer(TargetError("config", "Configuration", cfg["metadata"]["name"],
                                  _ready_condition(cfg) == "False"))
                continue
            rev = revision(lrr)
            if rev is None:
                continue
            add(replace(base, revision_name=lrr, protocol=revision_protocol(rev)))
    if err is None:
        tc.targets = {name: consolidate(ts) for name, ts in targets.items()}
    else:
        tc.revision_targets = []
    return tc, err


def consolidate(targets: list[RevisionTarget]) -> list[RevisionTarget]:
    """One split per revision (percents added); a lone split gets 100%."""
    by_name: dict[str, RevisionTarget] = {}
    for t in targets:
        cur = by_name.get(t.revision_name)
        if cur is None:
            by_name[t.revision_name] = t
        elif t.percent is not None:
            by_name[t.revision_name] = replace(cur, percent=(cur.percent or 0) + t.percent)
    out = list(by_name.values())
    if len(out) == 1:
        out[0] = replace(out[0], percent=100)
    return out


def route_visibility(route: Obj, cfg: ServingConfig) -> str:
    """A route whose host lands in the cluster domain is cluster-local (visibility.go)."""
    host = domains.domain_name_from_template(cfg, route["metadata"], route["metadata"]["name"])
    if host.endswith(cfg.cluster_domain):
        return VISIBILITY_CLUSTER_LOCAL_RULE
    return VISIBILITY_EXTERNAL_IP


def visibility(route: Obj, cfg: ServingConfig) -> dict[str, str]:
    """The visibility of the default target and of each tag (tags follow the route)."""
    default = route_visibility(route, cfg)
    out = {DEFAULT_TARGET: default}
    for tt in (route.get("spec") or {}).get("traffic") or []:
        if tt.get("tag"):
            out[tt["tag"]] = default
    return out


def status_traffic(tc: TrafficConfig, route: Obj, cfg: ServingConfig) -> list[Obj]:
    """GetRevisionTrafficTargets: the flattened targets with tag URLs (http, as upstream)."""
    out: list[Obj] = []
    for t in tc.revision_targets:
        entry: Obj = {}
        if t.tag:
            entry["tag"] = t.tag
        entry["revisionName"] = t.revision_name
        if t.latest_revision is not None:
            entry["latestRevision"] = t.latest_revision
        if t.percent is not None:
            entry["percent"] = t.percent
        if t.tag:
            host = domains.hostname_from_template(cfg, route["metadata"]["name"], t.tag)
            meta = domains.with_visibility(
                route["metadata"], tc.visibility.get(t.tag) == VISIBILITY_CLUSTER_LOCAL_RULE)
            entry["url"] = domains.url(domains.HTTP_SCHEME,
                                       domains.domain_name_from_template(cfg, meta, host))
        out.append(entry)
    return out


def referenced_names(route: Obj) -> tuple[list[str], list[str]]:
    """(configurations, revisions) a route's spec names, for tracking."""
    cfgs, revs = [], []
    for tt in (route.get("spec") or {}).get("traffic") or []:
        if tt.get("configurationName"):
            cfgs.append(tt["configurationName"])
        if tt.get("revisionName"):
            revs.append(tt["revisionName"])
    return cfgs, revs
