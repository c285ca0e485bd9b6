"""Container logs are bounded on disk, and `kubectl logs` never loads a file whole.

A pod running `yes` wrote 12.8 GB in 21 s and filled the disk, and a 13 GB
log read by `kubectl logs --tail=1` OOM-killed the platform. Here a real
`skiff up` (small rotation limits: 1Mi x 3 files) runs a flood for a few
seconds: the bytes on disk stay within the bound and the API keeps answering.
The pods/log options go through the real kubectl, and tailing a 50 MB log
must not grow the server's RSS by the size of the log. Bounds, not timings;
every wait has a deadline.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from skiffproc import Skiff, new_skiff

MAX_SIZE = 1024 * 1024
MAX_FILES = 3
FLOOD_SECONDS = 3.0
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Skiff]:
    s = new_skiff(tmp_path_factory.mktemp("logs"))
    s.extra_args = ["--container-log-max-size", "1Mi",
                    "--container-log-max-files", str(MAX_FILES)]
    s.start()
    try:
        yield s
    finally:
        if s.proc is not None:
            s.stop()


def container_dir(s: Skiff, pod: str, container: str | None = None) -> Path:
    dirs = list((s.home / "pods").glob(f"default_{pod}_*"))
    assert len(dirs) == 1, dirs
    return Path(dirs[0], container or pod)


def log_bytes(cdir: Path) -> int:
    return sum(p.stat().st_size for p in cdir.glob("*.log*") if p.is_file())


def phase(s: Skiff, pod: str) -> str:
    return str(s.kubectl_json("get", "pod", pod).get("status", {}).get("phase", ""))


def test_flood_stays_within_the_bound_and_the_api_answers(small: Skiff) -> None:
    s = small
    s.kubectl("run", "flood", "--image=busybox", "--restart=Never", "--", "sh", "-c", "yes")
    s.wait_for(lambda: phase(s, "flood") == "Running", what="flood running")
    cdir = container_dir(s, "flood")
    s.wait_for(lambda: len(list(cdir.glob("0.log.*"))) >= 2, timeout=30,
               what="the flood to rotate its log")
    assert s.proc is not None
    proc = psutil.Process(s.proc.pid)
    cpu0 = sum(proc.cpu_times()[:2])
    wall0 = time.monotonic()
    peak = 0
    answers = 0
    while time.monotonic() - wall0 < FLOOD_SECONDS:
        peak = max(peak, log_bytes(cdir))
        # the API keeps answering while the flood goes on (each call has its deadline)
        assert s.kubectl_json("get", "pod", "flood")["metadata"]["name"] == "flood"
        assert s.readyz() == "ok"
        answers += 1
    cpu = sum(proc.cpu_times()[:2]) - cpu0
    wall = time.monotonic() - wall0
    assert answers >= 2
    assert peak <= MAX_SIZE * MAX_FILES, peak
    assert len(list(cdir.glob("0.log*"))) <= MAX_FILES
    # framing is throttled to a share of a core (logs.CPU_SHARE); the rest is the API's
    assert cpu < 0.75 * wall, f"skiff used {cpu:.2f} CPU s in {wall:.2f} s of flood"
    assert s.kubectl("logs", "flood", "--tail=1", timeout=20).stdout == "y\n"
    s.kubectl("delete", "pod", "flood", "--grace-period=1", timeout=30)


def test_logs_options_through_kubectl(small: Skiff) -> None:
    s = small
    s.kubectl("run", "talker", "--image=busybox", "--restart=Never", "--", "sh", "-c",
              "for i in 1 2 3; do echo line$i; done; sleep 2; echo late; printf 'no newline'")
    s.wait_for(lambda: phase(s, "talker") == "Succeeded", timeout=30, what="talker done")
    # a last line without its newline ends with the container, as a full line
    assert s.kubectl("logs", "talker").stdout == "line1\nline2\nline3\nlate\nno newline\n"
    assert s.kubectl("logs", "talker", "--tail=1").stdout == "no newline\n"
    assert s.kubectl("logs", "talker", "--tail=2").stdout == "late\nno newline\n"
    assert s.kubectl("logs", "talker", "--limit-bytes=8").stdout == "line1\nli"
    stamped = s.kubectl("logs", "talker", "--timestamps").stdout.splitlines()
    assert len(stamped) == 5 and all(STAMP.match(line) for line in stamped), stamped
    assert [line.split(" ", 1)[1] for line in stamped][-2:] == ["late", "no newline"]
    # since: the time of the late line (kubectl sends whole seconds; the rest came 2 s before)
    late_time = stamped[-2].split(" ", 1)[0]
    assert s.kubectl("logs", "talker", f"--since-time={late_time}").stdout == \
        "late\nno newline\n"
    assert s.kubectl("logs", "talker", "--since=1h").stdout.startswith("line1\n")
    # what kubectl would not send: the server's own checks
    raw = "/api/v1/namespaces/default/pods/talker/log"
    assert s.kubectl("get", "--raw", f"{raw}?limitBytes=3").stdout == "lin"
    r = s.kubectl("get", "--raw", f"{raw}?tailLines=-1", check=False)
    assert r.returncode != 0 and "greater than or equal to 0" in r.stderr
    r = s.kubectl("get", "--raw", f"{raw}?sinceSeconds=5&sinceTime={late_time}", check=False)
    assert r.returncode != 0 and "at most one" in r.stderr


def test_follow_streams_across_a_rotation_until_the_container_ends(small: Skiff) -> None:
    s = small
    n = 15000        # each batch's records are ~0.8 MiB: the second one rotates the 1Mi file
    s.kubectl("run", "rotor", "--image=busybox", "--restart=Never", "--", "sh", "-c",
              f"seq 1 {n}; sleep 2; seq {n + 1} {2 * n}")
    s.wait_for(lambda: s.kubectl("logs", "rotor", "--tail=1", check=False).stdout == f"{n}\n",
               timeout=30, what="the first batch")
    r = s.kubectl("logs", "-f", "rotor", timeout=60)
    assert r.stdout.split() == [str(i) for i in range(1, 2 * n + 1)]
    assert list(container_dir(s, "rotor").glob("0.log.*")), "the log rotated"


def test_tailing_a_50mb_log_does_not_load_it(tmp_path: Path) -> None:
    s = new_skiff(tmp_path)
    s.extra_args = ["--container-log-max-size", "64Mi", "--container-log-max-files", "2"]
    s.start()
    try:
        line = "x" * 100
        lines = 350_000      # ~50 MB of records
        s.kubectl("run", "big", "--image=busybox", "--restart=Never", "--", "sh", "-c",
                  f"yes {line} | head -n {lines}")
        s.wait_for(lambda: phase(s, "big") == "Succeeded", timeout=60, what="big log written")
        size = log_bytes(container_dir(s, "big"))
        assert size > 45_000_000, size
        assert s.proc is not None
        proc = psutil.Process(s.proc.pid)
        before = proc.memory_info().rss
        assert s.kubectl("logs", "big", "--tail=1").stdout == line + "\n"
        assert s.kubectl("logs", "big", "--tail=1000").stdout.count("\n") == 1000
        assert s.kubectl("logs", "big", "--limit-bytes=1000").stdout == ((line + "\n") * 10)[:1000]
        assert len(s.kubectl("logs", "big", "--timestamps", "--tail=5").stdout.splitlines()) == 5
        whole = s.kubectl("logs", "big", timeout=120).stdout
        assert whole.count("\n") == lines
        grown = proc.memory_info().rss - before
        assert grown < 20 * 1024 * 1024, f"RSS grew {grown / 2**20:.1f} MiB reading a " \
                                         f"{size / 2**20:.0f} MiB log"
    finally:
        if s.proc is not None:
            s.stop()
