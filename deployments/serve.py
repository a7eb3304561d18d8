"""Serve every deployment of the catalog from this one process: the way to run them without a work pool.

    python -m deployments.serve [--env NAME] [--limit N]

Needs a Prefect API (``PREFECT_API_URL``). The deployments appear in the UI as ``<flow>/<name>-served``; each
run triggered there (or with ``prefect deployment run``) executes in a subprocess of this one, with this
process's environment (``TERMINUS_DB_URL``, ``OMS_AUDIT_REPORTS_DIR``…). Stop it with Ctrl-C or SIGTERM:
Prefect pauses the served deployments on the way out.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from prefect import serve
from prefect.deployments.runner import EntrypointType, RunnerDeployment

from core.errors import ConfigError
from core.settings import check_env_name
from deployments.catalog import DEFAULT_ENV, DEPLOYMENTS, DeploymentSpec


def runner_deployment(spec: DeploymentSpec, env: str) -> RunnerDeployment:
    """The served form of one catalog entry, loaded by module path so it works from any directory."""
    return RunnerDeployment.from_flow(
        spec.load_flow(),
        name=spec.served_name,
        description=spec.description,
        tags=list(spec.tags),
        parameters=spec.default_parameters(env),
        concurrency_limit=spec.concurrency_limit,
        schedules=[schedule.to_prefect() for schedule in spec.schedules],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m deployments.serve", description="Serve the oms-audit deployments from this process."
    )
    parser.add_argument(
        "--env",
        default=DEFAULT_ENV,
        help="default value of the runs' env parameter: a TerminusDB connection block name (default: %(default)s)",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="at most this many flow runs at once across all deployments"
    )
    args = parser.parse_args(argv)
    if not args.env.strip():
        parser.error("--env must not be empty; give an environment name such as production or staging")
    try:
        check_env_name(args.env)
    except ConfigError as exc:
        parser.error(str(exc))
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1 (or left out for no limit)")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    serve(*(runner_deployment(spec, args.env) for spec in DEPLOYMENTS), limit=args.limit)


if __name__ == "__main__":
    main()
