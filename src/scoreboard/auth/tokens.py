"""Access tokens: JWTs whose algorithm is pinned by their key, checked for exp, nbf, iat, iss, aud
and a jti; verified once per token, then cached."""

from __future__ import annotations

import secrets
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from scoreboard.auth.external import ExternalProvider, UnusableClaims
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


class UnknownKey(InvalidToken):
    """The token names a key id no configured key has (perhaps an external key we have not fetched)."""

    def __init__(self) -> None:
        super().__init__("unknown key id")


_LOCAL_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "jti"]
_EXTERNAL_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]


class AccessTokens:
    """Issues tokens with the current key; verifies them with the key their `kid` names (the current
    one, a previous one still inside its tokens' lifetime, or an external provider's), each key pinned
    to its one algorithm. A token without `kid` is checked against the current key only."""

    def __init__(
        self,
        key: SigningKey,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        previous: Sequence[SigningKey] = (),
        external: ExternalProvider | None = None,
    ) -> None:
        self._key = key
        self._local = {k.kid: k for k in (*previous, key)}
        self.external = external
        self._issuer, self._audience = issuer, audience
        self.ttl_seconds = ttl_seconds
        # A verified token's claims never change; only its expiry and revocation need re-checking.
        self._verified: OrderedDict[str, Principal] = OrderedDict()

    @property
    def signing_key(self) -> SigningKey:
        return self._key

    @property
    def public_jwks(self) -> list[dict[str, Any]]:
        """The public keys of our own asymmetric keys, current first (what JWKS serves)."""
        ordered = [self._key, *(k for k in self._local.values() if k is not self._key)]
        return [k.public_jwk for k in ordered if k.public_jwk is not None]

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
        principal = self._verify(token)
        self.remember(token, principal)
        return principal

    def remember(self, token: str, principal: Principal) -> None:
        """Cache what `token` proves (also after the caller learned more, e.g. that it is a user)."""
        if token not in self._verified and len(self._verified) >= _CACHE_SIZE:
            self._verified.popitem(last=False)
        self._verified[token] = principal

    def _verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise InvalidToken(f"malformed: {type(error).__name__}") from None
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("malformed: kid")
        local = self._key if kid is None else self._local.get(kid)
        if local is not None:
            _pin(header, local.algorithm)
            claims = _decode(
                token, local.verifying, local.algorithm, self._issuer, self._audience, _LOCAL_CLAIMS
            )
            return _principal(claims)
        external = self.external
        found = external.keys.get(kid) if external is not None and kid is not None else None
        if external is None or found is None:
            raise UnknownKey()
        _pin(header, found.algorithm)
        claims = _decode(
            token, found.key, found.algorithm, external.issuer, external.audience, _EXTERNAL_CLAIMS
        )
        try:
            return external.principal(claims, token)
        except UnusableClaims as error:
            raise InvalidToken(error.reason) from None


def _pin(header: dict[str, Any], algorithm: str) -> None:
    """RFC 8725 §3.1: the key decides the algorithm. `none`, HS256 signed with a public key, or any
    other algorithm than the key's is refused before the signature is looked at."""
    if header.get("alg") != algorithm:
        raise InvalidToken("algorithm not allowed")


def _decode(
    token: str, key: Any, algorithm: str, issuer: str, audience: str, required: list[str]
) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": required},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("expired") from None
    except jwt.ImmatureSignatureError:  # nbf or iat later than now + leeway
        raise InvalidToken("not yet valid") from None
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
    return claims


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
