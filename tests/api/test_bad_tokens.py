"""Every bad access token is refused with 401 `unauthenticated`, before the body is read."""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt
import pytest
import pytest_asyncio

from tests.api.support import SUCCESS, assert_problem, bearer, forge, shared_loop, unsigned_token
from tests.conftest import Api, User

pytestmark = shared_loop
PROTECTED_WRITES = ["/api/score/update", "/api/actions"]


@pytest.fixture
def api(shared_api: Api) -> Api:
    """Every test here is refused or uses a user of its own: one app serves the whole module."""
    return shared_api


def _bad_tokens() -> dict[str, Callable[[str], str]]:
    """Each way an access token must be refused, as a function of the real user id."""
    now = int(time.time())
    return {
        "garbage": lambda _: "not.a.jwt",
        "random-text": lambda _: "garbage",
        "alg-none": unsigned_token,
        "wrong-key": lambda uid: forge(uid, secret="some-other-secret-that-is-also-long-enough-0123"),
        "expired": lambda uid: forge(uid, iat=now - 1000, nbf=now - 1000, exp=now - 60),
        "not-yet-valid": lambda uid: forge(uid, iat=now + 600, nbf=now + 600, exp=now + 1200),
        "wrong-issuer": lambda uid: forge(uid, iss="someone-else"),
        "wrong-audience": lambda uid: forge(uid, aud="another-service"),
        "hs512-same-secret": lambda uid: forge(uid, algorithm="HS512"),
        "hs384-same-secret": lambda uid: forge(uid, algorithm="HS384"),
        "no-exp": lambda uid: forge(uid, exp=None),
        "no-jti": lambda uid: forge(uid, jti=None),
        "no-sub": lambda _: forge(sub=None),
        "roles-not-a-list": lambda uid: forge(uid, roles="admin"),
        "tampered-payload": lambda uid: _tampered(forge(uid)),
    }


def _tampered(token: str) -> str:
    """The signature of a real token on a payload that claims the admin role."""
    header, _, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    payload = jwt.encode({**claims, "roles": ["admin"]}, "x" * 32).split(".")[1]
    return f"{header}.{payload}.{signature}"


BAD_TOKENS = _bad_tokens()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def victim(shared_api: Api) -> tuple[User, str]:
    """A real user and an open ticket of theirs: were a bad token accepted, the request would succeed."""
    alice = await shared_api.user()
    return alice, await shared_api.ticket(alice)


async def test_a_correctly_forged_token_is_accepted_so_the_refusals_below_are_meaningful(api: Api) -> None:
    alice = await api.user()
    token = forge(alice.user_id)
    action_id = (await api.http.post("/api/actions", json={"type": "default"}, headers=bearer(token))).json()[
        "action_id"
    ]

    response = await api.http.post(
        "/api/score/update", json={"user_id": alice.user_id, "action_id": action_id}, headers=bearer(token)
    )

    assert response.status_code == 200, response.text
    assert response.json()["message"] == SUCCESS


@pytest.mark.parametrize("path", PROTECTED_WRITES)
@pytest.mark.parametrize("kind", list(BAD_TOKENS))
async def test_bad_access_token_is_401_unauthenticated(
    api: Api, victim: tuple[User, str], path: str, kind: str
) -> None:
    alice = await api.user()
    action_id = await api.ticket(alice)
    body = (
        {"type": "default"} if path == "/api/actions" else {"user_id": alice.user_id, "action_id": action_id}
    )

    response = await api.http.post(path, json=body, headers=bearer(BAD_TOKENS[kind](alice.user_id)))

    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", PROTECTED_WRITES)
@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc.def.ghi", "bearer-but-not abc"],
)
async def test_malformed_authorization_header_is_401(api: Api, path: str, authorization: str) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    response = await api.http.post(path, json={"type": "default"}, headers=headers)

    assert_problem(response, 401, "unauthenticated")


@pytest.mark.parametrize("path", PROTECTED_WRITES)
async def test_malformed_scheme_with_a_valid_token_is_still_401(api: Api, path: str) -> None:
    response = await api.http.post(
        path, json={"type": "default"}, headers={"Authorization": f"Basic {forge()}"}
    )

    assert_problem(response, 401, "unauthenticated")


@pytest.mark.parametrize("path", PROTECTED_WRITES)
async def test_token_revoked_by_logout_is_401(api: Api, path: str) -> None:
    alice = await api.user()
    await api.http.post("/api/auth/logout", headers=alice.auth)

    response = await api.http.post(path, json={"type": "default"}, headers=alice.auth)

    assert_problem(response, 401, "unauthenticated")


@pytest.mark.parametrize("path", PROTECTED_WRITES)
@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"unexpected": true}', b""])
async def test_authentication_is_checked_before_the_body(api: Api, path: str, body: bytes) -> None:
    headers = {**bearer(BAD_TOKENS["wrong-key"]("x")), "content-type": "application/json"}

    with_bad_token = await api.http.post(path, content=body, headers=headers)
    without_token = await api.http.post(path, content=body, headers={"content-type": "application/json"})

    assert_problem(with_bad_token, 401, "unauthenticated")
    assert_problem(without_token, 401, "unauthenticated")
