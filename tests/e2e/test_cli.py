"""The `scoreboard` command as an operator meets it: help, migrate, create-user, and refusals."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scoreboard.store.migrate import migrations
from tests.e2e.client import Client, claims
from tests.e2e.server import Servers, free_port, run_cli

pytestmark = pytest.mark.e2e


def test_help_lists_and_explains_every_command(tmp_path: Path) -> None:
    result = run_cli("--help", workdir=tmp_path)

    assert result.returncode == 0, result.stderr
    for command in ("serve", "migrate", "create-user"):
        assert re.search(rf"^\s+{command}\s+\w+ \w+", result.stdout, re.MULTILINE), result.stdout
    assert "SCOREBOARD_" in result.stdout  # says where settings come from


def test_serve_help_shows_host_port_and_workers(tmp_path: Path) -> None:
    result = run_cli("serve", "--help", workdir=tmp_path)

    assert result.returncode == 0, result.stderr
    for option in ("--host", "--port", "--workers"):
        assert option in result.stdout


def test_migrate_applies_once_then_reports_none_pending(tmp_path: Path) -> None:
    first = run_cli("migrate", workdir=tmp_path)
    second = run_cli("migrate", workdir=tmp_path)

    assert first.returncode == 0, first.stderr
    assert all(m.name in first.stdout for m in migrations("sqlite")), first.stdout
    assert "none pending" not in first.stdout
    assert second.returncode == 0, second.stderr
    assert "none pending" in second.stdout
    assert (tmp_path / "scoreboard.db").is_file()


async def test_created_admin_can_log_in_and_use_the_admin_api_over_http(
    tmp_path: Path, servers: Servers
) -> None:
    created = run_cli(
        "create-user", "admin1", "--admin", "--password-stdin", workdir=tmp_path, stdin="s3cret-admin-pw\n"
    )
    server = servers.start(workdir=tmp_path)

    async with Client(server.base_url) as client:
        tokens = await client.login("admin1", "s3cret-admin-pw")
        player = await client.player()
        await client.earn(player)
        banned = await client.http.post(
            f"/api/admin/users/{player.user_id}/ban",
            json={"reason": "e2e"},
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )
        board = await client.board()

    assert banned.status_code == 200, banned.text
    assert banned.json()["after"] == {"score": 1, "banned": True}
    assert board["entries"] == []

    assert created.returncode == 0, created.stderr
    assert created.stdout.splitlines() == [created.stdout.strip()], "one line: who was created, with the id"
    assert "admin1" in created.stdout
    assert "admin" in claims(tokens["access_token"])["roles"]
    assert "s3cret-admin-pw" not in created.stdout + created.stderr


def test_create_user_with_a_taken_name_fails_in_one_line(tmp_path: Path) -> None:
    first = run_cli(
        "create-user", "taken_name", "--password-stdin", workdir=tmp_path, stdin="long-enough-pw\n"
    )
    second = run_cli(
        "create-user", "taken_name", "--password-stdin", workdir=tmp_path, stdin="other-long-pw\n"
    )

    assert first.returncode == 0, first.stderr
    assert second.returncode != 0
    assert "Traceback" not in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr
    assert "taken_name" in second.stderr


def test_several_workers_on_embedded_defaults_are_refused_clearly(tmp_path: Path) -> None:
    result = run_cli("serve", "--workers", "2", "--port", str(free_port()), workdir=tmp_path, timeout=20)

    assert result.returncode != 0
    assert "--workers" in result.stderr
    assert "Traceback" not in result.stderr
    assert "PostgreSQL" in result.stderr


@pytest.mark.parametrize("command", [("serve",), ("migrate",)])
def test_bad_setting_exits_2_naming_the_variable(tmp_path: Path, command: tuple[str, ...]) -> None:
    result = run_cli(
        *command, workdir=tmp_path, env={"SCOREBOARD_ACCESS_TOKEN_TTL_SECONDS": "abc"}, timeout=20
    )

    assert result.returncode == 2
    assert "SCOREBOARD_ACCESS_TOKEN_TTL_SECONDS" in result.stderr
    assert "abc" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "scoreboard.db").exists()


def test_migrate_with_the_database_unreachable_fails_in_one_line(tmp_path: Path) -> None:
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    result = run_cli("migrate", workdir=tmp_path, env={"SCOREBOARD_DATABASE_URL": closed})

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "database is unavailable" in result.stderr
