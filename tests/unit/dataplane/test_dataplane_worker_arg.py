"""The data-plane process's --worker I/N (which worker it is, so its activator takes its share
of each revision's capacity): passed by the supervisor with several workers, checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from skiff.dataplane.main import parse_args
from skiff.dataplane.model import GatewaySettings
from skiff.dataplane.supervisor import dataplane_argv

BASE = ["--home", "/h", "--socket", "/h/s", "--http-port", "1", "--https-port", "2",
        "--local-gateway-port", "3", "--internal-https-port", "4"]


def test_worker_defaults_to_the_only_one_and_parses_i_of_n() -> None:
    assert parse_args(BASE).worker == (0, 1)
    assert parse_args([*BASE, "--worker", "1/2"]).worker == (1, 2)


@pytest.mark.parametrize("bad", ["2/2", "1", "a/b", "1/-2", "0/0", "0/65"])
def test_a_bad_worker_is_refused_with_the_reason(bad: str, capsys: pytest.CaptureFixture[str],
                                                 ) -> None:
    with pytest.raises(SystemExit):
        parse_args([*BASE, "--worker", bad])
    assert "is not I/N" in capsys.readouterr().err


def test_the_argv_is_what_parse_args_reads() -> None:
    settings = GatewaySettings(host="127.0.0.1", http_port=1, https_port=2, local_gateway_port=3,
                               internal_https_port=4, domain="example.com")
    argv = dataplane_argv(Path("/h"), Path("/h/s"), settings)
    assert parse_args([*argv[3:], "--reuse-port", "--worker", "0/2"]).worker == (0, 2)
