"""Instance documents: validation of submitted documents, id generation, and commit-time checks.

``prepare_instance`` turns one submitted document into its stored GET form (compressed ids, canonical
values, subdocuments inlined with ids) or raises the error TerminusDB gives (only the first witness).
``check_instances`` is the commit-time check (references, required properties, removed properties).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sandbox.errors import ApiError, SchemaCheckFailure
from sandbox.ids import hash_id, lexical_id, random_id, value_hash_id
from sandbox.ranges import INF, Range
from sandbox.schema import (
    ClassInfo,
    CompiledSchema,
    Schema,
    compile_schema,
    expand,
    has_scheme,
    unknown_prefix,
)
from sandbox.xsd import BASE_TYPES, NotInterpretable, coerce, lexical_form

Instances = dict[str, dict[str, Any]]

RESERVED_MARKER = "__TERMINUS_NUM__"


class _Witness(Exception):
    """Internal: validation failed with this witness (becomes a SchemaCheckFailure)."""

    def __init__(self, witness: dict[str, Any]) -> None:
        super().__init__(witness.get("@type", "witness"))
        self.witness = witness


def _q(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------------------
# ids


def expand_id(schema: Schema, doc_id: str) -> str:
    """``Person/Plato`` -> ``terminusdb:///data/Person/Plato`` (prefixed and full ids expand as such)."""
    cs = compile_schema(schema)
    return expand(doc_id, cs.base, cs.prefixes)


def compress_id(schema: Schema, iri: str) -> str:
    """Inverse of expand_id; ids outside ``@base`` are returned unchanged."""
    base = compile_schema(schema).base
    return iri[len(base) :] if iri.startswith(base) else iri


# ---------------------------------------------------------------------------------------------------------
# prepare_instance


def prepare_instance(schema: Schema, doc: Any) -> tuple[str, dict[str, Any]]:
    """Validate one submitted instance document; return (compressed id, stored document)."""
    prepared = prepare_instances(schema, [doc])
    return prepared[0].doc_id, prepared[0].stored


@dataclass(frozen=True)
class Prepared:
    """One document a write produces. ``top``: submitted at top level (its id is in the reply); otherwise a
    document given nested inside another one, inserted as a document of its own."""

    doc_id: str
    stored: dict[str, Any]
    submitted: Any
    top: bool


def prepare_instances(schema: Schema, docs: list[Any]) -> list[Prepared]:
    """Validate the documents of one request; nested documents come out as documents of their own and
    ``@capture`` / ``@ref`` are resolved across the whole request (references may point forward, and form
    cycles)."""
    cs = compile_schema(schema)
    elaborator = _Elaborator(cs)
    out: list[Prepared] = []
    try:
        for doc in docs:
            doc_id, stored = elaborator.top(doc)
            out.extend(elaborator.take_nested())
            out.append(Prepared(doc_id, stored, doc, True))
    except _Witness as w:
        raise SchemaCheckFailure([w.witness]) from None
    return elaborator.resolve_refs(out)


_REF_MARKER = "\x00@ref:"


class _Elaborator:
    def __init__(self, cs: CompiledSchema) -> None:
        self.cs = cs
        self.captures: dict[str, str] = {}  # capture name -> compressed id
        self.nested: list[Prepared] = []

    # -- captures and nested documents --------------------------------------------------------------------
    def take_nested(self) -> list[Prepared]:
        nested, self.nested = self.nested, []
        return nested

    def capture(self, doc: dict[str, Any], doc_id: str, dry: bool) -> None:
        name = doc.get("@capture")
        if name is None or dry:
            return
        if not isinstance(name, str):
            raise ApiError(
                {"@type": "api:DocumentElaborationImpossible", "api:document": doc},
                "'@capture' must be a string naming the captured id.",
            )
        if name in self.captures:
            raise ApiError(
                {"@type": "api:CaptureIdAlreadyBound", "api:capture": name, "api:document": doc},
                f"The capture '{name}' is bound twice in this request; each '@capture' name may be used once.",
            )
        self.captures[name] = doc_id

    def reference(self, name: Any, value: Any) -> str:
        """``{"@ref": name}``: the captured id, or a marker resolved once every document is elaborated."""
        if not isinstance(name, str):
            raise ApiError(
                {"@type": "api:DocumentElaborationImpossible", "api:document": value},
                "'@ref' must be a string naming a '@capture' of the same request.",
            )
        return self.captures.get(name, _REF_MARKER + name)

    def resolve_refs(self, prepared: list[Prepared]) -> list[Prepared]:
        missing: list[str] = []

        def fix(value: Any) -> Any:
            if isinstance(value, str) and value.startswith(_REF_MARKER):
                name = value[len(_REF_MARKER) :]
                if name in self.captures:
                    return self.captures[name]
                if name not in missing:
                    missing.append(name)
                return value
            if isinstance(value, list):
                return [fix(v) for v in value]
            if isinstance(value, dict):
                return {k: fix(v) for k, v in value.items()}
            return value

        out = [Prepared(p.doc_id, fix(p.stored), p.submitted, p.top) for p in prepared]
        if missing:
            raise ApiError(
                {"@type": "api:NotAllCapturesFound", "api:captures": missing},
                f"Not all captures found: {missing} are referenced with '@ref' but never '@capture'd.",
            )
        return out

    def nested_document(self, value: dict[str, Any], cls: str, dry: bool) -> str:
        """A whole document given as the value of a reference property: inserted as a document of its own."""
        info = self.doc_class(value, cls)
        if not self.cs.subsumed(info.name, cls):
            raise _Witness({"@type": "instance_not_of_class", "class": self.cs.class_iri(cls), "instance": value})
        if info.subdocument:
            raise ApiError(
                {"@type": "api:InsertedSubdocumentAsDocument", "api:document": value},
                "Tried to insert a subdocument as a document without specifying backlinks.",
            )
        stored = self.node(value, info, None, dry)
        if not dry:
            self.nested.append(Prepared(stored["@id"], stored, value, False))
        return str(stored["@id"])

    # -- names ------------------------------------------------------------------------------------------
    def full_id(self, doc_id: str) -> str:
        return expand(doc_id, self.cs.base, self.cs.prefixes)

    def short_id(self, iri: str) -> str:
        base = self.cs.base
        return iri[len(base) :] if iri.startswith(base) else iri

    def prop_name(self, key: str) -> str:
        sb = self.cs.schema_base
        if key.startswith(sb):
            return key[len(sb) :]
        if ":" in key and not has_scheme(key):
            full = expand(key, sb, self.cs.prefixes)
            if full.startswith(sb):
                return full[len(sb) :]
        return key

    def expanded_doc(self, doc: dict[str, Any], info: ClassInfo) -> dict[str, Any]:
        """The submitted document with @type, @id and property keys expanded (witness form)."""
        out: dict[str, Any] = {"@type": info.iri}
        for k, v in doc.items():
            if k == "@type":
                continue
            if k == "@id" and isinstance(v, str):
                out["@id"] = self.full_id(v)
            elif k.startswith("@"):
                out[k] = v
            else:
                out[self.cs.prop_iri(self.prop_name(k))] = v
        return out

    # -- types ------------------------------------------------------------------------------------------
    def check_prefix(self, key: str) -> None:
        if unknown_prefix(key, self.cs.prefixes):
            raise ApiError(
                {"@type": "api:UnknownPrefixError", "api:key": key},
                f"The key '{key}' is utilising an unknown prefix.",
            )

    def doc_class(self, doc: dict[str, Any], expected: str | None) -> ClassInfo:
        cs = self.cs
        t = doc.get("@type")
        if t is None:
            if expected is not None:
                if not cs.classes[expected].abstract:
                    return cs.classes[expected]
                cands = [
                    cs.classes[c]
                    for c in sorted(cs.descendants[expected])
                    if not cs.classes[c].abstract and cs.classes[c].kind != "Enum"
                ]
            else:
                cands = [c for c in cs.classes.values() if c.kind != "Enum" and not c.abstract and not c.subdocument]
            return self.infer(doc, cands)
        if isinstance(t, str):
            self.check_prefix(t)
            name = cs.resolve(t)
            if name is not None and cs.classes[name].kind != "Enum":
                return cs.classes[name]
            ascribed = expand(t, cs.schema_base, cs.prefixes)
        else:
            ascribed = t
        raise _Witness({"@type": "ascribed_type_does_not_exist", "ascribed_type": ascribed, "document": doc})

    def infer(self, doc: dict[str, Any], candidates: list[ClassInfo]) -> ClassInfo:
        keys = {self.prop_name(k) for k in doc if not k.startswith("@")}
        matches: list[ClassInfo] = []
        for info in candidates:
            if not keys <= set(info.props) | _choice_props(info):
                continue
            try:
                self.node(dict(doc, **{"@type": info.name}), info, None, dry=True)
            except (_Witness, ApiError):
                continue
            matches.append(info)
        if len(matches) != 1:
            raise _Witness({"@type": "no_unique_type_for_document", "document": doc})
        return matches[0]

    # -- documents --------------------------------------------------------------------------------------
    def top(self, doc: Any) -> tuple[str, dict[str, Any]]:
        if not isinstance(doc, dict):
            raise ApiError(
                {"@type": "api:DocumentElaborationImpossible", "api:document": doc},
                "The submitted document could not be elaborated due to an unknown syntax error.",
            )
        info = self.doc_class(doc, None)
        if info.subdocument:
            raise ApiError(
                {"@type": "api:InsertedSubdocumentAsDocument", "api:document": doc},
                "Tried to insert a subdocument as a document without specifying backlinks.",
            )
        stored = self.node(doc, info, None)
        return stored["@id"], stored

    def node(self, doc: dict[str, Any], info: ClassInfo, id_base: str | None, dry: bool = False) -> dict[str, Any]:
        """Elaborate one (sub)document. ``id_base``: full id prefix for subdocuments, None at top level."""
        cs = self.cs
        if info.abstract:
            sub = doc.get("@id")
            raise _Witness(
                {
                    "@type": "reifying_abstract_class",
                    "class": info.iri,
                    "subject": self.full_id(sub) if isinstance(sub, str) else "unknown",
                }
            )
        choice_props = _choice_props(info)
        present: dict[str, tuple[Range, Any]] = {}
        unknown: list[str] = []
        for key, value in doc.items():
            if key.startswith("@"):
                continue
            self.check_prefix(key)
            prop = self.prop_name(key)
            r = info.props.get(prop) or _choice_range(info, prop)
            if r is None:
                unknown.append(cs.prop_iri(prop))
                continue
            present[prop] = (r, value)

        # values (subdocuments deferred until the id is known)
        values: dict[str, Any] = {}
        subdocs: dict[str, tuple[Range, list[Any]]] = {}
        for prop, (r, value) in present.items():
            elts = self.collect(doc, info, prop, r, value)
            if elts is None:
                continue
            if r.cls in cs.classes and cs.classes[r.cls].subdocument:
                if r.kind in ("Set", "Cardinality"):
                    self.check_bounds(doc, info, prop, r, len(elts))
                subdocs[prop] = (r, elts)
                continue
            conv = [self.element(prop, r.cls, e, dry) for e in elts]
            if r.kind in ("Set", "Cardinality"):
                conv = _dedupe(conv)
                self.check_bounds(doc, info, prop, r, len(conv))
            values[prop] = conv
        if unknown:
            raise _Witness(
                {
                    "@type": "unknown_property_for_type",
                    "document": self.expanded_doc(doc, info),
                    "property": unknown,
                    "type": info.iri,
                }
            )
        self.check_required(doc, info, present, values, subdocs, choice_props)

        # id
        base = id_base if id_base is not None else self.full_id(info.base)
        full = self.make_id(doc, info, base, values, dry)
        self.capture(doc, self.short_id(full), dry)

        stored: dict[str, Any] = {"@id": self.short_id(full), "@type": info.name}
        for prop in [*info.props, *sorted(choice_props - set(info.props))]:
            if prop in subdocs:
                r, elts = subdocs[prop]
                target = r.cls
                out: list[Any] = []
                for e in elts:
                    if isinstance(e, dict):
                        sub_info = self.doc_class(e, target)
                        if not cs.subsumed(sub_info.name, target):
                            raise _Witness(
                                {
                                    "@type": "instance_not_of_class",
                                    "class": cs.class_iri(target),
                                    "instance": e,
                                }
                            )
                        sub_base = f"{full}/{prop}/{sub_info.base}"
                        out.append(self.node(e, sub_info, sub_base, dry))
                    elif isinstance(e, str):
                        out.append(self.short_id(self.full_id(e)))
                    else:
                        raise self.not_interpretable(prop, e, target)
                shaped = self.shape(r, out)
                if shaped is not _ABSENT:
                    stored[prop] = shaped
            elif prop in values:
                shaped = self.shape(present[prop][0], values[prop])
                if shaped is not _ABSENT:
                    stored[prop] = shaped
        return stored

    def collect(self, doc: dict[str, Any], info: ClassInfo, prop: str, r: Range, value: Any) -> list[Any] | None:
        """The submitted value(s) of one property as a list, or None when absent."""
        if value is None:
            return None
        if r.collection:
            elts = value if isinstance(value, list) else [value]
            return elts
        if isinstance(value, list) and r.cls != "sys:JSON":
            raise _Witness({"@type": "unexpected_list", "type": self.cs.class_iri(r.cls), "value": value})
        return [value]

    def check_bounds(self, doc: dict[str, Any], info: ClassInfo, prop: str, r: Range, n: int) -> None:
        if (0 < n < r.min) or n > r.max:
            raise _Witness(
                {
                    "@type": "field_has_wrong_cardinality",
                    "actual": n,
                    "document": self.expanded_doc(doc, info),
                    "field": self.cs.prop_iri(prop),
                    "max": int(r.max) if r.max != INF else "inf",
                    "min": r.min,
                }
            )

    def check_required(
        self,
        doc: dict[str, Any],
        info: ClassInfo,
        present: dict[str, tuple[Range, Any]],
        values: dict[str, Any],
        subdocs: dict[str, Any],
        choice_props: set[str],
    ) -> None:
        def has(prop: str) -> bool:
            """A value was given; an empty collection counts as none (except for a List, where [] is a value)."""
            if prop in subdocs:
                return bool(subdocs[prop][1])
            return bool(values.get(prop))

        if info.kind == "TaggedUnion":
            chosen = [p for p in info.props if has(p)]
            if len(chosen) != 1:
                kind = "no_choice_is_cardinality_one" if not chosen else "choice_has_too_many_answers"
                raise _Witness(
                    {"@type": kind, "choice": self.choice(info.props), "document": self.expanded_doc(doc, info)}
                )
            return
        for prop, r in info.props.items():
            if r.required and not has(prop):
                if r.kind == "List" and prop in present:
                    continue
                raise _Witness(
                    {
                        "@type": "required_field_does_not_exist_in_document",
                        "document": self.expanded_doc(doc, info),
                        "field": self.cs.prop_iri(prop),
                    }
                )
        for choice in info.one_of:
            chosen = [p for p in choice if has(p)]
            if len(chosen) != 1:
                kind = "no_choice_is_cardinality_one" if not chosen else "choice_has_too_many_answers"
                raise _Witness({"@type": kind, "choice": self.choice(choice), "document": self.expanded_doc(doc, info)})

    def choice(self, ranges: dict[str, Range]) -> dict[str, Any]:
        """A choice as TerminusDB's witness shows it: property IRI -> expanded range."""
        out: dict[str, Any] = {}
        for prop, r in ranges.items():
            cls = self.cs.class_iri(r.cls)
            out[self.cs.prop_iri(prop)] = (
                cls if r.kind in ("one", "TaggedUnionAlt") else {"@type": r.kind, "@class": cls}
            )
        return out

    def not_interpretable(self, prop: str, value: Any, cls: str) -> _Witness:
        return _Witness(
            {
                self.cs.prop_iri(prop): {
                    "@type": "could_not_interpret_as_type",
                    "value": value,
                    "type": self.cs.class_iri(cls),
                }
            }
        )

    def element(self, prop: str, cls: str, value: Any, dry: bool = False) -> Any:
        """Check and canonicalise one value of a non-subdocument range."""
        cs = self.cs
        if isinstance(value, bool) and cls not in ("xsd:boolean", "sys:JSON"):
            raise ApiError(
                {
                    "@type": "api:UnexpectedBooleanValue",
                    "api:value": value,
                    "api:expected_type": cs.class_iri(cls),
                },
                f"Unexpected boolean value: {_q(value)}, expected type: {_q(cs.class_iri(cls))}",
            )
        if cls in BASE_TYPES:
            if cls == "sys:JSON":
                return value
            if isinstance(value, dict) and "@value" in value:
                value = value["@value"]
            if isinstance(value, str) and value.startswith(RESERVED_MARKER):
                raise ApiError(
                    {"@type": "api:ReservedMarkerInString", "api:field": prop, "api:marker": RESERVED_MARKER},
                    f"String values cannot start with reserved marker prefix '{RESERVED_MARKER}' (field '{prop}')",
                )
            try:
                return coerce(cls, value)
            except NotInterpretable:
                raise self.not_interpretable(prop, value, cls) from None
        target = cs.classes[cls]
        if target.kind == "Enum":
            v = value
            if isinstance(v, str):
                prefix = f"{target.iri}/"
                if v.startswith(prefix):
                    v = v[len(prefix) :]
                elif v.startswith(f"{cls}/") and v[len(cls) + 1 :] in target.enum_values:
                    v = v[len(cls) + 1 :]
            if not isinstance(v, str) or v not in target.enum_values:
                raise _Witness({"@type": "not_a_valid_enum", "enum": target.iri, "value": value})
            return v
        # reference to another document: an id, {"@id": id}, {"@ref": capture} or a whole nested document
        if isinstance(value, dict):
            if "@ref" in value:
                return self.reference(value["@ref"], value)
            if _is_nested_document(value):
                return self.nested_document(value, cls, dry)
        ref = value.get("@id") if isinstance(value, dict) else value
        if not isinstance(ref, str) or not ref:
            raise self.not_interpretable(prop, value, cls)
        self.check_prefix(ref)
        return self.short_id(self.full_id(ref))

    def shape(self, r: Range, elts: list[Any]) -> Any:
        if r.kind in ("one", "Optional"):
            return elts[0] if elts else _ABSENT
        if r.kind in ("Set", "Cardinality", "Array"):
            return elts if elts else _ABSENT
        return elts

    # -- ids --------------------------------------------------------------------------------------------
    def key_value(self, info: ClassInfo, field: str, values: dict[str, Any]) -> Any:
        prop = self.prop_name(field)
        r = info.props.get(prop)
        if r is None or prop not in values or not values[prop]:
            return None
        is_ref = r.cls in self.cs.classes and self.cs.classes[r.cls].kind != "Enum"
        for v in values[prop]:
            if is_ref and isinstance(v, str) and v.startswith(_REF_MARKER):
                name = v[len(_REF_MARKER) :]
                raise ApiError(
                    {"@type": "api:NotAllCapturesFound", "api:captures": [name]},
                    f"The key field '{prop}' refers to the capture '{name}' before it is bound; "
                    "submit the captured document first.",
                )
        forms = [self.full_id(v) if is_ref else lexical_form(v) for v in values[prop]]
        return forms if r.collection else forms[0]

    def make_id(self, doc: dict[str, Any], info: ClassInfo, base: str, values: dict[str, Any], dry: bool) -> str:
        key_type = (info.key or {}).get("@type", "Random")
        submitted = doc.get("@id")
        submitted_full = self.full_id(submitted) if isinstance(submitted, str) and submitted else None
        if key_type in ("Lexical", "Hash"):
            fields = (info.key or {}).get("@fields", [])
            vals = [self.key_value(info, f, values) for f in fields]
            generated = lexical_id(base, vals) if key_type == "Lexical" else hash_id(base, vals)
        elif key_type == "ValueHash":
            content = {"@type": info.name, **{p: v for p, v in values.items()}}
            generated = value_hash_id(base, content)
        else:
            if submitted_full is None:
                return base + "0" * 16 if dry else random_id(base)
            if not submitted_full.startswith(base):
                raise ApiError(
                    {
                        "@type": "api:SubmittedDocumentIdDoesNotHaveExpectedPrefix",
                        "api:submitted_id": submitted_full,
                        "api:prefix": base,
                    },
                    f"Document id {_q(submitted_full)} does not have expected prefix {_q(base)}",
                )
            return submitted_full
        if submitted_full is not None and submitted_full != generated:
            raise ApiError(
                {
                    "@type": "api:SubmittedIdDoesNotMatchGeneratedId",
                    "api:submitted_id": submitted_full,
                    "api:generated_id": generated,
                },
                f"Document was submitted with id {_q(submitted_full)}, but id {_q(generated)} was generated",
            )
        return generated


def _is_nested_document(value: dict[str, Any]) -> bool:
    """A dict in a reference position is a link (``{"@id": x}``, ``{"@id": x, "@type": "@id"}``) unless it
    carries anything else, which makes it a whole document to insert."""
    if value.get("@type") == "@id":
        return False
    return set(value) != {"@id"}


class _Absent:
    pass


_ABSENT: Any = _Absent()


def _dedupe(elts: list[Any]) -> list[Any]:
    seen: set[str] = set()
    out: list[Any] = []
    for e in elts:
        k = json.dumps(e, sort_keys=True)
        if k not in seen:
            seen.add(k)
            out.append(e)
    return out


def _choice_props(info: ClassInfo) -> set[str]:
    return {p for choice in info.one_of for p in choice}


def _choice_range(info: ClassInfo, prop: str) -> Range | None:
    for choice in info.one_of:
        if prop in choice:
            r = choice[prop]
            return Range("Optional", r.cls, 0, 1) if r.kind == "one" else r
    return None


# ---------------------------------------------------------------------------------------------------------
# commit-time checks


def is_raw_json(doc: dict[str, Any]) -> bool:
    """A schemaless ``sys:JSONDocument`` (inserted with ``raw_json=true``): the only stored documents without
    ``@type``; the schema does not apply to them."""
    return "@type" not in doc


def check_instances(schema: Schema, instances: Instances, changed: set[str] | None = None) -> None:
    """Commit-time checks of stored documents (all, or only ``changed`` ids); raises SchemaCheckFailure."""
    cs = compile_schema(schema)
    if changed is None:
        targets: list[str] = [i for i, doc in instances.items() if not is_raw_json(doc)]
        deleted: set[str] = set()
    else:
        targets = [i for i in changed if i in instances and not is_raw_json(instances[i])]
        deleted = {i for i in changed if i not in instances}
    checker = _Checker(cs, instances)
    for doc_id in targets:
        w = checker.node(instances[doc_id])
        if w is not None:
            raise SchemaCheckFailure([w])
    if deleted:
        for doc in instances.values():
            w = checker.references_to(doc, deleted)
            if w is not None:
                raise SchemaCheckFailure([w])


class _Checker:
    def __init__(self, cs: CompiledSchema, instances: Instances) -> None:
        self.cs = cs
        self.instances = instances

    def full(self, doc_id: str) -> str:
        return expand(doc_id, self.cs.base, self.cs.prefixes)

    def node(self, node: dict[str, Any]) -> dict[str, Any] | None:
        cs = self.cs
        subject = self.full(node["@id"])
        info = cs.classes.get(node.get("@type", ""))
        if info is None or info.kind == "Enum":
            return {"@type": "not_a_class_or_base_type", "class": cs.class_iri(str(node.get("@type")))}
        if info.abstract:
            return {"@type": "reifying_abstract_class", "class": info.iri, "subject": subject}
        props = info.props
        choices = _choice_props(info)
        if info.kind != "TaggedUnion":
            for prop, r in props.items():
                v = node.get(prop)
                n = 0 if v is None else (len(v) if isinstance(v, list) and r.cls != "sys:JSON" else 1)
                if r.kind == "List":
                    if v is None:
                        return self.not_one(r, subject, prop)
                    continue
                if r.kind == "Array":
                    continue
                if r.kind == "one" and n != 1:
                    return self.not_one(r, subject, prop)
                if n < r.min or n > r.max:
                    return {
                        "@type": "instance_has_wrong_cardinality",
                        "cardinality": n,
                        "class": cs.class_iri(r.cls),
                        "instance": subject,
                        "object_list": v if isinstance(v, list) else ([] if v is None else [v]),
                        "predicate": cs.prop_iri(prop),
                    }
        for key in node:
            if not key.startswith("@") and key not in props and key not in choices:
                return {
                    "@type": "invalid_predicate",
                    "class": info.iri,
                    "predicate": cs.prop_iri(key),
                    "subject": subject,
                }
        for prop, v in node.items():
            if prop.startswith("@"):
                continue
            rng = props.get(prop) or _choice_range(info, prop)
            if rng is None or rng.cls not in cs.classes:
                continue
            target = cs.classes[rng.cls]
            for elt in v if isinstance(v, list) else [v]:
                w = self.value(target, elt)
                if w is not None:
                    return w
        return None

    def not_one(self, r: Range, subject: str, prop: str) -> dict[str, Any]:
        return {
            "@type": "instance_not_cardinality_one",
            "class": self.cs.class_iri(r.cls),
            "instance": subject,
            "predicate": self.cs.prop_iri(prop),
        }

    def value(self, target: ClassInfo, elt: Any) -> dict[str, Any] | None:
        cs = self.cs
        if target.kind == "Enum":
            if elt not in target.enum_values:
                return {
                    "@type": "instance_not_of_class",
                    "class": target.iri,
                    "instance": f"{target.iri}/{elt}",
                }
            return None
        if isinstance(elt, dict):
            return self.node(elt)
        if not isinstance(elt, str):
            return {"@type": "instance_not_of_class", "class": target.iri, "instance": elt}
        ref = self.instances.get(elt)
        if ref is None:
            if target.subdocument:
                return None
            return {"@type": "instance_not_of_class", "class": target.iri, "instance": self.full(elt)}
        if not cs.subsumed(str(ref.get("@type")), target.name):
            return {"@type": "instance_not_of_class", "class": target.iri, "instance": self.full(elt)}
        return None

    def references_to(self, node: dict[str, Any], deleted: set[str]) -> dict[str, Any] | None:
        cs = self.cs
        info = cs.classes.get(node.get("@type", ""))
        if info is None:
            return None
        for prop, v in node.items():
            if prop.startswith("@"):
                continue
            r = info.props.get(prop) or _choice_range(info, prop)
            if r is None or r.cls not in cs.classes or cs.classes[r.cls].kind == "Enum":
                continue
            for elt in v if isinstance(v, list) else [v]:
                if isinstance(elt, dict):
                    w = self.references_to(elt, deleted)
                    if w is not None:
                        return w
                elif elt in deleted:
                    return {
                        "@type": "deleted_object_still_referenced",
                        "object": self.full(elt),
                        "predicate": cs.prop_iri(prop),
                        "subject": self.full(node["@id"]),
                    }
        return None
