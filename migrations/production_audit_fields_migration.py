"""The deployment guide's migration command, verbatim:

    python migrations/production_audit_fields_migration.py --env production --dry-run
    python migrations/production_audit_fields_migration.py --env production --execute [--yes]

It is ``oms-audit migrate`` under the guide's name: the same flow, report, approval and exit codes.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable from a plain checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cli.main import main


def run(argv: list[str] | None = None) -> int:
    return main(["migrate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(run())
