"""Databases, branches and commits held in memory, with optional JSON persistence.

Every commit stands for one immutable ``(schema, instances)`` snapshot. Writers build the next snapshot
copy-on-write (``dict(old)`` + replaced entries; stored documents are never mutated), so readers can use a
head snapshot without locking and a write never copies documents. Writes to one database are serialised by
that database's lock; the store lock only guards the database table.

Not every commit keeps its instances dict: a commit also records what it changed against its parent (a
:class:`Delta`), and once it is no longer a branch head its dict is dropped unless it is a root or a
*checkpoint* (kept when the changes since the last kept dict reach half the dict's size, so kept dicts grow
geometrically). Keeping every dict cost memory quadratic in the history (a million documents written 500
at a time held 2,000 dicts averaging half a million entries). An older commit's instances are rebuilt on
demand from the nearest kept dict and the deltas after it; reads give the same documents in the same order.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import secrets
import string
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Schema = dict[str, dict[str, Any]]
Instances = dict[str, dict[str, Any]]

COMMIT_ALPHABET = string.digits + string.ascii_lowercase
RECORD_ALPHABET = string.ascii_letters + string.digits + "_-"
DEFAULT_PREFIXES = {"@base": "terminusdb:///data/", "@schema": "terminusdb:///schema#"}
SYSTEM_DATABASE_IRI = "terminusdb://system/data/UserDatabase/"
STATE_FILE = "sandbox-state.json"


def new_commit_id() -> str:
    """31 chars from [0-9a-z], like TerminusDB commit identifiers."""
    return "".join(secrets.choice(COMMIT_ALPHABET) for _ in range(31))


def new_layer_id() -> str:
    """Layer ids are 40 hex digits in TerminusDB (``layer_data:Layer_<40 hex>``)."""
    return "layer_data:Layer_" + secrets.token_hex(20)


@dataclass(frozen=True)
class Delta:
    """What a commit changed against its parent: documents set (new ones last, in order), ids removed, and
    the full id order when it is not the natural one (parent's order, removed ids dropped, new ids last)."""

    changed: dict[str, dict[str, Any]]
    removed: tuple[str, ...] = ()
    order: tuple[str, ...] | None = None

    @property
    def size(self) -> int:
        return len(self.changed) + len(self.removed) + (len(self.order) if self.order is not None else 0)

    def apply(self, instances: Instances) -> None:
        """Turn the parent's instances into this commit's (``instances`` is a private copy)."""
        instances.update(self.changed)
        for key in self.removed:
            instances.pop(key, None)
        if self.order is not None:
            reordered = {key: instances[key] for key in self.order}
            instances.clear()
            instances.update(reordered)

    @staticmethod
    def between(old: Instances, new: Instances, changed: set[str] | None = None) -> Delta:
        """The delta from ``old`` to ``new``; ``changed`` (when the writer knows it) lists every id set or
        removed, with ``new`` built as ``dict(old)`` plus assignments and deletions (so in natural order)."""
        if new is old:
            return Delta({})
        if changed is not None:
            updated = {key: new[key] for key in changed if key in new and key in old}
            added = len(changed) - len(updated) - sum(1 for key in changed if key not in new)
            tail = list(itertools.islice(reversed(new), added))[::-1]  # new ids sit last, in insertion order
            if added >= 0 and all(key in changed and key not in old for key in tail):
                updated.update((key, new[key]) for key in tail)
                return Delta(updated, tuple(key for key in changed if key not in new))
        delta = Delta(
            {key: value for key, value in new.items() if old.get(key) is not value},
            tuple(key for key in old if key not in new),
        )
        natural = [key for key in old if key in new] + [key for key in new if key not in old]
        if natural != list(new):
            return Delta(delta.changed, delta.removed, tuple(new))
        return delta


@dataclass(eq=False)
class Commit:
    """An immutable point in a branch history. ``parent`` is a commit id (None for a root commit).

    ``snapshot`` is the commit's instances dict when kept (always for a root and a branch head), else None;
    ``delta`` is what it changed against its parent (None for a root). Read :attr:`instances`.
    """

    identifier: str
    author: str
    message: str
    timestamp: float
    schema: Schema
    snapshot: Instances | None
    schema_layer: str
    instance_layer: str | None = None
    parent: str | None = None
    user: str | None = None
    migration: str | None = None  # JSON text, exactly as recorded
    initial: bool = False
    delta: Delta | None = None
    #: changes since the nearest ancestor that keeps its snapshot (decides where the next one is kept)
    changes_since_snapshot: int = 0
    #: set by the database: how to find a commit by id (for rebuilding from an ancestor)
    resolve: Any = field(default=None, repr=False)

    @property
    def instances(self) -> Instances:
        """The commit's documents (id -> stored document, in order). Do not mutate: copy first."""
        snapshot = self.snapshot
        if snapshot is not None:
            return snapshot
        chain: list[Commit] = []
        base: Instances | None = None
        current: Commit | None = self
        while current is not None:
            base = current.snapshot
            if base is not None:
                break
            chain.append(current)
            current = current.resolve(current.parent) if current.parent is not None else None
        rebuilt: Instances = dict(base) if base is not None else {}
        for commit in reversed(chain):
            if commit.delta is not None:
                commit.delta.apply(rebuilt)
        return rebuilt

    def lookup(self, doc_id: str) -> dict[str, Any] | None:
        """One document of this commit, without rebuilding the whole snapshot (history walks use it)."""
        current: Commit | None = self
        while current is not None:
            snapshot = current.snapshot
            if snapshot is not None:
                return snapshot.get(doc_id)
            delta = current.delta
            if delta is not None:
                if doc_id in delta.changed:
                    return delta.changed[doc_id]
                if doc_id in delta.removed:
                    return None
            current = current.resolve(current.parent) if current.parent is not None else None
        return None

    @property
    def type_name(self) -> str:
        return "InitialCommit" if self.initial else "ValidCommit"

    @property
    def ref(self) -> str:
        return f"{self.type_name}/{self.identifier}"

    def document(self, parent: Commit | None) -> dict[str, Any]:
        """The commit as a ``_commits`` graph document / log entry (keys in TerminusDB's sorted order)."""
        doc: dict[str, Any] = {"@id": self.ref, "@type": self.type_name, "author": self.author}
        doc["identifier"] = self.identifier
        if self.instance_layer:
            doc["instance"] = self.instance_layer
        doc["message"] = self.message
        if self.migration is not None:
            doc["migration"] = json.loads(self.migration)
        if parent is not None:
            doc["parent"] = parent.ref
        doc["schema"] = self.schema_layer
        doc["timestamp"] = self.timestamp
        if self.user:
            doc["user"] = self.user
        return doc


@dataclass(eq=False)
class Database:
    """One user database: its system record, branches (name -> head commit id) and all known commits."""

    org: str
    name: str
    label: str
    comment: str
    record_id: str
    creation_date: str
    public: bool = False
    schemaless: bool = False
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    repo_layer: str = field(default_factory=new_layer_id)
    meta_layer: str = field(default_factory=new_layer_id)
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def path(self) -> str:
        return f"{self.org}/{self.name}"

    @property
    def record_iri(self) -> str:
        return SYSTEM_DATABASE_IRI + self.record_id

    def record(self) -> dict[str, Any]:
        """The ``UserDatabase`` system document (GET /api/, verbose db listings)."""
        return {
            "@id": f"UserDatabase/{self.record_id}",
            "@type": "UserDatabase",
            "comment": self.comment,
            "creation_date": self.creation_date,
            "label": self.label,
            "name": self.name,
            "state": "finalized",
        }

    def head(self, branch: str) -> Commit | None:
        commit_id = self.branches.get(branch)
        return None if commit_id is None else self.commits[commit_id]

    def parent_of(self, commit: Commit) -> Commit | None:
        return None if commit.parent is None else self.commits.get(commit.parent)

    def history(self, commit: Commit) -> list[Commit]:
        """``commit`` and its ancestors, newest first."""
        chain: list[Commit] = []
        current: Commit | None = commit
        while current is not None:
            chain.append(current)
            current = self.parent_of(current)
        return chain

    def initial_commit(self, context: dict[str, Any]) -> Commit:
        """A fresh ``InitialCommit`` (author ``system``) whose schema holds only the context."""
        commit = Commit(
            identifier=new_commit_id(),
            author="system",
            message="create initial schema",
            timestamp=time.time(),
            schema={"@context": context},
            snapshot={},
            schema_layer=new_layer_id(),
            initial=True,
        )
        self.add_commit(commit)
        self.repo_layer = new_layer_id()
        return commit

    def add_commit(self, commit: Commit) -> None:
        """Register ``commit`` (it finds its ancestors through this database from now on)."""
        commit.resolve = self.commits.get
        self.commits[commit.identifier] = commit

    def set_head(self, branch: str, commit: Commit) -> None:
        self.add_commit(commit)
        if commit.snapshot is None:
            commit.snapshot = commit.instances  # a head keeps its dict: writers compare against it by identity
        previous = self.commits.get(self.branches.get(branch, ""))
        self.branches[branch] = commit.identifier
        self.repo_layer = new_layer_id()
        if previous is not None and previous is not commit:
            self._release(previous)

    def drop_branch(self, branch: str) -> None:
        previous = self.commits.get(self.branches.pop(branch))
        self.repo_layer = new_layer_id()
        if previous is not None:
            self._release(previous)

    def _release(self, commit: Commit) -> None:
        """Drop a former head's dict unless it is a root, still a head, or a checkpoint (see module doc)."""
        if commit.parent is None or commit.delta is None or commit.identifier in self.branches.values():
            return
        if commit.changes_since_snapshot * 2 >= len(commit.instances):
            return  # a checkpoint
        commit.snapshot = None

    def commit(
        self,
        branch: str,
        schema: Schema,
        instances: Instances,
        *,
        author: str,
        message: str,
        user: str | None,
        migration: str | None = None,
        changed: set[str] | None = None,
    ) -> Commit:
        """Append a commit on ``branch`` (caller holds ``lock``). An InitialCommit head is replaced, not a parent.

        ``changed``: the ids set or removed, when the writer built ``instances`` as ``dict(head's)`` plus
        assignments and deletions (spares comparing every document to find the delta).
        """
        head = self.head(branch)
        parent = None if head is None or head.initial else head
        same_schema = head is not None and head.schema is schema
        same_instances = head is not None and head.instances is instances
        schema_layer = head.schema_layer if head is not None and same_schema else new_layer_id()
        instance_layer = head.instance_layer if head is not None and same_instances else new_layer_id()
        timestamp = time.time()
        if parent is not None and timestamp <= parent.timestamp:
            timestamp = parent.timestamp + 1e-6
        delta = Delta.between(parent.instances, instances, changed) if parent is not None else None
        commit = Commit(
            identifier=new_commit_id(),
            author=author,
            message=message,
            timestamp=timestamp,
            schema=schema,
            snapshot=instances,
            schema_layer=schema_layer,
            instance_layer=instance_layer,
            parent=parent.identifier if parent else None,
            user=user,
            migration=migration,
            delta=delta,
        )
        self.set_head(branch, commit)  # may drop the parent's dict
        if parent is not None and delta is not None:
            carried = 0 if parent.snapshot is not None else parent.changes_since_snapshot
            commit.changes_since_snapshot = carried + delta.size
        return commit


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Store:
    """All databases of the server, keyed by ``(org, name)``, plus the known organisations."""

    def __init__(self, organizations: set[str] | None = None, data_dir: Path | None = None) -> None:
        self.organizations: set[str] = set(organizations or {"admin"})
        self.databases: dict[tuple[str, str], Database] = {}
        self.lock = threading.RLock()
        self.data_dir = data_dir
        self._save_lock = threading.Lock()
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
            self.load()

    def get(self, org: str, name: str) -> Database | None:
        return self.databases.get((org, name))

    def create(
        self,
        org: str,
        name: str,
        *,
        label: str,
        comment: str,
        context: dict[str, Any],
        public: bool,
        schemaless: bool,
    ) -> Database | None:
        """Create a database with branch ``main`` at a fresh InitialCommit (caller checked names).

        Returns ``None`` when it already exists (checked under the store lock, so creation is atomic).
        """
        with self.lock:
            if (org, name) in self.databases:
                return None
            db = Database(
                org=org,
                name=name,
                label=label,
                comment=comment,
                record_id="".join(secrets.choice(RECORD_ALPHABET) for _ in range(16)),
                creation_date=_utc_now(),
                public=public,
                schemaless=schemaless,
            )
            db.set_head("main", db.initial_commit(context))
            self.databases[(org, name)] = db
        self.save()
        return db

    def delete(self, org: str, name: str) -> None:
        with self.lock:
            self.databases.pop((org, name), None)
        self.save()

    def list(self) -> list[Database]:
        with self.lock:
            return sorted(self.databases.values(), key=lambda db: (db.org, db.name))

    # ----------------------------------------------------------------------------------- persistence

    def save(self) -> None:
        """Write the whole state atomically (temp file + rename) when a data directory is configured."""
        if self.data_dir is None:
            return
        with self._save_lock:
            with self.lock:
                databases = list(self.databases.values())
            state = {"version": 1, "databases": [_dump_database(db) for db in databases]}
            fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".json", dir=self.data_dir)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(state, handle, ensure_ascii=False, separators=(",", ":"))
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.data_dir / STATE_FILE)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def load(self) -> None:
        assert self.data_dir is not None
        path = self.data_dir / STATE_FILE
        if not path.exists():
            return
        state = json.loads(path.read_text(encoding="utf-8"))
        for raw in state.get("databases", []):
            db = _load_database(raw)
            self.databases[(db.org, db.name)] = db


def _ordered_commits(db: Database) -> list[Commit]:
    """Commits with every parent before its children (so loading can rebuild deltas in order)."""
    ordered: list[Commit] = []
    done: set[str] = set()
    for commit in db.commits.values():
        chain = []
        current: Commit | None = commit
        while current is not None and current.identifier not in done:
            chain.append(current)
            current = db.parent_of(current)
        for item in reversed(chain):
            done.add(item.identifier)
            ordered.append(item)
    return ordered


def _dump_database(db: Database) -> dict[str, Any]:
    with db.lock:
        commits = _ordered_commits(db)
        branches = dict(db.branches)
    dumped = []
    for commit in commits:
        parent = db.parent_of(commit)
        entry: dict[str, Any] = {
            key: getattr(commit, key)
            for key in (
                "identifier",
                "author",
                "message",
                "timestamp",
                "schema_layer",
                "instance_layer",
                "parent",
                "user",
                "migration",
                "initial",
            )
        }
        entry["schema"] = None if parent is not None and parent.schema is commit.schema else commit.schema
        if parent is None:
            entry["instances"] = commit.instances
        else:
            delta = commit.delta or Delta.between(parent.instances, commit.instances)
            entry["changed"] = delta.changed
            entry["removed"] = list(delta.removed)
            entry["order"] = None if delta.order is None else list(delta.order)
        dumped.append(entry)
    return {
        "org": db.org,
        "name": db.name,
        "label": db.label,
        "comment": db.comment,
        "record_id": db.record_id,
        "creation_date": db.creation_date,
        "public": db.public,
        "schemaless": db.schemaless,
        "branches": branches,
        "commits": dumped,
    }


def _load_database(raw: dict[str, Any]) -> Database:
    db = Database(
        org=raw["org"],
        name=raw["name"],
        label=raw["label"],
        comment=raw["comment"],
        record_id=raw["record_id"],
        creation_date=raw["creation_date"],
        public=raw.get("public", False),
        schemaless=raw.get("schemaless", False),
    )
    for entry in raw["commits"]:
        parent = db.commits.get(entry["parent"]) if entry.get("parent") else None
        delta: Delta | None = None
        if parent is None:
            instances = dict(entry.get("instances") or {})
            schema = entry["schema"]
        else:
            schema = parent.schema if entry["schema"] is None else entry["schema"]
            order = entry.get("order")
            delta = Delta(entry["changed"], tuple(entry["removed"]), None if order is None else tuple(order))
            instances = dict(parent.instances)
            delta.apply(instances)
        commit = Commit(
            identifier=entry["identifier"],
            author=entry["author"],
            message=entry["message"],
            timestamp=entry["timestamp"],
            schema=schema,
            snapshot=instances,
            schema_layer=entry["schema_layer"],
            instance_layer=entry.get("instance_layer"),
            parent=entry.get("parent"),
            user=entry.get("user"),
            migration=entry.get("migration"),
            initial=entry.get("initial", False),
            delta=delta,
        )
        db.add_commit(commit)
    db.branches = dict(raw["branches"])
    for commit in db.commits.values():  # parents first: keep the dicts a running server would have kept
        parent = db.parent_of(commit)
        if parent is not None and commit.delta is not None:
            carried = 0 if parent.snapshot is not None else parent.changes_since_snapshot
            commit.changes_since_snapshot = carried + commit.delta.size
            db._release(commit)
    return db
