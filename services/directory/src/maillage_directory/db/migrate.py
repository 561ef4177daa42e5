"""Bring the service's schema to the latest revision.

Run as `python -m maillage_directory.db.migrate` (a one-off job before the service starts)."""

from __future__ import annotations

from pathlib import Path

from maillage_common.db.migrations import upgrade
from maillage_directory.settings import DirectorySettings

MIGRATIONS = Path(__file__).with_name("migrations")


def main() -> None:
    upgrade(DirectorySettings.from_environment(), MIGRATIONS)


if __name__ == "__main__":
    main()
