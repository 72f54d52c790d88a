"""The Store contract, run against every adapter: accounts, refresh families, exactly-once
redemption, board order and the outbox."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from scoreboard.domain.errors import ActionNotPermitted, DuplicateAction, ScoreOverflow, UsernameTaken
from scoreboard.domain.model import Credentials, Redeemed, Role, ScoreEntry, Ticket, User
from scoreboard.domain.ranking import rank_entries, score_row
from scoreboard.domain.scoring import MAX_SCORE
from scoreboard.leaderboard.base import Leaderboard
from scoreboard.store.base import OutboxEvent, RedeemRequest, RefreshRecord, Store

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MIN_SECONDS = {"default": 0, "slow": 30}
FULLWIDTH_ALICE = "\uff21\uff4c\uff49\uff43\uff45"  # "Alice" in full-width letters
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def new_id() -> str:
    return str(uuid.uuid4())


async def new_user(
    store: Store,
    username: str | None = None,
    user_id: str | None = None,
    roles: tuple[Role, ...] = (Role.USER,),
) -> User:
    user_id = user_id or new_id()
    username = username or f"user-{uuid.uuid4().hex[:12]}"
    user = User(user_id, username, f"Player {username}", roles)
    await store.create_user(user, HASH, at(-3600))
    return user


async def new_ticket(
    store: Store, user: User, points: int = 1, kind: str = "default", ttl: int = 600
) -> Ticket:
    ticket = Ticket(new_id(), user.user_id, kind, points, T0, at(ttl))
    await store.save_ticket(ticket)
    return ticket


def redeeming(
    user: User, action_id: str, now: datetime = T0, open_points: int | None = None
) -> RedeemRequest:
    return RedeemRequest(user.user_id, action_id, now, MIN_SECONDS, open_points)


async def score(store: Store, user: User) -> int:
    entry = await store.score_of(user.user_id)
    assert entry is not None
    return entry.score


async def pending(store: Store) -> list[OutboxEvent]:
    return await store.pending_events(at(10**6), 1000)


# accounts ------------------------------------------------------------------------------------


async def test_created_user_is_found_by_id_and_username(store: Store) -> None:
    user = await new_user(store, "Alice", roles=(Role.USER, Role.ADMIN))

    assert await store.user(user.user_id) == user
    assert await store.credentials("Alice") == Credentials(user, HASH)


@pytest.mark.parametrize("spelling", ["alice", "ALICE", "aLiCe", FULLWIDTH_ALICE])
async def test_username_lookup_ignores_case_and_width(store: Store, spelling: str) -> None:
    user = await new_user(store, "Alice")

    found = await store.credentials(spelling)

    assert found is not None
    assert found.user == user


@pytest.mark.parametrize("spelling", ["Alice", "alice", "ALICE", FULLWIDTH_ALICE])
async def test_username_taken_by_any_case_or_width_variant(store: Store, spelling: str) -> None:
    first = await new_user(store, "Alice")

    with pytest.raises(UsernameTaken, match=spelling):
        await new_user(store, spelling)

    assert await store.credentials("alice") == Credentials(first, HASH)


async def test_unknown_user_and_username_are_none(store: Store) -> None:
    await new_user(store, "alice")

    assert await store.user(new_id()) is None
    assert await store.credentials("bob") is None
    assert await store.score_of(new_id()) is None


async def test_new_user_starts_at_zero_and_off_the_board(store: Store) -> None:
    user = await new_user(store)

    entry = await store.score_of(user.user_id)

    assert entry == ScoreEntry(user.user_id, user.display_name, 0, at(-3600))
    assert await store.rank_of(user.user_id) is None
    assert await store.top(10) == []
    assert await store.all_scores() == []


async def test_password_hash_can_be_replaced(store: Store) -> None:
    user = await new_user(store, "alice")

    await store.update_password_hash(user.user_id, "$argon2id$new")

    assert await store.credentials("alice") == Credentials(user, "$argon2id$new")


# refresh-token families ----------------------------------------------------------------------


def refresh(user: User, family_id: str) -> RefreshRecord:
    return RefreshRecord(new_id(), family_id, user.user_id, at(86400.000001), spent=False, revoked=False)


async def test_refresh_token_is_spent_once(store: Store) -> None:
    user = await new_user(store)
    token = refresh(user, new_id())
    await store.save_refresh(token)

    assert await store.spend_refresh(token.token_hash, T0) == token


async def test_spending_a_spent_token_revokes_its_whole_family(store: Store) -> None:
    user = await new_user(store)
    family = new_id()
    spent, sibling, stranger = refresh(user, family), refresh(user, family), refresh(user, new_id())
    for token in (spent, sibling, stranger):
        await store.save_refresh(token)
    await store.spend_refresh(spent.token_hash, T0)

    reused = await store.spend_refresh(spent.token_hash, at(1))
    sibling_after = await store.spend_refresh(sibling.token_hash, at(2))
    stranger_after = await store.spend_refresh(stranger.token_hash, at(3))

    assert reused is not None
    assert reused.spent
    assert sibling_after is not None
    assert sibling_after.revoked
    assert not sibling_after.spent
    assert stranger_after == stranger


async def test_revoked_family_comes_back_revoked(store: Store) -> None:
    user = await new_user(store)
    family = new_id()
    first, second = refresh(user, family), refresh(user, family)
    await store.save_refresh(first)
    await store.save_refresh(second)

    await store.revoke_family(family)

    for token in (first, second):
        record = await store.spend_refresh(token.token_hash, T0)
        assert record is not None
        assert record.revoked


async def test_unknown_refresh_token_is_none(store: Store) -> None:
    assert await store.spend_refresh("no-such-hash", T0) is None


# redemption ----------------------------------------------------------------------------------


async def test_redeeming_a_ticket_adds_its_points(store: Store) -> None:
    user = await new_user(store)
    ticket = await new_ticket(store, user, points=5)

    redeemed = await store.redeem(redeeming(user, ticket.action_id, at(1)))

    assert redeemed.points == 5
    assert redeemed.entry == ScoreEntry(user.user_id, user.display_name, 5, at(1))
    assert await store.score_of(user.user_id) == redeemed.entry


async def test_score_reached_at_strictly_increases(store: Store) -> None:
    user = await new_user(store)
    reached = []
    for now in (at(5), at(5), at(5), at(1)):  # the same instant, then a clock that went back
        ticket = await new_ticket(store, user)
        reached.append((await store.redeem(redeeming(user, ticket.action_id, now))).entry.reached_at)

    assert reached == sorted(set(reached))
    assert reached[0] == at(5)
    assert await score(store, user) == 4


async def test_second_redeem_is_a_duplicate_with_the_current_score(store: Store) -> None:
    user = await new_user(store)
    ticket = await new_ticket(store, user, points=3)
    await store.redeem(redeeming(user, ticket.action_id))
    await store.redeem(redeeming(user, (await new_ticket(store, user, points=4)).action_id))

    with pytest.raises(DuplicateAction) as duplicate:
        await store.redeem(redeeming(user, ticket.action_id, at(1)))

    assert duplicate.value.score == 7
    assert await score(store, user) == 7


async def test_another_users_ticket_is_not_permitted_and_stays_redeemable(store: Store) -> None:
    owner, thief = await new_user(store), await new_user(store)
    ticket = await new_ticket(store, owner)

    with pytest.raises(ActionNotPermitted):
        await store.redeem(redeeming(thief, ticket.action_id))

    assert await score(store, thief) == 0
    assert (await store.redeem(redeeming(owner, ticket.action_id))).entry.score == 1


async def test_another_users_redeemed_ticket_is_not_permitted_rather_than_duplicate(store: Store) -> None:
    owner, other = await new_user(store), await new_user(store)
    ticket = await new_ticket(store, owner)
    await store.redeem(redeeming(owner, ticket.action_id))

    with pytest.raises(ActionNotPermitted) as refused:
        await store.redeem(redeeming(other, ticket.action_id))

    assert not isinstance(refused.value, DuplicateAction)


async def test_expired_ticket_is_not_permitted(store: Store) -> None:
    user = await new_user(store)
    ticket = await new_ticket(store, user, ttl=60)

    with pytest.raises(ActionNotPermitted, match="expired"):
        await store.redeem(redeeming(user, ticket.action_id, ticket.expires_at))

    assert await score(store, user) == 0


async def test_ticket_redeemed_too_soon_is_refused_then_redeemable_in_time(store: Store) -> None:
    user = await new_user(store)
    ticket = await new_ticket(store, user, kind="slow")

    with pytest.raises(ActionNotPermitted, match="too soon"):
        await store.redeem(redeeming(user, ticket.action_id, at(29.999999)))

    assert (await store.redeem(redeeming(user, ticket.action_id, at(30)))).entry.score == 1


async def test_unknown_ticket_is_not_permitted(store: Store) -> None:
    user = await new_user(store)

    with pytest.raises(ActionNotPermitted):
        await store.redeem(redeeming(user, new_id()))


async def test_unknown_user_is_not_permitted(store: Store) -> None:
    user = await new_user(store)
    ticket = await new_ticket(store, user)
    ghost = User(new_id(), "ghost", "Ghost", (Role.USER,))

    with pytest.raises(ActionNotPermitted):
        await store.redeem(redeeming(ghost, ticket.action_id))
    with pytest.raises(ActionNotPermitted):
        await store.redeem(redeeming(ghost, new_id(), open_points=1))


async def test_refusals_leave_no_trace(store: Store) -> None:
    owner, other = await new_user(store), await new_user(store)
    ticket = await new_ticket(store, owner, kind="slow", ttl=60)
    refusals = [
        redeeming(other, ticket.action_id, at(40)),
        redeeming(owner, ticket.action_id, at(1)),
        redeeming(owner, ticket.action_id, at(60)),
        redeeming(owner, new_id(), at(40)),
    ]
    for request in refusals:
        with pytest.raises(ActionNotPermitted):
            await store.redeem(request)

    assert await pending(store) == []
    assert await store.all_scores() == []
    assert (await store.redeem(redeeming(owner, ticket.action_id, at(40)))).entry.score == 1


async def test_open_policy_needs_no_ticket_and_is_still_exactly_once(store: Store) -> None:
    user = await new_user(store)
    action_id = new_id()

    redeemed = await store.redeem(redeeming(user, action_id, open_points=3))
    with pytest.raises(DuplicateAction) as duplicate:
        await store.redeem(redeeming(user, action_id, at(1), open_points=3))

    assert (redeemed.points, redeemed.entry.score) == (3, 3)
    assert duplicate.value.score == 3
    assert await score(store, user) == 3


async def test_score_overflow_is_refused_and_leaves_the_score_unchanged(store: Store) -> None:
    user = await new_user(store)
    await store.redeem(redeeming(user, (await new_ticket(store, user, points=MAX_SCORE - 1)).action_id))
    ticket = await new_ticket(store, user, points=2)
    retried = new_id()

    with pytest.raises(ScoreOverflow):
        await store.redeem(redeeming(user, ticket.action_id, at(1)))
    with pytest.raises(ScoreOverflow):
        await store.redeem(redeeming(user, retried, at(1), open_points=2))

    assert await score(store, user) == MAX_SCORE - 1
    assert len(await pending(store)) == 1
    assert (await store.redeem(redeeming(user, retried, at(2), open_points=1))).entry.score == MAX_SCORE


# exactly-once under concurrency ----------------------------------------------------------------


async def test_concurrent_redeems_of_one_action_succeed_once(store: Store) -> None:
    user = await new_user(store)
    ticket = await new_ticket(store, user, points=2)

    outcomes = await asyncio.gather(
        *(store.redeem(redeeming(user, ticket.action_id)) for _ in range(50)), return_exceptions=True
    )

    assert sum(isinstance(o, Redeemed) for o in outcomes) == 1
    duplicates = [o for o in outcomes if isinstance(o, DuplicateAction)]
    assert len(duplicates) == 49
    assert {d.score for d in duplicates} == {2}
    assert await score(store, user) == 2
    assert len(await pending(store)) == 1


async def test_concurrent_redeems_of_different_actions_all_succeed(store: Store) -> None:
    users = [await new_user(store) for _ in range(5)]
    tickets = await asyncio.gather(*(new_ticket(store, user) for user in users for _ in range(10)))
    owner = {u.user_id: u for u in users}

    outcomes = await asyncio.gather(
        *(store.redeem(redeeming(owner[t.user_id], t.action_id)) for t in tickets), return_exceptions=True
    )

    assert all(isinstance(o, Redeemed) for o in outcomes), outcomes
    assert [await score(store, user) for user in users] == [10] * 5
    assert len(await pending(store)) == 50


# board order -----------------------------------------------------------------------------------


@dataclass
class Field:
    """Six users: e (2 points), d (1, reached first), a b c (1, reached together), z (0)."""

    by_name: dict[str, User]

    def ids(self, names: str) -> list[str]:
        return [self.by_name[n].user_id for n in names]


async def field(store: Store) -> Field:
    ids = {n: f"00000000-0000-4000-8000-00000000000{i}" for i, n in enumerate("abcdez", start=1)}
    users = {n: await new_user(store, f"player-{n}", ids[n]) for n in "zcaebd"}
    for name, seconds in (("e", 1), ("e", 2), ("d", 1), ("c", 2), ("a", 2), ("b", 2)):
        user = users[name]
        await store.redeem(redeeming(user, (await new_ticket(store, user)).action_id, at(seconds)))
    return Field(users)


async def test_top_orders_by_score_then_reached_at_then_user_id(store: Store) -> None:
    players = await field(store)

    top = await store.top(10)

    assert [e.user_id for e in top] == players.ids("edabc")
    assert [e.score for e in top] == [2, 1, 1, 1, 1]
    assert [e.user_id for e in await store.top(2)] == players.ids("ed")
    assert await store.all_scores() == top


async def test_rank_of_agrees_with_board_order(store: Store) -> None:
    players = await field(store)

    ranks = [await store.rank_of(user_id) for user_id in players.ids("edabcz")]

    assert ranks == [1, 2, 3, 4, 5, None]
    assert await store.rank_of(new_id()) is None


async def test_store_and_cache_agree_on_order_and_ranks(store: Store, leaderboard: Leaderboard) -> None:
    """Run for every Store x Leaderboard pair: the tie-break must be the same everywhere."""
    players = await field(store)
    cache = leaderboard
    truth = await store.all_scores()

    board = await cache.rebuild(truth)

    assert [e.user_id for e in board.entries] == [e.user_id for e in truth]
    assert board.entries == rank_entries(truth, limit=10)
    for user in players.by_name.values():
        standing = await cache.standing(user.user_id)
        assert (None if standing is None else standing.rank) == await store.rank_of(user.user_id)


async def test_score_rows_stream_every_positive_score(store: Store) -> None:
    players = await field(store)

    chunks = [chunk async for chunk in store.score_rows()]

    rows = [tuple(row) for chunk in chunks for row in chunk]  # tuples, or records that unpack alike
    assert sorted(rows) == sorted(score_row(e) for e in await store.all_scores())
    assert {row[0] for row in rows} == set(players.ids("abcde"))  # z (0 points) is left out
    assert [row[2] for row in rows] == [2, 1, 1, 1, 1]  # grouped by score, highest first


async def test_a_cache_rebuilt_from_the_stream_agrees_with_the_store(
    store: Store, leaderboard: Leaderboard
) -> None:
    """Run for every Store x Leaderboard pair: the streamed rebuild (what CacheKeeper does)."""
    players = await field(store)

    board = await leaderboard.rebuild(store.score_rows())

    assert board.entries == rank_entries(await store.all_scores(), limit=10)
    for user in players.by_name.values():
        standing = await leaderboard.standing(user.user_id)
        assert (None if standing is None else standing.rank) == await store.rank_of(user.user_id)


async def test_cache_fed_redemption_by_redemption_agrees_with_the_store(
    store: Store, leaderboard: Leaderboard
) -> None:
    users = [await new_user(store, user_id=f"00000000-0000-4000-8000-0000000000{i:02d}") for i in range(12)]
    cache = leaderboard
    for round_, seconds in enumerate((3, 3, 1)):  # equal instants make ties that only user ids break
        for user in users[round_ * 3 :]:
            ticket = await new_ticket(store, user)
            await cache.apply((await store.redeem(redeeming(user, ticket.action_id, at(seconds)))).entry)

    assert (await cache.board(20)).entries == rank_entries(await store.all_scores(), limit=20)
    for user in users:
        standing = await cache.standing(user.user_id)
        assert standing is not None
        assert standing.rank == await store.rank_of(user.user_id)


# outbox ----------------------------------------------------------------------------------------


async def test_redeem_records_a_pending_event(store: Store) -> None:
    user = await new_user(store)
    ticket = await new_ticket(store, user, points=4)

    redeemed = await store.redeem(redeeming(user, ticket.action_id, at(1)))

    assert await pending(store) == [OutboxEvent(redeemed.event_id, redeemed.entry, at(1))]


async def test_pending_events_are_only_those_committed_before_older_than(store: Store) -> None:
    user = await new_user(store)
    await store.redeem(redeeming(user, (await new_ticket(store, user)).action_id, at(1)))

    assert await store.pending_events(at(1), 10) == []
    assert len(await store.pending_events(at(1.000001), 10)) == 1


async def test_pending_events_come_oldest_first_up_to_the_limit(store: Store) -> None:
    user = await new_user(store)
    redeemed = [
        await store.redeem(redeeming(user, (await new_ticket(store, user)).action_id, at(i)))
        for i in range(3)
    ]

    events = await store.pending_events(at(100), 2)

    assert [e.event_id for e in events] == [r.event_id for r in redeemed[:2]]
    assert [e.entry.score for e in events] == [1, 2]


async def test_mark_published_is_idempotent(store: Store) -> None:
    user = await new_user(store)
    first = await store.redeem(redeeming(user, (await new_ticket(store, user)).action_id))
    second = await store.redeem(redeeming(user, (await new_ticket(store, user)).action_id))

    await store.mark_published([first.event_id])
    await store.mark_published([first.event_id])
    await store.mark_published([])
    await store.mark_published([second.event_id + 1000])

    assert [e.event_id for e in await pending(store)] == [second.event_id]
    await store.mark_published([first.event_id, second.event_id])
    assert await pending(store) == []


# lifecycle -------------------------------------------------------------------------------------


async def test_migrations_are_applied_once(unopened_store: Store) -> None:
    first = unopened_store.migrate()
    second = unopened_store.migrate()

    assert first
    assert first[0].startswith("0001_")
    assert second == []
    await unopened_store.open()
    try:
        await unopened_store.ping()
        assert unopened_store.migrate() == []
    finally:
        await unopened_store.close()


async def test_opened_store_answers_ping(store: Store) -> None:
    await store.ping()
