"""The gateway's contract with TerminusDB, checked against the sandbox and, when available, a real server.

Every test runs once per server source:

* ``sandbox`` — always, on the project's sandbox server (so these checks are never dead code);
* ``terminusdb`` — a real TerminusDB, only when ``TERMINUSDB_TEST_URL`` is set (credentials from
  ``TERMINUSDB_TEST_USER`` / ``TERMINUSDB_TEST_PASSWORD``, default ``admin`` / ``root``), e.g.::

      docker run --rm -p 127.0.0.1:6363:6363 terminusdb/terminusdb-server
      TERMINUSDB_TEST_URL=http://127.0.0.1:6363 uv run pytest tests/contract -q

A difference between the two columns is a sandbox bug (or a TerminusDB change) to fix before trusting tests
that run against the sandbox alone.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from core.errors import (
    AlreadyExists,
    BranchNotFound,
    DatabaseNotFound,
    DataVersionConflict,
    DocumentNotFound,
    RequestRejected,
    SchemaCheckFailed,
    TerminusServerError,
)
from core.settings import TerminusSettings
from core.terminus import TerminusGateway

SCHEMA = [
    {"@type": "Class", "@id": "Party", "@abstract": [], "name": "xsd:string"},
    {
        "@type": "Class",
        "@id": "Person",
        "@inherits": "Party",
        "@key": {"@type": "Lexical", "@fields": ["name"]},
        "age": {"@type": "Optional", "@class": "xsd:integer"},
    },
    {"@type": "Class", "@id": "Company", "@inherits": "Party", "@key": {"@type": "Lexical", "@fields": ["name"]}},
    {"@type": "Enum", "@id": "Status", "@value": ["active", "retired"]},
]
DOCUMENTS = [
    {"@type": "Person", "name": "ada", "age": 36},
    {"@type": "Person", "name": "alan"},
    {"@type": "Company", "name": "acme"},
]
CREATED_BY = {
    "@type": "CreateClassProperty",
    "class": "Party",
    "property": "_created_by",
    "type": {"@type": "Optional", "@class": "xsd:string"},
}


@dataclass(frozen=True)
class ContractServer:
    source: str
    url: str
    user: str
    password: str

    def gateway(self, database: str) -> TerminusGateway:
        settings = TerminusSettings(url=self.url, user=self.user, password=self.password, database=database)
        return TerminusGateway(settings)


@pytest.fixture(params=["sandbox", "terminusdb"])
def server(request: pytest.FixtureRequest) -> ContractServer:
    if request.param == "sandbox":
        sandbox = request.getfixturevalue("sandbox")
        return ContractServer("sandbox", sandbox.url, "admin", "root")
    url = os.environ.get("TERMINUSDB_TEST_URL")
    if not url:
        pytest.skip(
            "no real TerminusDB: set TERMINUSDB_TEST_URL (and TERMINUSDB_TEST_USER/TERMINUSDB_TEST_PASSWORD, "
            "default admin/root) to run the contract against one"
        )
    return ContractServer(
        "terminusdb",
        url,
        os.environ.get("TERMINUSDB_TEST_USER", "admin"),
        os.environ.get("TERMINUSDB_TEST_PASSWORD", "root"),
    )


def unique_name() -> str:
    return f"oms_contract_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def gateway(server: ContractServer) -> Iterator[TerminusGateway]:
    """A gateway on a new database (deleted afterwards)."""
    with server.gateway(unique_name()) as gw:
        gw.create_database(label="oms-audit contract test")
        try:
            yield gw
        finally:
            gw.delete_database(missing_ok=True)


@pytest.fixture
def populated(gateway: TerminusGateway) -> TerminusGateway:
    gateway.insert_documents(SCHEMA, author="contract", message="schema", graph_type="schema")
    gateway.insert_documents(DOCUMENTS, author="contract", message="documents")
    return gateway


def class_doc(gateway: TerminusGateway, name: str, *, branch: str | None = None) -> dict:
    return next(doc for doc in gateway.schema(branch=branch) if doc.get("@id") == name)


def test_database_lifecycle(server: ContractServer) -> None:
    with server.gateway(unique_name()) as gw:
        gw.check_connection()
        assert not gw.database_exists()
        gw.create_database()
        try:
            assert gw.database_exists()
            gw.create_database(exist_ok=True)
            with pytest.raises(AlreadyExists):
                gw.create_database()
            assert gw.schema() == [
                {"@type": "@context", "@base": "terminusdb:///data/", "@schema": "terminusdb:///schema#"}
            ]
            initial = gw.log()
            assert len(initial) == 1
            assert gw.data_version() == f"branch:{initial[0].id}"
        finally:
            gw.delete_database()
        assert not gw.database_exists()
        with pytest.raises(DatabaseNotFound):
            gw.delete_database()
        with pytest.raises(DatabaseNotFound):
            gw.schema()


def test_schema_insert_and_read(gateway: TerminusGateway) -> None:
    ids, version = gateway.insert_documents(SCHEMA, author="contract", message="schema", graph_type="schema")
    assert ids == ["Party", "Person", "Company", "Status"]
    assert version == gateway.data_version()
    schema = gateway.schema()
    assert schema[0]["@type"] == "@context"
    assert {doc["@id"] for doc in schema[1:]} == {"Party", "Person", "Company", "Status"}
    person = class_doc(gateway, "Person")
    assert person["@inherits"] == "Party"  # a single parent comes back as a plain string
    assert person["age"] == {"@type": "Optional", "@class": "xsd:integer"}
    with pytest.raises(AlreadyExists):
        gateway.insert_documents(SCHEMA[:1], author="contract", message="again", graph_type="schema")


def test_documents_and_counts(populated: TerminusGateway) -> None:
    assert populated.document_counts() == {"Person": 2, "Company": 1}
    doc, version = populated.get_document("Person/ada")
    assert doc == {"@id": "Person/ada", "@type": "Person", "name": "ada", "age": 36}
    assert version == populated.data_version()
    assert {d["name"] for d in populated.iter_documents(doc_type="Party")} == {"ada", "alan", "acme"}
    with pytest.raises(DocumentNotFound):
        populated.get_document("Person/nobody")
    with pytest.raises(SchemaCheckFailed):
        populated.insert_documents([{"@type": "Person", "name": "bob", "nickname": "b"}], author="c", message="m")


def test_migration_adds_an_optional_property(populated: TerminusGateway) -> None:
    head = populated.head_commit()
    dry = populated.migrate([CREATED_BY], author="svc_deployment", message="dry", dry_run=True, verbose=True)
    assert dry.schema_operations == 1
    assert dry.instance_operations == 0
    assert dry.schema is not None
    assert dry.schema[0]["@type"] == "@context"
    assert populated.head_commit() == head
    assert "_created_by" not in class_doc(populated, "Party")

    result = populated.migrate([CREATED_BY], author="svc_deployment", message="add _created_by")
    assert (result.schema_operations, result.instance_operations, result.schema) == (1, 0, None)
    assert class_doc(populated, "Party")["_created_by"] == {"@type": "Optional", "@class": "xsd:string"}
    assert "_created_by" not in class_doc(populated, "Person")  # inherited, not re-declared
    newest = populated.log(count=1)[0]
    assert (newest.author, newest.message, newest.parent) == ("svc_deployment", "add _created_by", head)
    assert newest.migration == [CREATED_BY]
    assert populated.document_counts() == {"Person": 2, "Company": 1}
    populated.replace_documents(
        [{"@type": "Person", "@id": "Person/alan", "name": "alan", "_created_by": "u-1"}], author="c", message="stamp"
    )
    assert populated.get_document("Person/alan")[0]["_created_by"] == "u-1"


def test_migration_errors(populated: TerminusGateway) -> None:
    populated.migrate([CREATED_BY], author="c", message="first")
    with pytest.raises(RequestRejected) as duplicate:
        populated.migrate([CREATED_BY], author="c", message="again")
    assert duplicate.value.api_type == "api:SchemaOperationFailed"
    with pytest.raises(TerminusServerError) as required:
        populated.migrate([{**CREATED_BY, "property": "must", "type": "xsd:string"}], author="c", message="m")
    assert required.value.status == 500
    with pytest.raises(RequestRejected) as unknown:
        populated.migrate([{**CREATED_BY, "extra": 1}], author="c", message="m")
    assert unknown.value.api_type == "api:UnknownSchemaMigrationOperation"


def test_branches(populated: TerminusGateway) -> None:
    populated.create_branch("audit_scratch")
    assert populated.branches() == ["audit_scratch", "main"]
    assert populated.head_commit(branch="audit_scratch") == populated.head_commit()
    populated.migrate([CREATED_BY], author="c", message="on scratch", branch="audit_scratch")
    assert "_created_by" in class_doc(populated, "Party", branch="audit_scratch")
    assert "_created_by" not in class_doc(populated, "Party")
    with pytest.raises(AlreadyExists):
        populated.create_branch("audit_scratch")
    populated.delete_branch("audit_scratch")
    assert populated.branches() == ["main"]
    with pytest.raises(BranchNotFound):
        populated.delete_branch("audit_scratch")
    with pytest.raises(BranchNotFound):
        populated.schema(branch="audit_scratch")


def test_log_and_reset(populated: TerminusGateway) -> None:
    commits = populated.log()
    assert [c.message for c in commits] == ["documents", "schema"]  # the first write replaced InitialCommit
    assert commits[0].parent == commits[1].id
    assert commits[1].parent is None
    snapshot = populated.head_commit()
    populated.migrate([CREATED_BY], author="c", message="patch")
    assert populated.log(count=1)[0].message == "patch"
    populated.reset(snapshot)
    assert populated.head_commit() == snapshot
    assert populated.data_version() == f"branch:{snapshot}"
    assert "_created_by" not in class_doc(populated, "Party")


def test_optimistic_concurrency_and_history(populated: TerminusGateway) -> None:
    stale = populated.data_version()
    _, fresh = populated.replace_documents(
        [{"@type": "Person", "@id": "Person/ada", "name": "ada", "age": 37}],
        author="c",
        message="birthday",
        data_version=stale,
    )
    assert fresh != stale
    with pytest.raises(DataVersionConflict):
        populated.replace_documents(
            [{"@type": "Person", "@id": "Person/ada", "name": "ada", "age": 38}],
            author="c",
            message="lost update",
            data_version=stale,
        )
    history = populated.history("Person/ada")
    assert [entry["message"] for entry in history] == ["birthday", "documents"]
