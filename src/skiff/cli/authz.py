"""`skiff authz check|matrix` and `skiff mesh tenant-policies`: mesh policy answers without traffic.

`authz check` says whether one request would be allowed and which policy and
rule decide it; `authz matrix` does it for every namespace x destination;
both read the live configuration through the Kubernetes API (cli/api.py, the
kubeconfig of `skiff up` or of a real cluster), policy files not applied yet
(-f, replacing the live objects of the same name), or the files alone
(--offline). `mesh tenant-policies` prints the guide's per-tenant
AuthorizationPolicies (the knative-istio-authz chart 1.31.0, chapter 2.3).
Exit codes: 0 allow, 1 deny, 2 usage or lookup error (one line on stderr).

A thin shell: the decisions are mesh/authz/check.py's (pure), the tenant
policies operator/tenantpolicies.py's; this module fetches objects, reads
files (cli/apply.py's loader) and prints. Registered in cli/main.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from skiff.cli.api import Api, ApiFailure, NoServer, kubeconfig_path
from skiff.core.client import Obj
from skiff.mesh.authz.check import (
    CheckError,
    MatrixEntry,
    RequestSpec,
    Source,
    Target,
    check,
    kind_of,
    matrix,
    merge_objects,
    parse_source,
    parse_target,
)

authz_app = typer.Typer(no_args_is_help=True,
                        help="Answer AuthorizationPolicy questions without sending traffic.")
mesh_app = typer.Typer(no_args_is_help=True, help="Service Mesh helpers.")
out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

USAGE_ERROR = 2
ROOT_NAMESPACE = "istio-system"

HomeOpt = Annotated[Path | None, typer.Option("--home", envvar="SKIFF_HOME",
                                              help="state directory (default ~/.skiff)")]
FilesOpt = Annotated[list[str] | None, typer.Option(
    "-f", "--filename", help="policy file or directory not applied yet (repeatable); its "
                             "objects replace the live ones of the same name")]
OfflineOpt = Annotated[bool, typer.Option(
    "--offline", help="use the -f files alone; no running skiff needed")]
OutputOpt = Annotated[str, typer.Option("-o", "--output", help="text or json")]


def fail(message: str, code: int = USAGE_ERROR) -> NoReturn:
    one_line = "; ".join(p.strip() for p in str(message).splitlines() if p.strip())
    err.print(f"[red]error:[/red] {escape(one_line)}")
    raise typer.Exit(code)


def _pairs(values: list[str] | None, flag: str) -> tuple[tuple[str, str], ...]:
    out_: list[tuple[str, str]] = []
    for v in values or []:
        k, sep, val = v.partition("=")
        if not sep or not k:
            fail(f"{flag} {v!r} is not KEY=VALUE")
        out_.append((k.strip(), val))
    return tuple(out_)


# --- objects: the live API and files ---------------------------------------------------------

def _connect(home: Path | None) -> Api:
    from skiff.platform import default_home
    return Api(kubeconfig_path((home or default_home()).expanduser()))


def _list(api: Api, api_version: str, kind: str, namespace: str | None) -> list[Obj]:
    r = api.resource_for(api_version, kind)
    if r is None:
        return []
    path = r.path(namespace) if namespace is not None else f"{r.base()}/{r.plural}"
    items = api.request("GET", path).get("items") or []
    for o in items:   # list items carry no apiVersion/kind
        o.setdefault("apiVersion", api_version)
        o.setdefault("kind", kind)
    return list(items)


def live_objects(api: Api, namespaces: list[str]) -> list[Obj]:
    """Every AuthorizationPolicy and ServiceMeshMemberRoll, and the Knative Services, their
    ServerlessServices (whether the activator fronts them), Services, Deployments and Pods of
    `namespaces`."""
    objs = _list(api, "security.istio.io/v1beta1", "AuthorizationPolicy", None)
    objs += _list(api, "maistra.io/v1", "ServiceMeshMemberRoll", None)
    for ns in dict.fromkeys(namespaces):
        objs += _list(api, "serving.knative.dev/v1", "Service", ns)
        objs += _list(api, "networking.internal.knative.dev/v1alpha1", "ServerlessService", ns)
        objs += _list(api, "v1", "Service", ns)
        objs += _list(api, "apps/v1", "Deployment", ns)
        objs += _list(api, "v1", "Pod", ns)
    return objs


def file_objects(paths: list[str], namespace: str) -> list[Obj]:
    """The objects of the files check cares about, namespaced like `kubectl apply -n`; a YAML
    error or an AuthorizationPolicy Istio would reject ends the command (exit 2)."""
    from skiff.cli.apply import load_documents, read_sources
    from skiff.mesh.authz.validate import validate_authorization_policy
    objs: list[Obj] = []
    try:
        sources = read_sources(paths)
    except FileNotFoundError as e:
        fail(str(e))
    for name, text in sources:
        docs, problems = load_documents(text, name)
        if problems:
            fail(str(problems[0]))
        for d in docs:
            if not isinstance(d.obj, dict) or not kind_of(d.obj):
                continue
            meta = d.obj.setdefault("metadata", {})
            if not isinstance(meta, dict):
                fail(f"{d.where()} ({d.label()}): metadata must be an object")
            meta.setdefault("namespace", namespace)
            if kind_of(d.obj) == "AuthorizationPolicy":
                errors = validate_authorization_policy(d.obj)
                if errors:
                    path = errors[0].split(":", 1)[0]
                    fail(f"{d.where(path)} ({d.label()}): {errors[0]}")
            objs.append(d.obj)
    return objs


def gather(home: Path | None, files: list[str] | None, offline: bool, namespaces: list[str],
           file_namespace: str) -> Sequence[Mapping[str, Any]]:
    from_files = file_objects(files, file_namespace) if files else []
    if offline:
        if not files:
            fail("--offline needs the policies as -f files")
        return from_files
    try:
        live = live_objects(_connect(home), namespaces)
    except NoServer as e:
        fail(f"{e} (or check files alone with --offline -f ...)")
    except ApiFailure as e:
        fail(str(e.status.get("message") or e))
    return merge_objects(live, from_files)


# --- skiff authz check -----------------------------------------------------------------------

@authz_app.command("check")
def check_cmd(
    to: Annotated[str, typer.Option("--to", help="SERVICE[.NAMESPACE]: a Service or Knative "
                                                 "Service, as the client names it")],
    from_: Annotated[str | None, typer.Option("--from", help="NAMESPACE/SERVICEACCOUNT of the "
                                                            "caller's pod")] = None,
    via: Annotated[str | None, typer.Option("--via", help="ingress: through the ingress "
                                                          "gateway (the external URL)")] = None,
    method: Annotated[str, typer.Option("--method", "-X")] = "GET",
    path: Annotated[str, typer.Option("--path")] = "/",
    header: Annotated[list[str] | None, typer.Option("--header", "-H", help="K=V (repeatable)")]
    = None,
    port: Annotated[int | None, typer.Option("--port", help="the Service port dialled "
                                                            "(default: its first; 80 for a "
                                                            "Knative Service)")] = None,
    host: Annotated[str | None, typer.Option("--host", help="Host header (default: the --to "
                                                            "name, or the external URL's host)")]
    = None,
    label: Annotated[list[str] | None, typer.Option("--label", "-l", help="K=V: the "
                     "destination pods' labels; skips the lookup (repeatable)")] = None,
    filename: FilesOpt = None,
    offline: OfflineOpt = False,
    namespace: Annotated[str | None, typer.Option("-n", "--namespace", help="namespace of "
                         "--to without one, and of file objects without one")] = None,
    output: OutputOpt = "text",
    home: HomeOpt = None,
) -> None:
    """Would this request be allowed? Names the deciding policy and rule; exit 0 allow, 1 deny."""
    if output not in ("text", "json"):
        fail(f"--output {output} is not a format (use text or json)")
    if via not in (None, "ingress"):
        fail(f"--via {via} is not a path (use --via ingress)")
    if from_ is None and via is None:
        fail("--from NAMESPACE/SERVICEACCOUNT is required (or --via ingress)")
    if port is not None and not 0 < port < 65536:
        fail(f"--port {port} is not a port number")
    try:
        source = parse_source(from_) if from_ is not None else Source("istio-system")
        if via == "ingress":
            source = Source(source.namespace, source.service_account, via_ingress=True)
        default_ns = namespace or (source.namespace if from_ is not None else "default")
        target = parse_target(to, default_ns)
    except CheckError as e:
        fail(str(e))
    labels = _pairs(label, "--label")
    if labels:
        target = Target(target.name, target.namespace, target.text, tuple(sorted(labels)))
    objects = gather(home, filename, offline, [target.namespace], namespace or "default")
    spec = RequestSpec(method=method.upper(), path=path, headers=_pairs(header, "--header"),
                       port=port, host=host)
    try:
        v = check(objects, source, target, spec, ROOT_NAMESPACE)
    except CheckError as e:
        hint = " (offline: give the destination's pod labels with --label K=V)" \
            if offline and not labels else ""
        fail(f"{e}{hint}")
    if output == "json":
        out.print_json(json.dumps(v.to_dict()))
    else:
        say(v.line())
        for at, hop in v.hops:
            if hop.allowed and hop.policy:      # a hop that let it through, and by what
                say(f"{at}: policy: {hop.policy} rule: {hop.rule}")
        if v.deciding():
            say(v.deciding())
        if v.decision.status is not None:
            from skiff.mesh.authz import DENIED_BODY
            say(f"response: {v.decision.status} "
                f"{DENIED_BODY if v.decision.status == 403 else 'Bad Request'}")
        for n in (*v.destination.notes, *v.notes):
            err.print(f"[dim]note: {escape(n)}[/dim]")
    raise typer.Exit(0 if v.allowed else 1)


def say(line: str) -> None:
    out.print(line, markup=False, highlight=False)


# --- skiff authz matrix ----------------------------------------------------------------------

def _cell(e: MatrixEntry) -> str:
    if e.verdict is None:
        return f"[yellow]ERROR[/yellow]\n[dim]{escape(e.error or '')}[/dim]"
    v = e.verdict
    word = "[green]ALLOW[/green]" if v.allowed else "[red]DENY[/red]"
    d = v.decision
    by = f"{d.policy} rule {d.rule}" if d.policy else (
        "no ALLOW policy matched" if not v.allowed else "no ALLOW policy")
    return f"{word}\n[dim]{escape(by)}[/dim]"


@authz_app.command("matrix")
def matrix_cmd(
    namespaces: Annotated[list[str], typer.Argument(help="namespaces: sources (their service "
                                                        "account default) and destinations")],
    port: Annotated[int | None, typer.Option("--port")] = None,
    path: Annotated[str, typer.Option("--path")] = "/",
    method: Annotated[str, typer.Option("--method", "-X")] = "GET",
    ingress: Annotated[bool, typer.Option("--ingress", help="add the ingress gateway (external "
                                                            "URLs) as a source")] = False,
    filename: FilesOpt = None,
    offline: OfflineOpt = False,
    output: OutputOpt = "text",
    home: HomeOpt = None,
) -> None:
    """ALLOW/DENY for every namespace (service account default) x Service / Knative Service."""
    if output not in ("text", "json"):
        fail(f"--output {output} is not a format (use text or json)")
    objects = gather(home, filename, offline, list(namespaces), "default")
    entries = matrix(objects, list(namespaces), RequestSpec(method=method.upper(), path=path,
                                                            port=port),
                     ingress=ingress, root_namespace=ROOT_NAMESPACE)
    if output == "json":
        out.print_json(json.dumps([e.to_dict() for e in entries]))
        return
    targets = list(dict.fromkeys(e.target.display for e in entries))
    if not targets:
        err.print(f"no Services or Knative Services in {', '.join(namespaces)}")
        return
    table = Table(title=f"{method.upper()} {path}" + (f" port {port}" if port else ""),
                  show_lines=True)
    table.add_column("from \\ to", style="bold", overflow="fold")
    for t in targets:
        table.add_column(t, overflow="fold")
    rows: dict[str, dict[str, str]] = {}
    for e in entries:
        src = "ingress gateway" if e.source.via_ingress else e.source.label
        rows.setdefault(src, {})[e.target.display] = _cell(e)
    for src, cells in rows.items():
        table.add_row(escape(src), *(cells.get(t, "") for t in targets))
    console = out
    if not out.is_terminal:   # piped: the table at its natural width, never folded to 80
        width = max(80, out.measure(table, options=out.options.update_width(10_000)).maximum)
        console = Console(highlight=False, soft_wrap=True, emoji=False, width=width)
    console.print(table)


# --- skiff mesh tenant-policies ----------------------------------------------------------------

@mesh_app.command("tenant-policies")
def tenant_policies_cmd(
    tenant: Annotated[str, typer.Option("--tenant", help="the tenant's name")],
    namespace: Annotated[list[str], typer.Option("--namespace", "-n",
                                                 help="a namespace of the tenant (repeatable)")],
    serving: Annotated[bool, typer.Option("--serving/--no-serving")] = True,
    eventing: Annotated[bool, typer.Option("--eventing/--no-eventing")] = True,
    istio_namespace: Annotated[str, typer.Option("--istio-namespace")] = "istio-system",
    cluster_domain: Annotated[str, typer.Option("--cluster-domain")] = "cluster.local",
) -> None:
    """Print the tenant's AuthorizationPolicies: what `helm template
    openshift-helm-charts/redhat-knative-istio-authz --version 1.31.0` renders."""
    from skiff.operator.tenantpolicies import TenantPolicyError, tenant_policies, to_yaml
    try:
        objs = tenant_policies(tenant, namespace, serving=serving, eventing=eventing,
                               istio_namespace=istio_namespace, cluster_domain=cluster_domain)
    except TenantPolicyError as e:
        fail(str(e))
    typer.echo(to_yaml(objs), nl=False)
