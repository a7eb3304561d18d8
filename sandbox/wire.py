"""Request/response values and the wire-level rules shared by every endpoint.

Keeping body decoding (gzip/deflate, JSON, duplicate keys, document streams) and error rendering in one place
makes every endpoint fail in exactly the way TerminusDB's generic layer does.
"""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

from sandbox.errors import UNHANDLED_BODY, ApiError, GenericError, UnhandledError

JSON_TYPE = "application/json; charset=UTF-8"
STREAM_TYPE = "application/json; stream=true; charset=UTF-8"
DATA_VERSION_HEADER = "TerminusDB-Data-Version"


@dataclass
class Request:
    """One decoded HTTP request; ``body`` is already inflated (gzip/deflate)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def has_body(self) -> bool:
        return bool(self.body.strip())

    def json_body(self) -> Any:
        """The body as one JSON value (``None`` when empty); invalid JSON -> the generic 400 reply."""
        if not self.has_body:
            return None
        return parse_json(self.body)

    def json_object_body(self) -> dict[str, Any] | None:
        """Body used as a parameter carrier: must be a JSON object when present."""
        value = self.json_body()
        if value is None or isinstance(value, dict):
            return value
        raise invalid_json(self.body)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str | None = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    drop_connection: bool = False
    chunked: bool = False  # sent with ``Transfer-Encoding: chunked`` (document streams, like TerminusDB)


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, dump_json(value), JSON_TYPE, dict(headers or {}))


def dump_json(value: Any, pretty: bool = False) -> bytes:
    if pretty:
        return json.dumps(value, ensure_ascii=False, indent=4).encode()
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def invalid_json(raw: bytes) -> GenericError:
    return GenericError(
        400,
        {
            "api:status": "api:failure",
            "api:message": "Submitted object was not valid JSON",
            "system:object": raw.decode("utf-8", errors="replace"),
        },
    )


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates)


def _duplicate_field(key: str) -> GenericError:
    return GenericError(
        400,
        {
            "@type": "api:DuplicateField",
            "api:status": "api:failure",
            "api:message": f"Duplicate field in request: {key}",
        },
    )


def parse_json(raw: bytes) -> Any:
    """Exactly one JSON value; invalid JSON and duplicate keys get TerminusDB's generic replies."""
    try:
        text = raw.decode("utf-8")
        value, end = _DECODER.raw_decode(text.lstrip())
        if text.lstrip()[end:].strip():
            raise ValueError("trailing data")
        return value
    except _DuplicateKey as dup:
        raise _duplicate_field(dup.key) from None
    except ValueError:
        raise invalid_json(raw) from None


def parse_json_stream(raw: bytes) -> list[Any]:
    """Whitespace-separated JSON values (document bodies); top-level arrays are flattened one level."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid_json(raw) from None
    values: list[Any] = []
    index, length = 0, len(text)
    try:
        while True:
            while index < length and text[index].isspace():
                index += 1
            if index >= length:
                break
            value, index = _DECODER.raw_decode(text, index)
            if isinstance(value, list):
                values.extend(value)
            else:
                values.append(value)
    except _DuplicateKey as dup:
        raise _duplicate_field(dup.key) from None
    except ValueError:
        raise invalid_json(raw) from None
    return values


def inflate(body: bytes, encoding: str | None) -> bytes:
    """Undo ``Content-Encoding`` (the Python client gzips document bodies above 1024 bytes)."""
    if not encoding or not body:
        return body
    encoding = encoding.strip().lower()
    try:
        if encoding in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if encoding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
    except (OSError, EOFError, zlib.error):
        raise GenericError(
            400,
            {
                "api:status": "api:failure",
                "api:message": f"Request body could not be decoded with Content-Encoding '{encoding}'",
            },
        ) from None
    if encoding == "identity":
        return body
    raise GenericError(
        400,
        {"api:status": "api:failure", "api:message": f"Unsupported Content-Encoding '{encoding}'"},
    )


def error_response(exc: Exception, error_type: str, request: Request | None = None) -> Response:
    """Render an exception the way TerminusDB's error mappers do (``error_type`` = the endpoint's envelope)."""
    if isinstance(exc, ApiError):
        body: dict[str, Any] = {
            "@type": error_type,
            "api:status": exc.status,
            "api:error": exc.error,
            "api:message": exc.message,
            "api:request_id": str(uuid.uuid4()),
        }
        trace = _trace_id(request)
        if trace:
            body["api:trace_id"] = trace
        return json_response(body, exc.http_status)
    if isinstance(exc, GenericError):
        return json_response(exc.body, exc.http_status)
    if isinstance(exc, UnhandledError):
        return json_response(UNHANDLED_BODY, 500)
    raise exc


def _trace_id(request: Request | None) -> str | None:
    if request is None:
        return None
    parent = request.header("traceparent")
    if not parent:
        return None
    parts = parent.split("-")
    return parts[1] if len(parts) >= 2 else None


def require_json_content_type(request: Request) -> None:
    """TerminusDB's check on JSON-reading endpoints: a missing or non-JSON ``Content-Type`` is refused
    before anything else (even before the database is looked up)."""
    content_type = request.header("content-type")
    if content_type is None:
        raise GenericError(
            400,
            {
                "@type": "api:MissingContentTypeErrorResponse",
                "api:status": "api:failure",
                "api:message": "Missing 'Content-Type' header. Expected value: application/json",
            },
        )
    if not content_type.strip().lower().startswith("application/json"):
        raise GenericError(
            400,
            {
                "@type": "api:BadContentTypeErrorResponse",
                "api:status": "api:failure",
                "api:message": f"Bad 'Content-Type' header. Expected value: application/json. Found: {content_type}",
            },
        )


def internal_error(exc: BaseException) -> Response:
    """The reply to a failure of the sandbox itself (a bug, not a TerminusDB error): HTTP 500 with a JSON body.

    Only the exception's class is named: its text could echo request data.
    """
    return json_response(
        {
            "@type": "api:ErrorResponse",
            "api:status": "api:server_error",
            "api:error": {"@type": "api:InternalServerError"},
            "api:message": f"The sandbox failed while handling this request ({type(exc).__name__}); "
            "this is a bug in the sandbox, not a TerminusDB error.",
        },
        500,
    )


def not_found(path: str) -> Response:
    return json_response(
        {"api:status": "api:not_found", "api:path": path, "api:message": f"Path not found: {path}"}, 404
    )


def method_not_allowed(method: str, path: str) -> Response:
    return json_response(
        {
            "api:status": "api:method_not_allowed",
            "api:message": f"Method {method} not allowed for path {path}",
        },
        405,
    )
