"""The demo database: a small ontology-management ontology and a few hundred documents in it.

Plain data in TerminusDB *submit* form (what ``POST /api/document/...?graph_type=schema`` and the instance POST
accept), deterministic, using only features a real TerminusDB accepts:

* an abstract root ``OntologyResource`` (name, label, description, status, tags, notes) with a three-level chain
  ``OntologyResource`` → ``TypeDefinition`` (abstract) → ``ObjectType`` / ``InterfaceType``;
* multiple inheritance: ``ObjectType`` and ``LinkType`` also inherit the abstract mixin ``Versioned``, so their
  inheritance trees have two roots;
* ``Lexical`` keys on name fields, references between documents (``LinkType.source``/``target`` →
  ``ObjectType``), ``Optional``/``Set``/``List`` properties;
* a subdocument class ``Constraint`` (``Random`` key), a ``TaggedUnion`` subdocument ``Multiplicity`` and two
  enums ``DataType`` and ``Status`` (instance values are the bare strings).

The audit-fields migration on this schema patches the two roots (``OntologyResource``, ``Versioned``); every
other document class is covered by them.
"""

from __future__ import annotations

from typing import Any

DEMO_TEAM = "admin"
DEMO_DATABASE = "oms"

_OBJECT_NAMES = (
    "Account", "Address", "Asset", "Campaign", "Contract", "Customer", "Department", "Device", "Employee",
    "Invoice", "Lead", "Location", "Order", "OrderLine", "Payment", "Product", "Project", "Region", "Shipment",
    "Supplier", "Team", "Ticket", "Vendor", "Warehouse",
)  # fmt: skip

_INTERFACE_NAMES = ("Auditable", "Billable", "Geolocated", "Named", "Owned")

_PROPERTY_SHAPES: tuple[tuple[str, str, bool], ...] = (
    ("id", "string", True),
    ("name", "string", True),
    ("created_on", "date_time", False),
    ("amount", "decimal", False),
    ("quantity", "integer", False),
    ("active", "boolean", True),
    ("owner", "reference", False),
)

_STATUSES = ("draft", "active", "active", "deprecated")


def demo_schema() -> list[dict[str, Any]]:
    """Schema documents (no ``@context``), referenced types before the types that use them."""
    lexical_name = {"@type": "Lexical", "@fields": ["name"]}
    return [
        {"@type": "Enum", "@id": "Status", "@value": ["draft", "active", "deprecated"]},
        {
            "@type": "Enum",
            "@id": "DataType",
            "@value": ["string", "integer", "decimal", "boolean", "date_time", "reference"],
        },
        {
            "@type": "Class",
            "@id": "Constraint",
            "@subdocument": [],
            "@key": {"@type": "Random"},
            "min_length": {"@type": "Optional", "@class": "xsd:integer"},
            "max_length": {"@type": "Optional", "@class": "xsd:integer"},
            "pattern": {"@type": "Optional", "@class": "xsd:string"},
            "min_value": {"@type": "Optional", "@class": "xsd:decimal"},
        },
        {
            "@type": "TaggedUnion",
            "@id": "Multiplicity",
            "@subdocument": [],
            "@key": {"@type": "Random"},
            "exactly": "xsd:integer",
            "at_most": "xsd:integer",
            "at_least": "xsd:integer",
        },
        {
            "@type": "Class",
            "@id": "OntologyResource",
            "@abstract": [],
            "@documentation": {"@comment": "Anything defined in the ontology: a name, a label, a lifecycle."},
            "name": "xsd:string",
            "label": "xsd:string",
            "description": {"@type": "Optional", "@class": "xsd:string"},
            "status": "Status",
            "tags": {"@type": "Set", "@class": "xsd:string"},
        },
        {
            "@type": "Class",
            "@id": "Versioned",
            "@abstract": [],
            "version": "xsd:integer",
        },
        {
            "@type": "Class",
            "@id": "TypeDefinition",
            "@abstract": [],
            "@inherits": "OntologyResource",
            "plural_label": {"@type": "Optional", "@class": "xsd:string"},
        },
        {
            "@type": "Class",
            "@id": "Property",
            "@inherits": "OntologyResource",
            "@key": lexical_name,
            "data_type": "DataType",
            "required": "xsd:boolean",
            "constraints": {"@type": "Set", "@class": "Constraint"},
        },
        {
            "@type": "Class",
            "@id": "InterfaceType",
            "@inherits": "TypeDefinition",
            "@key": lexical_name,
            "properties": {"@type": "Set", "@class": "Property"},
        },
        {
            "@type": "Class",
            "@id": "ObjectType",
            "@inherits": ["TypeDefinition", "Versioned"],
            "@key": lexical_name,
            "properties": {"@type": "Set", "@class": "Property"},
            "primary_key": {"@type": "Optional", "@class": "Property"},
            "implements": {"@type": "Set", "@class": "InterfaceType"},
        },
        {
            "@type": "Class",
            "@id": "LinkType",
            "@inherits": ["OntologyResource", "Versioned"],
            "@key": lexical_name,
            "source": "ObjectType",
            "target": "ObjectType",
            "multiplicity": "Multiplicity",
            "inverse_name": {"@type": "Optional", "@class": "xsd:string"},
        },
        {
            "@type": "Class",
            "@id": "ActionType",
            "@inherits": "OntologyResource",
            "@key": lexical_name,
            "applies_to": {"@type": "Set", "@class": "ObjectType"},
            "parameters": {"@type": "List", "@class": "Property"},
        },
    ]


def _words(name: str) -> str:
    """``OrderLine`` -> ``order line``."""
    return "".join(" " + char.lower() if char.isupper() else char for char in name).strip()


def _resource(doc_type: str, name: str, label: str, index: int) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@type": doc_type,
        "name": name,
        "label": label,
        "status": _STATUSES[index % len(_STATUSES)],
        "tags": sorted({doc_type.lower(), ("core" if index % 3 == 0 else "extension")}),
    }
    if index % 2 == 0:
        doc["description"] = f"The {label.lower()} {doc_type} of the demo ontology."
    return doc


def _property(object_name: str, shape: tuple[str, str, bool], index: int) -> dict[str, Any]:
    field, data_type, required = shape
    label = f"{_words(object_name)} {field.replace('_', ' ')}".capitalize()
    doc = _resource("Property", f"{object_name}.{field}", label, index)
    doc["data_type"] = data_type
    doc["required"] = required
    if data_type == "string":
        constraint: dict[str, Any] = {"@type": "Constraint", "max_length": 64 if field == "id" else 255}
        if field == "id":
            constraint["pattern"] = "^[A-Z0-9-]+$"
        doc["constraints"] = [constraint]
    elif data_type in ("integer", "decimal"):
        doc["constraints"] = [{"@type": "Constraint", "min_value": 0}]
    return doc


def demo_documents() -> list[dict[str, Any]]:
    """Instance documents (a few hundred), referenced documents first; same output on every call."""
    properties: list[dict[str, Any]] = []
    objects: list[dict[str, Any]] = []
    interfaces: list[dict[str, Any]] = []
    for index, name in enumerate(_INTERFACE_NAMES):
        doc = _resource("InterfaceType", name, name, index)
        prop = _property(name, ("display_name", "string", False), index)
        properties.append(prop)
        doc["properties"] = [f"Property/{prop['name']}"]
        interfaces.append(doc)
    for index, name in enumerate(_OBJECT_NAMES):
        shapes = [shape for position, shape in enumerate(_PROPERTY_SHAPES) if (index + position) % 3 != 2]
        own = [_property(name, shape, index + position) for position, shape in enumerate(shapes)]
        properties.extend(own)
        doc = _resource("ObjectType", name, _words(name).capitalize(), index)
        doc["version"] = 1 + index % 4
        doc["properties"] = [f"Property/{prop['name']}" for prop in own]
        if own[0]["name"].endswith(".id"):
            doc["primary_key"] = f"Property/{own[0]['name']}"
        doc["implements"] = [
            f"InterfaceType/{interface}"
            for position, interface in enumerate(_INTERFACE_NAMES)
            if (index + position) % 4 == 0
        ]
        doc["plural_label"] = _words(name).capitalize() + "s"
        objects.append(doc)

    links: list[dict[str, Any]] = []
    count = len(_OBJECT_NAMES)
    for index in range(count * 4):
        source = _OBJECT_NAMES[index % count]
        target = _OBJECT_NAMES[(index * 7 + 3) % count]
        name = f"{source}_to_{target}_{index // count + 1}"
        doc = _resource("LinkType", name, f"{_words(source)} to {_words(target)}".capitalize(), index)
        doc["source"] = f"ObjectType/{source}"
        doc["target"] = f"ObjectType/{target}"
        doc["version"] = 1 + index % 3
        multiplicity = ("exactly", "at_most", "at_least")[index % 3]
        doc["multiplicity"] = {"@type": "Multiplicity", multiplicity: 1 if multiplicity != "at_least" else 0}
        if index % 4 == 0:
            doc["inverse_name"] = f"{target}_of_{source}_{index // count + 1}"
        links.append(doc)

    actions: list[dict[str, Any]] = []
    verbs = ("Create", "Approve", "Archive", "Export")
    for index, name in enumerate(_OBJECT_NAMES[: count // 2]):
        verb = verbs[index % len(verbs)]
        doc = _resource("ActionType", f"{verb}{name}", f"{verb} {_words(name)}", index)
        targets = [name, _OBJECT_NAMES[(index + 5) % count]]
        doc["applies_to"] = [f"ObjectType/{target}" for target in sorted(set(targets))]
        doc["parameters"] = [f"Property/{prop['name']}" for prop in properties if prop["name"].startswith(f"{name}.")][
            :3
        ]
        actions.append(doc)
    return [*properties, *interfaces, *objects, *links, *actions]
