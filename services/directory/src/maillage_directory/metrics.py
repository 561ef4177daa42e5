"""The directory's own Prometheus metrics (module-level, few labels, no identities)."""

from __future__ import annotations

from prometheus_client import Counter

CHANGES = Counter(
    "maillage_directory_changes_total",
    "Committed changes to directory aggregates",
    ["aggregate", "change"],
)
IMPORTED_ROWS = Counter(
    "maillage_directory_import_rows_total",
    "Rows of bulk imports by outcome",
    ["source", "status"],
)
KIOSK_CREDENTIAL_CHECKS = Counter(
    "maillage_directory_kiosk_credential_checks_total",
    "Kiosk credential verifications by verdict",
    ["valid"],
)
