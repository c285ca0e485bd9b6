"""The data plane runs in its own process (DESIGN.md), through a real `skiff up`: the router's
and the gateway's listeners belong to a child of the platform; a kill -9 of that child is
repaired by the supervisor (a new process, resynced from the control plane); the data plane
never outlives the platform, whether it stops cleanly or is killed."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from skiffproc import Skiff, new_skiff

DOMAIN = "apps.127.0.0.1.sslip.io"
HOST = f"hello-default.{DOMAIN}"


def listener_pid(port: int) -> int | None:
    for c in psutil.net_connections(kind="tcp"):
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port:
            return int(c.pid)
    return None


def curl(skiff: Skiff, host: str = HOST) -> str:
    port = skiff.ports["--http-port"]
    r = subprocess.run(["curl", "-s", "--max-time", "5", "--resolve", f"{host}:{port}:127.0.0.1",
                        "-w", " %{http_code}", f"http://{host}:{port}/"],
                       capture_output=True, text=True, timeout=30)
    return r.stdout


def dataplane_children(pid: int) -> list[psutil.Process]:
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [k for k in kids if "skiff.dataplane" in " ".join(_cmdline(k))]


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return list(p.cmdline())
    except psutil.Error:
        return []


def gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
def served(skiff: Skiff) -> Skiff:
    r = skiff.skiff("service", "create", "hello", "--image",
                    "docker.io/openshift/hello-openshift", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    skiff.wait_for(lambda: curl(skiff).endswith(" 200"), timeout=30, what="hello to answer")
    return skiff


def test_the_listeners_belong_to_a_child_process(served: Skiff) -> None:
    assert served.proc is not None
    platform = served.proc.pid
    dp = dataplane_children(platform)
    assert len(dp) == 1, dp
    for flag in ("--http-port", "--https-port", "--local-gateway-port"):
        assert listener_pid(served.ports[flag]) == dp[0].pid, flag
    # the API server stays with the platform
    assert listener_pid(served.api_port) == platform


def test_kill_9_of_the_data_plane_is_repaired(served: Skiff) -> None:
    assert served.proc is not None
    old = dataplane_children(served.proc.pid)[0].pid
    psutil.Process(old).send_signal(signal.SIGKILL)
    platform = served.proc.pid
    served.wait_for(lambda: (new := dataplane_children(platform))
                    and new[0].pid != old, timeout=10, what="a new data plane")
    # the new process gets the current snapshot: the route answers without any change to it
    served.wait_for(lambda: curl(served).endswith(" 200"), timeout=10,
                    what="hello to answer again")
    assert "Hello OpenShift!" in curl(served)
    # and it takes later changes too
    r = served.skiff("service", "update", "hello", "-e", "RESPONSE=after the restart", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    served.wait_for(lambda: curl(served).startswith("after the restart"), timeout=30,
                    what="the new revision through the new data plane")


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_no_data_plane_outlives_the_platform(tmp_path: Path, how: str) -> None:
    s = new_skiff(tmp_path)
    s.start()
    try:
        assert s.proc is not None
        dp = dataplane_children(s.proc.pid)
        assert len(dp) == 1
        if how == "SIGTERM":
            assert s.stop() == 0
        else:
            s.proc.kill()
            s.proc.wait(10)
            s.proc = None
        deadline = time.monotonic() + 10
        while not gone(dp[0].pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone(dp[0].pid), f"data plane {dp[0].pid} still runs after the platform's {how}"
    finally:
        if s.proc is not None:
            s.proc.kill()
            s.proc.wait(10)


def test_two_workers_share_the_ports(tmp_path: Path) -> None:
    """--dataplane-workers 2: two data-plane processes, each listening on every ingress port
    (SO_REUSEPORT); a Knative service answers through them; both end with the platform."""
    s = new_skiff(tmp_path)
    s.extra_args = ["--dataplane-workers", "2"]
    s.start()
    try:
        assert s.proc is not None
        dp = dataplane_children(s.proc.pid)
        assert len(dp) == 2, dp
        pids = {p.pid for p in dp}
        for flag in ("--http-port", "--https-port", "--local-gateway-port"):
            port = s.ports[flag]
            holders = {c.pid for c in psutil.net_connections(kind="tcp")
                       if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port}
            assert holders == pids, flag
        r = s.skiff("service", "create", "hello", "--image", "docker.io/openshift/hello-openshift",
                    timeout=90)
        assert r.returncode == 0, r.stdout + r.stderr
        s.wait_for(lambda: curl(s).endswith(" 200"), timeout=30, what="hello to answer")
        assert all(curl(s) == "Hello OpenShift!\n 200" for _ in range(10))
        assert s.stop() == 0
        deadline = time.monotonic() + 10
        while not all(gone(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(gone(p) for p in pids)
    finally:
        if s.proc is not None:
            s.proc.kill()
            s.proc.wait(10)


def test_a_fresh_data_plane_accepts_only_once_it_has_a_snapshot(tmp_path: Path) -> None:
    """A data plane listens before its first snapshot (its hello says so) but accepts only
    once the snapshot is applied: a client that connects in between waits in the backlog and
    is answered by that snapshot (its server header), not by an empty route table."""
    import asyncio
    import datetime as dt

    from skiff.dataplane.channel import SnapshotServer
    from skiff.dataplane.model import GatewaySettings, Snapshot
    from skiff.dataplane.supervisor import dataplane_argv
    from skiff.node.process import PortAllocator
    from skiff.router.router import ensure_router_pki

    ensure_router_pki(tmp_path / "pki", DOMAIN, dt.datetime.now(dt.UTC))
    ports = PortAllocator()
    settings = GatewaySettings("127.0.0.1", ports.allocate(), ports.allocate(), ports.allocate(),
                               ports.allocate(), DOMAIN)

    async def go() -> None:
        server = SnapshotServer(tmp_path / "dp.sock")
        await server.start()
        proc = await asyncio.create_subprocess_exec(
            *dataplane_argv(tmp_path, server.path, settings), stdin=asyncio.subprocess.PIPE)
        try:
            await asyncio.wait_for(server.hello_from(proc.pid), 20)
            client = await asyncio.create_subprocess_exec(
                "curl", "-s", "-o", "/dev/null", "-m", "20", "-w", "%{http_code} %header{server}",
                "-H", f"Host: nowhere.{DOMAIN}", f"http://127.0.0.1:{settings.http_port}/",
                stdout=asyncio.subprocess.PIPE)
            out = asyncio.create_task(client.communicate())
            await asyncio.sleep(0.5)
            assert not out.done(), "answered before any snapshot"
            server.publish(Snapshot("first-snapshot", {}, {}, frozenset(), {}))
            stdout, _ = await asyncio.wait_for(out, 20)
            assert stdout.decode() == "404 first-snapshot"
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 20)
            await server.stop()
    asyncio.run(go())


def test_a_port_in_use_is_named_and_nothing_is_left(tmp_path: Path) -> None:
    """`skiff up` whose local gateway port another program holds: one line naming that address
    and the flags that pick others, exit 1, and no data plane or API listener left behind."""
    import socket

    s = new_skiff(tmp_path)
    with socket.socket() as other:
        other.bind(("127.0.0.1", s.ports["--local-gateway-port"]))
        other.listen()
        r = subprocess.run(s.up_argv("--pod-network", "loopback"), capture_output=True,
                           text=True, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: cannot start: the data plane cannot listen on "
                      f"127.0.0.1:{s.ports['--local-gateway-port']}: Address already in use "
                      "(another skiff or program may hold the port; pick others with "
                      "--api-port/--http-port/--https-port/--local-gateway-port)"], r.stderr
    for port in (s.api_port, *s.ports.values()):
        assert listener_pid(port) is None, port
