"""Cache rebuild benchmark: `scoreboard rebuild-cache` from PostgreSQL into Redis for N users.

1. Creates a private database `scoreboard_bench_<hex>` on --postgres (trust auth) and migrates it
   with `scoreboard migrate`.
2. Inserts --users users straight with SQL (INSERT ... SELECT FROM generate_series; not timed):
   score = floor(random()^4 * 100000), a skewed spread with many ties at the bottom (about 5% of the
   users score 0 and are not on the board, roughly 14,000 share the score 1, the top scores are
   mostly unique), and a distinct score_reached_at per user (one millisecond slot each, a random
   microsecond inside it), so the tie-break is by time and never by id.
3. Times `scoreboard rebuild-cache` end to end as a subprocess (--runs times: interpreter start,
   imports, connections, removing the old cache, the database read streamed into Redis, the seal).
4. Times the phases in-process with the adapters themselves (--phase-runs times):
   - the list path: PostgresStore.all_scores (every ScoreEntry in memory, in board order), then
     RedisLeaderboard.rebuild(that list);
   - the streamed path that `rebuild-cache` takes (CacheKeeper): PostgresStore.score_rows drained
     on its own (the read), RedisLeaderboard.rebuild fed from those chunks already in memory (the
     load), and RedisLeaderboard.rebuild(store.score_rows()) (both at once, as the command does).
5. After every rebuild checks the cache against SQL: ZCARD <prefix>leaderboard, HLEN of the
   scores and names hashes = the users with a score above 0, one tie set per distinct score; RedisLeaderboard.board(10) = SQL `ORDER BY score DESC, score_reached_at ASC,
   user_id ASC LIMIT 10`; RedisLeaderboard.standing of --samples random users (and one at score 0)
   = the SQL rank.
6. Always (also on failure, Ctrl-C or the --deadline) drops the database and deletes every Redis
   key under the private prefix.

Exit status: 0 when all is well, 1 when a check failed, 2 when the benchmark could not run.

    .venv/bin/python bench/rebuild_cache.py [--users 1000000] [--runs 3] [--phase-runs 1] [--json FILE]
    .venv/bin/python bench/rebuild_cache.py --profile /tmp/rebuild.prof   # cProfile, streamed path

docs/benchmarks.md ("Rebuilding the cache") explains the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import os
import platform
import random
import re
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY / "src"))

from scoreboard.leaderboard.redis import RedisLeaderboard  # noqa: E402
from scoreboard.store.postgres import PostgresStore  # noqa: E402

TOP = 10
SCORE_SCALE = 100_000
_CLI_LINE = re.compile(r"cache rebuilt from the database: (\d+) users, epoch (-?\d+), ([\d.]+)s")

# One statement per table; setseed makes the scores the same for the same --seed.
_INSERT_USERS = """
INSERT INTO users (user_id, username, username_key, display_name, password_hash, roles,
                   created_at, updated_at)
SELECT md5($2 || ':' || i)::uuid, 'bench' || i, 'bench' || i, 'Player ' || i, 'x', '{user}',
       now(), now()
FROM generate_series(1, $1::int) AS i
"""
_INSERT_SCORES = """
INSERT INTO user_score (user_id, score, score_reached_at, created_at, updated_at)
SELECT md5($2 || ':' || i)::uuid,
       floor(power(random(), 4) * $3::int)::bigint,
       timestamptz '2024-01-01 00:00:00+00' + make_interval(secs => i / 1000.0)
         + make_interval(secs => floor(random() * 1000) / 1000000.0),
       now(), now()
FROM generate_series(1, $1::int) AS i
"""
_SQL_TOP = """
SELECT s.user_id::text AS user_id, u.display_name, s.score
FROM user_score s JOIN users u USING (user_id) WHERE s.score > 0
ORDER BY s.score DESC, s.score_reached_at ASC, s.user_id ASC LIMIT $1
"""
_SQL_RANK = """
SELECT me.score, 1
    + (SELECT count(*) FROM user_score o WHERE o.score > me.score)
    + (SELECT count(*) FROM user_score o WHERE o.score = me.score
         AND (o.score_reached_at, o.user_id) < (me.score_reached_at, me.user_id)) AS rank
FROM user_score me WHERE me.user_id = $1::uuid
"""


class BenchError(RuntimeError):
    """The benchmark could not run (a server refused, a subprocess failed)."""


class CheckFailed(AssertionError):
    """The rebuilt cache disagrees with the database."""


@dataclass
class Results:
    users: int
    on_board: int = 0
    distinct_scores: int = 0
    setup_seconds: float = 0.0
    cli_seconds: list[float] = field(default_factory=list)
    cli_reported_seconds: list[float] = field(default_factory=list)
    all_scores_seconds: list[float] = field(default_factory=list)
    rebuild_list_seconds: list[float] = field(default_factory=list)
    read_seconds: list[float] = field(default_factory=list)
    load_seconds: list[float] = field(default_factory=list)
    streamed_seconds: list[float] = field(default_factory=list)
    redis_memory_mb: float = 0.0
    load_averages: list[float] = field(default_factory=list)  # 1-minute, before each timed run
    checks: list[str] = field(default_factory=list)
    machine: str = field(
        default_factory=lambda: (
            f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        )
    )


def log(message: str) -> None:
    print(message, flush=True)


def with_database(url: str, database: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + database


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.ends = time.monotonic() + seconds

    def left(self) -> float:
        left = self.ends - time.monotonic()
        if left <= 0:
            raise BenchError("the deadline passed")
        return left


# setup and teardown ------------------------------------------------------------------------------


async def create_database(admin_url: str, database: str) -> None:
    conn = await asyncpg.connect(admin_url, timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


async def drop_database(admin_url: str, database: str) -> None:
    conn = await asyncpg.connect(admin_url, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()


async def delete_keys(redis_url: str, prefix: str) -> int:
    client = Redis.from_url(redis_url)
    deleted = 0
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=prefix + "*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                deleted += await client.unlink(*batch)
                batch = []
        if batch:
            deleted += await client.unlink(*batch)
    finally:
        await client.aclose()
    return deleted


def run_cli(args: list[str], env: dict[str, str], timeout: float) -> str:
    command = [str(REPOSITORY / ".venv" / "bin" / "scoreboard"), *args]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise BenchError(f"`scoreboard {' '.join(args)}` took longer than {timeout:.0f}s") from error
    if done.returncode != 0:
        raise BenchError(f"`scoreboard {' '.join(args)}` failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


async def fill(db_url: str, users: int, seed: float) -> tuple[int, int]:
    """Insert the users and their scores; (users on the board, distinct scores on it)."""
    conn = await asyncpg.connect(db_url, timeout=5, command_timeout=600)
    try:
        await conn.execute("SET synchronous_commit = off")
        salt = secrets.token_hex(4)
        await conn.execute(_INSERT_USERS, users, salt)
        await conn.fetchval("SELECT setseed($1)", seed)
        # The scores reference the users inserted just above: skip the per-row foreign-key check
        # when allowed (a superuser, as on the development machines); it is half the setup time.
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("SET session_replication_role = replica")
        await conn.execute(_INSERT_SCORES, users, salt, SCORE_SCALE)
        await conn.execute("RESET session_replication_role")
        await conn.execute("ANALYZE users")
        await conn.execute("ANALYZE user_score")
        row = await conn.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT score) AS d FROM user_score WHERE score > 0"
        )
        distinct_times = await conn.fetchval("SELECT count(DISTINCT score_reached_at) FROM user_score")
        if distinct_times != users:
            raise BenchError(f"score_reached_at is not distinct: {distinct_times} of {users}")
        return int(row["n"]), int(row["d"])
    finally:
        await conn.close()


# checks ------------------------------------------------------------------------------------------


async def verify(
    db_url: str, redis_url: str, prefix: str, results: Results, samples: int, rng: random.Random
) -> str:
    conn = await asyncpg.connect(db_url, timeout=5, command_timeout=60)
    board = RedisLeaderboard.from_url(redis_url, prefix)
    client = Redis.from_url(redis_url)
    on_board = results.on_board
    try:
        zcard = await client.zcard(f"{prefix}leaderboard")
        if zcard != on_board:
            raise CheckFailed(f"ZCARD {prefix}leaderboard = {zcard}, the database has {on_board} scores > 0")
        for name in ("scores", "names"):
            if (size := await client.hlen(f"{prefix}leaderboard:{name}")) != on_board:
                raise CheckFailed(f"HLEN {prefix}leaderboard:{name} = {size}, expected {on_board}")
        ties = 0
        async for _ in client.scan_iter(match=f"{prefix}leaderboard:ties:*", count=10_000):
            ties += 1
        if ties != results.distinct_scores:
            raise CheckFailed(f"{ties} tie sets, the database has {results.distinct_scores} distinct scores")
        cached = await board.board(TOP)
        truth = await conn.fetch(_SQL_TOP, TOP)
        got = [(e.rank, e.user_id, e.display_name, e.score) for e in cached.entries]
        want = [(i, r["user_id"], r["display_name"], r["score"]) for i, r in enumerate(truth, start=1)]
        if got != want:
            raise CheckFailed(f"top {TOP} differs:\n cache    {got}\n database {want}")
        # Random users (by row position, so the sample follows the score spread) plus one at 0.
        ids = await conn.fetch(
            "SELECT user_id::text AS id FROM user_score TABLESAMPLE BERNOULLI (1) LIMIT $1", samples * 20
        )
        picked = [r["id"] for r in rng.sample(list(ids), min(samples, len(ids)))]
        zero = await conn.fetchval("SELECT user_id::text FROM user_score WHERE score = 0 LIMIT 1")
        if zero is not None:
            picked.append(zero)
        for user_id in picked:
            row = await conn.fetchrow(_SQL_RANK, user_id)
            standing = await board.standing(user_id)
            if row["score"] == 0:
                if standing is not None:
                    raise CheckFailed(f"{user_id} has score 0 but the cache ranks it {standing}")
                continue
            if standing is None or (standing.rank, standing.score) != (row["rank"], row["score"]):
                raise CheckFailed(
                    f"{user_id}: cache {standing}, database rank {row['rank']} score {row['score']}"
                )
        return f"sizes, {ties} tie sets, top {len(got)} and {len(picked)} sampled ranks agree with SQL"
    finally:
        await conn.close()
        await board.close()
        await client.aclose()


# the benchmark -----------------------------------------------------------------------------------


async def in_process(
    db_url: str, redis_url: str, prefix: str, deadline: Deadline, profile: cProfile.Profile | None
) -> dict[str, float]:
    """One timing of each phase, in seconds; the cache holds the streamed rebuild's result after."""
    store = PostgresStore(db_url)
    board = RedisLeaderboard.from_url(redis_url, prefix)
    await store.open()
    timings: dict[str, float] = {}

    async def timed(name: str, work: Awaitable[Any]) -> Any:
        started = time.perf_counter()
        result = await asyncio.wait_for(work, deadline.left())
        timings[name] = time.perf_counter() - started
        return result

    async def drain() -> list[Any]:
        return [chunk async for chunk in store.score_rows()]

    try:
        entries = await timed("all_scores", store.all_scores())
        await timed("rebuild_list", board.rebuild(entries))
        del entries
        chunks = await timed("read", drain())

        async def replay() -> AsyncIterator[Any]:
            for chunk in chunks:
                yield chunk

        await timed("load", board.rebuild(replay()))
        chunks.clear()
        gc.collect()
        if profile:
            profile.enable()
        await timed("streamed", board.rebuild(store.score_rows()))
        if profile:
            profile.disable()
        return timings
    finally:
        await board.close()
        await store.close()


async def bench(options: argparse.Namespace, results: Results, deadline: Deadline) -> None:
    database = f"scoreboard_bench_{secrets.token_hex(6)}"
    prefix = f"bench:rebuild:{secrets.token_hex(6)}:"
    db_url = with_database(options.postgres, database)
    env = {
        **os.environ,
        "SCOREBOARD_DATABASE_URL": db_url,
        "SCOREBOARD_REDIS_URL": options.redis,
        "SCOREBOARD_REDIS_PREFIX": prefix,
        "SCOREBOARD_JWT_SECRET": secrets.token_hex(32),
        "SCOREBOARD_LOG_LEVEL": "warning",
    }
    env.pop("SCOREBOARD_BROKER_URL", None)
    rng = random.Random(options.seed)
    log(f"database {database}, Redis prefix {prefix!r}")
    try:
        await create_database(options.postgres, database)
        started = time.perf_counter()
        run_cli(["migrate"], env, deadline.left())
        log(f"inserting {options.users:,} users ...")
        results.on_board, results.distinct_scores = await asyncio.wait_for(
            fill(db_url, options.users, options.seed), deadline.left()
        )
        results.setup_seconds = time.perf_counter() - started
        log(
            f"  {results.on_board:,} on the board (score > 0), {results.distinct_scores:,} distinct scores,"
            f" {results.setup_seconds:.1f}s"
        )

        for run in range(1, options.runs + 1):
            results.load_averages.append(os.getloadavg()[0])
            started = time.perf_counter()
            out = run_cli(["rebuild-cache"], env, deadline.left())
            elapsed = time.perf_counter() - started
            found = _CLI_LINE.search(out)
            if found is None:
                raise BenchError(f"unexpected rebuild-cache output: {out.strip()!r}")
            if int(found.group(1)) != results.on_board:
                raise CheckFailed(
                    f"rebuild-cache reported {found.group(1)} users, expected {results.on_board}"
                )
            results.cli_seconds.append(elapsed)
            results.cli_reported_seconds.append(float(found.group(3)))
            check = await verify(db_url, options.redis, prefix, results, options.samples, rng)
            results.checks.append(f"cli run {run}: {check}")
            log(f"scoreboard rebuild-cache, run {run}: {elapsed:.2f}s end to end ({out.strip()}); {check}")

        profile = cProfile.Profile() if options.profile else None
        for run in range(1, options.phase_runs + 1):
            results.load_averages.append(os.getloadavg()[0])
            t = await in_process(db_url, options.redis, prefix, deadline, profile)
            results.all_scores_seconds.append(t["all_scores"])
            results.rebuild_list_seconds.append(t["rebuild_list"])
            results.read_seconds.append(t["read"])
            results.load_seconds.append(t["load"])
            results.streamed_seconds.append(t["streamed"])
            check = await verify(db_url, options.redis, prefix, results, options.samples, rng)
            results.checks.append(f"in-process run {run}: {check}")
            log(
                f"in-process, run {run}: all_scores {t['all_scores']:.2f}s, rebuild(list) {t['rebuild_list']:.2f}s;"
                f" score_rows {t['read']:.2f}s, rebuild(chunks) {t['load']:.2f}s;"
                f" rebuild(score_rows()) {t['streamed']:.2f}s; {check}"
            )
        if profile:
            profile.dump_stats(options.profile)
            log(f"cProfile of the in-process streamed rebuild written to {options.profile}")

        client = Redis.from_url(options.redis)
        try:
            info = await client.info("memory")
            results.redis_memory_mb = round(int(info["used_memory"]) / 1e6, 1)
        finally:
            await client.aclose()
    finally:
        with contextlib.suppress(Exception):
            log(f"cleanup: {await delete_keys(options.redis, prefix)} Redis keys deleted")
        try:
            await drop_database(options.postgres, database)
            log(f"cleanup: database {database} dropped")
        except Exception as error:
            log(f"cleanup: could not drop {database}: {error}")


def report(results: Results) -> None:
    def summary(values: list[float]) -> str:
        if not values:
            return "n/a"
        return f"median {statistics.median(values):.2f}s (runs: {', '.join(f'{v:.2f}' for v in values)})"

    log("")
    log(
        f"users {results.users:,}, on the board {results.on_board:,}, distinct scores {results.distinct_scores:,}"
    )
    log(f"scoreboard rebuild-cache, end to end:     {summary(results.cli_seconds)}")
    log(f"  as reported by the command itself:      {summary(results.cli_reported_seconds)}")
    log("in-process, the list path:")
    log(f"  Store.all_scores:                       {summary(results.all_scores_seconds)}")
    log(f"  Leaderboard.rebuild(that list):         {summary(results.rebuild_list_seconds)}")
    log("in-process, the streamed path (what rebuild-cache runs):")
    log(f"  Store.score_rows, drained (read):       {summary(results.read_seconds)}")
    log(f"  Leaderboard.rebuild(those chunks):      {summary(results.load_seconds)}")
    log(f"  Leaderboard.rebuild(score_rows()):      {summary(results.streamed_seconds)}")
    log(f"Redis used_memory after: {results.redis_memory_mb} MB ({results.machine})")
    loads = ", ".join(f"{v:.2f}" for v in results.load_averages)
    log(f"1-minute load average before each timed run: {loads} (the benchmark itself adds about 2)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000, help="users to insert (default 1000000)")
    parser.add_argument("--runs", type=int, default=3, help="`scoreboard rebuild-cache` runs (default 3)")
    parser.add_argument("--phase-runs", type=int, default=1, help="in-process phase timings (default 1)")
    parser.add_argument("--samples", type=int, default=20, help="random users whose rank is checked (20)")
    parser.add_argument("--seed", type=float, default=0.42, help="setseed() for the scores, -1..1 (0.42)")
    parser.add_argument("--deadline", type=float, default=300.0, help="give up after this many seconds (300)")
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="maintenance database URL (a private database is created beside it)",
    )
    parser.add_argument(
        "--redis", default="redis://127.0.0.1:6379/0", help="Redis URL (keys get a private prefix)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--profile", type=Path, help="cProfile the in-process streamed rebuild here")
    options = parser.parse_args()
    if options.users < 1 or options.runs < 0 or options.phase_runs < 0:
        parser.error("--users must be at least 1, --runs and --phase-runs at least 0")

    results = Results(options.users)
    deadline = Deadline(options.deadline)
    try:
        asyncio.run(bench(options, results, deadline))
    except CheckFailed as error:
        log(f"CHECK FAILED: {error}")
        return 1
    except (BenchError, OSError, asyncpg.PostgresError, TimeoutError) as error:
        log(f"benchmark could not run: {type(error).__name__}: {error}")
        return 2
    report(results)
    if options.json:
        options.json.write_text(json.dumps(asdict(results), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
