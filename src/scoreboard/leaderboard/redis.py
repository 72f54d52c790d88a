"""The Redis Leaderboard: one ranked cache shared by every instance; see redis_scripts for the layout.

`apply` is one Lua call: set the user's absolute score (ignoring anything not newer than what is
there, so outbox replays are harmless), re-read the top 10, and only if it changed take the next
`seq`, store the prepared board JSON and PUBLISH the update — so two instances can never publish out
of order, twice, or with a gap. A missing cache (Redis restarted empty) answers `CacheMissing`; the
caller rebuilds it from the Store.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from scoreboard.domain.model import Board, RankedEntry, ScoreEntry
from scoreboard.domain.ranking import TOP_SIZE, to_micros
from scoreboard.leaderboard import redis_scripts
from scoreboard.leaderboard.base import Applied
from scoreboard.leaderboard.memory import new_epoch
from scoreboard.realtime.messages import decode_update

_CHUNK = 2000


class CacheMissing(Exception):
    """The Redis cache has no epoch: it was lost (restart, flush) or is being rebuilt."""


def _missing(error: ResponseError) -> bool:
    return str(error).startswith("NOEPOCH")


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

    async def rebuild(self, entries: Iterable[ScoreEntry]) -> Board:
        """Replace the cache with `entries`: the old epoch is removed first (so concurrent applies see
        CacheMissing and leave their events to the outbox), then the data is loaded in pipelined
        chunks, then the new epoch is sealed."""
        await self._redis.delete(self.key("leaderboard:meta"))
        await self._delete_board_keys()
        batch: list[ScoreEntry] = []
        for entry in entries:
            if entry.score > 0:
                batch.append(entry)
            if len(batch) >= _CHUNK:
                await self._load(batch)
                batch = []
        await self._load(batch)
        epoch = new_epoch()
        entries_json = await self._seal(keys=[self._prefix], args=[epoch, TOP_SIZE])
        return decode_update(
            b'{"type":"update","channel":"c","epoch":%d,"seq":0,"top":%s}' % (epoch, entries_json)
        )

    async def _delete_board_keys(self) -> None:
        names = [self.key(n) for n in ("leaderboard", "leaderboard:scores", "leaderboard:names")]
        await self._redis.unlink(*names)
        pattern = self.key("leaderboard:ties:*")
        async for found in self._redis.scan_iter(match=pattern, count=1000):
            await self._redis.unlink(found)

    async def _load(self, entries: list[ScoreEntry]) -> None:
        if not entries:
            return
        tied: dict[int, dict[str, int]] = defaultdict(dict)
        for e in entries:
            tied[e.score][e.user_id] = to_micros(e.reached_at)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.key("leaderboard"), {e.user_id: e.score for e in entries})
            pipe.hset(self.key("leaderboard:scores"), mapping={e.user_id: str(e.score) for e in entries})
            pipe.hset(self.key("leaderboard:names"), mapping={e.user_id: e.display_name for e in entries})
            for score, members in tied.items():
                pipe.zadd(self.key(f"leaderboard:ties:{score}"), members)
            await pipe.execute()

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
