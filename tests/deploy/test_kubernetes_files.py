"""The Kubernetes kit in deploy/kubernetes/, checked structurally (no cluster runs here) and held
against the app: the probe paths answer, the autoscaler's metric is exported."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scoreboard.cli import parser
from scoreboard.config import Settings
from tests.conftest import Api
from tests.deploy.files import DEPLOY, EXAMPLE_MARK, load_yaml, load_yaml_documents

KUBERNETES = DEPLOY / "kubernetes"
Manifest = dict[str, Any]


def kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(KUBERNETES / "kustomization.yaml")
    return loaded


def manifests() -> list[Manifest]:
    """Every object `kubectl apply -k deploy/kubernetes/` would apply."""
    return [doc for name in kustomization()["resources"] for doc in load_yaml_documents(KUBERNETES / name)]


def of_kind(kind: str) -> list[Manifest]:
    return [m for m in manifests() if m["kind"] == kind]


def one(kind: str) -> Manifest:
    found = of_kind(kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_specs() -> list[tuple[str, Manifest]]:
    return [
        (m["metadata"]["name"], m["spec"]["template"]["spec"]) for m in of_kind("Deployment") + of_kind("Job")
    ]


def containers(kind: str) -> list[Manifest]:
    return [c for m in of_kind(kind) for c in m["spec"]["template"]["spec"]["containers"]]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def test_kustomization_applies_the_whole_kit_but_never_the_example_secret() -> None:
    resources = kustomization()["resources"]

    assert all((KUBERNETES / name).is_file() for name in resources)
    assert "secret.example.yaml" not in resources
    kinds = sorted(m["kind"] for m in manifests())
    assert kinds == sorted(
        ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Job", "PodDisruptionBudget", "Service"]
    )
    images = {image["name"] for image in kustomization()["images"]}
    assert {c["image"] for c in containers("Deployment") + containers("Job")} <= images


@pytest.mark.parametrize("version", ["1.28.0", kubernetes_validate.latest_version()])
def test_every_manifest_is_valid_for_kubernetes_without_unknown_fields(version: str) -> None:
    documents = manifests() + load_yaml_documents(KUBERNETES / "secret.example.yaml")

    for document in documents:
        # strict: a misspelt field (which the API server would silently drop) is an error
        kubernetes_validate.validate(document, version, strict=True)


def test_every_pod_runs_as_non_root_on_a_read_only_root_with_no_privileges() -> None:
    for name, spec in pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] >= 1000, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert {"requests", "limits"} <= set(container["resources"]), name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert "memory" in container["resources"]["limits"], name
            # A read-only root: wherever Python or the app might write is a volume.
            assert "/tmp" in {mount["mountPath"] for mount in container["volumeMounts"]}, name


def test_deployment_probes_the_app_and_drains_before_it_is_killed() -> None:
    deployment = one("Deployment")
    spec = deployment["spec"]["template"]["spec"]

    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    for container in spec["containers"]:
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        args = parser().parse_args(container["args"])
        assert args.command == "serve"
        assert ports["http"] == args.port
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert container[probe]["httpGet"]["port"] in ports, probe
        sleep = container["lifecycle"]["preStop"]["exec"]["command"]
        assert sleep[0] == "sleep"
        # The grace period covers the preStop sleep and then the app's own drain after SIGTERM.
        assert spec["terminationGracePeriodSeconds"] >= max(30, int(sleep[1]) + 20)


def test_migration_job_runs_the_migrate_command_once_to_completion() -> None:
    job = one("Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]

    assert parser().parse_args(container["args"]).command == "migrate"
    assert job["spec"]["template"]["spec"]["restartPolicy"] in {"OnFailure", "Never"}
    assert container["envFrom"] == one("Deployment")["spec"]["template"]["spec"]["containers"][0]["envFrom"]


def test_service_and_disruption_budget_select_the_deployment_pods() -> None:
    deployment = one("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service, budget = one("Service"), one("PodDisruptionBudget")
    container_ports = {p["name"] for c in containers("Deployment") for p in c["ports"]}

    assert matches(deployment["spec"]["selector"]["matchLabels"], labels)
    assert matches(service["spec"]["selector"], labels)
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= container_ports
    assert matches(budget["spec"]["selector"]["matchLabels"], labels)
    assert not matches(
        budget["spec"]["selector"]["matchLabels"], one("Job")["spec"]["template"]["metadata"]["labels"]
    )
    # A drain may take one pod at a time, never the last ones.
    assert budget["spec"]["maxUnavailable"] == 1 < one("HorizontalPodAutoscaler")["spec"]["minReplicas"] - 1


def test_autoscaler_scales_the_deployment_on_cpu_and_open_connections() -> None:
    hpa = one("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}

    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (target["kind"], target["name"]) == ("Deployment", one("Deployment")["metadata"]["name"])
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    assert metrics["Resource"]["resource"]["target"]["type"] == "Utilization"
    assert metrics["Pods"]["pods"]["metric"]["name"] == "scoreboard_realtime_connections"
    assert int(metrics["Pods"]["pods"]["target"]["averageValue"]) > 0
    # CPU utilisation is a share of the CPU request: without one the HPA cannot compute it.
    assert all("cpu" in c["resources"]["requests"] for c in containers("Deployment"))
    assert 3 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]


def test_prometheus_adapter_rule_serves_the_metric_the_autoscaler_asks_for() -> None:
    wanted = one("HorizontalPodAutoscaler")["spec"]["metrics"][1]["pods"]["metric"]["name"]
    rules = load_yaml(KUBERNETES / "prometheus-adapter" / "values.yaml")["rules"]["custom"]

    (rule,) = [r for r in rules if r["name"]["as"] == wanted]
    assert rule["seriesQuery"].startswith(wanted + "{")
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
    assert rule["metricsQuery"].startswith("sum(")  # both transports together, per pod


def test_config_and_example_secret_are_valid_settings_with_marked_placeholders() -> None:
    config = one("ConfigMap")
    (secret,) = load_yaml_documents(KUBERNETES / "secret.example.yaml")
    sources = containers("Deployment")[0]["envFrom"]

    assert {s["configMapRef"]["name"] for s in sources if "configMapRef" in s} == {config["metadata"]["name"]}
    assert {s["secretRef"]["name"] for s in sources if "secretRef" in s} == {secret["metadata"]["name"]}
    assert all(EXAMPLE_MARK in value for value in secret["stringData"].values())
    assert not {"SCOREBOARD_JWT_SECRET", "SCOREBOARD_DATABASE_URL"} & set(config["data"])
    settings = Settings.from_env({**config["data"], **secret["stringData"]})
    assert settings.shares_state
    assert settings.jwt_secret is not None
    assert settings.trusted_proxies


async def test_every_path_the_pods_are_probed_on_answers_200_from_the_app(api: Api) -> None:
    probed = {
        c[probe]["httpGet"]["path"]
        for c in containers("Deployment")
        for probe in ("readinessProbe", "livenessProbe", "startupProbe")
    }
    assert probed == {"/healthz", "/readyz"}

    for path in sorted(probed):
        response = await api.http.get(path)

        assert response.status_code == 200, (path, response.text)


async def test_an_idle_app_exports_the_autoscaler_connection_metric(api: Api) -> None:
    wanted = one("HorizontalPodAutoscaler")["spec"]["metrics"][1]["pods"]["metric"]["name"]

    text = (await api.http.get("/metrics")).text

    samples = {
        sample.labels["transport"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == wanted
    }
    # Each pod reports 0, not nothing, before its first connection: the HPA averages every pod.
    assert samples == {"ws": 0.0, "sse": 0.0}
