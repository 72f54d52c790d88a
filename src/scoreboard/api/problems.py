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
    errors.UserNotFound: _Mapping(404, "not_found"),
    errors.UsernameTaken: _Mapping(409, "username_taken"),
    errors.DuplicateAction: _Mapping(409, "duplicate_action"),
    errors.ScoreOverflow: _Mapping(409, "score_overflow"),
    errors.RateLimited: _Mapping(429, "rate_limited"),
}


def from_domain(error: errors.DomainError) -> Problem:
    mapping = next(m for t, m in DOMAIN_PROBLEMS.items() if isinstance(error, t))
    if isinstance(error, errors.DuplicateAction):
        return Problem(mapping.status, mapping.code, str(error), score=error.score)
    if isinstance(error, errors.RateLimited):
        return Problem(
            429,
            "quota_exceeded" if error.quota else "rate_limited",
            str(error),
            {
                "Retry-After": str(error.retry_after),
                "RateLimit-Limit": str(error.limit),
                "RateLimit-Remaining": str(error.remaining),
                "RateLimit-Reset": str(error.retry_after),
                "RateLimit-Policy": error.policy,
            },
        )
    return Problem(mapping.status, mapping.code, str(error))


PROBLEM_CODE_KEY = "scoreboard.problem_code"


def answer(request: Request, problem: Problem) -> Response:
    """The problem's response; its code is left on the request scope for metrics and logs."""
    request.scope[PROBLEM_CODE_KEY] = problem.code
    return problem_response(problem)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into a problem document."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return answer(request, exc)

    async def on_domain(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.DomainError)
        return answer(request, from_domain(exc))

    async def on_unavailable(request: Request, exc: Exception) -> Response:
        log.error("store.unavailable", error=str(exc))
        return answer(
            request,
            Problem(
                503,
                "service_unavailable",
                "the database is unreachable; nothing was changed, retry shortly",
                {"Retry-After": "2"},
            ),
        )

    async def on_token(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, InvalidToken)
        return answer(request, unauthenticated(f"the access token was refused: {exc.reason}"))

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        where = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()
        )
        return answer(request, invalid(where or "the request is not valid"))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return answer(request, Problem(exc.status_code, code, str(exc.detail), dict(exc.headers or {})))

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.error("request.crashed", path=request.url.path, error=repr(exc))
        return answer(request, Problem(500, "internal_error", "an unexpected error occurred"))

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(errors.DomainError, on_domain)
    app.add_exception_handler(errors.StoreUnavailable, on_unavailable)
    app.add_exception_handler(InvalidToken, on_token)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)
