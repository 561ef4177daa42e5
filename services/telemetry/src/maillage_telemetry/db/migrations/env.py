from maillage_common.db.migrations import run_migrations
from maillage_telemetry.db.tables import MIGRATED_METADATA

run_migrations(MIGRATED_METADATA)
