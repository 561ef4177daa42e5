"""Unit tests of the event → projection rows mapping (no infrastructure)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from maillage.common.v1 import types_pb2 as common
from maillage.directory.v1 import events_pb2 as directory
from maillage_statistics.db.projections import UPSERTS, complete, fold
from maillage_statistics.handlers import consumers
from maillage_statistics.handlers.projection import ACT, PROJECTORS_BY_TYPE, label


def test_enum_labels_drop_the_prefix_and_unspecified() -> None:
    assert label(ACT, common.ACT_TELECONSULTATION) == "teleconsultation"
    assert label(ACT, common.ACT_UNSPECIFIED) == ""
    assert label(directory.SiteCategory.DESCRIPTOR, directory.SITE_CATEGORY_EHPAD) == "ehpad"


def test_every_topic_of_every_producer_is_consumed() -> None:
    topics = set(consumers()[0].topics)
    assert {"directory.sites", "booking.appointments", "sessions.quality"} <= topics
    assert {"telemetry.measurements", "telemetry.heartbeats", "telemetry.alerts"} <= topics
    assert {"telemetry.call-quality", "booking.expertises", "directory.kiosks"} <= topics


def test_every_event_of_the_history_maps_to_known_projection_rows(
    history: Callable[[], Any],
) -> None:
    events = history().events
    for event in events:
        for write in PROJECTORS_BY_TYPE[event.type](event):
            assert write.table in UPSERTS
            row = complete(write.table, write.row)
            assert "patient_ref" not in row


def test_a_measurement_batch_yields_one_row_per_measurement(
    history: Callable[[], Any],
) -> None:
    events = history().events
    batch = next(e for e in events if e.type.endswith("MeasurementBatchIngested"))
    rows = PROJECTORS_BY_TYPE[batch.type](batch)
    assert [w.table for w in rows] == ["measurement"] * 3


def test_folding_a_batch_in_memory_ignores_order_and_duplicates(
    history: Callable[[], Any],
) -> None:
    scenario = history()

    def writes(events: list[Any]) -> dict[str, list[dict[str, Any]]]:
        rows = fold([w for e in events for w in PROJECTORS_BY_TYPE[e.type](e)])
        return {table: sorted(r, key=repr) for table, r in rows.items()}

    in_order = writes(scenario.events)
    assert writes(scenario.shuffled_with_duplicates(seed=5)) == in_order
    sites = {row["name"]: row for row in in_order["site"]}
    assert (sites["S1"]["version"], sites["S1"]["category"]) == (2, "ehpad")
