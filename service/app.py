"""The guide's HTTP API: author-tracked object writes, the audit trail, the service-account check, metrics.

Every write is: verify the caller's token → refuse while writes are frozen → stamp → write to TerminusDB
with the principal as the commit author → deliver the audit event (sink, else DLQ). The client gets its
answer only when the event is durable; if it could be stored nowhere, the write is undone and the client
gets 503 (an unaudited write never succeeds). Denied requests are audited too, without the token.

All endpoints are async; TerminusDB is reached through :class:`~core.terminus_async.AsyncDocumentClient`
so requests run concurrently, and audit events of concurrent requests are delivered together.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from core.audit import Actor, AuditEvent
from core.audit_async import AsyncAuditSink, open_async_audit_sink
from core.audit_delivery import AuditEmitter
from core.dlq import DeadLetterQueue
from core.errors import AccessDenied, IdentityError, OmsAuditError, TerminusError, WritesFrozen
from core.identity import Principal, TokenVerifier, bearer_token, open_verifier
from core.metadata_db import ensure_metadata_db, metadata_gateway
from core.settings import (
    AuditSinkSettings,
    DlqSettings,
    IamSettings,
    ServiceSettings,
    TerminusSettings,
    load_settings,
)
from core.stamping import stamp_create, stamp_update
from core.terminus_async import AsyncDocumentClient
from core.write_freeze import FreezeState, read_write_freeze_async
from service.errors import BadRequest, error_reply, json_error

log = logging.getLogger("oms_audit.service")

AUDIT_READ_ROLE = "audit:read"
MAX_LOG_LIMIT = 1000


@dataclass
class ServiceConfig:
    """Everything the service reads from the environment (tests pass their own)."""

    terminus: TerminusSettings = field(default_factory=lambda: load_settings(TerminusSettings))
    iam: IamSettings = field(default_factory=lambda: load_settings(IamSettings))
    service: ServiceSettings = field(default_factory=lambda: load_settings(ServiceSettings))
    dlq: DlqSettings = field(default_factory=lambda: load_settings(DlqSettings))
    sink_settings: AuditSinkSettings = field(default_factory=lambda: load_settings(AuditSinkSettings))


class Runtime:
    """What the endpoints share: verifier, TerminusDB client, audit emitter, DLQ, the freeze flag."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.verifier: TokenVerifier = open_verifier(config.iam)
        self.documents = AsyncDocumentClient(config.terminus)
        # the sink gets the short audit timeout: a slow sink sends events to the DLQ, it does not stall writes
        short = {"timeout_seconds": config.service.audit_timeout_seconds}
        self.sink: AsyncAuditSink = open_async_audit_sink(
            config.sink_settings.model_copy(update=short), config.terminus.model_copy(update=short)
        )
        self.dlq = DeadLetterQueue(config.dlq.dlq_dir, fsync=config.dlq.fsync)
        self.emitter = AuditEmitter(
            self.sink,
            self.dlq,
            timeout_seconds=config.service.audit_timeout_seconds,
            window_seconds=config.service.audit_batch_window_ms / 1000,
            max_batch=config.service.audit_max_batch,
            max_in_flight=config.service.audit_max_in_flight,
        )
        self.freeze: FreezeState | None = None
        self._freeze_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.emitter.start()
        try:  # the metadata database (audit events, the freeze flag) exists before the first write
            await asyncio.to_thread(_ensure_metadata, self.config.terminus)
        except OmsAuditError as exc:
            log.warning("Metadata database not ready at start (%s); audit events go to the DLQ meanwhile", exc)
        await self._read_freeze()
        self._freeze_task = asyncio.create_task(self._watch_freeze(), name="freeze-watch")

    async def stop(self) -> None:
        if self._freeze_task is not None:
            self._freeze_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._freeze_task
        await self.emitter.stop()
        await self.verifier.aclose()
        await self.documents.aclose()
        with contextlib.suppress(Exception):
            await self.sink.aclose()

    async def _read_freeze(self) -> None:
        try:
            self.freeze = await read_write_freeze_async(self.documents, self.config.terminus)
        except OmsAuditError as exc:  # keep the last known state; writes fail on their own if TerminusDB is down
            log.debug("Could not read the write freeze: %s", exc)

    async def _watch_freeze(self) -> None:
        while True:
            await asyncio.sleep(self.config.service.freeze_poll_seconds)
            await self._read_freeze()


def _ensure_metadata(settings: TerminusSettings) -> None:
    with metadata_gateway(settings) as gateway:
        ensure_metadata_db(gateway, settings)


# ------------------------------------------------------------------------------------------------------
# requests


@dataclass
class WriteTarget:
    """What a write is about, filled in by its handler as soon as it is known (for the audit event)."""

    resource_type: str | None = None
    resource_id: str | None = None


Undo = Callable[[], Awaitable[None]]
WriteHandler = Callable[["Runtime", Principal, WriteTarget], Awaitable[tuple[dict[str, Any], Undo]]]


def _actor(principal: Principal | None) -> Actor:
    if principal is None:
        return Actor(id="anonymous", username=None, kind="anonymous")
    return Actor(id=principal.id, username=principal.username, kind=principal.kind)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"The body is {declared} bytes; the limit is {limit} (OMS_AUDIT_MAX_BODY_BYTES).", status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(
                f"The body is larger than the limit of {limit} bytes (OMS_AUDIT_MAX_BODY_BYTES).", status=413
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_document(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise BadRequest('The body is empty: send one JSON object, e.g. {"@type": "ObjectType", "name": "test"}.')
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"The body is not valid JSON ({exc}). Send one JSON object.") from None
    if not isinstance(document, dict):
        raise BadRequest(f"The body is a JSON {type(document).__name__}, not an object. Send one JSON object.")
    return document


def _class_of(document: dict[str, Any]) -> str:
    """``@type``, else ``type`` (the guide's body); the chosen key is normalised to ``@type``."""
    doc_type = document.get("@type")
    if doc_type is None and isinstance(document.get("type"), str):
        doc_type = document.pop("type")
        document["@type"] = doc_type
    if not isinstance(doc_type, str) or not doc_type.strip():
        raise BadRequest('Say which class the document is: give "@type" (or "type"), e.g. "ObjectType".')
    if doc_type.startswith("@") or "/" in doc_type:
        raise BadRequest(f"{doc_type!r} is not a class name.")
    return doc_type


def _check_id(document: dict[str, Any], doc_type: str, doc_id: str | None) -> None:
    given = doc_id or document.get("@id")
    if given is None:
        return
    if not isinstance(given, str) or not given.startswith(f"{doc_type}/"):
        raise BadRequest(
            f"The id {given!r} is not an id of class {doc_type!r} (ids look like '{doc_type}/<key>'). "
            "Use the document's own class, or the id of a document of this class."
        )
    if doc_id is not None:
        document["@id"] = doc_id


def _type_of_id(doc_id: str) -> str:
    return doc_id.split("/", 1)[0] if "/" in doc_id else ""


# ------------------------------------------------------------------------------------------------------
# the app


@dataclass(frozen=True)
class WriteRoute:
    """A write endpoint served as a plain Starlette route, and its entry in the OpenAPI document."""

    name: str
    method: str
    path: str
    summary: str
    status: int
    takes_body: bool

    @property
    def openapi_path(self) -> str:
        return self.path.replace(":path}", "}")

    def operation(self) -> dict[str, Any]:
        """The OpenAPI operation FastAPI would have written for it (same operationId), plus the body."""
        operation: dict[str, Any] = {
            "summary": self.summary,
            "operationId": f"{self.name}{re.sub(r'[^0-9a-zA-Z_]', '_', self.openapi_path)}_{self.method.lower()}",
            "responses": {
                str(self.status): {
                    "description": "Successful Response",
                    "content": {"application/json": {"schema": {}}},
                }
            },
        }
        if "{doc_id" in self.path:
            operation["parameters"] = [
                {"name": "doc_id", "in": "path", "required": True, "schema": {"type": "string", "title": "Doc Id"}}
            ]
        if self.takes_body:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object", "title": "Document"}}},
            }
        return operation


WRITE_ROUTES: tuple[WriteRoute, ...] = (
    WriteRoute("create_object", "POST", "/api/v1/objects", "Create Object", 201, takes_body=True),
    WriteRoute("update_object", "PUT", "/api/v1/objects/{doc_id:path}", "Update Object", 200, takes_body=True),
    WriteRoute("delete_object", "DELETE", "/api/v1/objects/{doc_id:path}", "Delete Object", 200, takes_body=False),
)


def _openapi_with_writes(app: FastAPI) -> dict[str, Any]:
    """FastAPI's OpenAPI document of ``app`` with the write routes, which FastAPI does not see, added."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        for route in WRITE_ROUTES:
            schema["paths"].setdefault(route.openapi_path, {})[route.method.lower()] = route.operation()
        app.openapi_schema = schema
    return app.openapi_schema


def http_error_reply(exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's own errors (no such route, wrong method) in the service's JSON error shape."""
    message = {404: "No such endpoint. See the README for the API.", 405: "Method not allowed here."}
    return JSONResponse(
        {
            "error": "not_found" if exc.status_code == 404 else "http_error",
            "message": message.get(exc.status_code, str(exc.detail)),
        },
        status_code=exc.status_code,
    )


class ServiceApp(FastAPI):
    """FastAPI, with the write routes served ahead of its middleware stack.

    Before its endpoint ran, a write went through Starlette's and FastAPI's ASGI layers (server errors,
    telemetry, exception handlers, exit stack, router): a fifth of the event loop's CPU per write in the
    profile (bench/RESULTS.md). The write endpoints read the raw request themselves, so their routes are
    matched first and their endpoints called directly, with the errors answered as the exception handlers
    would. Every other request (a write route with another method too) goes through FastAPI as before.
    """

    write_routes: tuple[Route, ...] = ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self.write_routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope["app"] = self
                    scope.update(child_scope)
                    await _serve(route, Request(scope, receive, send), send)
                    return
        await super().__call__(scope, receive, send)


async def _serve(route: Route, request: Request, send: Send) -> None:
    try:
        response: Response = await route.endpoint(request)
    except ClientDisconnect:  # nobody to answer
        return
    except OmsAuditError as exc:
        response = json_error(exc)
    except StarletteHTTPException as exc:
        response = http_error_reply(exc)
    except Exception:
        log.exception("%s %s failed", request.method, request.url.path)
        response = JSONResponse(
            {"error": "internal_error", "message": "The service failed unexpectedly; its log has the details."},
            status_code=500,
        )
    await response(request.scope, request.receive, send)


def create_app(config: ServiceConfig | None = None) -> ServiceApp:
    """The FastAPI app; settings are read from the environment unless ``config`` is given."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(config or ServiceConfig())
        await runtime.start()
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.stop()

    # FastAPI's native OpenTelemetry is off: it checks three providers on every request, and the service's
    # own metrics are the Prometheus counters at /metrics
    app = ServiceApp(
        title="oms-audit",
        version="0.1.0",
        lifespan=lifespan,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )

    @app.exception_handler(OmsAuditError)
    async def _our_errors(request: Request, exc: OmsAuditError) -> JSONResponse:
        return json_error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_errors(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return http_error_reply(exc)

    def runtime_of(request: Request) -> Runtime:
        return request.app.state.runtime

    async def authenticate(request: Request, denied_action: str) -> Principal:
        """The verified principal, or the error; a refusal is audited first (never with the token)."""
        runtime = runtime_of(request)
        try:
            token = bearer_token(request.headers.get("authorization"))
            return await runtime.verifier.verify(token)
        except IdentityError as exc:
            await audit_denial(request, denied_action, None, getattr(exc, "reason", None) or str(exc))
            raise

    async def audit_denial(request: Request, action: str, principal: Principal | None, reason: str) -> None:
        event = AuditEvent.new(
            action=action,
            resource_type=None,
            resource_id=None,
            actor=_actor(principal),
            success=False,
            details={"reason": reason, "method": request.method, "path": request.url.path},
        )
        await runtime_of(request).emitter.emit(event)

    async def audited_write(
        request: Request,
        action: str,
        handler: WriteHandler,
    ) -> tuple[dict[str, Any], str]:
        """Run a write and deliver its event; undo the write if the event can be stored nowhere."""
        runtime = runtime_of(request)
        principal = await authenticate(request, "write_denied")
        if runtime.freeze is not None:
            await audit_denial(request, "write_denied", principal, f"writes frozen: {runtime.freeze.reason}")
            raise WritesFrozen(reason=runtime.freeze.reason, set_by=runtime.freeze.set_by)
        target = WriteTarget()
        try:
            result, undo = await handler(runtime, principal, target)
        except (BadRequest, TerminusError) as exc:  # the write did not happen, and its event says so
            status, body, _ = error_reply(exc)
            await runtime.emitter.emit(
                AuditEvent.new(
                    action=action,
                    resource_type=target.resource_type,
                    resource_id=target.resource_id,
                    actor=_actor(principal),
                    success=False,
                    details={"reason": body["message"][:500], "status": status, "path": request.url.path},
                )
            )
            raise
        resource_id = target.resource_id
        event = AuditEvent.new(
            action=action,
            resource_type=target.resource_type,
            resource_id=resource_id,
            actor=_actor(principal),
            success=True,
            details={"commit_author": principal.id},
        )
        try:
            where = await runtime.emitter.emit(event)
        except OmsAuditError:
            log.error("Undoing %s of %s: its audit event could not be stored", action, resource_id)
            try:
                await undo()
            except OmsAuditError as undo_error:  # the write stays; say so loudly, the client still gets 503
                log.critical("Could not undo %s of %s after audit failure: %s", action, resource_id, undo_error)
            raise
        return result, where

    async def create_object(request: Request) -> JSONResponse:
        async def handler(runtime: Runtime, principal: Principal, target: WriteTarget) -> tuple[dict[str, Any], Undo]:
            document = _parse_document(await _read_body(request, runtime.config.service.max_body_bytes))
            doc_type = target.resource_type = _class_of(document)
            _check_id(document, doc_type, None)
            stamped = stamp_create(document, principal, datetime.now(UTC))
            ids = await runtime.documents.insert(
                [stamped], author=principal.id, message=f"create {doc_type} via oms-audit"
            )
            doc_id = target.resource_id = ids[0] if ids else str(stamped.get("@id", ""))
            stored = {"@id": doc_id, **stamped}  # what was stored, without a second round trip to read it back

            async def undo() -> None:
                await runtime.documents.delete(
                    [doc_id], author=principal.id, message=f"undo create of {doc_id}: audit event not stored"
                )

            return stored, undo

        stored, where = await audited_write(request, "create", handler)
        return JSONResponse(stored, status_code=201, headers={"X-Audit-Stored-In": where})

    async def update_object(request: Request) -> JSONResponse:
        doc_id: str = request.path_params["doc_id"]

        async def handler(runtime: Runtime, principal: Principal, target: WriteTarget) -> tuple[dict[str, Any], Undo]:
            target.resource_type, target.resource_id = _type_of_id(doc_id) or None, doc_id
            document = _parse_document(await _read_body(request, runtime.config.service.max_body_bytes))
            if "@type" not in document and "type" not in document:
                document["@type"] = _type_of_id(doc_id)
            doc_type = _class_of(document)
            _check_id(document, doc_type, doc_id)
            stored = await runtime.documents.get(doc_id)
            stamped = stamp_update(document, stored, principal, datetime.now(UTC))
            await runtime.documents.replace([stamped], author=principal.id, message=f"update {doc_id} via oms-audit")
            after = stamped

            async def undo() -> None:
                await runtime.documents.replace(
                    [stored], author=principal.id, message=f"undo update of {doc_id}: audit event not stored"
                )

            return after, undo

        stored, where = await audited_write(request, "update", handler)
        return JSONResponse(stored, headers={"X-Audit-Stored-In": where})

    async def delete_object(request: Request) -> JSONResponse:
        doc_id: str = request.path_params["doc_id"]

        async def handler(runtime: Runtime, principal: Principal, target: WriteTarget) -> tuple[dict[str, Any], Undo]:
            target.resource_type, target.resource_id = _type_of_id(doc_id) or None, doc_id
            stored = await runtime.documents.get(doc_id)
            await runtime.documents.delete([doc_id], author=principal.id, message=f"delete {doc_id} via oms-audit")

            async def undo() -> None:
                await runtime.documents.insert(
                    [stored], author=principal.id, message=f"undo delete of {doc_id}: audit event not stored"
                )

            return {"deleted": doc_id}, undo

        result, where = await audited_write(request, "delete", handler)
        return JSONResponse(result, headers={"X-Audit-Stored-In": where})

    # The write routes are plain Starlette routes: they take the raw request anyway, and FastAPI's dependency
    # and validation layer around them was a tenth of the event loop's CPU per write (bench/RESULTS.md).
    # They stay in the OpenAPI document through _openapi_with_writes.
    endpoints = {"create_object": create_object, "update_object": update_object, "delete_object": delete_object}
    for route in WRITE_ROUTES:
        app.add_route(route.path, endpoints[route.name], methods=[route.method], include_in_schema=False)
    app.write_routes = tuple(r for r in app.router.routes if isinstance(r, Route) and r.endpoint in endpoints.values())
    app.openapi = functools.partial(_openapi_with_writes, app)  # type: ignore[method-assign]

    @app.get("/api/v1/objects/{doc_id:path}")
    async def read_object(doc_id: str, request: Request) -> JSONResponse:
        await authenticate(request, "read_denied")
        return JSONResponse(await runtime_of(request).documents.get(doc_id))

    @app.get("/api/v1/audit/logs")
    async def audit_logs(
        request: Request,
        limit: int = 50,
        actor: str | None = None,
        resource_type: str | None = None,
        since: datetime | None = None,
        cursor: str | None = None,
    ) -> JSONResponse:
        principal = await authenticate(request, "read_denied")
        if not (principal.is_service or principal.has_role(AUDIT_READ_ROLE)):
            await audit_denial(
                request, "read_denied", principal, f"audit logs need a service account or {AUDIT_READ_ROLE}"
            )
            raise AccessDenied("Reading the audit logs", required=f"a service account or the role '{AUDIT_READ_ROLE}'")
        if not 1 <= limit <= MAX_LOG_LIMIT:
            raise BadRequest(f"limit must be between 1 and {MAX_LOG_LIMIT} (got {limit}).")
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        events, next_cursor = await runtime_of(request).sink.query(
            limit=limit, actor=actor, resource_type=resource_type, since=since, cursor=cursor
        )
        return JSONResponse(
            {"events": [json.loads(e.to_json_line()) for e in events], "next_cursor": next_cursor, "count": len(events)}
        )

    @app.get("/api/v1/iam/verify-service-account")
    async def verify_service_account(request: Request) -> JSONResponse:
        principal = await authenticate(request, "read_denied")
        if not principal.is_service:
            await audit_denial(request, "read_denied", principal, "not a service account")
            raise AccessDenied(
                "This check", required="a service-account token (type: service, service_account: true, role service)"
            )
        return JSONResponse({"valid": True, "service_account": True, "principal": principal.public()})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        runtime = runtime_of(request)
        checks: dict[str, str] = {}
        try:
            await runtime.documents.check_connection()
            checks["terminusdb"] = "ok"
        except OmsAuditError as exc:
            checks["terminusdb"] = str(exc)
        try:  # the sink configured: the HTTP backend when AUDIT_BACKEND_URL is set, else the metadata database
            await runtime.sink.check()
            checks["audit_sink"] = "ok"
        except OmsAuditError as exc:
            checks["audit_sink"] = str(exc)
        directory = runtime.dlq.directory
        checks["dlq_dir"] = (
            "ok"
            if directory.is_dir() and os.access(directory, os.W_OK | os.X_OK)
            else f"{directory} is not a writable folder: set OMS_AUDIT_DLQ_DIR to one"
        )
        if runtime.freeze is not None:
            checks["writes"] = f"frozen: {runtime.freeze.reason}"
        ready = all(v == "ok" for k, v in checks.items() if k != "writes")
        return JSONResponse(
            {"ready": ready, "checks": checks},
            status_code=200 if ready else 503,
            headers={} if ready else {"Retry-After": "5"},
        )

    return app
