"""The TerminusDB-compatible HTTP server: routing, HTTP/1.1 plumbing, fault injection hooks.

Built on the stdlib ``ThreadingHTTPServer`` so the sandbox needs nothing beyond Python itself. Each route
names the error envelope TerminusDB uses for it, so handlers only raise errors and never format them.

Known differences from TerminusDB
---------------------------------
Each item says why it remains. "Not checked" means TerminusDB's source did not settle the detail.

Ids and stored values
* ``ValueHash`` ids use the sandbox's own stable content hash (64 hex): TerminusDB hashes a Prolog-printed
  term that cannot be reproduced outside Prolog. Raw JSON documents (``raw_json=true``) get
  ``JSONDocument/<sha256 of the sorted JSON>`` for the same reason; that they come back from GET with
  ``@id`` and without ``@type`` is not checked.
* After a schema change, stored base-type values are not re-parsed against a changed base type; instead every
  instance (not only the latest layer's) is re-checked for structure - stricter than TerminusDB, which only
  looks at the latest instance layer.
* ``compress_ids=false`` expands ids, keys and reference values but leaves enum values short (not checked).
* Layer ids are random (40 hex, TerminusDB's format); ``_system`` has a fixed data version per process.

Documents
* A nested document whose id is already stored with different content is refused with
  ``api:DocumentIdAlreadyExists``; TerminusDB adds the triples (usually failing validation later) - the
  sandbox keeps whole documents, not triples. In a replace (PUT) nested documents are written whether or
  not they exist (not checked).
* A ``Lexical``/``Hash`` key field that names a capture not yet bound is ``api:NotAllCapturesFound``
  (TerminusDB's behaviour for such forward references is not checked).
* The ``Foreign`` and ``Table`` type families are not implemented (``api:DocumentElaborationImpossible``).
* Guessed witness shape (not confirmed against TerminusDB's source): ``not_a_valid_enum``; the TaggedUnion
  witnesses use the ``@oneOf`` shape (``choice``, ``document``), which is confirmed for ``@oneOf`` only.
  ``violation_of_diamond_property`` ({"@type", "class", "predicate"}, full IRIs) matches the source.
* Query by example: malformed queries (unknown property, uncastable value, bad ``@regex``) are 400
  ``api:QueryError`` with sandbox fields, and a query on the schema graph is
  ``api:QueryIsOnlySupportedForInstanceGraphs``: TerminusDB's mapping of its ``query_error`` terms is not
  checked. A value for a ``Set``/``List``/``Array`` property matches any member, and an id for an
  ``Optional`` link matches that id: how TerminusDB's query expansion treats those ranges is not checked.
  ``@if-exists`` is not implemented; results come in store order.

HTTP surface
* An unsupported method on a known route is 405 with a JSON ``api:method_not_allowed`` body; TerminusDB's
  405 comes from its HTTP library before any TerminusDB code runs, and that body is not checked.
* Routes TerminusDB has but the sandbox does not implement (``/api/woql``, ``/api/rebase/``,
  ``/api/optimize/``, ``/api/triples/``, ``/api/schema/`` frames, ``/api/clone/``) answer 501
  ``api:NotSupportedBySandbox`` - after TerminusDB's content-type and JSON checks on ``woql``/``rebase``.
  Diff/apply, GraphQL, remotes and user/organisation management are absent (404).
* A failure of the sandbox itself (a bug) is 500 ``api:ErrorResponse`` / ``api:InternalServerError``; it has
  no TerminusDB counterpart, but the client always gets JSON and the connection stays usable.
* ``/api/info`` has TerminusDB's shape, but ``git_hash`` is a fixed placeholder (there is no TerminusDB
  build behind the sandbox) and the store version is nominal.
* Exact message texts of ``api:MissingContentTypeErrorResponse`` / ``api:BadContentTypeErrorResponse``,
  ``api:QueryMissingType``, ``api:NotAllCapturesFound``, ``api:CaptureIdAlreadyBound`` and a few other
  errors are paraphrased; types, fields and statuses follow TerminusDB.

Migrations and history
* Migration ops ``CastClassProperty`` and ``ChangeParents`` answer HTTP 500 (``api:UnhandledErrorResponse``);
  ``MoveClass`` and ``target`` mode cover only the cases we need. ``ChangeKey`` follows TerminusDB's source;
  that subdocuments of re-inserted instances keep their old ids (as the source reads) is not exercised.
* Squash of a branch without any commit (``api:EmptySquashResponse``) cannot happen: every sandbox branch has
  a head commit.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox import api_branch, api_db, api_documents, api_history, api_migration, api_unsupported
from sandbox.auth import ANONYMOUS, AuthConfig
from sandbox.context import App, Call
from sandbox.errors import ApiError, GenericError, SchemaCheckFailure, UnhandledError
from sandbox.faults import FaultRegistry, FaultRule, FaultSpecError, parse_rule
from sandbox.store import Store
from sandbox.wire import (
    Request,
    Response,
    error_response,
    inflate,
    internal_error,
    json_response,
    method_not_allowed,
    not_found,
    parse_json,
)

log = logging.getLogger("sandbox")

Handler = Callable[[Call], Response]


@dataclass(frozen=True)
class Route:
    """``path`` is matched exactly, or as a prefix when it ends with ``/``; ``methods`` maps to
    (handler, error envelope @type)."""

    path: str
    methods: Mapping[str, tuple[Handler, str]]
    authenticate: bool = True

    def match(self, path: str) -> str | None:
        if self.path.endswith("/") and self.path != "/api/":
            if path.startswith(self.path):
                return path[len(self.path) :]
            return None
        return "" if path == self.path else None


_DOC = api_documents.ERROR_TYPES
ROUTES: list[Route] = [
    Route("/api/ok", {"GET": (api_db.ok, api_db.INFO_ERROR_TYPE)}, authenticate=False),
    Route("/api/info", {"GET": (api_db.info, api_db.INFO_ERROR_TYPE)}),
    Route("/api/", {"GET": (api_db.connect, "api:ConnectErrorResponse")}),
    Route(
        "/api/db",
        {"GET": (api_db.get_db, api_db.LIST_ERROR_TYPE)},
    ),
    Route(
        "/api/db/",
        {
            "GET": (api_db.get_db, api_db.LIST_ERROR_TYPE),
            "HEAD": (api_db.head_db, api_db.EXISTS_ERROR_TYPE),
            "POST": (api_db.create_db, api_db.CREATE_ERROR_TYPE),
            "DELETE": (api_db.delete_db, api_db.DELETE_ERROR_TYPE),
        },
    ),
    Route(
        "/api/document/",
        {
            "GET": (api_documents.get_documents, _DOC["GET"]),
            "HEAD": (api_documents.head_documents, _DOC["HEAD"]),
            "POST": (api_documents.post_documents, _DOC["POST"]),
            "PUT": (api_documents.put_documents, _DOC["PUT"]),
            "DELETE": (api_documents.delete_documents_handler, _DOC["DELETE"]),
        },
    ),
    Route("/api/migration/", {"POST": (api_migration.post_migration, api_migration.ERROR_TYPE)}),
    Route(
        "/api/branch/",
        {
            "POST": (api_branch.post_branch, api_branch.BRANCH_ERROR_TYPE),
            "DELETE": (api_branch.delete_branch, api_branch.BRANCH_ERROR_TYPE),
        },
    ),
    Route("/api/log/", {"GET": (api_history.get_log, api_history.LOG_ERROR_TYPE)}),
    Route("/api/history/", {"GET": (api_history.get_history, api_history.HISTORY_ERROR_TYPE)}),
    Route("/api/reset/", {"POST": (api_branch.post_reset, api_branch.RESET_ERROR_TYPE)}),
    Route("/api/squash/", {"POST": (api_branch.post_squash, api_branch.SQUASH_ERROR_TYPE)}),
    Route("/api/prefixes/", {"GET": (api_branch.get_prefixes, api_branch.PREFIX_ERROR_TYPE)}),
    # TerminusDB routes the sandbox does not implement (methods as TerminusDB declares them)
    Route("/api/woql", {"POST": (api_unsupported.json_not_supported, "api:WoqlErrorResponse")}),
    Route("/api/woql/", {"POST": (api_unsupported.json_not_supported, "api:WoqlErrorResponse")}),
    Route("/api/rebase/", {"POST": (api_unsupported.json_not_supported, "api:RebaseErrorResponse")}),
    Route("/api/optimize/", {"POST": (api_unsupported.not_supported, "api:OptimizeErrorResponse")}),
    Route(
        "/api/triples/",
        {method: (api_unsupported.not_supported, "api:TriplesErrorResponse") for method in ("GET", "POST", "PUT")},
    ),
    Route(
        "/api/schema/",
        {method: (api_unsupported.not_supported, "api:FrameErrorResponse") for method in ("GET", "POST")},
    ),
    Route("/api/clone/", {"POST": (api_unsupported.not_supported, "api:CloneErrorResponse")}),
]


def dispatch(app: App, request: Request, fault: FaultRule | None = None) -> Response:
    """Route one decoded /api request and turn raised errors into TerminusDB's replies.

    Whatever goes wrong - including a bug in a handler or in rendering its error - the client gets a JSON
    reply (500 ``api:ErrorResponse`` at worst), never a dropped connection. ``fault`` is an injected
    ``raise`` rule: the routed handler raises instead of running.
    """
    for route in ROUTES:
        rest = route.match(request.path)
        if rest is None:
            continue
        if request.method == "OPTIONS":
            allowed = ", ".join(sorted({*route.methods, "OPTIONS"}))
            return Response(200, b"", None, {"Allow": allowed})
        entry = route.methods.get(request.method)
        if entry is None:
            return method_not_allowed(request.method, request.path)
        handler, error_type = entry
        try:
            user = app.auth.authenticate(request.header("authorization")) if route.authenticate else ANONYMOUS
            if fault is not None:
                _raise_injected(fault)
            return handler(Call(app, request, user, rest))
        except (ApiError, GenericError, UnhandledError) as exc:
            if isinstance(exc, UnhandledError):
                log.info("unmapped error (HTTP 500): %s", exc.reason)
            try:
                return error_response(exc, error_type, request)
            except Exception as render_failure:
                log.exception("internal error while rendering the error of %s %s", request.method, request.path)
                return internal_error(render_failure)
        except Exception as exc:
            log.exception("internal error while handling %s %s", request.method, request.path)
            return internal_error(exc)
    return not_found(request.path)


class InjectedFault(RuntimeError):
    """Raised by an injected ``raise`` fault: stands for a bug inside a handler."""


def _raise_injected(fault: FaultRule) -> None:
    if fault.error == "unrenderable":
        # an error whose witness holds a value JSON cannot encode, as an internal sentinel once did
        raise SchemaCheckFailure([{"@type": "injected_fault", "value": object()}])
    raise InjectedFault("injected fault: the handler raised")


def sandbox_control(app: App, request: Request) -> Response:
    """``/_sandbox/...``: health and fault injection (outside /api, never faulted)."""
    if request.path == "/_sandbox/health":
        if request.method != "GET":
            return method_not_allowed(request.method, request.path)
        return json_response({"status": "ok", "databases": len(app.store.databases)})
    if request.path == "/_sandbox/faults":
        if request.method == "GET":
            return json_response(app.faults.list())
        if request.method == "DELETE":
            app.faults.clear()
            return json_response({"cleared": True})
        if request.method == "POST":
            try:
                spec = parse_json(request.body)
                specs = spec if isinstance(spec, list) else [spec]
                rules = [parse_rule(item) for item in specs]
            except FaultSpecError as exc:
                return json_response({"error": str(exc)}, 400)
            except GenericError as exc:
                return json_response(exc.body, exc.http_status)
            for rule in rules:
                app.faults.add(rule)
            return json_response([rule.public() for rule in rules])
        return method_not_allowed(request.method, request.path)
    return not_found(request.path)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TerminusDB-sandbox"
    sys_version = ""
    timeout = 120
    server: _Server

    def setup(self) -> None:
        super().setup()
        # headers and body are separate writes; without NODELAY, Nagle + delayed ACK cost ~40 ms per reply
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = do_GET

    def _read_raw_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        app = self.server.app
        split = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(split.query, keep_blank_values=True).items()}
        headers = {key.lower(): value for key, value in self.headers.items()}
        method = self.command.upper()
        try:
            raw = self._read_raw_body()
        except ValueError:
            # a malformed length or chunk header: answer, then close (the rest of the stream is unreadable)
            self.close_connection = True
            body = {"api:status": "api:failure", "api:message": "The request body framing could not be read"}
            self._send(json_response(body, 400), method)
            return
        except OSError:
            self.close_connection = True
            return
        override = headers.get("x-http-method-override")
        if method == "POST" and override:
            method = override.upper()
        request = Request(method, split.path, query, headers, raw)
        if split.path.startswith("/_sandbox/"):
            self._send(sandbox_control(app, request), method)
            return
        fault = app.faults.take(method, split.path)
        injected: FaultRule | None = None
        if fault is not None:
            if fault.action == "drop":
                self.close_connection = True
                return
            if fault.action == "delay":
                time.sleep(fault.seconds)
            elif fault.action == "raise":
                injected = fault
            else:
                body = (
                    fault.body
                    if fault.body is not None
                    else {
                        "api:status": "api:server_error",
                        "api:message": f"Injected fault: HTTP {fault.status}",
                    }
                )
                self._send(json_response(body, fault.status), method)
                return
        try:
            request.body = inflate(raw, headers.get("content-encoding"))
            response = dispatch(app, request, injected)
        except GenericError as exc:
            response = json_response(exc.body, exc.http_status)
        except Exception as exc:  # a last line of defence: the client always gets a JSON reply
            log.exception("internal error while handling %s %s", method, split.path)
            response = internal_error(exc)
        self._send(response, method)

    def _send(self, response: Response, method: str) -> None:
        self.send_response(response.status)
        if response.content_type is not None:
            self.send_header("Content-Type", response.content_type)
        origin = self.headers.get("Origin")
        if origin:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Allow-Credentials", "true")
            self.send_header("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, HEAD, OPTIONS")
            self.send_header(
                "Access-Control-Allow-Headers",
                "Authorization, Content-Type, Content-Encoding, TerminusDB-Data-Version, X-HTTP-Method-Override",
            )
            self.send_header("Access-Control-Expose-Headers", "TerminusDB-Data-Version")
        for name, value in response.headers.items():
            self.send_header(name, value)
        body = b"" if method == "HEAD" else response.body
        if response.chunked and method != "HEAD":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(_chunked(body))
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)


_CHUNK_SIZE = 64 * 1024


def _chunked(body: bytes) -> bytes:
    """``body`` in HTTP/1.1 chunked framing (written in one go: the framing, not the timing, is what clients see)."""
    parts = []
    for start in range(0, len(body), _CHUNK_SIZE):
        piece = body[start : start + _CHUNK_SIZE]
        parts.append(b"%x\r\n%s\r\n" % (len(piece), piece))
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        super().__init__(address, _RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (timeout, dropped keep-alive) is routine, not a server error worth a traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the sandbox listens on loopback addresses only (got host {host!r}); use 127.0.0.1")


class SandboxServer:
    """A running sandbox in a background thread, for tests and the demo.

    >>> with SandboxServer() as srv:          # port 0 = a free port
    ...     httpx.get(srv.url + "/api/ok")
    """

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        seed: str | None = None,
        data_dir: str | Path | None = None,
        admin_password: str = "root",
        tokens: Mapping[str, str] | None = None,
        roles: Mapping[str, Mapping[str, Any]] | None = None,
        organizations: Iterable[str] = ("admin",),
    ) -> None:
        _check_loopback(host)
        self.host = host
        self.requested_port = port
        self.seed = seed
        store = Store(set(organizations), Path(data_dir) if data_dir is not None else None)
        auth = AuthConfig(
            admin_password=admin_password,
            tokens=dict(tokens or {}),
            roles={user: dict(grants) for user, grants in (roles or {}).items()},
        )
        self.app = App(store=store, auth=auth, faults=FaultRegistry())
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sandbox server is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def bind(self) -> None:
        """Load the seed and bind the socket (so ``--port 0`` can print the chosen port before serving)."""
        if self.seed is not None:
            from sandbox.seeds import load_seed

            load_seed(self.app.store, self.seed)
            self.seed = None
        self._server = _Server((self.host, self.requested_port), self.app)

    def start(self) -> SandboxServer:
        """Serve in a background thread."""
        self.bind()
        assert self._server is not None
        self._thread = threading.Thread(target=self._server.serve_forever, name="sandbox-http", daemon=True)
        self._thread.start()
        return self

    def serve(self) -> None:
        """Serve in the calling thread until interrupted (``python -m sandbox``)."""
        if self._server is None:
            self.bind()
        assert self._server is not None
        self._server.serve_forever()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["ROUTES", "SandboxServer", "dispatch"]
