"""Writing one pre-framed WebSocket message straight to many sockets.

A server's frames are unmasked, and without a negotiated extension (we offer no compression) the
frame for a message is the same bytes on every connection. So a broadcast is framed once and each
subscriber costs one `transport.write` — no per-client framing, ASGI send chain or task switch.
That needs the server's connection object, which ASGI hides; `DirectLine.reach` finds it for
uvicorn's websockets-sansio protocol (uvicorn's default) and answers None for anything else, where
the subscriber's writer task sends through ASGI as usual.
"""

from __future__ import annotations

import struct
from typing import Any

from starlette.types import Send
from websockets.protocol import State

try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # uvicorn without websockets: every connection takes the ASGI path
    WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]

_TEXT_FIN = 0x81


def text_frame(payload: bytes) -> bytes:
    """`payload` (UTF-8 text) as one final, unmasked text frame (RFC 6455 §5.2)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", _TEXT_FIN, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", _TEXT_FIN, 126, size)
    else:
        header = struct.pack("!BBQ", _TEXT_FIN, 127, size)
    return header + payload


class DirectLine:
    """A connection's socket, for writing whole pre-built frames between the protocol's own writes.

    Safe because the protocol also writes each frame (pings, pongs, close) in one synchronous
    `transport.write`, so frames never interleave, and we send unfragmented frames only."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol

    @classmethod
    def reach(cls, send: Send) -> DirectLine | None:
        """The socket behind the server's own ASGI `send`, when frames can be written to it as is."""
        protocol = getattr(send, "__self__", None)
        if WebSocketsSansIOProtocol is None or not isinstance(protocol, WebSocketsSansIOProtocol):
            return None
        if protocol.conn.extensions:
            return None  # e.g. permessage-deflate: each connection compresses with its own context
        return cls(protocol)

    def ready(self) -> bool:
        """Open and not pushing back: the kernel and transport buffers have room."""
        protocol = self._protocol
        return bool(
            protocol.writable.is_set()
            and not protocol.close_sent
            and protocol.conn.state is State.OPEN
            and not protocol.transport.is_closing()
        )

    def write(self, frame: bytes) -> None:
        self._protocol.transport.write(frame)
