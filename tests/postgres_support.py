"""PostgreSQL for tests, without touching what the shared server holds: a private database per test
(dropped afterwards), and a proxy in front of the server whose links a test can cut, blackhole or
wrap in TLS — the shared server itself is never stopped.

    async with private_database() as url: ...            # postgresql://…/scoreboard_test_<hex>
    proxy = await PgProxy.start(); proxy.url(url)         # the same database, through the proxy
    proxy.cut(); proxy.blackhole(); proxy.restore()
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import struct
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tests.backends import POSTGRES_URL, require

HOST = "127.0.0.1"
SSL_REQUEST = 80877103
COMMIT = b"Q\x00\x00\x00\x0bCOMMIT\x00"  # a simple-protocol COMMIT, as asyncpg sends it
SERVER = (urlsplit(POSTGRES_URL).hostname or HOST, urlsplit(POSTGRES_URL).port or 5432)


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def with_address(url: str, host: str, port: int) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def with_query(url: str, query: str) -> str:
    return urlunsplit(urlsplit(url)._replace(query=query))


def database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


async def _maintenance(sql: str) -> None:
    conn = await asyncpg.connect(with_database(POSTGRES_URL, "postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def private_database() -> AsyncIterator[str]:
    """A new, empty database on the shared server for one test; dropped (connections and all)
    afterwards. Skips, or fails under CI, without a server."""
    require("postgres")
    name = f"scoreboard_test_{uuid.uuid4().hex[:16]}"
    await _maintenance(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(POSTGRES_URL, name)
    finally:
        await _maintenance(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def terminate_backends(url: str) -> int:
    """pg_terminate_backend every other session on the url's (private) database; how many."""
    conn = await asyncpg.connect(url)
    try:
        killed: int = await conn.fetchval(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return killed
    finally:
        await conn.close()


async def fetchval(url: str, sql: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


@dataclass(frozen=True)
class Certificates:
    """A private CA and a certificate for 127.0.0.1 it signed."""

    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    @classmethod
    def create(cls, folder: Path) -> Certificates:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        now = datetime.datetime.now(datetime.UTC)

        def builder(subject: str, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
            return (
                x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "scoreboard pg test CA")]))
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
            )

        folder.mkdir(parents=True, exist_ok=True)
        ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca = (
            builder("scoreboard pg test CA", ca_key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
        cert = (
            builder(HOST, key)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        files = cls(folder / "pg-ca.pem", folder / "pg-server.pem", folder / "pg-server.key")
        files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pkcs8 = serialization.PrivateFormat.PKCS8
        files.key.write_bytes(
            key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())
        )
        return files


class PgProxy:
    """A TCP proxy from a free port to the shared PostgreSQL.

    `cut()` resets every link and refuses new ones (the server went away); `blackhole()` accepts
    and reads but never answers, and silences open links (a network partition); `restore()` goes
    back to forwarding. With `tls`, the proxy answers PostgreSQL's SSLRequest itself and terminates
    TLS, forwarding plaintext to the server (which need not have TLS of its own): `tls_sessions`
    counts the encrypted links made. With `refuse_tls` it declines every SSLRequest, like a server
    without TLS, whatever the real server does."""

    def __init__(self, tls: ssl.SSLContext | None = None, refuse_tls: bool = False) -> None:
        self.port = 0
        self.mode = "forward"
        self.tls = tls
        self.refuse_tls = refuse_tls
        self.tls_sessions = 0
        self._commit_trap: str | None = None
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def start(cls, tls: ssl.SSLContext | None = None, refuse_tls: bool = False) -> PgProxy:
        proxy = cls(tls, refuse_tls)
        proxy._server = await asyncio.start_server(proxy._accept, HOST, 0)
        proxy.port = proxy._server.sockets[0].getsockname()[1]
        return proxy

    def url(self, database_url: str) -> str:
        return with_address(database_url, HOST, self.port)

    def cut(self) -> None:
        self.mode = "down"
        self._abort_links()

    def lose_commit(self, delivered: bool) -> None:
        """One-shot: reset the link of the next client that sends COMMIT before it hears the answer;
        the COMMIT itself reaches the server (`delivered`) or not. Either way the client cannot know."""
        self._commit_trap = "deliver" if delivered else "drop"

    def blackhole(self) -> None:
        self.mode = "blackhole"

    def restore(self) -> None:
        if self.mode == "blackhole":
            self._abort_links()  # their streams lost bytes: unusable
        self.mode = "forward"

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _abort_links(self) -> None:
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._links.add(writer)
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self._tasks.discard(task)
            self._links.discard(writer)
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "down":
            return
        if self.mode == "blackhole":
            await _swallow(reader)
            return
        first = await reader.readexactly(8)
        if struct.unpack("!ii", first) == (8, SSL_REQUEST) and (self.tls or self.refuse_tls):
            writer.write(b"S" if self.tls else b"N")  # N: "no TLS here", as a server without it says
            await writer.drain()
            if self.tls is not None:
                await writer.start_tls(self.tls)
                self.tls_sessions += 1
            first = b""
        upstream_reader, upstream = await asyncio.open_connection(*SERVER)
        self._links.add(upstream)
        try:
            upstream.write(first)
            await asyncio.gather(self._pipe(reader, upstream, writer), self._pipe(upstream_reader, writer))
        finally:
            self._links.discard(upstream)
            upstream.transport.abort()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: asyncio.StreamWriter | None = None,
    ) -> None:
        """Copy `reader` to `writer`; `client` is set on the client-to-server direction."""
        try:
            while data := await reader.read(65536):
                if self.mode == "blackhole":
                    continue  # the partition swallows everything
                if client is not None and self._commit_trap and COMMIT in data:
                    await self._spring_commit_trap(data, writer, client)
                    return
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()

    async def _spring_commit_trap(
        self, data: bytes, upstream: asyncio.StreamWriter, client: asyncio.StreamWriter
    ) -> None:
        trap, self._commit_trap = self._commit_trap, None
        client.transport.abort()  # before any answer can reach it
        if trap == "deliver":
            upstream.write(data)
            await upstream.drain()
            await asyncio.sleep(0.3)  # let the server read and commit before the link closes


async def _swallow(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass
