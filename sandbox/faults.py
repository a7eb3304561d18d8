"""Fault injection: make chosen requests fail, stall, lose their connection or hit an internal error.

Tests of retry/timeout/partial-failure behaviour need a server that misbehaves on demand and only for the
requests they target ("fail the 3rd PATCH"), so rules match on method + path prefix and count matches.
Action ``raise`` makes the routed handler raise inside the real dispatch (``error``: ``internal`` = a
Python exception, ``unrenderable`` = an API error whose body cannot be rendered as JSON), so the
"never drop a connection" guarantee is tested through the same code path a sandbox bug would take.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

ACTIONS = ("status", "delay", "drop", "raise")
RAISE_KINDS = ("internal", "unrenderable")


class FaultSpecError(ValueError):
    """A fault rule submitted to ``/_sandbox/faults`` is malformed."""


@dataclass
class FaultRule:
    """One rule. ``times=None`` means every matching request (after the first ``after`` ones)."""

    action: str
    path_prefix: str = "/"
    method: str | None = None
    times: int | None = 1
    after: int = 0
    status: int = 503
    seconds: float = 0.0
    body: Any = None
    error: str = "internal"
    seen: int = 0
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and path.startswith(self.path_prefix)

    def public(self) -> dict[str, Any]:
        return asdict(self)


def _int(spec: dict[str, Any], key: str, default: int | None, minimum: int) -> int | None:
    value = spec.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FaultSpecError(f"'{key}' must be an integer >= {minimum} (got {value!r})")
    return value


def parse_rule(spec: Any) -> FaultRule:
    """Validate a JSON rule such as ``{"action": "status", "status": 503, "path_prefix": "/api/db", "times": 2}``."""
    if not isinstance(spec, dict):
        raise FaultSpecError("a fault rule must be a JSON object")
    known = {"action", "path_prefix", "method", "times", "after", "status", "seconds", "body", "error"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise FaultSpecError(f"unknown keys {unknown}; allowed: {sorted(known)}")
    action = spec.get("action")
    if action not in ACTIONS:
        raise FaultSpecError(f"'action' must be one of {list(ACTIONS)} (got {action!r})")
    prefix = spec.get("path_prefix", "/")
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise FaultSpecError("'path_prefix' must be a string starting with '/'")
    method = spec.get("method")
    if method is not None and not isinstance(method, str):
        raise FaultSpecError("'method' must be a string such as 'POST'")
    seconds = spec.get("seconds", 0.0)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= 600:
        raise FaultSpecError("'seconds' must be a number between 0 and 600")
    error = spec.get("error", "internal")
    if error not in RAISE_KINDS:
        raise FaultSpecError(f"'error' must be one of {list(RAISE_KINDS)} (got {error!r})")
    status = _int(spec, "status", 503, 100)
    if status is None or status > 599:
        raise FaultSpecError("'status' must be an HTTP status code (100-599)")
    return FaultRule(
        action=action,
        path_prefix=prefix,
        method=method.upper() if method else None,
        times=_int(spec, "times", 1, 1),
        after=_int(spec, "after", 0, 0) or 0,
        status=status,
        seconds=float(seconds),
        body=spec.get("body"),
        error=error,
    )


class FaultRegistry:
    """Thread-safe list of rules; the first rule that matches and still has budget fires."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.public() for rule in self._rules]

    def take(self, method: str, path: str) -> FaultRule | None:
        """Count this request against every matching rule; return the rule that fires, if any."""
        with self._lock:
            for rule in self._rules:
                if not rule.matches(method, path):
                    continue
                if rule.times is not None and rule.fired >= rule.times:
                    continue
                rule.seen += 1
                if rule.seen <= rule.after:
                    continue
                rule.fired += 1
                return rule
        return None
