"""The schema graph: shape checks of submitted schema documents, their stored (GET) form, and graph checks.

A Schema is ``{"@context": ctx, "<class id>": <class doc in GET form>, ...}``. Lookups that every request
needs (effective properties per class, subclass sets) are computed once per schema object by
``compile_schema`` and cached, because the store never mutates a schema dict after it is committed.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sandbox.errors import ApiError, SchemaCheckFailure
from sandbox.ranges import Range, RangeSyntaxError, combine, parse_range, range_to_json
from sandbox.xsd import BASE_TYPES, GLOBAL_PREFIXES, SYS, compress_base_type, expand_base_type

Schema = dict[str, dict[str, Any]]

DEFAULT_CONTEXT: dict[str, Any] = {
    "@type": "@context",
    "@base": "terminusdb:///data/",
    "@schema": "terminusdb:///schema#",
}

SCHEMA_TYPES = ("Class", "Enum", "TaggedUnion")
CLASS_KEYWORDS = frozenset(
    [
        "@id",
        "@type",
        "@key",
        "@inherits",
        "@abstract",
        "@subdocument",
        "@unfoldable",
        "@shared",
        "@base",
        "@documentation",
        "@metadata",
        "@oneOf",
    ]
)
KEY_TYPES = ("Random", "ValueHash", "Lexical", "Hash")
RESERVED_CLASS_NAMES = frozenset(["JSONDocument", "sys:JSONDocument", SYS + "JSONDocument"])
JSON_DOCUMENT_RANGES = frozenset(["sys:JSONDocument", SYS + "JSONDocument"])


def _elaboration_impossible(doc: Any) -> ApiError:
    return ApiError(
        {"@type": "api:DocumentElaborationImpossible", "api:document": doc},
        "The submitted schema document could not be elaborated due to an unknown syntax error.",
    )


# ---------------------------------------------------------------------------------------------------------
# Prefix handling


def has_scheme(name: str) -> bool:
    """True for a full IRI such as ``terminusdb:///data/X`` or ``http://...``."""
    scheme, sep, rest = name.partition(":")
    return bool(sep) and rest.startswith("//") and scheme.replace("+", "").replace(".", "").isalnum()


def context_prefixes(ctx: dict[str, Any]) -> dict[str, str]:
    """Global prefixes plus the user prefixes of a context document."""
    out = dict(GLOBAL_PREFIXES)
    out.update({k: v for k, v in ctx.items() if not k.startswith("@") and isinstance(v, str)})
    return out


def unknown_prefix(name: str, prefixes: dict[str, str]) -> bool:
    """True if ``name`` looks like ``p:rest`` with a prefix the context does not define."""
    prefix, sep, _rest = name.partition(":")
    return bool(sep) and not has_scheme(name) and prefix not in prefixes and "/" not in prefix


def expand(name: str, base: str, prefixes: dict[str, str]) -> str:
    """Expand ``name`` against the prefixes, or relative to ``base``."""
    if has_scheme(name):
        return name
    prefix, sep, rest = name.partition(":")
    if sep and prefix in prefixes:
        return prefixes[prefix] + rest
    return base + name


# ---------------------------------------------------------------------------------------------------------
# Submitted schema documents -> stored form


def _check_key(doc: dict[str, Any]) -> dict[str, Any] | None:
    if "@key" not in doc:
        return None
    key = doc["@key"]
    if not isinstance(key, dict):
        raise ApiError(
            {"@type": "api:DocumentKeyNotObject", "api:key_value": key, "api:document": doc},
            f"Document @key value is not an object: {json.dumps(key)}",
        )
    if "@type" not in key:
        text = json.dumps(key, separators=(",", ":"), ensure_ascii=False)
        raise ApiError(
            {"@type": "api:DocumentKeyTypeMissing", "api:key": text, "api:document": doc},
            f"Document @key missing @type: {text}",
        )
    key_type = key["@type"]
    if key_type not in KEY_TYPES:
        raise ApiError(
            {"@type": "api:DocumentKeyTypeUnknown", "api:key_type": key_type, "api:document": doc},
            f"Document @key type unknown: {json.dumps(key_type)}. It must be ValueHash, Hash, Lexical, or Random.",
        )
    if key_type in ("Random", "ValueHash"):
        return {"@type": key_type}
    if "@fields" not in key:
        raise ApiError(
            {"@type": "api:KeyMissingFields", "api:key_type": key_type, "api:document": doc},
            f"Missing required @fields array for key type {key_type}",
        )
    fields = key["@fields"]
    if not isinstance(fields, list):
        raise ApiError(
            {"@type": "api:KeyFieldsNotAnArray", "api:fields": fields, "api:document": doc},
            "Key @fields value is not an array.",
        )
    if not fields:
        raise ApiError({"@type": "api:KeyFieldsIsEmpty", "api:document": doc}, "Key @fields value is empty.")
    return {"@type": key_type, "@fields": list(fields)}


def _normalise_class_name(name: str, schema_base: str) -> str:
    short = compress_base_type(name)
    if short is not None:
        return short
    if name.startswith(schema_base):
        return name[len(schema_base) :]
    return name


def _contains_json_document(value: Any) -> bool:
    if isinstance(value, str):
        return value in JSON_DOCUMENT_RANGES
    if isinstance(value, dict):
        cls = value.get("@class")
        return isinstance(cls, str) and cls in JSON_DOCUMENT_RANGES
    return False


def prepare_schema_document(doc: Any, context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Shape-check one submitted schema document and return its stored GET form."""
    schema_base = (context or DEFAULT_CONTEXT).get("@schema", DEFAULT_CONTEXT["@schema"])
    if not isinstance(doc, dict):
        raise _elaboration_impossible(doc)
    for fld in ("@type", "@id"):
        if fld not in doc:
            raise ApiError(
                {"@type": "api:MissingField", "api:field": fld, "api:document": doc},
                f"Missing '{fld}' field in submitted document.",
            )
        value = doc[fld]
        if not isinstance(value, str) or not value:
            raise ApiError(
                {"@type": "api:BadFieldValue", "api:field": fld, "api:value": value, "api:document": doc},
                f'Unexpected value {json.dumps(value)} found in the field "{fld}" of the submitted document',
            )
        if fld == "@type" and value not in SCHEMA_TYPES:
            raise ApiError(
                {"@type": "api:UnknownSchemaType", "api:type": value},
                "The '@type' field referred to an unimplemented schema type.",
            )
    doc_id: str = doc["@id"]
    if doc_id in RESERVED_CLASS_NAMES or _normalise_class_name(doc_id, schema_base) == "JSONDocument":
        raise ApiError(
            {"@type": "api:DocumentInsertionReservedName", "api:id": doc_id},
            "Document for class can not be inserted due to use of reserved name",
        )
    kind = doc["@type"]
    if kind == "Enum":
        return _prepare_enum(doc)
    out: dict[str, Any] = {"@id": doc_id, "@type": kind}
    for k in doc:
        if k.startswith("@") and k not in CLASS_KEYWORDS:
            raise ApiError(
                {"@type": "api:AtPrefixedPropertiesNotSupported", "api:property": k, "api:document": doc},
                f"@-prefixed properties like '{k}' are not supported in schema definitions. "
                "Only sys:JSON and sys:JSONDocument types support @-prefixed keys.",
            )
    key = _check_key(doc)
    if "@subdocument" in doc and key is None and "@abstract" not in doc:
        raise ApiError({"@type": "api:SubdocumentKeyMissing", "api:document": doc}, "Subdocument @key missing")
    if key is not None:
        out["@key"] = key
    for k, v in doc.items():
        if k in ("@id", "@type", "@key"):
            continue
        if k == "@inherits":
            parents = [v] if isinstance(v, str) else v
            if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
                raise _elaboration_impossible(doc)
            parents = [_normalise_class_name(p, schema_base) for p in parents]
            if len(parents) == 1:
                out["@inherits"] = parents[0]
            elif parents:
                out["@inherits"] = parents
        elif k in ("@abstract", "@subdocument", "@unfoldable", "@shared"):
            out[k] = []
        elif k.startswith("@"):
            out[k] = v
        else:
            if _contains_json_document(v):
                raise ApiError(
                    {"@type": "api:JSONDocumentInvalidRangeError", "api:field": k},
                    f"The range 'sys:JSONDocument' used on '{k}' is illegal, use 'sys:JSON'.",
                )
            try:
                r = parse_range(v, lambda c: _normalise_class_name(c, schema_base))
            except RangeSyntaxError as exc:
                raise _elaboration_impossible(doc) from exc
            out[k] = range_to_json(r)
    return out


def _prepare_enum(doc: dict[str, Any]) -> dict[str, Any]:
    values = doc.get("@value")
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ApiError({"@type": "api:InvalidEnumValues", "api:document": doc}, "Enum values are not valid")
    out: dict[str, Any] = {"@id": doc["@id"], "@type": "Enum"}
    for k, v in doc.items():
        if k not in ("@id", "@type"):
            out[k] = list(v) if k == "@value" else v
    return out


def prepare_schema_documents(docs: list[Any], context: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Shape-check submitted schema documents (no ``@context``) and return them in stored GET form."""
    return [prepare_schema_document(d, context) for d in docs]


def check_context(ctx: dict[str, Any]) -> dict[str, Any]:
    """Validate a submitted ``@context`` document and return its stored form."""
    if not isinstance(ctx, dict):
        raise _elaboration_impossible(ctx)
    out: dict[str, Any] = {"@type": "@context"}
    for fld in ("@base", "@schema"):
        if fld not in ctx:
            raise ApiError(
                {"@type": "api:MissingField", "api:field": fld, "api:document": ctx},
                f"Missing '{fld}' field in submitted document.",
            )
    for k, v in ctx.items():
        if k == "@type":
            continue
        if k in ("@base", "@schema") or not k.startswith("@"):
            if not isinstance(v, str) or not v:
                raise ApiError(
                    {"@type": "api:BadFieldValue", "api:field": k, "api:value": v, "api:document": ctx},
                    f'Unexpected value {json.dumps(v)} found in the field "{k}" of the submitted document',
                )
            if not k.startswith("@") and ":" not in v:
                raise ApiError(
                    {"@type": "api:PrefixDoesNotResolveError", "api:prefix": k, "api:document": ctx},
                    f'The prefix "{k}" used in the context does not resolve to a URI.',
                )
        out[k] = v
    return out


# ---------------------------------------------------------------------------------------------------------
# Compiled schema (cached per schema object)


@dataclass
class ClassInfo:
    """Everything the instance layer needs to know about one class/enum/tagged union."""

    name: str
    kind: str
    doc: dict[str, Any]
    iri: str
    parents: list[str]
    abstract: bool
    subdocument: bool
    key: dict[str, Any] | None
    base: str
    own: dict[str, Range]
    props: dict[str, Range] = field(default_factory=dict)
    enum_values: list[str] = field(default_factory=list)
    one_of: list[dict[str, Range]] = field(default_factory=list)


@dataclass
class CompiledSchema:
    """Per-schema lookups: classes, ancestry, effective properties, and the witnesses of a bad graph."""

    schema: Schema
    context: dict[str, Any]
    base: str
    schema_base: str
    prefixes: dict[str, str]
    classes: dict[str, ClassInfo]
    ancestors: dict[str, list[str]]
    descendants: dict[str, set[str]]
    witnesses: list[dict[str, Any]]

    def class_iri(self, name: str) -> str:
        """Full IRI of a class or base type name."""
        if name in BASE_TYPES:
            return expand_base_type(name)
        return expand(name, self.schema_base, self.prefixes)

    def prop_iri(self, name: str) -> str:
        return expand(name, self.schema_base, self.prefixes)

    def subsumed(self, sub: str, sup: str) -> bool:
        """``sub`` is ``sup`` or one of its subclasses (base types: a few xsd subsumptions)."""
        if sub == sup:
            return True
        if sub in self.classes:
            return sup in self.ancestors.get(sub, [])
        return _base_subsumed(sub, sup)

    def resolve(self, name: str) -> str | None:
        """Short class name for ``name`` given short, prefixed or as a full IRI."""
        if name in self.classes:
            return name
        if has_scheme(name) and name.startswith(self.schema_base):
            short = name[len(self.schema_base) :]
            return short if short in self.classes else None
        if not has_scheme(name) and ":" in name:
            full = expand(name, self.schema_base, self.prefixes)
            if full.startswith(self.schema_base):
                short = full[len(self.schema_base) :]
                return short if short in self.classes else None
        return None


_INTEGER_FAMILY = {
    "xsd:byte": "xsd:short",
    "xsd:short": "xsd:int",
    "xsd:int": "xsd:long",
    "xsd:long": "xsd:integer",
    "xsd:unsignedByte": "xsd:unsignedShort",
    "xsd:unsignedShort": "xsd:unsignedInt",
    "xsd:unsignedInt": "xsd:unsignedLong",
    "xsd:unsignedLong": "xsd:nonNegativeInteger",
    "xsd:positiveInteger": "xsd:nonNegativeInteger",
    "xsd:nonNegativeInteger": "xsd:integer",
    "xsd:negativeInteger": "xsd:nonPositiveInteger",
    "xsd:nonPositiveInteger": "xsd:integer",
    "xsd:integer": "xsd:decimal",
    "xsd:token": "xsd:normalizedString",
    "xsd:normalizedString": "xsd:string",
    "xsd:dateTimeStamp": "xsd:dateTime",
}


def _base_subsumed(sub: str, sup: str) -> bool:
    cur: str | None = sub
    while cur is not None:
        if cur == sup:
            return True
        cur = _INTEGER_FAMILY.get(cur)
    return False


_CACHE: OrderedDict[int, tuple[Schema, CompiledSchema]] = OrderedDict()
_CACHE_SIZE = 32


def compile_schema(schema: Schema) -> CompiledSchema:
    """Return the (cached) compiled form of ``schema``; the schema must not be mutated afterwards."""
    hit = _CACHE.get(id(schema))
    if hit is not None and hit[0] is schema:
        _CACHE.move_to_end(id(schema))
        return hit[1]
    compiled = _compile(schema)
    _CACHE[id(schema)] = (schema, compiled)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return compiled


def _compile(schema: Schema) -> CompiledSchema:
    ctx = schema.get("@context") or DEFAULT_CONTEXT
    base = ctx.get("@base", DEFAULT_CONTEXT["@base"])
    schema_base = ctx.get("@schema", DEFAULT_CONTEXT["@schema"])
    prefixes = context_prefixes(ctx)
    witnesses: list[dict[str, Any]] = []
    classes: dict[str, ClassInfo] = {}

    def iri(name: str) -> str:
        return expand_base_type(name) if name in BASE_TYPES else expand(name, schema_base, prefixes)

    for name, doc in schema.items():
        if name == "@context":
            continue
        kind = doc.get("@type", "Class")
        inherits = doc.get("@inherits", [])
        parents = [inherits] if isinstance(inherits, str) else list(inherits)
        own: dict[str, Range] = {}
        one_of: list[dict[str, Range]] = []
        if kind != "Enum":
            for k, v in doc.items():
                if k.startswith("@"):
                    continue
                try:
                    own[k] = parse_range(v)
                except RangeSyntaxError:
                    witnesses.append({"@type": "not_a_valid_property_range", "property": iri(k)})
            for choice in doc.get("@oneOf", []) if isinstance(doc.get("@oneOf"), list) else []:
                if isinstance(choice, dict):
                    one_of.append({k: parse_range(v) for k, v in choice.items() if not k.startswith("@")})
        key = doc.get("@key")
        cbase = doc.get("@base")
        classes[name] = ClassInfo(
            name=name,
            kind=kind,
            doc=doc,
            iri=iri(name),
            parents=parents,
            abstract="@abstract" in doc,
            subdocument="@subdocument" in doc,
            key=key if isinstance(key, dict) else None,
            base=cbase if isinstance(cbase, str) else f"{name}/",
            own=own,
            enum_values=list(doc.get("@value", [])) if kind == "Enum" else [],
            one_of=one_of,
        )

    # graph checks: parents and ranges exist
    for info in classes.values():
        for p in info.parents:
            if p not in classes or classes[p].kind == "Enum":
                witnesses.append({"@type": "not_a_class_or_base_type", "class": iri(p)})
        ranges = list(info.own.values()) + [r for c in info.one_of for r in c.values()]
        for r in ranges:
            if r.cls not in classes and r.cls not in BASE_TYPES:
                witnesses.append({"@type": "not_a_class_or_base_type", "class": iri(r.cls)})

    # ancestry (parents first, breadth-first; cycles are reported and cut)
    ancestors: dict[str, list[str]] = {}
    for name in classes:
        seen: list[str] = []
        queue = [p for p in classes[name].parents if p in classes]
        while queue:
            p = queue.pop(0)
            if p in seen:
                continue
            if p == name:
                witnesses.append({"@type": "class_cycle", "class": iri(name)})
                continue
            seen.append(p)
            queue.extend(q for q in classes[p].parents if q in classes)
        ancestors[name] = seen
    descendants: dict[str, set[str]] = {name: {name} for name in classes}
    for name, ancs in ancestors.items():
        for a in ancs:
            descendants[a].add(name)

    compiled = CompiledSchema(
        schema=schema,
        context=ctx,
        base=base,
        schema_base=schema_base,
        prefixes=prefixes,
        classes=classes,
        ancestors=ancestors,
        descendants=descendants,
        witnesses=witnesses,
    )

    # effective properties with the diamond rule
    for name, info in classes.items():
        declared: dict[str, list[Range]] = {}
        for c in [name, *ancestors[name]]:
            for prop, r in classes[c].own.items():
                declared.setdefault(prop, []).append(r)
        props: dict[str, Range] = {}
        for prop, rs in declared.items():
            best = combine(rs, compiled.subsumed)
            if best is None or (prop in info.own and info.own[prop] != best):
                witnesses.append({"@type": "violation_of_diamond_property", "class": info.iri, "predicate": iri(prop)})
                best = info.own.get(prop, rs[0])
            props[prop] = best
        info.props = props
    return compiled


def check_schema(schema: Schema) -> None:
    """Whole-graph checks (ranges and parents exist, diamond property); raises SchemaCheckFailure."""
    compiled = compile_schema(schema)
    if compiled.witnesses:
        raise SchemaCheckFailure([compiled.witnesses[0]])


def diamond_violations(schema: Schema, classes: set[str]) -> list[dict[str, Any]]:
    """The diamond-property witnesses that concern the given classes."""
    compiled = compile_schema(schema)
    iris = {compiled.class_iri(c) for c in classes}
    return [w for w in compiled.witnesses if w["@type"] == "violation_of_diamond_property" and w["class"] in iris]


def subclasses(schema: Schema, cls: str) -> set[str]:
    """``cls`` and all its descendants (type lookups include subclasses)."""
    compiled = compile_schema(schema)
    name = compiled.resolve(cls)
    if name is None:
        return set()
    return set(compiled.descendants[name])


def resolve_type_name(schema: Schema, name: str) -> str | None:
    """Short class name for ``Person`` / ``terminusdb:///schema#Person``, or None if unknown."""
    return compile_schema(schema).resolve(name)
