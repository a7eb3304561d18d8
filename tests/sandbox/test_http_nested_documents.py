"""Collections may be empty, documents may be given nested inside others, and ``@capture`` / ``@ref`` link
documents of one request before their ids exist (cycles included)."""

from __future__ import annotations

import httpx
import pytest

COMMIT = {"author": "tester", "message": "test"}
SCHEMA = [
    {
        "@type": "Class",
        "@id": "Person",
        "@key": {"@type": "Lexical", "@fields": ["name"]},
        "name": "xsd:string",
        "age": {"@type": "Optional", "@class": "xsd:decimal"},
        "friend": {"@type": "Optional", "@class": "Person"},
    },
    {"@type": "Class", "@id": "Group", "people": {"@type": "Set", "@class": "Person"}},
    {"@type": "Class", "@id": "Property", "@subdocument": [], "@key": {"@type": "Random"}, "name": "xsd:string"},
    {
        "@type": "Class",
        "@id": "ObjectType",
        "@key": {"@type": "Lexical", "@fields": ["name"]},
        "name": "xsd:string",
        "properties": {"@type": "Set", "@class": "Property"},
        "order": {"@type": "List", "@class": "xsd:string"},
        "parts": {"@type": "List", "@class": "Property"},
        "tags": {"@type": "Set", "@class": "xsd:string"},
    },
    {"@type": "Class", "@id": "Node", "label": "xsd:string", "next": {"@type": "Optional", "@class": "Node"}},
]


@pytest.fixture
def db(admin_http: httpx.Client, fresh_db: str) -> str:
    reply = admin_http.post(f"/api/document/admin/{fresh_db}", params={**COMMIT, "graph_type": "schema"}, json=SCHEMA)
    assert reply.status_code == 200, reply.text
    return fresh_db


def _all(admin_http: httpx.Client, db: str, **params: str) -> list[dict]:
    reply = admin_http.get(f"/api/document/admin/{db}", params={"as_list": "true", **params})
    assert reply.status_code == 200, reply.text
    return list(reply.json())


# ----------------------------------------------------------------------------------- item 2: empty collections


def test_empty_set_of_subdocuments_and_empty_lists_are_values(admin_http: httpx.Client, db: str) -> None:
    doc = {"@type": "ObjectType", "name": "T", "properties": [], "order": [], "parts": [], "tags": []}
    reply = admin_http.post(f"/api/document/admin/{db}", params=COMMIT, json=[doc])
    assert reply.status_code == 200, reply.text
    assert reply.json() == ["terminusdb:///data/ObjectType/T"]
    # an empty Set is stored as no value (omitted); an empty List is the value []
    assert _all(admin_http, db) == [
        {"@id": "ObjectType/T", "@type": "ObjectType", "name": "T", "order": [], "parts": []}
    ]


def test_empty_set_may_also_be_left_out_but_a_list_may_not(admin_http: httpx.Client, db: str) -> None:
    ok = admin_http.post(
        f"/api/document/admin/{db}",
        params=COMMIT,
        json=[{"@type": "ObjectType", "name": "T", "order": [], "parts": []}],
    )
    assert ok.status_code == 200, ok.text
    missing_list = admin_http.post(
        f"/api/document/admin/{db}", params=COMMIT, json=[{"@type": "ObjectType", "name": "U", "order": []}]
    )
    assert missing_list.status_code == 400
    witness = missing_list.json()["api:error"]["api:witnesses"][0]
    assert witness["@type"] == "required_field_does_not_exist_in_document"
    assert witness["field"] == "terminusdb:///schema#parts"


def test_subdocuments_in_a_set_still_get_ids(admin_http: httpx.Client, db: str) -> None:
    doc = {"@type": "ObjectType", "name": "T", "properties": [{"name": "p"}], "order": ["a", "b"], "parts": []}
    assert admin_http.post(f"/api/document/admin/{db}", params=COMMIT, json=[doc]).status_code == 200
    [stored] = _all(admin_http, db)
    assert stored["order"] == ["a", "b"]
    [prop] = stored["properties"]
    assert prop["@id"].startswith("ObjectType/T/properties/Property/") and prop["name"] == "p"


# ----------------------------------------------------------------------------------- item 3: nested documents


def test_set_of_documents_given_as_nested_documents(admin_http: httpx.Client, db: str) -> None:
    group = {
        "@id": "Group/0",
        "@type": "Group",
        "people": [{"@type": "Person", "name": "Immanuel Kant", "age": 79}, {"name": "Kurt Gödel", "age": 71}],
    }
    reply = admin_http.post(f"/api/document/admin/{db}", params=COMMIT, json=[group])
    assert reply.status_code == 200, reply.text
    assert reply.json() == ["terminusdb:///data/Group/0"]  # the top-level document only
    docs = {d["@id"]: d for d in _all(admin_http, db)}
    assert docs["Person/Immanuel%20Kant"] == {
        "@id": "Person/Immanuel%20Kant",
        "@type": "Person",
        "name": "Immanuel Kant",
        "age": 79,
    }
    assert docs["Person/Kurt%20G%C3%B6del"]["age"] == 71
    assert sorted(docs["Group/0"]["people"]) == ["Person/Immanuel%20Kant", "Person/Kurt%20G%C3%B6del"]


def test_nested_document_already_stored_unchanged_is_accepted(admin_http: httpx.Client, db: str) -> None:
    kant = {"@type": "Person", "name": "Kant", "age": 79}
    path = f"/api/document/admin/{db}"
    assert admin_http.post(path, params=COMMIT, json=[kant]).status_code == 200
    again = admin_http.post(path, params=COMMIT, json=[{"@id": "Group/1", "@type": "Group", "people": [kant]}])
    assert again.status_code == 200, again.text
    changed = admin_http.post(
        path, params=COMMIT, json=[{"@id": "Group/2", "@type": "Group", "people": [{**kant, "age": 80}]}]
    )
    assert changed.status_code == 400
    assert changed.json()["api:error"]["@type"] == "api:DocumentIdAlreadyExists"


def test_the_same_nested_document_twice_in_one_request(admin_http: httpx.Client, db: str) -> None:
    ann = {"@type": "Person", "name": "Ann"}
    docs = [
        {"@id": "Group/a", "@type": "Group", "people": [ann]},
        {"@id": "Group/b", "@type": "Group", "people": [ann]},
    ]
    path = f"/api/document/admin/{db}"
    refused = admin_http.post(path, params=COMMIT, json=docs)
    assert refused.status_code == 400
    assert refused.json()["api:error"] == {
        "@type": "api:SameDocumentIdsMutatedInOneTransaction",
        "api:duplicate_ids": ["terminusdb:///data/Person/Ann"],
    }
    merged = admin_http.post(path, params={**COMMIT, "merge_repeats": "true"}, json=docs)
    assert merged.status_code == 200, merged.text
    assert merged.json() == ["terminusdb:///data/Group/a", "terminusdb:///data/Group/b"]


def test_invalid_nested_document_is_a_schema_check_failure(admin_http: httpx.Client, db: str) -> None:
    bad = {"@id": "Group/x", "@type": "Group", "people": [{"@type": "Person", "name": "Ann", "age": "old"}]}
    reply = admin_http.post(f"/api/document/admin/{db}", params=COMMIT, json=[bad])
    assert reply.status_code == 400
    witness = reply.json()["api:error"]["api:witnesses"][0]
    assert witness["terminusdb:///schema#age"]["@type"] == "could_not_interpret_as_type"
    assert _all(admin_http, db) == []


# ----------------------------------------------------------------------------------- item 3: @capture / @ref


@pytest.mark.parametrize("full_replace", ["false", "true"])
def test_capture_and_ref_form_a_cycle(admin_http: httpx.Client, db: str, full_replace: str) -> None:
    docs = [
        {"@type": "Node", "@capture": "a", "label": "a", "next": {"@ref": "b"}},
        {"@type": "Node", "@capture": "b", "label": "b", "next": {"@ref": "a"}},
    ]
    reply = admin_http.post(f"/api/document/admin/{db}", params={**COMMIT, "full_replace": full_replace}, json=docs)
    assert reply.status_code == 200, reply.text
    id_a, id_b = (i.removeprefix("terminusdb:///data/") for i in reply.json())
    nodes = {d["label"]: d for d in _all(admin_http, db)}
    assert nodes["a"] == {"@id": id_a, "@type": "Node", "label": "a", "next": id_b}
    assert nodes["b"] == {"@id": id_b, "@type": "Node", "label": "b", "next": id_a}


def test_ref_to_a_capture_of_an_earlier_document_and_a_nested_one(admin_http: httpx.Client, db: str) -> None:
    docs = [
        {"@type": "Person", "@capture": "ann", "name": "Ann"},
        {
            "@type": "Group",
            "@id": "Group/g",
            "people": [{"@ref": "ann"}, {"@type": "Person", "name": "Bob", "friend": {"@ref": "ann"}}],
        },
    ]
    reply = admin_http.post(f"/api/document/admin/{db}", params=COMMIT, json=docs)
    assert reply.status_code == 200, reply.text
    docs_by_id = {d["@id"]: d for d in _all(admin_http, db)}
    assert sorted(docs_by_id["Group/g"]["people"]) == ["Person/Ann", "Person/Bob"]
    assert docs_by_id["Person/Bob"]["friend"] == "Person/Ann"


def test_ref_without_capture_is_not_all_captures_found(admin_http: httpx.Client, db: str) -> None:
    reply = admin_http.post(
        f"/api/document/admin/{db}", params=COMMIT, json=[{"@type": "Node", "label": "a", "next": {"@ref": "nope"}}]
    )
    assert reply.status_code == 400
    body = reply.json()
    assert body["@type"] == "api:InsertDocumentErrorResponse"
    assert body["api:error"] == {"@type": "api:NotAllCapturesFound", "api:captures": ["nope"]}
    assert _all(admin_http, db) == []


def test_capture_bound_twice_is_refused(admin_http: httpx.Client, db: str) -> None:
    docs = [{"@type": "Node", "@capture": "a", "label": "1"}, {"@type": "Node", "@capture": "a", "label": "2"}]
    reply = admin_http.post(f"/api/document/admin/{db}", params=COMMIT, json=docs)
    assert reply.status_code == 400
    error = reply.json()["api:error"]
    assert error["@type"] == "api:CaptureIdAlreadyBound"
    assert error["api:capture"] == "a"
    assert error["api:document"] == docs[1]


def test_capture_and_ref_in_a_replace(admin_http: httpx.Client, db: str) -> None:
    path = f"/api/document/admin/{db}"
    created = admin_http.post(path, params=COMMIT, json=[{"@type": "Node", "@id": "Node/x", "label": "x"}])
    assert created.status_code == 200
    docs = [
        {"@type": "Node", "@id": "Node/x", "label": "x", "next": {"@ref": "y"}},
        {"@type": "Node", "@id": "Node/y", "@capture": "y", "label": "y"},
    ]
    reply = admin_http.put(path, params={**COMMIT, "create": "true"}, json=docs)
    assert reply.status_code == 200, reply.text
    nodes = {d["@id"]: d for d in _all(admin_http, db)}
    assert nodes["Node/x"]["next"] == "Node/y"
