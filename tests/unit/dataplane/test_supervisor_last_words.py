"""The supervisor's start check (dataplane/supervisor.py) against a real snapshot channel and
real child processes: a data plane that cannot listen says why over the channel and exits,
and the platform's error must be that reason even when the exit is seen before the words
are read."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from skiff.dataplane import codec
from skiff.dataplane.channel import SnapshotServer
from skiff.dataplane.model import GatewaySettings
from skiff.dataplane.supervisor import DataPlaneSupervisor

WHY = "the data plane cannot listen on 127.0.0.1:1: Address already in use"


async def _exited_child() -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "raise SystemExit(3)")
    await proc.wait()
    return proc


async def _say(path: Path, pid: int, error: str) -> None:
    _, writer = await asyncio.open_unix_connection(str(path))
    writer.write(codec.frame(codec.hello_message(pid, 0, error)))
    await writer.drain()
    writer.close()


def _check(tmp_path: Path, words_after: float | None) -> str:
    async def go() -> str:
        server = SnapshotServer(tmp_path / "dp.sock")
        await server.start()
        try:
            sup = DataPlaneSupervisor(server, tmp_path, GatewaySettings("127.0.0.1"))
            proc = await _exited_child()           # its exit is there to be seen at once
            check = asyncio.create_task(sup._await_hello(proc, timeout=10))
            if words_after is not None:
                await asyncio.sleep(words_after)
                await _say(server.path, proc.pid, WHY)
            return await asyncio.wait_for(check, 10)
        finally:
            await server.stop()
    return asyncio.run(go())


def test_words_read_after_the_exit_is_seen_are_the_error(tmp_path: Path) -> None:
    assert _check(tmp_path, words_after=0.2) == WHY


def test_an_exit_without_words_says_its_code(tmp_path: Path) -> None:
    assert _check(tmp_path, words_after=None) == \
        "the data plane exited with code 3 before it listened"
