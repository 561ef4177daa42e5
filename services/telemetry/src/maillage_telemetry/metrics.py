"""Prometheus metrics of the telemetry service (module-level, per process).

Labels never carry patient data: measurement types are LOINC codes, places are
départements and site categories.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

KIOSKS = Gauge(
    "maillage_telemetry_kiosks",
    "Kiosks by fleet status, département and site category",
    ["departement", "site_category", "status"],
)
PERIPHERALS_IN_FAULT = Gauge(
    "maillage_telemetry_peripherals_in_fault",
    "Peripherals reported in fault or absent by the kiosks' last heartbeat",
    ["departement"],
)
MEASUREMENTS_INGESTED = Counter(
    "maillage_telemetry_measurements_ingested_total",
    "Measurement items received, by LOINC code and outcome (accepted, duplicate, rejected)",
    ["loinc_code", "outcome"],
)
MEASUREMENTS_STORED = Counter(
    "maillage_telemetry_measurements_stored_total",
    "Measurements written to PostgreSQL by the measurement consumer",
)
INGEST_LATENCY = Histogram(
    "maillage_telemetry_ingest_latency_seconds",
    "From receipt by the API to the stage: 'accepted' (batch committed) or 'stored' (queryable)",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ALERTS_RAISED = Counter(
    "maillage_telemetry_alerts_raised_total", "Alerts raised, by kind", ["kind", "severity"]
)
ALERTS_CLEARED = Counter(
    "maillage_telemetry_alerts_cleared_total", "Alerts cleared, by kind", ["kind"]
)
ALERTS_ACKNOWLEDGED = Counter(
    "maillage_telemetry_alerts_acknowledged_total", "Alerts acknowledged, by kind", ["kind"]
)
ALERTS_OPEN = Gauge(
    "maillage_telemetry_alerts_open",
    "Alerts neither cleared nor acknowledged, by kind and département",
    ["kind", "departement"],
)
