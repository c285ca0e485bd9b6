"""`skiff service create|update|delete|list|describe`: kn 1.10's `kn service`, against skiff's API.

The shell around cli/knflags.py (the pure flag semantics, traffic arithmetic,
Ready-condition reading and kn's output formats): it turns typer options into
EditFlags/TrafficFlags, reads and writes serving.knative.dev/v1 Services
through cli/api.py (the same Kubernetes API kubectl uses), and while waiting
for Ready it watches the Service (Api.stream) and prints kn's progress lines,
with a live rich spinner when stdout is a terminal. Every wait has a deadline
(--wait-timeout). Errors print in one line and exit 1. Registered on the
`skiff` app in cli/main.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml
from rich.console import Console
from rich.markup import escape

from skiff.cli import knflags, knprint, kntraffic
from skiff.cli.api import Api, ApiFailure, NoServer, kubeconfig_path
from skiff.cli.knflags import EditFlags, KnError, TrafficFlags
from skiff.core.client import Obj

service_app = typer.Typer(no_args_is_help=True, help="Manage Knative services (kn service).")
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

GROUP_PATH = "/apis/serving.knative.dev/v1"
MAX_UPDATE_RETRIES = 3


# --- small shell helpers ----------------------------------------------------------------
def say(line: str = "") -> None:
    """One line of kn output on stdout: no markup, no wrapping."""
    out.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    one_line = "; ".join(p.strip() for p in str(message).splitlines() if p.strip())
    err.print(f"[red]error:[/red] {escape(one_line)}", soft_wrap=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """Every failure the user can cause ends here, as one line."""
    try:
        yield
    except (KnError, NoServer) as e:
        fail(str(e))
    except ApiFailure as e:
        fail(str(e.status.get("message") or e))


def connect(home: Path | None) -> Api:
    from skiff.platform import default_home
    return Api(kubeconfig_path((home or default_home()).expanduser()))


def services_path(namespace: str, name: str = "") -> str:
    return f"{GROUP_PATH}/namespaces/{namespace}/services" + (f"/{name}" if name else "")


def revisions_path(namespace: str, name: str = "") -> str:
    return f"{GROUP_PATH}/namespaces/{namespace}/revisions" + (f"/{name}" if name else "")


def get_or_none(api: Api, path: str) -> Obj | None:
    try:
        obj: Obj = api.request("GET", path)
    except ApiFailure as e:
        if e.code == 404:
            return None
        raise
    return obj


def utcnow() -> datetime:
    return datetime.now(UTC)


def dump(obj: Any, fmt: str) -> None:
    if fmt == "json":
        say(json.dumps(obj, indent=4))
    elif fmt == "yaml":
        say(yaml.safe_dump(obj, sort_keys=False).rstrip("\n"))
    else:
        fail(f"unable to match a printer suitable for the output format \"{fmt}\", allowed formats "
             "are: json,yaml,url")


# --- waiting for Ready ----------------------------------------------------------------------
class Progress:
    """kn's progress lines, with a rich spinner underneath when stdout is a terminal."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.previous = ""
        self._status: Any = None

    def __enter__(self) -> Progress:
        if out.is_terminal:
            self._status = out.status(self.what, spinner="dots")
            self._status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.__exit__(None, None, None)
            self._status = None

    def message(self, elapsed: float, text: str) -> None:
        say(knprint.progress_line(elapsed, text, self.previous))
        self.previous = text
        if self._status is not None:
            self._status.update(f"{self.what}: {escape(text)}")


def wait_ready(api: Api, namespace: str, name: str, resource_version: str,
               timeout: int, window: int) -> None:
    """Watch the Service until Ready (True), or fail with its condition or kn's timeout text."""
    path = services_path(namespace)
    start = time.monotonic()
    deadline = start + timeout
    error_at: float | None = None
    error_text = ""
    rv = resource_version
    with Progress(f"Waiting for Service '{name}' to become ready") as progress:

        def handle(event_type: str, obj: Obj) -> bool:
            nonlocal error_at, error_text
            seen = knprint.observe_ready(event_type, obj)
            if seen.state == "ready":
                return True
            if seen.state == "failed" and error_at is None:
                error_at, error_text = time.monotonic() + window, seen.error
            if seen.state != "skip" and seen.message:
                progress.message(time.monotonic() - start, seen.message)
            return False

        while True:
            now = time.monotonic()
            if error_at is not None and now >= error_at:
                raise KnError(error_text)
            if now >= deadline:
                raise KnError(f"timeout: service '{name}' not ready after {timeout} seconds")
            limit = min(deadline, error_at if error_at is not None else deadline) - now
            if not rv:   # no point to resume from: look at the object itself
                obj = api.request("GET", services_path(namespace, name))
                rv = str(obj.get("metadata", {}).get("resourceVersion", ""))
                if handle("MODIFIED", obj):
                    break
                continue
            query = {"watch": "true", "fieldSelector": f"metadata.name={name}",
                     "resourceVersion": rv, "timeoutSeconds": str(max(1, math.ceil(limit)))}
            ready = False
            try:
                for ev in api.stream(path, query, timeout=limit + 2):
                    obj = ev.get("object") or {}
                    if ev.get("type") == "ERROR":
                        rv = ""     # expired: start again from the object
                        break
                    rv = str(obj.get("metadata", {}).get("resourceVersion", "")) or rv
                    if ev.get("type") == "DELETED":
                        raise KnError(f"service '{name}' was deleted while waiting for it to become ready")
                    if handle(str(ev.get("type", "")), obj):
                        ready = True
                        break
                    if error_at is not None and time.monotonic() >= error_at:
                        break
            except TimeoutError:
                continue
            except ApiFailure as e:
                if e.code != 410:
                    raise
                rv = ""
            if ready:
                break
        say(f"{time.monotonic() - start:7.3f}s Ready to serve.")


def show_url(api: Api, namespace: str, name: str, verb: str, before: str = "") -> None:
    try:
        svc = api.request("GET", services_path(namespace, name))
    except ApiFailure as e:
        raise KnError(f"cannot fetch service '{name}' in namespace '{namespace}' for extracting the URL: "
                      f"{e.status.get('message', e)}") from None
    status = svc.get("status") or {}
    say(knprint.done_message(name, verb, str(status.get("latestReadyRevisionName", "")),
                             str(status.get("url", "")), before))


# --- options shared by create and update -------------------------------------------------------
HomeOpt = Annotated[Path | None, typer.Option("--home", envvar="SKIFF_HOME",
                                              help="state directory (default ~/.skiff)")]
NamespaceOpt = Annotated[str | None, typer.Option("-n", "--namespace",
                                                  help="Specify the namespace to operate in.")]
Strs = list[str] | None
ImageOpt = Annotated[str | None, typer.Option("--image", help="Image to run.")]
EnvOpt = Annotated[Strs, typer.Option(
    "-e", "--env", help="Environment variable to set. NAME=value; to unset, NAME-.")]
EnvValueFromOpt = Annotated[Strs, typer.Option(
    "--env-value-from", help="Environment variable from a ConfigMap or Secret key: "
    "NAME=cm:name:key or NAME=secret:name:key; to unset, NAME-.")]
EnvFromOpt = Annotated[Strs, typer.Option(
    "--env-from", help="Environment variables from a ConfigMap (cm:/config-map:) or a Secret "
    "(secret:); to unset, append '-'.")]
LimitOpt = Annotated[Strs, typer.Option(
    "--limit", help="Resource limits, e.g. 'cpu=100m,memory=256Mi' or 'nvidia.com/gpu=1'; "
    "'memory-' unsets.")]
RequestOpt = Annotated[Strs, typer.Option(
    "--request", help="Resource requests, e.g. 'cpu=100m,memory=256Mi'; 'cpu-' unsets.")]
CmdOpt = Annotated[Strs, typer.Option("--cmd", help="Entrypoint instead of the image's default "
                                                    "(repeat for several words).")]
ArgOpt = Annotated[Strs, typer.Option("--arg", help="Argument to the container command (repeatable).")]
PortOpt = Annotated[str | None, typer.Option(
    "-p", "--port", help="The port the application listens on: 'NAME:PORT' or 'PORT', e.g. h2c:8080.")]
ServiceAccountOpt = Annotated[str | None, typer.Option(
    "--service-account", help="Service account name to set; \"\" clears it.")]
PullSecretOpt = Annotated[str | None, typer.Option("--pull-secret", help="Image pull secret; \"\" clears it.")]
PullPolicyOpt = Annotated[str | None, typer.Option(
    "--pull-policy", help="Image pull policy: Always | Never | IfNotPresent (case insensitive).")]
UserOpt = Annotated[int | None, typer.Option("--user", help="The user ID to run the container as.")]
AnnotationOpt = Annotated[Strs, typer.Option(
    "-a", "--annotation", help="Annotation for both Service and Revision. name=value; name- unsets.")]
AnnotationServiceOpt = Annotated[Strs, typer.Option(
    "--annotation-service", help="Service annotation. name=value; name- unsets.")]
AnnotationRevisionOpt = Annotated[Strs, typer.Option(
    "--annotation-revision", help="Revision annotation. name=value; name- unsets.")]
LabelOpt = Annotated[Strs, typer.Option(
    "-l", "--label", help="Label for both Service and Revision. name=value; name- unsets.")]
LabelServiceOpt = Annotated[Strs, typer.Option("--label-service", help="Service label. name=value; name- unsets.")]
LabelRevisionOpt = Annotated[Strs, typer.Option("--label-revision",
                                                help="Revision label. name=value; name- unsets.")]
ScaleOpt = Annotated[str | None, typer.Option(
    "--scale", help="Minimum and maximum replicas: 5, 1..5, 1.. or ..5.")]
ScaleMinOpt = Annotated[int | None, typer.Option("--scale-min", help="Minimum number of replicas.")]
ScaleMaxOpt = Annotated[int | None, typer.Option("--scale-max", help="Maximum number of replicas.")]
ScaleInitOpt = Annotated[int | None, typer.Option(
    "--scale-init", help="Initial number of replicas with which a service starts (0 or more).")]
ScaleActivationOpt = Annotated[int | None, typer.Option(
    "--scale-activation", help="Minimum non-zero value that a service should scale to.")]
ScaleTargetOpt = Annotated[int | None, typer.Option(
    "--scale-target", help="Metric value the autoscaler should maintain (with --scale-metric).")]
ScaleMetricOpt = Annotated[str | None, typer.Option(
    "--scale-metric", help="Metric to scale on: concurrency (default) or rps.")]
ScaleUtilizationOpt = Annotated[int | None, typer.Option(
    "--scale-utilization", help="Percentage of the target before scaling up. (Knative default: 70)")]
ScaleWindowOpt = Annotated[str | None, typer.Option(
    "--scale-window", help="Duration to look back for autoscaling decisions, e.g. 10s.")]
ConcurrencyLimitOpt = Annotated[int | None, typer.Option(
    "--concurrency-limit", help="Hard limit of concurrent requests per replica.")]
TimeoutOpt = Annotated[int | None, typer.Option(
    "--timeout", help="Seconds the routing layer waits for a reply to begin. (Knative default: 300)")]
RevisionNameOpt = Annotated[str | None, typer.Option(
    "--revision-name", help="Revision name; must start with '<service>-' (added if missing). "
    "Templates: {{.Service}}, {{.Generation}}, {{.Random n}}. Empty: the server names it.")]
ClusterLocalOpt = Annotated[bool | None, typer.Option(
    "--cluster-local/--no-cluster-local", help="Make the service private (cluster-local) or public.")]
LockOpt = Annotated[bool | None, typer.Option(
    "--lock-to-digest/--no-lock-to-digest",
    help="Keep the running image's digest when --image is not given. (default: lock)")]
WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the service is ready.")]
WaitTimeoutOpt = Annotated[int, typer.Option(
    "--wait-timeout", help="Seconds to wait before giving up on waiting.")]
WaitWindowOpt = Annotated[int, typer.Option(
    "--wait-window", help="Seconds a false Ready condition may recover before it is an error.")]

_EDIT_KEYS = [f.name for f in dataclasses.fields(EditFlags)]
_LIST_KEYS = {f.name for f in dataclasses.fields(EditFlags) if f.default_factory is list}
_COMMA_LISTS = {"limit", "request"}


def edit_flags(values: dict[str, Any]) -> EditFlags:
    """EditFlags from a command's parameters (same names; lists not given become [])."""
    kw: dict[str, Any] = {}
    for key in _EDIT_KEYS:
        v = values.get(key)
        if key in _LIST_KEYS:
            v = list(v or [])
            if key in _COMMA_LISTS:
                v = knflags.split_commas(v)
        kw[key] = v
    return EditFlags(**kw)


def _rng(n: int) -> int:
    return random.randrange(n)


# --- create -----------------------------------------------------------------------------------
@service_app.command()
def create(
    name: Annotated[str, typer.Argument(help="Service name.")],
    image: ImageOpt = None,
    env: EnvOpt = None,
    env_value_from: EnvValueFromOpt = None,
    env_from: EnvFromOpt = None,
    limit: LimitOpt = None,
    request: RequestOpt = None,
    cmd: CmdOpt = None,
    arg: ArgOpt = None,
    port: PortOpt = None,
    service_account: ServiceAccountOpt = None,
    pull_secret: PullSecretOpt = None,
    pull_policy: PullPolicyOpt = None,
    user: UserOpt = None,
    annotation: AnnotationOpt = None,
    annotation_service: AnnotationServiceOpt = None,
    annotation_revision: AnnotationRevisionOpt = None,
    label: LabelOpt = None,
    label_service: LabelServiceOpt = None,
    label_revision: LabelRevisionOpt = None,
    scale: ScaleOpt = None,
    scale_min: ScaleMinOpt = None,
    scale_max: ScaleMaxOpt = None,
    scale_init: ScaleInitOpt = None,
    scale_activation: ScaleActivationOpt = None,
    scale_target: ScaleTargetOpt = None,
    scale_metric: ScaleMetricOpt = None,
    scale_utilization: ScaleUtilizationOpt = None,
    scale_window: ScaleWindowOpt = None,
    concurrency_limit: ConcurrencyLimitOpt = None,
    timeout: TimeoutOpt = None,
    revision_name: RevisionNameOpt = None,
    cluster_local: ClusterLocalOpt = None,
    lock_to_digest: LockOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the service if it exists.")] = False,
    wait: WaitOpt = True,
    wait_timeout: WaitTimeoutOpt = 600,
    wait_window: WaitWindowOpt = 2,
    namespace: NamespaceOpt = None,
    home: HomeOpt = None,
) -> None:
    """Create a service (kn service create NAME --image IMAGE)."""
    flags = edit_flags(locals())
    with errors():
        if not image:
            raise KnError("'service create' requires the image name to run provided with the --image option")
        api = connect(home)
        ns = namespace or api.namespace
        svc = knflags.apply_edits(knflags.new_service(name, ns), flags, now=utcnow(),
                                  random=knflags.random_consonants(_rng), command="create")
        existing = get_or_none(api, services_path(ns, name))
        if existing is not None:
            if not force:
                raise KnError(f"cannot create service '{name}' in namespace '{ns}' because the service "
                              "already exists and no --force option was given")
            doing, done = "Replacing", "replaced"
            result = _replace(api, ns, name, svc)
        else:
            doing, done = "Creating", "created"
            result = api.request("POST", services_path(ns), svc)
        if not wait:
            say(f"Service '{name}' {done} in namespace '{ns}'.")
            return
        say(f"{doing} service '{name}' in namespace '{ns}':")
        say()
        wait_ready(api, ns, name, str(result.get("metadata", {}).get("resourceVersion", "")),
                   wait_timeout, wait_window)
        say()
        show_url(api, ns, name, done)


def _replace(api: Api, ns: str, name: str, svc: Obj) -> Obj:
    for attempt in range(MAX_UPDATE_RETRIES + 1):
        existing = api.request("GET", services_path(ns, name))
        body = knflags.prepare_replace(svc, existing)
        try:
            result: Obj = api.request("PUT", services_path(ns, name), body)
            return result
        except ApiFailure as e:
            if e.code != 409 or attempt == MAX_UPDATE_RETRIES:
                raise
    raise AssertionError("unreachable")


# --- update -----------------------------------------------------------------------------------
def _base_revision(api: Api, ns: str, svc: Obj) -> Obj | None:
    candidates = knflags.base_revision_names(svc)
    template_name = svc.get("spec", {}).get("template", {}).get("metadata", {}).get("name", "")
    for rev_name in candidates:
        rev = get_or_none(api, revisions_path(ns, rev_name))
        if rev is not None and knflags.is_base_revision(svc, rev, rev_name == template_name):
            return rev
    return None


@service_app.command()
def update(
    name: Annotated[str, typer.Argument(help="Service name.")],
    image: ImageOpt = None,
    env: EnvOpt = None,
    env_value_from: EnvValueFromOpt = None,
    env_from: EnvFromOpt = None,
    limit: LimitOpt = None,
    request: RequestOpt = None,
    cmd: CmdOpt = None,
    arg: ArgOpt = None,
    port: PortOpt = None,
    service_account: ServiceAccountOpt = None,
    pull_secret: PullSecretOpt = None,
    pull_policy: PullPolicyOpt = None,
    user: UserOpt = None,
    annotation: AnnotationOpt = None,
    annotation_service: AnnotationServiceOpt = None,
    annotation_revision: AnnotationRevisionOpt = None,
    label: LabelOpt = None,
    label_service: LabelServiceOpt = None,
    label_revision: LabelRevisionOpt = None,
    scale: ScaleOpt = None,
    scale_min: ScaleMinOpt = None,
    scale_max: ScaleMaxOpt = None,
    scale_init: ScaleInitOpt = None,
    scale_activation: ScaleActivationOpt = None,
    scale_target: ScaleTargetOpt = None,
    scale_metric: ScaleMetricOpt = None,
    scale_utilization: ScaleUtilizationOpt = None,
    scale_window: ScaleWindowOpt = None,
    concurrency_limit: ConcurrencyLimitOpt = None,
    timeout: TimeoutOpt = None,
    revision_name: RevisionNameOpt = None,
    cluster_local: ClusterLocalOpt = None,
    lock_to_digest: LockOpt = None,
    traffic: Annotated[Strs, typer.Option(
        "--traffic", help="Traffic split REVISION=PERCENT, TAG=PERCENT or @latest=PERCENT "
        "(comma lists; the rest of 100 goes to the one revision left out).")] = None,
    tag: Annotated[Strs, typer.Option(
        "--tag", help="Tag a revision: REVISION=TAG or @latest=TAG (comma lists).")] = None,
    untag: Annotated[Strs, typer.Option("--untag", help="Remove a tag (comma lists).")] = None,
    wait: WaitOpt = True,
    wait_timeout: WaitTimeoutOpt = 600,
    wait_window: WaitWindowOpt = 2,
    namespace: NamespaceOpt = None,
    home: HomeOpt = None,
) -> None:
    """Update a service (kn service update NAME --flags...); a changed template makes a new revision."""
    flags = edit_flags(locals())
    tf = TrafficFlags(knflags.split_commas(traffic or []), knflags.split_commas(tag or []),
                      knflags.split_commas(untag or []))
    with errors():
        if not (any(flags.changed(k) for k in _EDIT_KEYS) or tf.changed()):
            raise KnError("flag(s) not set (usage: skiff service update NAME [flags])")
        api = connect(home)
        ns = namespace or api.namespace
        before = ""
        changed = False
        for attempt in range(MAX_UPDATE_RETRIES + 1):
            svc = api.request("GET", services_path(ns, name))
            before = str((svc.get("status") or {}).get("latestReadyRevisionName", ""))
            base = None
            warning = ""
            if knflags.needs_base_revision(svc, flags):
                base = _base_revision(api, ns, svc)
                if base is None:
                    warning = "Warning: No revision found to update image digest"
            new = knflags.apply_edits(svc, flags, now=utcnow(), base_revision=base,
                                      random=knflags.random_consonants(_rng), command="update")
            if tf.changed():
                targets = kntraffic.compute_traffic(svc, tf, kntraffic.active_revisions(svc),
                                                  flags.any_mutation())
                if targets:
                    new["spec"]["traffic"] = targets
                else:
                    new["spec"].pop("traffic", None)
            try:
                result = api.request("PUT", services_path(ns, name), new)
            except ApiFailure as e:
                if e.code == 409 and attempt < MAX_UPDATE_RETRIES:
                    continue
                raise
            changed = result.get("metadata", {}).get("generation") != svc.get("metadata", {}).get("generation")
            if warning:
                say(warning)
            break
        if not changed:
            say(f"Service '{name}' updated in namespace '{ns}'.")
            say("No new revision has been created.")
            return
        if not wait:
            say(f"Service '{name}' updated in namespace '{ns}'.")
            return
        say(f"Updating Service '{name}' in namespace '{ns}':")
        say()
        wait_ready(api, ns, name, str(result.get("metadata", {}).get("resourceVersion", "")),
                   wait_timeout, wait_window)
        say()
        show_url(api, ns, name, "updated", before)


# --- delete -----------------------------------------------------------------------------------
@service_app.command()
def delete(
    names: Annotated[list[str] | None, typer.Argument(help="Service name(s).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Delete all services in the namespace.")] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait",
                                       help="Wait until the service is gone.")] = True,
    wait_timeout: WaitTimeoutOpt = 600,
    namespace: NamespaceOpt = None,
    home: HomeOpt = None,
) -> None:
    """Delete services (kn service delete NAME [NAME ...] | --all)."""
    problems: list[str] = []
    with errors():
        if not names and not all_:
            raise KnError("'service delete' requires the service name(s)")
        if names and all_:
            raise KnError("'service delete' with --all flag requires no arguments")
        api = connect(home)
        ns = namespace or api.namespace
        targets = list(names or [])
        if all_:
            items = api.request("GET", services_path(ns)).get("items") or []
            targets = [o["metadata"]["name"] for o in items]
            if not targets:
                say("No services found.")
                return
        for name in targets:
            try:
                api.request("DELETE", services_path(ns, name))
                if wait:
                    _wait_gone(api, services_path(ns, name), name, wait_timeout)
            except ApiFailure as e:
                problems.append(str(e.status.get("message") or e))
                continue
            except KnError as e:
                problems.append(str(e))
                continue
            say(f"Service '{name}' successfully deleted in namespace '{ns}'.")
    if problems:
        for p in problems:
            err.print(f"[red]error:[/red] {escape(p)}", soft_wrap=True)
        raise typer.Exit(1)


def _wait_gone(api: Api, path: str, name: str, timeout: int) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.02
    while get_or_none(api, path) is not None:
        if time.monotonic() >= deadline:
            raise KnError(f"timeout: service '{name}' not deleted after {timeout} seconds")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


# --- list and describe ----------------------------------------------------------------------------
@service_app.command("list")
def list_(
    name: Annotated[str | None, typer.Argument(help="Only this service.")] = None,
    all_namespaces: Annotated[bool, typer.Option("-A", "--all-namespaces",
                                                 help="List services in all namespaces.")] = False,
    output: Annotated[str | None, typer.Option("-o", "--output", help="Output format: json|yaml.")] = None,
    no_headers: Annotated[bool, typer.Option("--no-headers", help="Do not print column headers.")] = False,
    namespace: NamespaceOpt = None,
    home: HomeOpt = None,
) -> None:
    """List services (kn service list): NAME URL LATEST AGE CONDITIONS READY REASON."""
    with errors():
        api = connect(home)
        ns = namespace or api.namespace
        path = f"{GROUP_PATH}/services" if all_namespaces else services_path(ns)
        query = {"fieldSelector": f"metadata.name={name}"} if name else None
        result = api.request("GET", path, query=query)
        items: list[Obj] = result.get("items") or []
        if output:
            dump(result, output)
            return
        for line in knprint.list_lines(items, utcnow(), all_namespaces, headers=not no_headers):
            say(line)


@service_app.command()
def describe(
    name: Annotated[str, typer.Argument(help="Service name.")],
    output: Annotated[str | None, typer.Option("-o", "--output", help="Output format: json|yaml|url.")] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="More output.")] = False,
    namespace: NamespaceOpt = None,
    home: HomeOpt = None,
) -> None:
    """Show details of a service (kn service describe)."""
    with errors():
        api = connect(home)
        ns = namespace or api.namespace
        svc = api.request("GET", services_path(ns, name))
        if output and output.lower() == "url":
            say(str((svc.get("status") or {}).get("url", "")))
            return
        if output:
            dump(svc, output.lower())
            return
        revs = api.request("GET", revisions_path(ns),
                           query={"labelSelector": f"{knflags.SERVICE_LABEL}={name}"}).get("items") or []
        by_name = {r["metadata"]["name"]: r for r in revs}
        for line in knprint.describe_lines(svc, by_name, utcnow(), verbose):
            say(line)
