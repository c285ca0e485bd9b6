"""The prober shell: run one probe's checks on its ticker.

check() performs a single tcpSocket / httpGet (200..399, User-Agent
kube-probe) / exec (exit 0) check against a ProbeSpec from probes.py, within
its timeout; probe_loop() waits initialDelaySeconds, then checks every
periodSeconds and reports each change of the thresholded result
(probes.observe) to a callback. pod.py starts one loop per configured probe
of a running container and cancels them when the container stops; it also
runs lifecycle hooks (lifecycle.py) through check(), an exec hook inside the
pod's sandbox as `kubectl exec` is (execsession.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from skiff.node import probes
from skiff.node.execsession import in_pod
from skiff.node.process import exit_code, pod_umask, python_path_env, resolve_executable

log = logging.getLogger("skiff.runtime")

USER_AGENT = "kube-probe/1.29"


KEEPALIVE_S = 15   # as the kubelet's Go dialer: TCP keep-alive probes every 15 s


def keep_alive(sock: Any) -> None:
    """TCP keep-alive on a check's connection, as the kubelet's HTTP client has it (Go's
    net.Dialer, 15 s): a preStop hook's wait can be as long as the pod's grace period (300 s
    for a Knative revision), and a peer that is gone without a close must end it sooner."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_S)
    except (OSError, AttributeError):      # not TCP, or no such option on this platform
        pass


async def tcp_check(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


async def http_check(spec: probes.ProbeSpec, port: int) -> bool:
    ctx: ssl.SSLContext | None = None
    if spec.scheme == "HTTPS":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        reader, writer = await asyncio.open_connection(spec.host, port, ssl=ctx)
    except OSError:
        return False
    keep_alive(writer.get_extra_info("socket"))
    try:
        headers = {"Host": f"{spec.host}:{port}", "User-Agent": spec.user_agent or USER_AGENT,
                   "Accept": "*/*"}
        for name, value in spec.headers:
            headers[name] = value
        headers["Connection"] = "close"
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(f"GET {spec.path} HTTP/1.1\r\n{head}\r\n".encode("latin-1"))
        line = await reader.readline()
        parts = line.split()
        return len(parts) >= 2 and parts[1].isdigit() and 200 <= int(parts[1]) < 400
    except (OSError, ValueError, UnicodeEncodeError):
        return False
    finally:
        writer.close()


async def exec_check(command: list[str], env: Mapping[str, str], cwd: Path, own_python: bool,
                     timeout: float, sandbox: Mapping[str, str] | None = None) -> bool:
    """Exit 0 within `timeout`; the command's group is killed when it runs longer or the
    check is cancelled. With a sandbox (Sandbox.wire()) it runs inside the pod's."""
    if not command:
        return False
    exe = resolve_executable(command[0], env.get("PATH", os.defpath), own_python)
    if exe is None:
        return False
    full_env = dict(env)
    if own_python:
        python_path_env(full_env)
    try:
        proc = await asyncio.create_subprocess_exec(
            exe, *command[1:], stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            cwd=str(cwd), env=full_env, start_new_session=True,
            preexec_fn=functools.partial(in_pod, dict(sandbox)) if sandbox else pod_umask)
    except OSError:
        return False
    try:
        return exit_code(await asyncio.wait_for(proc.wait(), timeout)) == 0
    except TimeoutError:
        return False
    finally:
        if proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            await proc.wait()


async def check(spec: probes.ProbeSpec, env: Mapping[str, str], cwd: Path,
                own_python: bool, sandbox: Mapping[str, str] | None = None) -> bool:
    if spec.kind == "exec":
        return await exec_check(list(spec.command), env, cwd, own_python, spec.timeout,
                                sandbox)
    if spec.port is None:
        return False
    try:
        if spec.kind == "http":
            return await asyncio.wait_for(http_check(spec, spec.port), spec.timeout)
        # tcp, and grpc approximated by a TCP connect
        return await asyncio.wait_for(tcp_check(spec.host, spec.port), spec.timeout)
    except TimeoutError:
        return False


async def probe_loop(spec: probes.ProbeSpec, run_check: Callable[[], Awaitable[bool]],
                     on_change: Callable[[bool], None],
                     initial: probes.ProbeState | None = None, readiness: bool = False) -> None:
    """Check forever; call on_change(result) whenever the thresholded result changes. The
    period is probes.period()'s (an aggressive readiness probe's differs from spec.period)."""
    state = initial or probes.ProbeState()
    if spec.initial_delay:
        await asyncio.sleep(spec.initial_delay)
    loop = asyncio.get_running_loop()
    begun = loop.time()
    passed = False
    while True:
        started = loop.time()
        ok = await run_check()
        new = probes.observe(state, ok, spec)
        if new.result is not None and new.result != state.result:
            on_change(new.result)
        state = new
        passed = passed or new.result is True
        wait = probes.period(spec, readiness, passed, started - begun)
        await asyncio.sleep(max(0.0, wait - (loop.time() - started)))
