"""Development secrets for `make up`: made once on this machine, never committed.

A real deployment sets these from its secret store; values already in the environment
always win over the generated ones.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path

_FILE = "dev-secrets.json"


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _token() -> str:
    return secrets.token_urlsafe(48)


# Variable → how to make a fresh value of the right shape.
GENERATED: dict[str, Callable[[], str]] = {
    "BOOKING_PATIENT_KEY": _fernet_key,
    "SIGNALLING_JOIN_TOKEN_SECRET": _token,
    "SIGNALLING_TURN_SECRET": _token,
}


def ensure_dev_secrets(state_dir: Path) -> dict[str, str]:
    """The secrets in `state_dir`, adding any that a newer version of the platform needs."""
    path = state_dir / _FILE
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = {name: make() for name, make in GENERATED.items() if name not in known}
    if missing:
        known.update(missing)
        state_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(known, handle, indent=2)
    return known
