"""One way to fail: every error becomes an RFC 9457 problem document with a stable `code`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from scoreboard.auth.tokens import InvalidToken
from scoreboard.domain import errors
from scoreboard.observability.errors import report_crash
from scoreboard.observability.logging import get_logger

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://scoreboard.dev/problems/"
log = get_logger("scoreboard.api")
_encode = msgspec.json.Encoder().encode


class Problem(Exception):
    """An API-level refusal (bad input, unauthenticated...) that maps directly to a problem."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.headers = headers or {}
        self.extra = extra


def invalid(detail: str) -> Problem:
    return Problem(400, "invalid_request", detail)


def unauthenticated(detail: str = "a valid access token is required") -> Problem:
    return Problem(401, "unauthenticated", detail, {"WWW-Authenticate": 'Bearer realm="scoreboard"'})


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem_response(problem: Problem) -> Response:
    body = {
        "type": TYPE_BASE + problem.code,
        "title": _TITLES.get(problem.status, "Error"),
        "status": problem.status,
        "detail": problem.detail,
        "code": problem.code,
        **problem.extra,
    }
    return Response(_encode(body), problem.status, problem.headers, media_type=PROBLEM_JSON)


@dataclass(frozen=True, slots=True)
class _Mapping:
    status: int
    code: str


# The table: which domain meaning is which HTTP answer.
DOMAIN_PROBLEMS: dict[type[errors.DomainError], _Mapping] = {
    errors.InvalidInput: _Mapping(400, "invalid_request"),
    errors.UnknownActionType: _Mapping(400, "unknown_action_type"),
    errors.InvalidCredentials: _Mapping(401, "invalid_credentials"),
    errors.InvalidRefreshToken: _Mapping(401, "invalid_refresh_token"),
    errors.ActingForAnotherUser: _Mapping(403, "forbidden"),
    errors.ActionNotPermitted: _Mapping(403, "forbidden"),
    errors.NotAdmin: _Mapping(403, "forbidden"),
    errors.AccountBanned: _Mapping(403, "account_banned"),
    errors.UserNotFound: _Mapping(404, "not_found"),
    errors.UsernameTaken: _Mapping(409, "username_taken"),
    errors.DuplicateAction: _Mapping(409, "duplicate_action"),
    errors.ScoreOverflow: _Mapping(409, "score_overflow"),
    errors.RateLimited: _Mapping(429, "rate_limited"),
    errors.TokensNotRevoked: _Mapping(503, "tokens_not_revoked"),
}


def from_domain(error: errors.DomainError) -> Problem:
    mapping = next(m for t, m in DOMAIN_PROBLEMS.items() if isinstance(error, t))
    if isinstance(error, errors.DuplicateAction):
        return Problem(mapping.status, mapping.code, str(error), score=error.score)
    if isinstance(error, errors.RateLimited):
        code = "quota_exceeded" if error.quota else "rate_limited"
        return Problem(429, code, str(error), rate_limit_headers(error))
    if isinstance(error, errors.TokensNotRevoked):
        return Problem(mapping.status, mapping.code, str(error), {"Retry-After": "2"})
    return Problem(mapping.status, mapping.code, str(error))


def rate_limit_headers(error: errors.RateLimited) -> dict[str, str]:
    """`Retry-After` and the RateLimit fields of draft-ietf-httpapi-ratelimit-headers-10
    (`RateLimit-Policy`, `RateLimit`), plus the `RateLimit-Limit/-Remaining/-Reset` trio of the
    earlier drafts that many clients still read. `t` and `Retry-After` name the same moment."""
    headers = {
        "Retry-After": str(error.retry_after),
        "RateLimit-Limit": str(error.limit),
        "RateLimit-Remaining": str(error.remaining),
        "RateLimit-Reset": str(error.retry_after),
    }
    if error.policy:
        headers["RateLimit-Policy"] = error.policy
    if error.current:
        headers["RateLimit"] = error.current
    return headers


PROBLEM_CODE_KEY = "scoreboard.problem_code"


def answer(request: Request, problem: Problem) -> Response:
    """The problem's response; its code is left on the request scope for metrics and logs."""
    request.scope[PROBLEM_CODE_KEY] = problem.code
    return problem_response(problem)


UNAVAILABLE = "the database is unreachable; nothing was changed, retry shortly"


def problem_for(exc: Exception) -> Problem | None:
    """The problem document an expected failure deserves; None for a bug."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, errors.DomainError):
        return from_domain(exc)
    if isinstance(exc, errors.StoreUnavailable):
        log.error("store.unavailable", error=str(exc))
        return Problem(503, "service_unavailable", UNAVAILABLE, {"Retry-After": "2"})
    if isinstance(exc, InvalidToken):
        return unauthenticated(f"the access token was refused: {exc.reason}")
    if isinstance(exc, RequestValidationError):
        where = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()
        )
        return invalid(where or "the request is not valid")
    if isinstance(exc, StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return Problem(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))
    return None


def crash(request: Request, exc: Exception) -> Response:
    log.error("request.crashed", path=request.url.path, error=repr(exc))
    route = getattr(request.scope.get("route"), "path", "unmatched")
    report_crash(exc, route, request.method)
    return answer(request, Problem(500, "internal_error", "an unexpected error occurred"))


def respond(request: Request, exc: Exception) -> Response:
    """The response for any exception raised while handling `request`."""
    problem = problem_for(exc)
    return crash(request, exc) if problem is None else answer(request, problem)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into a problem document."""

    async def on_error(request: Request, exc: Exception) -> Response:
        return respond(request, exc)

    for kind in (
        Problem,
        errors.DomainError,
        errors.StoreUnavailable,
        InvalidToken,
        RequestValidationError,
        StarletteHTTPException,
        Exception,
    ):
        app.add_exception_handler(kind, on_error)
