"""A polite stop: the terminal asks (Ctrl-C), the run stops at its next step boundary, nothing half-done.

The CLI runs the flow in a worker thread of its own process; a signal reaches only the main thread, which
calls :func:`request_stop`. The flow checks between steps (``RunBooks.check_in``), so the type being
patched finishes, its commit is recorded, the books are closed and the lease released before the process
exits. A second Ctrl-C does not wait.
"""

from __future__ import annotations

import threading

_requested = threading.Event()
_how = ["a stop was requested"]


def request_stop(how: str) -> None:
    _how[0] = how
    _requested.set()


def stop_requested() -> str | None:
    """How the stop was asked for, or None when nobody asked."""
    return _how[0] if _requested.is_set() else None


def clear_stop_request() -> None:
    _requested.clear()
