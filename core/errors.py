"""Every failure oms-audit raises on purpose, what to do about each, and what kind of failure it is.

    OmsAuditError                                                                    category
     ├── ConfigError                  bad or missing configuration                      usage
     ├── TerminusError                anything from TerminusDB; .url (never credentials), failed
     │    │                           .status (int | None), .api_type, .api_message
     │    ├── TerminusUnreachable     connection refused / reset / dropped, DNS failure transient
     │    │    └── TerminusTimeout    connect or read timeout                           transient
     │    ├── AuthenticationFailed    401: wrong user/password or TERMINUS_DB_TOKEN     usage
     │    ├── PermissionDenied        403: the database user needs schema:admin         usage
     │    ├── NotFound                404                                               failed
     │    │    ├── DatabaseNotFound   .database                                         usage
     │    │    ├── BranchNotFound     .branch                                           usage
     │    │    └── DocumentNotFound   .document_id                                      failed
     │    ├── SchemaCheckFailed       400 schema check: .witnesses summarised           failed
     │    ├── DataVersionConflict     optimistic concurrency lost (data version moved)  transient
     │    ├── AlreadyExists           document / database / branch already there        failed
     │    ├── RequestRejected         any other 4xx (e.g. api:SchemaOperationFailed)    failed
     │    └── TerminusServerError     5xx: 502/503/504 or an untyped 500                transient
     │                                TerminusDB's own typed 500 (api:UnhandledErrorResponse,
     │                                e.g. violation_of_diamond_property): deterministic failed
     ├── MigrationError               the migration or rollback stopped on purpose      failed
     │    ├── PlanConflict            a class has an audit field with another range     stopped
     │    ├── UnknownTypes            include/exclude names a type the schema lacks     usage
     │    ├── SchemaDrift             the schema changed since the plan was approved    stopped
     │    ├── PlanRaced               the schema changed while the plan was being timed stopped
     │    ├── LeaseHeld               another run holds the database's lease            stopped
     │    ├── LeaseLost               our lease was taken over or removed               stopped
     │    ├── RunInterrupted          stopped from outside (Ctrl-C) between two steps   stopped
     │    ├── ApprovalTimedOut        nobody answered in time                           failed
     │    ├── StaleApproval           the approval was given for another plan           stopped
     │    ├── MigrationValidationFailed  after patching, a validation check failed      failed
     │    └── RollbackRefused         a rollback would be unsafe or meaningless         stopped
     ├── AuditError                   audit delivery, the DLQ, its metrics and alerts   failed
     │    ├── AuditSinkUnavailable    the audit sink cannot be reached (events go to the DLQ) transient
     │    ├── DlqWriteFailed          a DLQ file cannot be written: missing, read-only, full transient
     │    ├── DlqUnavailable          the DLQ folder cannot be read                     usage
     │    ├── MetricsPushFailed       the Pushgateway is down or refused the push       failed
     │    ├── AlertDeliveryFailed     the alert webhook failed (its URL is never shown) failed
     │    └── AuditUndeliverable      neither the sink nor the DLQ took the event: write refused transient
     ├── IdentityError               a caller's token could not be made a principal    usage
     │    ├── TokenRejected          a verdict: not valid (.reason: expired, audience…) usage
     │    ├── IamUnavailable         no verdict: IAM timed out, 5xx or nonsense        transient
     │    └── IamNotConfigured       neither IAM_JWKS_URL nor IAM_SERVICE_URL is set   usage
     ├── AccessDenied                verified, but lacks the role it needs (.required) usage
     └── WritesFrozen                a rollback holds the write freeze; reads go on    transient

The category is the one classification everything that reacts to an error reads (DESIGN §8):
``transient`` — retrying the same call may succeed (:func:`is_transient`, the retry policies; HTTP 503);
``usage`` — the command or its configuration must change (CLI exit 2, HTTP 400); ``stopped`` — the run
stopped on purpose and changed nothing it should not have (exit 3, history ``stopped``, HTTP 409);
``failed`` — anything else (exit 1, HTTP 500). :func:`category_of` answers for any exception, ours or not.
Messages name what is wrong and what to do; none of them ever carries a token or a password.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "HTTP_STATUS",
    "AccessDenied",
    "AlertDeliveryFailed",
    "AlreadyExists",
    "ApprovalTimedOut",
    "AuditError",
    "AuditSinkUnavailable",
    "AuditUndeliverable",
    "AuthenticationFailed",
    "BranchNotFound",
    "ConfigError",
    "DataVersionConflict",
    "DatabaseNotFound",
    "DlqUnavailable",
    "DlqWriteFailed",
    "DocumentNotFound",
    "ErrorCategory",
    "IamNotConfigured",
    "IamUnavailable",
    "IdentityError",
    "LeaseHeld",
    "LeaseLost",
    "MetricsPushFailed",
    "MigrationError",
    "MigrationValidationFailed",
    "NotFound",
    "OmsAuditError",
    "PermissionDenied",
    "PlanConflict",
    "PlanRaced",
    "RequestRejected",
    "RollbackRefused",
    "RunInterrupted",
    "SchemaCheckFailed",
    "SchemaDrift",
    "StaleApproval",
    "TerminusError",
    "TerminusServerError",
    "TerminusTimeout",
    "TerminusUnreachable",
    "TokenRejected",
    "UnknownTypes",
    "WritesFrozen",
    "category_of",
    "http_status_of",
    "is_transient",
    "summarize_witnesses",
]

ErrorCategory = Literal["transient", "usage", "stopped", "failed"]
"""What kind of failure an error is; see the module docstring."""

SANDBOX_HINT = (
    "Start a local server with `oms-audit sandbox` (or `python -m sandbox --port 6363`), "
    "or set TERMINUS_DB_URL to a running TerminusDB."
)


def _clause(text: str | None) -> str:
    """``": text"`` without a trailing period (the caller's sentence supplies one), or nothing."""
    text = (text or "").strip().rstrip(".")
    return f": {text}" if text else ""


def _rebuild(cls: type[OmsAuditError], args: tuple[Any, ...], state: dict[str, Any]) -> OmsAuditError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class OmsAuditError(Exception):
    """Base of every error oms-audit raises on purpose."""

    #: what kind of failure this is (a class default; an instance may be more precise, see TerminusServerError)
    category: ErrorCategory = "failed"

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take keyword arguments, which Exception's default pickling loses; Prefect may pickle
        # a failed task's exception, so rebuild from the message and attributes instead of calling __init__.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class ConfigError(OmsAuditError):
    """Configuration is missing or malformed; ``variable`` names the setting when known."""

    category: ErrorCategory = "usage"

    def __init__(self, message: str, *, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


# ----------------------------------------------------------------------------------------------------
# TerminusDB


class TerminusError(OmsAuditError):
    """Something went wrong talking to TerminusDB."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        api_type: str | None = None,
        api_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.api_type = api_type
        self.api_message = api_message


class TerminusUnreachable(TerminusError):
    """No usable reply: refused, reset, dropped mid-reply, or the name does not resolve."""

    category: ErrorCategory = "transient"

    def __init__(self, url: str, *, reason: str) -> None:
        super().__init__(f"Cannot reach TerminusDB at {url} ({reason}). {SANDBOX_HINT}", url=url)
        self.reason = reason


class TerminusTimeout(TerminusUnreachable):
    """The server did not answer in time."""

    def __init__(self, url: str, *, timeout_seconds: float, phase: str = "read") -> None:
        TerminusError.__init__(
            self,
            f"TerminusDB at {url} did not answer within {timeout_seconds:g}s ({phase} timeout). "
            "Raise TERMINUS_DB_TIMEOUT_SECONDS or check that the server is healthy.",
            url=url,
        )
        self.reason = f"{phase} timeout"
        self.timeout_seconds = timeout_seconds
        self.phase = phase


class AuthenticationFailed(TerminusError):
    """401: the credentials were not accepted."""

    category: ErrorCategory = "usage"

    def __init__(self, url: str, *, using_token: bool, api_message: str | None = None) -> None:
        fix = (
            "Check TERMINUS_DB_TOKEN (it may have expired)."
            if using_token
            else "Check TERMINUS_DB_USER and TERMINUS_DB_PASSWORD, or set TERMINUS_DB_TOKEN."
        )
        super().__init__(
            f"TerminusDB at {url} rejected the credentials (HTTP 401). {fix}",
            url=url,
            status=401,
            api_type="api:IncorrectAuthenticationError",
            api_message=api_message,
        )
        self.using_token = using_token


class PermissionDenied(TerminusError):
    """403: authenticated, but not allowed to do this."""

    category: ErrorCategory = "usage"

    def __init__(self, url: str, *, detail: str | None = None) -> None:
        said = _clause(detail)
        super().__init__(
            f"TerminusDB at {url} refused the operation (HTTP 403){said}. "
            "The database user needs schema:admin (and instance read/write) on the database; "
            "grant the role or use an account that has it.",
            url=url,
            status=403,
            api_message=detail,
        )


class NotFound(TerminusError):
    """404: the database, branch or document does not exist."""


class DatabaseNotFound(NotFound):
    category: ErrorCategory = "usage"

    def __init__(self, database: str, *, url: str | None = None, api_message: str | None = None) -> None:
        super().__init__(
            f"Database '{database}' does not exist on {url or 'the server'}. Create it first, or set "
            "TERMINUS_DB_NAME (and TERMINUS_DB_TEAM) to an existing database.",
            url=url,
            status=404,
            api_type="api:UnknownDatabase",
            api_message=api_message,
        )
        self.database = database


class BranchNotFound(NotFound):
    category: ErrorCategory = "usage"

    def __init__(
        self,
        branch: str,
        *,
        database: str | None = None,
        url: str | None = None,
        api_message: str | None = None,
    ) -> None:
        where = f" in database '{database}'" if database else ""
        super().__init__(
            f"Branch '{branch}' does not exist{where}. Set TERMINUS_DB_BRANCH to an existing branch or create it.",
            url=url,
            status=404,
            api_message=api_message,
        )
        self.branch = branch
        self.database = database


class DocumentNotFound(NotFound):
    def __init__(
        self,
        document_id: str,
        *,
        database: str | None = None,
        url: str | None = None,
        api_message: str | None = None,
    ) -> None:
        where = f" in database '{database}'" if database else ""
        super().__init__(
            f"Document '{document_id}' does not exist{where}. Check the id (e.g. 'Person/alice') and the branch.",
            url=url,
            status=404,
            api_type="api:DocumentNotFound",
            api_message=api_message,
        )
        self.document_id = document_id
        self.database = database


def summarize_witnesses(witnesses: list[Any], *, limit: int = 3) -> str:
    """One readable line for the first ``limit`` schema-check witnesses."""
    parts = [_summarize_witness(w) for w in witnesses[:limit]]
    more = len(witnesses) - limit
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts) if parts else "no details given"


def _summarize_witness(witness: Any) -> str:
    if not isinstance(witness, Mapping):
        return str(witness)[:200]
    kind = witness.get("@type", "witness")
    details = []
    for key, value in witness.items():
        if key == "@type":
            continue
        if isinstance(value, Mapping | list):
            value = _compact(value)
        details.append(f"{key}={value}")
    text = f"{kind}" + (f" ({', '.join(details)})" if details else "")
    return text if len(text) <= 300 else text[:297] + "..."


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


class SchemaCheckFailed(TerminusError):
    """TerminusDB's schema check refused the change; ``witnesses`` says why."""

    def __init__(self, witnesses: list[Any], *, url: str | None = None, status: int | None = 400) -> None:
        self.summary = summarize_witnesses(witnesses)
        super().__init__(
            f"TerminusDB schema check failed: {self.summary}. Make the documents and the schema agree "
            "(e.g. fill required fields or use Optional) and try again.",
            url=url,
            status=status,
            api_type="api:SchemaCheckFailure",
        )
        self.witnesses = witnesses


class DataVersionConflict(TerminusError):
    """The branch moved between our read and our write (``TerminusDB-Data-Version`` mismatch)."""

    category: ErrorCategory = "transient"

    def __init__(self, *, requested: str | None = None, actual: str | None = None, url: str | None = None) -> None:
        versions = f" (expected {requested}, now {actual})" if requested or actual else ""
        super().__init__(
            f"The branch changed since it was read{versions}. Re-read the data and try again.",
            url=url,
            status=400,
            api_type="api:DataVersionMismatch",
        )
        self.requested = requested
        self.actual = actual


class AlreadyExists(TerminusError):
    """The database, branch or document to create is already there."""

    def __init__(
        self, kind: str, name: str, *, url: str | None = None, api_type: str | None = None, status: int = 400
    ) -> None:
        super().__init__(
            f"{kind.capitalize()} '{name}' already exists. Use it as it is, pick another name, or delete it first.",
            url=url,
            status=status,
            api_type=api_type,
        )
        self.kind = kind
        self.name = name


class RequestRejected(TerminusError):
    """Any other 4xx: TerminusDB understood the request and said no."""

    def __init__(self, *, status: int, api_type: str | None, api_message: str | None, url: str | None = None) -> None:
        kind = api_type or "an error"
        said = _clause(api_message)
        super().__init__(
            f"TerminusDB rejected the request (HTTP {status}, {kind}){said}. Fix the request; retrying will not help.",
            url=url,
            status=status,
            api_type=api_type,
            api_message=api_message,
        )


#: how TerminusDB types its own 500 (the reply's ``@type``, or the ``api:error`` inside it)
DETERMINISTIC_SERVER_ERRORS = frozenset({"api:UnhandledErrorResponse", "api:InternalServerError"})


class TerminusServerError(TerminusError):
    """5xx: the server failed; often temporary, sometimes an unmapped error of a bad request."""

    category: ErrorCategory = "transient"

    def __init__(
        self,
        *,
        status: int,
        api_type: str | None = None,
        api_message: str | None = None,
        url: str | None = None,
    ) -> None:
        said = _clause(api_message)
        # TerminusDB answers an error it has no mapping for (e.g. violation_of_diamond_property) with its own
        # typed 500: the same request fails the same way again. Gateways and proxies answer 502/503/504,
        # or an untyped 500, when the server is away for a moment: those are worth a retry.
        deterministic = status == 500 and api_type in DETERMINISTIC_SERVER_ERRORS
        advice = (
            "TerminusDB could not carry out this request (its own unmapped error, e.g. a diamond-property "
            "violation); retrying will not help: check the server log for the cause."
            if deterministic
            else "Retry later; if it persists, check the server log (an unmapped error can also mean the "
            "request itself is invalid)."
        )
        super().__init__(
            f"TerminusDB at {url or 'the server'} failed (HTTP {status}){said}. {advice}",
            url=url,
            status=status,
            api_type=api_type,
            api_message=api_message,
        )
        self.category = "failed" if deterministic else "transient"


# ----------------------------------------------------------------------------------------------------
# Migration


class MigrationError(OmsAuditError):
    """The migration (or rollback) stopped on purpose; each subclass says whether anything changed."""


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


class PlanConflict(MigrationError):
    """A class already has an audit field with another range; the plan is blocked.

    ``conflicts`` are objects or dicts with ``class_name``, ``field``, ``expected`` and ``found``.
    """

    category: ErrorCategory = "stopped"

    def __init__(self, conflicts: list[Any]) -> None:
        listed = "; ".join(
            f"{_field(c, 'class_name')}.{_field(c, 'field')} (expected {_field(c, 'expected')}, "
            f"found {_field(c, 'found')})"
            for c in conflicts
        )
        super().__init__(
            f"The plan is blocked: {len(conflicts)} audit field(s) already exist with another range: "
            f"{listed}. "
            "Change or remove those fields in the schema (or exclude the classes), then re-run the dry run."
        )
        self.conflicts = conflicts


class UnknownTypes(MigrationError):
    """include/exclude named types the schema does not have."""

    category: ErrorCategory = "usage"

    def __init__(self, unknown: Iterable[str], known: Iterable[str]) -> None:
        self.unknown = sorted(unknown)
        self.known = sorted(known)
        shown = ", ".join(self.known[:20]) + (" ..." if len(self.known) > 20 else "")
        super().__init__(
            f"Unknown type(s): {', '.join(self.unknown)}. Known types: {shown or '(none)'}. "
            "Fix the names in --include/--exclude."
        )


class SchemaDrift(MigrationError):
    """The schema or head commit changed since the plan was approved."""

    category: ErrorCategory = "stopped"

    def __init__(self, expected_fingerprint: str, actual_fingerprint: str, *, changes: Iterable[str] = ()) -> None:
        changed = list(changes)
        what = f" ({'; '.join(changed[:5])}{'; …' if len(changed) > 5 else ''})" if changed else ""
        super().__init__(
            f"The schema changed since the plan was approved{what} (plan fingerprint {expected_fingerprint}, "
            f"now {actual_fingerprint}). Nothing was changed; re-run the dry run and approve the new plan."
        )
        self.expected_fingerprint = expected_fingerprint
        self.actual_fingerprint = actual_fingerprint
        self.changes = changed


class PlanRaced(MigrationError):
    """The schema changed between the analysis and the plan's timing call (e.g. another run was patching)."""

    category: ErrorCategory = "stopped"

    def __init__(
        self, database: str, head_before: str, head_now: str, *, changed_by: str | None = None, still_running: bool
    ) -> None:
        by = f" by {changed_by}" if changed_by else ""
        after = " once that run has finished" if still_running else ""
        super().__init__(
            f"The schema of database '{database}' was changed{by} while this run was making its plan (head "
            f"commit {head_before[:12]}, now {head_now[:12]}): the plan no longer matches the schema. Nothing was "
            f"changed; run the dry run again{after}."
        )
        self.database = database
        self.changed_by = changed_by


class LeaseHeld(MigrationError):
    """Another migration run holds this database's lease."""

    category: ErrorCategory = "stopped"

    def __init__(self, holder: str, expires_at: datetime, database: str) -> None:
        super().__init__(
            f"Another migration run ({holder}) holds the lease on database '{database}' until "
            f"{expires_at.isoformat()}. Wait for it to finish, or retry after the lease expires."
        )
        self.holder = holder
        self.expires_at = expires_at
        self.database = database


class LeaseLost(MigrationError):
    """Our lease was taken over by another run or removed; the work it protected must stop."""

    category: ErrorCategory = "stopped"

    def __init__(self, database: str, run_id: str, *, reason: str) -> None:
        super().__init__(
            f"Run {run_id} lost the migration lease on database '{database}': {reason}. "
            "Stop this run; check the run history for what was applied and re-run to resume."
        )
        self.database = database
        self.run_id = run_id
        self.reason = reason


class RunInterrupted(MigrationError):
    """The run was asked to stop (Ctrl-C at the terminal); it stopped between two steps, nothing half-done."""

    category: ErrorCategory = "stopped"

    def __init__(self, how: str, *, applied: int | None = None, total: int | None = None) -> None:
        done = f" {applied} of {total} types were patched before it stopped." if total else ""
        super().__init__(
            f"The run was interrupted ({how}) and stopped after the step in progress.{done} "
            "Run the same command again: it finishes the job and validates the result."
        )
        self.how = how
        self.applied = applied
        self.total = total


class ApprovalTimedOut(MigrationError):
    """Nobody answered the approval request in time."""

    def __init__(self, timeout_seconds: float) -> None:
        super().__init__(
            f"No approval arrived within {timeout_seconds:g}s. Nothing was changed; start the run again "
            "and make sure an approver is available."
        )
        self.timeout_seconds = timeout_seconds


class StaleApproval(MigrationError):
    """The approval answered a plan with another fingerprint than the one about to run."""

    category: ErrorCategory = "stopped"

    def __init__(self, *, approved: str, current: str) -> None:
        super().__init__(
            f"The approval was given for plan {approved}, but the plan to run is {current}. "
            "Nothing was changed; review and approve the current plan."
        )
        self.approved = approved
        self.current = current


class MigrationValidationFailed(MigrationError):
    """After the change, validation found problems (the change itself was committed)."""

    def __init__(self, failed_checks: list[str]) -> None:
        super().__init__(
            f"Validation failed after the change: {', '.join(failed_checks) or 'unknown check'}. "
            "Read the report's validation section; roll back if the schema is not as planned."
        )
        self.failed_checks = failed_checks


class RollbackRefused(MigrationError):
    """The requested rollback would be unsafe or would do nothing; the message says what to do instead."""

    category: ErrorCategory = "stopped"

    def __init__(self, message: str) -> None:
        super().__init__(message)


# ----------------------------------------------------------------------------------------------------
# Audit delivery, the DLQ, metrics and alerts


class AuditError(OmsAuditError):
    """Audit events could not go where they should; each subclass says what was kept."""


class AuditSinkUnavailable(AuditError):
    """The audit sink cannot be reached at all (transient); the caller keeps the events (DLQ)."""

    category: ErrorCategory = "transient"

    def __init__(self, sink: str, *, reason: str) -> None:
        super().__init__(
            f"Cannot deliver audit events to {sink} ({reason}). The events stay in the dead-letter queue; "
            "check that the sink is up, then run `oms-audit dlq sweep` again."
        )
        self.sink = sink
        self.reason = reason


class DlqWriteFailed(AuditError):
    """A DLQ file cannot be written, so the events it should hold were not kept."""

    category: ErrorCategory = "transient"

    def __init__(self, path: str, *, reason: str) -> None:
        super().__init__(
            f"Cannot write the dead-letter queue file {path} ({reason}). Create the folder or fix its "
            "permissions / free disk space, or point OMS_AUDIT_DLQ_DIR at a writable folder."
        )
        self.path = path
        self.reason = reason


class DlqUnavailable(AuditError):
    """The DLQ folder cannot be read."""

    category: ErrorCategory = "usage"

    def __init__(self, path: str, *, reason: str) -> None:
        super().__init__(
            f"Cannot use the dead-letter queue folder {path} ({reason}). Pass --dir or set OMS_AUDIT_DLQ_DIR "
            "to the folder the application writes its audit_dlq_*.jsonl files to."
        )
        self.path = path
        self.reason = reason


class MetricsPushFailed(AuditError):
    """The Pushgateway did not take the sweep's metrics; the sweep's work itself is complete."""

    category: ErrorCategory = "failed"

    def __init__(self, url: str, *, reason: str) -> None:
        super().__init__(
            f"Could not push DLQ metrics to the Pushgateway at {url} ({reason}). No DLQ data was lost; check "
            "PROMETHEUS_PUSHGATEWAY_URL and that the Pushgateway is up (the next sweep pushes again)."
        )
        self.url = url
        self.reason = reason


class AlertDeliveryFailed(AuditError):
    """The alert webhook did not take a notification; it is sent again by the next sweep."""

    category: ErrorCategory = "failed"

    def __init__(self, *, reason: str) -> None:
        super().__init__(
            f"Could not deliver the DLQ alert to DLQ_ALERT_WEBHOOK ({reason}). No DLQ data was lost; the "
            "alert is sent again by the next sweep. Check the webhook receiver."
        )
        self.reason = reason


# ----------------------------------------------------------------------------------------------------
# Write path: identity, audit delivery, the write freeze


class IdentityError(OmsAuditError):
    """The caller's token could not be turned into a verified principal."""

    category: ErrorCategory = "usage"


class TokenRejected(IdentityError):
    """A verdict: the token is not acceptable. ``reason`` is short and safe to show (never the token)."""

    category: ErrorCategory = "usage"

    def __init__(self, reason: str) -> None:
        super().__init__(f"The token was rejected: {reason}. Get a fresh token from the IAM service and retry.")
        self.reason = reason


class IamUnavailable(IdentityError):
    """No verdict could be had: IAM (or its JWKS) timed out, failed or answered something unreadable."""

    category: ErrorCategory = "transient"

    def __init__(self, url: str, *, reason: str) -> None:
        super().__init__(
            f"Cannot verify tokens: the IAM service at {url} {reason}. Retry later; if it persists, check "
            "IAM_SERVICE_URL / IAM_VERIFICATION_ENDPOINT (or IAM_JWKS_URL) and the IAM service's health."
        )
        self.url = url
        self.reason = reason


class IamNotConfigured(IdentityError):
    """No verifier is configured, so no token can be accepted (there are no unauthenticated writes)."""

    category: ErrorCategory = "usage"

    def __init__(self) -> None:
        super().__init__(
            "IAM is not configured: set IAM_JWKS_URL (with IAM_ISSUER and IAM_AUDIENCE) or IAM_SERVICE_URL; "
            "until then every token is refused."
        )


class AccessDenied(OmsAuditError):
    """The principal is verified but lacks what the operation requires (a role, or being a service account)."""

    category: ErrorCategory = "usage"

    def __init__(self, what: str, *, required: str) -> None:
        super().__init__(f"{what} requires {required}. Ask the IAM team for a token that has it.")
        self.required = required


class AuditUndeliverable(AuditError):
    """The audit event could be stored neither in the sink nor in the DLQ, so the write it records is refused."""

    category: ErrorCategory = "transient"

    def __init__(self, *, sink_error: str, dlq_error: str) -> None:
        super().__init__(
            f"The audit event could not be stored (audit sink: {sink_error}; DLQ: {dlq_error}). The write was "
            "not kept. Make the audit sink reachable or OMS_AUDIT_DLQ_DIR writable (and not full), then retry."
        )
        self.sink_error = sink_error
        self.dlq_error = dlq_error


class WritesFrozen(OmsAuditError):
    """A rollback (or an operator) froze writes; reads keep working."""

    category: ErrorCategory = "transient"

    def __init__(self, *, reason: str, set_by: str | None = None) -> None:
        by = f" by {set_by}" if set_by else ""
        super().__init__(
            f"Writes are frozen{by}: {reason}. Retry after the rollback ends (`oms-audit freeze status` shows "
            "the freeze; `oms-audit freeze off` clears it)."
        )
        self.reason = reason
        self.set_by = set_by


def category_of(exc: BaseException) -> ErrorCategory:
    """The category of any exception: ours carry it; an interrupt is ``stopped``; anything else ``failed``."""
    if isinstance(exc, OmsAuditError):
        return exc.category
    if isinstance(exc, KeyboardInterrupt):
        return "stopped"
    return "failed"


#: the HTTP status the service answers for each category (the CLI's exit codes are in cli.outcome)
HTTP_STATUS: dict[ErrorCategory, int] = {"transient": 503, "usage": 400, "stopped": 409, "failed": 500}


def http_status_of(exc: BaseException) -> int:
    return HTTP_STATUS[category_of(exc)]


def is_transient(exc: BaseException) -> bool:
    """True when retrying the same call may succeed (used as the retry policies' condition)."""
    return category_of(exc) == "transient"
