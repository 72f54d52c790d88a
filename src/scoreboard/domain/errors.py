"""Domain errors carry meaning, never HTTP codes; the API layer maps them to problem documents."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every expected, explainable refusal."""


class UsernameTaken(DomainError):
    def __init__(self, username: str) -> None:
        super().__init__(f"the username {username!r} is already taken")


class InvalidCredentials(DomainError):
    def __init__(self) -> None:
        super().__init__("the username or password is wrong")


class AccountBanned(DomainError):
    """The password was right but an admin banned the account."""

    def __init__(self) -> None:
        super().__init__("this account is banned")


class TokensNotRevoked(DomainError):
    """A ban was recorded but the user's tokens could not be refused yet (the revocation store is
    unreachable); repeating the ban finishes it."""

    def __init__(self) -> None:
        super().__init__(
            "the ban is recorded, but the user's access tokens could not be revoked yet;"
            " repeat the ban shortly to finish it"
        )


class NotAdmin(DomainError):
    def __init__(self) -> None:
        super().__init__("this call needs role admin")


class InvalidRefreshToken(DomainError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"the refresh token is not valid: {reason}")


class UnknownActionType(DomainError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown action type {name!r}; known types: {', '.join(sorted(known))}")


class ActingForAnotherUser(DomainError):
    def __init__(self) -> None:
        super().__init__(
            "user_id is not the token's subject; only a service or admin may act for another user"
        )


class ActionNotPermitted(DomainError):
    """The action may not be redeemed by this user now (not theirs, expired, too soon...)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class DuplicateAction(DomainError):
    """The action was already processed; carries the user's current score so a retry learns the outcome."""

    def __init__(self, score: int) -> None:
        self.score = score
        super().__init__("this action_id was already processed")


class ScoreOverflow(DomainError):
    def __init__(self, score: int, points: int) -> None:
        super().__init__(f"adding {points} points to {score} would exceed the largest storable score")


class UserNotFound(DomainError):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"no user with id {user_id}")


class StoreUnavailable(Exception):
    """The primary database cannot be reached; nothing was applied. Not a DomainError: it is an outage."""


class InvalidInput(DomainError):
    """A value breaks a policy (username, password, display name...)."""


class RateLimited(DomainError):
    """Too many attempts; `retry_after` seconds until one more is admitted."""

    def __init__(
        self, what: str, retry_after: int, limit: int, remaining: int, policy: str, current: str = ""
    ) -> None:
        self.retry_after = retry_after
        self.limit, self.remaining, self.policy = limit, remaining, policy
        # `policy` and `current` are the RateLimit-Policy and RateLimit field values ("" when none).
        self.current = current
        self.quota = what.startswith("quota")
        super().__init__(f"too many {what}; retry in {retry_after}s")
