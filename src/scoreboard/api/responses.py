"""Response helpers: JSON bodies encoded once with msgspec."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

_encode = msgspec.json.Encoder().encode


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encode(body), status, headers, media_type="application/json")


def raw_json(body: bytes, status: int = 200) -> Response:
    return Response(body, status, media_type="application/json")
