"""The outbox and inbox tables every service has in its own schema.

outbox_event: events recorded in the same transaction as the state change, published
later by the relay. inbox_event: (consumer, event id) pairs already applied — written in
the same transaction as the consumer's effect, so a redelivery has no second effect.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.engine import Connection

from maillage_common.db.engine import NAMING_CONVENTION


def outbox_event(metadata: MetaData) -> Table:
    return Table(
        "outbox_event",
        metadata,
        Column("id", BigInteger, Identity(always=True), primary_key=True),
        Column("event_id", Uuid, nullable=False, unique=True),
        Column("topic", Text, nullable=False),
        Column("event_key", Text, nullable=False),
        Column("event_type", Text, nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("traceparent", Text),
        Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def inbox_event(metadata: MetaData) -> Table:
    return Table(
        "inbox_event",
        metadata,
        Column("consumer", Text, nullable=False),
        Column("event_id", Uuid, nullable=False),
        Column("event_type", Text, nullable=False),
        Column("handled_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "event_id"),
        Index("ix_inbox_event_handled_at", "handled_at"),
    )


_CHANNEL_SUFFIX = "_outbox"
messaging_metadata = MetaData(naming_convention=NAMING_CONVENTION)
OUTBOX = outbox_event(messaging_metadata)
INBOX = inbox_event(messaging_metadata)


def outbox_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel that wakes a schema's relay (schemas share a database)."""
    return f"{schema}{_CHANNEL_SUFFIX}"


def create_messaging_tables(connection: Connection) -> None:
    """Create both tables and the wake-up trigger (called by each service's first migration)."""
    messaging_metadata.create_all(connection)
    connection.execute(
        text(
            f"""
            CREATE OR REPLACE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_notify(TG_TABLE_SCHEMA || '{_CHANNEL_SUFFIX}', ''); RETURN NULL;
            END $$
            """
        )
    )
    connection.execute(
        text(
            "CREATE TRIGGER outbox_event_recorded AFTER INSERT ON outbox_event "
            "FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox()"
        )
    )


def drop_messaging_tables(connection: Connection) -> None:
    connection.execute(text("DROP FUNCTION IF EXISTS notify_outbox() CASCADE"))
    messaging_metadata.drop_all(connection)
