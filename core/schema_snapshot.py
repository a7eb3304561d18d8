"""A copy of a branch's whole schema graph and head commit, taken before anything changes.

Rollback starts from it: it says which commit to reset to and what the schema must look like afterwards.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from core.errors import ConfigError
from core.migration_report import write_json_atomically
from core.timestamps import file_stamp, utc_now


class SchemaSnapshot(BaseModel):
    database: str
    branch: str
    head_commit: str
    taken_at: datetime
    schema_documents: list[dict[str, Any]]

    def save(self, directory: Path, run_id: str) -> Path:
        path = directory / f"schema_snapshot_{self.database}_{file_stamp(self.taken_at)}_{run_id[:8]}.json"
        write_json_atomically(path, self.model_dump_json(indent=2))
        return path

    @classmethod
    def load(cls, path: Path) -> SchemaSnapshot:
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"Schema snapshot {path} does not exist; it is named in the run's report.") from exc
        except ValidationError as exc:
            raise ConfigError(
                f"{path} is not a schema snapshot written by oms-audit: {exc.error_count()} errors."
            ) from exc


def take(database: str, branch: str, head_commit: str, schema_documents: list[dict[str, Any]]) -> SchemaSnapshot:
    return SchemaSnapshot(
        database=database,
        branch=branch,
        head_commit=head_commit,
        taken_at=utc_now(),
        schema_documents=schema_documents,
    )
