"""Request parameters with TerminusDB's exact error shapes.

TerminusDB reads most parameters from the query string *or* a JSON body (the query string wins) and reports
problems as ``api:BadParameterType`` / ``api:MissingParameter``; clients rely on these shapes, so every
endpoint parses its parameters through :class:`Params` instead of ad-hoc code.
"""

from __future__ import annotations

import json
from typing import Any

from sandbox.errors import ApiError

BOOLEAN = "boolean (true, false)"
GRAPH = "graph (schema, instance)"
NON_NEGATIVE_INTEGER = "non-negative integer"
INTEGER = "integer"
NON_EMPTY_STRING = "non-empty string"
TEXT = "text"
OBJECT = "object"
LIST = "list"

_MISSING = object()


def bad_parameter(name: str, expected: str, value: Any) -> ApiError:
    """``api:BadParameterType`` for ``name``; the message keeps TerminusDB's odd backtick verbatim."""
    shown = value if isinstance(value, str) else json.dumps(value)
    return ApiError(
        {
            "@type": "api:BadParameterType",
            "api:parameter": name,
            "api:expected_type": expected,
            "api:value": value,
        },
        f"Expected parameter '{name}' of type '{expected}` but found: '{shown}'",
    )


_QUERY_ATOMS: dict[str, Any] = {"true": True, "false": False, "null": None}


def as_parsed(value: Any, from_query: bool) -> Any:
    """A value as TerminusDB reports it in ``api:value``: query-string text is a Prolog atom, and the atoms
    ``true``/``false``/``null`` print as the JSON literals (so ``skip=true`` reports ``true``, not ``"true"``)."""
    if from_query and isinstance(value, str) and value in _QUERY_ATOMS:
        return _QUERY_ATOMS[value]
    return value


def missing_parameter(name: str) -> ApiError:
    return ApiError({"@type": "api:MissingParameter", "api:parameter": name}, f"Missing parameter: {name}")


class Params:
    """Typed access to one request's parameters.

    ``query`` holds raw query-string values (text), ``body`` the decoded JSON object (or ``None`` when the
    endpoint reads flags from the query string only). A value found in the query string is interpreted as
    text (booleans must be exactly ``true``/``false``); a value from the JSON body must have the JSON type.
    """

    def __init__(self, query: dict[str, str], body: dict[str, Any] | None = None) -> None:
        self.query = query
        self.body = body if body is not None else {}

    def _raw(self, name: str) -> tuple[Any, bool]:
        """(value, came_from_query_string) or (_MISSING, False)."""
        if name in self.query:
            return self.query[name], True
        if name in self.body:
            return self.body[name], False
        return _MISSING, False

    def present(self, name: str) -> bool:
        return self._raw(name)[0] is not _MISSING

    def boolean(self, name: str, default: bool) -> bool:
        value, from_query = self._raw(name)
        if value is _MISSING:
            return default
        if from_query:
            if value == "true":
                return True
            if value == "false":
                return False
            raise bad_parameter(name, BOOLEAN, as_parsed(value, True))
        if isinstance(value, bool):
            return value
        raise bad_parameter(name, BOOLEAN, value)

    def graph_type(self, name: str = "graph_type") -> str:
        value, from_query = self._raw(name)
        if value is _MISSING:
            return "instance"
        if value in ("instance", "schema"):
            return str(value)
        raise bad_parameter(name, GRAPH, as_parsed(value, from_query))

    def _integer(self, name: str, default: int | None, non_negative: bool) -> int | None:
        expected = NON_NEGATIVE_INTEGER if non_negative else INTEGER
        value, from_query = self._raw(name)
        if value is _MISSING:
            return default
        number: int | None = None
        if from_query:
            text = str(value)
            digits = text[1:] if text.startswith("-") and not non_negative else text
            if digits.isdigit():
                number = int(text)
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        if number is None or (non_negative and number < 0):
            raise bad_parameter(name, expected, as_parsed(value, from_query))
        return number

    def non_negative_integer(self, name: str, default: int | None = None) -> int | None:
        return self._integer(name, default, non_negative=True)

    def integer(self, name: str, default: int) -> int:
        result = self._integer(name, default, non_negative=False)
        return default if result is None else result

    def text(self, name: str, *, required: bool = False, non_empty: bool = False) -> str | None:
        value, from_query = self._raw(name)
        if value is _MISSING:
            if required:
                raise missing_parameter(name)
            return None
        expected = NON_EMPTY_STRING if non_empty else TEXT
        if not isinstance(value, str) or (non_empty and value == ""):
            raise bad_parameter(name, expected, as_parsed(value, from_query))
        return value

    def json_value(self, name: str, expected: str) -> Any:
        """A structured parameter (list/object): JSON text in the query string, a JSON value in the body."""
        value, from_query = self._raw(name)
        if value is _MISSING:
            return None
        if from_query:
            try:
                value = json.loads(value)
            except ValueError:
                raise bad_parameter(name, expected, as_parsed(value, True)) from None
        wanted: type = list if expected == LIST else dict
        if not isinstance(value, wanted):
            raise bad_parameter(name, expected, value)
        return value
