"""Authentication routes: register, login, refresh, logout, JWKS."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from scoreboard.api import openapi as doc
from scoreboard.api.bodies import read_json
from scoreboard.api.deps import ACCESS_COOKIE, CSRF_COOKIE, Caller, Services, client_address
from scoreboard.api.responses import json_response
from scoreboard.api.schemas import (
    LoginRequest,
    RefreshRequest,
    RegisterRequest,
    TokenPairOut,
    UserOut,
)
from scoreboard.services.accounts import TokenPair

router = APIRouter(tags=["auth"])


def _token_response(request: Request, pair: TokenPair) -> Response:
    response = json_response(
        TokenPairOut(pair.access_token, "bearer", pair.expires_in, pair.refresh_token, pair.csrf_token)
    )
    secure = request.url.scheme == "https"
    response.set_cookie(
        ACCESS_COOKIE,
        pair.access_token,
        max_age=pair.expires_in,
        httponly=True,
        secure=secure,
        samesite="strict",
        path="/",
    )
    response.set_cookie(
        CSRF_COOKIE,
        pair.csrf_token,
        max_age=pair.expires_in,
        secure=secure,
        samesite="strict",
        path="/",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post(
    "/api/auth/register",
    status_code=201,
    openapi_extra=doc.body(RegisterRequest),
    responses=doc.responses((201, UserOut), 400, 409, 413, 429),
)
async def register(request: Request, services: Services) -> Response:
    """Create an account: username 3-32 of `[A-Za-z0-9_.-]` (unique regardless of case), password
    of at least 10 characters, optional display name (defaults to the username)."""
    body = await read_json(request, RegisterRequest, services.settings.max_body_bytes)
    user = await services.accounts.register(
        body.username, body.password, body.display_name, client_address(request)
    )
    return json_response(UserOut(user.user_id, user.username, user.display_name), 201)


@router.post(
    "/api/auth/login",
    openapi_extra=doc.body(LoginRequest),
    responses=doc.responses((200, TokenPairOut), 400, 401, 429),
)
async def login(request: Request, services: Services) -> Response:
    """Exchange a username and password for an access token (also set as an HttpOnly cookie, with a
    readable `csrf_token` cookie) and a refresh token. Repeated failures are throttled (429)."""
    body = await read_json(request, LoginRequest, services.settings.max_body_bytes)
    pair = await services.accounts.login(body.username, body.password, client_address(request))
    return _token_response(request, pair)


@router.post(
    "/api/auth/refresh",
    openapi_extra=doc.body(RefreshRequest),
    responses=doc.responses((200, TokenPairOut), 400, 401),
)
async def refresh(request: Request, services: Services) -> Response:
    """Spend a refresh token for a new pair. A spent token presented again revokes its family."""
    body = await read_json(request, RefreshRequest, services.settings.max_body_bytes)
    return _token_response(request, await services.accounts.refresh(body.refresh_token))


@router.post("/api/auth/logout", status_code=204, responses=doc.responses((204, None), 401, 403))
async def logout(caller: Caller, services: Services) -> Response:
    """Revoke the presented access token and its whole refresh-token family."""
    await services.accounts.logout(caller)
    response = Response(status_code=204)
    response.delete_cookie(ACCESS_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.get("/.well-known/jwks.json", tags=["auth"])
async def jwks(services: Services) -> Response:
    """Public keys that verify our access tokens: the current signing key first, then rotated-out keys
    whose tokens may still be valid. An empty set (`{"keys": []}`) when only shared secrets are used."""
    response = json_response({"keys": services.tokens.public_jwks})
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
