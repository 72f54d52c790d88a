"""Keys, hand-signed tokens and a tiny JWKS server for the token tests (unit, API and security)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from jwt.algorithms import get_default_algorithms

from tests.api.support import forge

IDP_ISSUER = "https://idp.example.test/"
PrivateKey = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


def ed25519_key() -> PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def rsa_key() -> PrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: PrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_key(path: Path, key: PrivateKeyTypes) -> Path:
    path.write_bytes(pem(key))
    return path


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_jwk(key: PrivateKey, kid: str, algorithm: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(get_default_algorithms()[algorithm].to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "alg": algorithm, "use": "sig"}


def claims_for(subject: str, **overrides: Any) -> dict[str, Any]:
    """Claims valid for the test app (issuer and audience `scoreboard`); a None override drops one."""
    claims: dict[str, Any] = jwt.decode(forge(subject, **overrides), options={"verify_signature": False})
    return claims


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed_hs256(claims: dict[str, Any], secret: bytes, **header: Any) -> str:
    """An HS256 token made without PyJWT, which refuses to use a public key as an HMAC secret: the
    classic algorithm-confusion forgery."""
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", **header}).encode())
    body = b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


def unsigned(claims: dict[str, Any], **header: Any) -> str:
    head = b64(json.dumps({"alg": "none", "typ": "JWT", **header}).encode())
    return f"{head}.{b64(json.dumps(claims).encode())}."


@dataclass
class IdentityProvider:
    """A pretend identity provider: signs tokens with its keys and serves their JWKS over HTTP."""

    keys: dict[str, tuple[PrivateKey, str]] = field(default_factory=dict)  # kid -> (key, alg)
    fetches: int = 0
    url: str = ""

    def add_key(self, algorithm: str = "EdDSA") -> str:
        kid = f"idp-{uuid.uuid4().hex[:8]}"
        self.keys[kid] = (ed25519_key() if algorithm == "EdDSA" else rsa_key(), algorithm)
        return kid

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(key, kid, alg) for kid, (key, alg) in self.keys.items()]}

    def token(self, kid: str, subject: str, roles: list[str], **overrides: Any) -> str:
        key, algorithm = self.keys[kid]
        claims = claims_for(subject, **{"iss": IDP_ISSUER, "roles": roles, **overrides})
        return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


@contextmanager
def serving_jwks(provider: IdentityProvider) -> Iterator[IdentityProvider]:
    """Serve `provider.jwks()` at http://127.0.0.1:<port>/jwks.json, counting fetches."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            provider.fetches += 1
            body = json.dumps(provider.jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    provider.url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
