from maillage_booking.db.tables import MIGRATED_METADATA
from maillage_common.db.migrations import run_migrations

run_migrations(MIGRATED_METADATA)
