"""Dependencies, defined once: the services container and who is calling."""

from __future__ import annotations

import hmac
import re
import time
from dataclasses import dataclass, replace
from typing import Annotated

import structlog
from fastapi import Depends, Request

from scoreboard.api.bodies import CANONICAL_UUID
from scoreboard.api.problems import Problem, unauthenticated
from scoreboard.auth.keys import SigningKey
from scoreboard.auth.tokens import AccessTokens, InvalidToken, UnknownKey
from scoreboard.broker.base import Broker
from scoreboard.config import Settings
from scoreboard.domain.model import Principal, Role
from scoreboard.leaderboard.base import Leaderboard
from scoreboard.limiter.base import RateLimiter
from scoreboard.observability.logging import get_logger
from scoreboard.observability.metrics import Metrics
from scoreboard.observability.security import security_event
from scoreboard.revocations.base import Revocations
from scoreboard.services.accounts import AccountService
from scoreboard.services.cache import CacheKeeper
from scoreboard.services.moderation import ModerationService
from scoreboard.services.scores import ScoreService
from scoreboard.store.base import Store

log = get_logger("scoreboard.auth")

ACCESS_COOKIE = "access_token"
CSRF_COOKIE = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_USER_ID = re.compile(CANONICAL_UUID)


@dataclass
class Container:
    """Everything a request may need, opened by the app's lifespan."""

    settings: Settings
    store: Store
    board: Leaderboard
    broker: Broker
    tokens: AccessTokens
    signing_key: SigningKey
    revocations: Revocations
    accounts: AccountService
    scores: ScoreService
    keeper: CacheKeeper
    metrics: Metrics
    limiter: RateLimiter
    moderation: ModerationService


async def get_container(request: Request) -> Container:
    """`async` on purpose: FastAPI runs a plain `def` dependency in a worker thread, per request."""
    container: Container = request.app.state.container
    return container


Services = Annotated[Container, Depends(get_container)]


def client_address(request: Request) -> str:
    """The address that per-address limits count: the peer of the connection. Every per-address
    decision goes through here, so trusting a proxy's X-Forwarded-For can be added in one place."""
    peer = request.scope.get("client")  # read from the scope: `request.client` builds a tuple each call
    return str(peer[0]) if peer else "unknown"


def _token_from(request: Request) -> tuple[str | None, bool]:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise unauthenticated("the Authorization header must be 'Bearer <token>'")
        return value.strip(), False
    return request.cookies.get(ACCESS_COOKIE), True


async def authenticate(request: Request) -> Principal:
    """The verified caller: signature, pinned algorithm, exp, iss, aud, revocation, and CSRF for
    cookie-authenticated writes."""
    container: Container = request.app.state.container
    token, from_cookie = _token_from(request)
    if not token:
        container.metrics.tokens_rejected.labels("missing").inc()
        raise unauthenticated("no access token: send 'Authorization: Bearer <token>' or the cookie")
    try:
        principal = await verified_principal(container, token)
    except InvalidToken as error:
        reason = error.reason.split(":")[0]
        container.metrics.tokens_rejected.labels(reason).inc()
        security_event(container.metrics, "token_rejected", reason=reason)
        raise
    if await _revoked(container, principal):
        container.metrics.tokens_rejected.labels("revoked").inc()
        security_event(container.metrics, "token_rejected", reason="revoked", user_id=principal.user_id)
        raise unauthenticated("the access token was revoked")
    if from_cookie and request.method not in _SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not principal.csrf or not hmac.compare_digest(sent, principal.csrf):
            security_event(container.metrics, "forbidden", reason="csrf", user_id=principal.user_id)
            raise Problem(403, "csrf_failed", "a cookie-authenticated write needs the X-CSRF-Token header")
    structlog.contextvars.bind_contextvars(user_id=principal.user_id)
    return principal


async def verified_principal(container: Container, token: str) -> Principal:
    """The token's principal. An unknown key id may be a key the external identity provider has just
    rotated in: its key set is fetched again (rate limited) and the token tried once more. An external
    identity that is not a `service` must be an existing user; that is checked once per token."""
    tokens = container.tokens
    try:
        principal = tokens.verify(token, time.time())
    except UnknownKey:
        if tokens.external is None or not await tokens.external.refresh():
            raise
        principal = tokens.verify(token, time.time())
    if principal.account or Role.SERVICE in principal.roles:
        return principal
    user = await container.store.user(principal.user_id) if _USER_ID.fullmatch(principal.user_id) else None
    if user is None:
        raise InvalidToken("its subject is not a scoreboard user")
    principal = replace(principal, account=True)
    tokens.remember(token, principal)
    return principal


async def _revoked(container: Container, principal: Principal) -> bool:
    """Whether the token was revoked. If the revocation store is down the token is accepted (its
    lifetime is short) and the failure is counted and logged, rather than locking everyone out."""
    try:
        return await container.revocations.is_revoked(
            principal.token_id, principal.user_id, principal.issued_at
        )
    except Exception as error:
        container.metrics.revocation_errors.inc()
        log.warning("revocations.unavailable", error=str(error))
        return False


async def authenticate_optional(request: Request) -> Principal | None:
    has_token = request.headers.get("authorization") or request.cookies.get(ACCESS_COOKIE)
    return await authenticate(request) if has_token else None


Caller = Annotated[Principal, Depends(authenticate)]
OptionalCaller = Annotated[Principal | None, Depends(authenticate_optional)]


async def viewer(request: Request) -> Principal | None:
    """Anyone may read when PUBLIC_SCOREBOARD is true; otherwise a valid token is needed."""
    if request.app.state.container.settings.public_scoreboard:
        return await authenticate_optional(request)
    return await authenticate(request)


Viewer = Annotated[Principal | None, Depends(viewer)]
