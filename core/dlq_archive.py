"""Set the dead-letter queue aside during a rollback: archived, never deleted (DESIGN §5, the guide's step 3).

Each ``audit_dlq_<type>.jsonl`` (and any ``.claimed-*`` file a sweep left) is renamed into
``<dlq dir>/archive/<label>/`` while holding the same exclusive ``flock`` writers take, so no line being
appended is lost. Writers must therefore check, once they hold the lock, that the path still names the file
they opened (same inode) and otherwise reopen it, which starts a fresh file.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

DLQ_GLOB = "audit_dlq_*.jsonl*"


def archive_dlq_files(dlq_dir: Path, label: str) -> list[Path]:
    """Move every DLQ file into the archive folder; returns the archived paths (empty when there were none)."""
    if not dlq_dir.is_dir():
        return []
    archived: list[Path] = []
    destination = dlq_dir / "archive" / label
    for path in sorted(dlq_dir.glob(DLQ_GLOB)):
        if not path.is_file():
            continue
        destination.mkdir(parents=True, exist_ok=True)
        target = _free_name(destination / path.name)
        with path.open("ab") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                os.replace(path, target)
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        archived.append(target)
    return archived


def _free_name(path: Path) -> Path:
    """``path``, or ``path.1``, ``path.2``… when an earlier archive under the same label holds that name."""
    candidate, number = path, 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.{number}")
    return candidate
