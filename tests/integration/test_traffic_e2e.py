"""Knative traffic end to end, through kn-style CLI, the router and the gateway, with the real curl:
a two-revision split measured over 400 requests, tag URLs, and bad input that leaves other
services serving."""

from __future__ import annotations

import collections
import subprocess

from skiffproc import Skiff

DOMAIN = "apps.127.0.0.1.sslip.io"


def curl_many(skiff: Skiff, host: str, n: int) -> collections.Counter[str]:
    port = skiff.ports["--http-port"]
    url = f"http://{host}:{port}/"
    r = subprocess.run(["curl", "-sS", "--resolve", f"{host}:{port}:127.0.0.1", *([url] * n)],
                       capture_output=True, text=True, timeout=120)
    return collections.Counter(r.stdout.splitlines())


def create(skiff: Skiff, *args: str) -> str:
    r = skiff.skiff("service", *args, timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_two_revision_split_and_tags(skiff: Skiff) -> None:
    create(skiff, "create", "split", "--image", "docker.io/openshift/hello-openshift", "-e", "RESPONSE=one")
    create(skiff, "update", "split", "-e", "RESPONSE=two")
    create(skiff, "update", "split", "--traffic", "split-00001=50,split-00002=50",
           "--tag", "split-00001=blue", "--tag", "split-00002=green")
    traffic = skiff.kubectl_json("get", "ksvc", "split")["status"]["traffic"]
    assert sorted((t["revisionName"], t["percent"]) for t in traffic if t.get("percent")) == [
        ("split-00001", 50), ("split-00002", 50)]
    seen = curl_many(skiff, f"split-default.{DOMAIN}", 400)
    assert sum(seen.values()) == 400, seen
    # 400 draws at p=0.5: a 50±10 % band is far outside chance failure
    assert 160 <= seen["one"] <= 240 and 160 <= seen["two"] <= 240, seen
    assert curl_many(skiff, f"blue-split-default.{DOMAIN}", 20) == {"one": 20}
    assert curl_many(skiff, f"green-split-default.{DOMAIN}", 20) == {"two": 20}


def test_bad_input_leaves_other_services_serving(skiff: Skiff) -> None:
    create(skiff, "create", "steady", "--image", "docker.io/openshift/hello-openshift", "-e", "RESPONSE=ok")
    # invalid traffic: rejected with the upstream message, nothing changes
    bad = """{"spec":{"traffic":[{"latestRevision":true,"percent":90}]}}"""
    r = skiff.kubectl("patch", "ksvc", "steady", "--type=merge", "-p", bad, check=False)
    assert r.returncode != 0 and "Traffic targets sum to 90, want 100" in r.stderr
    # a bad image in another service, and a request for a host nobody serves
    r = skiff.skiff("service", "create", "broken", "--image", "example.invalid/nope:1", "--wait-timeout", "20")
    assert r.returncode != 0
    port = skiff.ports["--http-port"]
    r404 = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                           f"Host: nobody-default.{DOMAIN}", f"http://127.0.0.1:{port}/"],
                          capture_output=True, text=True, timeout=30)
    assert r404.stdout == "404"
    assert curl_many(skiff, f"steady-default.{DOMAIN}", 5) == {"ok": 5}
    assert skiff.kubectl_json("get", "ksvc", "steady")["metadata"]["generation"] == 1
