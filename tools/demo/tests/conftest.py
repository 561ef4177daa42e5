"""The demo's platform for integration tests: five services in their own processes, on the
session's embedded PostgreSQL (a fresh database per test) and a broker of the test's own.

The broker is not the session's: the statistics service's consumer group has a fixed name, so
on a shared broker it would resume where another test's statistics stopped and fold that
test's events into this test's observatory.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from maillage_demo.platform import Platform, demo_settings, running_platform
from maillage_devstack.infra import EmbeddedKafka, Infrastructure

HEARTBEAT_SECONDS = 1.0


@pytest.fixture
def heartbeat_seconds() -> float:
    """The kiosks' heartbeat period in tests (the watchdog's offline delay follows it)."""
    return HEARTBEAT_SECONDS


@pytest.fixture
def platform(infrastructure: Infrastructure, heartbeat_seconds: float) -> Iterator[Platform]:
    if infrastructure.postgres is None:
        pytest.skip("needs the embedded PostgreSQL (a fresh database per run)")
    with (
        tempfile.TemporaryDirectory(prefix="maillage-demo-") as state_dir,
        EmbeddedKafka(Path(state_dir) / "kafka.log") as kafka,
    ):
        own = Infrastructure(
            kafka.bootstrap_servers,
            infrastructure.database_url,
            kafka=kafka,
            postgres=infrastructure.postgres,
        )
        with running_platform(
            Path(state_dir),
            infrastructure=own,
            database=f"demo_{uuid.uuid4().hex[:12]}",
            preferred_ports=False,
            settings=demo_settings(heartbeat_seconds),
        ) as running:
            yield running
