"""Request bodies: strict JSON read within a byte budget and decoded into msgspec structs.

Bytes are counted as they arrive, so a missing or lying Content-Length or a chunked body cannot
get past the limit. Unknown fields, wrong types and non-JSON are all 400 problems.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec
from starlette.requests import Request

from scoreboard.api.problems import Problem, invalid

T = TypeVar("T")

CANONICAL_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# The fixed length also refuses a trailing newline, which `$` in a Python pattern would let through.
Uuid = Annotated[
    str,
    msgspec.Meta(
        pattern=CANONICAL_UUID,
        min_length=36,
        max_length=36,
        description="A UUID in canonical lowercase text form.",
    ),
]

_decoders: dict[type, msgspec.json.Decoder] = {}  # type: ignore[type-arg]


def too_large(limit: int) -> Problem:
    return Problem(413, "payload_too_large", f"the request body is larger than {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _require_json(request: Request) -> None:
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/json" and not (kind.startswith("application/") and kind.endswith("+json")):
        raise invalid(f"the body must be application/json, not {kind or 'missing'!r}")


def decode(body: bytes, kind: type[T]) -> T:
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    if not body.strip():
        raise invalid("the request body is empty; a JSON object is required")
    try:
        return decoder.decode(body)  # type: ignore[no-any-return]
    except msgspec.ValidationError as error:
        raise invalid(str(error)) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as error:  # invalid UTF-8 inside a string
        raise invalid(f"the request body is not valid JSON: {error}") from None


async def read_json(request: Request, kind: type[T], limit: int) -> T:
    """The body as `kind`, or a 400/413 problem saying exactly what is wrong."""
    _require_json(request)
    return decode(await read_body(request, limit), kind)
