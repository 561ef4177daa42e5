"""INS checksum, territory tiers, dispatch order, expertise lifecycle, identity vault."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet

from maillage_booking.domain.dispatch import Candidate, eligible_in_tier
from maillage_booking.domain.errors import ConflictError, DomainError
from maillage_booking.domain.expertise import (
    ExpertiseStatus,
    check_attachment,
    check_transition,
    is_overdue,
)
from maillage_booking.domain.geo import Point, distance_km, nearest_km
from maillage_booking.domain.identity import Identity, IdentityVault
from maillage_booking.domain.ins import ins_key, validate_ins
from maillage_booking.domain.territory import proximity_tier, region_of


def with_key(first13: str) -> str:
    return f"{first13}{ins_key(first13):02d}"


def test_ins_key_is_97_minus_the_number_mod_97() -> None:
    assert ins_key("1850767482123") == 97 - 1850767482123 % 97
    assert validate_ins(with_key("1850767482123")) == with_key("1850767482123")


def test_corsican_departements_count_as_19_and_18() -> None:
    assert ins_key("185072A004123") == 97 - 1850719004123 % 97
    assert ins_key("185072B004123") == 97 - 1850718004123 % 97
    assert validate_ins(with_key("185072A004123").lower()) == with_key("185072A004123")


@pytest.mark.parametrize(
    ("ins", "reason"),
    [
        ("18507674821", "15 characters"),
        ("1850767482123" + "00", "key"),
        ("9850767482123" + "00", "malformed"),
    ],
)
def test_invalid_ins_is_rejected_with_its_reason(ins: str, reason: str) -> None:
    if reason == "key" and ins_key(ins[:13]) == 0:
        pytest.skip("key happens to be valid")
    with pytest.raises(DomainError) as error:
        validate_ins(ins)
    assert reason in error.value.reason


def test_territory_tiers() -> None:
    assert region_of("67") == "44"
    assert proximity_tier("67", ["67"]) == 1
    assert proximity_tier("67", ["68"]) == 2
    assert proximity_tier("67", ["75"]) is None
    assert proximity_tier("2A", ["2B"]) == 2


def test_dispatch_prefers_the_least_recently_offered_within_the_tier() -> None:
    now = datetime(2026, 11, 22, tzinfo=UTC)
    candidates = [
        Candidate("recent", ("67",), now),
        Candidate("never", ("67",), None),
        Candidate("older", ("67",), now - timedelta(hours=1)),
        Candidate("region", ("68",), None),
        Candidate("far", ("75",), None),
    ]
    assert [c.responder_id for c in eligible_in_tier(candidates, "67", 1, 10)] == [
        "never",
        "older",
        "recent",
    ]
    assert [c.responder_id for c in eligible_in_tier(candidates, "67", 2, 2)] == [
        "never",
        "region",
    ]


def test_expertise_lifecycle_and_overdue() -> None:
    check_transition(ExpertiseStatus.REQUESTED, "accept")
    check_transition(ExpertiseStatus.ACCEPTED, "answer")
    with pytest.raises(ConflictError):
        check_transition(ExpertiseStatus.REQUESTED, "answer")
    with pytest.raises(ConflictError):
        check_transition(ExpertiseStatus.CLOSED, "close")
    asked = datetime(2026, 11, 22, tzinfo=UTC)
    assert is_overdue(
        ExpertiseStatus.ACCEPTED, asked, timedelta(hours=1), asked + timedelta(hours=2)
    )
    assert not is_overdue(
        ExpertiseStatus.ANSWERED, asked, timedelta(hours=1), asked + timedelta(hours=2)
    )


def test_attachments_are_checked_for_type_size_and_content() -> None:
    check_attachment("application/pdf", b"%PDF-1.7 ...", 100)
    with pytest.raises(DomainError, match="JPEG, PNG or PDF"):
        check_attachment("text/plain", b"hello", 100)
    with pytest.raises(DomainError, match="exceeds"):
        check_attachment("application/pdf", b"%PDF-" + b"x" * 200, 100)
    with pytest.raises(DomainError, match="not a image/png"):
        check_attachment("image/png", b"%PDF-", 100)


def test_identity_vault_encrypts_and_pseudonymises() -> None:
    vault = IdentityVault(Fernet.generate_key().decode())
    identity = Identity(with_key("1850767482123"), "MARTIN", "Jeanne", "1985-07-01", "F", "67482")
    token = vault.encrypt(identity)
    assert b"MARTIN" not in token
    assert vault.decrypt(token) == identity
    ref = vault.patient_ref(identity.ins)
    assert ref == vault.patient_ref(identity.ins)
    assert identity.ins not in ref
    other = IdentityVault(Fernet.generate_key().decode())
    assert other.patient_ref(identity.ins) != ref


def test_distances_between_places() -> None:
    strasbourg, paris = Point(48.5734, 7.7521), Point(48.8566, 2.3522)
    assert 395 < distance_km(strasbourg, paris) < 400
    assert distance_km(paris, paris) == 0
    # A professional is as near as their nearest practice location; none known: unknown.
    assert (nearest_km(paris, [48.5734, 48.8606], [7.7521, 2.3376]) or 99) < 2
    assert nearest_km(paris, [], []) is None
