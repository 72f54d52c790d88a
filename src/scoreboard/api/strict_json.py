"""Duplicate object keys: refused, not silently resolved.

msgspec (like most parsers) keeps the last of two equal keys, so `{"user_id": A, "user_id": B}`
would mean B here and maybe A to a proxy or log reader in front of us. A body is checked after it
decoded into its struct, so it is known to be valid JSON of a bounded shape whose keys are field
names. The common case costs two `bytes.count` calls: a body without backslashes (so no escaped key
can hide) in which every field name appears at most once has no duplicate. Only otherwise is the
body parsed again, by the standard library, to compare each object's keys.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec


class DuplicateKey(ValueError):
    """A JSON object names the same key twice."""


class KeyGuard:
    """Finds duplicate keys in bodies already decoded as `kind` (a msgspec Struct)."""

    def __init__(self, kind: type) -> None:
        names = _field_names(msgspec.inspect.type_info(kind))
        self._quoted = None if names is None else tuple(f'"{name}"'.encode() for name in sorted(names))

    def check(self, body: bytes) -> None:
        if self._quoted is not None and b"\\" not in body:
            for name in self._quoted:
                if body.count(name) > 1:
                    break
            else:
                return
        try:
            json.loads(body, object_pairs_hook=_unique)
        except RecursionError:
            raise DuplicateKey("the body is nested too deeply") from None


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise DuplicateKey(f"the key {key!r} appears more than once in one object")
        found[key] = value
    return found


def _field_names(info: msgspec.inspect.Type) -> set[str] | None:
    """Every key an object of this type may hold; None when some object may hold any key."""
    if isinstance(info, msgspec.inspect.DictType | msgspec.inspect.AnyType):
        return None
    names: set[str] = set()
    inner: list[msgspec.inspect.Type] = []
    if isinstance(info, msgspec.inspect.StructType):
        names = {field.encode_name for field in info.fields}
        inner = [field.type for field in info.fields]
    elif isinstance(info, msgspec.inspect.UnionType):
        inner = list(info.types)
    elif (item := getattr(info, "item_type", None)) is not None:  # lists, sets, var-length tuples
        inner = [item]
    for member in inner:
        found = _field_names(member)
        if found is None:
            return None
        names |= found
    return names
