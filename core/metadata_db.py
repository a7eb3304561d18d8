"""The project's own TerminusDB database: audit events, migration runs and migration leases.

It lives on the same server and team as the ontology (``OMS_AUDIT_META_DB``, default ``oms_audit``) and is
created on first use. Its schema is installed by replacing the class documents that differ from
:data:`METADATA_SCHEMA`, so installing twice, or from two processes at once, is harmless, and a later
version of this module upgrades it in place (only weakening changes: new classes, new Optional fields).

Two branches, whatever branch the ontology uses (every call here names its branch, so a gateway opened
with the ontology's branch works too):

- ``main`` receives the audit events, a commit per event or batch, at the pace of the application's writes;
- ``migrations`` holds the migration runs and leases. They are changed with optimistic concurrency (the
  write names the data version it read, which is the *branch's* head commit), and on ``main`` a burst of
  audit events would refuse write after write; on their own branch only a rival run can get in the way.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any, Final
from urllib.parse import quote

from core.errors import AlreadyExists
from core.settings import TerminusSettings
from core.terminus import TerminusGateway

logger = logging.getLogger(__name__)

#: where audit events go
METADATA_BRANCH: Final = "main"
#: where migration runs and leases are kept
MIGRATIONS_BRANCH: Final = "migrations"
#: commit author of every write into the metadata database
METADATA_AUTHOR: Final = "oms-audit"

AUDIT_EVENT: Final = "AuditEvent"
MIGRATION_RUN: Final = "MigrationRun"
MIGRATION_LEASE: Final = "MigrationLease"
WRITE_FREEZE: Final = "WriteFreeze"


def _optional(range_: str) -> dict[str, str]:
    return {"@type": "Optional", "@class": range_}


def _lexical(field: str) -> dict[str, Any]:
    return {"@type": "Lexical", "@fields": [field]}


#: The schema, in the form TerminusDB returns it (so an installed schema compares equal).
#: Required fields are those a record is meaningless without; everything else is Optional so the
#: schema can grow and old documents stay valid.
METADATA_SCHEMA: Final[list[dict[str, Any]]] = [
    {
        "@id": AUDIT_EVENT,
        "@type": "Class",
        "@key": _lexical("event_id"),
        "event_id": "xsd:string",
        "occurred_at": "xsd:dateTime",
        "action": "xsd:string",
        "resource_type": _optional("xsd:string"),
        "resource_id": _optional("xsd:string"),
        "actor_id": "xsd:string",
        "actor_username": _optional("xsd:string"),
        "actor_kind": "xsd:string",
        "success": "xsd:boolean",
        # JSON text: the event's details object
        "details": _optional("xsd:string"),
        # JSON text: keys of the event line this schema does not know, kept rather than dropped
        "extra": _optional("xsd:string"),
        "recorded_at": "xsd:dateTime",
    },
    {
        "@id": MIGRATION_RUN,
        "@type": "Class",
        "@key": _lexical("run_id"),
        "run_id": "xsd:string",
        "database": "xsd:string",
        "branch": "xsd:string",
        "mode": "xsd:string",
        "status": "xsd:string",
        "triggered_by": _optional("xsd:string"),
        "approved_by": _optional("xsd:string"),
        "approval_comment": _optional("xsd:string"),
        "fingerprint": _optional("xsd:string"),
        "head_commit_before": _optional("xsd:string"),
        "head_commit_after": _optional("xsd:string"),
        # JSON text: {type name: pending|applying|applied|failed}
        "type_states": _optional("xsd:string"),
        "report_path": _optional("xsd:string"),
        "started_at": "xsd:dateTime",
        "finished_at": _optional("xsd:dateTime"),
        "error": _optional("xsd:string"),
    },
    {
        "@id": MIGRATION_LEASE,
        "@type": "Class",
        "@key": _lexical("database"),
        "database": "xsd:string",
        "owner": "xsd:string",
        "run_id": "xsd:string",
        "acquired_at": "xsd:dateTime",
        "expires_at": "xsd:dateTime",
        # the holding process: a holder on this host whose process is gone is taken over at once
        "host": _optional("xsd:string"),
        "pid": _optional("xsd:integer"),
        "process_started": _optional("xsd:string"),
    },
    {
        # present while writes to `database` are frozen (the rollback's "stop application" step)
        "@id": WRITE_FREEZE,
        "@type": "Class",
        "@key": _lexical("database"),
        "database": "xsd:string",
        "reason": "xsd:string",
        "set_by": "xsd:string",
        "set_at": "xsd:dateTime",
    },
]


def metadata_gateway(settings: TerminusSettings) -> TerminusGateway:
    """A gateway on the metadata database (its ``main`` branch by default). The caller closes it."""
    return TerminusGateway(settings, database=settings.meta_database, branch=METADATA_BRANCH)


def ensure_metadata_db(gateway: TerminusGateway, settings: TerminusSettings) -> None:
    """Create the metadata database and its branches if missing, and bring their schema up to date.

    ``gateway`` may be opened on any database of the server. Idempotent, and safe to run from several
    processes at once (whoever comes second finds the work done).
    """
    database = settings.meta_database
    # AlreadyExists: another process created it between the check and the create
    with contextlib.suppress(AlreadyExists):
        gateway.create_database(database, label="oms-audit metadata", exist_ok=True)
    _install_schema(gateway, database, METADATA_BRANCH)
    with _on_metadata_db(gateway, settings) as meta:
        if MIGRATIONS_BRANCH not in meta.branches():
            with contextlib.suppress(AlreadyExists):
                meta.create_branch(MIGRATIONS_BRANCH, origin=METADATA_BRANCH)
    _install_schema(gateway, database, MIGRATIONS_BRANCH)


def _install_schema(gateway: TerminusGateway, database: str, branch: str) -> None:
    installed = {
        doc["@id"]: doc
        for doc in gateway.iter_documents(graph_type="schema", branch=branch, database=database)
        if "@id" in doc
    }
    outdated = [doc for doc in METADATA_SCHEMA if installed.get(doc["@id"]) != doc]
    if not outdated:
        return
    names = ", ".join(doc["@id"] for doc in outdated)
    gateway.replace_documents(
        outdated,
        author=METADATA_AUTHOR,
        message=f"Install metadata schema: {names}",
        graph_type="schema",
        create=True,
        branch=branch,
        database=database,
    )
    logger.info("Installed metadata schema classes %s in %s@%s", names, database, branch)


@contextlib.contextmanager
def _on_metadata_db(gateway: TerminusGateway, settings: TerminusSettings) -> Iterator[TerminusGateway]:
    """``gateway`` if it is opened on the metadata database, else a temporary one that is (branch calls
    take no database argument)."""
    if gateway.database == settings.meta_database:
        yield gateway
        return
    with metadata_gateway(settings) as meta:
        yield meta


def lexical_id(class_name: str, key_value: str) -> str:
    """The id TerminusDB gives a document of a class keyed ``Lexical`` on one string field.

    The value is percent-encoded as a URI path segment (space -> %20, '/' -> %2F, '+' -> %2B).
    """
    return f"{class_name}/{quote(key_value, safe='')}"
