"""Base (literal) types: their names, and how a submitted JSON value is checked and canonicalised.

TerminusDB stores literals typed; GET returns numbers as JSON numbers, booleans as booleans and everything
else as strings. A value that cannot be read as its type gives the ``could_not_interpret_as_type`` witness.
"""

from __future__ import annotations

import math
import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

XSD = "http://www.w3.org/2001/XMLSchema#"
XDD = "http://terminusdb.com/schema/xdd#"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
SYS = "http://terminusdb.com/schema/sys#"
OWL = "http://www.w3.org/2002/07/owl#"

#: prefixes every database knows, whatever its context says
GLOBAL_PREFIXES: dict[str, str] = {"xsd": XSD, "xdd": XDD, "rdf": RDF, "rdfs": RDFS, "sys": SYS, "owl": OWL}

_XSD_NAMES = [
    "string",
    "boolean",
    "decimal",
    "integer",
    "double",
    "float",
    "time",
    "date",
    "dateTime",
    "dateTimeStamp",
    "gYear",
    "gMonth",
    "gDay",
    "gYearMonth",
    "gMonthDay",
    "duration",
    "yearMonthDuration",
    "dayTimeDuration",
    "byte",
    "short",
    "int",
    "long",
    "unsignedByte",
    "unsignedShort",
    "unsignedInt",
    "unsignedLong",
    "positiveInteger",
    "nonNegativeInteger",
    "negativeInteger",
    "nonPositiveInteger",
    "base64Binary",
    "hexBinary",
    "anyURI",
    "language",
    "normalizedString",
    "token",
    "NMTOKEN",
    "Name",
    "NCName",
    "anySimpleType",
]
_XDD_NAMES = [
    "coordinate",
    "coordinatePolygon",
    "coordinatePolyline",
    "dateRange",
    "gYearRange",
    "integerRange",
    "decimalRange",
    "url",
    "email",
    "json",
    "html",
]

#: compressed names of all base types (what GET shows in a schema document)
BASE_TYPES: frozenset[str] = frozenset(
    [f"xsd:{n}" for n in _XSD_NAMES]
    + [f"xdd:{n}" for n in _XDD_NAMES]
    + ["rdf:langString", "rdfs:Literal", "sys:JSON", "sys:Unit"]
)

_INT_BOUNDS: dict[str, tuple[int | None, int | None]] = {
    "xsd:integer": (None, None),
    "xsd:byte": (-(2**7), 2**7 - 1),
    "xsd:short": (-(2**15), 2**15 - 1),
    "xsd:int": (-(2**31), 2**31 - 1),
    "xsd:long": (-(2**63), 2**63 - 1),
    "xsd:unsignedByte": (0, 2**8 - 1),
    "xsd:unsignedShort": (0, 2**16 - 1),
    "xsd:unsignedInt": (0, 2**32 - 1),
    "xsd:unsignedLong": (0, 2**64 - 1),
    "xsd:positiveInteger": (1, None),
    "xsd:nonNegativeInteger": (0, None),
    "xsd:negativeInteger": (None, -1),
    "xsd:nonPositiveInteger": (None, 0),
}
_NUMERIC = frozenset(["xsd:decimal", "xsd:double", "xsd:float", *_INT_BOUNDS])

_TZ = r"(Z|[+-]\d{2}:\d{2})?"
_DATE_RE = re.compile(r"^(-?\d{4,})-(\d{2})-(\d{2})" + _TZ + "$")
_DATETIME_RE = re.compile(r"^(-?\d{4,})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?" + _TZ + "$")
_TIME_RE = re.compile(r"^(\d{2}):(\d{2}):(\d{2})(\.\d+)?" + _TZ + "$")
_GYEAR_RE = re.compile(r"^-?\d{4,}" + _TZ + "$")
_DURATION_RE = re.compile(r"^-?P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")
_INT_STR_RE = re.compile(r"^[+-]?\d+$")
_DEC_STR_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


class NotInterpretable(Exception):
    """The value cannot be read as the requested type."""


def expand_base_type(name: str) -> str:
    """``xsd:string`` -> ``http://www.w3.org/2001/XMLSchema#string`` (full IRIs pass through)."""
    prefix, sep, rest = name.partition(":")
    if sep and prefix in GLOBAL_PREFIXES and not rest.startswith("//"):
        return GLOBAL_PREFIXES[prefix] + rest
    return name


def compress_base_type(name: str) -> str | None:
    """Return the compressed base-type name for a short or full spelling, or None if not a base type."""
    if name in BASE_TYPES:
        return name
    for prefix, iri in GLOBAL_PREFIXES.items():
        if name.startswith(iri):
            short = f"{prefix}:{name[len(iri) :]}"
            return short if short in BASE_TYPES else None
    return None


def _number_out(d: Decimal) -> int | float:
    if d == d.to_integral_value():
        return int(d)
    return float(d)


def _check_date_parts(y: str, mo: str, d: str) -> None:
    year = int(y)
    if not (1 <= int(mo) <= 12):
        raise NotInterpretable
    try:
        date(year if 1 <= year <= 9999 else 2000, int(mo), int(d))
    except ValueError as exc:
        raise NotInterpretable from exc


def _check_time_parts(h: str, mi: str, s: str) -> None:
    if int(h) > 24 or int(mi) > 59 or int(s) > 60:
        raise NotInterpretable


def coerce(base_type: str, value: Any) -> Any:
    """Check ``value`` against the compressed ``base_type``; return the canonical JSON value stored.

    Booleans for non-boolean types must be rejected by the caller first (a different error). Raises
    NotInterpretable.
    """
    if base_type == "sys:JSON":
        return value
    if base_type == "sys:Unit":
        if value == [] or value is None:
            return []
        raise NotInterpretable
    if base_type == "xsd:boolean":
        if isinstance(value, bool):
            return value
        if value in ("true", "1"):
            return True
        if value in ("false", "0"):
            return False
        raise NotInterpretable
    if isinstance(value, (dict, list)) or value is None:
        raise NotInterpretable
    if base_type in _INT_BOUNDS:
        n = _to_int(value)
        lo, hi = _INT_BOUNDS[base_type]
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            raise NotInterpretable
        return n
    if base_type == "xsd:decimal":
        return _number_out(_to_decimal(value))
    if base_type in ("xsd:double", "xsd:float"):
        if isinstance(value, (int, float)):
            return float(value) if isinstance(value, float) else value
        if isinstance(value, str):
            try:
                f = float(value)
            except ValueError as exc:
                raise NotInterpretable from exc
            return int(f) if f.is_integer() and math.isfinite(f) and "." not in value else f
        raise NotInterpretable
    if not isinstance(value, str):
        raise NotInterpretable
    _check_string_form(base_type, value)
    return value


def _to_int(value: Any) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise NotInterpretable
    if isinstance(value, str) and _INT_STR_RE.match(value.strip()):
        return int(value.strip())
    raise NotInterpretable


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise NotInterpretable
        return Decimal(str(value))
    if isinstance(value, str) and _DEC_STR_RE.match(value.strip()):
        try:
            return Decimal(value.strip())
        except InvalidOperation as exc:
            raise NotInterpretable from exc
    raise NotInterpretable


def _check_string_form(base_type: str, value: str) -> None:
    if base_type == "xsd:date":
        m = _DATE_RE.match(value)
        if not m:
            raise NotInterpretable
        _check_date_parts(*m.group(1, 2, 3))
    elif base_type in ("xsd:dateTime", "xsd:dateTimeStamp"):
        m = _DATETIME_RE.match(value)
        if not m or (base_type == "xsd:dateTimeStamp" and not m.group(8)):
            raise NotInterpretable
        _check_date_parts(*m.group(1, 2, 3))
        _check_time_parts(*m.group(4, 5, 6))
    elif base_type == "xsd:time":
        m = _TIME_RE.match(value)
        if not m:
            raise NotInterpretable
        _check_time_parts(*m.group(1, 2, 3))
    elif base_type == "xsd:gYear":
        if not _GYEAR_RE.match(value):
            raise NotInterpretable
    elif base_type == "xsd:duration":
        if not _DURATION_RE.match(value):
            raise NotInterpretable
    elif base_type == "xsd:anyURI" and any(c in value for c in ' <>"{}|\\^`'):
        raise NotInterpretable


def lexical_form(value: Any) -> str:
    """The canonical xsd string of a stored value (used for Lexical/Hash ids)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)
