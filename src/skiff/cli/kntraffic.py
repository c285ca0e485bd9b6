"""kn 1.10's --traffic, --tag and --untag as pure arithmetic over a Service's traffic targets.

A port of knative/client release-1.10 pkg/kn/traffic/compute.go, including
the automatic share of the remaining percent introduced in kn 1.3. The
shell (cli/service.py) parses the flags into a TrafficFlags and calls
compute_traffic(); the errors are kn's own wording (KnError). Neighbours:
knflags.py (the other edits of a Service), knprint.py (presentation).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass

from skiff.cli.knflags import LATEST, KnError, TrafficFlags
from skiff.core.client import Obj


# --- traffic (kn's pkg/kn/traffic/compute.go) -----------------------------------------
@dataclass(frozen=True)
class ActiveRevision:
    """A revision that has traffic now (kn 1.3+ only shares the rest among these)."""
    name: str
    tags: tuple[str, ...] = ()


def active_revisions(service: Obj) -> list[ActiveRevision]:
    """The revisions in status.traffic, in order, with their tags."""
    seen: dict[str, list[str]] = {}
    for t in (service.get("status") or {}).get("traffic") or []:
        name = t.get("revisionName")
        if not name:
            continue
        tags = seen.setdefault(name, [])
        if t.get("tag"):
            tags.append(t["tag"])
    return [ActiveRevision(n, tuple(tags)) for n, tags in seen.items()]


def _split_ref(pair: str) -> tuple[str, str]:
    parts = pair.split("=")
    if len(parts) == 1:
        return LATEST, parts[0]
    if len(parts) != 2 or parts[0] == "" or parts[1] == "":
        raise KnError(f"expecting the value format in value1=value2, given {pair}")
    return parts[0], parts[1].removesuffix("%")


def _distribution_error(total: int, reason: str) -> KnError:
    return KnError(f"unable to allocate the remaining traffic: {100 - total}%. Reason: {reason}")


_COUNT = "incorrect number of revisions specified. Only 1 revision should be missing"
_MISSING = "cannot determine the missing revision"


def _repeat_error(flag: str, name: str) -> KnError:
    what = f"identifier {LATEST}" if name == LATEST else f"revision reference {name}"
    return KnError(f"repetition of {what} is not allowed, use only once with {flag} flag")


def _verify_traffic(tf: TrafficFlags, service: Obj, revisions: Sequence[ActiveRevision],
                    mutation: bool) -> list[str]:
    """kn's verifyInput; returns the --traffic list, with the automatic remainder added."""
    latest_tag = False
    for each in tf.tag:
        ref, _ = _split_ref(each)
        if latest_tag and ref == LATEST:
            raise _repeat_error("--tag", LATEST)
        if ref == LATEST:
            latest_tag = True
    refs: dict[str, int] = {}
    total = 0
    for i, each in enumerate(tf.traffic):
        ref, percent = _split_ref(each)
        if ref in refs:
            raise _repeat_error("--traffic", ref)
        refs[ref] = i
        if not re.fullmatch(r"[+-]?\d+", percent):
            raise KnError(f"error converting given {percent} to integer value for traffic distribution")
        p = int(percent)
        if p < 0 or p > 100:
            raise KnError(f"invalid value for traffic percent {p}, expected 0 <= percent <= 100")
        total += p
    out = list(tf.traffic)
    if total == 100:
        return out
    if total > 100:
        raise KnError(f"given traffic percents sum to {total}, want <=100")
    if not tf.traffic:
        return out
    latest_ref = LATEST in refs
    given, existing = len(tf.traffic), len(revisions)
    if given < existing - 1:
        raise _distribution_error(total, _COUNT)
    if given == existing - 1 and latest_ref:
        if mutation:
            raise _distribution_error(total, _COUNT)
        refs[(service.get("status") or {}).get("latestReadyRevisionName", "")] = 0
    if given == existing and latest_ref and not mutation:
        raise _distribution_error(total, _COUNT)
    for rev in revisions:
        if rev.name not in refs and not any(t in refs for t in rev.tags):
            return [*out, f"{rev.name}={100 - total}"]
    raise _distribution_error(total, _MISSING)


def _target(tag: str, revision: str, percent: int, latest: bool) -> Obj:
    t: Obj = {}
    if tag:
        t["tag"] = tag
    if latest:
        t["latestRevision"] = True
    else:
        t["latestRevision"] = False
        t["revisionName"] = revision
    t["percent"] = percent
    return t


def compute_traffic(service: Obj, tf: TrafficFlags, revisions: Sequence[ActiveRevision],
                    mutation: bool) -> list[Obj]:
    """kn's traffic.Compute for `service update`: the new spec.traffic.

    `revisions` are those with traffic now (active_revisions); `mutation` says a
    new revision is being made, which is what @latest will then mean.
    """
    percents = _verify_traffic(tf, service, revisions, mutation)
    name = service.get("metadata", {}).get("name", "")
    traffic: list[Obj] = copy.deepcopy(service.get("spec", {}).get("traffic") or [])
    if not traffic:
        traffic = [{"latestRevision": True, "percent": 100}]   # Knative's default

    def is_latest(t: Obj) -> bool:
        return t.get("latestRevision") is True

    missing: list[str] = []
    for tag in tf.untag:
        for t in traffic:
            if t.get("tag") == tag:
                t.pop("tag", None)
                break
        else:
            missing.append(tag)
    if missing:
        raise KnError(f"tag(s) {', '.join(missing)} not present for any revisions of service {name}")

    def tag_present(tag: str) -> bool:
        return any(t.get("tag") == tag for t in traffic)

    for each in tf.tag:
        revision, tag = _split_ref(each)
        if revision == LATEST:
            existing = next((t.get("tag", "") for t in traffic if is_latest(t)), "")
            if existing == tag:
                continue
            if tag_present(tag):
                raise KnError(f"refusing to overwrite existing tag in service, add flag '--untag {tag}' "
                              "in command to untag it")
            if existing:
                raise KnError(f"tag '{existing}' exists on latest ready revision of service, refusing "
                              f"to overwrite existing tag with '{tag}', add flag '--untag {existing}' "
                              "in command to untag it")
            for t in traffic:
                if is_latest(t):
                    t["tag"] = tag
                    break
            else:
                traffic.append(_target(tag, "", 0, True))
            continue
        if any(t.get("tag") == tag and t.get("revisionName") == revision for t in traffic):
            continue
        if tag_present(tag):
            raise KnError(f"refusing to overwrite existing tag in service, add flag '--untag {tag}' "
                          "in command to untag it")
        for t in traffic:
            if t.get("revisionName") == revision:
                if not t.get("tag"):
                    t["tag"] = tag
                    break
                traffic.append(_target(tag, revision, 0, False))
                break
        else:
            traffic.append(_target(tag, revision, 0, False))

    if tf.traffic:
        for t in traffic:
            t["percent"] = 0
        for each in percents:
            ref, percent = _split_ref(each)
            p = int(percent)
            if ref == LATEST:
                for t in traffic:
                    if is_latest(t):
                        t["percent"] = p
                        break
                else:
                    traffic.append(_target("", "", p, True))
                continue
            by_tag = next((t for t in traffic if t.get("tag") == ref), None)
            if by_tag is not None:
                by_tag["percent"] = p
                continue
            by_rev = next((t for t in traffic if t.get("revisionName") == ref), None)
            if by_rev is not None:
                by_rev["percent"] = p
                continue
            traffic.append(_target("", ref, p, False))
    return [t for t in traffic if t.get("tag") or int(t.get("percent") or 0) != 0]
