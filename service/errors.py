"""Errors as the service answers them: one function maps every error to an HTTP status and a JSON body.

The body is ``{"error": <kind>, "message": <what is wrong and what to do>, ...}``; 401s carry the
``reason`` (expired, wrong audience …), 503s a ``Retry-After`` header. Nothing here ever echoes a token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse

from core.audit_fields import AUDIT_FIELDS, XSD_IRI
from core.errors import (
    AccessDenied,
    AlreadyExists,
    AuditUndeliverable,
    ConfigError,
    DataVersionConflict,
    IamNotConfigured,
    IamUnavailable,
    NotFound,
    OmsAuditError,
    RequestRejected,
    SchemaCheckFailed,
    TerminusError,
    TerminusServerError,
    TerminusUnreachable,
    TokenRejected,
    WritesFrozen,
    http_status_of,
    summarize_witnesses,
)

RETRY_AFTER_SECONDS = "5"


class BadRequest(OmsAuditError):
    """The request itself is wrong (malformed JSON, not an object, no class named, id of another type …)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def error_reply(exc: Exception) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, JSON body, headers) for ``exc``: the one place that decides HTTP statuses."""
    if isinstance(exc, BadRequest):
        return exc.status, _body("bad_request" if exc.status == 400 else "too_large", str(exc)), {}
    if isinstance(exc, TokenRejected):
        return 401, {**_body("unauthorized", str(exc)), "reason": exc.reason}, {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, AccessDenied):
        return 403, {**_body("forbidden", str(exc)), "required": exc.required}, {}
    if isinstance(exc, WritesFrozen):
        return 503, {**_body("writes_frozen", str(exc)), "reason": exc.reason}, _retry()
    if isinstance(exc, IamUnavailable | IamNotConfigured):
        return 503, _body("iam_unavailable", str(exc)), _retry()
    if isinstance(exc, AuditUndeliverable):
        return 503, _body("audit_undeliverable", str(exc)), _retry()
    if isinstance(exc, SchemaCheckFailed):
        return 400, _body("schema_check_failed", schema_check_message(exc)), {}
    if isinstance(exc, NotFound):
        return 404, _body("not_found", str(exc)), {}
    if isinstance(exc, AlreadyExists):
        return 409, _body("already_exists", str(exc)), {}
    if isinstance(exc, DataVersionConflict):
        return 409, _body("conflict", str(exc)), {}
    if isinstance(exc, TerminusUnreachable | TerminusServerError):
        return 503, _body("terminusdb_unavailable", str(exc)), _retry()
    if isinstance(exc, RequestRejected) and exc.status in (400, 404, 405, 409, 413, 422):
        return 400, _body("rejected_by_terminusdb", str(exc)), {}
    if isinstance(exc, TerminusError):
        return 502, _body("terminusdb_error", str(exc)), {}
    if isinstance(exc, ConfigError):
        return 503, _body("misconfigured", str(exc)), _retry()
    if isinstance(exc, OmsAuditError):
        # Anything else of ours: the status its category gives (transient 503, usage 400, stopped 409, failed 500).
        status = http_status_of(exc)
        return status, _body("error", str(exc)), _retry() if status == 503 else {}
    return 500, _body("internal_error", "Unexpected error; the service log has the details."), {}


def schema_check_message(exc: SchemaCheckFailed) -> str:
    """TerminusDB's witnesses in a sentence, with the fix for the most common one (no audit fields yet)."""
    witnesses = [w for w in exc.witnesses if isinstance(w, Mapping)]
    for witness in witnesses:
        properties = [_short_name(p) for p in _as_list(witness.get("property"))]
        if witness.get("@type") == "unknown_property_for_type" and any(p in AUDIT_FIELDS for p in properties):
            return (
                f"Class '{_short_name(witness.get('type'))}' has no audit fields yet: run the audit-fields migration "
                "first (`oms-audit migrate --execute`), then retry."
            )
    said = "; ".join(_describe_witness(w) for w in witnesses[:3]) or exc.summary
    return f"TerminusDB refused the document: {said}. Fix the document to match the schema and retry."


def _describe_witness(witness: Mapping[str, Any]) -> str:
    kind = witness.get("@type")
    if kind == "ascribed_type_does_not_exist":
        return f"class '{_short_name(witness.get('ascribed_type'))}' does not exist in the schema"
    if kind == "unknown_property_for_type":
        names = ", ".join(_short_name(p) for p in _as_list(witness.get("property")))
        return f"class '{_short_name(witness.get('type'))}' has no property {names}"
    if kind is None:  # {field: {inner witness}}
        parts = []
        for key, inner in witness.items():
            if isinstance(inner, Mapping):
                value = json.dumps(inner.get("value"), default=str)[:80]
                expected = _short_name(inner.get("type")) or "?"
                parts.append(f"field '{_short_name(key)}': {value} is not a valid {expected} ({inner.get('@type')})")
        if parts:
            return "; ".join(parts)
    return summarize_witnesses([{k: v for k, v in witness.items() if k != "document"}])


def _short_name(iri: Any) -> str:
    text = str(iri or "")
    if text.startswith(XSD_IRI):
        return "xsd:" + text[len(XSD_IRI) :]
    return text.rsplit("#", 1)[-1]


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def _body(kind: str, message: str) -> dict[str, Any]:
    return {"error": kind, "message": message}


def _retry() -> dict[str, str]:
    return {"Retry-After": RETRY_AFTER_SECONDS}


def json_error(exc: Exception) -> JSONResponse:
    status, body, headers = error_reply(exc)
    return JSONResponse(body, status_code=status, headers=headers)
