"""Serves the live scoreboard page and its assets from the package."""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from starlette.responses import Response

from scoreboard.api.problems import Problem

router = APIRouter(include_in_schema=False)

_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css"}
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:;"
    " img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


@cache
def _asset(name: str) -> bytes:
    return resources.files("scoreboard.web").joinpath("static", name).read_bytes()


def _serve(name: str) -> Response:
    suffix = name[name.rfind(".") :]
    if "/" in name or suffix not in _TYPES:
        raise Problem(404, "not_found", f"no asset {name!r}")
    try:
        body = _asset(name)
    except FileNotFoundError:
        raise Problem(404, "not_found", f"no asset {name!r}") from None
    headers = {
        "Content-Security-Policy": _CSP,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }
    return Response(body, media_type=_TYPES[suffix], headers=headers)


@router.get("/")
async def page() -> Response:
    return _serve("index.html")


@router.get("/static/{name}")
async def asset(name: str) -> Response:
    return _serve(name)
