"""The composition root: create_app(settings) picks adapters from settings and wires everything."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI

import scoreboard
from scoreboard.adapters import open_backends
from scoreboard.adapters import open_store as open_store
from scoreboard.api import auth_routes, hot_routes, ops_routes, problems, score_routes
from scoreboard.api import openapi as api_openapi
from scoreboard.api.deps import Container
from scoreboard.api.fast_lane import FastLane
from scoreboard.api.middleware import RequestContext
from scoreboard.auth.keys import SigningKey, asymmetric_key, load_or_create_secret, symmetric_key
from scoreboard.auth.passwords import Passwords
from scoreboard.auth.tokens import AccessTokens
from scoreboard.broker.base import ScoreEvents
from scoreboard.config import Settings
from scoreboard.domain.model import Board
from scoreboard.observability.calls import instrument_backends
from scoreboard.observability.errors import setup_errors, stop_errors
from scoreboard.observability.logging import configure_logging, get_logger
from scoreboard.observability.metrics import Metrics
from scoreboard.observability.tracing import TracedRequests, setup_tracing
from scoreboard.realtime import sse, websocket
from scoreboard.realtime.hub import Hub
from scoreboard.realtime.messages import encode_update
from scoreboard.realtime.sync import HubSync, syncing
from scoreboard.services.accounts import AccountService
from scoreboard.services.cache import CacheKeeper
from scoreboard.services.clock import Clock, utc_now
from scoreboard.services.limits import LimitSet, Throttle
from scoreboard.services.outbox import OutboxRelay, running
from scoreboard.services.scores import ScoreService
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


def build_container(settings: Settings, clock: Clock = utc_now) -> Container:
    """Every service and adapter, not yet connected."""
    metrics = Metrics()
    backends = open_backends(settings)
    instrument_backends(backends, metrics)
    store, board, broker = backends.store, backends.board, backends.broker
    store.observe_commits(metrics.store_batch_size.observe)
    key = signing_key(settings)
    tokens = AccessTokens(key, settings.jwt_issuer, settings.jwt_audience, settings.access_token_ttl_seconds)
    throttle, limits = Throttle(backends.limiter, metrics), LimitSet.from_settings(settings)
    accounts = AccountService(
        store,
        Passwords(),
        tokens,
        backends.revocations,
        throttle,
        limits,
        clock,
        metrics,
        settings.refresh_token_ttl_seconds,
    )
    scores = ScoreService(
        store, board, throttle, limits, settings.action_catalog(), settings.action_policy, clock, metrics
    )

    async def publish(changed: Board) -> None:
        await broker.publish(encode_update(changed))

    scores.publish = publish
    if isinstance(broker, ScoreEvents):
        scores.events = broker  # every applied score also goes out as a durable event
    keeper = CacheKeeper(store, board, publish, metrics)
    return Container(
        settings,
        store,
        board,
        broker,
        tokens,
        key,
        backends.revocations,
        accounts,
        scores,
        keeper,
        metrics,
        backends.limiter,
    )


@contextlib.asynccontextmanager
async def serving(container: Container, hub: Hub, clock: Clock) -> AsyncIterator[None]:
    """Open the adapters, make sure the cache holds the Store's truth, subscribe the hub, run the
    outbox relay; close everything in reverse order."""
    settings = container.settings
    await container.store.open()
    try:
        await container.broker.subscribe(hub.on_message)
        rebuilt = await container.keeper.ensure()
        hub.reset(rebuilt or await container.board.board(10))
        relay = OutboxRelay(container.store, container.scores, container.keeper, clock, container.metrics)
        if rebuilt is not None and settings.redis_url is None:
            await relay.drain_all()  # this process's private cache already reflects every event
        log.info(
            "app.started",
            database=_redacted(settings.database_url),
            epoch=hub.board.epoch,
            policy=str(settings.action_policy),
            cache="redis" if settings.redis_url else "memory",
        )
        async with running(relay), syncing(HubSync(hub, container.board)):
            yield
    finally:
        await container.broker.close()
        await container.limiter.close()
        await container.revocations.close()
        await container.board.close()
        await container.store.close()
        container.metrics.process_exiting()
        log.info("app.stopped")


def create_app(settings: Settings | None = None, clock: Clock = utc_now) -> FastAPI:
    """The ASGI app. Nothing is connected until its lifespan starts."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    reporting = setup_errors(settings)
    container = build_container(settings, clock)
    tracer_provider = setup_tracing(settings, container)
    hub = Hub(container.metrics)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            async with serving(container, hub, clock):
                yield
        finally:
            if reporting:
                stop_errors()
            if tracer_provider is not None:
                tracer_provider.shutdown()

    app = FastAPI(
        title="scoreboard",
        version=scoreboard.__version__,
        description=(Path(__file__).parent / "api" / "description.md").read_text("utf-8"),
        lifespan=lifespan,
        # FastAPI's built-in OpenTelemetry asks the global providers on every request; we export our
        # own metrics, so it is off.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.container = container
    app.state.hub = hub
    app.state.tracer_provider = tracer_provider
    problems.install(app)
    api_openapi.install(app)
    routers = (
        auth_routes.router,
        score_routes.router,
        sse.router,
        ops_routes.router,
        web_routes.router,
    )
    for router in routers:
        app.include_router(router)
    app.add_middleware(FastLane, routes=hot_routes.ROUTES, sockets=websocket.SOCKETS)
    if tracer_provider is not None:
        app.add_middleware(TracedRequests, provider=tracer_provider)
    app.add_middleware(RequestContext, metrics=container.metrics)
    return app


def _redacted(url: str) -> str:
    """A database URL without its password, for logs."""
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, credentials = head.partition("://")
    return f"{scheme}://{credentials.split(':', 1)[0]}@{tail}"
