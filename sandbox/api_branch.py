"""``/api/branch/{path}`` (create/delete), ``/api/reset/{path}`` and ``/api/prefixes/{path}``.

Branches only point at commits; commits are immutable and shared, so branching and resetting are O(1).
"""

from __future__ import annotations

from typing import Any

from sandbox.auth import BRANCH, COMMIT_WRITE, INSTANCE_WRITE, SCHEMA_READ
from sandbox.context import Call, require_access
from sandbox.descriptors import Descriptor, commit_of, database_of, parse, unknown_database
from sandbox.errors import ApiError, GenericError
from sandbox.store import Commit, Database
from sandbox.wire import Response, json_response

BRANCH_ERROR_TYPE = "api:BranchErrorResponse"
RESET_ERROR_TYPE = "api:ResetErrorResponse"
PREFIX_ERROR_TYPE = "api:PrefixErrorResponse"

BRANCH_OK = {"@type": "api:BranchResponse", "api:status": "api:success"}


def bad_api_document(expected: list[str], document: Any) -> GenericError:
    return GenericError(
        400,
        {
            "@type": "api:BadAPIDocumentErrorResponse",
            "api:status": "api:failure",
            "api:error": {
                "@type": "api:RequiredFieldsMissing",
                "api:expected": expected,
                "api:document": document,
            },
            "api:message": f"The input API document was missing required fields: {expected}",
        },
    )


def _error(kind: str, message: str, **fields: Any) -> ApiError:
    return ApiError({"@type": f"api:{kind}", **{f"api:{k}": v for k, v in fields.items()}}, message)


def _body_object(call: Call, expected: list[str]) -> dict[str, Any]:
    if not call.request.has_body:
        raise bad_api_document(expected, None)
    body = call.request.json_body()
    if not isinstance(body, dict):
        raise bad_api_document(expected, body)
    return body


def _origin_commit(call: Call, target: Descriptor, db: Database, origin: Any) -> Commit:
    if not isinstance(origin, str) or not origin:
        raise _error("BadOriginAbsoluteDescriptor", f"Bad origin descriptor: {origin}", absolute_descriptor=origin)
    if "/" not in origin.strip("/"):
        source = Descriptor("branch", target.org, target.db, target.repo, origin.strip("/"))
    else:
        parsed = parse(origin)
        if parsed is None:
            raise _error("BadOriginAbsoluteDescriptor", f"Bad origin descriptor: {origin}", absolute_descriptor=origin)
        source = parsed
    if source.kind not in ("branch", "commit"):
        raise _error(
            "NotASourceBranchDescriptorError",
            f"The origin is not a branch or commit: {origin}",
            absolute_descriptor=origin,
        )
    source_db = call.store.get(source.org, source.db)
    if source_db is None:
        raise _error(
            "UnknownOriginDatabase",
            f"Unknown origin database: {source.org}/{source.db}",
            database_name=source.db,
            organization_name=source.org,
        )
    require_access(call.user, SCHEMA_READ, source_db)
    if source.kind == "branch":
        head = source_db.head(source.name) if source.repo == "local" else None
        if head is None:
            raise _error("OriginBranchDoesNotExist", f"Origin branch does not exist: {source.name}", branch=origin)
        commit = head
    else:
        found = source_db.commits.get(source.name)
        if found is None:
            raise GenericError(
                400,
                {"api:status": "api:failure", "api:message": f"origin commit {source.name} does not exist"},
            )
        commit = found
    if source_db is not db:
        for ancestor in source_db.history(commit):
            db.commits.setdefault(ancestor.identifier, ancestor)
    return commit


def post_branch(call: Call) -> Response:
    target = parse(call.rest)
    if target is None:
        raise _error(
            "BadTargetAbsoluteDescriptor", f"Bad target descriptor: {call.rest}", absolute_descriptor=call.rest
        )
    if target.kind != "branch":
        raise _error(
            "NotATargetBranchDescriptorError",
            f"The target is not a branch descriptor: {target.text()}",
            absolute_descriptor=target.text(),
        )
    body = _body_object(call, ["origin"])
    db = database_of(call.store, target)
    if target.repo != "local":
        raise _error("NotLocalRepositoryError", f"Not a local repository: {target.repo}", repository=target.repo)
    require_access(call.user, BRANCH, db)
    with db.lock:
        if target.name in db.branches:
            raise _error("BranchExistsError", f"Branch already exists: {target.name}", branch_name=target.name)
        if "origin" in body:
            commit = _origin_commit(call, target, db, body["origin"])
            db.set_head(target.name, commit)
        else:
            main = db.head("main")
            context = dict(main.schema["@context"]) if main is not None else {}
            prefixes = body.get("prefixes")
            if isinstance(prefixes, dict):
                context.update(prefixes)
            db.set_head(target.name, db.initial_commit(context))
    call.store.save()
    return json_response(BRANCH_OK)


def delete_branch(call: Call) -> Response:
    target = parse(call.rest)
    if target is None or target.kind != "branch":
        raise _error(
            "NotABranchDescriptorError", f"Not a branch descriptor: {call.rest}", absolute_descriptor=call.rest
        )
    db = database_of(call.store, target)
    require_access(call.user, BRANCH, db)
    with db.lock:
        if target.name == "main":
            raise _error("BranchMainDeletionError", "The main branch can not be deleted")
        if target.name not in db.branches:
            raise _error("BranchDoesNotExistError", f"Branch does not exist: {target.name}", branch_name=target.name)
        db.drop_branch(target.name)
    call.store.save()
    return json_response(BRANCH_OK)


def post_reset(call: Call) -> Response:
    target = parse(call.rest)
    if target is None or target.kind != "branch":
        raise _error(
            "NotABranchDescriptorError", f"Not a branch descriptor: {call.rest}", absolute_descriptor=call.rest
        )
    body = _body_object(call, ["commit_descriptor"])
    ref = body.get("commit_descriptor")
    if not isinstance(ref, str):
        raise bad_api_document(["commit_descriptor"], body)
    db = database_of(call.store, target)
    commit_of(db, target)
    require_access(call.user, COMMIT_WRITE, db)
    require_access(call.user, INSTANCE_WRITE, db)
    if "/" in ref.strip("/"):
        source = parse(ref)
        if source is None:
            raise _error("InvalidRefPath", f"Invalid ref path: {ref}", ref_path=ref)
        if source.kind != "commit":
            raise _error("NotACommitDescriptorError", f"Not a commit descriptor: {ref}", descriptor=ref)
        if (source.org, source.db, source.repo) != (target.org, target.db, target.repo):
            raise _error(
                "DifferentRepositoriesError",
                f"The commit {ref} is in a different repository",
                source_repository=f"{source.org}/{source.db}/{source.repo}",
                target_repository=f"{target.org}/{target.db}/{target.repo}",
            )
        commit_id = source.name
    else:
        commit_id = ref.strip("/")
    with db.lock:
        commit = db.commits.get(commit_id)
        if commit is None:
            raise _error("UnresolvableCommitId", f"Unresolvable commit id: {commit_id}", commit_id=commit_id)
        db.set_head(target.name, commit)
    call.store.save()
    return json_response({"@type": "api:ResetResponse", "api:status": "api:success"})


def get_prefixes(call: Call) -> Response:
    descriptor = parse(call.rest)
    if descriptor is None or descriptor.kind not in ("branch", "commit"):
        raise _error("BadDescriptorPath", f"Bad descriptor path: {call.rest}", descriptor=call.rest)
    db = call.store.get(descriptor.org, descriptor.db)
    if db is None:
        raise unknown_database(descriptor.org, descriptor.db)
    commit = commit_of(db, descriptor)
    require_access(call.user, SCHEMA_READ, db)
    context = dict(commit.schema["@context"])
    context["@type"] = "Context"
    return json_response(context)
