"""Live progress of a migration or rollback in the terminal, read from the report the run keeps up to date."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from .outcome import find_report
from .render import console


class RunView:
    """A progress bar over the types being patched, plus one line per finished type."""

    def __init__(self, reports_dir: Path, prefix: str) -> None:
        self.reports_dir = reports_dir
        self.prefix = prefix
        self.path: Path | None = None
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.task: TaskID | None = None
        self.announced: set[str] = set()

    def report(self) -> dict[str, Any] | None:
        if self.path is None:
            return None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None  # mid-rewrite or not yet written: next tick
        return data if isinstance(data, dict) else None

    def tick(self, run_id: UUID | None) -> None:
        if self.path is None:
            self.path = find_report(self.reports_dir, run_id, self.prefix)
        data = self.report()
        if not data or data.get("status") != "running" or not data.get("plan"):
            return
        planned = [t for t in data["plan"].get("types", []) if t.get("state") != "not_applicable"]
        if not planned:
            return
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("Patching", total=len(planned))
        done = [t["name"] for t in planned if t.get("state") == "applied"]
        for name in done:
            if name not in self.announced:
                self.announced.add(name)
                self.progress.console.print(f"  [green]patched[/green] {name}")
        current = next((t["name"] for t in planned if t.get("state") == "applying"), None)
        self.progress.update(
            self.task, completed=len(done), description=f"Patching {current}" if current else "Patching"
        )

    def stop(self) -> None:
        if self.task is not None:
            self.progress.stop()
