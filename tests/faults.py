"""Fault injection without touching the machine's shared servers: servers a test starts on its own
ports (a private `redis-server`, optionally with TLS) and a TCP proxy whose links a test can cut.

    redis = PrivateRedis(tmp_path); redis.start(); ...; redis.kill(); redis.start()   # same port
    proxy = await FaultProxy.start(("127.0.0.1", 5672)); proxy.cut(); ...; proxy.restore()
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.backends import unavailable

HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


def require_redis_server() -> str:
    """The `redis-server` binary; skip (or under CI fail) without it."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis fault tier needs the redis-server binary on PATH, none found")
    return binary


@dataclass
class PrivateRedis:
    """A throw-away redis-server on a free port: nothing persisted, so it comes back empty."""

    folder: Path
    tls: TlsFiles | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.tls is None:
            return f"redis://{HOST}:{self.port}/0"
        return f"rediss://{HOST}:{self.port}/0?ssl_ca_certs={self.tls.ca}"

    def command(self) -> list[str]:
        args = [require_redis_server(), "--bind", HOST, "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.folder), "--daemonize", "no", "--protected-mode", "no"]
        if self.tls is None:
            return [*args, "--port", str(self.port)]
        return [*args, "--port", "0", "--tls-port", str(self.port), *self.tls.server_args()]

    def start(self) -> None:
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not answers(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private redis-server on port {self.port} did not start")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients, no data kept."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=START_TIMEOUT_SECONDS)
        self.process = None


@dataclass(frozen=True)
class TlsFiles:
    """A private CA and a server certificate for 127.0.0.1/localhost signed by it."""

    ca: Path
    cert: Path
    key: Path

    def server_args(self) -> list[str]:
        return [
            "--tls-cert-file",
            str(self.cert),
            "--tls-key-file",
            str(self.key),
            "--tls-ca-cert-file",
            str(self.ca),
            "--tls-auth-clients",
            "no",
        ]

    @classmethod
    def create(cls, folder: Path) -> TlsFiles:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        now = datetime.datetime.now(datetime.UTC)

        def build(subject: str, issuer: str, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
            return (
                x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
            )

        ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca = (
            build("scoreboard test CA", "scoreboard test CA", ca_key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
        server = (
            build("localhost", "scoreboard test CA", server_key)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        files = cls(folder / "ca.pem", folder / "server.pem", folder / "server.key")
        files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        files.cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
        files.key.write_bytes(
            server_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return files


class FaultProxy:
    """A TCP proxy from a free local port to `target`. `cut()` resets every open link and refuses
    new ones (the server went away); `silence()` keeps links open but drops every byte (a
    blackholed network); `restore()` ends either."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.down = False
        self.silent = False
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def start(cls, target: tuple[str, int]) -> FaultProxy:
        proxy = cls(target)
        proxy._server = await asyncio.start_server(proxy._accept, HOST, 0)
        proxy.port = proxy._server.sockets[0].getsockname()[1]
        return proxy

    def cut(self) -> None:
        self.down = True
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    def silence(self) -> None:
        self.silent = True

    def restore(self) -> None:
        self.down = self.silent = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._links |= {writer, upstream_writer}
        pipes = [self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)]
        tasks = [asyncio.ensure_future(p) for p in pipes]
        self._tasks.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.difference_update(tasks)
        for end in (writer, upstream_writer):
            self._links.discard(end)
            end.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if not self.silent:
                    writer.write(data)
                    await writer.drain()
        finally:
            writer.transport.abort()
