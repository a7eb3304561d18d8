"""The six audit fields every document type carries, and the exact range each is declared with.

This is the contract between the migration (which declares the fields), the validation (which checks them)
and the write path (which stamps them). All are declared ``Optional`` so that documents written before the
migration stay valid and the migration needs no default values (0 instance operations).
"""

from __future__ import annotations

from typing import Any

AUDIT_FIELDS: dict[str, str] = {
    "_created_by": "xsd:string",
    "_created_by_username": "xsd:string",
    "_created_at": "xsd:dateTime",
    "_updated_by": "xsd:string",
    "_updated_by_username": "xsd:string",
    "_updated_at": "xsd:dateTime",
}
"""Field name -> xsd base type, in the order they are planned, reported and created."""

AUDIT_FIELD_WRAPPER = "Optional"
"""The TerminusDB range wrapper every audit field is declared with."""

XSD_IRI = "http://www.w3.org/2001/XMLSchema#"


def audit_field_range(field: str) -> dict[str, str]:
    """The schema range of one audit field, exactly as TerminusDB stores and returns it.

    >>> audit_field_range("_created_at")
    {'@type': 'Optional', '@class': 'xsd:dateTime'}
    """
    try:
        base_type = AUDIT_FIELDS[field]
    except KeyError:
        raise ValueError(f"{field!r} is not an audit field; the audit fields are {list(AUDIT_FIELDS)}") from None
    return {"@type": AUDIT_FIELD_WRAPPER, "@class": base_type}


def normalise_range(value: Any) -> Any:
    """A property range in compressed form, so that ranges written with full xsd IRIs compare equal."""
    if isinstance(value, str):
        return "xsd:" + value[len(XSD_IRI) :] if value.startswith(XSD_IRI) else value
    if isinstance(value, dict):
        return {key: normalise_range(item) for key, item in value.items()}
    return value


def is_audit_range(field: str, value: Any) -> bool:
    """Whether ``value`` is exactly the range the audit field ``field`` must have."""
    return normalise_range(value) == audit_field_range(field)


def describe_range(value: Any) -> str:
    """A short human reading of a property range: ``xsd:string``, ``Optional<xsd:dateTime>``, ``Set<Tag>``."""
    value = normalise_range(value)
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "@type" in value:
        inner = describe_range(value.get("@class", "?"))
        extras = [f"{key.lstrip('@')}={value[key]}" for key in sorted(value) if key not in ("@type", "@class")]
        return f"{value['@type']}<{inner}{', ' + ', '.join(extras) if extras else ''}>"
    return repr(value)
