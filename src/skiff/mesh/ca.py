"""The mesh CA (istiod's self-signed CA): SPIFFE workload certificates and the published roots.

Pure part: the self-signed root (EC P-256; subject O=<trust domain>, CA,
keyCertSign only, 10 years: istiod's CITADEL_SELF_SIGNED_CA_CERT_TTL),
issue_workload_cert() (empty subject, a critical URI SAN
spiffe://<trust domain>/ns/<ns>/sa/<sa>, digitalSignature+keyEncipherment,
serverAuth+clientAuth, NotBefore two minutes back for clock skew, NotAfter
clamped to the root's, 24 h by default: Istio's DEFAULT_WORKLOAD_CERT_TTL),
needs_rotation() (pilot-agent renews once SECRET_GRACE_PERIOD_RATIO = 0.5
of the lifetime is left; no jitter here, the caller may add it),
spiffe_id_of() and verify_workload_cert() for the sidecar's peer checks,
and the objects: the Secret istio-system/istio-ca-secret (type
istio.io/ca-root; ca-cert.pem, ca-key.pem, root-cert.pem, and cert-chain.pem
and key.pem empty, exactly as istiod's BuildSecret writes it) and the
ConfigMap istio-ca-root-cert (key root-cert.pem, label istio.io/config=true,
as istiod's namespace controller writes it).

Where keys live: the CA key only in that Secret, in the store (the store is
the private home's 0600 database), as istiod keeps it; skiff writes no key
file for the mesh. Workload keys are made in memory per call and handed to
the caller (the sidecar); they are never stored.

Shell part: CAHolder loads the CA from the Secret or creates it once (a
restart finds and reuses it; a deleted Secret is written back from memory,
so the roots members trust do not change under them), and
RootCertReconciler keeps istio-ca-root-cert in every namespace labelled
maistra.io/member-of (membership.py's label; the control plane's own
namespace carries it too) and removes the ones it made from namespaces
that left. Neighbours: membership.py (who is a member), core/pki.py (skiff's
own API CA, not the mesh's), the sidecar work (issues through CAHolder.ca).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from skiff.core.client import ApiError, Client, Obj, Ref
from skiff.core.clock import utcnow
from skiff.core.controller import Key, Mapper
from skiff.core.reconcile import KeySet, get_or_none

log = logging.getLogger("skiff.mesh.ca")

TRUST_DOMAIN = "cluster.local"
ROOT_NAMESPACE = "istio-system"
CA_SECRET = "istio-ca-secret"
CA_SECRET_TYPE = "istio.io/ca-root"
CA_CERT_FILE = "ca-cert.pem"
CA_KEY_FILE = "ca-key.pem"
ROOT_CERT_FILE = "root-cert.pem"
CERT_CHAIN_FILE = "cert-chain.pem"
PRIVATE_KEY_FILE = "key.pem"
ROOT_CONFIGMAP = "istio-ca-root-cert"
CONFIG_LABEL = "istio.io/config"
MEMBER_OF = "maistra.io/member-of"     # membership.py sets it; repeated to keep ca.py standalone

CA_TTL = dt.timedelta(days=3650)          # CITADEL_SELF_SIGNED_CA_CERT_TTL
WORKLOAD_CERT_TTL = dt.timedelta(hours=24)  # DEFAULT_WORKLOAD_CERT_TTL
MAX_WORKLOAD_CERT_TTL = dt.timedelta(days=90)  # MAX_WORKLOAD_CERT_TTL
CLOCK_SKEW = dt.timedelta(minutes=2)      # util.ClockSkewGracePeriod
GRACE_RATIO = 0.5                         # pilot-agent's SECRET_GRACE_PERIOD_RATIO
ROOT_GRACE_PERCENTILE = 20                # CITADEL_SELF_SIGNED_ROOT_CERT_GRACE_PERIOD_PERCENTILE

SECRET = Ref("v1", "Secret")
CONFIG_MAP = Ref("v1", "ConfigMap")
NAMESPACE = Ref("v1", "Namespace")


class CertError(ValueError):
    """A peer certificate the mesh refuses; the message says why (for the sidecar's log)."""


@dataclass(frozen=True)
class MeshCA:
    """The signing CA: its certificate (self-signed, so also the root) and key, PEM."""
    cert_pem: bytes
    key_pem: bytes

    @property
    def root_pem(self) -> bytes:
        return self.cert_pem

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def key(self) -> ec.EllipticCurvePrivateKey:
        k = serialization.load_pem_private_key(self.key_pem, None)
        if not isinstance(k, ec.EllipticCurvePrivateKey):
            raise ValueError("the mesh CA key is not an EC key")
        return k


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _utc(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def make_self_signed_ca(now: dt.datetime, trust_domain: str = TRUST_DOMAIN,
                        ttl: dt.timedelta = CA_TTL) -> MeshCA:
    """istiod's self-signed root: O=<trust domain>, CA, keyCertSign, `ttl` from `now`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain)])
    now = _utc(now)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + ttl)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, key_cert_sign=True,
                                         crl_sign=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return MeshCA(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def spiffe_id(namespace: str, service_account: str, trust_domain: str = TRUST_DOMAIN) -> str:
    """spiffe://<trust domain>/ns/<namespace>/sa/<service account> (istio pkg/spiffe)."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def parse_spiffe_id(uri: str) -> tuple[str, str, str]:
    """(trust domain, namespace, service account) of a workload SPIFFE ID; ValueError if it is
    not one."""
    if not uri.startswith("spiffe://"):
        raise ValueError(f"not a SPIFFE ID: {uri!r}")
    parts = uri[len("spiffe://"):].split("/")
    if len(parts) != 5 or parts[1] != "ns" or parts[3] != "sa" or not all(parts):
        raise ValueError(f"not a workload SPIFFE ID (spiffe://<td>/ns/<ns>/sa/<sa>): {uri!r}")
    return parts[0], parts[2], parts[4]


def principal_of(uri: str) -> str:
    """The AuthorizationPolicy principal of a SPIFFE ID: the URI without spiffe://."""
    return uri[len("spiffe://"):] if uri.startswith("spiffe://") else uri


def issue_workload_cert(ca: MeshCA, namespace: str, service_account: str, now: dt.datetime,
                        ttl: dt.timedelta = WORKLOAD_CERT_TTL,
                        trust_domain: str = TRUST_DOMAIN) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for the workload identity `namespace`/`service_account`,
    as istiod signs a CSR: empty subject, critical URI SAN, leaf key usages, both EKUs."""
    if not namespace or not service_account:
        raise ValueError("a workload identity needs a namespace and a service account")
    if ttl <= dt.timedelta(0):
        ttl = WORKLOAD_CERT_TTL          # istiod: a non-positive requested TTL gets the default
    if ttl > MAX_WORKLOAD_CERT_TTL:
        raise ValueError(f"requested TTL {ttl} is greater than the max allowed TTL "
                         f"{MAX_WORKLOAD_CERT_TTL}")
    now = _utc(now)
    ca_cert = ca.cert
    ca_end = ca_cert.not_valid_after_utc
    if now >= ca_end:
        raise ValueError(f"signing certificate has expired at {ca_end.isoformat()}")
    not_after = min(now + ttl, ca_end)    # a leaf never outlives its signer (istio clamps)
    key = ec.generate_private_key(ec.SECP256R1())
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (x509.CertificateBuilder().subject_name(x509.Name([]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW).not_valid_after(not_after)
            # SAN is critical because the subject is empty (X.509 and SPIFFE require it).
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(
                spiffe_id(namespace, service_account, trust_domain))]), critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                         key_cert_sign=False, crl_sign=False,
                                         content_commitment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                           critical=False)
            .sign(ca.key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def _load(cert: bytes | x509.Certificate) -> x509.Certificate:
    return cert if isinstance(cert, x509.Certificate) else x509.load_pem_x509_certificate(cert)


def spiffe_id_of(cert: bytes | x509.Certificate) -> str | None:
    """The certificate's spiffe:// URI SAN, or None when it has none."""
    try:
        san = _load(cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith("spiffe://"):
            return str(uri)
    return None


def rotation_time(cert: bytes | x509.Certificate, grace_ratio: float = GRACE_RATIO) -> dt.datetime:
    """When pilot-agent would renew `cert`: once `grace_ratio` of its lifetime is left."""
    c = _load(cert)
    start, end = c.not_valid_before_utc, c.not_valid_after_utc
    return end - (end - start) * min(max(grace_ratio, 0.0), 1.0)


def needs_rotation(cert: bytes | x509.Certificate, now: dt.datetime,
                   grace_ratio: float = GRACE_RATIO) -> bool:
    """Whether `cert` is due for renewal at `now` (expired ones are, too)."""
    return _utc(now) >= rotation_time(cert, grace_ratio)


def root_needs_rotation(ca: MeshCA, now: dt.datetime) -> bool:
    """istiod's root rotator: renew the self-signed root when 20% of its lifetime is left.
    (Reported only: skiff does not rotate the root yet.)"""
    return needs_rotation(ca.cert, now, ROOT_GRACE_PERCENTILE / 100)


def verify_workload_cert(cert_pem: bytes, root_pem: bytes, now: dt.datetime,
                         trust_domain: str = TRUST_DOMAIN) -> str:
    """The peer's SPIFFE ID if `cert_pem` is a mesh workload certificate valid at `now` and
    signed by `root_pem`; CertError naming the reason otherwise."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as e:
        raise CertError(f"unreadable certificate: {e}") from None
    root = x509.load_pem_x509_certificate(root_pem)
    try:
        cert.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        raise CertError("certificate not issued by the mesh CA") from None
    now = _utc(now)
    if now < cert.not_valid_before_utc:
        raise CertError(f"certificate not yet valid (from {cert.not_valid_before_utc.isoformat()})")
    if now >= cert.not_valid_after_utc:
        raise CertError(f"certificate expired at {cert.not_valid_after_utc.isoformat()}")
    sid = spiffe_id_of(cert)
    if sid is None:
        raise CertError("certificate has no SPIFFE URI SAN")
    try:
        td, _, _ = parse_spiffe_id(sid)
    except ValueError as e:
        raise CertError(str(e)) from None
    if td != trust_domain:
        raise CertError(f"trust domain {td!r} is not the mesh's {trust_domain!r}")
    return sid


# --- the objects ---------------------------------------------------------------------------

def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def ca_secret(ca: MeshCA, namespace: str = ROOT_NAMESPACE) -> Obj:
    """istiod's BuildSecret(istio-ca-secret, ns, nil, nil, cert, cert, key, istio.io/ca-root)."""
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": CA_SECRET, "namespace": namespace},
            "type": CA_SECRET_TYPE,
            "data": {CA_CERT_FILE: _b64(ca.cert_pem), CA_KEY_FILE: _b64(ca.key_pem),
                     ROOT_CERT_FILE: _b64(ca.root_pem), CERT_CHAIN_FILE: "",
                     PRIVATE_KEY_FILE: ""}}


def ca_from_secret(secret: Obj) -> MeshCA:
    """The CA kept in istio-ca-secret; ValueError when the Secret does not hold a usable one."""
    data: Mapping[str, Any] = secret.get("data") or {}
    try:
        ca = MeshCA(base64.b64decode(data.get(CA_CERT_FILE) or ""),
                    base64.b64decode(data.get(CA_KEY_FILE) or ""))
        cert, key = ca.cert, ca.key
    except (ValueError, TypeError) as e:
        raise ValueError(f"{CA_SECRET} holds no usable CA ({CA_CERT_FILE}/{CA_KEY_FILE}): {e}") \
            from None
    if cert.public_key() != key.public_key():
        raise ValueError(f"{CA_SECRET}: {CA_KEY_FILE} does not match {CA_CERT_FILE}")
    return ca


def root_configmap(namespace: str, root_pem: bytes) -> Obj:
    """istio-ca-root-cert, as istiod's namespace controller writes it."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": ROOT_CONFIGMAP, "namespace": namespace,
                         "labels": {CONFIG_LABEL: "true"}},
            "data": {ROOT_CERT_FILE: root_pem.decode()}}


def wants_root(namespace: Obj, root_namespace: str = ROOT_NAMESPACE) -> bool:
    """Whether a namespace gets the root ConfigMap: it is in a mesh (labelled member-of; the
    control plane's namespace is labelled too) and not being deleted."""
    meta = namespace.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return False
    return bool((meta.get("labels") or {}).get(MEMBER_OF))


# --- the shells ----------------------------------------------------------------------------

class CAHolder:
    """The mesh CA of this platform, loaded from (or created into) istio-ca-secret once."""

    def __init__(self, namespace: str = ROOT_NAMESPACE) -> None:
        self.namespace = namespace
        self.ca: MeshCA | None = None
        self._lock = asyncio.Lock()

    async def ensure(self, client: Client, now: dt.datetime | None = None) -> MeshCA:
        """The CA; the Secret is read, or created when missing (then re-read on a conflict, so
        two racing creators agree on one root)."""
        async with self._lock:
            secret = await get_or_none(client, SECRET, CA_SECRET, self.namespace)
            if secret is not None:
                ca = ca_from_secret(secret)
                if self.ca is not None and ca != self.ca:
                    log.warning("mesh CA: %s/%s changed; using the new root", self.namespace,
                                CA_SECRET)
                self.ca = ca
                return ca
            if self.ca is None:
                self.ca = make_self_signed_ca(now or utcnow())
                log.info("mesh CA: created a self-signed root in %s/%s", self.namespace,
                         CA_SECRET)
            else:
                log.warning("mesh CA: %s/%s was deleted; writing it back", self.namespace,
                            CA_SECRET)
            try:
                await client.create(ca_secret(self.ca, self.namespace))
            except ApiError as e:
                if e.code != 409:
                    raise
                secret = await client.get(SECRET, CA_SECRET, self.namespace)
                self.ca = ca_from_secret(secret)
            return self.ca


class RootCertReconciler:
    """Keeps istio-ca-root-cert in every mesh namespace (istiod's namespace controller)."""
    name = "mesh-root-cert"
    primary = NAMESPACE

    def __init__(self, client: Client, holder: CAHolder) -> None:
        self.client = client
        self.holder = holder
        self.seen = KeySet()

    def secondary(self) -> list[tuple[Ref, Mapper]]:
        def of_configmap(o: Obj) -> list[Key]:
            m = o.get("metadata") or {}
            return [("", m.get("namespace") or "")] if m.get("name") == ROOT_CONFIGMAP else []

        def of_secret(o: Obj) -> list[Key]:
            m = o.get("metadata") or {}
            if m.get("name") == CA_SECRET and m.get("namespace") == self.holder.namespace:
                return self.seen.all()(o)
            return []
        return [(CONFIG_MAP, of_configmap), (SECRET, of_secret)]

    async def reconcile(self, namespace: str, name: str) -> float | None:
        ns = await get_or_none(self.client, NAMESPACE, name, "")
        if ns is None:
            self.seen.gone(("", name))
            return None
        self.seen.seen(("", name))
        have = await get_or_none(self.client, CONFIG_MAP, ROOT_CONFIGMAP, name)
        if not wants_root(ns, self.holder.namespace):
            # Only the ConfigMaps this controller writes (istio's label) are taken back.
            if have is not None and not (ns["metadata"].get("deletionTimestamp")) and \
                    (have["metadata"].get("labels") or {}).get(CONFIG_LABEL) == "true":
                await self.client.delete(CONFIG_MAP, ROOT_CONFIGMAP, name)
            return None
        ca = await self.holder.ensure(self.client)
        want = root_configmap(name, ca.root_pem)
        if have is None:
            try:
                await self.client.create(want)
            except ApiError as e:
                if e.code != 409:
                    raise
                return 0.0          # created meanwhile: look again
        elif have.get("data") != want["data"] or \
                (have["metadata"].get("labels") or {}).get(CONFIG_LABEL) != "true":
            upd = copy.deepcopy(have)
            upd["data"] = want["data"]
            upd["metadata"].setdefault("labels", {})[CONFIG_LABEL] = "true"
            await self.client.update(upd)
        return None
