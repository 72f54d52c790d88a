"""Moderation: the admin acts (ban, unban, score correction) and what admins may read.

Each act commits in the Store first (the change, its audit record and an outbox event in one
transaction), then goes through the same apply/publish path as a redeemed action, so the board and
every connected screen follow and a failed apply is replayed by the outbox relay. A ban also
refuses the user's access tokens on every instance (Revocations) without a database read per
request.
"""

from __future__ import annotations

from scoreboard.auth.tokens import LEEWAY_SECONDS
from scoreboard.domain.errors import NotAdmin, TokensNotRevoked, UserNotFound
from scoreboard.domain.model import AuditRecord, Principal, Role, Ticket
from scoreboard.domain.moderation import state_dict
from scoreboard.observability.logging import get_logger
from scoreboard.observability.metrics import Metrics
from scoreboard.observability.security import security_event
from scoreboard.revocations.base import Revocations
from scoreboard.services.clock import Clock
from scoreboard.services.scores import ScoreService
from scoreboard.store.base import AdminAct, Moderated, Store

log = get_logger("scoreboard.admin")

# A login that read the user's credentials just before the ban committed may sign its token a
# moment after it (password hashing takes a while): refuse tokens issued this long after the ban too.
BAN_MARGIN_SECONDS = LEEWAY_SECONDS


def require_admin(caller: Principal) -> None:
    if Role.ADMIN not in caller.roles:
        raise NotAdmin()


class ModerationService:
    def __init__(
        self,
        store: Store,
        scores: ScoreService,
        revocations: Revocations,
        access_token_ttl_seconds: int,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._store, self._scores, self._revocations = store, scores, revocations
        self._token_ttl = access_token_ttl_seconds
        self._clock, self._metrics = clock, metrics

    async def ban(self, caller: Principal, user_id: str, reason: str) -> AuditRecord:
        """Ban a user: off the board, tokens refused everywhere, no login, no refresh."""
        require_admin(caller)
        done = await self._store.ban(AdminAct(caller.user_id, user_id, reason, self._clock()))
        audit = await self._finish(done)
        # After the commit: a login racing the ban either sees it or signs a token this refuses.
        # Repeating a ban repeats this step, so a failure here is finished by trying again.
        issued_up_to = int(self._clock().timestamp()) + BAN_MARGIN_SECONDS
        until = issued_up_to + self._token_ttl + LEEWAY_SECONDS
        try:
            await self._revocations.revoke_user(user_id, issued_up_to, until)
        except Exception as error:
            self._metrics.revocation_errors.inc()
            log.error("admin.ban_tokens_not_revoked", target_id=user_id, error=str(error))
            raise TokensNotRevoked() from error
        return audit

    async def unban(self, caller: Principal, user_id: str, reason: str) -> AuditRecord:
        """Lift a ban: the stored score returns to the board; the user may log in again."""
        require_admin(caller)
        return await self._finish(
            await self._store.unban(AdminAct(caller.user_id, user_id, reason, self._clock()))
        )

    async def correct_score(self, caller: Principal, user_id: str, score: int, reason: str) -> AuditRecord:
        """Set a user's score; it counts as reached at the moment of the correction."""
        require_admin(caller)
        act = AdminAct(caller.user_id, user_id, reason, self._clock())
        return await self._finish(await self._store.correct_score(act, score))

    async def recent_actions(self, caller: Principal, user_id: str, limit: int) -> list[Ticket]:
        """The user's newest actions: tickets issued, and when (if) each was redeemed."""
        require_admin(caller)
        if await self._store.user(user_id) is None:
            raise UserNotFound(user_id)
        return await self._store.recent_actions(user_id, limit)

    async def audit_log(self, caller: Principal, limit: int) -> list[AuditRecord]:
        """Every admin act, newest first."""
        require_admin(caller)
        return await self._store.audit_log(limit)

    async def _finish(self, done: Moderated) -> AuditRecord:
        audit = done.audit
        if done.entry is not None and done.event_id is not None:
            await self._scores.apply(done.entry, done.event_id)
        self._metrics.admin_acts.labels(str(audit.action)).inc()
        log.info(
            "admin.acted",
            audit_id=audit.audit_id,
            actor_id=audit.actor_id,
            action=str(audit.action),
            target_id=audit.target_id,
            reason=audit.reason,
            before=state_dict(audit.before),
            after=state_dict(audit.after),
        )
        _report(self._metrics, audit)
        return audit


def _report(metrics: Metrics, audit: AuditRecord) -> None:
    """Every admin act also goes to the security stream (docs/operations.md, "Security events")."""
    action = str(audit.action)
    if action == "ban":
        security_event(
            metrics, "banned", user_id=audit.target_id, actor_id=audit.actor_id, reason=audit.reason
        )
    elif action == "unban":
        security_event(metrics, "unbanned", user_id=audit.target_id, actor_id=audit.actor_id)
    else:
        security_event(
            metrics, "admin_action", actor_id=audit.actor_id, action=action, target=audit.target_id
        )
