"""Request bodies: strict JSON read within a byte budget and decoded into msgspec structs.

Bytes are counted as they arrive, so a missing or lying Content-Length or a chunked body cannot
get past the limit. Unknown fields, wrong types, duplicate keys and non-JSON are all 400 problems.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec
from starlette.requests import ClientDisconnect, Request

from scoreboard.api.problems import Problem, invalid
from scoreboard.api.strict_json import DuplicateKey, KeyGuard

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

_decoders: dict[type, tuple[msgspec.json.Decoder, KeyGuard]] = {}  # type: ignore[type-arg]


def too_large(limit: int) -> Problem:
    return Problem(413, "payload_too_large", f"the request body is larger than {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:  # nobody will read the answer, but it is a refusal, not a crash
        raise invalid("the client closed the connection before the body was complete") from None
    return b"".join(chunks)


# The exact header values clients send; anything else goes through the full parse below.
_JSON_TYPES = frozenset(
    {"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"}
)


def _require_json(request: Request) -> None:
    """`application/json`, optionally with `charset=utf-8` (the only encoding JSON may use)."""
    header = request.headers.get("content-type", "")
    if header in _JSON_TYPES or _is_json_type(header):
        return
    raise invalid(f"the body must be application/json (charset utf-8), not {header or 'missing'!r}")


def _is_json_type(header: str) -> bool:
    kind, _, parameters = header.partition(";")
    if kind.strip().lower() != "application/json":
        return False
    for parameter in filter(None, (p.strip() for p in parameters.split(";"))):
        name, _, value = parameter.partition("=")
        if name.strip().lower() != "charset" or value.strip().strip('"').lower() != "utf-8":
            return False
    return True


def decode(body: bytes, kind: type[T]) -> T:
    known = _decoders.get(kind)
    if known is None:
        known = _decoders[kind] = (msgspec.json.Decoder(kind), KeyGuard(kind))
    decoder, keys = known
    if not body.strip():
        raise invalid("the request body is empty; a JSON object is required")
    try:
        value: T = decoder.decode(body)
        keys.check(body)
    except msgspec.ValidationError as error:
        raise invalid(str(error)) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as error:  # invalid UTF-8 inside a string
        raise invalid(f"the request body is not valid JSON: {error}") from None
    except DuplicateKey as error:
        raise invalid(str(error)) from None
    return value


async def read_json(request: Request, kind: type[T], limit: int) -> T:
    """The body as `kind`, or a 400/413 problem saying exactly what is wrong."""
    _require_json(request)
    return decode(await read_body(request, limit), kind)
