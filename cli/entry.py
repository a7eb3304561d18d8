"""The ``oms-audit`` script: hand the command to a warm runner (:mod:`cli.runner_client`), else run it here.

Kept apart from :mod:`cli.main` so that a command a runner serves imports nothing heavy in this process.
"""

from __future__ import annotations

import sys

from cli import runner_client


def main() -> None:
    runner_client.run("cli", sys.argv[1:])
    from cli.main import app

    app(prog_name="oms-audit")
