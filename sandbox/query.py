"""Query documents by example (``GET /api/document/...`` with a JSON body ``{"query": {...}}``).

TerminusDB matches a query document property by property against the stored triples (``document/query.pl``):
a value matches when the document has *a* triple with that value, so a ``Set`` member matches, values are
compared after casting the query value to the property's type (``"71"`` and ``71`` both match decimal 71),
``null`` means "no value", ``{}`` means "any value", a dict follows the link (or subdocument) and matches the
target as a nested query, ``@id`` takes an id or ``{"@one-of": [...]}``, ``@type`` matches subclasses, and
``{"@one-of": [...]}`` / ``{"@all": [...]}`` combine nested queries. Keeping this apart from the document
endpoint keeps its rules in one place.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.errors import ApiError
from sandbox.ranges import Range
from sandbox.schema import ClassInfo, CompiledSchema, Schema, compile_schema, expand
from sandbox.xsd import BASE_TYPES, NotInterpretable, coerce

Instances = dict[str, dict[str, Any]]


def query_missing_type() -> ApiError:
    return ApiError(
        {"@type": "api:QueryMissingType"},
        "The query document has no '@type' and no 'type' parameter was given; add one of them.",
    )


def _type_not_found(iri: str) -> ApiError:
    return ApiError(
        {"@type": "api:QueryTypeNotFound"},
        f"Query provided a type '{iri}' which was not found in the schema.",
    )


def _query_error(message: str, **fields: Any) -> ApiError:
    return ApiError({"@type": "api:QueryError", **{f"api:{k}": v for k, v in fields.items()}}, message)


class _Matcher:
    def __init__(self, cs: CompiledSchema, instances: Instances) -> None:
        self.cs = cs
        self.instances = instances

    def full(self, doc_id: str) -> str:
        return expand(doc_id, self.cs.base, self.cs.prefixes)

    def resolve_type(self, name: Any) -> ClassInfo:
        if not isinstance(name, str):
            raise _query_error(f"A query '@type' must be a class name (got {name!r})", value=name)
        resolved = self.cs.resolve(name)
        if resolved is None or self.cs.classes[resolved].kind == "Enum":
            raise _type_not_found(expand(name, self.cs.schema_base, self.cs.prefixes))
        return self.cs.classes[resolved]

    def query_class(self, query: Any, expected: ClassInfo | None) -> ClassInfo:
        """The class a (nested) query document is about: its ``@type`` (a subclass of ``expected``) or ``expected``."""
        if isinstance(query, dict) and "@type" in query:
            info = self.resolve_type(query["@type"])
            if expected is not None and not self.cs.subsumed(info.name, expected.name):
                raise _query_error(
                    f"The query type '{info.iri}' is not a subclass of '{expected.iri}'",
                    type=info.iri,
                    expected_type=expected.iri,
                )
            return info
        if expected is None:
            raise query_missing_type()
        return expected

    # -- documents ---------------------------------------------------------------------------------------
    def document(self, doc: Any, query: Any, info: ClassInfo) -> bool:
        """Does the stored (sub)document ``doc`` match ``query`` (a query about class ``info``)?"""
        if isinstance(query, dict) and "@one-of" in query:
            return any(self.document(doc, q, self.query_class(q, info)) for q in _query_list(query["@one-of"]))
        if isinstance(query, dict) and "@all" in query:
            return all(self.document(doc, q, self.query_class(q, info)) for q in _query_list(query["@all"]))
        if not isinstance(query, dict):
            raise _query_error(f"A query document must be an object (got {query!r})", value=query)
        if not isinstance(doc, dict):
            return False
        for key, wanted in query.items():
            if key == "@id":
                if not self.id_matches(str(doc.get("@id")), wanted):
                    return False
            elif key == "@type":
                if not self.cs.subsumed(str(doc.get("@type")), self.resolve_type(wanted).name):
                    return False
            elif key.startswith("@"):
                continue
            elif not self.property(doc, info, key, wanted):
                return False
        return True

    def id_matches(self, doc_id: str, wanted: Any) -> bool:
        if isinstance(wanted, str):
            return self.full(doc_id) == self.full(wanted)
        if isinstance(wanted, dict) and not wanted:
            return True
        if isinstance(wanted, dict) and isinstance(wanted.get("@one-of"), list):
            return any(isinstance(w, str) and self.full(doc_id) == self.full(w) for w in wanted["@one-of"])
        raise _query_error(f"Unrecognised '@id' query: {wanted!r}", value=wanted)

    def property(self, doc: dict[str, Any], info: ClassInfo, key: str, wanted: Any) -> bool:
        prop = key[len(self.cs.schema_base) :] if key.startswith(self.cs.schema_base) else key
        r = info.props.get(prop) or _choice_range(info, prop)
        if r is None:
            raise _query_error(
                f"The query uses the property '{key}', which class '{info.iri}' does not have",
                property=key,
                type=info.iri,
            )
        stored = doc.get(prop)
        values = [] if stored is None else (stored if isinstance(stored, list) and r.cls != "sys:JSON" else [stored])
        if wanted is None:
            return not values
        return any(self.value(v, r, wanted) for v in values)

    # -- values ------------------------------------------------------------------------------------------
    def value(self, stored: Any, r: Range, wanted: Any) -> bool:
        cs = self.cs
        if r.cls in BASE_TYPES:
            return self.base_value(stored, r.cls, wanted)
        target = cs.classes[r.cls]
        if target.kind == "Enum":
            if isinstance(wanted, dict) and not wanted:
                return True
            if not isinstance(wanted, str) or wanted not in target.enum_values:
                raise _query_error(f"'{wanted}' is not a value of the enum '{target.iri}'", value=wanted)
            return bool(stored == wanted)
        if isinstance(wanted, dict):
            if not wanted:
                return True
            linked = stored if isinstance(stored, dict) else self.instances.get(str(stored))
            return linked is not None and self.document(linked, wanted, self.query_class(wanted, target))
        if isinstance(wanted, str):
            linked_id = stored.get("@id") if isinstance(stored, dict) else stored
            return self.full(str(linked_id)) == self.full(wanted)
        raise _query_error(f"Cannot match the value {wanted!r} against class '{target.iri}'", value=wanted)

    def base_value(self, stored: Any, cls: str, wanted: Any) -> bool:
        if isinstance(wanted, dict):
            if not wanted:
                return True
            if set(wanted) == {"@regex"}:
                pattern = wanted["@regex"]
                if cls != "xsd:string" or not isinstance(pattern, str):
                    raise _query_error("'@regex' needs a string pattern and an xsd:string property", value=wanted)
                try:
                    return isinstance(stored, str) and re.search(pattern, stored) is not None
                except re.error:
                    raise _query_error(f"'{pattern}' is not a valid regular expression", value=pattern) from None
            raise _query_error(f"Unknown query form for a value of type {cls}: {wanted!r}", value=wanted)
        if isinstance(wanted, bool) and cls != "xsd:boolean":
            raise _query_error(f"The query value {wanted!r} can not be cast to {self.cs.class_iri(cls)}", value=wanted)
        try:
            cast = coerce(cls, wanted)
        except NotInterpretable:
            raise _query_error(
                f"The query value {wanted!r} can not be cast to {self.cs.class_iri(cls)}",
                value=wanted,
                type=self.cs.class_iri(cls),
            ) from None
        return bool(cast == stored)


def _query_list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise _query_error(f"'@one-of' / '@all' take a list of query documents (got {value!r})", value=value)
    return value


def _choice_range(info: ClassInfo, prop: str) -> Range | None:
    for choice in info.one_of:
        if prop in choice:
            return choice[prop]
    return None


def query_documents(
    schema: Schema, instances: Instances, query: dict[str, Any], type_name: str | None
) -> list[dict[str, Any]]:
    """The stored documents matching ``query`` (``type_name``: the ``type`` parameter, used without ``@type``)."""
    cs = compile_schema(schema)
    matcher = _Matcher(cs, instances)
    expected = matcher.resolve_type(type_name) if type_name is not None else None
    info = matcher.query_class(query, expected)
    members = cs.descendants.get(info.name, {info.name})
    return [
        doc
        for doc in instances.values()
        if doc.get("@type") in members and matcher.document(doc, query, cs.classes[str(doc["@type"])])
    ]
