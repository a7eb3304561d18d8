"""Instance id generation for the four key strategies (Lexical, Hash, ValueHash, Random).

Lexical ids are ``Base + enc(v1) + "+" + enc(v2)``, each value URI-path-segment encoded with ``+`` escaped as
``%2B``; a missing optional value is the literal ``+none+``; the elements of a list/set field are joined with
``++``. Hash ids are the sha256 of that suffix; Random ids 16 url-safe base64 characters.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any
from urllib.parse import quote

#: characters a URI path segment may carry unencoded (RFC 3986 pchar minus "+", which TerminusDB escapes)
_SEGMENT_SAFE = "!$&'()*,;=:@-._~"
NONE_TOKEN = "+none+"


def encode_fragment(value: str) -> str:
    """URI-path-segment encode one key value (UTF-8; space -> %20, / -> %2F, + -> %2B)."""
    return quote(value, safe=_SEGMENT_SAFE)


def lexical_suffix(values: list[Any]) -> str:
    """Join the canonical string forms of the key values. ``None`` = missing, a list = multi-valued."""
    parts: list[str] = []
    for v in values:
        if v is None:
            parts.append(NONE_TOKEN)
        elif isinstance(v, list):
            parts.append("++".join(encode_fragment(x) for x in v))
        else:
            parts.append(encode_fragment(v))
    return "+".join(parts)


def lexical_id(base: str, values: list[Any]) -> str:
    return base + lexical_suffix(values)


def hash_id(base: str, values: list[Any]) -> str:
    return base + hashlib.sha256(lexical_suffix(values).encode("utf-8")).hexdigest()


def value_hash_id(base: str, document: dict[str, Any]) -> str:
    """A stable content hash of the document without ids (TerminusDB's exact input is Prolog-specific)."""
    content = _strip_ids(document)
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return base + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _strip_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_ids(v) for k, v in value.items() if k != "@id"}
    if isinstance(value, list):
        return [_strip_ids(v) for v in value]
    return value


def random_suffix() -> str:
    """16 characters from the RFC 4648 url-safe alphabet."""
    return secrets.token_urlsafe(12)


def random_id(base: str) -> str:
    return base + random_suffix()


def subdocument_base(parent_id: str, prop: str, sub_base: str) -> str:
    """Base of a subdocument id: ``<parent id>/<property>/<SubClassBase>``."""
    return f"{parent_id}/{prop}/{sub_base}"
