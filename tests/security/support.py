"""Helpers for the security tier: accounts with roles that registration does not hand out."""

from __future__ import annotations

import uuid

from scoreboard.api.deps import Container
from scoreboard.domain.model import Role
from tests.conftest import PASSWORD, Api, User


async def user_with_roles(api: Api, *roles: Role) -> User:
    """A user created the way `scoreboard create-user --admin/--service` does, logged in by bearer."""
    container: Container = api.app.state.container
    name = f"{roles[-1]}{uuid.uuid4().hex[:10]}"
    created = await container.accounts.register(name, PASSWORD, None, "test", (Role.USER, *roles))
    tokens = await api.login(name)
    api.http.cookies.clear()
    return User(created.user_id, name, tokens["access_token"], tokens)
