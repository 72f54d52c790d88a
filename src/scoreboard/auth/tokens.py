"""Access tokens: JWTs whose algorithm is pinned, checked for exp, iss, aud and a jti."""

from __future__ import annotations

import secrets
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt

from scoreboard.auth.keys import SigningKey
from scoreboard.domain.model import Principal

LEEWAY_SECONDS = 5
_CACHE_SIZE = 10_000


class InvalidToken(Exception):
    """The token cannot be trusted; `reason` is safe to log (it never contains the token)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    token_id: str
    expires_at: int
    csrf: str


class AccessTokens:
    """Issues and verifies access tokens with one pinned key and algorithm."""

    def __init__(self, key: SigningKey, issuer: str, audience: str, ttl_seconds: int) -> None:
        self._key = key
        self._issuer, self._audience = issuer, audience
        self.ttl_seconds = ttl_seconds
        # A verified token's claims never change; only its expiry and revocation need re-checking.
        self._verified: OrderedDict[str, Principal] = OrderedDict()

    def issue(self, user_id: str, roles: list[str], session_id: str, now: int) -> IssuedToken:
        token_id = str(uuid.uuid4())
        expires_at = now + self.ttl_seconds
        # The CSRF token rides inside the signed JWT: a cookie-authenticated write must echo it
        # in a header, which a cross-site page cannot read (signed double-submit).
        csrf = secrets.token_urlsafe(16)
        claims = {
            "sub": user_id,
            "iat": now,
            "nbf": now,
            "exp": expires_at,
            "jti": token_id,
            "iss": self._issuer,
            "aud": self._audience,
            "roles": roles,
            "sid": session_id,
            "csrf": csrf,
        }
        headers = {"kid": self._key.kid}
        token = jwt.encode(claims, self._key.signing, algorithm=self._key.algorithm, headers=headers)
        return IssuedToken(token, token_id, expires_at, csrf)

    def verify(self, token: str, now: float) -> Principal:
        """The caller proven by `token`, or InvalidToken saying why not."""
        known = self._verified.get(token)
        if known is not None:
            if known.expires_at + LEEWAY_SECONDS < now:
                raise InvalidToken("expired")
            return known
        principal = _principal(self._decode(token))
        if len(self._verified) >= _CACHE_SIZE:
            self._verified.popitem(last=False)
        self._verified[token] = principal
        return principal

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                self._key.verifying,
                algorithms=[self._key.algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("expired") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("wrong issuer") from None
        except jwt.InvalidAlgorithmError:
            raise InvalidToken("algorithm not allowed") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("bad signature") from None
        except jwt.PyJWTError as error:
            raise InvalidToken(f"malformed: {type(error).__name__}") from None


def _principal(claims: dict[str, Any]) -> Principal:
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidToken("malformed roles claim")
    subject, token_id = claims["sub"], claims["jti"]
    if not isinstance(subject, str) or not isinstance(token_id, str):
        raise InvalidToken("malformed sub or jti claim")
    return Principal(
        user_id=subject,
        roles=frozenset(roles),
        token_id=token_id,
        session_id=str(claims.get("sid", "")),
        expires_at=int(claims["exp"]),
        csrf=str(claims.get("csrf", "")),
        issued_at=int(claims["iat"]),
    )
