"""Bearer JWT authentication and per-route role declarations.

Every route declares who may call it with `requires(...)` or `public()`.
A token is verified against a JWKS (a file in development, a URL such as Keycloak or
Pro Santé Connect in production). 401 means "who are you?", 403 "not with that role".
"""

from maillage_common.auth.principal import Principal, Role
from maillage_common.auth.routes import (
    ACCESS_ATTRIBUTE,
    OptionalPrincipal,
    public,
    requires,
    undeclared_routes,
)
from maillage_common.auth.verifier import InvalidTokenError, TokenVerifier

__all__ = [
    "ACCESS_ATTRIBUTE",
    "InvalidTokenError",
    "OptionalPrincipal",
    "Principal",
    "Role",
    "TokenVerifier",
    "public",
    "requires",
    "undeclared_routes",
]
