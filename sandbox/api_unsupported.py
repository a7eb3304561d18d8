"""Routes TerminusDB serves and the sandbox does not implement (WOQL, optimize, rebase, ...).

They exist so that a client meets TerminusDB's routing: an unsupported method on such a route is 405, a
JSON-reading route refuses a missing ``Content-Type`` or invalid JSON exactly as TerminusDB does, and only
then the request is answered with a clear "not supported by the sandbox" error (HTTP 501) instead of the
404 a client would never see from a real server.
"""

from __future__ import annotations

from sandbox.context import Call
from sandbox.errors import GenericError
from sandbox.wire import Response, require_json_content_type

NOT_SUPPORTED_STATUS = 501


def not_supported_error(method: str, path: str) -> GenericError:
    return GenericError(
        NOT_SUPPORTED_STATUS,
        {
            "@type": "api:ErrorResponse",
            "api:status": "api:failure",
            "api:error": {"@type": "api:NotSupportedBySandbox", "api:method": method, "api:path": path},
            "api:message": f"{method} {path} is a TerminusDB endpoint that the sandbox does not implement; "
            "run this against a real TerminusDB server.",
        },
    )


def not_supported(call: Call) -> Response:
    """The endpoint exists in TerminusDB but not here."""
    raise not_supported_error(call.request.method, call.request.path)


def json_not_supported(call: Call) -> Response:
    """Like :func:`not_supported`, after TerminusDB's JSON checks (content type first, then the body)."""
    require_json_content_type(call.request)
    call.request.json_body()
    raise not_supported_error(call.request.method, call.request.path)
