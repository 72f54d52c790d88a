"""The PostgreSQL adapter's promises beyond the Store contract: exactly-once across instances, group
commit, recovery from terminated connections, a bounded wait when the database is gone, TLS.

Each test owns a private database on the shared server; faults are injected by terminating that
database's sessions or through a proxy the test starts — the shared server is never stopped."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from scoreboard.config import Settings
from scoreboard.domain.errors import DuplicateAction, StoreUnavailable
from scoreboard.domain.model import Redeemed
from scoreboard.store import migrate
from scoreboard.store.postgres import BUDGET_SECONDS, PostgresStore
from tests.conftest import Api
from tests.contract.test_store import new_ticket, new_user, pending, redeeming, score
from tests.postgres_support import (
    Certificates,
    PgProxy,
    fetchval,
    private_database,
    with_address,
    with_query,
)

pytestmark = pytest.mark.postgres

SLACK_SECONDS = 1.5  # scheduling and connection set-up on top of a store's budget


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with private_database() as url:
        yield url


@pytest.fixture
async def proxy() -> AsyncIterator[PgProxy]:
    started = await PgProxy.start()
    try:
        yield started
    finally:
        await started.close()


@asynccontextmanager
async def opened(url: str, **options: Any) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(url, **options)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.started = time.monotonic()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.monotonic() - self.started


# exactly-once across instances ---------------------------------------------------------------


async def test_two_stores_redeeming_one_action_at_once_apply_it_once(database: str) -> None:
    async with opened(database) as one, opened(database) as two:
        user = await new_user(one)
        ticket = await new_ticket(one, user, points=2)

        outcomes = await asyncio.gather(
            *(s.redeem(redeeming(user, ticket.action_id)) for s in [one, two] * 25), return_exceptions=True
        )

        assert sum(isinstance(o, Redeemed) for o in outcomes) == 1
        duplicates = [o for o in outcomes if isinstance(o, DuplicateAction)]
        assert len(duplicates) == 49
        assert {d.score for d in duplicates} == {2}
        assert await score(two, user) == 2
        assert len(await pending(two)) == 1


async def test_two_stores_redeeming_one_users_actions_at_once_lose_no_points(database: str) -> None:
    async with opened(database) as one, opened(database) as two:
        user = await new_user(one)
        tickets = [await new_ticket(one, user) for _ in range(60)]

        outcomes = await asyncio.gather(
            *(s.redeem(redeeming(user, t.action_id)) for s, t in zip([one, two] * 30, tickets, strict=True))
        )

        assert sorted(o.entry.score for o in outcomes) == list(range(1, 61))
        assert await score(one, user) == 60
        events = await pending(one)
        assert sorted(e.entry.score for e in events) == list(range(1, 61))
        reached = [e.entry.reached_at for e in sorted(events, key=lambda e: e.entry.score)]
        assert reached == sorted(set(reached)), "each higher score was reached strictly later"


async def test_two_app_instances_sharing_postgres_accept_an_action_once(
    database: str, make_api: Callable[..., Any], settings: Settings
) -> None:
    first: Api = await make_api(settings, database_url=database)
    second: Api = await make_api(settings, database_url=database)
    alice = await first.user()
    await first.earn(alice, 2)
    action_id = await second.ticket(alice)

    responses = await asyncio.gather(*(api.update(alice, action_id) for api in [first, second] * 25))

    assert Counter(r.status_code for r in responses) == {200: 1, 409: 49}
    assert next(r for r in responses if r.status_code == 200).json()["new_score"] == 3
    assert {r.json()["score"] for r in responses if r.status_code == 409} == {3}
    # Each app here keeps its own in-memory board (no Redis), so the truth is read from the database.
    assert await fetchval(database, "SELECT score FROM user_score") == 3
    assert await fetchval(database, "SELECT count(*) FROM action_log WHERE redeemed_at IS NOT NULL") == 3
    assert await fetchval(database, "SELECT count(*) FROM outbox") == 3


async def test_instances_starting_together_apply_migrations_once(database: str) -> None:
    stores = [PostgresStore(database) for _ in range(4)]

    await asyncio.gather(*(s.open() for s in stores))
    try:
        shipped = len(migrate.migrations("postgres"))
        assert await fetchval(database, "SELECT count(*) FROM schema_migrations") == shipped
        assert await fetchval(database, "SELECT to_regclass('user_score') IS NOT NULL") is True
    finally:
        await asyncio.gather(*(s.close() for s in stores))


# group commit ----------------------------------------------------------------------------------


async def test_concurrent_redemptions_share_commits(database: str) -> None:
    async with opened(database) as store:
        user = await new_user(store)
        tickets = await asyncio.gather(*(new_ticket(store, user) for _ in range(50)))
        writer = store._writer
        batches, writes = writer.batches, writer.writes

        outcomes = await asyncio.gather(*(store.redeem(redeeming(user, t.action_id)) for t in tickets))

        assert all(isinstance(o, Redeemed) for o in outcomes)
        assert writer.writes - writes == 50
        assert writer.batches - batches < 50
        assert await score(store, user) == 50


async def test_a_refused_write_rolls_back_alone_in_its_batch(database: str) -> None:
    async with opened(database) as store:
        owner, thief = await new_user(store), await new_user(store)
        tickets = [await new_ticket(store, owner) for _ in range(10)]
        batches = store._writer.batches

        outcomes = await asyncio.gather(
            *(store.redeem(redeeming(u, t.action_id)) for t in tickets for u in (thief, owner)),
            return_exceptions=True,
        )

        assert sum(isinstance(o, Redeemed) for o in outcomes) == 10
        assert store._writer.batches - batches < 20
        assert (await score(store, owner), await score(store, thief)) == (10, 0)


async def test_batches_of_two_writers_take_user_rows_in_one_order_so_they_never_deadlock(
    database: str,
) -> None:
    """Two instances' writers, each holding its batch's row locks until its COMMIT, given the same
    users in opposite orders: a deadlock would cost a second's wait (deadlock_timeout) and a retry."""
    async with opened(database) as first, opened(database) as second:
        users = [await new_user(first) for _ in range(6)]
        deadlocks_before = await fetchval(database, DEADLOCKS)
        for _ in range(15):
            mine = [(user, await new_ticket(first, user)) for user in users]
            theirs = [(user, await new_ticket(first, user)) for user in reversed(users)]
            await asyncio.gather(
                *(first.redeem(redeeming(user, ticket.action_id)) for user, ticket in mine),
                *(second.redeem(redeeming(user, ticket.action_id)) for user, ticket in theirs),
            )
        deadlocks = await fetchval(database, DEADLOCKS)

    assert deadlocks == deadlocks_before
    assert first._writer.retries == second._writer.retries == 0


DEADLOCKS = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"


# faults ----------------------------------------------------------------------------------------


MIN_TICKETS, MAX_TICKETS = 200, 1000


async def test_terminated_connections_lose_no_accepted_update_and_apply_none_twice(database: str) -> None:
    """Invariant: every ticket counts exactly once, whether its first attempt was accepted, failed,
    or failed with an unknown outcome and was retried by the client."""
    async with opened(database) as store:
        user = await new_user(store)
        tickets = await asyncio.gather(*(new_ticket(store, user) for _ in range(MAX_TICKETS)))
        outcomes: list[object] = []
        reads: list[object] = []
        async with terminating_busy_sessions(database) as killed:
            # Whether a kill lands inside a write batch is timing: keep going (bounded) until one has.
            for wave in range(0, len(tickets), 10):
                if wave >= MIN_TICKETS and store._writer.retries > 0:
                    break
                batch = tickets[wave : wave + 10]
                outcomes += await asyncio.gather(
                    *(store.redeem(redeeming(user, t.action_id)) for t in batch), return_exceptions=True
                )
                reads += await asyncio.gather(
                    store.top(10), store.score_of(user.user_id), return_exceptions=True
                )
        tickets = tickets[: len(outcomes)]

        assert killed
        assert store._writer.retries > 0, "batches were cut mid-transaction and run again"
        accepted = [o for o in outcomes if isinstance(o, Redeemed)]
        assert all(isinstance(o, Redeemed | StoreUnavailable) for o in outcomes), outcomes
        assert len({r.entry.score for r in accepted}) == len(accepted), "no score was handed out twice"
        retried = [t for t, o in zip(tickets, outcomes, strict=True) if not isinstance(o, Redeemed)]
        for ticket in retried:  # what a client does after a 503: try again with the same action_id
            with contextlib.suppress(DuplicateAction):  # a duplicate: it had been applied after all
                await store.redeem(redeeming(user, ticket.action_id))
        assert await score(store, user) == len(tickets)
        assert len(await pending(store)) == len(tickets)
        assert len(accepted) >= len(tickets) // 2, "retries should hide most terminations"
        assert sum(isinstance(r, StoreUnavailable) for r in reads) <= len(reads) // 4


async def test_a_commit_whose_answer_is_lost_still_answers_its_callers(database: str, proxy: PgProxy) -> None:
    async with opened(proxy.url(database)) as store:
        user = await new_user(store)
        ticket = await new_ticket(store, user)
        proxy.lose_commit(delivered=True)

        redeemed = await store.redeem(redeeming(user, ticket.action_id))

        assert redeemed.entry.score == 1
        assert store._writer.outcomes_learnt == 1  # asked the server: txid_status said committed
        assert await score(store, user) == 1
        assert len(await pending(store)) == 1


async def test_a_commit_that_never_arrived_is_run_again(database: str, proxy: PgProxy) -> None:
    async with opened(proxy.url(database)) as store:
        user = await new_user(store)
        ticket = await new_ticket(store, user)
        proxy.lose_commit(delivered=False)

        redeemed = await store.redeem(redeeming(user, ticket.action_id))

        assert redeemed.entry.score == 1
        assert (store._writer.outcomes_learnt, store._writer.retries) == (1, 1)  # aborted, so re-run
        assert await score(store, user) == 1
        assert len(await pending(store)) == 1


@asynccontextmanager
async def terminating_busy_sessions(database: str, pause: float = 0.15) -> AsyncIterator[list[int]]:
    """While the block runs, pg_terminate_backend every session of `database` caught in a query or
    a transaction, then let the survivors work for `pause` seconds; yields the pids terminated."""
    killed: list[int] = []
    stop = asyncio.Event()

    async def terminate() -> None:
        conn = await asyncpg.connect(database)
        try:
            while not stop.is_set():
                pids = await conn.fetch(BUSY_SESSIONS)
                killed.extend(r["pid"] for r in pids if r["terminated"])
                await asyncio.sleep(pause if pids else 0.002)
        finally:
            await conn.close()

    task = asyncio.create_task(terminate())
    try:
        yield killed
    finally:
        stop.set()
        await task


BUSY_SESSIONS = """
SELECT pid, pg_terminate_backend(pid) AS terminated FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')
"""


async def test_unreachable_database_is_store_unavailable_within_the_budget(proxy: PgProxy) -> None:
    proxy.cut()  # a port where nothing answers
    store = PostgresStore(
        with_address("postgresql://postgres@127.0.0.1:5432/absent", "127.0.0.1", proxy.port)
    )

    with Stopwatch() as waited, pytest.raises(StoreUnavailable):
        await store.open()

    assert waited.seconds < BUDGET_SECONDS + SLACK_SECONDS
    with pytest.raises(StoreUnavailable):
        await store.ping()


async def test_database_gone_mid_run_is_store_unavailable_then_recovers(
    database: str, proxy: PgProxy
) -> None:
    async with opened(proxy.url(database), budget_seconds=1.5) as store:
        user = await new_user(store)
        first, second = await new_ticket(store, user), await new_ticket(store, user)
        await store.redeem(redeeming(user, first.action_id))
        proxy.cut()

        with Stopwatch() as waited, pytest.raises(StoreUnavailable):
            await store.redeem(redeeming(user, second.action_id))
        assert waited.seconds < 1.5 + SLACK_SECONDS
        for read in (store.ping(), store.score_of(user.user_id), store.top(10)):
            with pytest.raises(StoreUnavailable):
                await read

        proxy.restore()
        assert (
            await store.redeem(redeeming(user, second.action_id))
        ).entry.score == 2  # nothing half-applied


async def test_partitioned_database_is_store_unavailable_within_the_budget(
    database: str, proxy: PgProxy
) -> None:
    async with opened(proxy.url(database), budget_seconds=1.5) as store:
        user = await new_user(store)
        ticket = await new_ticket(store, user)
        proxy.blackhole()

        with Stopwatch() as waited, pytest.raises(StoreUnavailable):
            await store.redeem(redeeming(user, ticket.action_id))
        assert waited.seconds < 1.5 + SLACK_SECONDS
        with Stopwatch() as waited, pytest.raises(StoreUnavailable):
            await store.score_of(user.user_id)
        assert waited.seconds < 1.5 + SLACK_SECONDS

        proxy.restore()
        assert (await store.redeem(redeeming(user, ticket.action_id))).entry.score == 1


async def test_api_answers_503_with_retry_after_while_postgres_is_unreachable(
    database: str, proxy: PgProxy, make_api: Callable[..., Any], settings: Settings
) -> None:
    api: Api = await make_api(settings, database_url=proxy.url(database))
    alice = await api.user()
    action_id = await api.ticket(alice)
    proxy.cut()

    with Stopwatch() as waited:
        response = await api.update(alice, action_id)

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert waited.seconds < BUDGET_SECONDS + SLACK_SECONDS
    proxy.restore()
    retried = await api.update(alice, action_id)
    assert (retried.status_code, retried.json()["new_score"]) == (200, 1)


# TLS -------------------------------------------------------------------------------------------


async def test_sslmode_require_encrypts_the_link(database: str, tmp_path: Path) -> None:
    certificates = Certificates.create(tmp_path)
    tls = await PgProxy.start(tls=certificates.server_context())
    try:
        async with opened(with_query(tls.url(database), "sslmode=require")) as store:
            user = await new_user(store)
            await store.redeem(redeeming(user, (await new_ticket(store, user)).action_id))
            assert await score(store, user) == 1
        assert tls.tls_sessions >= 2  # the migrating connection and the pool's
    finally:
        await tls.close()


async def test_sslmode_verify_full_accepts_only_a_trusted_certificate(database: str, tmp_path: Path) -> None:
    trusted, stranger = Certificates.create(tmp_path), Certificates.create(tmp_path / "other")
    tls = await PgProxy.start(tls=trusted.server_context())
    try:
        verified = with_query(tls.url(database), f"sslmode=verify-full&sslrootcert={trusted.ca}")
        async with opened(verified) as store:
            await store.ping()
        impostor = with_query(tls.url(database), f"sslmode=verify-full&sslrootcert={stranger.ca}")
        with pytest.raises(StoreUnavailable):
            await PostgresStore(impostor, budget_seconds=1.0).open()
    finally:
        await tls.close()


async def test_sslmode_require_refuses_a_server_without_tls(database: str) -> None:
    plain = await PgProxy.start(refuse_tls=True)
    try:
        with pytest.raises(StoreUnavailable):
            await PostgresStore(with_query(plain.url(database), "sslmode=require"), budget_seconds=1.0).open()
        async with opened(with_query(plain.url(database), "sslmode=prefer")) as store:
            await store.ping()  # prefer falls back to plaintext
    finally:
        await plain.close()
