"""Authentication and per-database authorisation, mimicking TerminusDB's community server.

Order (as in TerminusDB): Basic credentials must match (else 401); a Bearer token must be one configured at
start (else 401); anything else - no header, ``Authorization: Token ...`` - is the anonymous user, who may
only see /api/ok, /api/info and an empty database list. The one exception plays a hosted service
(TerminusCMS/DFRNT): a token configured as ``"Token <key>"`` is an API key accepted only as
``Authorization: Token <key>`` (and never as Bearer). Secrets are compared in constant time and never
appear in any reply.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sandbox.errors import GenericError

USER_IRI_PREFIX = "terminusdb://system/data/User/"
HOSTED_KEY_PREFIX = "Token "
"""Marks a configured token as a hosted service's API key (``Authorization: Token <key>``)."""

INSTANCE_READ = "instance_read_access"
INSTANCE_WRITE = "instance_write_access"
SCHEMA_READ = "schema_read_access"
SCHEMA_WRITE = "schema_write_access"
COMMIT_READ = "commit_read_access"
COMMIT_WRITE = "commit_write_access"
META_READ = "meta_read_access"
BRANCH = "branch"
CREATE_DATABASE = "create_database"
DELETE_DATABASE = "delete_database"

READ_ACTIONS = frozenset({INSTANCE_READ, SCHEMA_READ, COMMIT_READ, META_READ})
ROLES: dict[str, frozenset[str]] = {
    "reader": READ_ACTIONS,
    # instance data only: may write documents but not the schema (nor migrate)
    "writer": READ_ACTIONS | {INSTANCE_WRITE, COMMIT_WRITE, BRANCH},
    "admin": READ_ACTIONS | {INSTANCE_WRITE, SCHEMA_WRITE, COMMIT_WRITE, BRANCH, CREATE_DATABASE, DELETE_DATABASE},
}
ALL_DATABASES = "*"


@dataclass(frozen=True)
class User:
    """An authenticated principal. ``grants`` maps ``org/db`` (or ``*``) to allowed action names."""

    name: str
    superuser: bool = False
    grants: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def iri(self) -> str:
        return USER_IRI_PREFIX + self.name

    @property
    def anonymous(self) -> bool:
        return self.name == "anonymous"

    def allowed(self, action: str, database: str) -> bool:
        if self.superuser:
            return True
        return any(action in self.grants.get(key, frozenset()) for key in (database, ALL_DATABASES))


ANONYMOUS = User("anonymous")


def _role_actions(role: str | Iterable[str]) -> frozenset[str]:
    if isinstance(role, str):
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; use one of {sorted(ROLES)} or a set of action names")
        return ROLES[role]
    return frozenset(role)


@dataclass
class AuthConfig:
    """Who may do what.

    ``tokens`` maps a bearer token to a user name. ``roles`` maps a user name to ``{"org/db" or "*": role}``
    where a role is ``reader``, ``writer`` (instance writes only), ``admin`` or a set of action names. A
    token user without an entry in ``roles`` gets ``admin`` on every database.
    """

    admin_password: str = "root"
    tokens: dict[str, str] = field(default_factory=dict)
    roles: dict[str, dict[str, str | Iterable[str]]] = field(default_factory=dict)

    def user_named(self, name: str) -> User:
        if name == "admin":
            return User("admin", superuser=True)
        spec = self.roles.get(name)
        if spec is None:
            return User(name, grants={ALL_DATABASES: ROLES["admin"]})
        return User(name, grants={db: _role_actions(role) for db, role in spec.items()})

    def authenticate(self, authorization: str | None) -> User:
        """The user behind an ``Authorization`` header value; raises the 401 reply for bad credentials."""
        if not authorization:
            return ANONYMOUS
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise incorrect_authentication() from None
            name, sep, password = decoded.partition(":")
            if sep and name == "admin" and hmac.compare_digest(password.encode(), self.admin_password.encode()):
                return self.user_named("admin")
            raise incorrect_authentication()
        if scheme == "bearer":
            for token, name in self.tokens.items():
                if not token.startswith(HOSTED_KEY_PREFIX) and hmac.compare_digest(
                    token.encode(), credentials.encode()
                ):
                    return self.user_named(name)
            raise incorrect_authentication()
        if scheme == "token":
            for token, name in self.tokens.items():
                key = token.removeprefix(HOSTED_KEY_PREFIX)
                if token.startswith(HOSTED_KEY_PREFIX) and hmac.compare_digest(key.encode(), credentials.encode()):
                    return self.user_named(name)
        return ANONYMOUS


def incorrect_authentication() -> GenericError:
    """The 401 reply (TerminusDB says ``api:failure`` in the body although the HTTP status is 401)."""
    return GenericError(
        401,
        {
            "@type": "api:ErrorResponse",
            "api:status": "api:failure",
            "api:error": {"@type": "api:IncorrectAuthenticationError"},
            "api:message": "Incorrect authentication information",
        },
    )


def forbidden(user: User, action: str, scope: str) -> GenericError:
    """TerminusDB's generic 403 body (no ``@type``/``api:error``)."""
    action_iri = f"@schema:Action/{action}"
    return GenericError(
        403,
        {
            "api:status": "api:forbidden",
            "api:message": f"Access to {scope} is not authorised with action {action_iri} and auth {user.iri}",
            "auth": user.iri,
            "action": action_iri,
            "scope": scope,
        },
    )


def require(user: User, action: str, database: str, scope: str) -> None:
    """Raise the 403 reply unless ``user`` may perform ``action`` on ``database`` (``org/db``)."""
    if not user.allowed(action, database):
        raise forbidden(user, action, scope)
