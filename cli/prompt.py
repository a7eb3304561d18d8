"""The approval asked at the terminal: a decision, then an optional comment, read from standard input.

Not ``typer.confirm``: it turns end of input and Ctrl-C alike into an abort, so a piped ``y`` followed by end
of input became a rejection and Ctrl-C could not be told from "nobody there". Here:

- ``y``/``yes`` approves whatever follows; end of input at the comment means no comment;
- ``n``/``no`` (or an empty line) is a rejection, recorded as the approver's;
- end of input before any decision rejects with "no answer at the terminal";
- Ctrl-C at either question rejects with "interrupted at the terminal", so the run ends Cancelled and its
  lease is released by the run itself;
- the question ends when the pause does (the approval timed out, or someone answered in the Prefect UI):
  the answer is then ``None`` and the run's own outcome says what happened.

Lines are read by a daemon thread, so the main thread can keep watching the run while nobody types.
"""

from __future__ import annotations

import getpass
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any

from .render import console, show_markdown

INTERRUPTED = "interrupted at the terminal (Ctrl-C); nothing was changed"
NO_ANSWER = "no answer at the terminal; re-run with --yes or approve in the Prefect UI"
_EOF = object()


class PauseEnded(Exception):
    """The run stopped waiting for an answer while the question was open."""


class _Lines:
    """Standard input, line by line, from a reader thread (``_EOF`` once input has ended)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None

    def next(self, still_waiting: Callable[[], bool], check_every: float = 1.0) -> str | None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._read, args=(sys.stdin,), name="oms-audit-stdin", daemon=True)
            self._thread.start()
        while True:
            try:
                item = self._queue.get(timeout=check_every)
            except queue.Empty:
                if not still_waiting():
                    raise PauseEnded() from None
                continue
            if item is _EOF:
                self._queue.put(_EOF)  # every later question sees the end too
                return None
            return str(item)

    def _read(self, stream: Any) -> None:
        try:
            for line in iter(stream.readline, ""):
                self._queue.put(line.rstrip("\r\n"))
        except (OSError, ValueError):
            pass
        self._queue.put(_EOF)


class TerminalAnswer:
    """The approver at this terminal (or ``--yes``, which answers for the user and says so in the record)."""

    watches_pause = True

    def __init__(self, *, yes: bool, what: str) -> None:
        self.yes = yes
        self.what = what
        self.user = getpass.getuser()
        self._lines = _Lines()

    def _record(self, decision: str, comment: str, via: str = "cli") -> dict[str, Any]:
        return {"decision": decision, "approver": self.user, "comment": comment, "via": via}

    def __call__(self, description: str, still_waiting: Callable[[], bool] = lambda: True) -> dict[str, Any] | None:
        if self.yes:
            console.print(f"[yellow]--yes given: approving the {self.what} as {self.user}[/yellow]")
            return self._record("approve", "approved with --yes", "cli --yes")
        show_markdown(description)
        try:
            decision = self._decision(still_waiting)
            if decision is None:
                console.print()
                return self._record("reject", NO_ANSWER)
            console.print("Comment (optional): ", end="", markup=False, highlight=False)
            comment = self._lines.next(still_waiting)
            if comment is None:
                console.print()
            return self._record(decision, (comment or "").strip())
        except KeyboardInterrupt:
            console.print()
            return self._record("reject", INTERRUPTED)
        except PauseEnded:
            console.print()
            console.print("[yellow]The run is no longer waiting for an answer.[/yellow]")
            return None

    def _decision(self, still_waiting: Callable[[], bool]) -> str | None:
        while True:
            console.print(f"Apply this {self.what}? [y/N]: ", end="", markup=False, highlight=False)
            line = self._lines.next(still_waiting)
            if line is None:
                return None
            word = line.strip().lower()
            if word in ("y", "yes"):
                return "approve"
            if word in ("", "n", "no"):
                return "reject"
            console.print("[red]Please answer y or n.[/red]")
