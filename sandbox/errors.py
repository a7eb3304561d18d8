"""Errors raised inside the sandbox and how each becomes an HTTP reply.

    Exception
     ├── ApiError               a *mapped* error: ``{"@type": <endpoint>ErrorResponse, "api:status", "api:error",
     │    │                     "api:message", "api:request_id"}``; HTTP status derived from ``api:status``
     │    └── SchemaCheckFailure  ``api:error = {"@type": "api:SchemaCheckFailure", "api:witnesses": [...]}``
     ├── GenericError           a reply produced by TerminusDB's *generic* mapper: the body is given verbatim
     │                          (no ``@type``/``api:error``), e.g. forbidden, invalid JSON, migration schema check
     └── UnhandledError         what TerminusDB does not map: HTTP 500 ``api:UnhandledErrorResponse``

The endpoint decides the ``@type`` of the envelope (``api:InsertDocumentErrorResponse`` …); the code that
raises only says what went wrong.
"""

from __future__ import annotations

from typing import Any

STATUS_CODES: dict[str, int] = {
    "api:success": 200,
    "api:failure": 400,
    "api:unauthorized": 401,
    "api:forbidden": 403,
    "api:not_found": 404,
    "api:method_not_allowed": 405,
    "api:conflict": 409,
    "api:server_error": 500,
}


class ApiError(Exception):
    """A mapped API error. ``error`` is the ``api:error`` object (it carries its own ``@type``)."""

    def __init__(self, error: dict[str, Any], message: str, status: str = "api:failure") -> None:
        super().__init__(message)
        self.error = error
        self.message = message
        self.status = status

    @property
    def http_status(self) -> int:
        return STATUS_CODES[self.status]


class SchemaCheckFailure(ApiError):
    """Validation failed; TerminusDB reports only the first witness, so callers pass one (or a few)."""

    def __init__(self, witnesses: list[dict[str, Any]]) -> None:
        super().__init__({"@type": "api:SchemaCheckFailure", "api:witnesses": witnesses}, "Schema check failure")
        self.witnesses = witnesses


class GenericError(Exception):
    """A reply whose body is fixed by TerminusDB's generic error mapper (sent as is)."""

    def __init__(self, http_status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("api:message", ""))
        self.http_status = http_status
        self.body = body


def generic_schema_check_failure(witnesses: list[dict[str, Any]]) -> GenericError:
    """The shape the migration endpoint uses when post-migration validation fails."""
    return GenericError(
        400,
        {"api:message": "Schema check failure", "api:status": "api:failure", "system:witnesses": witnesses},
    )


class UnhandledError(Exception):
    """An error TerminusDB leaves unmapped: the client sees HTTP 500 ``api:UnhandledErrorResponse``.

    ``reason`` (e.g. ``violation_of_diamond_property``) is for the sandbox's own log only; the real server
    never shows it to the client, and neither do we.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


UNHANDLED_BODY: dict[str, Any] = {
    "@type": "api:UnhandledErrorResponse",
    "api:status": "api:server_error",
    "api:message": "An internal server error occurred. Please contact the administrator.",
    "api:error": {"@type": "api:InternalServerError"},
}
