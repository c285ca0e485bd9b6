"""The fork server as the pods' supervisor: nothing it forked outlives it or skiff, and a spawn
skiff gives up on never leaves an untracked child. Real processes; every wait has a deadline.

Processes are found by a marker argument (a unique sleep length) in their command line, so
only processes these tests started are ever looked at or killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from skiff.node import process
from skiff.node.forkserver import ForkServer
from skiff.node.images import HELLO_OPENSHIFT_MODULE

DEADLINE = 10.0


def marker() -> str:
    """A sleep length no other process on the machine uses: 3000.<random digits>."""
    return f"3000.{uuid.uuid4().int % 10**12:012d}"


def marked(mark: str) -> list[psutil.Process]:
    """The live `sleep <mark>` processes."""
    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            cmd = p.info["cmdline"] or []
            if (len(cmd) == 2 and cmd[0].endswith("sleep") and cmd[1] == mark
                    and p.info["status"] != psutil.STATUS_ZOMBIE):
                out.append(p)
    return out


def wait_until(check: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {DEADLINE}s waiting for {what}")


def kill_marked(mark: str) -> None:
    for p in marked(mark):
        with contextlib.suppress(psutil.Error):
            p.kill()


def unheld(template: psutil.Process, fs: ForkServer) -> set[int]:
    """The template's children other than the standbys it has announced."""
    return {c.pid for c in template.children()} - fs.standbys


def shell(mark: str) -> list[str]:
    # the leader and a child of its own in its group, as a shell entrypoint has
    return ["/bin/sh", "-c", f"sleep {mark} & sleep {mark}; wait"]


def test_closing_kills_every_group_it_holds(tmp_path: Path) -> None:
    mark = marker()

    async def body() -> None:
        fs = ForkServer([HELLO_OPENSHIFT_MODULE])
        await fs.start()
        try:
            argv = shell(mark)
            pid, exited = await fs.spawn_exec(argv[0], argv, {"PATH": os.defpath}, tmp_path,
                                              tmp_path / "log")
            assert os.getpgid(pid) == pid
            await asyncio.to_thread(wait_until, lambda: len(marked(mark)) == 2, "two sleeps")
        finally:
            await fs.close()
        await asyncio.wait_for(exited, DEADLINE)
        await asyncio.to_thread(wait_until, lambda: not marked(mark), "no sleep left")
    try:
        asyncio.run(body())
    finally:
        kill_marked(mark)


def test_failed_exec_is_a_spawn_error(tmp_path: Path) -> None:
    async def body() -> None:
        fs = ForkServer([HELLO_OPENSHIFT_MODULE])
        await fs.start()
        try:
            data = tmp_path / "data"
            data.write_text("not a program")
            data.chmod(0o644)
            with pytest.raises(process.SpawnError, match='exec: "data": Permission denied'):
                await fs.spawn_exec(str(data), ["data"], {}, tmp_path, tmp_path / "log")
            pid, exited = await fs.spawn_exec("/bin/sh", ["sh", "-c", "exit 3"], {}, tmp_path,
                                              tmp_path / "log")
            assert await asyncio.wait_for(exited, DEADLINE) == 3
        finally:
            await fs.close()
    asyncio.run(body())


def test_a_timed_out_spawn_leaves_no_child(tmp_path: Path) -> None:
    """The child blocks opening its log (a FIFO nobody reads): the spawn times out, and the
    child the template made for it is killed, not left running untracked."""
    mark = marker()
    fifo = tmp_path / "log.pipe"
    os.mkfifo(fifo)

    async def body() -> None:
        fs = ForkServer([HELLO_OPENSHIFT_MODULE], spawn_timeout=0.5)
        await fs.start()
        assert fs.proc is not None
        template = psutil.Process(fs.proc.pid)
        try:
            with pytest.raises(TimeoutError):
                await fs.spawn_exec("/bin/sleep", ["sleep", mark], {}, tmp_path, fifo)
            await asyncio.to_thread(wait_until, lambda: not unheld(template, fs), "no child")
            # and the template still serves
            pid, exited = await fs.spawn_exec("/bin/true", ["true"], {}, tmp_path,
                                              tmp_path / "log")
            assert await asyncio.wait_for(exited, DEADLINE) == 0
        finally:
            await fs.close()
        assert not marked(mark)
    try:
        asyncio.run(body())
    finally:
        kill_marked(mark)


PARENT = """
import asyncio, os, sys
from pathlib import Path
from skiff.node.forkserver import ForkServer
from skiff.node.images import HELLO_OPENSHIFT_MODULE
from skiff.node import process

async def main():
    mark, tmp = sys.argv[1], Path(sys.argv[2])
    fs = ForkServer([HELLO_OPENSHIFT_MODULE])
    await fs.start()
    argv = ["/bin/sh", "-c", f"sleep {mark} & sleep {mark}; wait"]
    await fs.spawn_exec(argv[0], argv, {"PATH": os.defpath}, tmp, tmp / "a.log")
    # and one started without the fork server: its parent-death signal is skiff's
    await process.spawn(["/bin/sleep", mark], {"PATH": os.defpath}, tmp, tmp / "b.log")
    print(fs.proc.pid, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_everything_dies_with_a_killed_parent(tmp_path: Path) -> None:
    mark = marker()
    parent = subprocess.Popen([sys.executable, "-c", PARENT, mark, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        template = int(parent.stdout.readline())
        wait_until(lambda: len(marked(mark)) == 3, "three sleeps")
        parent.kill()   # SIGKILL: no cleanup of its own
        parent.wait(DEADLINE)
        wait_until(lambda: not marked(mark), "no sleep left")
        wait_until(lambda: not psutil.pid_exists(template)
                   or psutil.Process(template).status() == psutil.STATUS_ZOMBIE,
                   "the template gone")
    finally:
        with contextlib.suppress(ProcessLookupError):
            parent.send_signal(signal.SIGKILL)
        parent.wait(DEADLINE)
        kill_marked(mark)


def test_sweep_kills_only_the_recorded_process(tmp_path: Path) -> None:
    """A pid file names a process by pid and start time: a reused pid is never killed."""
    mark = marker()
    proc = subprocess.Popen(["/bin/sleep", mark], start_new_session=True)
    try:
        pid_file = tmp_path / "forkserver.pid"
        process.record_pid(pid_file, proc.pid)
        created = psutil.Process(proc.pid).create_time()
        pid_file.write_text(f"{proc.pid} {created - 5}\n")      # same pid, another process
        assert process.sweep_supervisor(pid_file) is False
        assert proc.poll() is None and not pid_file.exists()
        process.record_pid(pid_file, proc.pid)
        assert process.sweep_supervisor(pid_file) is True
        proc.wait(DEADLINE)   # (the sweep may have reaped it: this test is its parent)
        assert not marked(mark)
        assert process.sweep_supervisor(pid_file) is False      # nothing recorded any more
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(DEADLINE)


def test_a_python_script_runs_as_a_fork_of_the_warm_template(tmp_path: Path) -> None:
    """`python3 app.py ARGS` of a local image: a child of the template (not a fresh
    interpreter) runs the script as __main__, its folder first on sys.path, its argv, env and
    cwd; its other threads finish and atexit runs before it exits with the script's code."""
    (tmp_path / "helper.py").write_text("VALUE = 'from the app folder'\n")
    (tmp_path / "app.py").write_text(
        "import atexit, json, os, sys, threading, time\n"
        "import helper\n"
        "def late():\n"
        "    time.sleep(0.2)\n"
        "    print('thread done', flush=True)\n"
        "threading.Thread(target=late).start()\n"
        "atexit.register(lambda: print('atexit ran', flush=True))\n"
        "print(json.dumps({'name': __name__, 'argv': sys.argv, 'env': os.environ.get('X'),\n"
        "                  'cwd': os.getcwd(), 'helper': helper.VALUE,\n"
        "                  'json_preloaded': 'json' in sys.modules}), flush=True)\n"
        "sys.exit(3 if sys.argv[1:] == ['--code', '3'] else 0)\n")

    async def body() -> None:
        fs = ForkServer([HELLO_OPENSHIFT_MODULE], preload=("json",))
        await fs.start()
        try:
            argv = ["python3", "app.py", "--code", "3"]
            script = fs.script_for(argv, tmp_path)
            assert script == str(tmp_path / "app.py")
            assert fs.script_for(["python3", "-u", "app.py"], tmp_path) is None
            assert fs.script_for(["python3", "missing.py"], tmp_path) is None
            assert fs.script_for(["sh", "app.py"], tmp_path) is None
            pid, exited = await fs.spawn_script(script, argv, {"X": "1", "PATH": os.defpath},
                                                tmp_path, tmp_path / "log")
            assert os.getppid() != pid
            code = await asyncio.wait_for(exited, DEADLINE)
            assert code == 3
        finally:
            await fs.close()

    asyncio.run(body())
    out = (tmp_path / "log").read_text().splitlines()
    import json
    info = json.loads(out[0])
    assert info == {"name": "__main__", "argv": ["app.py", "--code", "3"], "env": "1",
                    "cwd": str(tmp_path), "helper": "from the app folder",
                    "json_preloaded": True}
    assert out[1:] == ["thread done", "atexit ran"]


def test_without_preloads_scripts_are_not_forked(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("print('hi')\n")
    fs = ForkServer([HELLO_OPENSHIFT_MODULE])
    fs.ready = True
    assert fs.script_for(["python3", "app.py"], tmp_path) is None


def test_standbys_become_the_python_children_and_die_with_the_template(tmp_path: Path) -> None:
    """The template holds STANDBY children forked ahead of need: a module spawn is handed to
    one (its pid was announced as a standby), with the request's env, argv, cwd and log; used
    standbys are replaced after a quiet spell; closing kills the standbys too."""
    (tmp_path / "app.py").write_text(
        "import json, os, sys\n"
        "print(json.dumps({'argv': sys.argv, 'env': os.environ.get('X'), 'cwd': os.getcwd(),\n"
        "                  'sid': os.getsid(0) == os.getpid(),\n"
        "                  'threads': len(os.listdir('/proc/self/task'))}), flush=True)\n")

    async def body() -> None:
        fs = ForkServer([HELLO_OPENSHIFT_MODULE], preload=("json",), standby=2)
        await fs.start()
        assert fs.proc is not None
        template = psutil.Process(fs.proc.pid)
        try:
            await asyncio.to_thread(wait_until, lambda: len(fs.standbys) == 2, "two standbys")
            first = set(fs.standbys)
            assert {c.pid for c in template.children()} == first
            assert all(psutil.Process(p).num_threads() == 1 for p in first)
            argv = ["python3", "app.py", "a"]
            script = fs.script_for(argv, tmp_path)
            assert script is not None
            pid, exited = await fs.spawn_script(script, argv, {"X": "1"}, tmp_path,
                                                tmp_path / "log")
            assert pid in first and pid not in fs.standbys
            assert await asyncio.wait_for(exited, DEADLINE) == 0
            await asyncio.to_thread(wait_until, lambda: len(fs.standbys) == 2
                                    and fs.standbys & first == first - {pid}, "a new standby")
            held = set(fs.standbys)
        finally:
            await fs.close()
        await asyncio.to_thread(wait_until, lambda: not any(psutil.pid_exists(p) and
                                psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                                for p in held), "no standby left")
    asyncio.run(body())
    import json
    info = json.loads((tmp_path / "log").read_text().splitlines()[0])
    # single-threaded, as entering a pod's mount namespace needs (_rehearse makes no thread)
    assert info == {"argv": ["app.py", "a"], "env": "1", "cwd": str(tmp_path), "sid": True,
                    "threads": 1}


def test_without_standbys_every_child_is_a_fresh_fork(tmp_path: Path) -> None:
    async def body() -> None:
        fs = ForkServer([HELLO_OPENSHIFT_MODULE], preload=("json",), standby=0)
        await fs.start()
        try:
            (tmp_path / "app.py").write_text("print('hi')\n")
            argv = ["python3", "app.py"]
            script = fs.script_for(argv, tmp_path)
            assert script is not None
            pid, exited = await fs.spawn_script(script, argv, {}, tmp_path, tmp_path / "log")
            assert await asyncio.wait_for(exited, DEADLINE) == 0
            assert not fs.standbys
        finally:
            await fs.close()
    asyncio.run(body())
    assert (tmp_path / "log").read_text() == "hi\n"
