"""The one place oms-audit talks to TerminusDB.

``TerminusGateway`` wraps the official Python client (``terminusdb_client.Client``) for the calls it does
well and uses one ``httpx.Client`` for the ones it lacks or gets wrong (each spot says why), and for every
read a migration's dry run makes: the official client (with ``requests``) is imported and connected only
when a call needs it, which a dry run never does (importing and connecting it cost about half a second of
the command's start-up). Every failure
leaves as a ``core.errors.TerminusError``: the client's ``DatabaseError``/``InterfaceError``, ``requests``
and ``httpx`` exceptions never escape. Tokens and passwords stay out of messages, reprs and logs.

Authentication: ``TERMINUS_DB_TOKEN`` when set, else ``TERMINUS_DB_USER``/``TERMINUS_DB_PASSWORD`` (Basic).
The token is sent as ``Authorization: <scheme> <token>``, the scheme being
``TerminusSettings.authorization_scheme`` (``TERMINUS_DB_TOKEN_SCHEME``, else chosen from the URL), on every
call: ours through httpx and the official client's (``jwt_token`` mode for ``Bearer``, ``api_token`` mode
for ``Token``). ``Bearer`` is what a self-hosted TerminusDB started with JWT support verifies; it does not
check ``Token`` at all, so such a request silently runs as the anonymous user and fails with 403 on every
database call. The hosted TerminusCMS/DFRNT services expect their API keys as ``Token``.
"""

from __future__ import annotations

import base64
import functools
import gzip
import http.client
import json
import logging
import socket
import ssl
import threading
from collections.abc import Generator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx

from core.errors import (
    AlreadyExists,
    AuthenticationFailed,
    BranchNotFound,
    ConfigError,
    DatabaseNotFound,
    DataVersionConflict,
    DocumentNotFound,
    PermissionDenied,
    RequestRejected,
    SchemaCheckFailed,
    TerminusError,
    TerminusServerError,
    TerminusTimeout,
    TerminusUnreachable,
)
from core.settings import TerminusSettings

if TYPE_CHECKING:
    import requests

__all__ = ["Commit", "MigrationResult", "TerminusGateway", "error_from_reply", "transport_error"]

log = logging.getLogger(__name__)

DATA_VERSION_HEADER = "TerminusDB-Data-Version"
DEFAULT_BASE = "terminusdb:///data/"
USER_AGENT = "oms-audit"
GZIP_MIN_BYTES = 16 * 1024  # TerminusDB inflates gzip request bodies; small ones are not worth it


@dataclass(frozen=True)
class Commit:
    """One entry of a branch log (newest first)."""

    id: str
    author: str
    message: str
    timestamp: datetime  # UTC
    parent: str | None  # parent commit id, None for the first commit
    migration: list[dict[str, Any]] | None  # operations recorded by the migration endpoint


@dataclass(frozen=True)
class MigrationResult:
    """What ``POST /api/migration`` reports; ``schema`` (context first) only when asked for ``verbose``."""

    schema_operations: int
    instance_operations: int
    schema: list[dict[str, Any]] | None


class TerminusGateway:
    """Talks to one TerminusDB server for one team; ``database``/``branch`` are the defaults of each call.

    Holds one connection pool for its lifetime (use it as a context manager or call ``close()``).
    No network traffic happens until the first call. Safe to share between threads.
    """

    def __init__(self, settings: TerminusSettings, *, database: str | None = None, branch: str | None = None) -> None:
        require_credentials(settings)
        self.url = public_url(settings.url)
        self.team = settings.team
        self.database = database or settings.database
        self.branch = branch or settings.branch
        self._settings = settings
        self._base_url = settings.url.rstrip("/")
        self._using_token = settings.token is not None
        self._timeout = settings.timeout_seconds
        self._http = httpx.Client(
            base_url=self._base_url,
            verify=_tls_context(),
            timeout=httpx.Timeout(settings.timeout_seconds),
            headers={"User-Agent": USER_AGENT},
            auth=_HttpxAuth(settings),
            follow_redirects=False,
        )
        self._client: Any = None  # terminusdb_client.Client, connected on first use
        self._client_lock = threading.RLock()  # the client keeps per-call state (db, branch) on itself
        self._context: tuple[str | None, str | None] = (None, None)  # (database, branch) of the client call

    def __repr__(self) -> str:
        return (
            f"TerminusGateway(url={self.url!r}, team={self.team!r}, database={self.database!r}, branch={self.branch!r})"
        )

    def __enter__(self) -> TerminusGateway:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the connection pools. The gateway is unusable afterwards."""
        self._http.close()
        with self._client_lock:
            if self._client is not None:
                self._client._session.close()
                self._client.close()
                self._client = None

    # -----------------------------------------------------------------------------------------------
    # server and databases

    def check_connection(self) -> None:
        """Raise unless the server answers ``/api/info`` and accepts our credentials."""
        self._request("GET", "/api/info")

    def database_exists(self, database: str | None = None) -> bool:
        # httpx: the client's has_database() turns 401/403/5xx and dropped connections into False.
        db = database or self.database
        response = self._request("HEAD", f"/api/db/{self._db_path(db)}", database=db, allow={404})
        return response.status_code == 200

    def create_database(self, database: str | None = None, *, label: str | None = None, exist_ok: bool = False) -> None:
        db = database or self.database
        if exist_ok and self.database_exists(db):  # the usual case for the metadata database: one HEAD
            return
        try:
            with self._official(database=db) as client:
                client.create_database(db, team=self.team, label=label or db)
        except AlreadyExists:
            if not exist_ok:
                raise

    def delete_database(self, database: str | None = None, *, missing_ok: bool = False) -> None:
        db = database or self.database
        try:
            with self._official(database=db) as client:
                client.delete_database(db, team=self.team)
        except DatabaseNotFound:
            if not missing_ok:
                raise

    # -----------------------------------------------------------------------------------------------
    # reading

    def schema(self, *, branch: str | None = None) -> list[dict[str, Any]]:
        """The whole schema graph, the ``@context`` document first."""
        # httpx: the same GET the client makes, without connecting the client (see the module docstring)
        return list(self._stream_documents(self.database, branch or self.branch, {"graph_type": "schema"}))

    def head_commit(self, *, branch: str | None = None) -> str:
        commits = self.log(branch=branch, count=1)
        if not commits:
            raise TerminusError(f"Branch '{branch or self.branch}' has no commits.", url=self.url)
        return commits[0].id

    def data_version(self, *, branch: str | None = None) -> str:
        """The branch's current ``TerminusDB-Data-Version`` (``branch:<head commit>``)."""
        # httpx: the client only reports a data version together with a full document download; a GET with
        # count=0 reads the header alone (a HEAD would do too, but its errors carry no body to explain them).
        br = branch or self.branch
        response = self._request(
            "GET",
            f"/api/document/{self._branch_path(self.database, br)}",
            params={"graph_type": "instance", "count": "0"},
            branch=br,
        )
        return self._data_version_of(response)

    def document_counts(self, *, branch: str | None = None) -> dict[str, int]:
        """Documents per exact ``@type``, from one streamed pass (memory grows with the number of types)."""
        # httpx: the client's get_all_documents() reads the whole reply into one string before parsing.
        counts: dict[str, int] = {}
        for doc in self._stream_documents(
            self.database, branch or self.branch, {"graph_type": "instance", "unfold": "false"}
        ):
            doc_type = str(doc.get("@type", "")) if isinstance(doc, dict) else ""
            counts[doc_type] = counts.get(doc_type, 0) + 1
        return counts

    def get_document(
        self,
        doc_id: str,
        *,
        graph_type: str = "instance",
        branch: str | None = None,
        database: str | None = None,
    ) -> tuple[dict[str, Any], str]:
        """(document, data version of the branch it was read from)."""
        # httpx: the client's GET, without connecting it (see the module docstring)
        db, br = database or self.database, branch or self.branch
        response = self._request(
            "GET",
            f"/api/document/{self._branch_path(db, br)}",
            params={"id": doc_id, "graph_type": graph_type},
            database=db,
            branch=br,
        )
        return self._json(response), self._data_version_of(response)

    def iter_documents(
        self,
        *,
        doc_type: str | None = None,
        graph_type: str = "instance",
        branch: str | None = None,
        database: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Stream documents (of ``doc_type`` and its subclasses, when given) without loading them all."""
        # httpx: the client's get_all_documents() reads the whole reply into memory first.
        params = {"graph_type": graph_type}
        if doc_type is not None:
            params["type"] = doc_type
        yield from self._stream_documents(database or self.database, branch or self.branch, params)

    def log(self, *, branch: str | None = None, count: int = -1) -> list[Commit]:
        """The branch's commits, newest first (``count=-1``: all)."""
        # httpx: the client's GET, without connecting it (see the module docstring)
        br = branch or self.branch
        response = self._request(
            "GET",
            f"/api/log/{self._branch_path(self.database, br)}",
            params={"start": "0", "count": str(count)},
            branch=br,
        )
        entries = self._json(response)
        if not isinstance(entries, list):
            raise TerminusError(f"TerminusDB at {self.url} sent a log that is not a list of commits.", url=self.url)
        return [_commit(entry) for entry in entries if isinstance(entry, Mapping)]

    def history(self, doc_id: str, *, branch: str | None = None) -> list[dict[str, Any]]:
        """Commits that created/changed/deleted ``doc_id``, newest first; ``timestamp`` as a UTC datetime."""
        # httpx: the client's get_document_history() has no branch, always caps the result at `count`
        # (default 10) and spells its boolean flags `True`, which a real server rejects with 400.
        br = branch or self.branch
        response = self._request(
            "GET", f"/api/history/{self._branch_path(self.database, br)}", params={"id": doc_id}, branch=br
        )
        entries = self._json(response)
        if not isinstance(entries, list):
            raise TerminusError(f"Unexpected history reply from {self.url}: expected a list.", url=self.url)
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("timestamp"), int | float):
                entry["timestamp"] = datetime.fromtimestamp(entry["timestamp"], UTC)
        return entries

    # -----------------------------------------------------------------------------------------------
    # writing

    def migrate(
        self,
        operations: list[dict[str, Any]],
        *,
        author: str,
        message: str,
        dry_run: bool = False,
        verbose: bool = False,
        branch: str | None = None,
    ) -> MigrationResult:
        """Apply schema migration operations in one commit (``dry_run``: compute only, no commit)."""
        # httpx: the official client has no call for /api/migration.
        br = branch or self.branch
        body = {
            "author": author,
            "message": message,
            "operations": operations,
            "dry_run": dry_run,
            "verbose": verbose,
        }
        response = self._request(
            "POST", f"/api/migration/{self._branch_path(self.database, br)}", json_body=body, branch=br
        )
        reply = self._json(response)
        if not isinstance(reply, dict):
            raise TerminusError(f"Unexpected migration reply from {self.url}: expected an object.", url=self.url)
        return MigrationResult(
            schema_operations=int(reply.get("schema_operations", 0)),
            instance_operations=int(reply.get("instance_operations", 0)),
            schema=reply.get("schema") if verbose else None,
        )

    def insert_documents(
        self,
        docs: list[dict[str, Any]],
        *,
        author: str,
        message: str,
        graph_type: str = "instance",
        full_replace: bool = False,
        data_version: str | None = None,
        branch: str | None = None,
        database: str | None = None,
    ) -> tuple[list[str], str]:
        """Insert documents in one commit; returns (ids, new data version).

        Instance ids come back relative to the default ``@base`` (``Person/alice``), like reads return them.
        """
        # httpx for all document writes: the client drops the reply's data-version header (so optimistic
        # concurrency could not be chained) and silently discards a leading @context unless full_replace.
        params = {"graph_type": graph_type, "full_replace": _flag(full_replace)}
        response = self._write("POST", docs, params, author, message, data_version, database, branch)
        return _short_ids(self._json(response)), self._data_version_of(response)

    def replace_documents(
        self,
        docs: list[dict[str, Any]],
        *,
        author: str,
        message: str,
        graph_type: str = "instance",
        create: bool = False,
        data_version: str | None = None,
        branch: str | None = None,
        database: str | None = None,
    ) -> tuple[list[str], str]:
        """Replace documents (``create``: insert the missing ones) in one commit; (ids, new data version)."""
        params = {"graph_type": graph_type, "create": _flag(create)}
        response = self._write("PUT", docs, params, author, message, data_version, database, branch)
        return _short_ids(self._json(response)), self._data_version_of(response)

    def delete_documents(
        self,
        ids: list[str],
        *,
        author: str,
        message: str,
        graph_type: str = "instance",
        data_version: str | None = None,
        branch: str | None = None,
        database: str | None = None,
    ) -> str:
        """Delete documents by id in one commit; returns the new data version."""
        params = {"graph_type": graph_type}
        response = self._write("DELETE", ids, params, author, message, data_version, database, branch)
        return self._data_version_of(response)

    # -----------------------------------------------------------------------------------------------
    # branches and history

    def create_branch(self, name: str, *, origin: str | None = None) -> None:
        """Create branch ``name`` at the head of ``origin`` (default: this gateway's branch)."""
        with self._official(branch=origin) as client:
            client.create_branch(name)

    def delete_branch(self, name: str) -> None:
        with self._official(branch=name) as client:
            client.delete_branch(name)

    def branches(self) -> list[str]:
        # httpx: the client's GET of the repository's Branch documents, without connecting it
        path = f"/api/document/{self._db_path(self.database)}/local/_commits"
        response = self._request("GET", path, params={"type": "Branch"})
        try:
            docs = list(_iter_json_stream([response.content]))
        except ValueError:
            message = f"TerminusDB at {self.url} sent a branch list that is not JSON."
            raise TerminusError(message, url=self.url) from None
        return sorted(str(doc["name"]) for doc in docs if isinstance(doc, Mapping) and "name" in doc)

    def reset(self, commit_id: str, *, branch: str | None = None) -> None:
        """Move the branch head to ``commit_id``; later commits leave the branch."""
        with self._official(branch=branch) as client:
            client.reset(commit_id, use_path="/" in commit_id)

    # -----------------------------------------------------------------------------------------------
    # plumbing: httpx

    def _db_path(self, database: str) -> str:
        return f"{quote(self.team, safe='')}/{quote(database, safe='')}"

    def _branch_path(self, database: str | None, branch: str) -> str:
        return f"{self._db_path(database or self.database)}/local/branch/{quote(branch, safe='')}"

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        database: str | None = None,
        branch: str | None = None,
        allow: Iterable[int] = (),
    ) -> httpx.Response:
        """Send one request; map transport failures and error replies (except statuses in ``allow``)."""
        try:
            response = self._http.request(method, path, params=params, json=json_body, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        log.debug("%s %s -> %s", method, path, response.status_code)
        if response.status_code >= 400 and response.status_code not in allow:
            raise self._reply_error(response.status_code, response.content, database=database, branch=branch)
        return response

    def _write(
        self,
        method: str,
        body: list[Any],
        params: dict[str, str],
        author: str,
        message: str,
        data_version: str | None,
        database: str | None,
        branch: str | None,
    ) -> httpx.Response:
        db, br = database or self.database, branch or self.branch
        headers = {"Content-Type": "application/json"}
        if data_version is not None:
            headers[DATA_VERSION_HEADER] = data_version
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(payload) >= GZIP_MIN_BYTES:
            payload = gzip.compress(payload, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        return self._request(
            method,
            f"/api/document/{self._branch_path(db, br)}",
            params={"author": author, "message": message, **params},
            content=payload,
            headers=headers,
            database=db,
            branch=br,
        )

    def _stream_documents(self, database: str, branch: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        path = f"/api/document/{self._branch_path(database, branch)}"
        try:
            with self._http.stream("GET", path, params={**params, "minimized": "true"}) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._reply_error(response.status_code, response.content, database=database, branch=branch)
                try:
                    yield from _iter_json_stream(response.iter_bytes())
                except ValueError as exc:
                    raise TerminusError(
                        f"TerminusDB at {self.url} sent a document stream that is not valid JSON ({exc}).",
                        url=self.url,
                    ) from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise TerminusError(
                f"TerminusDB at {self.url} sent a reply that is not JSON (HTTP {response.status_code}).",
                url=self.url,
                status=response.status_code,
            ) from None

    def _data_version_of(self, response: httpx.Response) -> str:
        version = response.headers.get(DATA_VERSION_HEADER)
        if not version:
            raise TerminusError(f"TerminusDB at {self.url} did not send a {DATA_VERSION_HEADER} header.", url=self.url)
        return str(version)

    def _transport_error(self, exc: Exception) -> TerminusError:
        return transport_error(exc, url=self.url, timeout_seconds=self._timeout)

    def _reply_error(
        self, status: int, body: bytes | Mapping[str, Any] | None, *, database: str | None, branch: str | None
    ) -> TerminusError:
        return error_from_reply(
            status,
            body,
            url=self.url,
            using_token=self._using_token,
            database=f"{self.team}/{database or self.database}",
            branch=branch or self.branch,
        )

    # -----------------------------------------------------------------------------------------------
    # plumbing: the official client

    @contextmanager
    def _official(self, *, database: str | None = None, branch: str | None = None) -> Iterator[Any]:
        """The connected official client, pointed at database/branch, with its failures mapped."""
        import requests
        from terminusdb_client.errors import DatabaseError, InterfaceError

        with self._client_lock:
            client = self._connected_client()
            client.team = self.team
            client.db = database or self.database
            client.branch = branch or self.branch
            client.ref = None
            client.repo = "local"
            self._context = (database, branch)
            try:
                yield client
            except TerminusError:
                raise
            except requests.exceptions.Timeout as exc:
                phase = "connect" if isinstance(exc, requests.exceptions.ConnectTimeout) else "read"
                raise TerminusTimeout(self.url, timeout_seconds=self._timeout, phase=phase) from exc
            except (
                requests.exceptions.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
            ) as exc:
                raise TerminusUnreachable(self.url, reason=_describe_transport_error(exc)) from exc
            except requests.exceptions.RequestException as exc:
                raise TerminusError(
                    f"Request to TerminusDB at {self.url} failed: {type(exc).__name__}.", url=self.url
                ) from exc
            except DatabaseError as exc:  # only if our response hook did not see the reply first
                raise self._reply_error(
                    int(exc.status_code), getattr(exc, "error_obj", None), database=database, branch=branch
                ) from None
            except InterfaceError:
                raise TerminusError(
                    f"The TerminusDB client refused the call for {self.url}; check the database and branch names.",
                    url=self.url,
                ) from None
            except json.JSONDecodeError:
                raise TerminusError(f"TerminusDB at {self.url} sent a reply that is not JSON.", url=self.url) from None
            finally:
                self._context = (None, None)

    def _connected_client(self) -> Any:
        if self._client is not None:
            return self._client
        # Client.connect() sends GET /api/info with no timeout; ask first with ours, which also maps a bad
        # password or an unreachable server to the right error before the client sees them.
        from terminusdb_client import Client
        from terminusdb_client.errors import InterfaceError

        self.check_connection()
        token = self._settings.token
        hosted_key = self._settings.authorization_scheme == "Token"
        client = Client(self._base_url, user_agent=USER_AGENT)
        try:
            client.connect(
                team=self.team,
                user=self._settings.user,
                key=self._settings.password.get_secret_value(),
                use_token=token is not None,
                jwt_token=token.get_secret_value() if token is not None and not hosted_key else None,
                api_token=token.get_secret_value() if token is not None and hosted_key else None,
                branch=self.branch,
                repo="local",
            )
        except InterfaceError:
            raise TerminusUnreachable(self.url, reason="the TerminusDB client could not connect") from None
        session = client._session
        # The client passes no timeout to requests (it would wait forever on a stalled server); the adapter
        # supplies ours. The response hook maps error replies before the client builds its DatabaseError
        # (which needs a JSON content type and would crash with KeyError on a bare proxy error page).
        adapter = _timeout_adapter(self._timeout)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.hooks["response"].append(self._check_client_reply)
        self._client = client
        return client

    def _check_client_reply(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.status_code >= 400:
            database, branch = self._context
            raise self._reply_error(response.status_code, response.content, database=database, branch=branch)


# --------------------------------------------------------------------------------------------------
# reply -> error


def error_from_reply(
    status: int,
    body: bytes | Mapping[str, Any] | None,
    *,
    url: str,
    using_token: bool = False,
    database: str | None = None,
    branch: str | None = None,
) -> TerminusError:
    """Map a TerminusDB error reply (status + JSON body, if any) to the matching ``TerminusError``."""
    reply = _parse_body(body)
    raw_error = reply.get("api:error")
    api_error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
    api_type = api_error.get("@type") or reply.get("@type")
    api_message = _short(reply.get("api:message"))
    if status == 401:
        return AuthenticationFailed(url, using_token=using_token, api_message=api_message)
    if status == 403:
        return PermissionDenied(url, detail=api_message)
    if "system:witnesses" in reply:  # generic shape (e.g. validation after a migration)
        return SchemaCheckFailed(_as_list(reply["system:witnesses"]), url=url, status=status)
    if api_type == "api:SchemaCheckFailure":
        return SchemaCheckFailed(_as_list(api_error.get("api:witnesses")), url=url, status=status)
    if api_type == "api:DataVersionMismatch":
        return DataVersionConflict(
            requested=api_error.get("api:requested_data_version"),
            actual=api_error.get("api:actual_data_version"),
            url=url,
        )
    if api_type in ("api:UnknownDatabase", "api:UnknownOriginDatabase"):
        name = api_error.get("api:database_name")
        org = api_error.get("api:organization_name")
        qualified = f"{org}/{name}" if org and name else (name or database or "?")
        return DatabaseNotFound(qualified, url=url, api_message=api_message)
    if api_type in _BRANCH_MISSING:
        missing = (
            api_error.get("api:branch_name")
            or api_error.get("api:branch")
            or _branch_of(api_error.get("api:absolute_descriptor"))
            or branch
            or "?"
        )
        return BranchNotFound(str(missing), database=database, url=url, api_message=api_message)
    if api_type == "api:DocumentNotFound":
        doc_id = _short_id(str(api_error.get("api:document_id", "?")))
        return DocumentNotFound(doc_id, database=database, url=url, api_message=api_message)
    if api_type in _ALREADY_EXISTS:
        kind, key = _ALREADY_EXISTS[api_type]
        name = api_error.get(key) or "?"
        if kind == "database" and api_error.get("api:organization_name"):
            name = f"{api_error['api:organization_name']}/{name}"
        if kind == "document":
            name = _short_id(str(name))
        return AlreadyExists(kind, str(name), url=url, api_type=api_type, status=status)
    if status >= 500:
        return TerminusServerError(status=status, api_type=api_type, api_message=api_message, url=url)
    return RequestRejected(status=status, api_type=api_type, api_message=api_message, url=url)


_BRANCH_MISSING = frozenset(
    {
        "api:UnresolvableAbsoluteDescriptor",
        "api:BranchDoesNotExistError",
        "api:BranchDoesNotExist",
        "api:OriginBranchDoesNotExist",
    }
)
_ALREADY_EXISTS = {
    "api:DocumentIdAlreadyExists": ("document", "api:document_id"),
    "api:DatabaseAlreadyExists": ("database", "api:database_name"),
    "api:BranchExistsError": ("branch", "api:branch_name"),
}


def transport_error(exc: Exception, *, url: str, timeout_seconds: float, phase: str | None = None) -> TerminusError:
    """Map a failure without a reply (httpx, or socket/``http.client`` ones) to the matching ``TerminusError``.

    ``phase`` ("connect"/"read") says where a plain socket timeout happened; httpx's exceptions say it themselves.
    """
    if isinstance(exc, httpx.TimeoutException):
        phase = "connect" if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout) else "read"
        return TerminusTimeout(url, timeout_seconds=timeout_seconds, phase=phase)
    if isinstance(exc, TimeoutError):
        return TerminusTimeout(url, timeout_seconds=timeout_seconds, phase=phase or "read")
    if isinstance(
        exc, httpx.TransportError | httpx.DecodingError | httpx.StreamError | OSError | http.client.HTTPException
    ):
        return TerminusUnreachable(url, reason=_describe_transport_error(exc))
    return TerminusError(f"Request to TerminusDB at {url} failed: {type(exc).__name__}.", url=url)


def _parse_body(body: bytes | Mapping[str, Any] | None) -> dict[str, Any]:
    if isinstance(body, Mapping):
        return dict(body)
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _short(text: Any, limit: int = 500) -> str | None:
    if not isinstance(text, str) or not text:
        return None
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def _branch_of(descriptor: Any) -> str | None:
    """``admin/db/local/branch/dev`` -> ``dev``; other descriptors are returned as they are."""
    if not isinstance(descriptor, str) or not descriptor:
        return None
    parts = [p for p in descriptor.split("/") if p]
    if "branch" in parts[:-1]:
        return "/".join(parts[parts.index("branch") + 1 :])
    return descriptor


# --------------------------------------------------------------------------------------------------
# small helpers


class _HttpxAuth(httpx.Auth):
    """The token (in the configured scheme) if set, else Basic; the secret leaves settings only when a request
    is sent."""

    def __init__(self, settings: TerminusSettings) -> None:
        self._settings = settings

    def __repr__(self) -> str:
        return "_HttpxAuth(***)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = authorization_header(self._settings)
        yield request


def require_credentials(settings: TerminusSettings) -> None:
    """Refuse settings that could only ever be answered 401: neither a token nor a password."""
    if settings.token is None and not settings.password.get_secret_value():
        raise ConfigError(
            "TERMINUS_DB_PASSWORD is empty: set it (with TERMINUS_DB_USER), or set TERMINUS_DB_TOKEN instead."
        )


def authorization_header(settings: TerminusSettings) -> str:
    """The ``Authorization`` value for ``settings`` (token with its scheme, else Basic); built per request."""
    token = settings.token
    if token is not None:
        return f"{settings.authorization_scheme} {token.get_secret_value()}"
    pair = f"{settings.user}:{settings.password.get_secret_value()}".encode()
    return f"Basic {base64.b64encode(pair).decode('ascii')}"


def _timeout_adapter(timeout: float) -> Any:
    """A ``requests`` adapter giving every request of the official client the gateway's timeout (it sets
    none itself); built here so that ``requests`` is imported only with the client."""
    from requests.adapters import HTTPAdapter

    default_timeout = timeout

    class _TimeoutAdapter(HTTPAdapter):
        def send(self, request: Any, stream: bool = False, timeout: Any = None, *args: Any, **kwargs: Any) -> Any:
            chosen = timeout if timeout is not None else default_timeout
            return super().send(request, stream, chosen, *args, **kwargs)

    return _TimeoutAdapter()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context per process: httpx builds a new one (loading the CA bundle, ~40 ms) per client otherwise,
    and the jobs open a gateway per task."""
    return httpx.create_ssl_context()


def public_url(url: str) -> str:
    """The server URL without userinfo, query or fragment: safe for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc, query="", fragment="").geturl().rstrip("/")


TLS_MISMATCH = (
    "the TLS handshake failed; this looks like a TLS mismatch (an https:// TERMINUS_DB_URL for a server that "
    "speaks plain http, or the reverse): check the URL's scheme"
)
_TLS_MISMATCH_HINTS = frozenset({"wrong_version_number", "record_layer_failure", "http_request", "unknown_protocol"})


def _looks_like_tls_mismatch(exc: BaseException) -> bool:
    """OpenSSL's words for "the other side does not speak TLS" (or speaks it where we did not)."""
    text = f"{getattr(exc, 'reason', '') or ''} {exc}".lower().replace(" ", "_")
    return any(hint in text for hint in _TLS_MISMATCH_HINTS)


def _describe_transport_error(exc: BaseException) -> str:
    """A short human reason from an exception chain (refused, dropped, DNS, ...)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, socket.gaierror):
            return "host name not found"
        if isinstance(current, ssl.SSLError) and _looks_like_tls_mismatch(current):
            return TLS_MISMATCH
        if isinstance(current, ConnectionResetError | BrokenPipeError):
            return "connection reset"
        for arg in getattr(current, "args", ()):
            if isinstance(arg, BaseException) and id(arg) not in seen:
                nested = _describe_transport_error(arg)
                if nested != type(arg).__name__:
                    return nested
        current = current.__cause__ or current.__context__
    text = str(exc).lower()
    if _looks_like_tls_mismatch(exc):
        return TLS_MISMATCH
    if "refused" in text:
        return "connection refused"
    if any(word in text for word in ("disconnected", "closed", "incomplete", "without", "reset", "aborted")):
        return "connection dropped before the reply was complete"
    if "name or service" in text or "nodename" in text or "getaddrinfo" in text:
        return "host name not found"
    return type(exc).__name__


def _flag(value: bool) -> str:
    return "true" if value else "false"  # the server accepts exactly these spellings


def _short_id(doc_id: str) -> str:
    return doc_id.removeprefix(DEFAULT_BASE)


def _short_ids(ids: Any) -> list[str]:
    if not isinstance(ids, list):
        return []
    return [_short_id(str(i)) for i in ids]


def _commit(entry: Mapping[str, Any]) -> Commit:
    timestamp = entry.get("timestamp")
    if isinstance(timestamp, int | float):
        when = datetime.fromtimestamp(timestamp, UTC)
    elif isinstance(timestamp, datetime):  # the client turns it into a naive local time
        when = timestamp.astimezone(UTC)
    else:
        when = datetime.fromtimestamp(0, UTC)
    parent = entry.get("parent")
    migration = entry.get("migration")
    if isinstance(migration, str):
        migration = json.loads(migration)
    return Commit(
        id=str(entry.get("identifier") or str(entry.get("@id", "")).rsplit("/", 1)[-1]),
        author=str(entry.get("author", "")),
        message=str(entry.get("message", "")),
        timestamp=when,
        parent=str(parent).rsplit("/", 1)[-1] if parent else None,
        migration=migration if isinstance(migration, list) else None,
    )


def _iter_json_stream(chunks: Iterable[bytes]) -> Iterator[Any]:
    """JSON values from a byte stream of newline-separated (or concatenated) documents.

    Splits on raw newlines, which never occur inside minimized JSON, so each document is decoded once; a
    value spanning several lines (pretty-printed) is decoded when its last line arrives.
    """
    decoder = json.JSONDecoder()
    partial = bytearray()
    text = ""
    for chunk in chunks:
        cut = chunk.rfind(b"\n")
        if cut < 0:
            partial.extend(chunk)
            continue
        partial.extend(chunk[: cut + 1])
        text += partial.decode("utf-8")
        partial = bytearray(chunk[cut + 1 :])
        text = yield from _decode_available(decoder, text)
    text += partial.decode("utf-8")
    text = yield from _decode_available(decoder, text)
    if text.strip():
        raise ValueError("the stream ended in the middle of a document")


def _decode_available(decoder: json.JSONDecoder, text: str) -> Generator[Any, None, str]:
    """Yield every complete value at the start of ``text``; return the undecoded rest."""
    position = 0
    length = len(text)
    while True:
        while position < length and text[position].isspace():
            position += 1
        if position >= length:
            return ""
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return text[position:]
        yield value
