"""What kn 1.10 prints about Services: list rows, describe text, condition summaries, ages,
and the Ready-condition reading `skiff service` follows while waiting. Pure.

The shell (cli/service.py) fetches and prints; everything it prints is made
here, from objects and `now`, following knative/client release-1.10
pkg/kn/commands/service (human-readable printers, describe) and pkg/wait.
Neighbours: knflags.py (the edits), kntraffic.py (traffic arithmetic).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from skiff.cli.knflags import GENERATION_LABEL, MAX_SCALE, MIN_SCALE, USER_IMAGE
from skiff.core.client import Obj
from skiff.core.clock import human_duration, parse_time, short_human_duration


# --- waiting for Ready (kn's pkg/wait, read purely) ------------------------------------------
@dataclass(frozen=True)
class ReadyObservation:
    """What one watch event says: skip it, progress (with a message), ready, or failed."""
    state: str                 # "skip" | "progress" | "ready" | "failed"
    message: str = ""          # the Ready condition's message, if any
    error: str = ""            # for "failed": "Reason: message", kn's error text


def observe_ready(event_type: str, obj: Obj) -> ReadyObservation:
    """kn's waitForReadyCondition for one event: only MODIFIED events whose status caught up."""
    if event_type != "MODIFIED":
        return ReadyObservation("skip")
    status = obj.get("status") or {}
    observed = status.get("observedGeneration")
    if observed is None or observed != obj.get("metadata", {}).get("generation"):
        return ReadyObservation("skip")
    for cond in status.get("conditions") or []:
        if cond.get("type") != "Ready":
            continue
        message = str(cond.get("message") or "")
        if cond.get("status") == "True":
            return ReadyObservation("ready", message)
        if cond.get("status") == "False":
            return ReadyObservation("failed", message, f"{cond.get('reason', '')}: {message}")
        return ReadyObservation("progress", message)
    return ReadyObservation("skip")


def progress_line(elapsed: float, message: str, previous: str) -> str:
    """kn's SimpleMessageCallback line; a repeated message shows as "..."."""
    return f"{elapsed:7.3f}s {'...' if message == previous else message}"


def done_message(name: str, verb: str, revision: str, url: str, before: str = "") -> str:
    """kn's showUrl."""
    if before and before == revision:
        return f"Service '{name}' with latest revision '{revision}' (unchanged) is available at URL:\n{url}"
    return f"Service '{name}' {verb} to latest revision '{revision}' is available at URL:\n{url}"


# --- presentation (kn's printers) --------------------------------------------------------------
def age(timestamp: str, now: datetime, short: bool = False) -> str:
    t = parse_time(timestamp)
    if t is None:
        return ""
    delta = now - t
    return short_human_duration(delta) if short else human_duration(delta)


def _conditions(obj: Obj) -> list[Obj]:
    return list((obj.get("status") or {}).get("conditions") or [])


def conditions_value(obj: Obj) -> str:
    conds = _conditions(obj)
    ok = sum(1 for c in conds if c.get("status") == "True")
    return f"{ok} OK / {len(conds)}"


def ready_value(obj: Obj) -> str:
    for c in _conditions(obj):
        if c.get("type") == "Ready":
            return str(c.get("status", ""))
    return "<unknown>"


def non_ready_reason(obj: Obj) -> str:
    for c in _conditions(obj):
        if c.get("type") == "Ready":
            if c.get("status") == "True":
                return ""
            if c.get("message"):
                return f"{c.get('reason', '')} : {c['message']}"
            return str(c.get("reason", ""))
    return "<unknown>"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded by 3 spaces, as kn (and kubectl) print them."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return ["   ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in [header, *rows]]


def list_lines(services: Sequence[Obj], now: datetime, all_namespaces: bool = False,
               headers: bool = True) -> list[str]:
    """`kn service list`: NAME URL LATEST AGE CONDITIONS READY REASON."""
    if not services:
        return ["No services found."]
    header = ["NAME", "URL", "LATEST", "AGE", "CONDITIONS", "READY", "REASON"]
    if all_namespaces:
        header = ["NAMESPACE", *header]
    rows = []
    for s in sorted(services, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])):
        status = s.get("status") or {}
        row = [s["metadata"]["name"], str(status.get("url", "")),
               str(status.get("latestReadyRevisionName", "")),
               age(s["metadata"].get("creationTimestamp", ""), now),
               conditions_value(s), ready_value(s), non_ready_reason(s)]
        if all_namespaces:
            row = [s["metadata"].get("namespace", ""), *row]
        rows.append(row)
    lines = table(header, rows)
    return lines if headers else lines[1:]


@dataclass
class RevisionDesc:
    """A revision as `service describe` shows it (kn's revisionDesc)."""
    revision: Obj
    percent: int = 0
    tag: str = ""
    latest_traffic: bool | None = None
    latest_created: bool = False
    latest_ready: bool = False

    @property
    def generation(self) -> int:
        v = (self.revision.get("metadata", {}).get("labels") or {}).get(GENERATION_LABEL, "0")
        return int(v) if str(v).isdigit() else 0


def revision_descs(service: Obj, revisions: dict[str, Obj], all_revisions: bool = False) -> list[RevisionDesc]:
    """kn's getRevisionDescriptions: traffic targets, then latest created/ready, newest first."""
    status = service.get("status") or {}
    created, ready = status.get("latestCreatedRevisionName"), status.get("latestReadyRevisionName")
    descs: list[RevisionDesc] = []
    seen: set[str] = set()

    def add(name: str, target: Obj | None) -> None:
        rev = revisions.get(name) or {"metadata": {"name": name}}
        d = RevisionDesc(rev, latest_created=name == created, latest_ready=name == ready)
        if target is not None:
            d.percent = int(target.get("percent") or 0)
            d.tag = str(target.get("tag") or "")
            d.latest_traffic = target.get("latestRevision")
        descs.append(d)
        seen.add(name)

    for t in status.get("traffic") or []:
        if t.get("revisionName"):
            add(t["revisionName"], t)
    for name in (created, ready):
        if name and name not in seen:
            add(name, None)
    if all_revisions:
        for name in revisions:
            if name not in seen:
                add(name, None)
    return sorted(descs, key=lambda d: -d.generation)


def _bullet(percent: int, status: str) -> str:
    symbol = {"True": "%" if percent > 0 else "+", "False": "!"}.get(status, "?")
    return f"   {symbol}" if percent == 0 else f"{percent:3d}{symbol}"


def _revision_header(d: RevisionDesc, now: datetime) -> str:
    name = d.revision.get("metadata", {}).get("name", "")
    if d.latest_traffic:
        header = f"@latest ({name})"
    elif d.latest_ready:
        header = f"{name} (current @latest)"
    elif d.latest_created:
        header = f"{name} (latest created)"
    else:
        header = name
    if d.tag:
        header = f"{header} #{d.tag}"
    created = d.revision.get("metadata", {}).get("creationTimestamp", "")
    return f"{header} [{d.generation}] ({age(created, now, short=True)})"


def _image_line(rev: Obj) -> str:
    containers = (rev.get("spec") or {}).get("containers") or []
    image = str(containers[0].get("image", "")) if containers else ""
    statuses = (rev.get("status") or {}).get("containerStatuses") or []
    digest = str(statuses[0].get("imageDigest", "")) if statuses else ""
    user_image = (rev.get("metadata", {}).get("annotations") or {}).get(USER_IMAGE, "")
    if not digest or "@" not in digest:
        return image
    desc = "at"
    if user_image:
        base = image.split("@")[0] if "@" in image else digest.split("@")[0]
        if user_image.startswith(base):
            desc, image = "pinned to", user_image
    short = digest.split("@", 1)[1].removeprefix("sha256:")[:6]
    return f"{image} ({desc} {short})"


def _attributes(pairs: Sequence[tuple[str, str]], indent: str = "") -> list[str]:
    width = max(len(k) for k, _ in pairs) + 3
    return [f"{indent}{(k + ':').ljust(width)}{v}".rstrip() for k, v in pairs]


def _map_desc(m: dict[str, str], details: bool) -> str:
    keys = sorted(k for k in m if details or "knative.dev/" not in k)
    return ", ".join(f"{k}={m[k]}" for k in keys)


def _condition_mark(c: Obj) -> str:
    status = c.get("status")
    if status == "True":
        return "++"
    if status == "False":
        return {"Warning": " W", "Info": " I"}.get(str(c.get("severity", "")), "!!")
    return "??"


def describe_lines(service: Obj, revisions: dict[str, Obj], now: datetime, details: bool = False) -> list[str]:
    """`kn service describe`: metadata, URL, revisions with traffic, conditions."""
    meta = service.get("metadata", {})
    spec = service.get("spec", {}).get("template", {}).get("spec", {})
    status = service.get("status") or {}
    top: list[tuple[str, str]] = [("Name", meta.get("name", "")), ("Namespace", meta.get("namespace", ""))]
    for title, m in (("Labels", meta.get("labels") or {}), ("Annotations", meta.get("annotations") or {})):
        text = _map_desc(m, details)
        if text:
            top.append((title, text))
    top += [("Age", age(meta.get("creationTimestamp", ""), now, short=True)), ("URL", status.get("url", ""))]
    if details and (status.get("address") or {}).get("url"):
        top.append(("Cluster", status["address"]["url"]))
    if spec.get("serviceAccountName"):
        top.append(("Service Account", spec["serviceAccountName"]))
    if spec.get("imagePullSecrets"):
        top.append(("Image Pull Secret", spec["imagePullSecrets"][0].get("name", "")))
    lines = _attributes(top)
    lines += ["", "Revisions:"]
    for d in revision_descs(service, revisions, details):
        ready = next((c for c in _conditions(d.revision) if c.get("type") == "Ready"), {})
        lines.append(f"  {_bullet(d.percent, str(ready.get('status', 'Unknown')))}  {_revision_header(d, now)}")
        attrs: list[tuple[str, str]] = []
        if ready.get("status") == "False":
            attrs.append(("Error", str(ready.get("reason", ""))))
        attrs.append(("Image", _image_line(d.revision)))
        if details:
            rspec = d.revision.get("spec") or {}
            c = (rspec.get("containers") or [{}])[0]
            for p in c.get("ports") or []:
                attrs.append(("Port", str(p.get("containerPort", ""))))
            env = ", ".join(f"{e.get('name')}={e.get('value', '')}" for e in c.get("env") or [])
            if env:
                attrs.append(("Env", env))
            anns = d.revision.get("metadata", {}).get("annotations") or {}
            lo, hi = anns.get(MIN_SCALE, "0"), anns.get(MAX_SCALE, "")
            if MIN_SCALE in anns or MAX_SCALE in anns:
                attrs.append(("Scale", f"{lo} ... {hi or '∞'}"))
            if rspec.get("containerConcurrency"):
                attrs.append(("Concurrency", f"Limit: {rspec['containerConcurrency']}"))
            res = c.get("resources") or {}
            for kind in ("requests", "limits"):
                if res.get(kind):
                    attrs.append((kind.capitalize(), ", ".join(f"{k}={v}" for k, v in res[kind].items())))
        lines += _attributes(attrs, indent="        ")
    lines += ["", "Conditions:"]
    conds = sorted(_conditions(service), key=lambda c: (c.get("type") != "Ready", str(c.get("type", ""))))
    width = max([len("TYPE"), *(len(str(c.get("type", ""))) for c in conds)])
    lines.append(f"  {'OK':<2} {'TYPE':<{width}} {'AGE':>6} REASON")
    for c in conds:
        reason = str(c.get("reason", ""))
        if details and reason and c.get("message"):
            reason = f"{reason} ({c['message']})"
        when = age(c.get("lastTransitionTime", ""), now, short=True)
        lines.append(f"  {_condition_mark(c):<2} {str(c.get('type', '')):<{width}} {when:>6} {reason}".rstrip())
    return lines
