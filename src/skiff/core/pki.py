"""skiff's own certificates: the API server's CA and serving certificate.

Made once per home with `cryptography` and kept in <home>/pki/; kubectl trusts
the CA through the kubeconfig. (The mesh's SPIFFE CA lives in mesh/identity.py.)
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from skiff.core.home import make_private_dir, write_private


def _name(cn: str, org: str = "skiff") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_ca(cn: str, now: dt.datetime, days: int = 3650) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def issue(ca_cert_pem: bytes, ca_key_pem: bytes, cn: str, dns: list[str], ips: list[str],
          now: dt.datetime, days: int = 825) -> tuple[bytes, bytes]:
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, None)
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def write_pair(crt: Path, key: Path, pair: tuple[bytes, bytes]) -> None:
    """Write a (certificate, key) pair; the key readable by its owner only."""
    write_private(key, pair[1])
    write_private(crt, pair[0])


def ensure_ca(crt: Path, key: Path, cn: str, now: dt.datetime) -> bool:
    """Make a CA at crt/key unless both exist; True when a new one was made."""
    if crt.exists() and key.exists():
        return False
    write_pair(crt, key, make_ca(cn, now))
    return True


API_NAMES = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
             "kubernetes.default.svc.cluster.local"]


def _covers(crt: Path, names: list[str], ips: list[str]) -> bool:
    """Whether the certificate already names every DNS name and IP (else it is reissued)."""
    try:
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound, OSError):
        return False
    have_ips = {str(i) for i in san.get_values_for_type(x509.IPAddress)}
    have_names = set(san.get_values_for_type(x509.DNSName))
    return set(ips) <= have_ips and set(names) <= have_names


def ensure_api_pki(home: Path, now: dt.datetime,
                   extra_ips: tuple[str, ...] = ()) -> tuple[Path, Path, Path]:
    """(ca.crt, apiserver.crt, apiserver.key) under <home>/pki, made on first use; the
    serving certificate also names `extra_ips` (the kubernetes Service's ClusterIP and the
    pod network's bridge address, where pods reach the API server)."""
    pki = home / "pki"
    make_private_dir(pki)
    ca_crt, ca_key = pki / "ca.crt", pki / "ca.key"
    crt, key = pki / "apiserver.crt", pki / "apiserver.key"
    if ensure_ca(ca_crt, ca_key, "skiff-ca", now):
        crt.unlink(missing_ok=True)
    ips = ["127.0.0.1", "::1", *extra_ips]
    if not crt.exists() or not key.exists() or not _covers(crt, API_NAMES, ips):
        write_pair(crt, key, issue(
            ca_crt.read_bytes(), ca_key.read_bytes(), "skiff-apiserver", API_NAMES, ips, now))
    return ca_crt, crt, key
