"""deploy/k8s: both overlays render, every resource is valid against the Kubernetes schemas
(kubernetes-validate) or, for operator resources, against deploy/k8s/schemas/, and the
deployment rules of the platform hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES_VERSION = "1.32.0"  # the oldest minor the manifests target
SERVICES = ("directory", "booking", "session-signalling", "telemetry", "statistics")
STATELESS = ("directory", "booking", "telemetry")
CRD_SCHEMAS = {
    path.stem: json.loads(path.read_text()) for path in (DEPLOY / "k8s" / "schemas").glob("*.json")
}
SECRET_WORDS = ("SECRET", "PASSWORD", "KEY", "TOKEN", "DATABASE_URL")

Resources = tuple[str, list[dict[str, Any]]]


def _name(resource: dict[str, Any]) -> str:
    return f"{resource['kind']}/{resource['metadata']['name']}"


def _find(resources: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def test_every_resource_is_valid_against_its_schema(rendered: Resources) -> None:
    overlay, resources = rendered
    problems: list[str] = []
    for resource in resources:
        group_version = resource["apiVersion"].replace("/", "_")
        crd_schema = CRD_SCHEMAS.get(f"{group_version}_{resource['kind']}")
        try:
            if crd_schema is not None:
                jsonschema.validate(resource, crd_schema)
            else:
                kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as error:
            problems.append(f"{_name(resource)}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{_name(resource)}: no schema for {resource['apiVersion']}")
    assert problems == [], f"{overlay}: " + "\n".join(problems)


def test_crd_schemas_reject_a_misspelt_field() -> None:
    """The hand-written CRD schemas are closed: a typo is an error, not a silent no-op."""
    topic = {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaTopic",
        "metadata": {"name": "t"},
        "spec": {"partitions": 6, "replica": 3},
    }
    with pytest.raises(jsonschema.ValidationError, match="replica"):
        jsonschema.validate(topic, CRD_SCHEMAS["kafka.strimzi.io_v1beta2_KafkaTopic"])


def test_everything_lives_in_the_overlay_namespace(rendered: Resources) -> None:
    overlay, resources = rendered
    namespace = {"dev": "maillage-dev", "prod": "maillage"}[overlay]
    for resource in resources:
        if resource["kind"] == "Namespace":
            assert resource["metadata"]["name"] == namespace
        else:
            assert resource["metadata"].get("namespace") == namespace, _name(resource)


@pytest.mark.parametrize("service", SERVICES)
def test_service_deployment_is_locked_down_and_probed(rendered: Resources, service: str) -> None:
    _, resources = rendered
    deployment = _find(resources, "Deployment", service)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == service
    (container,) = pod["containers"]
    assert container["args"] == ["serve", service]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    for kind in ("Service", "ServiceAccount", "ConfigMap", "PodDisruptionBudget"):
        _find(resources, kind, service)
    job = _find(resources, "Job", f"{service}-migrate")
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    assert migrate["args"] == ["migrate", service]
    assert migrate["securityContext"] == security
    # The Service and the PDB select the service's pods, never its migration Job's.
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    selector = _find(resources, "Service", service)["spec"]["selector"]
    assert not selector.items() <= job_labels.items()


def test_hpa_only_for_the_stateless_services(rendered: Resources) -> None:
    _, resources = rendered
    scaled = {
        r["spec"]["scaleTargetRef"]["name"]
        for r in resources
        if r["kind"] == "HorizontalPodAutoscaler"
    }
    assert scaled == set(STATELESS)
    for name in scaled:  # a replica count beside an HPA would reset the scale on each apply
        assert "replicas" not in _find(resources, "Deployment", name)["spec"], name


def test_secrets_are_referenced_never_embedded(rendered: Resources) -> None:
    _, resources = rendered
    assert [r for r in resources if r["kind"] == "Secret"] == []
    for resource in resources:
        if resource["kind"] == "ConfigMap":
            for key in resource.get("data", {}):
                assert not any(word in key for word in SECRET_WORDS), f"{_name(resource)}: {key}"
        if resource["kind"] not in ("Deployment", "Job"):
            continue
        for container in resource["spec"]["template"]["spec"]["containers"]:
            for variable in container.get("env", []):
                if any(word in variable["name"] for word in SECRET_WORDS):
                    assert "secretKeyRef" in variable.get("valueFrom", {}), (
                        f"{_name(resource)}: {variable['name']} is not from a Secret"
                    )


def test_kafka_topics_follow_the_catalogue(
    rendered: Resources, expected_topics: dict[str, tuple[str, int | None]]
) -> None:
    overlay, resources = rendered
    topics = {r["spec"]["topicName"]: r["spec"] for r in resources if r["kind"] == "KafkaTopic"}
    expected = expected_topics
    assert set(topics) == set(expected)
    replicas = {"dev": 1, "prod": 3}[overlay]
    for name, (policy, retention) in expected.items():
        assert topics[name]["config"]["cleanup.policy"] == policy, name
        assert topics[name]["config"].get("retention.ms") == retention, name
        assert topics[name]["replicas"] == replicas, name
    nodes = _find(resources, "KafkaNodePool", "combined")["spec"]["replicas"]
    assert nodes >= replicas


def test_platform_resources_exist(rendered: Resources) -> None:
    _, resources = rendered
    kafka = _find(resources, "Kafka", "maillage-kafka")
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert {r["metadata"]["name"] for r in resources if r["kind"] == "KafkaUser"} == set(SERVICES)
    _find(resources, "Cluster", "maillage-postgres")
    monitor = _find(resources, "ServiceMonitor", "maillage")
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    ingress = _find(resources, "Ingress", "session-signalling")
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    _find(resources, "Deployment", "coturn")


def test_network_policies_start_from_deny_all(rendered: Resources) -> None:
    _, resources = rendered
    deny = _find(resources, "NetworkPolicy", "maillage-default-deny")
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"]
    assert "egress" not in deny["spec"]
    # Services reach each other only through Kafka: no policy lets a service pod in from
    # another maillage service pod.
    for policy in (r for r in resources if r["kind"] == "NetworkPolicy"):
        if policy["metadata"]["name"] == "maillage-postgres-ingress":
            continue
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                labels = peer.get("podSelector", {}).get("matchLabels", {})
                assert labels.get("app.kubernetes.io/component") != "service", policy


def test_crd_schema_files_are_json_schemas() -> None:
    for name, schema in CRD_SCHEMAS.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert Path(DEPLOY / "k8s" / "schemas" / f"{name}.json").exists()
