"""The error tree: who is transient, what each message tells the reader, and that errors survive pickling."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

import core.errors
from core.errors import (
    AlreadyExists,
    ApprovalTimedOut,
    AuthenticationFailed,
    BranchNotFound,
    ConfigError,
    DatabaseNotFound,
    DataVersionConflict,
    DocumentNotFound,
    LeaseHeld,
    LeaseLost,
    MigrationError,
    NotFound,
    OmsAuditError,
    PermissionDenied,
    PlanConflict,
    RequestRejected,
    SchemaCheckFailed,
    SchemaDrift,
    TerminusError,
    TerminusServerError,
    TerminusTimeout,
    TerminusUnreachable,
    UnknownTypes,
    category_of,
    is_transient,
    summarize_witnesses,
)
from core.migration_report import ApprovalSection
from tasks.approval import rejection_message

URL = "http://127.0.0.1:6363"
UNHANDLED = "api:UnhandledErrorResponse"


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (TerminusUnreachable(URL, reason="connection refused"), True),
        (TerminusTimeout(URL, timeout_seconds=3), True),
        (TerminusServerError(status=503, api_type=None, api_message=None, url=URL), True),
        (DataVersionConflict(requested="branch:aaaa", actual="branch:bbbb", url=URL), True),
        (AuthenticationFailed(URL, using_token=False), False),
        (PermissionDenied(URL, detail="Access denied"), False),
        (DatabaseNotFound("admin/x", url=URL), False),
        (BranchNotFound("dev", database="admin/x", url=URL), False),
        (DocumentNotFound("Person/a", url=URL), False),
        (SchemaCheckFailed([{"@type": "not_a_class_or_base_type"}], url=URL), False),
        (AlreadyExists("database", "admin/x", url=URL), False),
        (RequestRejected(status=400, api_type="api:SchemaOperationFailed", api_message="no", url=URL), False),
        (ConfigError("bad", variable="TERMINUS_DB_URL"), False),
        (SchemaDrift("a", "b"), False),
        (ValueError("not ours"), False),
    ],
)
def test_is_transient_only_for_failures_a_retry_can_fix(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


@pytest.mark.parametrize(
    ("child", "parent"),
    [
        (ConfigError, OmsAuditError),
        (TerminusError, OmsAuditError),
        (TerminusTimeout, TerminusUnreachable),
        (TerminusUnreachable, TerminusError),
        (DatabaseNotFound, NotFound),
        (BranchNotFound, NotFound),
        (DocumentNotFound, NotFound),
        (NotFound, TerminusError),
        (SchemaCheckFailed, TerminusError),
        (RequestRejected, TerminusError),
        (PlanConflict, MigrationError),
        (LeaseHeld, MigrationError),
        (MigrationError, OmsAuditError),
    ],
)
def test_tree_matches_the_documented_shape(child: type, parent: type) -> None:
    assert issubclass(child, parent)


def test_unreachable_says_where_and_how_to_start_a_server() -> None:
    message = str(TerminusUnreachable("http://db.example:6363", reason="connection refused"))
    assert "http://db.example:6363" in message
    assert "connection refused" in message
    assert "oms-audit sandbox" in message
    assert "python -m sandbox" in message
    assert "TERMINUS_DB_URL" in message


def test_timeout_names_the_setting_to_raise() -> None:
    error = TerminusTimeout(URL, timeout_seconds=2.5, phase="read")
    assert "2.5s" in str(error)
    assert "TERMINUS_DB_TIMEOUT_SECONDS" in str(error)


def test_authentication_hint_depends_on_the_credentials_in_use() -> None:
    assert "TERMINUS_DB_TOKEN" in str(AuthenticationFailed(URL, using_token=True))
    with_password = str(AuthenticationFailed(URL, using_token=False))
    assert "TERMINUS_DB_USER" in with_password
    assert "TERMINUS_DB_PASSWORD" in with_password


def test_permission_denied_gives_the_guides_hint() -> None:
    assert "schema:admin" in str(PermissionDenied(URL, detail="Access to admin/x is not authorised"))


def test_not_found_errors_keep_the_missing_name() -> None:
    assert DatabaseNotFound("admin/missing", url=URL).database == "admin/missing"
    assert BranchNotFound("dev", url=URL).branch == "dev"
    assert DocumentNotFound("Person/x", url=URL).document_id == "Person/x"
    assert "TERMINUS_DB_NAME" in str(DatabaseNotFound("admin/missing", url=URL))
    assert "TERMINUS_DB_BRANCH" in str(BranchNotFound("dev", url=URL))


def test_schema_check_summary_reads_the_first_witnesses() -> None:
    witnesses = [
        {
            "@type": "instance_not_cardinality_one",
            "instance": "terminusdb:///data/Person/a",
            "predicate": "terminusdb:///schema#name",
        },
        {"@type": "not_a_class_or_base_type", "class": "terminusdb:///schema#Nope"},
        {"@type": "third"},
        {"@type": "fourth"},
    ]
    error = SchemaCheckFailed(witnesses, url=URL)
    assert error.witnesses == witnesses
    assert "instance_not_cardinality_one" in str(error)
    assert "terminusdb:///schema#name" in str(error)
    assert "not_a_class_or_base_type" in str(error)
    assert "and 1 more" in error.summary
    assert "\n" not in error.summary


def test_summarize_witnesses_handles_empty_and_odd_witnesses() -> None:
    assert summarize_witnesses([]) == "no details given"
    assert summarize_witnesses(["plain text"]) == "plain text"
    long = summarize_witnesses([{"@type": "big", "document": {"x": "y" * 1000}}])
    assert len(long) <= 300


def test_data_version_conflict_shows_both_versions() -> None:
    error = DataVersionConflict(requested="branch:old1", actual="branch:new2", url=URL)
    assert "branch:old1" in str(error)
    assert "branch:new2" in str(error)
    assert "Re-read" in str(error)


def test_request_rejected_carries_the_api_type_and_message() -> None:
    error = RequestRejected(
        status=400, api_type="api:SchemaOperationFailed", api_message="The schema operation failed", url=URL
    )
    assert error.api_type == "api:SchemaOperationFailed"
    assert error.api_message == "The schema operation failed"
    assert error.status == 400
    assert "api:SchemaOperationFailed" in str(error)


@dataclass
class _Conflict:
    class_name: str
    field: str
    expected: str
    found: str


def test_plan_conflict_lists_class_field_and_both_ranges() -> None:
    error = PlanConflict(
        [
            _Conflict("Person", "_created_at", "xsd:dateTime", "xsd:string"),
            {"class_name": "Order", "field": "_updated_by", "expected": "xsd:string", "found": "xsd:integer"},
        ]
    )
    message = str(error)
    for part in ("Person._created_at", "xsd:dateTime", "xsd:string", "Order._updated_by", "xsd:integer"):
        assert part in message
    assert "dry run" in message
    assert len(error.conflicts) == 2


def test_unknown_types_lists_unknown_and_known_names() -> None:
    error = UnknownTypes(["Persn"], ["Person", "Order"])
    assert error.unknown == ["Persn"]
    assert "Persn" in str(error)
    assert "Order, Person" in str(error)


def test_migration_stops_say_what_happened_and_what_to_do() -> None:
    drift = SchemaDrift("aaa111", "bbb222")
    assert "aaa111" in str(drift)
    assert "bbb222" in str(drift)
    assert "dry run" in str(drift)
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    lease = LeaseHeld(holder="run-42 (alice)", expires_at=expires, database="admin/oms")
    assert "run-42 (alice)" in str(lease)
    assert "2030-01-02T03:04:05+00:00" in str(lease)
    assert "admin/oms" in str(lease)
    # a rejection is not an error (the run ends Cancelled): its words come from the approval record
    rejected = rejection_message(ApprovalSection(required=True, approver="bob", comment="not during business hours"))
    assert "bob" in rejected
    assert "not during business hours" in rejected
    assert "600s" in str(ApprovalTimedOut(600))


@pytest.mark.parametrize(
    "error",
    [
        DatabaseNotFound("admin/x", url=URL),
        TerminusTimeout(URL, timeout_seconds=1),
        SchemaCheckFailed([{"@type": "w"}], url=URL),
        LeaseHeld(holder="h", expires_at=datetime(2030, 1, 1, tzinfo=UTC), database="admin/oms"),
        ConfigError("bad", variable="X"),
    ],
)
def test_errors_survive_pickling_with_message_and_attributes(error: OmsAuditError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.__dict__ == error.__dict__


def _error_classes() -> list[type[OmsAuditError]]:
    return [
        value
        for value in vars(core.errors).values()
        if isinstance(value, type) and issubclass(value, OmsAuditError) and value is not OmsAuditError
    ]


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda cls: cls.__name__)
def test_every_error_class_carries_its_category_and_the_tree_shows_it(cls: type[OmsAuditError]) -> None:
    assert cls.category in ("transient", "usage", "stopped", "failed")
    line = next(line for line in (core.errors.__doc__ or "").splitlines() if f"── {cls.__name__} " in line)
    assert line.rstrip().endswith(cls.category), line


@pytest.mark.parametrize(
    ("error", "category"),
    [
        (ConfigError("bad"), "usage"),
        (AuthenticationFailed(URL, using_token=True), "usage"),
        (PermissionDenied(URL), "usage"),
        (DatabaseNotFound("admin/x", url=URL), "usage"),
        (UnknownTypes(["X"], ["Y"]), "usage"),
        (LeaseHeld(holder="h", expires_at=datetime(2030, 1, 1, tzinfo=UTC), database="d"), "stopped"),
        (LeaseLost("d", "run-1", reason="taken over"), "stopped"),
        (PlanConflict([]), "stopped"),
        (SchemaDrift("a", "b"), "stopped"),
        (TerminusServerError(status=503, url=URL), "transient"),
        (TerminusServerError(status=500, url=URL), "transient"),
        (TerminusServerError(status=500, api_type=UNHANDLED, url=URL), "failed"),
        (ApprovalTimedOut(5), "failed"),
        (KeyboardInterrupt(), "stopped"),
        (ValueError("not ours"), "failed"),
    ],
)
def test_category_of_any_exception(error: BaseException, category: str) -> None:
    assert category_of(error) == category


def test_terminusdbs_own_500_is_deterministic_not_transient() -> None:
    """violation_of_diamond_property and its kind come back as a typed 500: the same request fails again."""
    diamond = TerminusServerError(status=500, api_type=UNHANDLED, api_message="An internal server error", url=URL)
    assert not is_transient(diamond)
    assert category_of(pickle.loads(pickle.dumps(diamond))) == "failed"


def test_approval_rejected_is_gone() -> None:
    assert not hasattr(core.errors, "ApprovalRejected"), "a rejection ends the run Cancelled; it is not an error"


def test_the_service_status_reads_the_category_too() -> None:
    assert core.errors.http_status_of(TerminusServerError(status=503, url=URL)) == 503
    assert core.errors.http_status_of(ConfigError("bad")) == 400
    assert core.errors.http_status_of(SchemaDrift("a", "b")) == 409
    assert core.errors.http_status_of(ValueError("not ours")) == 500
