"""`ScoreboardClient`: the HTTP API as async calls — sign-in with refresh rotation, tickets, completions."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import msgspec

from scoreboard.client.board import Backoff, Entry
from scoreboard.client.stream import BoardStream

T = TypeVar("T")


class ScoreboardError(Exception):
    """A problem document from the server (`status`, stable `code`), or status 0 for a transport failure."""

    def __init__(self, status: int, problem: dict[str, Any], retry_after: float | None = None) -> None:
        super().__init__(problem.get("detail") or problem.get("title") or f"HTTP {status}")
        self.status = status
        self.code = str(problem.get("code") or ("http_error" if status else "network_error"))
        self.problem = problem
        self.retry_after = retry_after


@dataclass(frozen=True)
class Session:
    user_id: str
    username: str
    access_token: str
    refresh_token: str
    expires_at: float  # time.time() seconds

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class Ticket(msgspec.Struct, frozen=True):
    action_id: str
    type: str
    points: int
    issued_at: str
    expires_at: str


class Completed(msgspec.Struct, frozen=True):
    new_score: int
    rank: int | None
    message: str = "Score updated successfully."
    duplicate: bool = False  # a retry found the first attempt had landed


class UserScore(msgspec.Struct, frozen=True):
    user_id: str
    display_name: str
    score: int
    rank: int | None


class Leaderboard(msgspec.Struct, frozen=True):
    epoch: int
    seq: int
    entries: list[Entry]


class _Tokens(msgspec.Struct):
    access_token: str
    refresh_token: str
    expires_in: int


def _json(response: httpx.Response) -> Any:
    try:
        return response.json() if response.content else None
    except ValueError:  # a proxy's HTML error page, say
        return None


def token_subject(token: str) -> str:
    """A JWT's `sub`, unverified: the server verifies; the client only needs to know who it is."""
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])


class ScoreboardClient:
    """One user's calls to one server. Pass `http` to share a connection pool between many clients."""

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.AsyncClient | None = None,
        session: Session | None = None,
        complete_retries: int = 2,
        backoff: Backoff | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(timeout=timeout)
        self.session = session
        self.complete_retries = complete_retries
        self.backoff = backoff or Backoff()
        self._refreshing: asyncio.Task[bool] | None = None

    async def __aenter__(self) -> ScoreboardClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    # --- sign-in ---------------------------------------------------------------------------------

    async def register(self, username: str, password: str, display_name: str | None = None) -> str:
        """Creates the account; its user id."""
        body = {"username": username, "password": password}
        if display_name:
            body["display_name"] = display_name
        answer = await self._call("POST", "/api/auth/register", body)
        return str(answer["user_id"])

    async def login(self, username: str, password: str) -> Session:
        answer = await self._call("POST", "/api/auth/login", {"username": username, "password": password})
        return self._remember(answer, username)

    async def refresh(self) -> Session:
        """A new token pair for the refresh token, which is spent; a refused one ends the session."""
        session = self._signed_in()
        try:
            answer = await self._call("POST", "/api/auth/refresh", {"refresh_token": session.refresh_token})
        except ScoreboardError as error:
            if error.status == 401:
                self.session = None
            raise
        return self._remember(answer, session.username)

    async def logout(self) -> None:
        """Revokes the access token and its refresh family on the server; forgets the session either way."""
        try:
            if self.session is not None:
                await self._call("POST", "/api/auth/logout", None, auth=True, may_refresh=False)
        finally:
            self.session = None

    def _remember(self, answer: Any, username: str) -> Session:
        tokens = msgspec.convert(answer, _Tokens)
        self.http.cookies.clear()  # every call says who it is with its bearer token
        subject = token_subject(tokens.access_token)
        expires = time.time() + tokens.expires_in
        self.session = Session(subject, username, tokens.access_token, tokens.refresh_token, expires)
        return self.session

    def _signed_in(self) -> Session:
        if self.session is None:
            raise ScoreboardError(401, {"code": "unauthenticated", "detail": "log in first"})
        return self.session

    # --- actions and scores ----------------------------------------------------------------------

    async def request_action(self, kind: str = "default") -> Ticket:
        """A ticket to complete one action of type `kind`."""
        return msgspec.convert(await self._call("POST", "/api/actions", {"type": kind}, auth=True), Ticket)

    async def complete_action(self, action_id: str) -> Completed:
        """Redeems a ticket. A lost answer or a 503 is retried (exactly-once makes that safe); a 409 to a
        retry means the first attempt landed, so it returns with `duplicate=True`."""
        for attempt in range(self.complete_retries + 1):
            body = {"user_id": self._signed_in().user_id, "action_id": action_id}
            try:
                return msgspec.convert(
                    await self._call("POST", "/api/score/update", body, auth=True), Completed
                )
            except ScoreboardError as error:
                if attempt and error.code == "duplicate_action":
                    return Completed(int(error.problem["score"]), None, duplicate=True)
                if error.status not in (0, 503) or attempt == self.complete_retries:
                    raise
                await asyncio.sleep(error.retry_after or self.backoff.delay(attempt))
        raise AssertionError("unreachable")

    async def leaderboard(self, limit: int = 10) -> Leaderboard:
        return msgspec.convert(await self._call("GET", f"/api/leaderboard?limit={limit}"), Leaderboard)

    async def user_score(self, user_id: str | None = None) -> UserScore:
        user = user_id or self._signed_in().user_id
        return msgspec.convert(await self._call("GET", f"/api/users/{user}/score"), UserScore)

    def board_stream(self, **options: Any) -> BoardStream:
        """The live board as this user (the token is read at each connect, so refreshes carry over)."""
        options.setdefault("http", self.http)
        return BoardStream(self.base_url, token=self._access_token, **options)

    def _access_token(self) -> str | None:
        return self.session.access_token if self.session else None

    # --- transport -------------------------------------------------------------------------------

    async def _call(
        self, method: str, path: str, body: Any = None, *, auth: bool = False, may_refresh: bool = True
    ) -> Any:
        headers = self._signed_in().auth if auth else {}
        try:
            response = await self.http.request(method, self.base_url + path, json=body, headers=headers)
        except httpx.TransportError as error:
            raise ScoreboardError(0, {"detail": f"cannot reach the scoreboard: {error!r}"}) from error
        if response.status_code == 401 and auth and may_refresh and await self._try_refresh():
            return await self._call(method, path, body, auth=True, may_refresh=False)
        answer = _json(response)
        if response.is_error:
            retry_after = response.headers.get("retry-after")
            problem = answer if isinstance(answer, dict) else {}
            raise ScoreboardError(response.status_code, problem, float(retry_after) if retry_after else None)
        return answer

    async def _try_refresh(self) -> bool:
        """One refresh for all calls that found the access token refused at once."""
        if self._refreshing is None:
            self._refreshing = asyncio.create_task(self._refresh_quietly())
        task = self._refreshing
        try:
            return await task
        finally:
            if self._refreshing is task:
                self._refreshing = None

    async def _refresh_quietly(self) -> bool:
        try:
            await self.refresh()
        except ScoreboardError:
            return False
        return True
