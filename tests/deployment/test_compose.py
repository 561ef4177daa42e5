"""docker-compose.yml against the compose specification, and the platform rules it must keep:
health-gated start, migrations as one-off jobs, the topic catalogue, Prometheus scraping
every service (checked by promtool), Grafana provisioned with every dashboard."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("directory", "booking", "session-signalling", "telemetry", "statistics")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_file_follows_the_compose_specification(
    compose: dict[str, Any], compose_spec: dict[str, Any]
) -> None:
    validator = jsonschema.Draft201909Validator(compose_spec)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_the_specification_check_can_fail(compose_spec: dict[str, Any]) -> None:
    broken = {"services": {"a": {"image": "x", "depends_on": {"b": {"condition": "healthy"}}}}}
    assert not jsonschema.Draft201909Validator(compose_spec).is_valid(broken)


def test_infrastructure_is_apache_kafka_kraft_and_postgresql_16(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["postgres"]["image"].startswith("postgres:16")
    for name in ("kafka", "postgres", "prometheus"):
        assert "healthcheck" in services[name], name


@pytest.mark.parametrize("service", SERVICES)
def test_service_starts_after_its_migration_job_and_the_topics(
    compose: dict[str, Any], service: str
) -> None:
    services = compose["services"]
    running = services[service]
    assert running["command"] == ["serve", service]
    assert running["depends_on"] == {
        "kafka-topics": {"condition": "service_completed_successfully"},
        f"{service}-migrate": {"condition": "service_completed_successfully"},
    }
    assert running["read_only"] is True
    assert running["cap_drop"] == ["ALL"]
    migration = services[f"{service}-migrate"]
    assert migration["command"] == ["migrate", service]
    assert migration["restart"] == "no"
    assert migration["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert services["kafka-topics"]["depends_on"]["kafka"] == {"condition": "service_healthy"}
    # Secrets come from files of the dev-secrets volume, never from values in this file.
    for variable, value in running["environment"].items():
        if variable.endswith("_FILE"):
            assert value.startswith("/var/lib/maillage/"), variable
        elif "SECRET" in variable or variable.endswith("_KEY"):
            pytest.fail(f"{service}: {variable}={value} is embedded; use {variable}_FILE")


def test_compose_topics_follow_the_catalogue(topic_catalogue: dict[str, str]) -> None:
    configured = {}
    for line in (ROOT / "deploy" / "compose" / "topics.conf").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            topic, policy, *retention = line.split()
            configured[topic] = (policy, int(retention[0]) if retention else None)
    assert set(configured) == set(topic_catalogue)
    for topic, policy in topic_catalogue.items():
        assert configured[topic][0] == policy, topic
        assert (configured[topic][1] is None) == (policy == "compact"), topic


def test_prometheus_scrapes_every_service(promtool_binary: Path) -> None:
    config_path = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    checked = subprocess.run(
        [str(promtool_binary), "check", "config", str(config_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = yaml.safe_load(config_path.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for service in SERVICES:
        assert jobs[service]["static_configs"][0]["targets"] == [f"{service}:8000"]


def test_grafana_is_provisioned_with_the_datasource_the_dashboards_use(
    compose: dict[str, Any],
) -> None:
    grafana = compose["services"]["grafana"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "maillage.yml").read_text())[
        "providers"
    ]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    for path in sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
        assert variable["current"]["value"] == datasource["uid"], path.name
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == "${datasource}", (path.name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}", (path.name, panel["title"])


def test_no_password_is_written_in_the_compose_file(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        environment = service.get("environment", {})
        for variable, value in environment.items():
            if any(word in variable for word in ("PASSWORD", "SECRET", "DATABASE_URL")):
                assert variable.endswith("_FILE"), f"{name}: {variable} holds a value"
                assert str(value).startswith("/var/lib/maillage/"), f"{name}: {variable}"
                assert "maillage-secrets:/var/lib/maillage:ro" in service["volumes"], name
                # Directly, or through its migration job, which waits for dev-secrets.
                waits_for = service["depends_on"].get("dev-secrets") or service["depends_on"].get(
                    f"{name}-migrate"
                )
                assert waits_for == {"condition": "service_completed_successfully"}, name


def test_dev_secrets_job_makes_matching_passwords_once(tmp_path: Path) -> None:
    job = [sys.executable, str(ROOT / "deploy" / "compose" / "dev_secrets.py"), str(tmp_path)]
    subprocess.run(job, check=True, capture_output=True)
    password = (tmp_path / "postgres-password").read_text()
    database_url = (tmp_path / "database-url").read_text()
    assert len(password) >= 32
    assert database_url == f"postgresql://maillage:{password}@postgres:5432/maillage"
    assert stat.S_IMODE((tmp_path / "postgres-password").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "database-url").stat().st_mode) == 0o600
    first = {path.name: path.read_text() for path in tmp_path.iterdir() if path.is_file()}
    subprocess.run(job, check=True, capture_output=True)
    again = {path.name: path.read_text() for path in tmp_path.iterdir() if path.is_file()}
    assert again == first


def test_entrypoint_and_job_scripts_parse() -> None:
    for script in ("docker/maillage-entrypoint", "compose/create-topics.sh"):
        checked = subprocess.run(["sh", "-n", str(ROOT / "deploy" / script)], check=False)
        assert checked.returncode == 0, script
