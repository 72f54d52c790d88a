"""Usernames unique regardless of case and unicode form, and no SQL built from strings — on SQLite
and PostgreSQL alike (OWASP API2:2023 broken authentication — a look-alike account; injection
underlies API1/API3: whoever controls the SQL controls every object and property)."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import scoreboard.store
from scoreboard.config import Settings
from tests.api.support import assert_problem
from tests.backends import require
from tests.conftest import PASSWORD, Api
from tests.postgres_support import private_database

STORE_PACKAGE = Path(scoreboard.store.__file__).parent
SQL_CALLS = {"execute", "executemany", "executescript", "fetch", "fetchrow", "fetchval", "cursor", "prepare"}
INJECTIONS = [
    "alice' OR '1'='1",
    "alice'; DROP TABLE users; --",
    'alice" OR ""="',
    "') OR 1=1 --",
    "alice\\'; SELECT pg_sleep(5); --",
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_api(
    request: pytest.FixtureRequest, make_api: Callable[..., Any], settings: Settings
) -> AsyncIterator[Api]:
    if request.param == "sqlite":
        yield await make_api(settings)
        return
    require("postgres")
    async with private_database() as url:
        yield await make_api(settings, database_url=url)


# --- usernames ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Alice", "alice"),
        ("alice", "ALICE"),
        ("alice", "\uff41\uff4c\uff49\uff43\uff45"),  # FULLWIDTH "alice"
        ("\uff21lice", "aLICE"),  # FULLWIDTH "A" first: stored as "Alice"
        ("kate", "\u212aate"),  # KELVIN SIGN, NFKC "K"
        ("office", "o\ufb03ce"),  # LATIN SMALL LIGATURE FFI
    ],
)
async def test_a_username_differing_only_in_case_or_unicode_form_is_taken(
    database_api: Api, first: str, second: str
) -> None:
    registered = await database_api.register(first)

    response = await database_api.http.post(
        "/api/auth/register", json={"username": second, "password": PASSWORD}
    )

    assert_problem(response, 409, "username_taken")
    login = await database_api.login(second)  # every spelling names the one account
    me = await database_api.http.get(
        f"/api/users/{registered['user_id']}/score",
        headers={"Authorization": f"Bearer {login['access_token']}"},
    )
    assert me.status_code == 200


async def test_a_fullwidth_username_is_stored_in_its_plain_form(api: Api) -> None:
    account = await api.register("\uff42\uff4f\uff42_99")

    assert account["username"] == "bob_99"


@pytest.mark.parametrize("username", ["al ice", "élan", "alice\u200b", "a" * 33, "ab"])
async def test_a_username_outside_the_policy_after_normalisation_is_400(api: Api, username: str) -> None:
    response = await api.http.post("/api/auth/register", json={"username": username, "password": PASSWORD})

    assert_problem(response, 400, "invalid_request")


# --- SQL ---------------------------------------------------------------------------------------------


def _built_at_run_time(node: ast.expr) -> bool:
    """SQL text spliced from values: f-strings, `%`, `.format()` with a non-constant argument, or
    `+` with anything but literals and CONSTANT names."""
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Mod):
            return True
        return not (_constant(node.left) and _constant(node.right))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return not all(_constant(arg) for arg in [*node.args, *(k.value for k in node.keywords)])
    return False


def _constant(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Name):
        return node.id.lstrip("_").isupper()
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _constant(node.left) and _constant(node.right)
    return False


def spliced_sql() -> list[str]:
    """Every database call in the store package whose SQL is built at run time."""
    found = []
    for path in sorted(STORE_PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr in SQL_CALLS and node.args and _built_at_run_time(node.args[0]):
                found.append(f"{path.name}:{node.lineno}")
        for node in tree.body:  # module-level SQL templates must be filled with constants only
            if isinstance(node, ast.Assign) and _built_at_run_time(node.value):
                found.append(f"{path.name}:{node.lineno}")
    return found


def test_no_sql_in_the_store_is_built_from_run_time_strings() -> None:
    assert spliced_sql() == []


def test_the_sql_guard_recognises_spliced_sql() -> None:
    samples = [
        'c.execute(f"SELECT * FROM users WHERE username = {name}")',
        'c.execute("SELECT * FROM users WHERE username = %s" % name)',
        'c.execute("SELECT * FROM users WHERE username = {}".format(name))',
        'c.fetchrow("SELECT * FROM users WHERE username = \'" + name + "\'")',
    ]
    for sample in samples:
        call = ast.parse(sample, mode="eval").body
        assert isinstance(call, ast.Call)
        assert _built_at_run_time(call.args[0]), sample
    assert not _built_at_run_time(ast.parse('_BOARD + " LIMIT $1"', mode="eval").body)


@pytest.mark.parametrize("attempt", INJECTIONS)
async def test_sql_in_a_login_name_is_just_a_wrong_username(database_api: Api, attempt: str) -> None:
    await database_api.register("alice")

    response = await database_api.http.post(
        "/api/auth/login", json={"username": attempt, "password": PASSWORD}
    )

    assert_problem(response, 401, "invalid_credentials")


async def test_sql_in_a_username_or_display_name_is_stored_as_text(database_api: Api) -> None:
    refused = await database_api.http.post(
        "/api/auth/register", json={"username": INJECTIONS[1], "password": PASSWORD}
    )
    assert_problem(refused, 400, "invalid_request")

    shown = "Robert'); DROP TABLE user_score; --"
    bobby = await database_api.user()
    renamed = await database_api.register(display_name=shown)
    await database_api.earn(bobby)

    response = await database_api.http.get(f"/api/users/{renamed['user_id']}/score")
    assert response.json()["display_name"] == shown
    board = await database_api.http.get("/api/leaderboard")
    assert [entry["user_id"] for entry in board.json()["entries"]] == [bobby.user_id]
