"""``/api/branch/{path}`` (create/delete), ``/api/reset/{path}`` and ``/api/prefixes/{path}``.

Branches only point at commits; commits are immutable and shared, so branching and resetting are O(1).
"""

from __future__ import annotations

import time
from typing import Any

from sandbox.auth import BRANCH, COMMIT_WRITE, INSTANCE_WRITE, SCHEMA_READ
from sandbox.context import Call, require_access
from sandbox.descriptors import Descriptor, commit_of, database_of, parse, unknown_database
from sandbox.errors import ApiError, GenericError
from sandbox.store import Commit, Database, new_commit_id
from sandbox.wire import Response, json_response

BRANCH_ERROR_TYPE = "api:BranchErrorResponse"
RESET_ERROR_TYPE = "api:ResetErrorResponse"
SQUASH_ERROR_TYPE = "api:SquashErrorResponse"
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


def _not_a_branch(path: str) -> ApiError:
    return _error("NotABranchDescriptorError", f"The path {path} is not a branch descriptor", absolute_descriptor=path)


def _quoted(text: str) -> str:
    """TerminusDB's ``~q`` rendering of an atom/string in messages."""
    return "'" + text.replace("'", "\\'") + "'"


def _body_object(call: Call, expected: list[str]) -> dict[str, Any]:
    if not call.request.has_body:
        raise bad_api_document(expected, None)
    body = call.request.json_body()
    if not isinstance(body, dict):
        raise bad_api_document(expected, body)
    return body


def _origin_commit(call: Call, target: Descriptor, db: Database, origin: Any) -> Commit:
    if not isinstance(origin, str) or not origin:
        raise _error(
            "BadOriginAbsoluteDescriptor",
            f"Invalid origin absolute resource descriptor: {_quoted(origin)}",
            absolute_descriptor=origin,
        )
    if "/" not in origin.strip("/"):
        source = Descriptor("branch", target.org, target.db, target.repo, origin.strip("/"))
    else:
        parsed = parse(origin)
        if parsed is None:
            raise _error(
                "BadOriginAbsoluteDescriptor",
                f"Invalid origin absolute resource descriptor: {_quoted(origin)}",
                absolute_descriptor=origin,
            )
        source = parsed
    if source.kind not in ("branch", "commit"):
        raise _error(
            "NotASourceBranchDescriptorError",
            f"The source path {_quoted(source.text())} is not a valid descriptor for branching",
            absolute_descriptor=source.text(),
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
            raise _error(
                "OriginBranchDoesNotExist", f"Origin branch does not exist as specified {origin}", branch=origin
            )
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
            f"The target {_quoted(target.text())} is not a branch descriptor",
            absolute_descriptor=target.text(),
        )
    body = _body_object(call, ["origin"])
    db = database_of(call.store, target)
    if target.repo != "local":
        raise _error(
            "NotLocalRepositoryError",
            f"Attempt to branch from remote repository {target.text()}",
            absolute_descriptor=target.text(),
        )
    require_access(call.user, BRANCH, db)
    with db.lock:
        if target.name in db.branches:
            raise _error("BranchExistsError", f"Branch {target.name} already exists", branch_name=target.name)
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
        raise _not_a_branch(call.rest)
    db = database_of(call.store, target)
    require_access(call.user, BRANCH, db)
    with db.lock:
        if target.name == "main":
            raise _error("BranchMainDeletionError", "Branch 'main' should not be deleted as it is special")
        if target.name not in db.branches:
            raise _error("BranchDoesNotExistError", f"Branch {target.name} does not exist", branch_name=target.name)
        db.drop_branch(target.name)
    call.store.save()
    return json_response(BRANCH_OK)


def post_reset(call: Call) -> Response:
    target = parse(call.rest)
    if target is None or target.kind != "branch":
        raise _not_a_branch(call.rest)
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
            raise _error("InvalidRefPath", f"Invalid ref path: {ref}", ref=ref)
        if source.kind != "commit":
            raise _error(
                "NotACommitDescriptorError",
                f"The path {source.text()} is not a commit descriptor",
                absolute_descriptor=source.text(),
            )
        if (source.org, source.db, source.repo) != (target.org, target.db, target.repo):
            raise _error(
                "DifferentRepositoriesError",
                f"The repository of the path to be reset {target.text()} is not in the same repository as the "
                f"commit which is in {source.text()}",
                source_absolute_descriptor=target.text(),
                target_absolute_descriptor=source.text(),
            )
        commit_id = source.name
    else:
        commit_id = ref.strip("/")
    with db.lock:
        commit = db.commits.get(commit_id)
        if commit is None:
            raise _error("UnresolvableCommitId", f"Invalid ref path: {commit_id}", commit=commit_id)
        db.set_head(target.name, commit)
    call.store.save()
    return json_response({"@type": "api:ResetResponse", "api:status": "api:success"})


def post_squash(call: Call) -> Response:
    """A new parentless commit holding the branch's current state; the branch itself does not move."""
    target = parse(call.rest)
    if target is None or target.kind != "branch":
        raise _not_a_branch(call.rest)
    body = _body_object(call, ["commit_info"])
    info = body.get("commit_info")
    if not isinstance(info, dict):
        raise bad_api_document(["commit_info"], body)
    db = database_of(call.store, target)
    require_access(call.user, COMMIT_WRITE, db)
    with db.lock:
        head = db.head(target.name) if target.repo == "local" else None
        if head is None:
            raise _error(
                "UnresolvableAbsoluteDescriptor",
                f"The path {target.text()} can not be resolved to a resource",
                absolute_descriptor=target.text(),
            )
        squashed = Commit(
            identifier=new_commit_id(),
            author=str(info.get("author", "")),
            message=str(info.get("message", "")),
            timestamp=time.time(),
            schema=head.schema,
            snapshot=head.instances,
            schema_layer=head.schema_layer,
            instance_layer=head.instance_layer,
            user=call.user.iri,
        )
        db.add_commit(squashed)
    call.store.save()
    repo = f"{target.org}/{target.db}/{target.repo}"
    return json_response(
        {
            "@type": "api:SquashResponse",
            "api:commit": f"{repo}/commit/{squashed.identifier}",
            "api:old_commit": f"{repo}/commit/{head.identifier}",
            "api:status": "api:success",
        }
    )


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
