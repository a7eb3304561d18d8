"""The schema migration API: applying explicit operations, and inferring weakening migrations.

Operations are checked for their exact JSON shape, applied to the schema in a preflight (so a failing
precondition anywhere is reported before any instance work), then applied to schema and instances in turn.
The instance step walks documents of the class and its subclasses, including inlined subdocuments.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sandbox.errors import ApiError, SchemaCheckFailure, UnhandledError, generic_schema_check_failure
from sandbox.ranges import Range, RangeSyntaxError, is_weakening, parse_range, range_to_json
from sandbox.schema import (
    CompiledSchema,
    Schema,
    check_schema,
    compile_schema,
    diamond_violations,
    prepare_schema_document,
)
from sandbox.xsd import BASE_TYPES, NotInterpretable, coerce

Instances = dict[str, dict[str, Any]]

#: operation @type -> (required keys, optional keys)
OPERATION_SHAPES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "CreateClass": (frozenset(["class_document"]), frozenset()),
    "DeleteClass": (frozenset(["class"]), frozenset()),
    "MoveClass": (frozenset(["from", "to"]), frozenset()),
    "CreateClassProperty": (frozenset(["class", "property", "type"]), frozenset(["default"])),
    "DeleteClassProperty": (frozenset(["class", "property"]), frozenset()),
    "MoveClassProperty": (frozenset(["class", "from", "to"]), frozenset()),
    "UpcastClassProperty": (frozenset(["class", "property", "type"]), frozenset()),
    "CastClassProperty": (frozenset(["class", "property", "type", "default"]), frozenset()),
    "ChangeParents": (frozenset(["class", "parents"]), frozenset(["properties"])),
    "ChangeKey": (frozenset(["class", "key"]), frozenset(["fields"])),
    "ExpandEnum": (frozenset(["enum", "values"]), frozenset()),
    "ReplaceClassMetadata": (frozenset(["class", "metadata"]), frozenset()),
    "ReplaceClassDocumentation": (frozenset(["class", "documentation"]), frozenset()),
    "Abstract": (frozenset(["class"]), frozenset()),
    "NotAbstract": (frozenset(["class"]), frozenset()),
    "Unfoldable": (frozenset(["class"]), frozenset()),
    "NotUnfoldable": (frozenset(["class"]), frozenset()),
    "ReplaceContext": (frozenset(["context"]), frozenset()),
}
_STRING_KEYS = ("class", "property", "from", "to", "enum")


def _op_text(op: Any) -> str:
    return json.dumps(op, separators=(",", ":"), ensure_ascii=False)


def _unknown_operation(op: Any) -> ApiError:
    return ApiError(
        {"@type": "api:UnknownSchemaMigrationOperation", "api:operation": op},
        f"Unknown or poorly formed schema migration operation: {json.dumps(op, ensure_ascii=False)}",
    )


def check_operation_shape(op: Any) -> None:
    """Raise api:UnknownSchemaMigrationOperation unless ``op`` has exactly the keys of its @type."""
    if not isinstance(op, dict) or op.get("@type") not in OPERATION_SHAPES:
        raise _unknown_operation(op)
    required, optional = OPERATION_SHAPES[op["@type"]]
    keys = set(op) - {"@type"}
    if not required <= keys or not keys <= required | optional:
        raise _unknown_operation(op)
    if any(k in op and not isinstance(op[k], str) for k in _STRING_KEYS):
        raise _unknown_operation(op)


def _failed(op: dict[str, Any], before: Schema) -> ApiError:
    text = _op_text(op)
    return ApiError(
        {"@type": "api:SchemaOperationFailed", "api:schema_operation": text, "api:schema": dict(before)},
        f"The schema operation '{text}' failed and could not be performed",
    )


def _with_doc(schema: Schema, name: str, doc: dict[str, Any]) -> Schema:
    new = dict(schema)
    new[name] = doc
    return new


def _class_doc(schema: Schema, op: dict[str, Any], key: str = "class", kind: str = "Class") -> dict[str, Any]:
    doc = schema.get(op[key]) if op[key] != "@context" else None
    if doc is None or doc.get("@type", "Class") != kind:
        raise _failed(op, schema)
    return doc


def _parse_type(op: dict[str, Any]) -> Range:
    try:
        return parse_range(op["type"])
    except RangeSyntaxError:
        raise _unknown_operation(op) from None


# ---------------------------------------------------------------------------------------------------------
# schema steps


def _schema_step(schema: Schema, op: dict[str, Any]) -> Schema:
    kind = op["@type"]
    if kind == "ReplaceContext":
        raise ApiError(
            {"@type": "api:OperationNotImplemented", "api:operation": op},
            f"The operation {_op_text(op)} is not yet implemented",
        )
    if kind == "CreateClass":
        doc = prepare_schema_document(op["class_document"], schema.get("@context"))
        return _with_doc(schema, doc["@id"], doc)
    if kind == "DeleteClass":
        _class_doc(schema, op, kind=schema.get(op["class"], {}).get("@type", "Class"))
        new = dict(schema)
        del new[op["class"]]
        return new
    if kind == "ExpandEnum":
        doc = _class_doc(schema, op, "enum", "Enum")
        values = list(doc.get("@value", []))
        values += [v for v in op["values"] if v not in values]
        return _with_doc(schema, op["enum"], {**doc, "@value": values})
    if kind == "MoveClass":
        return _move_class_schema(schema, op)
    if kind == "ChangeKey":
        return _change_key_schema(schema, op)
    doc = _class_doc(schema, op, kind=schema.get(op["class"], {}).get("@type", "Class"))
    name = op["class"]
    if kind == "CreateClassProperty":
        prop = op["property"]
        if prop in doc or prop.startswith("@"):
            raise _failed(op, schema)
        r = _parse_type(op)
        new = _with_doc(schema, name, {**doc, prop: range_to_json(r)})
        cs = compile_schema(new)
        if diamond_violations(new, cs.descendants.get(name, {name})):
            raise UnhandledError("violation_of_diamond_property")
        return new
    if kind == "DeleteClassProperty":
        if op["property"] not in doc or op["property"].startswith("@"):
            raise _failed(op, schema)
        return _with_doc(schema, name, {k: v for k, v in doc.items() if k != op["property"]})
    if kind == "MoveClassProperty":
        src, dst = op["from"], op["to"]
        if src not in doc or dst in doc or src.startswith("@") or dst.startswith("@"):
            raise _failed(op, schema)
        cs = compile_schema(schema)
        if any(src in cs.classes[a].own for a in cs.ancestors.get(name, [])):
            raise UnhandledError("immovable_property")
        return _with_doc(schema, name, {(dst if k == src else k): v for k, v in doc.items()})
    if kind == "UpcastClassProperty":
        prop = op["property"]
        if prop not in doc or prop.startswith("@"):
            raise _failed(op, schema)
        old, new_r = parse_range(doc[prop]), _parse_type(op)
        if not is_weakening(old, new_r, compile_schema(schema).subsumed):
            raise ApiError(
                {
                    "@type": "api:UpcastNotASchemaWeakening",
                    "api:class": name,
                    "api:property": prop,
                    "api:new_type": op["type"],
                },
                f"It is impossible to upcast the property {json.dumps(name)} on class {json.dumps(prop)} "
                f"to a stricter type {_op_text(op['type'])}",
            )
        return _with_doc(schema, name, {**doc, prop: range_to_json(new_r)})
    if kind in ("Abstract", "Unfoldable"):
        return _with_doc(schema, name, {**doc, f"@{kind.lower()}": []})
    if kind in ("NotAbstract", "NotUnfoldable"):
        flag = "@abstract" if kind == "NotAbstract" else "@unfoldable"
        return _with_doc(schema, name, {k: v for k, v in doc.items() if k != flag})
    if kind == "ReplaceClassMetadata":
        return _with_doc(schema, name, {**doc, "@metadata": op["metadata"]})
    if kind == "ReplaceClassDocumentation":
        return _with_doc(schema, name, {**doc, "@documentation": op["documentation"]})
    # CastClassProperty, ChangeParents: not reproduced by the sandbox
    raise UnhandledError(f"operation {kind} is not supported by the sandbox")


def _change_key_schema(schema: Schema, op: dict[str, Any]) -> Schema:
    """Set the class's ``@key``; as in TerminusDB an unknown class or key type is an unmapped error (500)."""
    name, key_type = op["class"], op["key"]
    doc = schema.get(name) if name != "@context" else None
    if doc is None:
        raise UnhandledError("class_does_not_exist")
    if key_type in ("Random", "ValueHash"):
        key: dict[str, Any] = {"@type": key_type}
    elif key_type in ("Lexical", "Hash"):
        fields = op.get("fields", [])
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise _unknown_operation(op)
        key = {"@type": key_type, "@fields": fields}
    else:
        raise UnhandledError("bad_key_type")
    return _with_doc(schema, name, {**doc, "@key": key})


def _move_class_schema(schema: Schema, op: dict[str, Any]) -> Schema:
    src, dst = op["from"], op["to"]
    if src not in schema or src == "@context":
        raise _failed(op, schema)
    if dst in schema:
        raise ApiError(
            {"@type": "api:ClassExists", "api:class": dst},
            f"It is impossible to move to the class {json.dumps(dst)} as it already exists",
        )

    def rename(value: Any) -> Any:
        if value == src:
            return dst
        if isinstance(value, list):
            return [rename(v) for v in value]
        if isinstance(value, dict) and value.get("@class") == src:
            return {**value, "@class": dst}
        return value

    new: Schema = {}
    for name, doc in schema.items():
        if name == "@context":
            new[name] = doc
            continue
        out = {k: (rename(v) if (k == "@inherits" or not k.startswith("@")) else v) for k, v in doc.items()}
        if name == src:
            out["@id"] = dst
        new[dst if name == src else name] = out
    return new


# ---------------------------------------------------------------------------------------------------------
# instance steps


def _walk(
    cs: CompiledSchema,
    instances: Instances,
    classes: set[str],
    fn: Callable[[dict[str, Any]], dict[str, Any] | None],
) -> Instances:
    """Apply ``fn`` to every (sub)document whose @type is in ``classes``; ``fn`` returns a new doc or None.

    Returns a new Instances mapping (unchanged documents are shared); ``fn`` returning the
    ``_DELETE`` marker removes a top-level document.
    """
    has_sub = any(cs.classes[c].subdocument for c in cs.classes) and any(
        cs.classes[c].subdocument for c in classes if c in cs.classes
    )
    out: Instances = {}
    changed = False
    for doc_id, doc in instances.items():
        new = _walk_node(cs, doc, classes, fn, has_sub)
        if new is _DELETE:
            changed = True
            continue
        if new is not doc:
            changed = True
        out[doc_id] = new
    return out if changed else instances


_DELETE: Any = {"@delete": True}


def _walk_node(
    cs: CompiledSchema,
    doc: dict[str, Any],
    classes: set[str],
    fn: Callable[[dict[str, Any]], dict[str, Any] | None],
    has_sub: bool,
) -> Any:
    cur = doc
    if has_sub:
        info = cs.classes.get(doc.get("@type", ""))
        if info is not None:
            for prop, r in info.props.items():
                if prop in doc and r.cls in cs.classes and cs.classes[r.cls].subdocument:
                    v = doc[prop]
                    elts = v if isinstance(v, list) else [v]
                    new_elts = [_walk_node(cs, e, classes, fn, has_sub) if isinstance(e, dict) else e for e in elts]
                    new_elts = [e for e in new_elts if e is not _DELETE]
                    if any(a is not b for a, b in zip(new_elts, elts, strict=False)) or len(new_elts) != len(elts):
                        if cur is doc:
                            cur = dict(doc)
                        if isinstance(v, list):
                            cur[prop] = new_elts
                        elif new_elts:
                            cur[prop] = new_elts[0]
                        else:
                            del cur[prop]
    if cur.get("@type") in classes:
        res = fn(cur)
        if res is not None:
            return res
    return cur


def _instance_step(before: Schema, after: Schema, op: dict[str, Any], instances: Instances) -> tuple[Instances, int]:
    kind = op["@type"]
    cs_before = compile_schema(before)
    count = 0

    def targets(name: str) -> set[str]:
        return set(cs_before.descendants.get(name, {name}))

    if kind == "DeleteClass":

        def delete(doc: dict[str, Any]) -> Any:
            nonlocal count
            count += 1
            return _DELETE

        return _walk(cs_before, instances, targets(op["class"]), delete), count
    if kind == "Abstract":

        def delete_direct(doc: dict[str, Any]) -> Any:
            nonlocal count
            count += 1
            return _DELETE

        return _walk(cs_before, instances, {op["class"]}, delete_direct), count
    if kind == "CreateClassProperty":
        return _create_property_instances(cs_before, op, instances, targets(op["class"]))
    if kind == "DeleteClassProperty":
        prop = op["property"]

        def drop(doc: dict[str, Any]) -> dict[str, Any] | None:
            nonlocal count
            if prop not in doc:
                return None
            v = doc[prop]
            count += len(v) if isinstance(v, list) else 1
            return {k: x for k, x in doc.items() if k != prop}

        return _walk(cs_before, instances, targets(op["class"]), drop), count
    if kind == "MoveClassProperty":
        src, dst = op["from"], op["to"]

        def move(doc: dict[str, Any]) -> dict[str, Any] | None:
            nonlocal count
            if src not in doc:
                return None
            v = doc[src]
            count += len(v) if isinstance(v, list) else 1
            return {(dst if k == src else k): x for k, x in doc.items()}

        return _walk(cs_before, instances, targets(op["class"]), move), count
    if kind == "UpcastClassProperty":
        prop = op["property"]
        new_r = parse_range(op["type"])

        def recast(doc: dict[str, Any]) -> dict[str, Any] | None:
            nonlocal count
            if prop not in doc:
                return None
            v = doc[prop]
            count += len(v) if isinstance(v, list) else 1
            if new_r.collection and not isinstance(v, list):
                return {**doc, prop: [v]}
            return None

        return _walk(cs_before, instances, targets(op["class"]), recast), count
    if kind == "MoveClass":
        return _move_class_instances(cs_before, op, instances)
    if kind == "ChangeKey":
        return _change_key_instances(after, op, instances)
    return instances, 0


def _change_key_instances(after: Schema, op: dict[str, Any], instances: Instances) -> tuple[Instances, int]:
    """TerminusDB re-inserts every direct instance of the class without its ``@id``, so the new key makes a
    new id (a Random key a fresh random one), and rewrites every link to the old id; two instances ending
    on one id is an unmapped error (500). The count is the number of instances re-inserted."""
    from sandbox.documents import prepare_instance

    cls = op["class"]
    targets = [doc_id for doc_id, doc in instances.items() if doc.get("@type") == cls]
    renamed: dict[str, str] = {}
    rebuilt: dict[str, dict[str, Any]] = {}
    for doc_id in targets:
        submitted = {k: v for k, v in instances[doc_id].items() if k != "@id"}
        new_id, stored = prepare_instance(after, submitted)
        if new_id in rebuilt:
            raise UnhandledError("id_overlap_after_key_change")
        renamed[doc_id] = new_id
        rebuilt[new_id] = stored
    if any(new_id in instances and new_id not in renamed for new_id in rebuilt):
        raise UnhandledError("id_overlap_after_key_change")

    def fix(value: Any) -> Any:
        if isinstance(value, str):
            return renamed.get(value, value)
        if isinstance(value, list):
            return [fix(v) for v in value]
        if isinstance(value, dict):
            return {k: (v if k.startswith("@") else fix(v)) for k, v in value.items()}
        return value

    out: Instances = {}
    for doc_id, doc in instances.items():
        if doc_id in renamed:
            new_id = renamed[doc_id]
            out[new_id] = fix(rebuilt[new_id])
        else:
            out[doc_id] = fix(doc)
    return out, len(targets)


def _literal(r: Range, value: Any) -> Any:
    if r.cls in BASE_TYPES and not isinstance(value, bool):
        try:
            return coerce(r.cls, value)
        except NotInterpretable:
            return value
    return value


def _create_property_instances(
    cs: CompiledSchema, op: dict[str, Any], instances: Instances, classes: set[str]
) -> tuple[Instances, int]:
    r = parse_range(op["type"])
    prop = op["property"]
    count = 0
    if "default" not in op:
        if r.kind in ("Optional", "Set") or (r.kind == "Cardinality" and r.min <= 1 <= r.max):
            return instances, 0
        if r.kind != "List":
            raise UnhandledError("unknown_irrefutable_property_creation")

        def empty_list(doc: dict[str, Any]) -> dict[str, Any] | None:
            nonlocal count
            if prop in doc:
                return None
            count += 1
            return {**doc, prop: []}

        return _walk(cs, instances, classes, empty_list), count
    default = op["default"]
    if r.kind in ("one", "Optional"):
        value: Any = _literal(r, default)
    elif r.kind in ("Set", "Cardinality", "List", "Array"):
        if not isinstance(default, list):
            raise UnhandledError("default for a collection type must be a list")
        value = [_literal(r, d) for d in default]
    else:  # pragma: no cover - parse_range only yields the kinds above
        raise UnhandledError("unsupported default")

    def insert(doc: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal count
        count += 1
        if prop in doc:
            old = doc[prop]
            if old == value:
                return None
            olds = old if isinstance(old, list) else [old]
            news = value if isinstance(value, list) else [value]
            return {**doc, prop: olds + [v for v in news if v not in olds]}
        if isinstance(value, list) and not value and r.kind != "List":
            return None
        return {**doc, prop: value}

    return _walk(cs, instances, classes, insert), count


def _move_class_instances(cs: CompiledSchema, op: dict[str, Any], instances: Instances) -> tuple[Instances, int]:
    src, dst = op["from"], op["to"]
    info = cs.classes[src]
    old_prefix = info.base if "@base" in info.doc else f"{src}/"
    new_prefix = info.base if "@base" in info.doc else f"{dst}/"
    renamed: dict[str, str] = {}
    for doc_id, doc in instances.items():
        if doc.get("@type") == src and doc_id.startswith(old_prefix):
            renamed[doc_id] = new_prefix + doc_id[len(old_prefix) :]

    def fix(value: Any) -> Any:
        if isinstance(value, str):
            return renamed.get(value, value)
        if isinstance(value, list):
            return [fix(v) for v in value]
        if isinstance(value, dict):
            return {k: (fix(v) if k != "@type" else (dst if v == src else v)) for k, v in value.items()}
        return value

    out: Instances = {}
    for doc_id, doc in instances.items():
        new = fix(doc)
        out[renamed.get(doc_id, doc_id)] = new
    return out, sum(1 for d in instances.values() if d.get("@type") == src)


# ---------------------------------------------------------------------------------------------------------
# entry points


def apply_operations(
    schema: Schema, instances: Instances, operations: Any, *, validate: bool = True
) -> tuple[Schema, Instances, int]:
    """Apply migration operations; return (new schema, new instances, instance_operations count)."""
    if not isinstance(operations, list):
        raise _unknown_operation(operations)
    for op in operations:
        check_operation_shape(op)
    steps: list[tuple[Schema, Schema, dict[str, Any]]] = []
    current = schema
    for op in operations:
        after = _schema_step(current, op)
        steps.append((current, after, op))
        current = after
    total = 0
    for before, after, op in steps:
        instances, n = _instance_step(before, after, op, instances)
        total += n
    if validate:
        from sandbox.documents import check_instances

        try:
            check_schema(current)
            check_instances(current, instances)
        except SchemaCheckFailure as exc:
            raise generic_schema_check_failure(exc.witnesses) from None
    return current, instances, total


def infer_migration(old: Schema, new: Schema) -> list[dict[str, Any]] | None:
    """The weakening operations taking ``old`` to ``new``, or None if the change is not a pure weakening."""
    if old.get("@context") != new.get("@context"):
        return None
    if any(name not in new for name in old):
        return None
    cs_new = compile_schema(new)
    ops: list[dict[str, Any]] = []
    for name, doc in new.items():
        if name == "@context":
            continue
        if name not in old:
            ops.append({"@type": "CreateClass", "class_document": doc})
            continue
        before = old[name]
        if before == doc:
            continue
        class_ops = _infer_class(name, before, doc, cs_new)
        if class_ops is None:
            return None
        ops.extend(class_ops)
    return ops


def _infer_class(
    name: str, before: dict[str, Any], after: dict[str, Any], cs: CompiledSchema
) -> list[dict[str, Any]] | None:
    fixed = ("@type", "@key", "@subdocument", "@inherits", "@base", "@oneOf", "@shared")
    if any(before.get(k) != after.get(k) for k in fixed):
        return None
    if before.get("@type") == "Enum":
        old_vals, new_vals = before.get("@value", []), after.get("@value", [])
        if not set(old_vals) <= set(new_vals):
            return None
        ops: list[dict[str, Any]] = []
        added = [v for v in new_vals if v not in old_vals]
        if added:
            ops.append({"@type": "ExpandEnum", "enum": name, "values": added})
        if before.get("@documentation") != after.get("@documentation"):
            return None
        return ops
    ops = []
    for flag, op_type in (("@abstract", "NotAbstract"), ("@unfoldable", "NotUnfoldable")):
        if flag in before and flag not in after:
            ops.append({"@type": op_type, "class": name})
        elif flag in after and flag not in before:
            return None
    if before.get("@documentation") != after.get("@documentation"):
        ops.append(
            {
                "@type": "ReplaceClassDocumentation",
                "class": name,
                "documentation": after.get("@documentation"),
            }
        )
    if before.get("@metadata") != after.get("@metadata"):
        ops.append({"@type": "ReplaceClassMetadata", "class": name, "metadata": after.get("@metadata")})
    props_before = {k: v for k, v in before.items() if not k.startswith("@")}
    props_after = {k: v for k, v in after.items() if not k.startswith("@")}
    if any(p not in props_after for p in props_before):
        return None
    for prop, value in props_after.items():
        new_r = parse_range(value)
        if prop not in props_before:
            if new_r.kind in ("Optional", "Set", "Cardinality") and (new_r.min == 0 or new_r.min <= 1 <= new_r.max):
                ops.append({"@type": "CreateClassProperty", "class": name, "property": prop, "type": value})
                continue
            return None
        if props_before[prop] == value:
            continue
        old_r = parse_range(props_before[prop])
        if not is_weakening(old_r, new_r, cs.subsumed):
            return None
        ops.append({"@type": "UpcastClassProperty", "class": name, "property": prop, "type": value})
    return ops
