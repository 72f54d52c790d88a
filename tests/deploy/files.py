"""Readers for the deployment kit in deploy/: the compose file, the Dockerfile, env files, NGINX configs.

Nothing here runs Docker, systemd or Kubernetes (none is available where the tests run); the tests
check the files' structure and hold them against the application they deploy."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|_PASS$", re.IGNORECASE)
URL_PASSWORD = re.compile(r"://[^:/@\s]+:(?P<password>[^@\s]+)@")
EXAMPLE_MARK = "CHANGE-ME"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text("utf-8"))


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text("utf-8")) if doc]


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a systemd EnvironmentFile or a compose .env file (comments skipped)."""
    values = {}
    for line in path.read_text("utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def interpolate(value: str, env: dict[str, str]) -> str:
    """What compose makes of `value`: variables from `env`, else their default; a missing required
    variable fails as `docker compose` would."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"] or "", match["arg"] or ""
        if env.get(name):
            return env[name]
        if op.endswith("?"):
            raise KeyError(f"{name} is required: {arg}")
        return arg if op.endswith("-") else ""

    return INTERPOLATION.sub(substitute, value)


def is_required_variable(value: str) -> bool:
    """The whole value is `${NAME:?...}`: it can only come from the environment."""
    match = INTERPOLATION.fullmatch(value)
    return match is not None and (match["op"] or "").endswith("?")


def upstream_servers(conf: str) -> dict[str, list[str]]:
    """The `server` addresses of each `upstream NAME { ... }` block of an NGINX config."""
    return {
        name: re.findall(r"^\s*server\s+(\S+)", body, re.MULTILINE)
        for name, body in re.findall(r"^upstream\s+(\S+)\s*\{(.*?)^\}", conf, re.MULTILINE | re.DOTALL)
    }


def without_upstreams(conf: str) -> str:
    return re.sub(r"^upstream\s+(\S+)\s*\{.*?^\}", r"upstream \1 {}", conf, flags=re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    argument: str

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form ENTRYPOINT/CMD (or HEALTHCHECK ... CMD [...])."""
        start = self.argument.index("[")
        words = json.loads(self.argument[start:])
        assert isinstance(words, list)
        return [str(word) for word in words]


def dockerfile_stages(path: Path) -> list[list[Instruction]]:
    """The Dockerfile's instructions, one list per build stage (each starting with its FROM)."""
    joined = re.sub(r"\\\n(?:\s*#[^\n]*\n)*", " ", path.read_text("utf-8"))
    stages: list[list[Instruction]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, argument = line.partition(" ")
        instruction = Instruction(keyword.upper(), argument.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages
