"""The demo: everything on embedded defaults, end to end, in one command.

A sandbox TerminusDB seeded with the demo ontology on a free loopback port, Prefect's ephemeral API, then the
guide's steps: a dry run, an execution approved at the terminal, validation, the report and the run history.
"""

from __future__ import annotations

import os
from pathlib import Path

from .render import console

DEMO_ENV = "demo"


def run_demo(*, reports_dir: Path, ask: bool) -> int:
    from .prefect_api import IDLE_VARIABLE, start_prefect_api

    # Self-contained: the temporary Prefect API (if one is needed) ends with the demo, like its sandbox. It
    # starts first, before anything imports Prefect, and boots while the sandbox does.
    os.environ.setdefault(IDLE_VARIABLE, "0")
    start_prefect_api()

    from blocks.environment import resolve_terminus
    from sandbox.demo_seed import DEMO_DATABASE, DEMO_TEAM
    from sandbox.server import SandboxServer

    from .main import main

    with SandboxServer(seed="demo") as server:
        os.environ.update(
            {"TERMINUS_DB_URL": server.url, "TERMINUS_DB_TEAM": DEMO_TEAM, "TERMINUS_DB_NAME": DEMO_DATABASE}
        )
        os.environ.pop("TERMINUS_DB_TOKEN", None)
        resolve_terminus.cache_clear()
        console.print(f"Sandbox TerminusDB with the demo ontology at {server.url} (database {DEMO_DATABASE})")
        common = ["--env", DEMO_ENV, "--reports-dir", str(reports_dir)]

        console.rule("Step 1: analyse the schema (dry run)")
        code = main(["migrate", "--dry-run", *common])
        if code != 0:
            return code
        console.rule("Step 2: execute, approved at the terminal")
        code = main(["migrate", "--execute", *common, *([] if ask else ["--yes"])])
        console.rule("Run history")
        main(["history", "--env", DEMO_ENV])
        console.print(f"Reports and the schema snapshot are in {reports_dir.resolve()}")
        return code
