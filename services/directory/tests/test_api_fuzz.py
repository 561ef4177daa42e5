"""Property-based fuzzing of the whole HTTP API (schemathesis) against the real service.

The directory runs under uvicorn on the session's real PostgreSQL and broker; schemathesis
reads its OpenAPI document and sends generated valid and invalid requests to every
operation, as a coordinator. Every response must be documented and match its schema, and
no request may produce a 5xx. Generation is derandomised: a failure reproduces.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode

from maillage_common.auth.keys import DevSigningKey
from maillage_common.db.migrations import upgrade
from maillage_devstack.infra import free_port
from maillage_devstack.pytest_plugin import TEST_ISSUER, Mint
from maillage_devstack.service_testing import service_settings
from maillage_directory.app import create_app
from maillage_directory.db.migrate import MIGRATIONS

pytestmark = pytest.mark.integration
EXAMPLES_PER_OPERATION = 15
CHECKS: list[Callable[..., Any]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def directory_url(
    database_url: str, kafka_bootstrap_servers: str, dev_signing_key: DevSigningKey
) -> Iterator[str]:
    """The directory under uvicorn in a thread of its own (its own event loop and pool)."""
    config = service_settings(
        "maillage_directory",
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap_servers,
        schema=f"directory_fuzz_{uuid.uuid4().hex[:8]}",
        signing_key=dev_signing_key,
        issuer=TEST_ISSUER,
    )
    upgrade(config, MIGRATIONS)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning")  # type: ignore[arg-type]
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the directory did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _described(error: BaseException) -> str:
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(_described(inner) for inner in error.exceptions)
    return str(error)[:1500]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_within_its_schema_and_never_5xx(
    directory_url: str, mint: Mint, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(f"{directory_url}/openapi.json")
    headers = {"Authorization": f"Bearer {mint('coordinator', subject='fuzz')}"}
    failures: list[str] = []
    for result in schema.get_all_operations():
        # An operation the loader cannot read is itself a schema failure.
        assert isinstance(result, Ok), result
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(base_url=directory_url, headers=headers, checks=CHECKS)

        try:
            check()
        except Unsatisfiable:
            continue  # nothing invalid to send (e.g. no parameters in negative mode)
        except (AssertionError, BaseExceptionGroup) as error:
            # Every operation runs: the report lists all failing ones, not the first.
            failures.append(f"{operation.label}: {_described(error)}")
    assert failures == [], "\n\n".join(failures)
