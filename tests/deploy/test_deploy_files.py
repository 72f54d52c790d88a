"""The container image, the compose stack and the systemd unit, checked statically (no Docker engine
or systemd runs here) and held against the app they run: its CLI, its settings, its routes."""

from __future__ import annotations

import configparser
import fnmatch
import re
import subprocess
import sys
from typing import Any

import pytest

from scoreboard.cli import parser
from scoreboard.config import Settings
from tests.conftest import Api
from tests.deploy.files import (
    DEPLOY,
    EXAMPLE_MARK,
    INTERPOLATION,
    SECRET_NAME,
    URL_PASSWORD,
    Instruction,
    dockerfile_stages,
    env_file,
    interpolate,
    is_required_variable,
    load_yaml,
    upstream_servers,
    without_upstreams,
)

COMPOSE = DEPLOY / "compose.yaml"
INSTANCES = ["scoreboard-1", "scoreboard-2", "scoreboard-3"]
BACKENDS = ["postgres", "redis", "rabbitmq"]
EVERY_INTERFACE = "0.0.0.0"  # noqa: S104  # what a server in a container or behind NGINX binds


def services() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = load_yaml(COMPOSE)["services"]
    return loaded


def one_shot(all_services: dict[str, dict[str, Any]]) -> set[str]:
    """Services others wait for to *complete*: jobs, not servers."""
    return {
        name
        for service in all_services.values()
        for name, condition in (service.get("depends_on") or {}).items()
        if condition["condition"] == "service_completed_successfully"
    }


def final_stage() -> list[Instruction]:
    return dockerfile_stages(DEPLOY / "Dockerfile")[-1]


def only(stage: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword} in the final stage, found {found}"
    return found[0]


# --- compose ---------------------------------------------------------------------------------------


def test_compose_runs_three_instances_of_the_image_on_the_three_backends() -> None:
    all_services = services()
    instances = sorted(name for name in all_services if name.startswith("scoreboard-"))

    assert instances == INSTANCES
    for name in instances:
        service = all_services[name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert "command" not in service  # the image's CMD: serve on 0.0.0.0:8000
        conditions = {dep: spec["condition"] for dep, spec in service["depends_on"].items()}
        assert conditions == {
            "migrate": "service_completed_successfully",
            **dict.fromkeys(BACKENDS, "service_healthy"),
        }
    assert len({all_services[name]["image"] for name in instances}) == 1


def test_compose_file_follows_the_compose_specification() -> None:
    # The Compose Specification's JSON schema, as vendored by check-jsonschema (no network).
    command = [
        sys.executable,
        "-m",
        "check_jsonschema",
        "--builtin-schema",
        "vendor.compose-spec",
        str(COMPOSE),
    ]

    checked = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_compose_server_has_a_healthcheck_and_jobs_are_one_shot() -> None:
    all_services = services()
    jobs = one_shot(all_services)

    assert jobs == {"migrate"}
    for name, service in all_services.items():
        if name in jobs:
            assert service["restart"] == "no"
            continue
        check = service.get("healthcheck", {})
        assert not check.get("disable"), name
        assert check.get("test", [""])[0] in {"CMD", "CMD-SHELL"}, name
        assert service["restart"] == "unless-stopped", name


def test_compose_migrates_once_before_any_instance_starts() -> None:
    all_services = services()
    migrate = all_services["migrate"]

    assert migrate["command"] == ["migrate"]
    assert parser().parse_args(migrate["command"]).command == "migrate"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert migrate["environment"] == all_services["scoreboard-1"]["environment"]


def test_compose_instances_wait_for_ready_backends_and_nginx_for_ready_instances() -> None:
    all_services = services()

    assert all_services["nginx"]["depends_on"] == {
        name: {"condition": "service_healthy"} for name in INSTANCES
    }
    instance_check = " ".join(all_services["scoreboard-1"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/readyz" in instance_check


def test_compose_takes_every_secret_from_the_environment() -> None:
    required: set[str] = set()
    for name, service in services().items():
        for key, value in (service.get("environment") or {}).items():
            value = str(value)
            if SECRET_NAME.search(key):
                assert is_required_variable(value), f"{name}: {key} must be ${{{key}:?...}}, not a value"
            for password in URL_PASSWORD.findall(value):
                assert is_required_variable(password), f"{name}: {key} has a password in its URL"
            required |= {m["name"] for m in INTERPOLATION.finditer(value) if (m["op"] or "").endswith("?")}

    example = env_file(DEPLOY / "compose.env.example")
    assert required == {"POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "SCOREBOARD_JWT_SECRET"}
    assert required <= set(example)
    assert all(EXAMPLE_MARK in example[name] for name in required)
    ignored = (DEPLOY / ".gitignore").read_text("utf-8").split()
    assert ".env" in ignored


def test_compose_environment_is_valid_settings_for_every_instance() -> None:
    example = env_file(DEPLOY / "compose.env.example")
    compose = load_yaml(COMPOSE)
    subnet = interpolate(compose["networks"]["scoreboard"]["ipam"]["config"][0]["subnet"], example)
    for name in INSTANCES:
        environment = {k: interpolate(str(v), example) for k, v in services()[name]["environment"].items()}

        settings = Settings.from_env(environment)

        assert settings.shares_state  # PostgreSQL + Redis: the three instances agree
        assert settings.database_url.startswith("postgresql://")
        assert "@postgres:5432/" in settings.database_url
        assert settings.broker_url is not None
        assert settings.broker_url.startswith("amqp://")
        assert settings.jwt_secret is not None
        assert len(settings.jwt_secret) >= 32
        assert settings.trusted_proxies == (subnet,)  # NGINX's network and nothing wider


def test_compose_nginx_mounts_the_config_and_certificates_and_alone_publishes_ports() -> None:
    all_services = services()
    nginx = all_services["nginx"]
    mounts = dict(volume.rsplit(":", 1)[0].split(":", 1) for volume in nginx["volumes"])

    assert mounts["./compose/nginx.conf"] == "/etc/nginx/conf.d/default.conf"
    assert (DEPLOY / "compose" / "nginx.conf").is_file()
    assert mounts["./compose/certs"] == "/etc/ssl/scoreboard"
    conf = (DEPLOY / "compose" / "nginx.conf").read_text("utf-8")
    for path in re.findall(r"ssl_certificate(?:_key)?\s+(\S+);", conf):
        assert path.startswith("/etc/ssl/scoreboard/"), path
    assert sorted(str(p).rsplit(":", 1)[1] for p in nginx["ports"]) == ["443", "80"]
    assert [name for name, s in all_services.items() if s.get("ports")] == ["nginx"]


def test_compose_nginx_upstreams_are_the_compose_instances_on_the_image_port() -> None:
    conf = (DEPLOY / "compose" / "nginx.conf").read_text("utf-8")
    port = only(final_stage(), "EXPOSE").argument

    upstreams = upstream_servers(conf)

    assert set(upstreams) == {"scoreboard", "scoreboard_realtime"}
    for servers in upstreams.values():
        assert servers == [f"{name}:{port}" for name in INSTANCES]


def test_compose_nginx_config_is_the_shipped_one_but_for_its_upstreams() -> None:
    shipped = (DEPLOY / "nginx" / "scoreboard.conf").read_text("utf-8")
    compose = (DEPLOY / "compose" / "nginx.conf").read_text("utf-8")

    assert set(upstream_servers(compose)) == set(upstream_servers(shipped))
    assert without_upstreams(compose) == without_upstreams(shipped)


# --- Dockerfile ------------------------------------------------------------------------------------


def test_image_is_built_in_stages_and_runs_slim_python_as_a_non_root_user() -> None:
    stages = dockerfile_stages(DEPLOY / "Dockerfile")
    final = stages[-1]

    assert len(stages) >= 2
    assert re.fullmatch(
        r"python:\$\{PYTHON_VERSION\}-slim AS runtime|python:3\.1[1-9]-slim AS \w+", final[0].argument
    )
    builder = stages[0][0].argument.split()[-1]
    sources = {
        m for i in final if i.keyword in {"RUN", "COPY"} for m in re.findall(r"from=([\w.-]+)", i.argument)
    }
    assert builder in sources  # the runtime takes the builder's wheels
    user = [i for i in final if i.keyword == "USER"][-1].argument
    name = user.split(":")[0]
    assert name not in {"root", "0"}
    assert not name.isdigit() or int(name) >= 1000


def test_image_entrypoint_is_the_cli_and_its_command_serves_the_exposed_port() -> None:
    final = final_stage()
    port = int(only(final, "EXPOSE").argument)

    assert only(final, "ENTRYPOINT").exec_form() == ["scoreboard"]
    args = parser().parse_args(only(final, "CMD").exec_form())
    assert (args.command, args.host, args.port) == ("serve", EVERY_INTERFACE, port)
    assert only(final, "STOPSIGNAL").argument == "SIGTERM"


def test_image_healthcheck_asks_the_app_for_healthz_on_its_port() -> None:
    final = final_stage()
    port = only(final, "EXPOSE").argument
    check = only(final, "HEALTHCHECK")

    command = check.exec_form()
    assert command[:2] == ["python", "-c"]
    assert f"http://127.0.0.1:{port}/healthz" in command[2]
    compile(command[2], "HEALTHCHECK", "exec")  # the one-liner is valid Python


def test_image_bakes_in_no_secret_and_its_build_context_leaves_local_state_out() -> None:
    for stage in dockerfile_stages(DEPLOY / "Dockerfile"):
        for instruction in stage:
            if instruction.keyword in {"ENV", "ARG"}:
                assert not SECRET_NAME.search(instruction.argument), instruction
    patterns = [
        line.strip()
        for line in (DEPLOY.parent / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def included(path: str) -> bool:
        verdict = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            bare = pattern.lstrip("!").rstrip("/").removeprefix("**/")
            if (
                fnmatch.fnmatch(path, bare)
                or fnmatch.fnmatch(path.split("/")[-1], bare)
                or path.startswith(bare + "/")
            ):
                verdict = negated
        return verdict

    copied = [
        i.argument.split()[0] for i in dockerfile_stages(DEPLOY / "Dockerfile")[0] if i.keyword == "COPY"
    ]
    assert copied
    assert all(included(path) for path in copied)
    for local_state in (
        "scoreboard.db",
        "src/jwt-secret",
        ".venv/bin/python",
        "tests/conftest.py",
        "deploy/.env",
    ):
        assert not included(local_state), local_state


async def test_every_path_the_image_and_compose_check_answers_200_from_the_app(api: Api) -> None:
    checks = [" ".join(only(final_stage(), "HEALTHCHECK").exec_form())]
    checks += [" ".join(s["healthcheck"]["test"]) for name, s in services().items() if name in INSTANCES]
    paths = {path for check in checks for path in re.findall(r"http://127\.0\.0\.1:8000(/[\w/]*)", check)}
    assert paths == {"/healthz", "/readyz"}

    for path in sorted(paths):
        response = await api.http.get(path)

        assert response.status_code == 200, (path, response.text)


# --- systemd ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unit() -> configparser.ConfigParser:
    parsed = configparser.ConfigParser(strict=False, interpolation=None)
    parsed.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parsed.read(DEPLOY / "systemd" / "scoreboard@.service", encoding="utf-8")
    return parsed


def test_systemd_unit_runs_as_a_dedicated_user_with_hardening(unit: configparser.ConfigParser) -> None:
    service = unit["Service"]

    assert service["User"] == "scoreboard"
    assert service["Group"] == "scoreboard"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ProtectHome"] == "yes"
    assert service["PrivateTmp"] == "yes"
    assert service["CapabilityBoundingSet"] == ""
    data_dir = env_file(DEPLOY / "systemd" / "scoreboard.env.example")["SCOREBOARD_DATA_DIR"]
    assert data_dir in service["ReadWritePaths"].split()
    assert service["WorkingDirectory"] == data_dir


def test_systemd_unit_migrates_then_serves_its_port_and_stops_gracefully(
    unit: configparser.ConfigParser,
) -> None:
    service = unit["Service"]
    pre = service["ExecStartPre"].split()
    start = service["ExecStart"].split()

    assert pre[0] == start[0]
    assert pre[0].endswith("/scoreboard")
    assert parser().parse_args(pre[1:]).command == "migrate"
    args = parser().parse_args([word.replace("%i", "8001") for word in start[1:]])
    assert (args.command, args.host, args.port) == ("serve", EVERY_INTERFACE, 8001)
    assert service["EnvironmentFile"] == "/etc/scoreboard/scoreboard.env"
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"].removesuffix("s")) >= 20
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_example_environment_is_valid_shared_state_settings() -> None:
    example = env_file(DEPLOY / "systemd" / "scoreboard.env.example")

    settings = Settings.from_env(example)

    assert settings.shares_state  # several instances, one truth
    assert settings.jwt_secret is not None
    assert EXAMPLE_MARK in settings.jwt_secret
    assert EXAMPLE_MARK in settings.database_url
    assert settings.trusted_proxies
