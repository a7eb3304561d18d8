"""What every endpoint handler receives, and the checks they all share (permissions, data versions)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.auth import READ_ACTIONS, AuthConfig, User, forbidden
from sandbox.descriptors import Descriptor
from sandbox.errors import ApiError
from sandbox.faults import FaultRegistry
from sandbox.store import Commit, Database, Store
from sandbox.wire import DATA_VERSION_HEADER, Request


@dataclass
class App:
    """Server-wide state shared by all request threads."""

    store: Store
    auth: AuthConfig = field(default_factory=AuthConfig)
    faults: FaultRegistry = field(default_factory=FaultRegistry)


@dataclass
class Call:
    """One request being handled: ``rest`` is the path after the route prefix (e.g. ``admin/db``)."""

    app: App
    request: Request
    user: User
    rest: str

    @property
    def store(self) -> Store:
        return self.app.store


def require_access(user: User, action: str, db: Database) -> None:
    """403 unless the user may ``action`` on ``db`` (a public database is readable by everyone)."""
    if db.public and action in READ_ACTIONS:
        return
    if not user.allowed(action, db.path):
        raise forbidden(user, action, db.record_iri)


def data_version(descriptor: Descriptor, db: Database, commit: Commit | None) -> str:
    """The ``TerminusDB-Data-Version`` value for a resource."""
    if descriptor.kind == "commits":
        return "repo:" + db.repo_layer.removeprefix("layer_data:Layer_")
    if descriptor.kind == "meta":
        return "meta:" + db.meta_layer.removeprefix("layer_data:Layer_")
    assert commit is not None
    label = "commit" if descriptor.kind == "commit" else "branch"
    return f"{label}:{commit.identifier}"


def requested_data_version(request: Request) -> str | None:
    """The optimistic-concurrency header, validated for shape (400 ``api:BadDataVersion`` otherwise)."""
    value = request.header(DATA_VERSION_HEADER)
    if value is None:
        return None
    label, sep, rest = value.partition(":")
    if not sep or ":" in rest or len(label) <= 3 or len(rest) <= 3:
        raise ApiError(
            {"@type": "api:BadDataVersion", "api:data_version": value},
            f"Bad data version: {value}",
        )
    return value


def check_data_version(requested: str | None, actual: str) -> None:
    if requested is not None and requested != actual:
        raise ApiError(
            {
                "@type": "api:DataVersionMismatch",
                "api:requested_data_version": requested,
                "api:actual_data_version": actual,
            },
            "Requested data version in header does not match actual data version.",
        )
