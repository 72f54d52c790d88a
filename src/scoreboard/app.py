"""The composition root: create_app(settings) picks adapters from settings and wires everything."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp

import scoreboard
from scoreboard.adapters import open_backends
from scoreboard.adapters import open_store as open_store
from scoreboard.api import admin_routes, auth_routes, cors, hot_routes, ops_routes, problems, score_routes
from scoreboard.api import openapi as api_openapi
from scoreboard.api.deps import Container
from scoreboard.api.fast_lane import FastLane
from scoreboard.api.middleware import RequestContext
from scoreboard.auth.configured import access_tokens
from scoreboard.auth.passwords import Passwords
from scoreboard.broker.base import ScoreEvents
from scoreboard.config import Settings
from scoreboard.domain.model import Board
from scoreboard.observability.calls import instrument_backends
from scoreboard.observability.errors import setup_errors, stop_errors
from scoreboard.observability.logging import configure_logging, get_logger
from scoreboard.observability.metrics import Metrics
from scoreboard.observability.tracing import TracedRequests, setup_tracing
from scoreboard.realtime import sse, websocket
from scoreboard.realtime.farewell import farewell_on_stop
from scoreboard.realtime.gate import ConnectionGate
from scoreboard.realtime.hub import Hub
from scoreboard.realtime.messages import encode_update
from scoreboard.realtime.sync import HubSync, syncing
from scoreboard.services.accounts import AccountService
from scoreboard.services.cache import CacheKeeper
from scoreboard.services.clock import Clock, utc_now
from scoreboard.services.limits import LimitSet, Throttle
from scoreboard.services.moderation import ModerationService
from scoreboard.services.outbox import OutboxRelay, running
from scoreboard.services.scores import ScoreService
from scoreboard.web import routes as web_routes

log = get_logger("scoreboard.app")


def build_container(settings: Settings, clock: Clock = utc_now) -> Container:
    """Every service and adapter, not yet connected."""
    metrics = Metrics()
    backends = open_backends(settings)
    instrument_backends(backends, metrics)
    store, board, broker = backends.store, backends.board, backends.broker
    store.observe_commits(metrics.store_batch_size.observe)
    tokens = access_tokens(settings, lambda outcome: metrics.jwks_fetches.labels(outcome).inc())
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
    moderation = ModerationService(
        store, scores, backends.revocations, settings.access_token_ttl_seconds, clock, metrics
    )
    return Container(
        settings,
        store,
        board,
        broker,
        tokens,
        tokens.signing_key,
        backends.revocations,
        accounts,
        scores,
        keeper,
        metrics,
        backends.limiter,
        moderation,
    )


@contextlib.asynccontextmanager
async def serving(container: Container, hub: Hub, clock: Clock) -> AsyncIterator[None]:
    """Open the adapters, make sure the cache holds the Store's truth, subscribe the hub, run the
    outbox relay; close everything in reverse order."""
    settings = container.settings
    await container.store.open()
    try:
        if settings.serves("realtime"):
            await container.broker.subscribe(hub.on_message)
        rebuilt = await container.keeper.ensure()
        hub.reset(rebuilt or await container.board.board(10))
        relay = OutboxRelay(container.store, container.scores, container.keeper, clock, container.metrics)
        if rebuilt is not None and settings.redis_url is None:
            await relay.drain_all()  # this process's private cache already reflects every event
        log.info(
            "app.started",
            role=settings.role,
            database=_redacted(settings.database_url),
            epoch=hub.board.epoch,
            policy=str(settings.action_policy),
            cache="redis" if settings.redis_url else "memory",
        )
        async with contextlib.AsyncExitStack() as background:
            await background.enter_async_context(_keys_kept_fresh(container))
            if settings.serves("relay"):
                await background.enter_async_context(running(relay))
            if settings.serves("realtime"):
                await background.enter_async_context(syncing(HubSync(hub, container.board)))
                background.enter_context(farewell_on_stop(hub))
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
    app.state.gate = ConnectionGate(settings.ws_max_connections, settings.ws_max_connections_per_address)
    app.state.tracer_provider = tracer_provider
    problems.install(app)
    api_openapi.install(app)
    for router in _routers(settings):
        app.include_router(router)
    app.add_middleware(FastLane, routes=hot_routes.routes(settings), sockets=_sockets(settings))
    cors.install(app, settings)  # outside the fast lane, so the hot routes answer preflights too
    if tracer_provider is not None:
        app.add_middleware(TracedRequests, provider=tracer_provider)
    app.add_middleware(RequestContext, metrics=container.metrics)
    return app


def _routers(settings: Settings) -> list[APIRouter]:
    """The routes this process's role serves; operations routes are served by every role."""
    routers = [ops_routes.router]
    if settings.serves("api"):
        routers += [auth_routes.router, score_routes.router, admin_routes.router, web_routes.router]
    if settings.serves("api") or settings.serves("realtime"):
        routers.append(score_routes.reads)
    if settings.serves("realtime"):
        routers.append(sse.router)
    return routers


def _sockets(settings: Settings) -> dict[str, ASGIApp]:
    return websocket.SOCKETS if settings.serves("realtime") else {}


def _keys_kept_fresh(container: Container) -> contextlib.AbstractAsyncContextManager[None]:
    external = container.tokens.external
    return external.kept_fresh() if external is not None else contextlib.nullcontext()


def _redacted(url: str) -> str:
    """A database URL without its password, for logs."""
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, credentials = head.partition("://")
    return f"{scheme}://{credentials.split(':', 1)[0]}@{tail}"
