"""Who may open a live connection: the Origin allowlist and anonymous viewing."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers

from scoreboard.api.deps import ACCESS_COOKIE, Container, verified_principal
from scoreboard.auth.tokens import InvalidToken
from scoreboard.domain.model import Principal


def origin_allowed(headers: Headers, allowed: tuple[str, ...]) -> bool:
    """Same-origin or listed origins only; a client that sends no Origin (not a browser) is allowed."""
    origin = headers.get("origin")
    if origin is None:
        return True
    origin = origin.rstrip("/")
    if origin in allowed or "*" in allowed:
        return True
    return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()


async def viewer(headers: Headers, cookies: dict[str, str], container: Container) -> Principal | None:
    """The verified caller, or None for an anonymous (or badly authenticated) viewer."""
    token = cookies.get(ACCESS_COOKIE)
    header = headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        token = header[7:].strip()
    if not token:
        return None
    try:
        principal = await verified_principal(container, token)
    except InvalidToken:
        return None
    if await container.revocations.is_revoked(principal.token_id, principal.user_id, principal.issued_at):
        return None
    return principal
