"""Logs are structured and never carry a frame's local variables (they may hold patient data)."""

from __future__ import annotations

import json

import pytest
import structlog

from maillage_common.observability.logging import configure_logging


def fail_with_identity_in_scope() -> None:
    patient_ins = "2840275123456 78"  # a local a careless traceback renderer would print
    raise ValueError(f"cannot book ({len(patient_ins)} chars)")


@pytest.mark.parametrize("as_json", [True, False])
def test_exception_logs_do_not_show_locals(
    as_json: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(service="test", json=as_json)
    try:
        fail_with_identity_in_scope()
    except ValueError:
        structlog.get_logger("test").exception("booking_failed")
    output = capsys.readouterr().err
    assert "booking_failed" in output
    assert "ValueError" in output
    assert "2840275123456" not in output


def test_json_lines_carry_service_and_level(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(service="booking", json=True)
    structlog.get_logger("test").info("slot_booked", slot_id="s1")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["message"] == "slot_booked"
    assert line["service"] == "booking"
    assert line["level"] == "info"
    assert line["slot_id"] == "s1"
