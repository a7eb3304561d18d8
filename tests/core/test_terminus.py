"""TerminusGateway against the sandbox over real HTTP: every call, and every way a call can fail."""

from __future__ import annotations

import base64
import logging
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

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
    is_transient,
)
from core.settings import TerminusSettings
from core.terminus import Commit, MigrationResult, TerminusGateway, error_from_reply
from sandbox.server import SandboxServer

SCHEMA = [
    {"@type": "Class", "@id": "Person", "@key": {"@type": "Lexical", "@fields": ["name"]}, "name": "xsd:string"},
    {
        "@type": "Class",
        "@id": "Employee",
        "@inherits": "Person",
        "@key": {"@type": "Lexical", "@fields": ["name"]},
        "salary": {"@type": "Optional", "@class": "xsd:integer"},
    },
    {"@type": "Enum", "@id": "Colour", "@value": ["red", "blue"]},
]
AUDIT_OP = {
    "@type": "CreateClassProperty",
    "class": "Person",
    "property": "_created_by",
    "type": {"@type": "Optional", "@class": "xsd:string"},
}


def gateway_for(url: str, database: str = "oms", **settings: Any) -> TerminusGateway:
    return TerminusGateway(TerminusSettings(url=url, database=database, **settings))


@pytest.fixture
def gateway(sandbox: SandboxServer, fresh_db: str) -> Iterator[TerminusGateway]:
    with gateway_for(sandbox.url, fresh_db) as gw:
        yield gw


@pytest.fixture
def populated(gateway: TerminusGateway) -> TerminusGateway:
    """The fresh database with SCHEMA and three documents (two Person, one Employee)."""
    version = gateway.data_version()
    _, version = gateway.insert_documents(
        SCHEMA, author="tester", message="schema", graph_type="schema", data_version=version
    )
    gateway.insert_documents(
        [
            {"@type": "Person", "name": "alice"},
            {"@type": "Person", "name": "bob"},
            {"@type": "Employee", "name": "carol", "salary": 10},
        ],
        author="tester",
        message="people",
        data_version=version,
    )
    return gateway


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------------------------------------
# happy paths


def test_databases_can_be_checked_created_and_deleted(sandbox: SandboxServer) -> None:
    with gateway_for(sandbox.url, "gw_lifecycle_db") as gw:
        gw.check_connection()
        assert gw.database_exists() is False
        gw.create_database(label="Lifecycle")
        try:
            assert gw.database_exists() is True
            gw.create_database(exist_ok=True)
            with pytest.raises(AlreadyExists) as caught:
                gw.create_database()
            assert caught.value.name == "admin/gw_lifecycle_db"
        finally:
            gw.delete_database()
        assert gw.database_exists() is False
        with pytest.raises(DatabaseNotFound) as missing:
            gw.delete_database()
        assert missing.value.database == "admin/gw_lifecycle_db"
        gw.delete_database(missing_ok=True)


def test_fresh_database_has_a_context_only_schema_and_a_head(gateway: TerminusGateway) -> None:
    schema = gateway.schema()
    assert schema[0]["@type"] == "@context"
    assert len(schema) == 1
    head = gateway.head_commit()
    assert gateway.data_version() == f"branch:{head}"
    assert gateway.document_counts() == {}


def test_schema_is_returned_context_first(populated: TerminusGateway) -> None:
    schema = populated.schema()
    assert schema[0]["@type"] == "@context"
    assert {doc["@id"] for doc in schema[1:]} == {"Person", "Employee", "Colour"}


def test_document_counts_are_per_exact_type(populated: TerminusGateway) -> None:
    assert populated.document_counts() == {"Person": 2, "Employee": 1}


def test_document_counts_stream_many_documents(gateway: TerminusGateway) -> None:
    gateway.insert_documents(SCHEMA, author="t", message="schema", graph_type="schema")
    people = [{"@type": "Person", "name": f"p{i:05d}"} for i in range(3000)]  # gzip-compressed request body
    ids, _ = gateway.insert_documents(people, author="t", message="bulk")
    assert len(ids) == 3000
    assert gateway.document_counts() == {"Person": 3000}


def test_writes_return_short_ids_and_the_new_data_version(gateway: TerminusGateway) -> None:
    before = gateway.data_version()
    ids, version = gateway.insert_documents(SCHEMA, author="t", message="schema", graph_type="schema")
    assert ids == ["Person", "Employee", "Colour"]
    assert version != before
    assert version == gateway.data_version()
    ids, version = gateway.insert_documents(
        [{"@type": "Person", "name": "alice"}], author="t", message="alice", data_version=version
    )
    assert ids == ["Person/alice"]
    ids, version = gateway.replace_documents(
        [{"@type": "Employee", "@id": "Employee/dave", "name": "dave"}],
        author="t",
        message="dave",
        create=True,
        data_version=version,
    )
    assert ids == ["Employee/dave"]
    version = gateway.delete_documents(["Person/alice"], author="t", message="bye", data_version=version)
    assert version == gateway.data_version()
    assert gateway.document_counts() == {"Employee": 1}


def test_get_and_iter_documents(populated: TerminusGateway) -> None:
    doc, version = populated.get_document("Person/alice")
    assert doc == {"@id": "Person/alice", "@type": "Person", "name": "alice"}
    assert version == populated.data_version()
    context, _ = populated.get_document("@context", graph_type="schema")
    assert context["@type"] == "@context"
    people = list(populated.iter_documents(doc_type="Person"))
    assert {d["name"] for d in people} == {"alice", "bob", "carol"}  # subclasses included
    assert [d["name"] for d in populated.iter_documents(doc_type="Employee")] == ["carol"]
    assert len(list(populated.iter_documents(graph_type="schema"))) == 4


def test_migrate_dry_run_changes_nothing(populated: TerminusGateway) -> None:
    head = populated.head_commit()
    result = populated.migrate([AUDIT_OP], author="svc", message="dry", dry_run=True, verbose=True)
    assert result.schema_operations == 1
    assert result.schema is not None
    person = next(doc for doc in result.schema if doc.get("@id") == "Person")
    assert person["_created_by"] == {"@type": "Optional", "@class": "xsd:string"}
    assert populated.head_commit() == head
    assert "_created_by" not in next(d for d in populated.schema() if d.get("@id") == "Person")


def test_migrate_records_one_commit_with_the_operations(populated: TerminusGateway) -> None:
    result = populated.migrate([AUDIT_OP], author="svc_deployment", message="add audit fields")
    assert result == MigrationResult(schema_operations=1, instance_operations=0, schema=None)
    person = next(d for d in populated.schema() if d.get("@id") == "Person")
    assert person["_created_by"] == {"@type": "Optional", "@class": "xsd:string"}
    newest = populated.log(count=1)[0]
    assert isinstance(newest, Commit)
    assert (newest.author, newest.message) == ("svc_deployment", "add audit fields")
    assert newest.migration == [AUDIT_OP]
    assert newest.timestamp.tzinfo is not None
    assert populated.document_counts() == {"Person": 2, "Employee": 1}


def test_log_is_newest_first_and_chained(populated: TerminusGateway) -> None:
    commits = populated.log()
    assert [c.message for c in commits] == ["people", "schema"]
    assert commits[0].parent == commits[1].id
    assert commits[0].id == populated.head_commit()
    assert len(populated.log(count=1)) == 1


def test_history_lists_the_commits_that_touched_a_document(populated: TerminusGateway) -> None:
    populated.replace_documents(
        [{"@type": "Employee", "@id": "Employee/carol", "name": "carol", "salary": 11}], author="t", message="raise"
    )
    history = populated.history("Employee/carol")
    assert [entry["message"] for entry in history] == ["raise", "people"]
    assert history[0]["timestamp"].tzinfo is not None


def test_branches_can_be_created_listed_and_deleted(populated: TerminusGateway) -> None:
    populated.create_branch("scratch")
    assert populated.branches() == ["main", "scratch"]
    assert populated.head_commit(branch="scratch") == populated.head_commit()
    populated.insert_documents([{"@type": "Person", "name": "zed"}], author="t", message="on scratch", branch="scratch")
    assert populated.document_counts(branch="scratch") == {"Person": 3, "Employee": 1}
    assert populated.document_counts() == {"Person": 2, "Employee": 1}
    populated.create_branch("from_scratch", origin="scratch")
    assert populated.document_counts(branch="from_scratch")["Person"] == 3
    populated.delete_branch("from_scratch")
    populated.delete_branch("scratch")
    assert populated.branches() == ["main"]


def test_reset_moves_the_branch_back(populated: TerminusGateway) -> None:
    snapshot = populated.head_commit()
    populated.migrate([AUDIT_OP], author="svc", message="patch")
    assert populated.head_commit() != snapshot
    populated.reset(snapshot)
    assert populated.head_commit() == snapshot
    assert "_created_by" not in next(d for d in populated.schema() if d.get("@id") == "Person")


def test_gateway_database_and_branch_defaults_and_overrides(
    sandbox: SandboxServer, make_db: Callable[..., str]
) -> None:
    first, second = make_db("gw_a"), make_db("gw_b")
    with gateway_for(sandbox.url, first, branch="main") as gw:
        assert (gw.database, gw.branch) == (first, "main")
        gw.insert_documents(SCHEMA, author="t", message="s", graph_type="schema", database=second)
        gw.insert_documents([{"@type": "Person", "name": "x"}], author="t", message="x", database=second)
        assert [d["name"] for d in gw.iter_documents(database=second, doc_type="Person")] == ["x"]
        assert gw.get_document("Person/x", database=second)[0]["name"] == "x"
        assert gw.document_counts() == {}
    with TerminusGateway(TerminusSettings(url=sandbox.url, database="ignored"), database=second) as gw:
        assert gw.document_counts() == {"Person": 1}


def test_one_gateway_can_be_shared_between_threads(sandbox: SandboxServer, make_db: Callable[..., str]) -> None:
    names = [make_db("gw_thread") for _ in range(4)]
    results: dict[str, list[Any]] = {}
    with gateway_for(sandbox.url, names[0]) as gw:

        def work(name: str) -> None:
            gw.insert_documents(SCHEMA, author="t", message="s", graph_type="schema", database=name)
            gw.insert_documents([{"@type": "Person", "name": name}], author="t", message="p", database=name)
            doc, _ = gw.get_document(f"Person/{name}", database=name)  # official client path
            results[name] = [doc["name"], [d["name"] for d in gw.iter_documents(database=name)]]

        threads = [threading.Thread(target=work, args=(name,)) for name in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results == {name: [name, [name]] for name in names}


def test_empty_password_without_token_is_a_config_error(sandbox: SandboxServer) -> None:
    with pytest.raises(ConfigError, match="TERMINUS_DB_PASSWORD"):
        gateway_for(sandbox.url, password="")


def test_repr_and_url_hold_no_credentials(sandbox: SandboxServer) -> None:
    with gateway_for(sandbox.url, password="pw-in-repr", token="tok-in-repr") as gw:
        assert gw.url == sandbox.url
        assert "pw-in-repr" not in repr(gw)
        assert "tok-in-repr" not in repr(gw)
        assert sandbox.url in repr(gw)


# ------------------------------------------------------------------------------------------------------------
# not found, conflicts, rejected requests


def test_missing_database_and_branch(sandbox: SandboxServer, fresh_db: str) -> None:
    with gateway_for(sandbox.url, "no_such_db") as gw:
        for call in (gw.schema, gw.document_counts, gw.head_commit, gw.data_version, gw.branches):
            with pytest.raises(DatabaseNotFound) as caught:
                call()
            assert caught.value.database == "admin/no_such_db"
        with pytest.raises(DatabaseNotFound):
            gw.migrate([AUDIT_OP], author="t", message="m")
    with gateway_for(sandbox.url, fresh_db, branch="nope") as gw:
        for call in (gw.schema, gw.document_counts, gw.data_version, gw.head_commit):
            with pytest.raises(BranchNotFound) as missing:
                call()
            assert missing.value.branch == "nope"
        with pytest.raises(BranchNotFound):
            gw.create_branch("child")
        with pytest.raises(BranchNotFound):
            gw.delete_branch("nope")


def test_missing_document(populated: TerminusGateway) -> None:
    with pytest.raises(DocumentNotFound) as caught:
        populated.get_document("Person/nobody")
    assert caught.value.document_id == "Person/nobody"
    with pytest.raises(DocumentNotFound):
        populated.delete_documents(["Person/nobody"], author="t", message="m")


def test_existing_document_and_branch(populated: TerminusGateway) -> None:
    with pytest.raises(AlreadyExists) as doc:
        populated.insert_documents([{"@type": "Person", "name": "alice"}], author="t", message="again")
    assert (doc.value.kind, doc.value.name) == ("document", "Person/alice")
    populated.create_branch("twice")
    with pytest.raises(AlreadyExists) as branch:
        populated.create_branch("twice")
    assert (branch.value.kind, branch.value.name) == ("branch", "twice")


def test_schema_check_failure_from_a_document_write(populated: TerminusGateway) -> None:
    with pytest.raises(SchemaCheckFailed) as caught:
        populated.insert_documents(
            [{"@type": "Employee", "name": "x", "nickname": "y"}], author="t", message="unknown property"
        )
    assert caught.value.witnesses
    assert caught.value.status == 400
    assert "nickname" in caught.value.summary
    assert not is_transient(caught.value)


def test_schema_check_failure_from_a_migration_generic_shape(populated: TerminusGateway) -> None:
    # Validation after a migration fails with TerminusDB's generic {"system:witnesses": [...]} reply.
    operation = {**AUDIT_OP, "property": "pet", "type": {"@type": "Optional", "@class": "NoSuchClass"}}
    with pytest.raises(SchemaCheckFailed) as caught:
        populated.migrate([operation], author="t", message="dangling range")
    assert caught.value.witnesses[0]["@type"] == "not_a_class_or_base_type"
    assert "not_a_class_or_base_type" in str(caught.value)
    assert "NoSuchClass" in caught.value.summary


def test_generic_and_api_schema_check_shapes_map_alike() -> None:
    generic = error_from_reply(
        400,
        b'{"api:message":"Schema check failure","api:status":"api:failure",'
        b'"system:witnesses":[{"@type":"instance_not_cardinality_one","instance":"Person/a"}]}',
        url="http://x",
    )
    api = error_from_reply(
        400,
        {
            "@type": "api:InsertDocumentErrorResponse",
            "api:status": "api:failure",
            "api:error": {
                "@type": "api:SchemaCheckFailure",
                "api:witnesses": [{"@type": "instance_not_cardinality_one", "instance": "Person/a"}],
            },
            "api:message": "Schema check failure",
        },
        url="http://x",
    )
    assert isinstance(generic, SchemaCheckFailed)
    assert isinstance(api, SchemaCheckFailed)
    assert generic.summary == api.summary
    assert "instance_not_cardinality_one" in generic.summary


def test_reply_mapping_covers_the_remaining_shapes() -> None:
    unknown_origin = error_from_reply(
        400,
        {"api:error": {"@type": "api:OriginBranchDoesNotExist", "api:branch": "admin/db/local/branch/gone"}},
        url="u",
    )
    assert isinstance(unknown_origin, BranchNotFound)
    descriptor = error_from_reply(
        404,
        {"api:error": {"@type": "api:UnresolvableAbsoluteDescriptor", "api:absolute_descriptor": "a/b/local/branch/x"}},
        url="u",
    )
    assert isinstance(descriptor, BranchNotFound)
    assert descriptor.branch == "x"
    assert isinstance(
        error_from_reply(400, {"api:error": {"@type": "api:DatabaseAlreadyExists"}}, url="u"), AlreadyExists
    )
    server = error_from_reply(502, b"<html>Bad gateway</html>", url="u")
    assert isinstance(server, TerminusServerError)
    assert server.status == 502
    other = error_from_reply(405, b"", url="u")
    assert isinstance(other, RequestRejected)


def test_data_version_conflict(populated: TerminusGateway) -> None:
    stale = populated.data_version()
    populated.insert_documents([{"@type": "Person", "name": "dan"}], author="t", message="moves the head")
    with pytest.raises(DataVersionConflict) as caught:
        populated.insert_documents([{"@type": "Person", "name": "eve"}], author="t", message="late", data_version=stale)
    assert caught.value.requested == stale
    assert caught.value.actual == populated.data_version()
    assert is_transient(caught.value)
    with pytest.raises(DataVersionConflict):
        populated.delete_documents(["Person/dan"], author="t", message="late", data_version=stale)


def test_rejected_migration_operations(populated: TerminusGateway) -> None:
    populated.migrate([AUDIT_OP], author="t", message="first")
    with pytest.raises(RequestRejected) as again:
        populated.migrate([AUDIT_OP], author="t", message="again")
    assert again.value.api_type == "api:SchemaOperationFailed"
    assert not is_transient(again.value)
    with pytest.raises(RequestRejected) as unknown:
        populated.migrate([{"@type": "NoSuchOperation"}], author="t", message="m")
    assert unknown.value.api_type == "api:UnknownSchemaMigrationOperation"
    required_without_default = {**AUDIT_OP, "property": "must", "type": "xsd:string"}
    with pytest.raises(TerminusServerError) as unmapped:
        populated.migrate([required_without_default], author="t", message="m")
    assert unmapped.value.status == 500


# ------------------------------------------------------------------------------------------------------------
# credentials and permissions


def test_wrong_password_is_an_authentication_failure(sandbox: SandboxServer, fresh_db: str) -> None:
    with gateway_for(sandbox.url, fresh_db, password="not-the-password") as gw:
        with pytest.raises(AuthenticationFailed) as caught:
            gw.check_connection()
        assert "TERMINUS_DB_PASSWORD" in str(caught.value)
        with pytest.raises(AuthenticationFailed):
            gw.schema()
        with pytest.raises(AuthenticationFailed):
            gw.database_exists()


def test_unknown_token_is_an_authentication_failure(sandbox: SandboxServer) -> None:
    with gateway_for(sandbox.url, token="forged-token") as gw:
        with pytest.raises(AuthenticationFailed) as caught:
            gw.check_connection()
        assert caught.value.using_token
        assert "TERMINUS_DB_TOKEN" in str(caught.value)


def test_token_is_sent_as_bearer_and_used_by_every_path(sandbox: SandboxServer, populated: TerminusGateway) -> None:
    with gateway_for(sandbox.url, populated.database, token="reader-token", password="wrong") as gw:
        gw.check_connection()
        assert gw.document_counts() == {"Person": 2, "Employee": 1}  # httpx path
        assert gw.schema()[0]["@type"] == "@context"  # official client path
        assert gw.get_document("Person/alice")[0]["name"] == "alice"


def test_user_without_schema_rights_is_told_what_it_needs(sandbox: SandboxServer, populated: TerminusGateway) -> None:
    with gateway_for(sandbox.url, populated.database, token="writer-token") as gw:
        gw.insert_documents([{"@type": "Person", "name": "writer-made"}], author="w", message="ok")
        with pytest.raises(PermissionDenied) as caught:
            gw.migrate([AUDIT_OP], author="w", message="not allowed")
        assert "schema:admin" in str(caught.value)
        assert caught.value.status == 403
        assert not is_transient(caught.value)
        with pytest.raises(PermissionDenied):
            gw.insert_documents([{"@type": "Class", "@id": "X"}], author="w", message="m", graph_type="schema")
    with gateway_for(sandbox.url, "reader_cannot_create", token="reader-token") as gw, pytest.raises(PermissionDenied):
        gw.create_database()


def test_secrets_never_reach_errors_or_logs(
    sandbox: SandboxServer, fresh_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = "tok-3f9a-super-secret"
    password = "pw-77c1-super-secret"
    basic = base64.b64encode(f"admin:{password}".encode()).decode()
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    for settings in ({"token": token}, {"password": password}):
        with gateway_for(sandbox.url, fresh_db, **settings) as gw:
            seen.append(repr(gw))
            for call in (gw.check_connection, gw.schema, gw.document_counts):
                with pytest.raises(TerminusError) as caught:
                    call()
                seen += [str(caught.value), repr(caught.value), repr(caught.value.__dict__)]
    with gateway_for(sandbox.url, fresh_db, token="writer-token") as gw, pytest.raises(PermissionDenied) as denied:
        gw.migrate([AUDIT_OP], author="w", message="m")
    seen += [str(denied.value), repr(denied.value.__dict__)]
    with gateway_for(f"http://127.0.0.1:{free_port()}", token=token) as gw, pytest.raises(TerminusUnreachable) as down:
        gw.check_connection()
    seen.append(str(down.value))
    text = "\n".join(seen) + caplog.text
    for secret in (token, password, basic, "writer-token"):
        assert secret not in text


# ------------------------------------------------------------------------------------------------------------
# transport failures


def test_closed_port_is_unreachable_with_a_way_forward() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with gateway_for(url) as gw:
        for call in (gw.check_connection, gw.schema, gw.document_counts, gw.database_exists):
            with pytest.raises(TerminusUnreachable) as caught:
                call()
            message = str(caught.value)
            assert url in message
            assert "connection refused" in message
            assert "oms-audit sandbox" in message
            assert "TERMINUS_DB_URL" in message
            assert is_transient(caught.value)


def test_dropped_connection_is_unreachable_and_a_retry_succeeds(
    populated: TerminusGateway, faults: Callable[..., dict]
) -> None:
    faults(method="POST", path_prefix=f"/api/migration/admin/{populated.database}", times=1, action="drop")
    with pytest.raises(TerminusUnreachable) as caught:
        populated.migrate([AUDIT_OP], author="t", message="m")
    assert is_transient(caught.value)
    assert populated.migrate([AUDIT_OP], author="t", message="m").schema_operations == 1


def test_dropped_connection_on_an_official_client_call(populated: TerminusGateway, faults: Callable[..., dict]) -> None:
    populated.schema()  # connect the client first, so the fault hits the call itself
    faults(method="GET", path_prefix=f"/api/document/admin/{populated.database}", times=1, action="drop")
    with pytest.raises(TerminusUnreachable):
        populated.schema()
    faults(method="POST", path_prefix="/api/branch/", times=1, action="drop")
    with pytest.raises(TerminusUnreachable):
        populated.create_branch("dropped")


def test_503_is_a_transient_server_error(populated: TerminusGateway, faults: Callable[..., dict]) -> None:
    faults(method="POST", path_prefix="/api/migration/", times=1, action="status", status=503)
    with pytest.raises(TerminusServerError) as caught:
        populated.migrate([AUDIT_OP], author="t", message="m")
    assert caught.value.status == 503
    assert is_transient(caught.value)
    faults(method="GET", path_prefix="/api/log/", times=1, action="status", status=503)
    with pytest.raises(TerminusServerError):
        populated.head_commit()


def test_slow_server_times_out(sandbox: SandboxServer, populated: TerminusGateway, faults: Callable[..., dict]) -> None:
    with gateway_for(sandbox.url, populated.database, timeout_seconds=0.3) as gw:
        gw.schema()  # connected
        faults(method="POST", path_prefix="/api/migration/", times=1, action="delay", seconds=1.5)
        with pytest.raises(TerminusTimeout) as caught:
            gw.migrate([AUDIT_OP], author="t", message="m")
        assert "TERMINUS_DB_TIMEOUT_SECONDS" in str(caught.value)
        assert is_transient(caught.value)
        faults(method="GET", path_prefix="/api/log/", times=1, action="delay", seconds=1.5)
        with pytest.raises(TerminusTimeout):
            gw.log()  # official client path: the gateway gives it a timeout


class _TruncatingHandler(socketserver.StreamRequestHandler):
    """Answers /api/info properly; everything else promises 1000 bytes, sends a few and hangs up."""

    def handle(self) -> None:
        request_line = self.rfile.readline().decode("latin-1")
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        if " /api/info" in request_line:
            body = b'{"@type":"api:InfoResponse","api:status":"api:success","api:info":{}}'
        else:
            body = b'[{"@id":"Person/a","@type":"Per'
        length = len(body) if " /api/info" in request_line else 1000
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
        )
        try:
            self.wfile.write(head.encode() + body)
            self.wfile.flush()
        except OSError:  # the client may hang up first; that is the point of this server
            pass


@pytest.fixture
def truncating_server() -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _TruncatingHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_connection_dropped_mid_reply_is_unreachable(truncating_server: str) -> None:
    with gateway_for(truncating_server) as gw:
        gw.check_connection()
        for call in (gw.document_counts, gw.schema, gw.log):
            with pytest.raises(TerminusUnreachable) as caught:
                call()
            assert "dropped" in str(caught.value)
            assert is_transient(caught.value)
        with pytest.raises(TerminusUnreachable):
            gw.migrate([AUDIT_OP], author="t", message="m")
