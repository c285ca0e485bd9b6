"""One home, one platform; and everything in the home private from the moment it exists.

A second `skiff up` on a home in use used to start, sweep the first one's pods as orphans and
rewrite its kubeconfig; the store (every Secret, the wildcard TLS key included), the token and
the kubeconfig were readable by every local user.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

from skiffproc import Skiff, free_port, new_skiff


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.lstat().st_mode)


def test_a_second_up_on_the_same_home_exits_naming_the_holder(skiff: Skiff) -> None:
    s = skiff
    assert s.proc is not None
    s.kubectl("run", "keeper", "--image=docker.io/openshift/hello-openshift")
    s.wait_for(lambda: s.kubectl("get", "pod", "keeper", "-o",
                                 "jsonpath={.status.phase}").stdout == "Running", what="pod Running")
    kubeconfig = s.kubeconfig.read_bytes()
    r = subprocess.run([sys.executable, "-m", "skiff.cli.main", "up", "--home", str(s.home),
                        "--api-port", str(free_port()), "--http-port", str(free_port()),
                        "--https-port", str(free_port()), "--local-gateway-port", str(free_port())],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert f"PID {s.proc.pid}" in lines[0] and str(s.home) in lines[0]
    # The first platform is untouched: same kubeconfig, its pod still running and serving.
    assert s.kubeconfig.read_bytes() == kubeconfig
    assert s.readyz() == "ok"
    assert s.kubectl("get", "pod", "keeper", "-o", "jsonpath={.status.phase}").stdout == "Running"
    out = s.kubectl("exec", "keeper", "--", "sh", "-c", "curl -s http://127.0.0.1:$PORT").stdout
    assert "Hello OpenShift" in out


def test_every_file_in_the_home_is_private(skiff: Skiff) -> None:
    s = skiff
    s.kubectl("create", "secret", "generic", "wildcard", "--from-literal=tls.key=very-secret")
    s.kubectl("logs", "keeper")   # the pod's log exists by now
    assert _mode(s.home) == 0o700
    seen = set()
    for p in s.home.rglob("*"):
        if p.is_symlink() or "kubectl-cache" in p.parts:
            continue   # kubectl's own discovery cache, not skiff's
        seen.add(p.name)
        if p.is_file():
            assert _mode(p) & 0o077 == 0, f"{p} is {oct(_mode(p))}"
    # ... while a container keeps the usual umask for what it makes itself
    assert s.kubectl("exec", "keeper", "--", "sh", "-c", "umask").stdout.strip() == "0022"
    for name in ("skiff.db", "skiff.db-wal", "token", "kubeconfig", "skiff.lock", "ca.key",
                 "apiserver.key"):
        assert name in seen, f"{name} not found in {s.home}"


def test_an_older_homes_files_are_tightened(tmp_path: Path) -> None:
    s = new_skiff(tmp_path)
    s.home.mkdir(mode=0o755)
    os.chmod(s.home, 0o755)
    (s.home / "token").write_text("t0ken-from-an-older-skiff")
    os.chmod(s.home / "token", 0o644)
    s.start()
    try:
        assert _mode(s.home) == 0o700
        assert _mode(s.home / "token") == 0o600
        assert "t0ken-from-an-older-skiff" in s.kubeconfig.read_text()
    finally:
        s.stop()


def test_the_lock_goes_with_a_killed_holder(tmp_path: Path) -> None:
    s = new_skiff(tmp_path)
    s.start()
    assert s.proc is not None
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait(10)
    s.proc = None
    s.start()   # the kernel dropped the flock with the process
    try:
        assert s.readyz() == "ok"
    finally:
        s.stop()
