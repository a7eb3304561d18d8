"""Resource paths ("descriptors") such as ``org/db/local/branch/main`` and their resolution.

TerminusDB splits the path on ``/`` and drops empty segments, so leading, trailing and doubled slashes are
harmless; every endpoint that takes a resource path shares this grammar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from sandbox.errors import ApiError
from sandbox.store import Commit, Database, Store

Kind = Literal["system", "branch", "commit", "commits", "meta"]


@dataclass(frozen=True)
class Descriptor:
    kind: Kind
    org: str = ""
    db: str = ""
    repo: str = "local"
    name: str = ""  # branch name or commit id

    @property
    def db_path(self) -> str:
        return f"{self.org}/{self.db}"

    def text(self) -> str:
        """The canonical absolute path (used in error replies)."""
        if self.kind == "system":
            return "_system"
        if self.kind == "meta":
            return f"{self.org}/{self.db}/_meta"
        if self.kind == "commits":
            return f"{self.org}/{self.db}/{self.repo}/_commits"
        return f"{self.org}/{self.db}/{self.repo}/{self.kind}/{self.name}"


def parse(path: str) -> Descriptor | None:
    """Parse a resource path; ``None`` when it matches none of the forms."""
    parts = [unquote(part) for part in path.split("/") if part]
    if parts == ["_system"]:
        return Descriptor("system")
    if len(parts) == 2:
        return Descriptor("branch", parts[0], parts[1], "local", "main")
    if len(parts) == 3:
        if parts[2] == "_meta":
            return Descriptor("meta", parts[0], parts[1])
        return Descriptor("branch", parts[0], parts[1], parts[2], "main")
    if len(parts) == 4 and parts[3] == "_commits":
        return Descriptor("commits", parts[0], parts[1], parts[2])
    if len(parts) == 5 and parts[3] in ("branch", "commit"):
        kind: Kind = "branch" if parts[3] == "branch" else "commit"
        return Descriptor(kind, parts[0], parts[1], parts[2], parts[4])
    return None


def unknown_database(org: str, db: str) -> ApiError:
    return ApiError(
        {"@type": "api:UnknownDatabase", "api:database_name": db, "api:organization_name": org},
        f"Unknown database: {org}/{db}",
        status="api:not_found",
    )


def unresolvable(descriptor: Descriptor) -> ApiError:
    path = descriptor.text()
    return ApiError(
        {"@type": "api:UnresolvableAbsoluteDescriptor", "api:absolute_descriptor": path},
        f"The following descriptor could not be resolved to a resource: '{path}'",
        status="api:not_found",
    )


def database_of(store: Store, descriptor: Descriptor) -> Database:
    """The database a (non-system) descriptor names; 404 ``api:UnknownDatabase`` if it does not exist."""
    db = store.get(descriptor.org, descriptor.db)
    if db is None:
        raise unknown_database(descriptor.org, descriptor.db)
    return db


def commit_of(db: Database, descriptor: Descriptor) -> Commit:
    """The commit a branch/commit descriptor points at; 404 ``UnresolvableAbsoluteDescriptor`` otherwise."""
    if descriptor.repo == "local":
        if descriptor.kind == "branch":
            head = db.head(descriptor.name)
            if head is not None:
                return head
        elif descriptor.kind == "commit" and descriptor.name in db.commits:
            return db.commits[descriptor.name]
    raise unresolvable(descriptor)
