"""The official TerminusDB Python client works unchanged against the sandbox."""

# No "from __future__ import annotations": DocumentTemplate reads real annotation objects.

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Set  # noqa: UP035 - the client maps typing.Set, not the builtin, to a Set range

import pytest
from terminusdb_client import Client, GraphType
from terminusdb_client.errors import DatabaseError
from terminusdb_client.schema import DocumentTemplate, LexicalKey, Schema

from sandbox.server import SandboxServer

PERSON = {
    "@type": "Class",
    "@id": "Person",
    "@key": {"@type": "Lexical", "@fields": ["name"]},
    "name": "xsd:string",
    "bio": {"@type": "Optional", "@class": "xsd:string"},
}


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[Client]:
    db = f"client_{uuid.uuid4().hex[:8]}"
    c = Client(sandbox.url)
    c.connect(user="admin", key="root", team="admin")
    c.create_database(db, label="client test", description="official client")
    c.connect(user="admin", key="root", team="admin", db=db)
    yield c
    if db in {d["name"] for d in c.get_databases()}:
        c.delete_database(db, team="admin")


def test_connect_to_unknown_database_fails(sandbox: SandboxServer) -> None:
    c = Client(sandbox.url)
    with pytest.raises(Exception, match="does not exist"):
        c.connect(user="admin", key="root", team="admin", db="no_such_db")


def test_ok_and_info(client: Client) -> None:
    assert client.ok()
    assert client.info()["api:info"]["authority"].endswith("User/admin")
    assert client.db in client.list_databases()


def test_document_round_trip(client: Client) -> None:
    assert client.insert_document([PERSON], graph_type=GraphType.SCHEMA) == ["Person"]
    ids = client.insert_document([{"@type": "Person", "name": "Plato"}])
    assert ids == ["terminusdb:///data/Person/Plato"]
    assert client.get_document("Person/Plato") == {"@id": "Person/Plato", "@type": "Person", "name": "Plato"}
    assert client.has_doc("Person/Plato")
    assert not client.has_doc("Person/Nobody")
    client.replace_document({"@id": "Person/Plato", "@type": "Person", "name": "Plato", "bio": "philosopher"})
    assert client.get_document("Person/Plato")["bio"] == "philosopher"
    client.delete_document("Person/Plato")
    assert not client.has_doc("Person/Plato")
    with pytest.raises(DatabaseError) as info:
        client.get_document("Person/Plato")
    assert info.value.status_code == 404
    assert info.value.error_obj["api:error"]["@type"] == "api:DocumentNotFound"


def test_large_body_is_gzipped_and_streamed_back(client: Client) -> None:
    client.insert_document([PERSON], graph_type=GraphType.SCHEMA)
    people = [{"@type": "Person", "name": f"person {i}", "bio": "x" * 40} for i in range(100)]
    ids = client.insert_document(people)  # > 1024 bytes: the client sends it gzip-compressed
    assert len(ids) == 100
    streamed = list(client.get_all_documents())
    assert len(streamed) == 100
    assert {d["name"] for d in streamed} == {p["name"] for p in people}
    assert len(list(client.get_all_documents(count=10, skip=95))) == 5
    assert len(list(client.get_documents_by_type("Person"))) == 100
    found = list(client.query_document({"@type": "Person", "name": "person 7"}))
    assert [d["@id"] for d in found] == ["Person/person%207"]
    schema_docs = list(client.get_all_documents(graph_type=GraphType.SCHEMA))
    assert schema_docs[0]["@type"] == "@context"
    assert client.get_existing_classes().keys() == {"Person"}


def test_schema_objects_commit(client: Client) -> None:
    schema = Schema()

    class Team(DocumentTemplate):
        _schema = schema
        name: str

    schema.commit(client, commit_msg="schema via DocumentTemplate")
    assert "Team" in client.get_existing_classes()
    client.insert_document(Team(name="core"))
    assert [d["name"] for d in client.get_all_documents()] == ["core"]


def test_branches_log_history_and_reset(client: Client) -> None:
    client.insert_document([PERSON], graph_type=GraphType.SCHEMA, commit_msg="schema")
    client.insert_document({"@type": "Person", "name": "Ada"}, commit_msg="add ada")
    client.replace_document({"@id": "Person/Ada", "@type": "Person", "name": "Ada", "bio": "b"}, commit_msg="bio")
    log = client.log()
    assert [entry["message"] for entry in log] == ["bio", "add ada", "schema"]
    assert isinstance(log[0]["timestamp"], datetime)
    history = client.get_document_history("Person/Ada")
    assert [h["message"] for h in history] == ["bio", "add ada"]
    client.create_branch("dev")
    assert {b["name"] for b in client.get_all_branches()} == {"main", "dev"}
    client.reset(log[1]["identifier"])
    assert "bio" not in client.get_document("Person/Ada")
    assert [entry["message"] for entry in client.log()] == ["add ada", "schema"]
    client.delete_branch("dev")
    assert {b["name"] for b in client.get_all_branches()} == {"main"}


def test_errors_carry_json_and_delete_database(client: Client) -> None:
    client.insert_document([PERSON], graph_type=GraphType.SCHEMA)
    client.insert_document({"@type": "Person", "name": "Ada"})
    with pytest.raises(DatabaseError) as info:
        client.insert_document({"@type": "Person", "name": "Ada"})
    assert info.value.error_obj["api:error"]["@type"] == "api:DocumentIdAlreadyExists"
    name = client.db
    client.delete_database(name, team="admin")
    assert name not in client.list_databases()


def test_nested_documents_and_empty_sets_via_document_templates(client: Client) -> None:
    """The client sends unsaved linked objects as separate documents with ``@capture`` and links them with
    ``@ref``; an empty Python set becomes ``[]``."""
    schema = Schema()

    class Member(DocumentTemplate):
        _schema = schema
        _key = LexicalKey(["name"])
        name: str

    class Crew(DocumentTemplate):
        _schema = schema
        _key = LexicalKey(["name"])
        name: str
        members: Set[Member]  # noqa: UP006
        tags: Set[str]  # noqa: UP006

    schema.commit(client, commit_msg="crew schema")
    ada, bob = Member(name="Ada"), Member(name="Bob")
    ids = client.insert_document(
        [Crew(name="core", members={ada, bob}, tags=set()), Crew(name="empty", members=set(), tags=set())]
    )
    assert {i.removeprefix("terminusdb:///data/") for i in ids} == {
        "Crew/core",
        "Crew/empty",
        "Member/Ada",
        "Member/Bob",
    }
    core = client.get_document("Crew/core")
    assert sorted(core["members"]) == ["Member/Ada", "Member/Bob"]
    assert "tags" not in core
    assert client.get_document("Crew/empty") == {"@id": "Crew/empty", "@type": "Crew", "name": "empty"}
    assert client.get_document("Member/Ada") == {"@id": "Member/Ada", "@type": "Member", "name": "Ada"}


def test_nested_documents_as_plain_dicts(client: Client) -> None:
    group = {"@type": "Class", "@id": "Group", "people": {"@type": "Set", "@class": "Person"}}
    client.insert_document([PERSON, group], graph_type=GraphType.SCHEMA)
    ids = client.insert_document(
        [
            {"@type": "Group", "@id": "Group/g", "people": [{"@type": "Person", "name": "Kant"}, {"name": "Hume"}]},
            {"@type": "Group", "@id": "Group/empty", "people": []},
        ]
    )
    assert ids == ["terminusdb:///data/Group/g", "terminusdb:///data/Group/empty"]
    assert sorted(client.get_document("Group/g")["people"]) == ["Person/Hume", "Person/Kant"]
    assert client.get_document("Person/Kant") == {"@id": "Person/Kant", "@type": "Person", "name": "Kant"}
    assert client.get_document("Group/empty") == {"@id": "Group/empty", "@type": "Group"}
    found = list(client.query_document({"@type": "Group", "people": {"name": "Hume"}}))
    assert [d["@id"] for d in found] == ["Group/g"]
