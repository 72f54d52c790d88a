"""The Redis Leaderboard: one ranked cache shared by every instance; see redis_scripts for the layout.

`apply` is one Lua call: set the user's absolute score (ignoring anything not newer than what is
there, so outbox replays are harmless), re-read the top 10, and only if it changed take the next
`seq`, store the prepared board JSON and PUBLISH the update — so two instances can never publish out
of order, twice, or with a gap. A missing cache (Redis restarted empty) answers `CacheMissing`; the
caller rebuilds it from the Store.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from operator import add
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from scoreboard.domain.model import Board, RankedEntry, ScoreEntry, ScoreRow
from scoreboard.domain.ranking import TOP_SIZE, to_micros
from scoreboard.leaderboard import redis_scripts
from scoreboard.leaderboard.base import REBUILD_CHUNK, Applied, RebuildSource, row_chunks
from scoreboard.leaderboard.memory import new_epoch
from scoreboard.realtime.messages import decode_update

_SCAN_COUNT = 10_000
_REPLIES_SECONDS = 10.0  # a load chunk's replies, when the client sets no socket timeout


class CacheMissing(Exception):
    """The Redis cache has no epoch: it was lost (restart, flush) or is being rebuilt."""


def _missing(error: ResponseError) -> bool:
    return str(error).startswith("NOEPOCH")


def _bulks(values: Sequence[str]) -> list[str]:
    """Each value as a RESP bulk string (still text: a chunk is encoded to bytes once)."""
    if all(map(str.isascii, values)):
        return [f"${len(v)}\r\n{v}\r\n" for v in values]
    return [f"${len(v.encode())}\r\n{v}\r\n" for v in values]


class _LoadKeys:
    def __init__(self, prefix: str) -> None:
        self.board, self.scores, self.names = _bulks(
            [f"{prefix}leaderboard", f"{prefix}leaderboard:scores", f"{prefix}leaderboard:names"]
        )
        self.ties = f"{prefix}leaderboard:ties:"
        self.ties_length = len(self.ties.encode())


def _load_commands(keys: _LoadKeys, rows: Sequence[ScoreRow]) -> tuple[bytes, int]:
    """The RESP-encoded commands that store `rows` (scores of 0 left out) and how many there are:
    ZADD leaderboard, HSET scores, HSET names, and one ZADD per distinct score into its tie set.
    Built column by column, so the work per user is a few C-level string operations; every value
    goes over as its exact decimal text, as redis-py would send it."""
    if not rows:
        return b"", 0
    user_ids, display_names, scores, reached = zip(*rows, strict=True)
    if min(scores) <= 0:
        rows = [row for row in rows if row[2] > 0]
        if not rows:
            return b"", 0
        user_ids, display_names, scores, reached = zip(*rows, strict=True)
    texts = list(map(str, scores))
    users = _bulks(user_ids)
    values = _bulks(texts)
    tied: dict[str, list[str]] = {}
    for text, member in zip(texts, map(add, _bulks(list(map(str, reached))), users), strict=True):
        group = tied.get(text)
        if group is None:
            tied[text] = [member]
        else:
            group.append(member)
    pairs = len(rows) * 2 + 2
    commands = [
        f"*{pairs}\r\n$4\r\nZADD\r\n{keys.board}",
        *map(add, values, users),
        f"*{pairs}\r\n$4\r\nHSET\r\n{keys.scores}",
        *map(add, users, values),
        f"*{pairs}\r\n$4\r\nHSET\r\n{keys.names}",
        *map(add, users, _bulks(display_names)),
    ]
    prefix, length = keys.ties, keys.ties_length
    commands += [
        f"*{len(g) * 2 + 2}\r\n$4\r\nZADD\r\n${length + len(t)}\r\n{prefix}{t}\r\n{''.join(g)}"
        for t, g in tied.items()
    ]
    return "".join(commands).encode(), 3 + len(tied)


async def _replies(conn: AbstractConnection, count: int) -> None:
    """Read `count` replies, all within the connection's socket timeout (one deadline for the lot
    rather than one per reply: thousands of small replies per chunk)."""
    async with asyncio.timeout(conn.socket_timeout or _REPLIES_SECONDS):
        for _ in range(count):
            reply = await conn.read_response(timeout=math.inf)
            if isinstance(reply, ResponseError):
                raise reply


class RedisLeaderboard:
    def __init__(self, client: Redis, prefix: str = "", publish_channel: str = "") -> None:
        self._redis = client
        self._prefix = prefix
        self.publish_channel = publish_channel
        self._apply = client.register_script(redis_scripts.APPLY)
        self._board = client.register_script(redis_scripts.BOARD)
        self._standing = client.register_script(redis_scripts.STANDING)
        self._seal = client.register_script(redis_scripts.SEAL)

    @classmethod
    def from_url(cls, url: str, prefix: str = "", publish_channel: str = "") -> RedisLeaderboard:
        # The asyncio Retry (not redis.retry.Retry) so a connection killed by a Redis restart is
        # replaced on the next command instead of failing it.
        client = Redis.from_url(
            url,
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
            health_check_interval=10,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        return cls(client, prefix, publish_channel)

    def key(self, name: str) -> str:
        return f"{self._prefix}{name}"

    async def _call(self, script: Any, *args: object) -> Any:
        try:
            return await script(keys=[self._prefix], args=list(args))
        except ResponseError as error:
            if _missing(error):
                raise CacheMissing(str(error)) from None
            raise

    async def apply(self, entry: ScoreEntry) -> Applied:
        rank, message = await self._call(
            self._apply,
            entry.user_id,
            str(entry.score),
            str(to_micros(entry.reached_at)),
            entry.display_name,
            self.publish_channel,
            TOP_SIZE,
        )
        changed = decode_update(message) if message else None
        return Applied(int(rank) if rank else None, changed, published=bool(self.publish_channel))

    async def remove(self, user_id: str, at: datetime) -> Applied:
        return await self.apply(ScoreEntry(user_id, "", 0, at))

    async def board(self, limit: int) -> Board:
        epoch, seq, entries = await self._call(self._board, limit)
        return decode_update(
            b'{"type":"update","channel":"c","epoch":%s,"seq":%s,"top":%s}' % (epoch, seq, entries)
        )

    async def board_json(self, limit: int) -> bytes:
        if limit == TOP_SIZE:
            body = await self._redis.hget(self.key("leaderboard:meta"), "body")
            if body is None:
                raise CacheMissing("the leaderboard cache is missing")
            return body if isinstance(body, bytes) else body.encode()
        epoch, seq, entries = await self._call(self._board, limit)
        return b'{"epoch":%s,"seq":%s,"entries":%s}' % (epoch, seq, entries)

    async def standing(self, user_id: str) -> RankedEntry | None:
        found = await self._call(self._standing, user_id)
        if not found:
            return None
        rank, score, name = found
        return RankedEntry(int(rank), user_id, name.decode(), int(score))

    async def exists(self) -> bool:
        """Whether the cache holds a board (an epoch)."""
        return bool(await self._redis.hexists(self.key("leaderboard:meta"), "epoch"))

    async def rebuild(self, entries: RebuildSource) -> Board:
        """Replace the cache with `entries`: the old epoch is removed first (so concurrent applies see
        CacheMissing and leave their events to the outbox), then the data is loaded chunk by chunk
        (see _load), then the new epoch is sealed. The first chunk is asked for before the old
        keys are removed: a Store may need a moment (a sort) before its first row."""
        chunks = row_chunks(entries)
        first: asyncio.Future[Sequence[ScoreRow] | None] = asyncio.ensure_future(anext(chunks, None))
        try:
            previous = await self._redis.hget(self.key("leaderboard:meta"), "epoch")
            await self._redis.delete(self.key("leaderboard:meta"))
            await self._delete_board_keys()
            await self._load(first, chunks)
        finally:
            first.cancel()  # nothing when it is done; its outcome is retrieved either way
            with contextlib.suppress(BaseException):
                await first
            await chunks.aclose()  # a Store stream left part-way gives its connection back now
        # Two rebuilds within one millisecond must still be two epochs (as in the memory adapter).
        epoch = max(new_epoch(), int(previous or 0) + 1)
        entries_json = await self._seal(keys=[self._prefix], args=[epoch, TOP_SIZE])
        return decode_update(
            b'{"type":"update","channel":"c","epoch":%d,"seq":0,"top":%s}' % (epoch, entries_json)
        )

    async def _load(
        self, first: Awaitable[Sequence[ScoreRow] | None], chunks: AsyncIterator[Sequence[ScoreRow]]
    ) -> None:
        """Stream the rows into Redis on one connection: per REBUILD_CHUNK users one ZADD leaderboard,
        one HSET each for scores and names, one ZADD per distinct score into its tie set (so rows
        that arrive grouped by score, as the Store sends them, need few commands). The commands are
        encoded here, a chunk at a time (redis-py's per-argument encoding would cost more than all
        the rest), and a chunk's replies are read only after the next chunk is sent, so Redis
        stores one chunk while the next is read from the Store and encoded."""
        pool = self._redis.connection_pool
        connect = cast(Callable[[], Awaitable[AbstractConnection]], pool.get_connection)  # untyped
        conn = await connect()
        keys = _LoadKeys(self._prefix)
        unread = 0
        try:
            chunk = await first
            while chunk is not None:
                for start in range(0, len(chunk), REBUILD_CHUNK):
                    commands, count = _load_commands(keys, chunk[start : start + REBUILD_CHUNK])
                    if count == 0:
                        continue
                    await conn.send_packed_command(commands, check_health=False)
                    await _replies(conn, unread)
                    unread = count
                chunk = await anext(chunks, None)
            await _replies(conn, unread)
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.disconnect()  # replies may be pending: never hand it back as it is
            raise
        finally:
            await pool.release(conn)

    async def _delete_board_keys(self) -> None:
        names = [
            self.key(n)
            for n in ("leaderboard", "leaderboard:scores", "leaderboard:names", "leaderboard:removed")
        ]
        await self._redis.unlink(*names)
        # One tie set per distinct score: up to one per user. UNLINK them a SCAN page at a time.
        found: list[bytes] = []
        async for key in self._redis.scan_iter(match=self.key("leaderboard:ties:*"), count=_SCAN_COUNT):
            found.append(key)
            if len(found) >= _SCAN_COUNT:
                await self._redis.unlink(*found)
                found = []
        if found:
            await self._redis.unlink(*found)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
