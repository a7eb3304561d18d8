"""``/api/db`` (create, delete, exists, list, get), ``GET /api/`` (connect), ``/api/info`` and ``/api/ok``."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote_plus, unquote

from sandbox.auth import CREATE_DATABASE, DELETE_DATABASE, INSTANCE_READ, forbidden
from sandbox.context import Call, require_access
from sandbox.errors import ApiError, GenericError
from sandbox.params import Params, missing_parameter
from sandbox.store import DEFAULT_PREFIXES, Database
from sandbox.wire import Response, json_response, require_json_content_type

CREATE_ERROR_TYPE = "api:DbCreateErrorResponse"
DELETE_ERROR_TYPE = "api:DbDeleteErrorResponse"
EXISTS_ERROR_TYPE = "api:DbExistsErrorResponse"
LIST_ERROR_TYPE = "api:DbListErrorResponse"
INFO_ERROR_TYPE = "api:InfoErrorResponse"

SERVER_VERSION = "12.0.6"
GIT_HASH = "0" * 40
STORE_VERSION = "0.11.0"
_URI_WITH_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


def _split(rest: str) -> list[str]:
    return [unquote(part) for part in rest.split("/") if part]


def _unknown_org(org: str) -> ApiError:
    return ApiError(
        {"@type": "api:UnknownOrganizationName", "api:organization_name": org},
        f"Unknown organization name: {org}",
        status="api:not_found",
    )


def _unknown_db(org: str, name: str) -> ApiError:
    return ApiError(
        {"@type": "api:UnknownDatabase", "api:database_name": name, "api:organization_name": org},
        f"Unknown database: {org}/{name}",
        status="api:not_found",
    )


def _prolog_quoted(text: str) -> str:
    """How TerminusDB's ``~q`` prints an atom in messages (``'x'``, quotes doubled)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _check_names(org: str, name: str) -> None:
    if org == "":
        raise ApiError(
            {"@type": "api:InvalidOrganizationName", "api:organization_name": org},
            f"Invalid organization name: {_prolog_quoted(org)}",
        )
    if name == "" or "|" in name:
        raise ApiError(
            {"@type": "api:InvalidDatabaseName", "api:database_name": name},
            f"Invalid database name: {_prolog_quoted(name)}",
        )


def _check_name_length(org: str, name: str) -> None:
    """Creation only: the store label ``org|db`` (form-encoded) must stay within the label length limit."""
    if len(quote_plus(org)) + 3 + len(quote_plus(name)) > 249:
        raise ApiError(
            {"@type": "api:DatabaseNameTooLong", "api:organization_name": org, "api:database_value": name},
            f"The combination of organization {org} and database {name} results in a database name that is too long.",
        )


def _org_db(rest: str) -> tuple[str, str]:
    """``org/db`` from the path, validating names ("" when a segment is missing)."""
    parts = rest.split("/")
    org = unquote(parts[0]) if parts else ""
    name = unquote("/".join(parts[1:])) if len(parts) > 1 else ""
    return org, name


def _existing(call: Call, org: str, name: str) -> Database:
    if org not in call.store.organizations:
        raise _unknown_org(org)
    db = call.store.get(org, name)
    if db is None:
        raise _unknown_db(org, name)
    return db


def create_db(call: Call) -> Response:
    require_json_content_type(call.request)
    org, name = _org_db(call.rest)
    body = call.request.json_object_body() or {}
    params = Params({}, body)
    _check_names(org, name)
    _check_name_length(org, name)
    label = params.text("label", non_empty=True)
    if label is None:
        raise missing_parameter("label")
    comment = params.text("comment") or ""
    public = params.boolean("public", False)
    with_schema = params.boolean("schema", True)
    prefixes = params.json_value("prefixes", "object") or {}
    context: dict[str, Any] = {"@type": "@context", **DEFAULT_PREFIXES}
    for prefix, value in prefixes.items():
        if not isinstance(value, str) or not _URI_WITH_SCHEME.match(value):
            raise ApiError(
                {"@type": "api:InvalidPrefix", "api:prefix_name": prefix, "api:prefix_value": value},
                f"The value for the prefix {_prolog_quoted(prefix)} ({value}) is not a valid URI prefix.",
            )
        context[prefix] = value
    if org not in call.store.organizations:
        raise _unknown_org(org)
    if not call.user.allowed(CREATE_DATABASE, f"{org}/{name}"):
        raise forbidden(call.user, CREATE_DATABASE, f"terminusdb://system/data/Organization/{org}")
    db = call.store.create(
        org, name, label=label, comment=comment, context=context, public=public, schemaless=not with_schema
    )
    if db is None:
        raise ApiError(
            {"@type": "api:DatabaseAlreadyExists", "api:database_name": name, "api:organization_name": org},
            "Database already exists.",
        )
    return json_response(
        {"@type": "api:DbCreateResponse", "api:database_uri": db.record_iri, "api:status": "api:success"}
    )


def delete_db(call: Call) -> Response:
    org, name = _org_db(call.rest)
    params = Params(call.request.query, call.request.json_object_body())
    params.boolean("force", False)
    _check_names(org, name)
    db = _existing(call, org, name)
    require_access(call.user, DELETE_DATABASE, db)
    call.store.delete(org, name)
    return json_response({"@type": "api:DbDeleteResponse", "api:status": "api:success"})


def head_db(call: Call) -> Response:
    org, name = _org_db(call.rest)
    db = _existing(call, org, name)
    require_access(call.user, INSTANCE_READ, db)
    return Response(200, b"", None)


def _visible(call: Call, db: Database) -> bool:
    return db.public or call.user.allowed(INSTANCE_READ, db.path)


def _listing(db: Database, branches: bool, verbose: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": db.path}
    if branches:
        entry["branches"] = sorted(db.branches)
    if verbose:
        entry.update(db.record())
    return entry


def get_db(call: Call) -> Response:
    params = Params(call.request.query, call.request.json_object_body())
    branches = params.boolean("branches", False)
    verbose = params.boolean("verbose", False)
    parts = _split(call.rest)
    if len(parts) >= 2:
        db = call.store.get(parts[0], "/".join(parts[1:]))
        if db is None or not _visible(call, db):
            raise GenericError(
                404,
                {
                    "@type": "api:DbListErrorResponse",
                    "api:status": "api:failure",
                    "api:message": "Database does not exist, or you do not have permission",
                },
            )
        return json_response(_listing(db, branches, verbose))
    org = parts[0] if parts else None
    listed = [
        _listing(db, branches, verbose)
        for db in call.store.list()
        if (org is None or db.org == org) and _visible(call, db)
    ]
    return json_response(listed)


def connect(call: Call) -> Response:
    """``GET /api/``: the caller's database records (anonymous: none)."""
    if call.user.anonymous:
        return json_response([])
    return json_response([db.record() for db in call.store.list() if _visible(call, db)])


def info(call: Call) -> Response:
    return json_response(
        {
            "@type": "api:InfoResponse",
            "api:info": {
                "authority": call.user.iri,
                "storage": {"version": "2"},
                "terminusdb": {"version": SERVER_VERSION, "git_hash": GIT_HASH},
                "terminusdb_store": {"version": STORE_VERSION},
            },
            "api:status": "api:success",
        }
    )


def ok(call: Call) -> Response:
    return Response(200, b"", "application/octets")
