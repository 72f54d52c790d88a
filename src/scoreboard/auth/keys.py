"""Signing keys: an HS256 secret (generated once and kept 0600) or an asymmetric private key, each
with the one algorithm it may be used with (RFC 8725 §3.1: the key decides the algorithm, never the
token)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import get_default_algorithms

SYMMETRIC = {"HS256", "HS384", "HS512"}
ASYMMETRIC = {"RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"}
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384"}


@dataclass(frozen=True, slots=True)
class SigningKey:
    algorithm: str
    kid: str
    signing: Any
    verifying: Any
    public_jwk: dict[str, Any] | None


def load_or_create_secret(path: Path) -> str:
    """The HS256 secret kept at `path`: created with mode 0600 on first use, then reused.

    Concurrent first starts (several workers) agree on one secret, and none reads a half-written
    file: the secret is written to a private file first, then linked into place, which fails if
    another process got there first.
    """
    if not path.exists():
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            secret = secrets.token_urlsafe(48)
            file.write(secret)
        try:
            os.link(draft, path)
            return secret
        except FileExistsError:
            pass  # another worker's secret won
        finally:
            draft.unlink()
    secret = path.read_text("utf-8").strip()
    if len(secret) < 32:
        raise ValueError(f"the JWT secret in {path} is shorter than 32 characters")
    return secret


def symmetric_key(secret: str, algorithm: str = "HS256") -> SigningKey:
    if algorithm not in SYMMETRIC:
        raise ValueError(f"{algorithm} is not a symmetric JWT algorithm")
    if len(secret) < 32:
        raise ValueError("SCOREBOARD_JWT_SECRET must be at least 32 characters")
    kid = hashlib.sha256(secret.encode()).hexdigest()[:16]
    return SigningKey(algorithm, kid, secret, secret, None)


def asymmetric_key(pem: bytes, algorithm: str | None = None, *, strict: bool = True) -> SigningKey:
    """The key in `pem` (PKCS#8 or traditional, unencrypted), for `algorithm` or, when None (or when
    not `strict` and the key cannot sign it), the algorithm its type implies: Ed25519 → EdDSA,
    RSA → RS256, P-256 → ES256, P-384 → ES384."""
    if algorithm is not None and algorithm not in ASYMMETRIC:
        if not strict:
            algorithm = None
        else:
            raise ValueError(
                f"unsupported JWT algorithm {algorithm!r} for a key file; use one of {sorted(ASYMMETRIC)}"
            )
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise ValueError(f"not an unencrypted PEM private key ({error})") from None
    implied = implied_algorithm(private)
    if algorithm is None or (not strict and not _fits(algorithm, implied)):
        algorithm = implied
    elif not _fits(algorithm, implied):
        raise ValueError(f"a {type(private).__name__} cannot sign {algorithm} (it signs {implied})")
    public = private.public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    kid = hashlib.sha256(der).hexdigest()[:16]
    jwk: dict[str, Any] = json.loads(get_default_algorithms()[algorithm].to_jwk(public))
    jwk.update({"kid": kid, "alg": algorithm, "use": "sig"})
    return SigningKey(algorithm, kid, private, public, jwk)


def implied_algorithm(private: Any) -> str:
    if isinstance(private, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return "EdDSA"
    if isinstance(private, rsa.RSAPrivateKey):
        if private.key_size < 2048:
            raise ValueError(f"an RSA key of {private.key_size} bits is too short; use at least 2048")
        return "RS256"
    if isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name in _EC_ALGORITHMS:
        return _EC_ALGORITHMS[private.curve.name]
    raise ValueError(f"unsupported key type {type(private).__name__}; use Ed25519, RSA, P-256 or P-384")


def _fits(algorithm: str, implied: str) -> bool:
    if implied == "RS256":  # one RSA key may sign any RSA algorithm, but only the configured one is used
        return algorithm in {"RS256", "RS384", "RS512", "PS256"}
    return algorithm == implied
