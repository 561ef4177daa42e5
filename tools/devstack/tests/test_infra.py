"""The embedded broker and PostgreSQL, and the session fixtures built on them."""

from __future__ import annotations

import asyncio
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from maillage_devstack.infra import (
    EmbeddedKafka,
    EmbeddedPostgres,
    Infrastructure,
    free_port,
    port_is_free,
    provide_infrastructure,
    use_testcontainers,
)


@pytest.fixture
def scratch_dir() -> Iterator[Path]:
    # Not tmp_path: pytest keeps its base directory 0700, which the unprivileged
    # PostgreSQL user (tests running as root) could not traverse.
    with tempfile.TemporaryDirectory(prefix="maillage-infra-", ignore_cleanup_errors=True) as root:
        yield Path(root)


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


async def _round_trip(bootstrap_servers: str, payload: bytes) -> bytes:
    """Create a fresh topic (the broker never auto-creates), produce one record, read it back."""
    topic = f"devstack-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topic, payload)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=20)
    finally:
        await consumer.stop()
    value: bytes = record.value
    return value


async def _fetch_value(url: str, query: str, *arguments: object) -> object:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchval(query, *arguments)
    finally:
        await connection.close()


def test_free_port_is_free() -> None:
    assert port_is_free(free_port())


def test_external_servers_from_the_environment_start_nothing(scratch_dir: Path) -> None:
    environ = {
        "KAFKA_BOOTSTRAP_SERVERS": "kafka.example:9092",
        "DATABASE_URL": "postgresql://app@db.example/maillage",
    }
    with provide_infrastructure(scratch_dir, durable=False, environ=environ) as infra:
        assert infra == Infrastructure("kafka.example:9092", "postgresql://app@db.example/maillage")
        assert infra.ensure_database("anything") == "postgresql://app@db.example/maillage"
    assert list(scratch_dir.iterdir()) == []


def test_testcontainers_need_the_opt_in_the_package_and_docker() -> None:
    assert not use_testcontainers({})
    # Neither testcontainers nor a Docker engine here: the opt-in alone is not enough.
    assert not use_testcontainers({"MAILLAGE_TESTCONTAINERS": "1"})


@pytest.mark.integration
async def test_session_database_accepts_asyncpg_with_btree_gist(
    database_url: str, database_schema: str
) -> None:
    connection = await asyncpg.connect(
        database_url, server_settings={"search_path": f"{database_schema}, public"}
    )
    try:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        # What booking needs: no two overlapping slots for one resource.
        await connection.execute(
            """
            CREATE TABLE slot (
                resource int NOT NULL,
                during tstzrange NOT NULL,
                EXCLUDE USING gist (resource WITH =, during WITH &&)
            )
            """
        )
        insert = "INSERT INTO slot VALUES ($1, tstzrange($2, $3))"
        await connection.execute(insert, 1, _at(9), _at(10))
        await connection.execute(insert, 2, _at(9), _at(10))
        with pytest.raises(asyncpg.ExclusionViolationError):
            await connection.execute(insert, 1, _at(9, 30), _at(10, 30))
        table_schema = await connection.fetchval(
            "SELECT relnamespace::regnamespace::text"
            " FROM pg_class WHERE relname = 'slot'"
            " AND relnamespace::regnamespace::text = $1",
            database_schema,
        )
        assert table_schema == database_schema
    finally:
        await connection.close()


def _at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 2, hour, minute, tzinfo=UTC)


@pytest.mark.integration
async def test_each_test_gets_its_own_schema(database_url: str, database_schema: str) -> None:
    assert database_schema.startswith("t_")
    found = await _fetch_value(
        database_url,
        "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1",
        database_schema,
    )
    assert found == 1


@pytest.mark.integration
def test_session_broker_is_the_embedded_one(
    embedded_kafka: EmbeddedKafka, kafka_bootstrap_servers: str
) -> None:
    assert embedded_kafka.running
    assert embedded_kafka.bootstrap_servers == kafka_bootstrap_servers


@pytest.mark.integration
async def test_postgres_data_survives_stop_and_start(scratch_dir: Path) -> None:
    data_dir = scratch_dir / "postgres"
    started = time.monotonic()
    with EmbeddedPostgres(data_dir, durable=False) as postgres:
        first_start = time.monotonic() - started
        postgres.create_database("kept")
        connection = await asyncpg.connect(postgres.url_for("kept"))
        try:
            await connection.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
            await connection.execute("CREATE TABLE note (body text)")
            await connection.execute("INSERT INTO note VALUES ('Élodie, Besançon')")
        finally:
            await connection.close()
    assert not postgres.running
    # Same data directory, another port: a restarted developer stack.
    with EmbeddedPostgres(data_dir, durable=False) as again:
        body = await _fetch_value(again.url_for("kept"), "SELECT upper(body) FROM note")
    assert body == "ÉLODIE, BESANÇON"
    assert first_start < 30


@pytest.mark.integration
async def test_postgres_recovers_committed_data_after_a_crash(scratch_dir: Path) -> None:
    postgres = EmbeddedPostgres(scratch_dir / "postgres", durable=True)
    postgres.start()
    try:
        connection = await asyncpg.connect(postgres.url)
        try:
            await connection.execute("CREATE TABLE booking (id int PRIMARY KEY)")
            await connection.execute("INSERT INTO booking VALUES (1), (2)")
        finally:
            await connection.close()
        postgres.kill()
        assert not postgres.running
        assert not _accepts_connections(postgres.port)
        postgres.start()
        assert await _fetch_value(postgres.url, "SELECT count(*) FROM booking") == 2
    finally:
        postgres.stop()


@pytest.mark.integration
async def test_broker_restarts_on_the_same_port_after_a_kill(scratch_dir: Path) -> None:
    # A broker of its own: killing the session's one would empty other tests' topics.
    with EmbeddedKafka(scratch_dir / "kafka.log") as kafka:
        port = kafka.port
        assert await _round_trip(kafka.bootstrap_servers, b"before") == b"before"

        kafka.kill()
        assert not _accepts_connections(port)

        kafka.restart()
        assert kafka.port == port
        assert kafka.running
        # Memory storage: topics are gone, so the round trip creates its topic again.
        assert await _round_trip(kafka.bootstrap_servers, b"after") == b"after"
    assert not kafka.running
