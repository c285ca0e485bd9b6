"""ServiceAccount tokens: JWTs signed RS256 with the platform's key, as kube-apiserver's.

The claims are upstream's bound tokens (pkg/serviceaccount/claims.go): iss and
aud https://kubernetes.default.svc.cluster.local, sub
system:serviceaccount:NS:NAME, exp/iat/nbf, jti, and the private
"kubernetes.io" claim naming the ServiceAccount and its uid, so a token dies
with its ServiceAccount (the authenticator compares the uid with the live
object's). The key id is upstream's too (SHA-256 of the DER public key,
base64url). Pure apart from key generation's randomness: `now` is passed in;
the key's file lives with the shell (gate.py keeps it in the home, 0600).
cryptography does the RSA; the JWT framing is three base64url parts, written
here rather than taking a JWT dependency. Neighbours: reviews.py (TokenRequest
issues), gate.py (authenticates).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCE = ISSUER          # the API server's own audience (--api-audiences defaults to the issuer)
LEEWAY_S = 60              # go-jose's DefaultLeeway, which upstream's validator uses
SA_PREFIX = "system:serviceaccount:"

Claims = dict[str, Any]


def generate_key() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """The signing key and its public half (one per platform home)."""

    def __init__(self, private_pem: bytes) -> None:
        key = serialization.load_pem_private_key(private_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the service account key must be an RSA key")
        self._key = key
        self._public = key.public_key()
        der = self._public.public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = _b64(hashlib.sha256(der).digest())
        self._header = _b64(json.dumps({"alg": "RS256", "kid": self.kid},
                                       separators=(",", ":")).encode())

    def sign(self, claims: Claims) -> str:
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{self._header}.{payload}".encode("ascii")
        sig = self._key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{self._header}.{payload}.{_b64(sig)}"

    def verify(self, token: str, now: datetime) -> Claims | str:
        """The claims of a token this key signed and that is valid at `now`, or why not."""
        parts = token.split(".")
        if len(parts) != 3:
            return "not a JWT"
        try:
            header = json.loads(_unb64(parts[0]))
            if not isinstance(header, dict) or header.get("alg") != "RS256":
                return "unexpected signing algorithm"
            sig = _unb64(parts[2])
            self._public.verify(sig, f"{parts[0]}.{parts[1]}".encode("ascii"),
                                padding.PKCS1v15(), hashes.SHA256())
            claims = json.loads(_unb64(parts[1]))
        except InvalidSignature:
            return "invalid signature"
        except (ValueError, UnicodeError):
            return "malformed token"
        if not isinstance(claims, dict):
            return "malformed claims"
        return check_claims(claims, now)


def check_claims(claims: Claims, now: datetime) -> Claims | str:
    """Issuer, audience and time window (with upstream's minute of leeway)."""
    if claims.get("iss") != ISSUER:
        return "token issuer is not skiff's"
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if AUDIENCE not in auds:
        return "token audiences are invalid"
    t = now.timestamp()
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, (int, float)) or t - LEEWAY_S > exp:
        return "token has expired"
    if isinstance(nbf, (int, float)) and t + LEEWAY_S < nbf:
        return "token is not valid yet"
    sub = str(claims.get("sub", ""))
    k8s = claims.get("kubernetes.io")
    if not sub.startswith(SA_PREFIX) or not isinstance(k8s, dict):
        return "not a service account token"
    return claims


@dataclass(frozen=True)
class ServiceAccountRef:
    namespace: str
    name: str
    uid: str

    @property
    def username(self) -> str:
        return f"{SA_PREFIX}{self.namespace}:{self.name}"


def service_account_of(claims: Claims) -> ServiceAccountRef | None:
    k8s = claims.get("kubernetes.io") or {}
    sa = k8s.get("serviceaccount") or {} if isinstance(k8s, dict) else {}
    ns, name, uid = k8s.get("namespace"), sa.get("name"), sa.get("uid")
    if not (isinstance(ns, str) and isinstance(name, str) and isinstance(uid, str)):
        return None
    ref = ServiceAccountRef(ns, name, uid)
    return ref if claims.get("sub") == ref.username else None


def service_account_claims(namespace: str, name: str, uid: str, now: datetime,
                           expiration_seconds: int, audiences: list[str] | None = None,
                           jti: str | None = None) -> Claims:
    iat = int(now.timestamp())
    return {
        "aud": list(audiences or [AUDIENCE]),
        "exp": iat + expiration_seconds,
        "iat": iat,
        "iss": ISSUER,
        "jti": jti or str(uuid.uuid4()),
        "kubernetes.io": {"namespace": namespace,
                          "serviceaccount": {"name": name, "uid": uid}},
        "nbf": iat,
        "sub": f"{SA_PREFIX}{namespace}:{name}",
    }
