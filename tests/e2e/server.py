"""Real `scoreboard` processes for end-to-end tests: start, wait until healthy, stop, kill, restart.

A `Server` is one `scoreboard serve` on a free 127.0.0.1 port with its own working directory (the data
dir: SQLite file and generated JWT secret live there) and environment. Several can run at once with
different settings; `restart()` starts the same server again on the same data dir. Each run's stdout and
stderr go to files (never pipes, which would block a chatty server) and stay readable after it stops.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 10.0
CLI_TIMEOUT_SECONDS = 30.0

# What every e2e process gets unless a test says otherwise: no rate limits, JSON logs, unbuffered output
# (so the log of a killed process is complete up to its death).
DEFAULT_ENV: dict[str, str] = {
    "SCOREBOARD_RATE_LIMIT_SCORE_UPDATES": "off",
    "SCOREBOARD_RATE_LIMIT_LOGIN": "off",
    "SCOREBOARD_RATE_LIMIT_REGISTER": "off",
    "SCOREBOARD_RATE_LIMIT_ACTIONS": "off",
    "SCOREBOARD_LOG_FORMAT": "json",
    "PYTHONUNBUFFERED": "1",
}


def scoreboard_command() -> list[str]:
    """The installed console script of the interpreter running the tests (the project's venv)."""
    script = shutil.which("scoreboard", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "scoreboard"]


def process_env(workdir: Path, overrides: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The environment for a scoreboard process in `workdir`: the caller's environment without any
    SCOREBOARD_* setting, then DEFAULT_ENV, a database in `workdir`, then `overrides` (None removes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
    env.update(DEFAULT_ENV)
    env["SCOREBOARD_DATABASE_URL"] = f"sqlite:///{workdir / 'scoreboard.db'}"
    for key, value in (overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def run_cli(
    *args: str,
    workdir: Path,
    env: Mapping[str, str | None] | None = None,
    stdin: str | None = None,
    timeout: float = CLI_TIMEOUT_SECONDS,
) -> subprocess.CompletedProcess[str]:
    """Run `scoreboard ARGS` to completion in `workdir`; output captured as text."""
    return subprocess.run(
        [*scoreboard_command(), *args],
        cwd=workdir,
        env=process_env(workdir, env),
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class ServerFailed(AssertionError):
    """The server did not come up (or went down); the message carries its captured output."""


@dataclass
class Server:
    """One `scoreboard serve` process; `start()` it, `stop()`/`kill()` it, `restart()` it."""

    name: str
    workdir: Path
    logdir: Path
    env: dict[str, str | None] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    args: tuple[str, ...] = ()
    runs: int = 0
    returncode: int | None = None
    _process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None, f"{self.name} was never started"
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def stdout(self) -> str:
        """What the current (or last) run wrote to stdout."""
        return self._log("stdout")

    @property
    def stderr(self) -> str:
        """What the current (or last) run wrote to stderr (the JSON logs)."""
        return self._log("stderr")

    @property
    def output(self) -> str:
        return f"--- {self.name} run {self.runs} stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> Server:
        """Start the process and return once /healthz answers 200; fail with its output otherwise."""
        assert not self.running, f"{self.name} is already running"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.runs += 1
        self.returncode = None
        with self._logfile("stdout").open("wb") as out, self._logfile("stderr").open("wb") as err:
            self._process = subprocess.Popen(
                [*scoreboard_command(), "serve", "--host", HOST, "--port", str(self.port), *self.args],
                cwd=self.workdir,
                env=process_env(self.workdir, self.env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group: a terminal's Ctrl-C does not reach it
            )
        self._wait_healthy(timeout)
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """SIGTERM, wait up to `timeout`, then SIGKILL. The exit code (negative: killed by that signal;
        uvicorn re-raises SIGTERM after a graceful shutdown, so -SIGTERM is a clean stop too)."""
        if self._process is None:
            return 0
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self._reap()

    def kill(self) -> int:
        """SIGKILL the server (and anything it forked) at once, as a crash would."""
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
        return self._reap()

    def restart(self, timeout: float = START_TIMEOUT_SECONDS) -> Server:
        """Stop (gracefully) if running, then start again on the same data dir and port."""
        self.stop()
        return self.start(timeout)

    def _reap(self) -> int:
        assert self._process is not None
        self.returncode = self._process.wait(STOP_TIMEOUT_SECONDS)
        return self.returncode

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=1.0) as client:
            while time.monotonic() < deadline:
                if not self.running:
                    code = self._reap()
                    raise ServerFailed(f"{self.name} exited with {code} before it was healthy\n{self.output}")
                try:
                    if client.get("/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        self.kill()
        raise ServerFailed(f"{self.name} was not healthy within {timeout:g} s\n{self.output}")

    def _logfile(self, stream: str) -> Path:
        return self.logdir / f"{self.name}.{self.runs}.{stream}.log"

    def _log(self, stream: str) -> str:
        path = self._logfile(stream)
        return path.read_text("utf-8", errors="replace") if path.exists() else ""


class Servers:
    """Starts any number of servers under one temporary folder; `stop_all()` ends them all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[Server] = []

    def create(
        self,
        name: str | None = None,
        env: Mapping[str, str | None] | None = None,
        workdir: Path | None = None,
        args: tuple[str, ...] = (),
    ) -> Server:
        """A server, not yet started. Servers given the same `workdir` share a data dir."""
        name = name or f"server{len(self.started) + 1}"
        logdir = self.root / "logs"
        logdir.mkdir(parents=True, exist_ok=True)
        server = Server(name, workdir or self.root / name, logdir, dict(env or {}), args=args)
        self.started.append(server)
        return server

    def start(
        self,
        name: str | None = None,
        env: Mapping[str, str | None] | None = None,
        workdir: Path | None = None,
        args: tuple[str, ...] = (),
    ) -> Server:
        return self.create(name, env, workdir, args).start()

    def stop_all(self) -> None:
        for server in reversed(self.started):
            server.stop()
