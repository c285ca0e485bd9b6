"""The sidecar's access log: CRI-format lines in the istio-proxy container's log file, one
line per event however the text came, and bounded (the file starts over at its limit)."""

from __future__ import annotations

import re
from pathlib import Path

from skiff.mesh.sidecar.host import ACCESS_LINE_MAX, AccessLog
from skiff.node import logformat

CRI = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z stdout F ")


def test_lines_are_cri_records_kubectl_logs_can_read(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    log = AccessLog(str(path))
    log.write('"GET /" 403 rbac_access_denied source=cluster.local/ns/a/sa/default')
    log.write("two\nlines")
    log.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and all(CRI.match(x) for x in lines)
    assert lines[1].endswith("F two lines")
    assert logformat.TS_WIDTH == len(lines[0].split(" ")[0])


def test_the_file_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    log = AccessLog(str(path), limit=4096)
    for i in range(500):
        log.write(f"request {i} " + "x" * 50)
    log.write("y" * (ACCESS_LINE_MAX * 2))
    log.close()
    assert path.stat().st_size <= 4096 + ACCESS_LINE_MAX + 100
    text = path.read_text()
    assert "access log started over: it reached 4096 bytes" in text
    assert max(len(x) for x in text.splitlines()) <= ACCESS_LINE_MAX + 64


def test_an_unwritable_path_is_not_an_error(tmp_path: Path) -> None:
    log = AccessLog(str(tmp_path / "missing" / "0.log"))
    log.write("nowhere to go")           # the request is served; only the line is lost
    log.close()
