"""Signing keys: an HS256 secret (generated once and kept 0600) or an asymmetric private key."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from jwt.algorithms import get_default_algorithms

SYMMETRIC = {"HS256", "HS384", "HS512"}
ASYMMETRIC = {"RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"}


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


def asymmetric_key(pem: bytes, algorithm: str) -> SigningKey:
    if algorithm not in ASYMMETRIC:
        raise ValueError(
            f"unsupported JWT algorithm {algorithm!r}; use one of {sorted(SYMMETRIC | ASYMMETRIC)}"
        )
    private = serialization.load_pem_private_key(pem, password=None)
    public = private.public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    kid = hashlib.sha256(der).hexdigest()[:16]
    jwk: dict[str, Any] = json.loads(get_default_algorithms()[algorithm].to_jwk(public))
    jwk.update({"kid": kid, "alg": algorithm, "use": "sig"})
    return SigningKey(algorithm, kid, private, public, jwk)
