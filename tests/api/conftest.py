"""The API tier's own fixture: one app shared by a module's tests that are refused or only read.

Starting an app costs about 0.1 s (a decoy password hash, migrations); the many parametrized
refusal tests would otherwise spend most of the tier's time starting apps. Tests that use it must
run in the module's event loop: mark them `shared_loop` (tests/api/support.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from scoreboard.app import create_app
from scoreboard.config import Settings
from tests.conftest import TEST_SECRET, Api


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    folder = tmp_path_factory.mktemp("shared")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'scoreboard.db'}",
        jwt_secret=TEST_SECRET,
        rate_limit_score_updates="off",
        rate_limit_login="off",
        rate_limit_register="off",
        rate_limit_actions="off",
        log_format="json",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(app, client)
