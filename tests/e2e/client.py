"""An HTTP client for a real server over TCP, with the common flows as one-liners."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Player:
    user_id: str
    username: str
    access_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def claims(token: str) -> dict[str, Any]:
    """A JWT's payload, unverified (the server verifies; the test only reads it)."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


class Client:
    """Bearer-token calls to one base URL; no cookies are kept, so every call says who it is."""

    def __init__(self, base_url: str, max_connections: int = 100) -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self.http = httpx.AsyncClient(base_url=base_url, timeout=10.0, limits=limits)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.aclose()

    async def register(self, username: str | None = None, password: str = PASSWORD) -> dict[str, Any]:
        username = username or f"e2e_{uuid.uuid4().hex[:12]}"
        response = await self.http.post(
            "/api/auth/register", json={"username": username, "password": password}
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def login(self, username: str, password: str = PASSWORD) -> dict[str, Any]:
        response = await self.http.post("/api/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        self.http.cookies.clear()
        return dict(response.json())

    async def player(self, username: str | None = None) -> Player:
        account = await self.register(username)
        tokens = await self.login(account["username"])
        return Player(account["user_id"], account["username"], tokens["access_token"])

    async def ticket(self, player: Player, kind: str = "default") -> str:
        response = await self.http.post("/api/actions", json={"type": kind}, headers=player.auth)
        assert response.status_code == 201, response.text
        return str(response.json()["action_id"])

    async def update(self, player: Player, action_id: str) -> httpx.Response:
        body = {"user_id": player.user_id, "action_id": action_id}
        return await self.http.post("/api/score/update", json=body, headers=player.auth)

    async def earn(self, player: Player, times: int = 1) -> int:
        """Complete `times` actions for `player`; the final score."""
        score = 0
        for _ in range(times):
            response = await self.update(player, await self.ticket(player))
            assert response.status_code == 200, response.text
            score = int(response.json()["new_score"])
        return score

    async def board(self, limit: int = 100) -> dict[str, Any]:
        response = await self.http.get("/api/leaderboard", params={"limit": limit})
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def score(self, user_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/api/users/{user_id}/score")
        assert response.status_code == 200, response.text
        return dict(response.json())
