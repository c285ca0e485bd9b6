"""The built-in proxyv2 image (node/images/proxyv2.py, resolved by node/images/__init__.py):
argv handling, istio-iptables' dry run and errors, the refusal to capture the node's own network,
pilot-agent's lifecycle (SIGTERM, then the drain, then exit 0) in a real process, and the rules
applied inside a throwaway network namespace when root."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from skiff.node import images
from skiff.node.images import proxyv2

SRC = str(Path(__file__).resolve().parents[3] / "src")
INIT = ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT",
        "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020",
        "--log_output_level=default:info"]


def env(**extra: str) -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = SRC + os.pathsep + e.get("PYTHONPATH", "")
    e.update(extra)
    return e


@pytest.mark.parametrize("ref", [
    "registry.redhat.io/openshift-service-mesh/proxyv2-rhel8:2.4",
    "registry.redhat.io/openshift-service-mesh/proxyv2-rhel8@sha256:" + "a" * 64,
    "docker.io/istio/proxyv2:1.16.7", "istio/proxyv2"])
def test_resolves_as_builtin(ref: str) -> None:
    img = images.resolve(ref)
    assert isinstance(img, images.Image)
    assert img.kind == "builtin" and img.own_python and not img.serves_port
    assert images.argv(img, None, ["proxy", "sidecar"]) == [
        "python3", "-m", "skiff.node.images.proxyv2", "proxy", "sidecar"]


ARGV = [
    ([], 1, "usage: pilot-agent"),
    (["discovery"], 1, "unknown command 'discovery'"),
    (["proxy"], 1, "usage: pilot-agent"),
    (["istio-iptables", "-p", "nope"], 1, "istio-iptables: error: -p: invalid port 'nope'"),
    (["istio-iptables", "-m", "TPROXY"], 1, "TPROXY is not supported"),
    (["wait"], 0, ""),
]


@pytest.mark.parametrize("argv,code,message", ARGV, ids=[" ".join(a[0]) or "none" for a in ARGV])
def test_argv(argv: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]
              ) -> None:
    assert proxyv2.main(argv) == code
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") <= 1          # one line


def test_dry_run_prints_the_script(capsys: pytest.CaptureFixture[str]) -> None:
    assert proxyv2.main([*INIT, "-n"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("table inet skiff-capture {}") and "redirect to :15001" in out


def test_never_captures_the_nodes_network(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    applied: list[str] = []
    monkeypatch.setattr(proxyv2, "_in_host_netns", lambda: True)
    monkeypatch.setattr("skiff.node.network.capture.apply_capture", applied.append)
    assert proxyv2.main(INIT) == 0
    assert applied == []
    assert "capture not applied" in capsys.readouterr().out


def test_nft_failure_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(script: str) -> None:
        raise RuntimeError("Error: Could not process rule: Operation not permitted\nmore")
    monkeypatch.setattr(proxyv2, "_in_host_netns", lambda: False)
    monkeypatch.setattr("skiff.node.network.capture.apply_capture", refuse)
    assert proxyv2.main(INIT) == 1
    err = capsys.readouterr().err
    assert err == ("istio-iptables: error: applying table inet skiff-capture: Error: Could not "
                   "process rule: Operation not permitted\n")


@pytest.mark.parametrize("value,want", [("35", 35.0), ("", 5.0), ("x", 5.0), ("-1", 0.0)])
def test_drain_seconds(value: str, want: float) -> None:
    e = {"TERMINATION_DRAIN_DURATION_SECONDS": value} if value else {}
    assert proxyv2.drain_seconds(e) == want


def test_sidecar_lifecycle_drains_then_exits() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "skiff.node.images.proxyv2", "proxy", "sidecar", "--domain",
         "team.svc.cluster.local"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=env(TERMINATION_DRAIN_DURATION_SECONDS="0.4"), text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "started" in first
        # Bounded wait, kept: that it waits for a signal (and does not exit on its own) is an
        # absence that only a window shows; 0.2 s is far above its exit path's few ms.
        time.sleep(0.2)
        assert proc.poll() is None                       # it waits for a signal
        rss_kb = int(next(ln.split()[1] for ln in Path(f"/proc/{proc.pid}/status").read_text()
                          .splitlines() if ln.startswith("VmRSS:")))
        assert rss_kb < 40_000, f"{rss_kb} kB"          # no heavy imports
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)                 # a second one does not cut the drain
        assert proc.wait(10) == 0
        assert time.monotonic() - t0 >= 0.35
        rest = proc.stdout.read()
        assert "SIGTERM received, draining for 0.4s" in rest and "drained" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("ip") is None,
                    reason="needs root (network namespaces, nftables)")
def test_istio_init_in_a_pod_namespace() -> None:
    netns = f"skiff-captest-{uuid.uuid4().hex[:6]}-i"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        r = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-m",
                            "skiff.node.images.proxyv2", *INIT], capture_output=True, text=True,
                           env=env(), timeout=30)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("istio-iptables: table inet skiff-capture applied"), r.stdout
        listing = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "table", "inet",
                                  "skiff-capture"], capture_output=True, text=True, check=True)
        assert "redirect to :15006" in listing.stdout
    finally:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)


def test_this_process_is_in_the_nodes_network() -> None:
    assert proxyv2._in_host_netns() is True
