"""Scores: issue action tickets, redeem them exactly once, and read the board."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from scoreboard.broker.base import ScoreEvents
from scoreboard.domain.actions import ActionCatalog, ActionPolicy, issue_ticket
from scoreboard.domain.addresses import is_loopback
from scoreboard.domain.errors import ActingForAnotherUser, ActionNotPermitted, UserNotFound
from scoreboard.domain.model import Board, Principal, RankedEntry, ScoreEntry, Ticket
from scoreboard.leaderboard.base import Leaderboard
from scoreboard.leaderboard.encoding import encode_board
from scoreboard.limiter.base import Rules
from scoreboard.observability.logging import get_logger
from scoreboard.observability.metrics import Metrics
from scoreboard.observability.security import security_event
from scoreboard.services.clock import Clock
from scoreboard.services.limits import LimitSet, Throttle, quota_rules
from scoreboard.store.base import RedeemRequest, Store

log = get_logger("scoreboard.scores")

Publish = Callable[[Board], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ScoreUpdated:
    new_score: int
    rank: int | None
    points: int = 0


@dataclass(frozen=True, slots=True)
class Standing:
    user_id: str
    display_name: str
    score: int
    rank: int | None


async def _no_publish(_: Board) -> None:
    return None


class ScoreService:
    def __init__(
        self,
        store: Store,
        board: Leaderboard,
        throttle: Throttle,
        limits: LimitSet,
        catalog: ActionCatalog,
        policy: ActionPolicy,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._store, self._board = store, board
        self._throttle, self._limits = throttle, limits
        self._catalog, self._policy = catalog, policy
        self._clock, self._metrics = clock, metrics
        self._min_seconds = {name: t.min_seconds for name, t in catalog.types.items()}
        self.publish: Publish = _no_publish
        self.events: ScoreEvents | None = None
        self.applied_events: list[int] = []

    async def issue_action(self, caller: Principal, type_name: str, address: str) -> Ticket:
        """Issue a ticket for one action of `type_name` to the caller (rate limits and quota permitting)."""
        if not caller.account:
            raise ActionNotPermitted(
                "an external service identity holds no tickets: the player requests the ticket and"
                " the service redeems it for them"
            )
        kind = self._catalog.get(type_name)
        await self._admit(self._limits.actions, caller, address)
        if kind.per_user_per_hour is not None:
            await self._throttle.hit(quota_rules(kind.name, kind.per_user_per_hour), caller.user_id)
        ticket = issue_ticket(str(uuid.uuid4()), caller.user_id, kind, self._clock())
        await self._store.save_ticket(ticket)
        self._metrics.actions_issued.labels(kind.name).inc()
        return ticket

    async def admit_update(self, caller: Principal, address: str) -> None:
        """Rate-limit a score update by its caller and client address; runs before the body is read."""
        await self._admit(self._limits.score_updates, caller, address)

    async def _admit(self, rules: Rules, caller: Principal, address: str) -> None:
        """Per user, then per remote client address (one budget shared by tickets and updates). An
        endpoint whose own limit is `off` is not limited by address either."""
        if rules.enabled:
            await self._throttle.hit(rules, caller.user_id)
            if not is_loopback(address):
                await self._throttle.hit(self._limits.address, address)

    async def update(self, caller: Principal, user_id: str, action_id: str) -> ScoreUpdated:
        """Redeem `action_id` for `user_id`: exactly once, then apply it to the board."""
        if not caller.may_act_for(user_id):
            self._forbidden(caller, user_id, action_id, "acting for another user")
            raise ActingForAnotherUser()
        open_points = self._catalog.open_policy_points if self._policy is ActionPolicy.OPEN else None
        request = RedeemRequest(user_id, action_id, self._clock(), self._min_seconds, open_points)
        # Shielded: once the commit is under way, a disconnecting client must not cut the apply short.
        try:
            updated = await asyncio.shield(self._redeem_and_apply(request))
        except ActionNotPermitted as refused:
            self._forbidden(caller, user_id, action_id, str(refused))
            raise
        # Carried by the request's one log line (api/middleware.py), not a line of its own. Bound
        # here, not in the shielded task: that task runs in a copy of the log context.
        structlog.contextvars.bind_contextvars(
            user_id=user_id,
            action_id=action_id,
            points=updated.points,
            new_score=updated.new_score,
            rank=updated.rank,
        )
        return updated

    def _forbidden(self, caller: Principal, user_id: str, action_id: str, reason: str) -> None:
        security_event(
            self._metrics,
            "forbidden",
            reason=reason,
            user_id=caller.user_id,
            target_user_id=user_id,
            action_id=action_id,
        )

    async def _redeem_and_apply(self, request: RedeemRequest) -> ScoreUpdated:
        redeemed = await self._store.redeem(request)
        self._metrics.points_awarded.inc(redeemed.points)
        rank = await self.apply(redeemed.entry, redeemed.event_id)
        return ScoreUpdated(redeemed.entry.score, rank, redeemed.points)

    async def apply(self, entry: ScoreEntry, event_id: int) -> int | None:
        """Apply a committed score to the cache and publish a changed top 10; the user's rank.

        A failure here loses nothing: the event stays in the outbox and the relay replays it."""
        try:
            applied = await self._board.apply(entry)
            if applied.changed is not None:
                self._metrics.top_changes.inc()
                if not applied.published:
                    await self.publish(applied.changed)
            if self.events is not None:
                await self.events.score_applied(entry, event_id)
        except Exception as error:
            self._metrics.cache_apply_errors.inc()
            log.warning("score.apply_deferred", user_id=entry.user_id, error=str(error))
            return await self._store.rank_of(entry.user_id)
        self.applied_events.append(event_id)
        return applied.rank

    async def leaderboard_json(self, limit: int) -> bytes:
        """The body of GET /api/leaderboard, from the cache; from the Store if the cache fails."""
        try:
            return await self._board.board_json(limit)
        except Exception as error:
            log.warning("leaderboard.cache_unavailable", error=str(error))
            entries = await self._store.top(limit)
            ranked = tuple(
                RankedEntry(i, e.user_id, e.display_name, e.score) for i, e in enumerate(entries, 1)
            )
            return encode_board(Board(0, 0, ranked))

    async def standing(self, user_id: str) -> Standing:
        """A user's score and rank (rank None when the score is 0); from the Store if the cache fails."""
        try:
            ranked = await self._board.standing(user_id)
        except Exception as error:
            log.warning("standing.cache_unavailable", error=str(error))
            ranked = None
        if ranked is not None:
            return Standing(ranked.user_id, ranked.display_name, ranked.score, ranked.rank)
        entry = await self._store.score_of(user_id)
        if entry is None:
            raise UserNotFound(user_id)
        rank = await self._store.rank_of(user_id) if entry.score > 0 else None
        return Standing(entry.user_id, entry.display_name, entry.score, rank)
