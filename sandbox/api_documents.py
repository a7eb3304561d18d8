"""``/api/document/{path}``: reading and writing instance and schema documents.

The write functions (:func:`insert_documents`, :func:`replace_documents`, :func:`delete_documents`) are
independent of HTTP so that seeds go through exactly the same validation as a POST. Validation itself is
delegated to the schema/document modules; this module decides *what* changes and commits it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from sandbox import documents as docs_mod
from sandbox import migration as migration_mod
from sandbox import query as query_mod
from sandbox import schema as schema_mod
from sandbox.auth import COMMIT_READ, INSTANCE_READ, INSTANCE_WRITE, META_READ, SCHEMA_READ, SCHEMA_WRITE
from sandbox.context import Call, check_data_version, data_version, requested_data_version, require_access
from sandbox.descriptors import Descriptor, commit_of, database_of, parse
from sandbox.errors import ApiError, GenericError, UnhandledError
from sandbox.params import LIST, NON_EMPTY_STRING, OBJECT, Params, bad_parameter
from sandbox.store import Commit, Database, Instances, Schema
from sandbox.wire import (
    DATA_VERSION_HEADER,
    STREAM_TYPE,
    Response,
    dump_json,
    json_response,
    parse_json_stream,
    require_json_content_type,
)

# ``_system`` has no layers here; its data version is fixed for the life of the process (format as TerminusDB's)
SYSTEM_DATA_VERSION = f"system:{secrets.token_hex(20)}/{secrets.token_hex(20)}"

ERROR_TYPES = {
    "GET": "api:GetDocumentErrorResponse",
    "HEAD": "api:AccessDocumentErrorResponse",
    "POST": "api:InsertDocumentErrorResponse",
    "PUT": "api:ReplaceDocumentErrorResponse",
    "DELETE": "api:DeleteDocumentErrorResponse",
}


@dataclass(frozen=True)
class WriteFlags:
    """Flags of a document write (POST/PUT/DELETE), read from the query string only."""

    graph_type: str = "instance"
    full_replace: bool = False
    overwrite: bool = False
    merge_repeats: bool = False
    create: bool = False
    raw_json: bool = False
    require_migration: bool = False
    allow_destructive_migration: bool = False


@dataclass(frozen=True)
class Author:
    author: str
    message: str
    user: str | None


# --------------------------------------------------------------------------------------------- errors


def invalid_path(path: str) -> ApiError:
    return ApiError(
        {"@type": "api:InvalidResourcePath", "api:resource_path": path},
        f"The resource path '{path}' is not a valid descriptor",
    )


def document_not_found(doc_id: str, document: Any = None) -> ApiError:
    error: dict[str, Any] = {"@type": "api:DocumentNotFound", "api:document_id": doc_id}
    if document is not None:
        error["api:document"] = document
    return ApiError(error, f"Document not found: '{doc_id}'", status="api:not_found")


def id_already_exists(doc_id: str, document: Any) -> ApiError:
    return ApiError(
        {"@type": "api:DocumentIdAlreadyExists", "api:document_id": doc_id, "api:document": document},
        f'Tried to insert a new document with id "{doc_id}", but an object with that id already exists',
    )


def same_ids_mutated(duplicates: list[str]) -> ApiError:
    return ApiError(
        {"@type": "api:SameDocumentIdsMutatedInOneTransaction", "api:duplicate_ids": duplicates},
        f"The following document ids were mutated more than once in one transaction: {duplicates}",
    )


def _access_impossible(descriptor: Descriptor) -> ApiError:
    return ApiError(
        {"@type": "api:DocumentAccessImpossible", "api:descriptor": descriptor.text()},
        f"Documents can not be written through the descriptor '{descriptor.text()}'",
    )


# --------------------------------------------------------------------------------------------- reading


def _type_members(schema: Schema, type_name: str) -> set[str] | None:
    resolved = schema_mod.resolve_type_name(schema, type_name)
    if resolved is None:
        return None
    return schema_mod.subclasses(schema, resolved)


def _schema_key(schema: Schema, doc_id: str) -> str | None:
    if doc_id in schema:
        return doc_id
    return schema_mod.resolve_type_name(schema, doc_id)


def _expand_doc(schema: Schema, doc: dict[str, Any]) -> dict[str, Any]:
    """``compress_ids=false``: ``@id`` and reference values expanded with @base, ``@type`` and property keys
    with @schema; subdocuments likewise."""
    compiled = schema_mod.compile_schema(schema)
    vocab = compiled.schema_base
    type_name = doc.get("@type")
    info = compiled.classes.get(type_name) if isinstance(type_name, str) else None
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key == "@id" and isinstance(value, str):
            out[key] = docs_mod.expand_id(schema, value)
            continue
        if key == "@type" and isinstance(value, str):
            out[key] = value if ":" in value else vocab + value
            continue
        new_key = key if key.startswith("@") or ":" in key else vocab + key
        target = info.props.get(key) if info is not None else None
        target_info = compiled.classes.get(target.cls) if target is not None else None
        is_reference = target_info is not None and target_info.kind != "Enum"

        def convert(item: Any, is_reference: bool = is_reference) -> Any:
            if isinstance(item, dict) and "@id" in item:
                return _expand_doc(schema, item)
            if is_reference and isinstance(item, str):
                return docs_mod.expand_id(schema, item)
            return item

        out[new_key] = [convert(v) for v in value] if isinstance(value, list) else convert(value)
    return out


def _commit_graph_documents(db: Database) -> list[dict[str, Any]]:
    """The ``_commits`` graph: one ``Branch`` document per branch, then the commits (newest first)."""
    with db.lock:
        branches = dict(db.branches)
        commits = list(db.commits.values())
    result: list[dict[str, Any]] = []
    for name in sorted(branches):
        head = db.commits.get(branches[name])
        doc: dict[str, Any] = {"@id": f"Branch/{name}", "@type": "Branch"}
        if head is not None:
            doc["head"] = head.ref
        doc["name"] = name
        result.append(doc)
    for commit in sorted(commits, key=lambda c: c.timestamp, reverse=True):
        doc = commit.document(db.parent_of(commit))
        if "migration" in doc:
            doc["migration"] = commit.migration
        result.append(doc)
    return result


def _select(call: Call, params: Params, commit: Commit, graph: str) -> list[dict[str, Any]]:
    schema = commit.schema
    store_: dict[str, dict[str, Any]] = schema if graph == "schema" else commit.instances
    as_list = params.boolean("as_list", False)
    query = params.json_value("query", OBJECT) if "query" in params.body else None
    doc_id = params.text("id", non_empty=True)
    ids = params.json_value("ids", LIST)
    type_name = params.text("type", non_empty=True)
    selected: list[dict[str, Any]]
    if query is not None:
        if graph == "schema":
            raise ApiError(
                {"@type": "api:QueryIsOnlySupportedForInstanceGraphs"},
                "Query documents can only be used on the instance graph",
            )
        selected = query_mod.query_documents(schema, commit.instances, query, type_name)
    elif doc_id is not None:
        key = _schema_key(schema, doc_id) if graph == "schema" else docs_mod.compress_id(schema, doc_id)
        found = store_.get(key) if key is not None else None
        if found is None:
            if as_list:
                return []
            raise document_not_found(doc_id)
        selected = [found]
    elif ids is not None:
        selected = []
        for one in ids:
            if not isinstance(one, str):
                continue
            key = _schema_key(schema, one) if graph == "schema" else docs_mod.compress_id(schema, one)
            if key is not None and key in store_:
                selected.append(store_[key])
    elif type_name is not None:
        if graph == "schema":
            selected = [d for d in store_.values() if d.get("@type") == type_name]
        else:
            members = _type_members(schema, type_name)
            selected = [] if members is None else [d for d in store_.values() if d.get("@type") in members]
    else:
        selected = list(store_.values())
    skip = params.non_negative_integer("skip", 0) or 0
    count = params.non_negative_integer("count", None)
    end = None if count is None else skip + count
    return selected[skip:end]


def _render(docs: list[dict[str, Any]], as_list: bool, pretty: bool, headers: dict[str, str]) -> Response:
    if as_list:
        return Response(200, dump_json(docs, pretty), "application/json; charset=UTF-8", headers)
    body = b"".join(dump_json(d, pretty) + b"\n" for d in docs)
    return Response(200, body, STREAM_TYPE, headers, chunked=True)


def get_documents(call: Call) -> Response:
    body = call.request.json_object_body()
    params = Params(call.request.query, body)
    graph = params.graph_type()
    as_list = params.boolean("as_list", False)
    pretty = not params.boolean("minimized", True)
    params.boolean("unfold", True)
    prefixed = params.boolean("prefixed", True)
    compress = params.boolean("compress_ids", prefixed)
    for name in ("skip", "count"):
        params.non_negative_integer(name)
    requested = requested_data_version(call.request)
    descriptor = parse(call.rest)
    if descriptor is None:
        raise invalid_path(call.rest)
    if descriptor.kind == "system":
        if not call.user.superuser:
            raise _forbidden_system(call)
        check_data_version(requested, SYSTEM_DATA_VERSION)
        return _render([], as_list, pretty, {DATA_VERSION_HEADER: SYSTEM_DATA_VERSION})
    db = database_of(call.store, descriptor)
    if descriptor.kind == "commits":
        require_access(call.user, COMMIT_READ, db)
        check_data_version(requested, data_version(descriptor, db, None))
        docs = _commit_graph_documents(db)
        type_name = params.text("type")
        if type_name is not None:
            docs = [d for d in docs if d["@type"] == type_name]
        skip = params.non_negative_integer("skip", 0) or 0
        count = params.non_negative_integer("count", None)
        docs = docs[skip : None if count is None else skip + count]
        return _render(docs, as_list, pretty, {DATA_VERSION_HEADER: data_version(descriptor, db, None)})
    if descriptor.kind == "meta":
        require_access(call.user, META_READ, db)
        check_data_version(requested, data_version(descriptor, db, None))
        return _render([], as_list, pretty, {DATA_VERSION_HEADER: data_version(descriptor, db, None)})
    commit = commit_of(db, descriptor)
    require_access(call.user, SCHEMA_READ if graph == "schema" else INSTANCE_READ, db)
    check_data_version(requested, data_version(descriptor, db, commit))
    selected = _select(call, params, commit, graph)
    if not compress and graph == "instance":
        selected = [_expand_doc(commit.schema, d) for d in selected]
    return _render(selected, as_list, pretty, {DATA_VERSION_HEADER: data_version(descriptor, db, commit)})


def _forbidden_system(call: Call) -> GenericError:
    from sandbox.auth import forbidden

    return forbidden(call.user, INSTANCE_READ, "terminusdb://system/data/system")


def head_documents(call: Call) -> Response:
    params = Params(call.request.query)
    graph = params.graph_type()
    descriptor = parse(call.rest)
    if descriptor is None:
        raise invalid_path(call.rest)
    if descriptor.kind == "system":
        if not call.user.superuser:
            raise _forbidden_system(call)
        check_data_version(requested_data_version(call.request), SYSTEM_DATA_VERSION)
        return Response(200, b"", None, {DATA_VERSION_HEADER: SYSTEM_DATA_VERSION})
    db = database_of(call.store, descriptor)
    commit = None
    if descriptor.kind in ("branch", "commit"):
        commit = commit_of(db, descriptor)
    require_access(call.user, SCHEMA_READ if graph == "schema" else INSTANCE_READ, db)
    check_data_version(requested_data_version(call.request), data_version(descriptor, db, commit))
    return Response(200, b"", None, {DATA_VERSION_HEADER: data_version(descriptor, db, commit)})


# --------------------------------------------------------------------------------------------- writing


def _write_params(call: Call, method: str) -> tuple[Author, WriteFlags]:
    params = Params(call.request.query)
    author = params.text("author", required=True, non_empty=True)
    message = params.text("message", required=True, non_empty=True)
    graph = params.graph_type()
    flags = WriteFlags(
        graph_type=graph,
        full_replace=params.boolean("full_replace", False) if method == "POST" else False,
        overwrite=params.boolean("overwrite", False) if method == "POST" else False,
        merge_repeats=params.boolean("merge_repeats", False) if method != "DELETE" else False,
        create=params.boolean("create", False) if method == "PUT" else False,
        raw_json=params.boolean("raw_json", False) if method != "DELETE" else False,
        require_migration=params.boolean("require_migration", False),
        allow_destructive_migration=params.boolean("allow_destructive_migration", False),
    )
    assert author is not None and message is not None
    return Author(author, message, call.user.iri), flags


def _writable_target(call: Call, graph: str) -> tuple[Descriptor, Database]:
    descriptor = parse(call.rest)
    if descriptor is None:
        raise invalid_path(call.rest)
    if descriptor.kind == "system":
        raise _forbidden_system(call)
    db = database_of(call.store, descriptor)
    if descriptor.kind != "branch":
        if descriptor.kind == "commit":
            commit_of(db, descriptor)
        raise _access_impossible(descriptor)
    commit_of(db, descriptor)
    require_access(call.user, SCHEMA_WRITE if graph == "schema" else INSTANCE_WRITE, db)
    return descriptor, db


def post_documents(call: Call) -> Response:
    require_json_content_type(call.request)
    author, flags = _write_params(call, "POST")
    requested = requested_data_version(call.request)
    docs = parse_json_stream(call.request.body)
    descriptor, db = _writable_target(call, flags.graph_type)
    ids, head = insert_documents(call, db, descriptor, docs, flags, author, requested)
    call.store.save()
    return json_response(ids, headers={DATA_VERSION_HEADER: data_version(descriptor, db, head)})


def put_documents(call: Call) -> Response:
    require_json_content_type(call.request)
    author, flags = _write_params(call, "PUT")
    requested = requested_data_version(call.request)
    docs = parse_json_stream(call.request.body)
    descriptor, db = _writable_target(call, flags.graph_type)
    ids, head = replace_documents(call, db, descriptor, docs, flags, author, requested)
    call.store.save()
    return json_response(ids, headers={DATA_VERSION_HEADER: data_version(descriptor, db, head)})


def delete_documents_handler(call: Call) -> Response:
    author, flags = _write_params(call, "DELETE")
    params = Params(call.request.query)
    nuke = params.boolean("nuke", False)
    doc_id = params.text("id", non_empty=True)
    type_name = params.text("type", non_empty=True)
    requested = requested_data_version(call.request)
    body_ids: list[str] | None = None
    if call.request.has_body and not nuke and doc_id is None and type_name is None:
        body_ids = _delete_body_ids(call.request.body)
    descriptor, db = _writable_target(call, flags.graph_type)
    head = delete_documents(
        call,
        db,
        descriptor,
        flags,
        author,
        requested,
        nuke=nuke,
        doc_id=doc_id,
        type_name=type_name,
        ids=body_ids,
    )
    call.store.save()
    return Response(204, b"", None, {DATA_VERSION_HEADER: data_version(descriptor, db, head)})


def _delete_body_ids(raw: bytes) -> list[str]:
    """A DELETE body: a stream of ids and lists of ids; every id must be a non-empty string
    (TerminusDB reports anything else as a bad ``id`` parameter with the offending value)."""
    ids: list[str] = []
    for item in parse_json_stream(raw):
        if not isinstance(item, str) or item == "":
            raise bad_parameter("id", NON_EMPTY_STRING, item)
        ids.append(item)
    return ids


def _begin(db: Database, descriptor: Descriptor, requested: str | None) -> Commit:
    """Inside the database lock: the current head, after the optimistic-concurrency check."""
    head = commit_of(db, descriptor)
    check_data_version(requested, data_version(descriptor, db, head))
    return head


def _finish(
    call: Call | None,
    db: Database,
    descriptor: Descriptor,
    head: Commit,
    schema: Schema,
    instances: Instances,
    author: Author,
    migration: list[dict[str, Any]] | None = None,
    changed: set[str] | None = None,
) -> Commit:
    """Commit when something changed (otherwise the head, and so the data version, stays as it is).

    ``changed``: every id set or removed, when ``instances`` is ``dict(head's)`` plus those changes.

    Persisting is left to the HTTP handler, outside the database lock (saving takes every database's lock).
    """
    if schema is head.schema and instances is head.instances:
        return head
    encoded = json.dumps(migration) if migration else None
    return db.commit(
        descriptor.name,
        schema,
        instances,
        author=author.author,
        message=author.message,
        user=author.user,
        migration=encoded,
        changed=changed,
    )


def _split_context(docs: list[Any]) -> tuple[dict[str, Any] | None, list[Any], bool]:
    """(context document, other documents, context was first)."""
    context = None
    rest: list[Any] = []
    first = False
    for index, doc in enumerate(docs):
        if isinstance(doc, dict) and doc.get("@type") == "@context":
            context = doc
            first = first or index == 0
        else:
            rest.append(doc)
    return context, rest, first


def _duplicates(ids: list[str]) -> list[str]:
    seen: set[str] = set()
    dups: list[str] = []
    for one in ids:
        if one in seen and one not in dups:
            dups.append(one)
        seen.add(one)
    return dups


def _prepare_instances(schema: Schema, docs: list[Any], flags: WriteFlags) -> list[docs_mod.Prepared]:
    """Every document the write produces (nested ones included), after the duplicate-id check."""
    if flags.raw_json:
        prepared = [_raw_json_document(schema, doc) for doc in docs]
    else:
        prepared = docs_mod.prepare_instances(schema, docs)
    if not flags.merge_repeats:
        # as in TerminusDB, nested documents count: the same document twice in one request is refused
        dups = _duplicates([p.doc_id for p in prepared])
        if dups:
            raise same_ids_mutated([docs_mod.expand_id(schema, d) for d in dups])
    return prepared


def _reply_ids(schema: Schema, prepared: list[docs_mod.Prepared]) -> list[str]:
    """The ids a write returns: those of the top-level documents (full IRIs), once each."""
    return list(dict.fromkeys(docs_mod.expand_id(schema, p.doc_id) for p in prepared if p.top))


def _raw_json_document(schema: Schema, doc: Any) -> docs_mod.Prepared:
    if not isinstance(doc, dict):
        raise ApiError({"@type": "api:NotADocument", "api:document": doc}, "Raw JSON documents must be objects")
    given = doc.get("@id")
    if isinstance(given, str):
        doc_id = docs_mod.compress_id(schema, given)
    else:
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
        doc_id = f"JSONDocument/{digest}"
    stored = {"@id": doc_id, **{k: v for k, v in doc.items() if k != "@id"}}
    return docs_mod.Prepared(doc_id, stored, doc, True)


def _value_hash_class(schema: Schema, type_name: Any) -> bool:
    cls = schema.get(str(type_name), {})
    key = cls.get("@key")
    return isinstance(key, dict) and key.get("@type") == "ValueHash"


def insert_documents(
    call: Call | None,
    db: Database,
    descriptor: Descriptor,
    docs: list[Any],
    flags: WriteFlags,
    author: Author,
    requested: str | None = None,
) -> tuple[list[str], Commit]:
    """POST semantics; returns (reply ids, new head)."""
    if flags.graph_type == "schema":
        if flags.raw_json:
            raise ApiError(
                {"@type": "api:DocumentInsertionRawJSONSchemaDisallowed"},
                "Raw JSON documents can not be inserted into the schema graph",
            )
        return _insert_schema(call, db, descriptor, docs, flags, author, requested)
    with db.lock:
        head = _begin(db, descriptor, requested)
        schema = head.schema
        prepared = _prepare_instances(schema, docs, flags)
        if flags.full_replace:
            instances: Instances = {}
            for p in prepared:
                instances[p.doc_id] = p.stored
            if instances == head.instances:
                instances = head.instances
            changed: set[str] | None = None
        else:
            instances = head.instances
            changed = set()
            for p in prepared:
                doc_id, stored, submitted = p.doc_id, p.stored, p.submitted
                existing = instances.get(doc_id)
                if existing is not None and doc_id not in changed:
                    identical = existing == stored
                    # a nested document that is already stored as given adds nothing (its triples exist)
                    if identical and (flags.overwrite or not p.top or _value_hash_class(schema, stored.get("@type"))):
                        continue
                    if not flags.overwrite:
                        raise id_already_exists(docs_mod.expand_id(schema, doc_id), submitted)
                if instances is head.instances:
                    instances = dict(instances)
                instances[doc_id] = stored
                changed.add(doc_id)
        if instances is not head.instances and not db.schemaless:
            docs_mod.check_instances(schema, instances, changed)
        new_head = _finish(call, db, descriptor, head, schema, instances, author, changed=changed)
        return _reply_ids(schema, prepared), new_head


def _insert_schema(
    call: Call | None,
    db: Database,
    descriptor: Descriptor,
    docs: list[Any],
    flags: WriteFlags,
    author: Author,
    requested: str | None,
) -> tuple[list[str], Commit]:
    context, others, context_first = _split_context(docs)
    if flags.full_replace and not context_first:
        raise ApiError(
            {"@type": "api:NoContextFoundInSchema"},
            "A full replace of the schema requires a context document as the first element",
        )
    if context is not None and not flags.full_replace:
        raise ApiError(
            {"@type": "api:InsertingContext"},
            "Attempted to insert a context; use replace (PUT) or full_replace=true",
        )
    with db.lock:
        head = _begin(db, descriptor, requested)
        if flags.full_replace:
            assert context is not None
            new_schema: Schema = {"@context": schema_mod.check_context(context)}
        else:
            new_schema = dict(head.schema)
        prepared, submitted_ids, stored_ids = _prepare_schema(others, new_schema["@context"], flags)
        for submitted, key, doc in zip(submitted_ids, stored_ids, prepared, strict=True):
            if not flags.full_replace and key in head.schema:
                raise id_already_exists(submitted, doc)
            new_schema[key] = doc
        new_head = _commit_schema(call, db, descriptor, head, new_schema, flags, author)
    # the context of a full replace is written separately and is not among the returned ids (as in TerminusDB)
    return list(dict.fromkeys(submitted_ids)), new_head


def _prepare_schema(
    docs: list[Any], context: dict[str, Any], flags: WriteFlags
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """(stored documents, ids as submitted, stored ids) after shape checks and the duplicate check."""
    prepared = schema_mod.prepare_schema_documents(docs, context)
    submitted_ids = [str(doc.get("@id")) for doc in docs]
    stored_ids = [str(doc["@id"]) for doc in prepared]
    if not flags.merge_repeats:
        dups = _duplicates(stored_ids)
        if dups:
            raise same_ids_mutated(dups)
    return prepared, submitted_ids, stored_ids


def _commit_schema(
    call: Call | None,
    db: Database,
    descriptor: Descriptor,
    head: Commit,
    new_schema: Schema,
    flags: WriteFlags,
    author: Author,
) -> Commit:
    """The schema-write pipeline: whole-schema check, migration inference, re-check of all instances."""
    if new_schema == head.schema:
        return head
    schema_mod.check_schema(new_schema)
    instances = head.instances
    operations = migration_mod.infer_migration(head.schema, new_schema)
    if operations is None and flags.allow_destructive_migration:
        deleted = [key for key in head.schema if key != "@context" and key not in new_schema]
        if deleted:
            destructive = [{"@type": "DeleteClass", "class": key} for key in deleted]
            reduced, instances, _ = migration_mod.apply_operations(head.schema, instances, destructive, validate=False)
            rest = migration_mod.infer_migration(reduced, new_schema)
            if rest is not None:
                operations = destructive + rest
    if operations is None and flags.require_migration:
        raise UnhandledError("no_inferrable_migration")
    if not db.schemaless:
        docs_mod.check_instances(new_schema, instances, None)
    return _finish(call, db, descriptor, head, new_schema, instances, author, operations or None)


def replace_documents(
    call: Call | None,
    db: Database,
    descriptor: Descriptor,
    docs: list[Any],
    flags: WriteFlags,
    author: Author,
    requested: str | None = None,
) -> tuple[list[str], Commit]:
    """PUT semantics (``create=true`` inserts missing documents)."""
    if flags.graph_type == "schema":
        return _replace_schema(call, db, descriptor, docs, flags, author, requested)
    with db.lock:
        head = _begin(db, descriptor, requested)
        schema = head.schema
        prepared = _prepare_instances(schema, docs, flags)
        instances = head.instances
        changed: set[str] = set()
        for p in prepared:
            doc_id, stored, submitted = p.doc_id, p.stored, p.submitted
            existing = instances.get(doc_id)
            # nested documents are written whether or not they exist yet
            if existing is None and doc_id not in changed and not flags.create and p.top:
                raise document_not_found(docs_mod.expand_id(schema, doc_id), submitted)
            if existing == stored:
                continue
            if instances is head.instances:
                instances = dict(instances)
            instances[doc_id] = stored
            changed.add(doc_id)
        if changed and not db.schemaless:
            docs_mod.check_instances(schema, instances, changed)
        new_head = _finish(call, db, descriptor, head, schema, instances, author, changed=changed)
        return _reply_ids(schema, prepared), new_head


def _replace_schema(
    call: Call | None,
    db: Database,
    descriptor: Descriptor,
    docs: list[Any],
    flags: WriteFlags,
    author: Author,
    requested: str | None,
) -> tuple[list[str], Commit]:
    context, others, _ = _split_context(docs)
    with db.lock:
        head = _begin(db, descriptor, requested)
        new_schema = dict(head.schema)
        if context is not None:
            new_schema["@context"] = schema_mod.check_context(context)
        try:
            prepared, submitted_ids, stored_ids = _prepare_schema(others, new_schema["@context"], flags)
        except ApiError as exc:
            # TerminusDB maps this error for inserts only; a replace falls through to the generic 500
            if exc.error.get("@type") == "api:AtPrefixedPropertiesNotSupported":
                raise UnhandledError("at_prefixed_property_in_replace") from None
            raise
        for submitted, key, doc in zip(submitted_ids, stored_ids, prepared, strict=True):
            if key not in head.schema and not flags.create:
                raise document_not_found(submitted, doc)
            new_schema[key] = doc
        new_head = _commit_schema(call, db, descriptor, head, new_schema, flags, author)
    reply = (["@context"] if context is not None else []) + list(dict.fromkeys(submitted_ids))
    return reply, new_head


def delete_documents(
    call: Call | None,
    db: Database,
    descriptor: Descriptor,
    flags: WriteFlags,
    author: Author,
    requested: str | None = None,
    *,
    nuke: bool = False,
    doc_id: str | None = None,
    type_name: str | None = None,
    ids: list[str] | None = None,
) -> Commit:
    """DELETE semantics; target precedence nuke -> id -> type -> body list (else ``api:MissingTargets``)."""
    if not nuke and doc_id is None and type_name is None and ids is None:
        raise ApiError({"@type": "api:MissingTargets"}, "Missing target(s) for deletion")
    with db.lock:
        head = _begin(db, descriptor, requested)
        schema = head.schema
        if flags.graph_type == "schema":
            new_schema = _schema_after_delete(schema, nuke, doc_id, type_name, ids)
            return _commit_schema(call, db, descriptor, head, new_schema, flags, author)
        instances = head.instances
        if nuke:
            targets = list(instances)
        elif doc_id is not None:
            targets = [doc_id]
        elif type_name is not None:
            members = _type_members(schema, type_name) or set()
            targets = [key for key, doc in instances.items() if doc.get("@type") in members]
        else:
            targets = list(ids or [])
        new_instances = dict(instances)
        removed: set[str] = set()
        for target in targets:
            key = docs_mod.compress_id(schema, target)
            if key not in new_instances:
                if key in removed:
                    continue
                raise document_not_found(docs_mod.expand_id(schema, key))
            del new_instances[key]
            removed.add(key)
        if not removed:
            return head
        if not db.schemaless:
            docs_mod.check_instances(schema, new_instances, removed)
        return _finish(call, db, descriptor, head, schema, new_instances, author, changed=removed)


def _schema_after_delete(
    schema: Schema, nuke: bool, doc_id: str | None, type_name: str | None, ids: list[str] | None
) -> Schema:
    if nuke:
        return {"@context": schema["@context"]}
    if doc_id is not None:
        targets = [doc_id]
    elif type_name is not None:
        targets = [key for key, doc in schema.items() if doc.get("@type") == type_name]
    else:
        targets = list(ids or [])
    new_schema = dict(schema)
    for target in targets:
        key = _schema_key(schema, target)
        if key is None or key == "@context" or key not in new_schema:
            raise document_not_found(target)
        del new_schema[key]
    return new_schema
