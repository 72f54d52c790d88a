"""Read replicas, for real: a primary this test starts, a streaming replica cloned from it with
`pg_basebackup -R`, and a PostgresStore whose reads go to the replica and writes to the primary.

A read's origin is shown by data, not by counters alone: with the replica's replay paused, a row
changed on the primary behind the store's back is still old on the replica, so the value a read
returns says which server answered it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace

import asyncpg
import pytest

from scoreboard.domain.model import User
from scoreboard.store.postgres import PostgresStore
from scoreboard.store.postgres_replica import parse_lsn
from tests.contract.test_store import new_ticket, new_user, redeeming, score
from tests.e2e.server import free_port
from tests.postgres_cluster import Cluster, primary_and_replica
from tests.postgres_support import private_database, with_address

pytestmark = pytest.mark.postgres

CATCH_UP_SECONDS = 10.0


@pytest.fixture(scope="module")
def servers() -> Iterator[Cluster]:
    with primary_and_replica() as started:
        yield started


@pytest.fixture
async def cluster(servers: Cluster) -> Cluster:
    """The module's servers, with a database of this test's own (created on the primary, replicated)."""
    database = f"t_{uuid.uuid4().hex[:12]}"
    async with connected(servers.primary_url) as primary:
        await primary.execute(f'CREATE DATABASE "{database}"')
    await caught_up(servers)
    return replace(servers, database=database)


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def replicated_store(cluster: Cluster) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(cluster.primary_url, read_url=cluster.replica_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
        async with connected(cluster.replica_url) as replica:
            await replica.execute("SELECT pg_wal_replay_resume()")


async def caught_up(cluster: Cluster) -> None:
    """Wait (bounded) until the replica has replayed everything the primary has written."""
    async with connected(cluster.primary_url) as primary, connected(cluster.replica_url) as replica:
        target = parse_lsn(await primary.fetchval("SELECT pg_current_wal_insert_lsn()::text"))
        deadline = asyncio.get_running_loop().time() + CATCH_UP_SECONDS
        while parse_lsn(await replica.fetchval("SELECT pg_last_wal_replay_lsn()::text")) < target:
            assert asyncio.get_running_loop().time() < deadline, "the replica did not catch up"
            await asyncio.sleep(0.02)


async def pause_replay(cluster: Cluster) -> None:
    async with connected(cluster.replica_url) as replica:
        await replica.execute("SELECT pg_wal_replay_pause()")


async def set_score_behind_the_stores_back(cluster: Cluster, user: User, value: int) -> None:
    """Another writer (say, another instance) changes the primary; a paused replica keeps the old row."""
    async with connected(cluster.primary_url) as primary:
        await primary.execute(
            "UPDATE user_score SET score = $2 WHERE user_id = $1", uuid.UUID(user.user_id), value
        )


async def redeem_one(store: PostgresStore, user: User) -> int:
    ticket = await new_ticket(store, user)
    return (await store.redeem(redeeming(user, ticket.action_id))).entry.score


async def test_the_replica_is_a_hot_standby_of_the_primary(cluster: Cluster) -> None:
    async with connected(cluster.primary_url) as primary, connected(cluster.replica_url) as replica:
        assert await primary.fetchval("SELECT pg_is_in_recovery()") is False
        assert await replica.fetchval("SELECT pg_is_in_recovery()") is True
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await replica.execute("CREATE TABLE nope (x int)")


async def test_reads_are_served_by_the_replica_and_writes_by_the_primary(cluster: Cluster) -> None:
    async with replicated_store(cluster) as store:
        assert store.replica is not None
        user = await new_user(store)
        await redeem_one(store, user)
        await caught_up(cluster)
        await pause_replay(cluster)

        await set_score_behind_the_stores_back(cluster, user, 100)

        seen = await score(store, user)
        board = await store.top(10)
        rank = await store.rank_of(user.user_id)
        async with connected(cluster.primary_url) as primary:
            on_primary = await primary.fetchval(
                "SELECT count(*) FROM action_log WHERE user_id = $1 AND redeemed_at IS NOT NULL",
                uuid.UUID(user.user_id),
            )

    assert seen == 1  # the replica's row: the primary says 100
    assert [(e.user_id, e.score) for e in board] == [(user.user_id, 1)]
    assert rank == 1
    assert on_primary == 1  # the write landed on the primary
    assert store.replica.served["replica"] == 3


async def test_a_writer_sees_their_own_new_score_while_the_replica_lags(cluster: Cluster) -> None:
    async with replicated_store(cluster) as store:
        assert store.replica is not None
        writer, bystander = await new_user(store), await new_user(store)
        await redeem_one(store, bystander)
        await caught_up(cluster)
        await pause_replay(cluster)

        new_score = await redeem_one(store, writer)  # committed on the primary, not replayed
        await set_score_behind_the_stores_back(cluster, bystander, 100)

        own = await score(store, writer)
        own_rank = await store.rank_of(writer.user_id)
        board = await store.top(10)  # the board waits for everything this process committed
        others = await score(store, bystander)  # no write of theirs: the (stale) replica serves

    assert own == new_score == 1
    assert own_rank == 2  # behind the bystander, who reached 1 first
    assert (writer.user_id, 1) in [(e.user_id, e.score) for e in board]
    assert others == 1  # the replica's view: the primary already says 100
    assert store.replica.served["behind"] == 3
    assert store.replica.served["replica"] == 1


async def test_a_writers_reads_return_to_the_replica_once_it_has_replayed_their_write(
    cluster: Cluster,
) -> None:
    async with replicated_store(cluster) as store:
        assert store.replica is not None
        user = await new_user(store)
        await pause_replay(cluster)
        await redeem_one(store, user)
        assert await score(store, user) == 1  # from the primary: the replica has not replayed it
        async with connected(cluster.replica_url) as replica:
            await replica.execute("SELECT pg_wal_replay_resume()")
        await caught_up(cluster)
        await pause_replay(cluster)

        await set_score_behind_the_stores_back(cluster, user, 100)

        assert await score(store, user) == 1  # the replica's row again
        assert store.replica.served["replica"] == 1


async def test_an_unreachable_replica_sends_reads_to_the_primary() -> None:
    async with private_database() as url:
        nowhere = with_address(url, "127.0.0.1", free_port())
        store = PostgresStore(url, read_url=nowhere)
        await store.open()
        try:
            user = await new_user(store)
            await redeem_one(store, user)
            first = await score(store, user)
            second = await store.top(10)
        finally:
            await store.close()

    assert first == 1
    assert [(e.user_id, e.score) for e in second] == [(user.user_id, 1)]
    assert store.replica is not None
    assert store.replica.served["failed"] == 1  # then left alone for a while: one failure, not two
