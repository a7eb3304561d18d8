"""Concurrent document reads and writes for the service: TerminusDB's document API from asyncio.

``TerminusGateway`` is for the jobs: it serialises calls of the official client behind one lock, which is
right for a migration and wrong for a service answering many requests at once. This client covers only the
document calls the service makes, shares the gateway's authentication and reply/transport error mapping
(``authorization_header``, ``error_from_reply``, ``transport_error``), and runs as many requests at once as
its thread pool has threads.

Each request is a blocking ``http.client`` call on that pool, one keep-alive connection per thread. Measured
on loopback against the sandbox (bench/RESULTS.md): httpx's asyncio transport spent about 10 ms of latency
per request, httpx's blocking client about 1 ms of CPU, ``http.client`` about 0.2 ms; in a service whose
every write is one such call, that difference is most of its CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.client
import json
import logging
import queue
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus, urlsplit

from core.errors import NotFound, TerminusError
from core.settings import TerminusSettings
from core.terminus import (
    DATA_VERSION_HEADER,
    USER_AGENT,
    _short_ids,
    _tls_context,
    authorization_header,
    error_from_reply,
    public_url,
    require_credentials,
    transport_error,
)

__all__ = ["AsyncDocumentClient"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


@functools.lru_cache(maxsize=4096)
def _quoted(value: str) -> str:
    """``quote_plus`` remembered: authors and commit messages repeat from one request to the next, and
    quoting them afresh was a tenth of the service's CPU per write."""
    return quote_plus(value)


def _query_string(params: Mapping[str, str]) -> str:
    """``urlencode(params)`` for string values."""
    return "&".join(f"{_quoted(key)}={_quoted(value)}" for key, value in params.items())


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class _Workers:
    """Threads that run blocking calls for the event loop, one loop callback per result.

    ``run_in_executor`` on a ``ThreadPoolExecutor`` hands each result over twice (a concurrent future,
    then an asyncio future chained to it, with callbacks both ways): about a tenth of the event loop's CPU
    per write in the service's profile. Here a call's result goes straight into the awaiting asyncio
    future with one ``call_soon_threadsafe``. Threads start as needed, up to ``max_workers``.
    """

    def __init__(self, max_workers: int, name: str) -> None:
        self._max = max_workers
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any], asyncio.AbstractEventLoop] | None]
        self._jobs = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()

    def run(self, call: Callable[[], _T]) -> asyncio.Future[_T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
            elif len(self._threads) < self._max:
                thread = threading.Thread(target=self._work, name=f"{self._name}_{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
        self._jobs.put((call, future, loop))
        return future

    def shutdown(self) -> None:
        """Let queued calls finish, then end every thread."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            call, future, loop = job
            try:
                result, error = call(), None
            except BaseException as exc:  # handed to the awaiting task, which raises it
                result, error = None, exc
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody awaits the result any more
                loop.call_soon_threadsafe(_settle, future, result, error)
            with self._lock:
                self._idle += 1


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():  # the caller gave up waiting (a timeout)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class AsyncDocumentClient:
    """Document CRUD on one TerminusDB server and team; ``database``/``branch`` are each call's defaults."""

    def __init__(
        self,
        settings: TerminusSettings,
        *,
        database: str | None = None,
        branch: str | None = None,
        max_connections: int = 32,
    ) -> None:
        require_credentials(settings)
        self.url = public_url(settings.url)
        self.team = settings.team
        self.database = database or settings.database
        self.branch = branch or settings.branch
        self._settings = settings
        self._timeout = settings.timeout_seconds
        self._using_token = settings.token is not None
        parts = urlsplit(settings.url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._local = threading.local()
        self._connections: list[http.client.HTTPConnection] = []
        self._connections_lock = threading.Lock()
        self._workers = _Workers(max_connections, "terminusdb")

    def __repr__(self) -> str:
        return f"AsyncDocumentClient(url={self.url!r}, team={self.team!r}, database={self.database!r})"

    async def __aenter__(self) -> AsyncDocumentClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._workers.shutdown()
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    async def check_connection(self) -> None:
        await self._request("GET", "/api/info")

    async def get(self, doc_id: str, *, database: str | None = None, branch: str | None = None) -> dict[str, Any]:
        """One instance document by id (``DocumentNotFound`` when it is not there)."""
        db, br = database or self.database, branch or self.branch
        reply = await self._request(
            "GET", self._path(db, br), params={"id": doc_id, "graph_type": "instance"}, database=db, branch=br
        )
        document = self._json(reply)
        if not isinstance(document, dict):
            raise TerminusError(f"TerminusDB at {self.url} sent a document that is not a JSON object.", url=self.url)
        return document

    async def insert(self, docs: list[dict[str, Any]], *, author: str, message: str, **where: str | None) -> list[str]:
        """Insert in one commit with ``author`` as the commit author; the new ids (``Type/key``)."""
        return _short_ids(self._json(await self._write("POST", docs, author, message, **where)))

    async def replace(
        self, docs: list[dict[str, Any]], *, author: str, message: str, create: bool = False, **where: str | None
    ) -> list[str]:
        """Replace in one commit; with ``create`` a document not stored yet is inserted (replace-or-create)."""
        extra = {"create": "true"} if create else None
        return _short_ids(self._json(await self._write("PUT", docs, author, message, extra, **where)))

    async def query(
        self, template: dict[str, Any], *, database: str | None = None, branch: str | None = None
    ) -> list[dict[str, Any]]:
        """The instance documents matching ``template`` (TerminusDB's query by example: equal values only)."""
        db, br = database or self.database, branch or self.branch
        body = {"query": template, "graph_type": "instance", "as_list": True}
        reply = await self._request(
            "POST",
            self._path(db, br),
            content=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
            headers={"Content-Type": "application/json", "X-HTTP-Method-Override": "GET"},
            database=db,
            branch=br,
        )
        documents = self._json(reply)
        if not isinstance(documents, list):
            raise TerminusError(f"TerminusDB at {self.url} answered a query with something not a list.", url=self.url)
        return [d for d in documents if isinstance(d, dict)]

    async def delete(self, ids: list[str], *, author: str, message: str, **where: str | None) -> None:
        await self._write("DELETE", ids, author, message, **where)

    async def database_exists(self, database: str | None = None) -> bool:
        db = database or self.database
        try:
            await self._request("HEAD", f"/api/db/{quote(self.team, safe='')}/{quote(db, safe='')}", database=db)
        except NotFound:
            return False
        return True

    # ------------------------------------------------------------------------------------------------

    @functools.lru_cache(maxsize=64)  # noqa: B019 - a few (database, branch) pairs per client, for its lifetime
    def _path(self, database: str, branch: str) -> str:
        team, db, br = (quote(part, safe="") for part in (self.team, database, branch))
        return f"/api/document/{team}/{db}/local/branch/{br}"

    async def _write(
        self,
        method: str,
        body: list[Any],
        author: str,
        message: str,
        extra: Mapping[str, str] | None = None,
        /,
        *,
        database: str | None = None,
        branch: str | None = None,
        data_version: str | None = None,
    ) -> _Reply:
        db, br = database or self.database, branch or self.branch
        headers = {"Content-Type": "application/json"}
        if data_version is not None:
            headers[DATA_VERSION_HEADER] = data_version
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return await self._request(
            method,
            self._path(db, br),
            params={"author": author, "message": message, "graph_type": "instance", **(extra or {})},
            content=payload,
            headers=headers,
            database=db,
            branch=br,
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        database: str | None = None,
        branch: str | None = None,
    ) -> _Reply:
        target = self._prefix + path + (f"?{_query_string(params)}" if params else "")
        call = functools.partial(self._send, method, target, content, dict(headers or {}))
        reply = await self._workers.run(call)
        if reply.status >= 400:
            raise error_from_reply(
                reply.status,
                reply.body,
                url=self.url,
                using_token=self._using_token,
                database=f"{self.team}/{database or self.database}",
                branch=branch or self.branch,
            )
        return reply

    def _send(self, method: str, target: str, content: bytes | None, headers: dict[str, str]) -> _Reply:
        """One request on this thread's connection (runs on the pool)."""
        headers.update({"User-Agent": USER_AGENT, "Authorization": authorization_header(self._settings)})
        connection, reused = self._connection()
        try:
            return self._exchange(connection, method, target, content, headers)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            self._drop(connection)
            if not reused:
                raise transport_error(exc, url=self.url, timeout_seconds=self._timeout) from None
            # The server closed an idle keep-alive connection before reading the request: send it once more.
            connection, _ = self._connection()
        except (OSError, http.client.HTTPException) as exc:
            phase = "connect" if connection.sock is None else "read"
            self._drop(connection)
            raise transport_error(exc, url=self.url, timeout_seconds=self._timeout, phase=phase) from None
        try:
            return self._exchange(connection, method, target, content, headers)
        except (OSError, http.client.HTTPException) as exc:
            self._drop(connection)
            raise transport_error(exc, url=self.url, timeout_seconds=self._timeout) from None

    @staticmethod
    def _exchange(
        connection: http.client.HTTPConnection, method: str, target: str, content: bytes | None, headers: dict[str, str]
    ) -> _Reply:
        connection.request(method, target, body=content, headers=headers)
        response = connection.getresponse()
        body = response.read()
        if response.will_close:
            connection.close()
        return _Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body)

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None and connection.sock is not None:
            return connection, True
        if connection is None:
            if self._https:
                context: ssl.SSLContext = _tls_context()
                connection = http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout, context=context)
            else:
                connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection, False

    def _drop(self, connection: http.client.HTTPConnection) -> None:
        connection.close()

    def _json(self, reply: _Reply) -> Any:
        try:
            return json.loads(reply.body)
        except ValueError:
            raise TerminusError(
                f"TerminusDB at {self.url} sent a reply that is not JSON (HTTP {reply.status}).",
                url=self.url,
                status=reply.status,
            ) from None
