from maillage_common.db.migrations import run_migrations
from maillage_statistics.db.tables import MIGRATED_METADATA

run_migrations(MIGRATED_METADATA)
