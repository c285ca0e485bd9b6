"""The mesh CA: the root, SPIFFE workload certificates (checked with the real openssl CLI too),
rotation, peer verification, istio-ca-secret, and the root ConfigMaps as a reconciler table."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from skiff.core.memclient import MemoryClient
from skiff.mesh import ca as meshca
from skiff.mesh.ca import (
    CAHolder,
    CertError,
    RootCertReconciler,
    ca_from_secret,
    ca_secret,
    issue_workload_cert,
    make_self_signed_ca,
    needs_rotation,
    parse_spiffe_id,
    principal_of,
    root_configmap,
    rotation_time,
    spiffe_id_of,
    verify_workload_cert,
)
from tabletest import Row, run

Obj = dict[str, Any]
NOW = dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)
CA = make_self_signed_ca(NOW)


def test_root_is_istiods() -> None:
    c = CA.cert
    assert c.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "cluster.local"
    assert c.subject == c.issuer
    bc = c.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = c.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and not ku.digital_signature
    assert c.not_valid_after_utc - c.not_valid_before_utc == dt.timedelta(days=3650)


def test_workload_cert() -> None:
    pem, key = issue_workload_cert(CA, "team-alpha-1", "default", NOW)
    c = x509.load_pem_x509_certificate(pem)
    assert list(c.subject) == []
    san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/team-alpha-1/sa/default"]
    ku = c.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment and not ku.key_cert_sign
    eku = c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert c.not_valid_before_utc == NOW - dt.timedelta(minutes=2)      # clock skew
    assert c.not_valid_after_utc == NOW + dt.timedelta(hours=24)
    assert b"PRIVATE KEY" in key
    assert spiffe_id_of(pem) == "spiffe://cluster.local/ns/team-alpha-1/sa/default"


def test_workload_cert_ttl_rules() -> None:
    short = make_self_signed_ca(NOW, ttl=dt.timedelta(hours=1))
    pem, _ = issue_workload_cert(short, "a", "b", NOW)
    assert x509.load_pem_x509_certificate(pem).not_valid_after_utc == \
        short.cert.not_valid_after_utc          # never outlives the signer
    with pytest.raises(ValueError, match="signing certificate has expired"):
        issue_workload_cert(short, "a", "b", NOW + dt.timedelta(hours=2))
    with pytest.raises(ValueError, match="greater than the max allowed TTL"):
        issue_workload_cert(CA, "a", "b", NOW, ttl=dt.timedelta(days=91))
    with pytest.raises(ValueError, match="namespace and a service account"):
        issue_workload_cert(CA, "", "b", NOW)


def test_rotation_at_half_life() -> None:
    pem, _ = issue_workload_cert(CA, "ns", "sa", NOW)
    half = NOW - dt.timedelta(minutes=2) + (dt.timedelta(hours=24, minutes=2) / 2)
    assert rotation_time(pem) == half
    assert not needs_rotation(pem, NOW)
    assert not needs_rotation(pem, half - dt.timedelta(seconds=1))
    assert needs_rotation(pem, half)
    assert needs_rotation(pem, NOW + dt.timedelta(days=2))          # expired
    assert not meshca.root_needs_rotation(CA, NOW + dt.timedelta(days=365 * 7))
    assert meshca.root_needs_rotation(CA, NOW + dt.timedelta(days=365 * 8 + 60))


def test_verify() -> None:
    pem, _ = issue_workload_cert(CA, "team-bravo-1", "activator", NOW)
    assert verify_workload_cert(pem, CA.root_pem, NOW) == \
        "spiffe://cluster.local/ns/team-bravo-1/sa/activator"
    other = make_self_signed_ca(NOW)
    with pytest.raises(CertError, match="not issued by the mesh CA"):
        verify_workload_cert(pem, other.root_pem, NOW)
    with pytest.raises(CertError, match="expired"):
        verify_workload_cert(pem, CA.root_pem, NOW + dt.timedelta(days=1))
    with pytest.raises(CertError, match="not yet valid"):
        verify_workload_cert(pem, CA.root_pem, NOW - dt.timedelta(hours=1))
    foreign, _ = issue_workload_cert(CA, "a", "b", NOW, trust_domain="example.org")
    with pytest.raises(CertError, match="trust domain"):
        verify_workload_cert(foreign, CA.root_pem, NOW)


@pytest.mark.parametrize("uri,want", [
    ("spiffe://cluster.local/ns/a/sa/b", ("cluster.local", "a", "b")),
    ("spiffe://cluster.local/ns/a/sa/", None), ("http://x/ns/a/sa/b", None),
    ("spiffe://cluster.local/ns/a", None), ("spiffe://td/xs/a/sa/b", None),
])
def test_parse_spiffe_id(uri: str, want: tuple[str, str, str] | None) -> None:
    if want is None:
        with pytest.raises(ValueError):
            parse_spiffe_id(uri)
    else:
        assert parse_spiffe_id(uri) == want


def test_principal() -> None:
    assert principal_of("spiffe://cluster.local/ns/a/sa/b") == "cluster.local/ns/a/sa/b"


def test_secret_round_trip() -> None:
    s = ca_secret(CA)
    assert s["type"] == "istio.io/ca-root"
    assert s["metadata"] == {"name": "istio-ca-secret", "namespace": "istio-system"}
    assert set(s["data"]) == {"ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem",
                              "key.pem"}
    assert s["data"]["cert-chain.pem"] == s["data"]["key.pem"] == ""
    assert ca_from_secret(s) == CA
    bad = ca_secret(CA)
    bad["data"]["ca-key.pem"] = ca_secret(make_self_signed_ca(NOW))["data"]["ca-key.pem"]
    with pytest.raises(ValueError, match="does not match"):
        ca_from_secret(bad)
    with pytest.raises(ValueError, match="no usable CA"):
        ca_from_secret({"data": {}})


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
def test_openssl_verifies_and_shows_the_spiffe_uri(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    ca = make_self_signed_ca(now)
    pem, key = issue_workload_cert(ca, "team-alpha-1", "default", now)
    (tmp_path / "root-cert.pem").write_bytes(ca.root_pem)
    (tmp_path / "cert-chain.pem").write_bytes(pem)
    out = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "root-cert.pem"),
                          str(tmp_path / "cert-chain.pem")], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(": OK")
    text = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "cert-chain.pem"),
                           "-noout", "-text"], capture_output=True, text=True, check=True).stdout
    assert "X509v3 Subject Alternative Name: critical" in text
    assert "URI:spiffe://cluster.local/ns/team-alpha-1/sa/default" in text
    assert "Digital Signature, Key Encipherment" in text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text
    # Another CA's root does not verify it.
    (tmp_path / "other.pem").write_bytes(make_self_signed_ca(now).root_pem)
    bad = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "other.pem"),
                          str(tmp_path / "cert-chain.pem")], capture_output=True, text=True,
                         check=False)
    assert bad.returncode != 0


# --- CAHolder and the root ConfigMaps --------------------------------------------------------

def ns(name: str, **labels: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, **({"labels": labels} if labels else {})}}


MEMBER = {"maistra.io/member-of": "istio-system"}
ROOT_TEXT = CA.root_pem.decode()


def cm(namespace: str, data: str = ROOT_TEXT, **labels: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "istio-ca-root-cert", "namespace": namespace,
                         **({"labels": labels} if labels else {})},
            "data": {"root-cert.pem": data}}


SECRET = ca_secret(CA)
ROWS = [
    Row("a member namespace gets the root", [SECRET, ns("team-a", **MEMBER)], "team-a",
        want_creates=[{"kind": "ConfigMap", "metadata": {
            "name": "istio-ca-root-cert", "namespace": "team-a",
            "labels": {"istio.io/config": "true"}}, "data": {"root-cert.pem": ROOT_TEXT}}]),
    Row("in sync: nothing", [SECRET, ns("team-a", **MEMBER),
                             cm("team-a", **{"istio.io/config": "true"})], "team-a"),
    Row("a stale root is rewritten",
        [SECRET, ns("team-a", **MEMBER), cm("team-a", "old", **{"istio.io/config": "true"})],
        "team-a", want_updates=[{"data": {"root-cert.pem": ROOT_TEXT}}]),
    Row("a namespace that left the mesh loses it",
        [SECRET, ns("team-a"), cm("team-a", **{"istio.io/config": "true"})], "team-a",
        want_deletes=[("ConfigMap", "istio-ca-root-cert")]),
    Row("a user's ConfigMap of that name outside the mesh is left alone",
        [SECRET, ns("team-a"), cm("team-a", "mine")], "team-a"),
    Row("a non-member gets nothing", [SECRET, ns("team-a")], "team-a"),
    Row("no CA yet: it is created in istio-system, then the root published",
        [ns("istio-system", **MEMBER)], "istio-system",
        want_creates=[{"kind": "Secret", "type": "istio.io/ca-root",
                       "metadata": {"name": "istio-ca-secret", "namespace": "istio-system"}},
                      {"kind": "ConfigMap", "metadata": {"namespace": "istio-system"}}]),
]


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_root_cert_reconciler(row: Row) -> None:
    run(row, lambda c: RootCertReconciler(c, CAHolder()))


def test_holder_reuses_the_secret_and_writes_it_back() -> None:
    client = MemoryClient([ns("istio-system")])
    holder = CAHolder()
    first = asyncio.run(holder.ensure(client, NOW))
    again = asyncio.run(CAHolder().ensure(client, NOW))      # a restart: same root
    assert first == again
    from skiff.core.client import Ref
    asyncio.run(client.delete(Ref("v1", "Secret"), "istio-ca-secret", "istio-system"))
    assert asyncio.run(holder.ensure(client, NOW)) == first
    s = asyncio.run(client.get(Ref("v1", "Secret"), "istio-ca-secret", "istio-system"))
    assert base64.b64decode(s["data"]["root-cert.pem"]) == first.root_pem


def test_root_configmap_shape() -> None:
    assert root_configmap("x", b"PEM") == {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "istio-ca-root-cert", "namespace": "x",
                     "labels": {"istio.io/config": "true"}},
        "data": {"root-cert.pem": "PEM"}}
