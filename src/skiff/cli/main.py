"""The `skiff` command: `skiff up` runs the platform; the rest are API clients.

Errors print in one line with the fix when known; long-running work shows
progress with rich. Neighbours: platform.py (what `up` starts), cli/api.py,
cli/apply.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from skiff.cli.authz import authz_app, mesh_app
from skiff.cli.service import service_app

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="skiff: OpenShift Serverless with Service Mesh, on one machine.")
app.add_typer(service_app, name="service")
app.add_typer(authz_app, name="authz")
app.add_typer(mesh_app, name="mesh")
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
out = Console(highlight=False, soft_wrap=True, emoji=False)


def _home(home: Path | None) -> Path:
    from skiff.platform import default_home
    return (home or default_home()).expanduser()


def fail(message: str, fix: str = "", code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}" + (f" [dim]({fix})[/dim]" if fix else ""))
    raise typer.Exit(code)


def log_size(raw: str) -> int | None:
    """A Kubernetes quantity ("10Mi", "500Ki", "1048576") as bytes; None if not a size."""
    from skiff.node.env import quantity
    try:
        value = quantity(raw)
    except ValueError:
        return None
    return int(value) if 1 <= value < 2**63 else None


HomeOpt = Annotated[Path | None, typer.Option("--home", envvar="SKIFF_HOME",
                                              help="state directory (default ~/.skiff)")]


def _dump_tasks() -> None:
    """One line per asyncio task: its name and the chain of coroutines it waits in."""
    tasks = asyncio.all_tasks()
    lines = [f"{len(tasks)} asyncio tasks:"]
    for t in tasks:
        chain: list[str] = []
        c: Any = t.get_coro()
        while c is not None and len(chain) < 32:
            f = getattr(c, "cr_frame", None) or getattr(c, "gi_frame", None)
            if f is None:
                break
            chain.append(f"{f.f_code.co_qualname} ({Path(f.f_code.co_filename).name}:"
                         f"{f.f_lineno})")
            c = getattr(c, "cr_await", None) or getattr(c, "gi_yieldfrom", None)
        lines.append(f"  {t.get_name()}: {' > '.join(chain) or repr(t.get_coro())}")
    print("\n".join(lines), file=sys.stderr, flush=True)


def _exit_stuck(bound: float) -> None:
    err.print(f"[red]error:[/red] skiff did not stop within {bound + 10:.0f} s; exiting anyway "
              "(where each thread was, below)")
    faulthandler.dump_traceback(all_threads=True)
    os._exit(1)


@app.command()
def up(
    home: HomeOpt = None,
    api_port: Annotated[int, typer.Option(envvar="SKIFF_API_PORT", help="Kubernetes API port")] = 6443,
    http_port: Annotated[int, typer.Option(envvar="SKIFF_HTTP_PORT", help="plain HTTP ingress port")] = 8080,
    https_port: Annotated[int, typer.Option(envvar="SKIFF_HTTPS_PORT", help="TLS ingress port")] = 8443,
    local_gateway_port: Annotated[int, typer.Option(envvar="SKIFF_LOCAL_GATEWAY_PORT",
                                                    help="knative-local-gateway port")] = 8081,
    domain: Annotated[str, typer.Option(envvar="SKIFF_DOMAIN", help="cluster apps domain")]
    = "apps.127.0.0.1.sslip.io",
    container_log_max_size: Annotated[str, typer.Option(
        envvar="SKIFF_CONTAINER_LOG_MAX_SIZE",
        help="rotate a container's log at this size (a quantity: 10Mi)")] = "10Mi",
    container_log_max_files: Annotated[int, typer.Option(
        envvar="SKIFF_CONTAINER_LOG_MAX_FILES",
        help="log files kept per container run, the current one included")] = 5,
    max_pods: Annotated[int, typer.Option(envvar="SKIFF_MAX_PODS",
                                          help="pods run at once; the rest stay Pending")] = 110,
    dataplane_workers: Annotated[int, typer.Option(
        envvar="SKIFF_DATAPLANE_WORKERS",
        help="data-plane processes sharing the ingress ports (SO_REUSEPORT)")] = 1,
    pod_network: Annotated[str, typer.Option(
        envvar="SKIFF_POD_NETWORK",
        help="namespaces: a network namespace and IP per pod (needs root); loopback: pods "
             "share 127.0.0.1; auto: namespaces where possible")] = "auto",
    pod_cidr: Annotated[str, typer.Option(envvar="SKIFF_POD_CIDR",
                                          help="pod IP range (inside skiff's namespaces)")]
    = "10.244.0.0/16",
    service_cidr: Annotated[str, typer.Option(envvar="SKIFF_SERVICE_CIDR",
                                              help="Service ClusterIP range")] = "10.96.0.0/16",
    example: Annotated[bool, typer.Option("--example/--no-example",
                                          help="apply the getting-started example once ready")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose")] = False,
) -> None:
    """Run the platform in the foreground until Ctrl-C."""
    from skiff.core.home import HomeInUse
    from skiff.node.network.podnet import NetworkError
    from skiff.platform import Platform, Settings
    for name, port in (("--api-port", api_port), ("--http-port", http_port),
                       ("--https-port", https_port), ("--local-gateway-port", local_gateway_port)):
        if not 0 < port < 65536:
            fail(f"{name} {port} is not a port number", "use 1..65535")
    if max_pods < 1:
        fail(f"--max-pods {max_pods} is too small", "use 1 or more (kubelet's default is 110)")
    log_max_size = log_size(container_log_max_size)
    if log_max_size is None:
        fail(f"--container-log-max-size {container_log_max_size} is not a size",
             "use a quantity such as 10Mi or 500Ki")
    if container_log_max_files < 2:
        fail(f"--container-log-max-files {container_log_max_files} is too small", "use 2 or more")
    if not 1 <= dataplane_workers <= 64:
        fail(f"--dataplane-workers {dataplane_workers} is out of range", "use 1..64")
    if pod_network not in ("auto", "namespaces", "loopback"):
        fail(f"--pod-network {pod_network} is not a mode", "use auto, namespaces or loopback")
    from skiff.node.network.podnet import host_networks, validate_cidrs
    for problem in validate_cidrs(pod_cidr, service_cidr, host_networks()):
        fail(problem, "choose private ranges that do not overlap each other or the host's")
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = Settings(home=_home(home), api_port=api_port, http_port=http_port, https_port=https_port,
                        local_gateway_port=local_gateway_port, domain=domain, max_pods=max_pods,
                        container_log_max_size=log_max_size or 0,
                        container_log_max_files=container_log_max_files,
                        dataplane_workers=dataplane_workers, pod_network=pod_network,
                        pod_cidr=pod_cidr, service_cidr=service_cidr)
    t0 = time.monotonic()
    status = err.status("starting skiff", spinner="dots") if sys.stderr.isatty() else contextlib.nullcontext()

    def step(msg: str) -> None:
        err.print(f"[green]✓[/green] {msg} [dim]({(time.monotonic() - t0) * 1000:.0f} ms)[/dim]")

    def note(msg: str) -> None:
        err.print(f"[yellow]![/yellow] {msg}")

    async def main() -> None:
        platform = Platform(settings, on_step=step, on_note=note)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if not stop.is_set():
                stop.set()
                return
            # a second Ctrl-C (or SIGTERM): do not wait out the pods' grace periods
            err.print("stopping now: pods get SIGKILL")
            platform.hurry()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        # for a skiff that seems stuck: `kill -USR1 PID` writes every thread's stack to
        # stderr (even with the loop blocked), `kill -USR2 PID` every asyncio task's
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        loop.add_signal_handler(signal.SIGUSR2, _dump_tasks)
        try:
            with status:
                await platform.start()
        except NetworkError as e:
            await platform.stop()
            fail(str(e), "stop the skiff that owns it, or run this one with --pod-network loopback")
        except HomeInUse as e:
            fail(str(e), f"stop that one first{f' (kill {e.pid})' if e.pid else ''}, or pick another "
                         "home with --home")
        except OSError as e:
            await platform.stop()
            fail(f"cannot start: {e}", "another skiff or program may hold the port; pick others with "
                                       "--api-port/--http-port/--https-port/--local-gateway-port")
        err.print(f"[bold green]skiff is ready[/bold green] in {(time.monotonic() - t0):.2f} s — "
                  f"export KUBECONFIG={platform.kubeconfig}")
        if example:
            from skiff.cli.example import run_example
            await run_example(platform, out)
        await stop.wait()
        err.print("stopping: new connections refused, in-flight requests finish, then pods get "
                  "SIGTERM, then SIGKILL after their grace period (Ctrl-C again: SIGKILL now)")
        # the last resort against a hang (a thread or task that will not end): exit anyway
        bound = platform.stop_bound()
        watchdog = threading.Timer(bound + 10, _exit_stuck, (bound,))
        watchdog.daemon = True
        watchdog.start()
        await platform.stop()
        err.print("skiff stopped")

    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


@app.command()
def apply(
    filename: Annotated[list[str], typer.Option("-f", "--filename", help="file, directory or - (stdin)")],
    namespace: Annotated[str | None, typer.Option("-n", "--namespace")] = None,
    home: HomeOpt = None,
) -> None:
    """Apply YAML all-or-nothing: every document is checked before any is applied."""
    from skiff.cli.api import Api, ApiFailure, NoServer, kubeconfig_path
    from skiff.cli.apply import apply_files
    try:
        api = Api(kubeconfig_path(_home(home)))
        applied, problems = apply_files(api, filename, namespace, echo=out.print,
                                        warn=lambda w: err.print(f"[yellow]{w}[/yellow]"))
    except NoServer as e:
        fail(str(e))
        return
    except FileNotFoundError as e:
        fail(str(e))
        return
    except ApiFailure as e:
        fail(str(e))
        return
    if problems:
        for p in problems:
            err.print(f"[red]error:[/red] {p}", soft_wrap=True)
        if not applied:
            err.print("nothing was applied", style="dim")
        raise typer.Exit(1)


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()


if __name__ == "__main__":
    main()
