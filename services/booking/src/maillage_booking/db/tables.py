from __future__ import annotations

from maillage_common.db import messaging_metadata, naming_metadata

metadata = naming_metadata()

MIGRATED_METADATA = [metadata, messaging_metadata]
