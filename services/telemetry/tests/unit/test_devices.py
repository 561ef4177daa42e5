"""Device credentials: issued once, checked by hash, malformed ones refused."""

from __future__ import annotations

from maillage_telemetry.domain import devices


def test_an_issued_credential_matches_its_stored_hash_and_no_other_secret() -> None:
    issued = devices.issue()
    presented = devices.parse(issued.text)
    assert presented is not None
    assert presented.credential_id == issued.credential_id
    assert presented.matches(issued.secret_hash)
    assert not presented.matches(devices.issue().secret_hash)
    # Only the hash is stored: it never reveals the secret.
    assert issued.secret.encode() not in issued.secret_hash


def test_two_issued_credentials_differ() -> None:
    assert devices.issue().text != devices.issue().text


def test_malformed_credentials_are_refused() -> None:
    issued = devices.issue()
    for text in (
        "",
        "Bearer abc",
        f"mdc0.{issued.credential_id}.{issued.secret}",
        f"mdc1.not-a-uuid.{issued.secret}",
        f"mdc1.{issued.credential_id}.",
        f"mdc1.{issued.credential_id}",
    ):
        assert devices.parse(text) is None, text
