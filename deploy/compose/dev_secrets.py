"""One-off job of docker-compose.yml: development secrets, made once into a named volume.

Each secret is one file, read by the services through `<VAR>_FILE` (see maillage-entrypoint),
by PostgreSQL through `POSTGRES_PASSWORD_FILE` and by Grafana through
`GF_SECURITY_ADMIN_PASSWORD__FILE`, so no password is written in the repository. Existing files
are kept, so the booking key (which encrypts patient identities) and the database password
survive restarts. The signing key pair is the same kind `make up` makes; mint a token with
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
    "postgres-password": _token,
    "grafana-admin-password": _token,
}
# Grafana runs as its own user (472), not the image's 10001 that writes the files; the volume
# is mounted only by the platform's containers.
READABLE_BY_OTHER_USERS = frozenset({"grafana-admin-password"})
DATABASE_HOST = "postgres:5432"
DATABASE_NAME = "maillage"


def _write_once(path: Path, value: str) -> None:
    if path.exists():
        return
    mode = 0o644 if path.name in READABLE_BY_OTHER_USERS else 0o600
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value)


def main(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, make in GENERATED.items():
        _write_once(directory / name, make())
    # token_urlsafe's alphabet needs no escaping inside a URL.
    password = (directory / "postgres-password").read_text()
    _write_once(
        directory / "database-url",
        f"postgresql://maillage:{password}@{DATABASE_HOST}/{DATABASE_NAME}",
    )
    key = ensure_dev_signing_key(directory / "dev-keys")
    print(f"development secrets ready in {directory}; JWKS {key.jwks_url}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/var/lib/maillage"))
