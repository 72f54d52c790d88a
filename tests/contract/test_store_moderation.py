"""The Store's moderation contract, run against every Store adapter: bans, unbans, score
corrections, the audit log and a user's recent actions."""

from __future__ import annotations

import pytest

from scoreboard.domain.errors import ActionNotPermitted, UsernameTaken, UserNotFound
from scoreboard.domain.model import AdminAction, AuditRecord, Role, ScoreEntry, Ticket, User, UserState
from scoreboard.domain.ranking import rank_entries, row_entry
from scoreboard.leaderboard.base import Leaderboard
from scoreboard.store.base import AdminAct, Store
from tests.contract.test_store import (
    HASH,
    T0,
    at,
    new_id,
    new_ticket,
    new_user,
    pending,
    redeeming,
    refresh,
)


async def scored(store: Store, points: int, now: float = 0, name: str | None = None) -> User:
    """A new user who redeemed one ticket worth `points` at `now`."""
    user = await new_user(store, name)
    ticket = await new_ticket(store, user, points=points)
    await store.redeem(redeeming(user, ticket.action_id, at(now)))
    return user


async def admin(store: Store) -> User:
    return await new_user(store, roles=(Role.USER, Role.ADMIN))


def act(actor: User, target: User, now: float = 60, reason: str = "cheating") -> AdminAct:
    return AdminAct(actor.user_id, target.user_id, reason, at(now))


async def streamed(store: Store) -> list[ScoreEntry]:
    return [row_entry(row) async for chunk in store.score_rows() for row in chunk]


# ban ---------------------------------------------------------------------------------------------


async def test_banned_user_leaves_every_board_query_but_keeps_the_stored_score(store: Store) -> None:
    cheat, honest, boss = await scored(store, 50), await scored(store, 3, now=1), await admin(store)

    done = await store.ban(act(boss, cheat))

    assert [e.user_id for e in await store.top(10)] == [honest.user_id]
    assert [e.user_id for e in await store.all_scores()] == [honest.user_id]
    assert [e.user_id for e in await streamed(store)] == [honest.user_id]
    assert await store.rank_of(honest.user_id) == 1
    assert await store.rank_of(cheat.user_id) is None
    assert await store.score_of(cheat.user_id) is None
    assert done.audit.before == UserState(50, banned=False)
    assert done.audit.after == UserState(50, banned=True)  # the Store keeps the truth


async def test_ban_appends_an_event_removing_the_user_after_their_last_score(store: Store) -> None:
    cheat, boss = await scored(store, 5, now=100), await admin(store)

    done = await store.ban(act(boss, cheat, now=60))  # a clock behind the score's time

    assert done.entry is not None
    assert done.entry.score == 0
    assert done.entry.reached_at > at(100)
    assert [(e.event_id, e.entry) for e in await pending(store)] == [(done.event_id, done.entry)]


async def test_ban_drops_the_users_unapplied_score_events_but_not_others(store: Store) -> None:
    cheat, honest, boss = await scored(store, 5), await scored(store, 3), await admin(store)

    done = await store.ban(act(boss, cheat))

    events = await pending(store)
    assert [e.entry.user_id for e in events] == [honest.user_id, cheat.user_id]
    assert events[-1].event_id == done.event_id


async def test_banned_user_cannot_redeem_and_the_ticket_stays_unused(store: Store) -> None:
    cheat, boss = await scored(store, 5), await admin(store)
    ticket = await new_ticket(store, cheat, points=7)
    await store.ban(act(boss, cheat))

    with pytest.raises(ActionNotPermitted, match="banned"):
        await store.redeem(redeeming(cheat, ticket.action_id, at(61)))

    await store.unban(act(boss, cheat, now=62))
    redeemed = await store.redeem(redeeming(cheat, ticket.action_id, at(63)))
    assert redeemed.entry.score == 12


async def test_ban_revokes_the_users_refresh_families(store: Store) -> None:
    cheat, boss = await scored(store, 5), await admin(store)
    token = refresh(cheat, new_id())
    await store.save_refresh(token)

    await store.ban(act(boss, cheat))

    record = await store.spend_refresh(token.token_hash, at(61))
    assert record is not None
    assert record.revoked


async def test_banned_user_is_marked_in_credentials_and_the_name_stays_taken(store: Store) -> None:
    cheat, boss = await new_user(store, "Mallory"), await admin(store)

    await store.ban(act(boss, cheat))

    credentials = await store.credentials("mallory")
    assert credentials is not None
    assert credentials.banned
    assert credentials.password_hash == HASH
    with pytest.raises(UsernameTaken):
        await new_user(store, "MALLORY")


async def test_banning_twice_changes_nothing_more_but_is_audited(store: Store) -> None:
    cheat, boss = await scored(store, 5), await admin(store)
    await store.ban(act(boss, cheat))

    again = await store.ban(act(boss, cheat, now=70))

    assert again.entry is None
    assert again.audit.before == again.audit.after == UserState(5, banned=True)
    assert len(await store.audit_log(10)) == 2


async def test_acts_on_an_unknown_user_raise_user_not_found(store: Store) -> None:
    boss = await admin(store)
    ghost = User(new_id(), "ghost", "Ghost", (Role.USER,))

    for attempt in (store.ban(act(boss, ghost)), store.unban(act(boss, ghost))):
        with pytest.raises(UserNotFound):
            await attempt
    with pytest.raises(UserNotFound):
        await store.correct_score(act(boss, ghost), 5)
    assert await store.audit_log(10) == []


# unban ---------------------------------------------------------------------------------------------


async def test_unban_returns_the_stored_score_to_the_board_counted_as_reached_then(store: Store) -> None:
    cheat, rival, boss = await scored(store, 5), await scored(store, 5, now=30), await admin(store)
    await store.ban(act(boss, cheat, now=60))

    done = await store.unban(act(boss, cheat, now=90))

    assert done.entry == ScoreEntry(cheat.user_id, cheat.display_name, 5, at(90))
    assert done.audit.after == UserState(5, banned=False)
    assert [e.user_id for e in await store.top(10)] == [rival.user_id, cheat.user_id]
    assert await store.rank_of(cheat.user_id) == 2
    credentials = await store.credentials(cheat.username)
    assert credentials is not None
    assert not credentials.banned


# score correction ----------------------------------------------------------------------------------


async def test_correction_sets_the_score_and_counts_it_as_reached_at_the_correction(store: Store) -> None:
    user, rival, boss = await scored(store, 9), await scored(store, 4, now=30), await admin(store)

    done = await store.correct_score(act(boss, user, now=60, reason="bug refund"), 4)

    assert done.entry == ScoreEntry(user.user_id, user.display_name, 4, at(60))
    assert await store.score_of(user.user_id) == done.entry
    # Equal scores: the rival reached 4 at 30 s, the corrected user at the correction (60 s).
    assert [e.user_id for e in await store.top(10)] == [rival.user_id, user.user_id]
    assert await store.rank_of(user.user_id) == 2
    assert done.audit.action is AdminAction.SCORE_CORRECTION
    assert (done.audit.before, done.audit.after) == (UserState(9, False), UserState(4, False))
    assert [e.event_id for e in await pending(store)][-1] == done.event_id


async def test_correction_to_zero_takes_the_user_off_the_board(store: Store) -> None:
    user, boss = await scored(store, 9), await admin(store)

    done = await store.correct_score(act(boss, user), 0)

    assert done.entry is not None
    assert done.entry.score == 0
    assert await store.top(10) == []
    assert await store.rank_of(user.user_id) is None


async def test_correcting_a_banned_users_score_keeps_them_off_until_unbanned(store: Store) -> None:
    cheat, boss = await scored(store, 50), await admin(store)
    await store.ban(act(boss, cheat, now=60))

    corrected = await store.correct_score(act(boss, cheat, now=70), 2)
    restored = await store.unban(act(boss, cheat, now=80))

    assert corrected.entry is None
    assert corrected.audit.after == UserState(2, banned=True)
    assert restored.entry == ScoreEntry(cheat.user_id, cheat.display_name, 2, at(80))
    assert [e.score for e in await store.top(10)] == [2]


async def test_redemption_after_a_correction_adds_to_the_corrected_score(store: Store) -> None:
    user, boss = await scored(store, 9), await admin(store)
    await store.correct_score(act(boss, user, now=60), 3)
    ticket = await new_ticket(store, user, points=2)

    redeemed = await store.redeem(redeeming(user, ticket.action_id, at(61)))

    assert redeemed.entry.score == 5
    assert redeemed.entry.reached_at == at(61)


async def test_a_cache_fed_with_the_acts_agrees_with_a_rebuild(
    store: Store, leaderboard: Leaderboard
) -> None:
    users = [await scored(store, points, now=i) for i, points in enumerate((5, 9, 5, 7, 1))]
    boss = await admin(store)
    await leaderboard.rebuild(store.score_rows())
    acts = [
        await store.ban(act(boss, users[1], now=60)),
        await store.correct_score(act(boss, users[3], now=61), 5),
        await store.correct_score(act(boss, users[4], now=62), 0),
        await store.unban(act(boss, users[1], now=63)),
        await store.ban(act(boss, users[0], now=64)),
    ]
    for done in acts:
        if done.entry is not None:
            await leaderboard.apply(done.entry)

    expected = rank_entries(await store.all_scores(), 10)
    assert (await leaderboard.board(10)).entries == expected
    rebuilt = await leaderboard.rebuild(store.score_rows())
    assert rebuilt.entries == expected
    assert [e.user_id for e in expected] == [users[1].user_id, users[2].user_id, users[3].user_id]


# audit log and recent actions --------------------------------------------------------------------


async def test_audit_log_lists_every_act_newest_first(store: Store) -> None:
    user, boss = await scored(store, 9), await admin(store)
    done = [
        await store.ban(act(boss, user, now=60, reason="bot")),
        await store.unban(act(boss, user, now=61, reason="appeal")),
        await store.correct_score(act(boss, user, now=62, reason="refund"), 7),
    ]

    log = await store.audit_log(10)

    assert log == [d.audit for d in reversed(done)]
    assert log[0] == AuditRecord(
        log[0].audit_id,
        boss.user_id,
        AdminAction.SCORE_CORRECTION,
        user.user_id,
        "refund",
        UserState(9, False),
        UserState(7, False),
        at(62),
    )
    assert [r.action for r in log] == [AdminAction.SCORE_CORRECTION, AdminAction.UNBAN, AdminAction.BAN]
    assert await store.audit_log(2) == log[:2]


async def test_recent_actions_lists_the_users_tickets_newest_first(store: Store) -> None:
    user, other = await new_user(store), await new_user(store)
    older = await new_ticket(store, user, points=2)
    await store.redeem(redeeming(user, older.action_id, at(5)))
    newer_ticket = Ticket(new_id(), user.user_id, "default", 3, at(10), at(610))
    await store.save_ticket(newer_ticket)
    await new_ticket(store, other)

    actions = await store.recent_actions(user.user_id, 10)

    assert [t.action_id for t in actions] == [newer_ticket.action_id, older.action_id]
    assert actions[0].redeemed_at is None
    assert actions[1].redeemed_at == at(5)
    assert (actions[1].type, actions[1].points, actions[1].issued_at) == ("default", 2, T0)
    assert [t.action_id for t in await store.recent_actions(user.user_id, 1)] == [newer_ticket.action_id]
    assert await store.recent_actions(new_id(), 10) == []
