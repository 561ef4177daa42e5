"""Database chassis: engine per service schema, messaging tables, unit of work, migrations."""

from maillage_common.db.engine import create_engine, create_session_factory, naming_metadata
from maillage_common.db.messaging import (
    INBOX,
    OUTBOX,
    create_messaging_tables,
    drop_messaging_tables,
    messaging_metadata,
)
from maillage_common.db.unit_of_work import EventTooLargeError, UnitOfWork

__all__ = [
    "INBOX",
    "OUTBOX",
    "EventTooLargeError",
    "UnitOfWork",
    "create_engine",
    "create_messaging_tables",
    "create_session_factory",
    "drop_messaging_tables",
    "messaging_metadata",
    "naming_metadata",
]
