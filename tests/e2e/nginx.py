"""A real NGINX in front of real instances, running the shipped `deploy/nginx/scoreboard.conf`.

The shipped file is rendered for the test by replacing only what is site-specific — listen ports,
the certificate, the upstream instances — and, where a test asks, the `limit_req` rates (every test
client is 127.0.0.1, one address). NGINX runs in the foreground under the test's own prefix folder.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.backends import all_required
from tests.e2e.server import HOST, free_port
from tests.faults import TlsFiles

SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "scoreboard.conf"
START_TIMEOUT_SECONDS = 10.0


def nginx_binary() -> str:
    """The nginx executable; skips (fails under CI) without one — `.ci/run` installs Debian's."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found:
        return found
    reason = "the NGINX tier needs `nginx` (Debian package nginx-light or nginx), none is installed"
    if all_required():
        pytest.fail(f"{reason} (SCOREBOARD_REQUIRE_ALL_BACKENDS=1: tiers may not be skipped)")
    pytest.skip(reason)


def render(
    upstreams: Sequence[int],
    realtime: Sequence[int],
    http_port: int,
    https_port: int,
    tls: TlsFiles,
    rates: Mapping[str, str],
) -> str:
    text = SHIPPED.read_text("utf-8")
    for ports in (upstreams, realtime):  # the API upstream comes first in the file, then the fan-out
        servers = "".join(f"    server {HOST}:{port} max_fails=3 fail_timeout=10s;\n" for port in ports)
        text, count = re.subn(
            r"(?:^    server 10\.0\.0\.\d+:8000 [^\n]*\n)+", servers, text, count=1, flags=re.M
        )
        assert count == 1, "the shipped upstream blocks changed shape"
    text = re.sub(r"^\s*listen \[::\]:\d+[^\n]*\n", "", text, flags=re.M)
    text = text.replace("listen 80;", f"listen {HOST}:{http_port};")
    text = text.replace("listen 443 ssl http2;", f"listen {HOST}:{https_port} ssl http2;")
    text = text.replace("/etc/ssl/scoreboard/fullchain.pem", str(tls.cert))
    text = text.replace("/etc/ssl/scoreboard/privkey.pem", str(tls.key))
    for zone, rate in rates.items():
        text, count = re.subn(rf"(zone={zone}:10m rate=)\S+;", rf"\g<1>{rate};", text)
        assert count == 1, f"no limit_req_zone {zone} in the shipped file"
    return text


def main_config(prefix: Path) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the test's own folder
    return f"""{user}worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 16384; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    include {prefix}/scoreboard.conf;
}}
"""


@dataclass
class Nginx:
    prefix: Path
    upstreams: Sequence[int]
    realtime: Sequence[int]
    rates: Mapping[str, str] = field(default_factory=dict)
    http_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    _process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.tls = TlsFiles.create(self.prefix)

    @property
    def https_url(self) -> str:
        return f"https://{HOST}:{self.https_port}"

    @property
    def wss_url(self) -> str:
        return f"wss://{HOST}:{self.https_port}/ws"

    def start(self) -> Nginx:
        binary = nginx_binary()
        (self.prefix / "scoreboard.conf").write_text(
            render(self.upstreams, self.realtime, self.http_port, self.https_port, self.tls, self.rates)
        )
        (self.prefix / "nginx.conf").write_text(main_config(self.prefix))
        command = [binary, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"), "-g", "daemon off;"]
        checked = subprocess.run([*command[:-2], "-t"], capture_output=True, text=True, check=False)
        assert checked.returncode == 0, f"nginx -t refused the rendered config:\n{checked.stderr}"
        with (self.prefix / "nginx.out").open("wb") as log:  # the child keeps its own descriptor
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self._wait_listening()
        return self

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self._process is not None
            assert self._process.poll() is None, self.errors()
            try:
                socket.create_connection((HOST, self.https_port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"nginx did not listen on {self.https_port}:\n{self.errors()}")

    def errors(self) -> str:
        logs = [self.prefix / "error.log", self.prefix / "nginx.out"]
        return "\n".join(path.read_text(errors="replace") for path in logs if path.exists())

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
