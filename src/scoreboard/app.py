"""The composition root: create_app(settings) picks adapters from settings and wires everything."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI

import scoreboard
from scoreboard.api import auth_routes, ops_routes, problems, score_routes
from scoreboard.api import openapi as api_openapi
from scoreboard.api.deps import Container
from scoreboard.api.middleware import RequestContext
from scoreboard.auth.keys import SigningKey, asymmetric_key, load_or_create_secret, symmetric_key
from scoreboard.auth.passwords import Passwords
from scoreboard.auth.tokens import AccessTokens
from scoreboard.broker.base import Broker
from scoreboard.broker.memory import MemoryBroker
from scoreboard.config import Settings
from scoreboard.domain.model import Board
from scoreboard.leaderboard.base import Leaderboard
from scoreboard.leaderboard.memory import MemoryLeaderboard
from scoreboard.limiter.base import RateLimiter
from scoreboard.limiter.memory import MemoryRateLimiter
from scoreboard.observability.logging import configure_logging, get_logger
from scoreboard.observability.metrics import Metrics
from scoreboard.realtime import sse, websocket
from scoreboard.realtime.hub import Hub
from scoreboard.realtime.messages import encode_update
from scoreboard.revocations.base import Revocations
from scoreboard.revocations.memory import MemoryRevocations
from scoreboard.services.accounts import AccountService
from scoreboard.services.clock import Clock, utc_now
from scoreboard.services.limits import LimitSet, Throttle
from scoreboard.services.outbox import OutboxRelay, running
from scoreboard.services.scores import ScoreService
from scoreboard.store.base import Store
from scoreboard.store.sqlite import SqliteStore
from scoreboard.web import routes as web_routes

log = get_logger("scoreboard.app")


def signing_key(settings: Settings) -> SigningKey:
    if settings.jwt_private_key_file is not None:
        return asymmetric_key(settings.jwt_private_key_file.read_bytes(), settings.jwt_algorithm)
    secret = settings.jwt_secret
    if secret is None:
        folder = settings.data_folder
        folder.mkdir(parents=True, exist_ok=True)
        secret = load_or_create_secret(folder / "jwt-secret")
    return symmetric_key(secret, settings.jwt_algorithm)


def open_store(settings: Settings) -> Store:
    if settings.database_url.startswith("sqlite:///"):
        return SqliteStore.from_url(settings.database_url)
    raise NotImplementedError("the PostgreSQL store arrives with the production backends")


def open_cache(settings: Settings) -> tuple[Leaderboard, RateLimiter, Revocations]:
    if settings.redis_url:
        raise NotImplementedError("the Redis adapters arrive with the production backends")
    return MemoryLeaderboard(), MemoryRateLimiter(), MemoryRevocations()


def open_broker(settings: Settings) -> Broker:
    if settings.broker_url or settings.redis_url:
        raise NotImplementedError("the Redis and RabbitMQ brokers arrive with the production backends")
    return MemoryBroker()


def build_container(settings: Settings, clock: Clock = utc_now) -> Container:
    """Every service and adapter, not yet opened."""
    metrics = Metrics()
    store = open_store(settings)
    board, limiter, revocations = open_cache(settings)
    key = signing_key(settings)
    tokens = AccessTokens(key, settings.jwt_issuer, settings.jwt_audience, settings.access_token_ttl_seconds)
    throttle, limits = Throttle(limiter, metrics), LimitSet.from_settings(settings)
    accounts = AccountService(
        store,
        Passwords(),
        tokens,
        revocations,
        throttle,
        limits,
        clock,
        metrics,
        settings.refresh_token_ttl_seconds,
    )
    scores = ScoreService(
        store,
        board,
        throttle,
        limits,
        settings.action_catalog(),
        settings.action_policy,
        clock,
        metrics,
    )
    broker = open_broker(settings)

    async def publish(changed: Board) -> None:
        await broker.publish(encode_update(changed))

    scores.publish = publish
    return Container(settings, store, board, broker, tokens, key, revocations, accounts, scores, metrics)


def create_app(settings: Settings | None = None, clock: Clock = utc_now) -> FastAPI:
    """The ASGI app. Nothing is opened until its lifespan starts."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    container = build_container(settings, clock)
    hub = Hub(container.metrics)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await container.store.open()
        relay = OutboxRelay(container.store, container.scores, clock, container.metrics)
        try:
            board = await container.board.rebuild(await container.store.all_scores())
            await relay.drain_all()
            container.metrics.cache_rebuilds.inc()
            hub.reset(board)
            await container.broker.subscribe(hub.on_message)
            log.info(
                "app.started",
                database=_redacted(settings.database_url),
                epoch=board.epoch,
                policy=str(settings.action_policy),
            )
            async with running(relay):
                yield
        finally:
            await container.broker.close()
            await container.store.close()
            log.info("app.stopped")

    app = FastAPI(
        title="scoreboard",
        version=scoreboard.__version__,
        description=(Path(__file__).parent / "api" / "description.md").read_text("utf-8"),
        lifespan=lifespan,
    )
    app.state.container = container
    app.state.hub = hub
    problems.install(app)
    api_openapi.install(app)
    routers = (
        auth_routes.router,
        score_routes.router,
        sse.router,
        websocket.router,
        ops_routes.router,
        web_routes.router,
    )
    for router in routers:
        app.include_router(router)
    app.add_middleware(RequestContext, metrics=container.metrics)
    return app


def _redacted(url: str) -> str:
    """A database URL without its password, for logs."""
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, credentials = head.partition("://")
    return f"{scheme}://{credentials.split(':', 1)[0]}@{tail}"
