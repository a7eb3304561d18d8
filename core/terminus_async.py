"""Concurrent document reads and writes for the service: an async httpx client on TerminusDB's document API.

``TerminusGateway`` is for the jobs: it serialises calls of the official client behind one lock, which is
right for a migration and wrong for a service answering many requests at once. This client covers only the
document calls the service makes, shares the gateway's authentication and reply/transport error mapping
(``error_from_reply``, ``transport_error``), and lets as many requests run as its pool allows.

Under the async API each request is a blocking ``httpx.Client`` call on a small thread pool: on this
project's loopback benchmarks httpx's asyncio transport spent about 10 ms per request against the sandbox
where the blocking client spent about 1 ms, and a thread per in-flight request costs the event loop nothing.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from core.errors import ConfigError, NotFound, TerminusError
from core.settings import TerminusSettings
from core.terminus import (
    DATA_VERSION_HEADER,
    USER_AGENT,
    _HttpxAuth,
    _short_ids,
    _tls_context,
    error_from_reply,
    public_url,
    transport_error,
)

__all__ = ["AsyncDocumentClient"]

log = logging.getLogger(__name__)


class AsyncDocumentClient:
    """Document CRUD on one TerminusDB server and team; ``database``/``branch`` are each call's defaults."""

    def __init__(
        self,
        settings: TerminusSettings,
        *,
        database: str | None = None,
        branch: str | None = None,
        max_connections: int = 64,
    ) -> None:
        if settings.token is None and not settings.password.get_secret_value():
            raise ConfigError(
                "TERMINUS_DB_PASSWORD is empty: set it (with TERMINUS_DB_USER), or set TERMINUS_DB_TOKEN instead."
            )
        self.url = public_url(settings.url)
        self.team = settings.team
        self.database = database or settings.database
        self.branch = branch or settings.branch
        self._timeout = settings.timeout_seconds
        self._using_token = settings.token is not None
        self._http = httpx.Client(
            base_url=settings.url.rstrip("/"),
            verify=_tls_context(),
            timeout=httpx.Timeout(settings.timeout_seconds),
            headers={"User-Agent": USER_AGENT},
            auth=_HttpxAuth(settings),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )
        self._pool = ThreadPoolExecutor(max_workers=max_connections, thread_name_prefix="terminusdb")

    def __repr__(self) -> str:
        return f"AsyncDocumentClient(url={self.url!r}, team={self.team!r}, database={self.database!r})"

    async def __aenter__(self) -> AsyncDocumentClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._pool.shutdown(wait=True)
        self._http.close()

    async def check_connection(self) -> None:
        await self._request("GET", "/api/info")

    async def get(self, doc_id: str, *, database: str | None = None, branch: str | None = None) -> dict[str, Any]:
        """One instance document by id (``DocumentNotFound`` when it is not there)."""
        db, br = database or self.database, branch or self.branch
        response = await self._request(
            "GET", self._path(db, br), params={"id": doc_id, "graph_type": "instance"}, database=db, branch=br
        )
        document = self._json(response)
        if not isinstance(document, dict):
            raise TerminusError(f"TerminusDB at {self.url} sent a document that is not a JSON object.", url=self.url)
        return document

    async def insert(self, docs: list[dict[str, Any]], *, author: str, message: str, **where: str | None) -> list[str]:
        """Insert in one commit with ``author`` as the commit author; the new ids (``Type/key``)."""
        response = await self._write("POST", docs, {}, author, message, **where)
        return _short_ids(self._json(response))

    async def replace(self, docs: list[dict[str, Any]], *, author: str, message: str, **where: str | None) -> list[str]:
        response = await self._write("PUT", docs, {}, author, message, **where)
        return _short_ids(self._json(response))

    async def delete(self, ids: list[str], *, author: str, message: str, **where: str | None) -> None:
        await self._write("DELETE", ids, {}, author, message, **where)

    async def database_exists(self, database: str | None = None) -> bool:
        db = database or self.database
        path = f"/api/db/{quote(self.team, safe='')}/{quote(db, safe='')}"
        try:
            await self._request("HEAD", path, database=db)
        except NotFound:
            return False
        return True

    # ------------------------------------------------------------------------------------------------

    def _path(self, database: str, branch: str) -> str:
        team, db, br = (quote(part, safe="") for part in (self.team, database, branch))
        return f"/api/document/{team}/{db}/local/branch/{br}"

    async def _write(
        self,
        method: str,
        body: list[Any],
        params: dict[str, str],
        author: str,
        message: str,
        *,
        database: str | None = None,
        branch: str | None = None,
        data_version: str | None = None,
    ) -> httpx.Response:
        db, br = database or self.database, branch or self.branch
        headers = {"Content-Type": "application/json"}
        if data_version is not None:
            headers[DATA_VERSION_HEADER] = data_version
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return await self._request(
            method,
            self._path(db, br),
            params={"author": author, "message": message, "graph_type": "instance", **params},
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
    ) -> httpx.Response:
        call = functools.partial(self._http.request, method, path, params=params, content=content, headers=headers)
        try:
            response = await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except httpx.HTTPError as exc:
            raise transport_error(exc, url=self.url, timeout_seconds=self._timeout) from exc
        if response.status_code >= 400:
            raise error_from_reply(
                response.status_code,
                response.content,
                url=self.url,
                using_token=self._using_token,
                database=f"{self.team}/{database or self.database}",
                branch=branch or self.branch,
            )
        return response

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise TerminusError(
                f"TerminusDB at {self.url} sent a reply that is not JSON (HTTP {response.status_code}).",
                url=self.url,
                status=response.status_code,
            ) from None
