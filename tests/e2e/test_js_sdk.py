"""The JavaScript SDK's own tests (`node --test clients/js/test/`) against a real `scoreboard serve`."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.backends import require_program
from tests.e2e.server import Servers

pytestmark = pytest.mark.e2e

SDK = Path(__file__).resolve().parents[2] / "clients" / "js"
NODE_TIMEOUT_SECONDS = 90


def node_flags(node: str) -> list[str]:
    """Node 22+ has a global WebSocket; Node 20 and 21 need the flag that enables it."""
    probe = subprocess.run(
        [node, "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)"], check=False, timeout=30
    )
    return [] if probe.returncode == 0 else ["--experimental-websocket"]


def test_javascript_sdk_passes_its_node_tests_against_a_real_server(servers: Servers) -> None:
    node = require_program("node")
    server = servers.start("js-sdk")
    tests = sorted(str(path.relative_to(SDK)) for path in (SDK / "test").glob("*.test.js"))
    assert tests, f"no *.test.js under {SDK / 'test'}"
    result = subprocess.run(
        [node, *node_flags(node), "--test", "--test-reporter=tap", *tests],
        cwd=SDK,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "SCOREBOARD_URL": server.base_url,
            "NO_COLOR": "1",
        },
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, f"node --test failed:\n{result.stdout}\n{result.stderr}"
    summary = dict(re.findall(r"^# (pass|fail) (\d+)$", result.stdout, re.MULTILINE))
    assert summary.get("fail") == "0", result.stdout
    assert int(summary.get("pass", 0)) > 0, result.stdout
