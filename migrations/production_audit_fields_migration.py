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

from cli import runner_client


def run(argv: list[str] | None = None) -> int:
    from cli.main import main

    return main(["migrate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    runner_client.run("guide", sys.argv[1:])  # a warm runner, if one serves this setup (else: returns)
    sys.exit(run())
