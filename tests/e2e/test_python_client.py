"""`scoreboard.client` against real `scoreboard serve` processes: sign-in, actions, and the live board
through cuts, outages, a restart and a WebSocket-less network."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from scoreboard.client import (
    Backoff,
    Board,
    BoardStream,
    ConnectionState,
    Position,
    ScoreboardClient,
    ScoreboardError,
)
from scoreboard.server_options import UVICORN_OPTIONS
from tests.e2e.server import HOST, Server, Servers, free_port, process_env, scoreboard_command
from tests.faults import FaultProxy

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

PASSWORD = "correct horse battery staple"
WAIT_SECONDS = 5.0
FAST = Backoff(initial=0.05, maximum=0.4)
GRACE_SECONDS = UVICORN_OPTIONS["timeout_graceful_shutdown"]


async def player(server: Server, **options: object) -> ScoreboardClient:
    client = ScoreboardClient(server.base_url, **options)  # type: ignore[arg-type]
    username = f"py_{uuid.uuid4().hex[:12]}"
    await client.register(username, PASSWORD)
    await client.login(username, PASSWORD)
    return client


async def earn(client: ScoreboardClient, times: int = 1) -> int:
    score = 0
    for _ in range(times):
        score = (await client.complete_action((await client.request_action()).action_id)).new_score
    return score


async def lead(client: ScoreboardClient) -> int:
    """Earns until the client's user leads, so each of its points is a published change."""
    top = (await client.leaderboard(1)).entries
    mine = (await client.user_score()).score
    return await earn(client, max(1, top[0].score - mine + 1) if top else 1)


class Watcher:
    """Reads a BoardStream in a task; `until(predicate)` waits (bounded) for a matching board."""

    def __init__(self, base_url: str, **options: Any) -> None:
        self.stream = BoardStream(base_url, on_state=self._state, **options)
        self.boards: list[Board] = []
        self.states: list[ConnectionState] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._read())

    def _state(self, state: ConnectionState) -> None:
        self.states.append(state)

    async def _read(self) -> None:
        async with self.stream as boards:
            async for board in boards:
                async with self._changed:
                    self.boards.append(board)
                    self._changed.notify_all()

    async def until(self, predicate: Callable[[Board], bool]) -> Board:
        async with asyncio.timeout(WAIT_SECONDS), self._changed:
            await self._changed.wait_for(lambda: any(predicate(b) for b in self.boards))
        return next(b for b in self.boards if predicate(b))

    async def until_state(self, predicate: Callable[[ConnectionState], bool]) -> None:
        async with asyncio.timeout(WAIT_SECONDS):
            while not any(predicate(s) for s in self.states):
                await asyncio.sleep(0.02)

    async def close(self) -> None:
        await self.stream.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@pytest.fixture
async def watchers() -> AsyncIterator[Callable[..., Watcher]]:
    started: list[Watcher] = []

    def watch(base_url: str, **options: Any) -> Watcher:
        started.append(Watcher(base_url, **options))
        return started[-1]

    yield watch
    for watcher in started:
        await watcher.close()


# --- sign-in and actions ---------------------------------------------------------------------------


async def test_login_refresh_and_logout_follow_the_server(shared_server: Server) -> None:
    client = await player(shared_server)
    first = client.session
    assert first is not None
    second = await client.refresh()
    assert second.refresh_token != first.refresh_token
    assert second.user_id == first.user_id
    await client.logout()
    assert client.session is None
    async with ScoreboardClient(shared_server.base_url, session=second) as stale:
        with pytest.raises(ScoreboardError) as refused:
            await stale.request_action()
    assert refused.value.status == 401
    await client.aclose()


async def test_a_refused_access_token_is_refreshed_once_and_the_call_retried(shared_server: Server) -> None:
    client = await player(shared_server)
    assert client.session is not None
    client.session = type(client.session)(**{**vars(client.session), "access_token": "not.a.token"})
    ticket = await client.request_action()
    assert ticket.points == 1
    assert client.session.access_token != "not.a.token"
    await client.aclose()


async def test_completing_an_action_raises_the_score_once(shared_server: Server) -> None:
    client = await player(shared_server)
    ticket = await client.request_action()
    done = await client.complete_action(ticket.action_id)
    assert (done.new_score, done.duplicate) == (1, False)
    with pytest.raises(ScoreboardError) as again:
        await client.complete_action(ticket.action_id)
    assert (again.value.status, again.value.code) == (409, "duplicate_action")
    assert (await client.user_score()).score == 1
    await client.aclose()


class LoseFirstAnswer(httpx.AsyncBaseTransport):
    """Sends each request for real, but loses the first answer to a score update (a dropped link)."""

    def __init__(self) -> None:
        self.real = httpx.AsyncHTTPTransport()
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.real.handle_async_request(request)
        if request.url.path == "/api/score/update" and not self.lost:
            self.lost += 1
            await response.aclose()
            raise httpx.ReadError("connection reset", request=request)
        return response

    async def aclose(self) -> None:
        await self.real.aclose()


async def test_a_lost_answer_is_retried_and_counted_once(shared_server: Server) -> None:
    lossy = LoseFirstAnswer()
    client = await player(shared_server, http=httpx.AsyncClient(transport=lossy), backoff=FAST)
    done = await client.complete_action((await client.request_action()).action_id)
    assert lossy.lost == 1
    assert (done.new_score, done.duplicate) == (1, True)
    assert (await client.user_score()).score == 1
    await client.http.aclose()


# --- the live board --------------------------------------------------------------------------------


async def test_the_stream_starts_with_a_snapshot_then_follows_updates(
    shared_server: Server, watchers: Callable[..., Watcher]
) -> None:
    watcher = watchers(shared_server.base_url, backoff=FAST)
    first = await watcher.until(lambda _: True)
    client = await player(shared_server)
    assert client.session is not None
    score = await lead(client)
    seen = await watcher.until(lambda b: b.score_of(client.session.user_id) == score)  # type: ignore[union-attr]
    assert first.kind == "snapshot"
    assert seen.kind == "update"
    assert [b.seq for b in watcher.boards] == list(range(first.seq, seen.seq + 1))
    assert [s.state for s in watcher.states[:2]] == ["connecting", "live"]
    await client.aclose()


async def test_resuming_from_a_position_replays_the_missed_updates(
    shared_server: Server, watchers: Callable[..., Watcher]
) -> None:
    client = await player(shared_server)
    await lead(client)
    await earn(client, 2)
    now = await client.leaderboard()
    since = Position(now.epoch, now.seq - 2)
    watcher = watchers(shared_server.base_url, since=since)
    await watcher.until(lambda b: b.seq == now.seq)
    assert [(b.kind, b.seq) for b in watcher.boards] == [("update", now.seq - 1), ("update", now.seq)]
    await client.aclose()


async def test_after_a_cut_and_an_outage_the_stream_backs_off_and_replays(
    shared_server: Server, watchers: Callable[..., Watcher]
) -> None:
    proxy = await FaultProxy.start((HOST, shared_server.port))
    try:
        watcher = watchers(f"http://{HOST}:{proxy.port}", backoff=FAST)
        before = await watcher.until(lambda _: True)
        proxy.cut()
        await watcher.until_state(lambda s: s.state == "reconnecting" and s.attempt >= 3)
        client = await player(shared_server)
        score = await lead(client)
        proxy.restore()
        user = client.session.user_id  # type: ignore[union-attr]
        await watcher.until(lambda b: b.score_of(user) == score)
        delays = [s.retry_in for s in watcher.states if s.retry_in is not None]
        assert all(0.025 <= d <= 0.4 for d in delays), delays
        assert max(delays) > delays[0], delays
        after = watcher.boards[watcher.boards.index(before) + 1 :]
        assert [b.seq for b in after] == list(range(before.seq + 1, before.seq + 1 + len(after)))
        assert {b.kind for b in after} == {"update"}
        await client.aclose()
    finally:
        await proxy.close()


async def test_where_websockets_are_not_upgraded_the_stream_falls_back_to_sse(
    shared_server: Server, watchers: Callable[..., Watcher]
) -> None:
    not_upgraded = f"ws://{HOST}:{shared_server.port}/healthz"  # answers HTTP, as a proxy without Upgrade
    watcher = watchers(shared_server.base_url, ws_url=not_upgraded, backoff=FAST)
    await watcher.until_state(lambda s: s.state == "live")
    assert watcher.states[-1].transport == "sse"
    client = await player(shared_server)
    score = await lead(client)
    await watcher.until(lambda b: b.score_of(client.session.user_id) == score)  # type: ignore[union-attr]
    await client.aclose()


async def test_after_a_server_restart_the_new_epoch_snapshot_is_taken_as_truth(
    servers: Servers, watchers: Callable[..., Watcher]
) -> None:
    server = servers.start("restarted")
    client = await player(server)
    await earn(client, 2)
    watcher = watchers(server.base_url, backoff=FAST)
    before = await watcher.until(lambda _: True)
    await asyncio.to_thread(server.restart)
    await earn(client, 1)
    truth = await client.leaderboard()
    after = await watcher.until(lambda b: b.epoch == truth.epoch and b.seq == truth.seq)
    assert truth.epoch != before.epoch
    assert next(b for b in watcher.boards if b.epoch == truth.epoch).kind == "snapshot"
    assert after.score_of(client.session.user_id) == 3  # type: ignore[union-attr]
    await client.aclose()


async def test_the_demo_players_move_the_board_through_the_client(
    tmp_path: Path, watchers: Callable[..., Watcher]
) -> None:
    port = free_port()
    command = [*scoreboard_command(), "demo", "--port", str(port), "--players", "3", "--pace", "0.2"]
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [*command, "--duration", "3"], cwd=tmp_path, env=process_env(tmp_path), stdout=out, stderr=out
        )
    try:
        base_url = f"http://{HOST}:{port}"
        watcher = watchers(base_url, backoff=FAST)
        first = await watcher.until(lambda b: len(b.top) == 3)
        await watcher.until(lambda b: b.seq >= first.seq + 3)
        code = await asyncio.to_thread(demo.wait, 20)
        assert code == 0, log.read_text()
        assert "scoreboard demo: open" in log.read_text()
    finally:
        demo.kill()
        demo.wait()


async def test_a_server_with_a_stream_client_still_stops_promptly(
    servers: Servers, watchers: Callable[..., Watcher]
) -> None:
    server = servers.start("stopping")
    watcher = watchers(server.base_url, transport="sse", backoff=FAST)
    await watcher.until(lambda _: True)
    started = time.monotonic()
    code = await asyncio.to_thread(server.stop)
    assert time.monotonic() - started < GRACE_SECONDS + 2
    assert code in (0, -signal.SIGTERM), server.output
