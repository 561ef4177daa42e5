"""HTTP schemas (pydantic v2). Datetimes are AwareDatetime: a naive one is a 422."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from maillage_booking.api.common import ActName, AssistanceName


class WeeklyWindowIn(BaseModel):
    weekday: int = Field(ge=0, le=6, description="0 = Monday")
    start: dt.time
    end: dt.time


class ScheduleExceptionIn(BaseModel):
    """A one-off change in wall-clock time of the schedule's zone: leave or extra opening."""

    kind: Literal["closed", "open"]
    date: dt.date
    start: dt.time
    end: dt.time
    end_date: dt.date | None = None


class ScheduleUpdate(BaseModel):
    time_zone: str = "Europe/Paris"
    weekly: list[WeeklyWindowIn]
    exceptions: list[ScheduleExceptionIn] = []
    slot_minutes: dict[ActName, int] = Field(description="slot length per act, in minutes")
    buffer_minutes: int = Field(default=0, ge=0, le=240)
    min_notice_minutes: int = Field(default=0, ge=0)
    window_days: int = Field(default=60, ge=1, le=366)
    visibility: Literal["public", "professionals", "regulator"] = "public"


class SlotRead(BaseModel):
    responder_id: str
    specialty_codes: list[str]
    start: AwareDatetime
    end: AwareDatetime
    # Set when the search was by distance: to the responder's nearest practice location.
    distance_km: float | None = None


class AppointmentCreate(BaseModel):
    responder_id: str
    site_id: str | None = None
    act: ActName = "teleconsultation"
    start: AwareDatetime
    end: AwareDatetime | None = None
    resource_id: str | None = None
    assistance: AssistanceName = "simple"
    specialty_code: str | None = None
    patient_id: uuid.UUID | None = None
    hold: bool = False


class AppointmentConfirm(BaseModel):
    patient_id: uuid.UUID | None = None


class AppointmentCancel(BaseModel):
    reason: Literal[
        "patient_request", "responder_unavailable", "site_unavailable", "technical", "other"
    ]


class AppointmentReschedule(BaseModel):
    start: AwareDatetime
    responder_id: str | None = None


class AppointmentOutcome(BaseModel):
    outcome: Literal["fulfilled", "noshow"]
    missing_side: Literal["patient", "responder", "both"] | None = None


class DutyUpdate(BaseModel):
    on_duty: bool


class ConsultationCreate(BaseModel):
    """An immediate consultation request from a kiosk or a nurse."""

    specialty_code: str = Field(min_length=1)
    act: ActName = "teleconsultation"
    urgency: Literal["routine", "urgent", "emergency"] = "routine"
    resource_id: str = Field(min_length=1, description="kiosk or cabin where the patient waits")
    assistance: AssistanceName = "simple"
    patient_id: uuid.UUID | None = None
    site_id: str | None = None


class ExpertiseCreate(BaseModel):
    responder_id: str
    specialty_code: str | None = None
    patient_id: uuid.UUID | None = None
    level: Literal[1, 2] = 1
    question: str = Field(min_length=1, max_length=10_000)
    clinical_context: str = Field(default="", max_length=50_000)
    response_delay_hours: int = Field(default=72, ge=1, le=24 * 60)
    site_id: str | None = None


class ExpertiseAnswer(BaseModel):
    report: str = Field(min_length=1, max_length=100_000)


class ExpertiseReject(BaseModel):
    reason: Literal["out_of_scope", "unavailable", "incomplete_file", "needs_consultation", "other"]


class PatientCreate(BaseModel):
    """Patient identity (INS traits); stored encrypted, never sent in events."""

    ins: str = Field(min_length=1, max_length=32)
    birth_name: str = Field(min_length=1, max_length=200)
    first_names: str = Field(min_length=1, max_length=200)
    birth_date: dt.date
    sex: Literal["M", "F", "I"]
    birthplace_code: str = Field(pattern=r"^(\d{5}|2[AB]\d{3}|99\d{3})$")
    consent_teleconsultation: bool
    gp_rpps: str | None = Field(default=None, pattern=r"^\d{11}$")


class ConsentUpdate(BaseModel):
    consent_teleconsultation: bool


class WaitlistCreate(BaseModel):
    """Wait for a slot of this responder between window_start and window_end."""

    responder_id: str
    act: ActName = "teleconsultation"
    window_start: AwareDatetime
    window_end: AwareDatetime
    patient_id: uuid.UUID | None = None
    site_id: str | None = None
