"""One-off job of docker-compose.yml: development secrets, made once into a named volume.

Each secret is one file, read by the services through `<VAR>_FILE` (see maillage-entrypoint);
existing files are kept, so the booking key (which encrypts patient identities) survives
restarts. The signing key pair is the same kind `make up` makes; mint a token with
`docker compose run --rm token --role coordinator`.
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

from maillage_common.auth.keys import ensure_dev_signing_key


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _token() -> str:
    return secrets.token_urlsafe(48)


# File → how to make a fresh value (the same shapes as `make up`'s dev-secrets.json).
GENERATED: dict[str, Callable[[], str]] = {
    "booking-patient-key": _fernet_key,
    "signalling-join-token-secret": _token,
    "signalling-turn-secret": _token,
}


def main(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, make in GENERATED.items():
        path = directory / name
        if not path.exists():
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(make())
    key = ensure_dev_signing_key(directory / "dev-keys")
    print(f"development secrets ready in {directory}; JWKS {key.jwks_url}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/var/lib/maillage"))
