"""`docker compose run --rm token --role coordinator [--site ID] [--rpps RPPS] [--subject S]`:
a development bearer token signed with the compose stack's key (issuer maillage-dev)."""

from __future__ import annotations

import argparse
from pathlib import Path

from maillage_common.auth import Role
from maillage_common.auth.keys import mint_token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--role", required=True, choices=[role.value for role in Role])
    parser.add_argument("--subject", default="compose-user")
    parser.add_argument("--site", default=None)
    parser.add_argument("--rpps", default=None)
    arguments = parser.parse_args()
    print(
        mint_token(
            private_jwk_path=Path("/var/lib/maillage/dev-keys/signing-key.jwk.json"),
            role=Role(arguments.role),
            subject=arguments.subject,
            issuer="maillage-dev",
            audience="maillage",
            site_id=arguments.site,
            rpps=arguments.rpps,
        )
    )


if __name__ == "__main__":
    main()
