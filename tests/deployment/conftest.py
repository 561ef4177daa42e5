"""Fixtures of the deployment checks: the repository's deploy/ files and the tools they need.

The tools come from `make deploy-tools` (Debian's Prometheus unpacked into .tools/prometheus,
the compose specification schema into .tools/compose-spec); a missing tool fails the test
with the command that provides it, never skips it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
TOOLS = ROOT / ".tools"
OVERLAYS = ("dev", "prod")
THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000


def _tool(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path.relative_to(ROOT)} is missing: run `make deploy-tools`")
    return path


@pytest.fixture(scope="session")
def prometheus_binary() -> Path:
    return _tool(TOOLS / "prometheus" / "usr" / "bin" / "prometheus")


@pytest.fixture(scope="session")
def promtool_binary() -> Path:
    return _tool(TOOLS / "prometheus" / "usr" / "bin" / "promtool")


@pytest.fixture(scope="session")
def compose_spec() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        _tool(TOOLS / "compose-spec" / "compose_spec.json").read_text()
    )
    return schema


def kustomize_command() -> list[str]:
    """`kustomize build` when the standalone binary is installed, else `kubectl kustomize`."""
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build"]
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize"]
    pytest.fail(
        "neither kustomize nor kubectl is on PATH: install one of them to render deploy/k8s"
        " (no PyPI or npm package ships kustomize)"
    )


@pytest.fixture(scope="session", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    """(overlay, every resource kustomize renders for it)."""
    overlay: str = request.param
    built = subprocess.run(
        [*kustomize_command(), str(DEPLOY / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return overlay, [doc for doc in yaml.safe_load_all(built.stdout) if doc]


@pytest.fixture(scope="session")
def topic_catalogue() -> dict[str, str]:
    """Topic → cleanup policy ("compact" or "delete"), read from proto/README.md's catalogue."""
    catalogue: dict[str, str] = {}
    for line in (ROOT / "proto" / "README.md").read_text().splitlines():
        match = re.match(r"^\| `([a-z-]+\.[a-z.-]+)` \|.*\| ([^|]+) \|$", line)
        if match:
            retention = match.group(2).strip()
            catalogue[match.group(1)] = "compact" if retention == "compacted" else "delete"
    assert len(catalogue) >= 12, "the topic catalogue of proto/README.md was not found"
    return catalogue


@pytest.fixture(scope="session")
def expected_topics(topic_catalogue: dict[str, str]) -> dict[str, tuple[str, int | None]]:
    """Every catalogue topic and its .dlq → (cleanup.policy, retention.ms or None)."""
    expected: dict[str, tuple[str, int | None]] = {}
    for topic, policy in topic_catalogue.items():
        expected[topic] = (policy, None if policy == "compact" else THIRTY_DAYS_MS)
        expected[f"{topic}.dlq"] = ("delete", THIRTY_DAYS_MS)
    return expected
