"""queue-proxy's pure parts: its env read into settings, its request statistics and metrics text."""

from __future__ import annotations

import json

import pytest

from skiff.serving.queue import stats
from skiff.serving.queue.settings import AppProbe, SettingsError, parse, parse_probe

BASE = {"SERVING_NAMESPACE": "ns", "SERVING_REVISION": "hello-00001", "SERVING_POD": "p-1"}


def test_defaults_are_upstreams_ports_and_timeout() -> None:
    s = parse(BASE)
    assert (s.serving_port, s.admin_port, s.metrics_port, s.user_metrics_port) == (
        8012, 8022, 9090, 9091)
    assert s.user_port == 8080 and s.container_concurrency == 0 and s.timeout == 300
    assert s.probe == AppProbe("tcp", 8080) and s.port(8012) == 8012


def test_env_values_and_the_loopback_mapping() -> None:
    s = parse({**BASE, "USER_PORT": "9000", "CONTAINER_CONCURRENCY": "3",
               "REVISION_TIMEOUT_SECONDS": "7", "SKIFF_PORTS": json.dumps({"8012": 41000,
                                                                           "9000": 41001})})
    assert s.user_port == 9000 and s.container_concurrency == 3 and s.timeout == 7
    assert s.port(8012) == 41000 and s.port(9000) == 41001 and s.port(9090) == 9090


@pytest.mark.parametrize("env, message", [
    ({"SERVING_REVISION": "r"}, "SERVING_NAMESPACE is required"),
    ({**BASE, "CONTAINER_CONCURRENCY": "many"}, "CONTAINER_CONCURRENCY='many': not an integer"),
    ({**BASE, "CONTAINER_CONCURRENCY": "1001"}, "must be between 0 and 1000"),
    ({**BASE, "USER_PORT": "0"}, "USER_PORT='0': must be between 1 and 65535"),
    ({**BASE, "REVISION_TIMEOUT_SECONDS": "-1"}, "REVISION_TIMEOUT_SECONDS"),
    ({**BASE, "SKIFF_PORTS": "[1]"}, "SKIFF_PORTS"),
    ({**BASE, "SERVING_READINESS_PROBE": "{"}, "SERVING_READINESS_PROBE: not JSON"),
    ({**BASE, "SERVING_READINESS_PROBE": '{"periodSeconds": 1}'}, "needs httpGet"),
    ({**BASE, "SERVING_READINESS_PROBE": '{"tcpSocket": {}, "periodSeconds": -1}'},
     "periodSeconds"),
])
def test_bad_env_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse(env)


def test_probe_forms() -> None:
    http = parse_probe(json.dumps({"httpGet": {"path": "/ready", "port": 9000, "httpHeaders": [
        {"name": "X", "value": "1"}]}, "periodSeconds": 2, "timeoutSeconds": 3}), 8080)
    assert http == AppProbe("http", 9000, "/ready", "http", (("X", "1"),), period=2, timeout=3)
    assert parse_probe(json.dumps({"tcpSocket": {"port": "user-port"}}), 8080).port == 8080
    assert parse_probe(json.dumps({"exec": {"command": ["true"]}}), 8081) == AppProbe("tcp", 8081)
    assert parse_probe("", 8082) == AppProbe("tcp", 8082)


def test_request_stats_average_over_the_period() -> None:
    st = stats.RequestStats(0.0)
    st.request_in(0.0, proxied=False)
    st.request_in(0.5, proxied=True)
    st.request_out(1.0, proxied=True)
    r = st.report(2.0)
    # one request in flight for 2 s, one for 0.5 s: 1.25 on average over 2 s
    assert r.average_concurrency == pytest.approx(1.25)
    assert r.average_proxied_concurrency == pytest.approx(0.25)
    assert r.requests_per_second == pytest.approx(1.0) and r.proxied_per_second == 0.5
    # the next period starts from what is still in flight
    r2 = st.report(3.0)
    assert r2.average_concurrency == pytest.approx(1.0) and r2.requests_per_second == 0
    assert st.in_flight == 1 and r2.uptime == 3.0


def test_more_outs_than_ins_do_not_go_negative() -> None:
    st = stats.RequestStats(0.0)
    st.request_out(1.0, proxied=True)
    assert st.in_flight == 0 and st.report(2.0).average_concurrency == 0


def test_metrics_text_round_trips_through_the_scrapers_parser() -> None:
    r = stats.Report(12.5, 1.0, 3.25, 0.5, 42.0)
    text = stats.prometheus_text(r, "ns", "cfg", "rev", 'pod"x')
    assert b'destination_pod="pod\\"x"' in text
    assert b'queue_average_concurrent_requests{' in text
    assert stats.parse_metrics(text) == r


@pytest.mark.parametrize("text, message", [
    (b"queue_requests_per_second 1\n", "missing metrics"),
    (b"queue_requests_per_second{a=\"b\"} -1\n", "not a non-negative number"),
    (b"queue_requests_per_second{a=\"b\"} x\n", "no number"),
])
def test_bad_metrics_text_is_an_error(text: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stats.parse_metrics(text)
