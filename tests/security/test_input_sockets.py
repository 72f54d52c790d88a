"""Body limits counted on the bytes actually received, over raw sockets to `scoreboard serve`.

An HTTP client library always frames a body honestly; an attacker does not. These requests are
written by hand: a Content-Length that lies in either direction, chunked bodies that never end, both
framings at once. (OWASP API4:2023 unrestricted resource consumption.)
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.e2e.server import HOST, Server, Servers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

READ_SECONDS = 5.0
LIMIT = 4096


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def problem_code(self) -> str:
        assert self.headers["content-type"] == "application/problem+json", self
        return str(json.loads(self.body)["code"])


@dataclass(frozen=True)
class Account:
    user_id: str
    token: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    pool = Servers(tmp_path_factory.mktemp("sockets"))
    try:
        yield pool.start("sockets", env={"SCOREBOARD_ACTION_POLICY": "open"})
    finally:
        pool.stop_all()


@pytest.fixture(scope="module")
def account(server: Server) -> Account:
    username = f"raw_{uuid.uuid4().hex[:12]}"
    with httpx.Client(base_url=server.base_url, timeout=10.0) as http:
        registered = http.post("/api/auth/register", json={"username": username, "password": PASSWORD})
        login = http.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    return Account(registered.json()["user_id"], login.json()["access_token"])


def score(server: Server, account: Account) -> int:
    response = httpx.get(f"{server.base_url}/api/users/{account.user_id}/score", timeout=10.0)
    return int(response.json()["score"])


def head(server: Server, account: Account, *framing: str) -> bytes:
    lines = [
        "POST /api/score/update HTTP/1.1",
        f"Host: {HOST}:{server.port}",
        f"Authorization: Bearer {account.token}",
        "Content-Type: application/json",
        *framing,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def valid_body(account: Account) -> bytes:
    return json.dumps({"user_id": account.user_id, "action_id": str(uuid.uuid4())}).encode()


@pytest.fixture
def connection(server: Server) -> Iterator[socket.socket]:
    with socket.create_connection((HOST, server.port), timeout=READ_SECONDS) as sock:
        yield sock


def read_answer(sock: socket.socket) -> Answer:
    """One HTTP response (Content-Length framed, as ours are); fails if none arrives in time."""
    data = b""
    while b"\r\n\r\n" not in data:
        received = sock.recv(65536)
        assert received, f"the server closed the connection without answering: {data!r}"
        data += received
    header_block, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = header_block.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        received = sock.recv(65536)
        assert received, "the server closed the connection in the middle of a response"
        rest += received
    return Answer(int(status_line.split()[1]), headers, rest[:length])


def test_a_declared_length_over_the_limit_is_413_before_any_body_is_sent(
    server: Server, account: Account, connection: socket.socket
) -> None:
    connection.sendall(head(server, account, "Content-Length: 1000000"))

    answer = read_answer(connection)  # no body was sent: the answer cannot have waited for it

    assert (answer.status, answer.problem_code) == (413, "payload_too_large")


def test_a_chunked_body_is_refused_once_the_received_bytes_pass_the_limit(
    server: Server, account: Account, connection: socket.socket
) -> None:
    connection.sendall(head(server, account, "Transfer-Encoding: chunked"))
    for _ in range(LIMIT // 1024 + 2):  # a little over the limit, and the body never ends
        connection.sendall(chunk(b" " * 1024))

    answer = read_answer(connection)

    assert (answer.status, answer.problem_code) == (413, "payload_too_large")


def test_a_content_length_shorter_than_the_body_reads_only_the_declared_bytes(
    server: Server, account: Account, connection: socket.socket
) -> None:
    before = score(server, account)
    body = valid_body(account)
    smuggled = head(server, account, f"Content-Length: {len(body)}") + body

    connection.sendall(head(server, account, "Content-Length: 10") + body[:10])
    first = read_answer(connection)
    connection.sendall(body[10:] + b" " * 5000 + smuggled)
    second = read_answer(connection)

    assert (first.status, first.problem_code) == (400, "invalid_request")  # 10 bytes are not JSON
    assert second.status == 400  # the rest is not a request: uvicorn's parser refuses it and hangs up
    assert second.headers.get("connection") == "close"
    assert score(server, account) == before  # the valid request hidden behind it was never run


def test_a_content_length_longer_than_the_body_never_completes_a_request(
    server: Server, account: Account, connection: socket.socket
) -> None:
    before = score(server, account)
    body = valid_body(account)
    connection.sendall(head(server, account, f"Content-Length: {len(body) + 100}") + body)
    connection.shutdown(socket.SHUT_WR)

    leftover = connection.recv(65536)

    assert b" 200 " not in leftover.split(b"\r\n", 1)[0]
    assert score(server, account) == before
    assert '"status":500' not in server.stderr
    assert "request.crashed" not in server.stderr


def test_both_framings_at_once_are_refused(
    server: Server, account: Account, connection: socket.socket
) -> None:
    before = score(server, account)
    body = valid_body(account)
    connection.sendall(
        head(server, account, "Content-Length: 10", "Transfer-Encoding: chunked") + chunk(body) + chunk(b"")
    )

    answer = read_answer(connection)

    assert 400 <= answer.status < 500
    assert score(server, account) == before


def test_a_post_without_any_framing_has_an_empty_body_and_is_400(
    server: Server, account: Account, connection: socket.socket
) -> None:
    connection.sendall(head(server, account))

    answer = read_answer(connection)

    assert (answer.status, answer.problem_code) == (400, "invalid_request")


def test_an_honest_chunked_body_under_the_limit_is_applied(
    server: Server, account: Account, connection: socket.socket
) -> None:
    before = score(server, account)
    body = valid_body(account)
    pieces = [body[i : i + 16] for i in range(0, len(body), 16)]
    connection.sendall(
        head(server, account, "Transfer-Encoding: chunked") + b"".join(map(chunk, pieces)) + chunk(b"")
    )

    answer = read_answer(connection)

    assert answer.status == 200, answer
    assert score(server, account) == before + 1
