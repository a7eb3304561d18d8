"""The one list of the project's Prefect deployments: names, entrypoints, default parameters, tags.

``prefect.yaml`` (``prefect deploy --all`` onto the ``oms-audit`` process work pool) and
:mod:`deployments.serve` (``prefect.serve`` from one local process) both declare these deployments; a test
checks that ``prefect.yaml`` says exactly what this module says, so the two ways of running cannot drift.

No deployment has a concurrency limit. Prefect's deployment slot is a lease the server revokes when a run
leaves Running, a pause included, while the paused process keeps renewing it: the renewal is refused (410)
and the run crashes about four minutes into the wait. A migration waits for a human for up to a day, so one
run per database is held by our own migration lease instead (taken before the pause, renewed by the run,
taken over at once when its run has ended); a second run of the same database fails naming the holder.

Importing this module imports no flow: :meth:`DeploymentSpec.load_flow` does, when a flow is needed.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from prefect import Flow

WORK_POOL = "oms-audit"
"""The process work pool ``prefect.yaml`` deploys to (``prefect work-pool create oms-audit --type process``)."""

DEFAULT_ENV = "production"
"""The ``env`` parameter a run gets unless whoever triggers it picks another (a block document name)."""

SERVED_SUFFIX = "-served"
"""Appended to a deployment's name when :mod:`deployments.serve` registers it, so a local ``serve`` process
never takes over the work-pool deployment of the same name on a shared Prefect server."""


@dataclass(frozen=True)
class CronSchedule:
    """A cron schedule in a named timezone, as ``prefect.yaml``'s ``schedules:`` and ``serve`` both take it."""

    cron: str
    timezone: str = "UTC"

    def to_prefect(self) -> Any:
        from prefect.schedules import Cron

        return Cron(self.cron, timezone=self.timezone)


@dataclass(frozen=True)
class DeploymentSpec:
    """Everything Prefect needs to register one deployment of one flow of this project."""

    name: str
    flow_name: str
    entrypoint: str
    description: str
    tags: tuple[str, ...]
    parameters: Mapping[str, Any] = field(default_factory=dict)
    concurrency_limit: int | None = None
    """Prefect's deployment concurrency limit; None for every deployment here (see the module docstring)."""
    schedules: tuple[CronSchedule, ...] = ()
    """When Prefect starts runs by itself (none: manual only)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", MappingProxyType(dict(self.parameters)))

    @property
    def full_name(self) -> str:
        """``<flow name>/<deployment name>``, as ``prefect deployment run`` and ``run_deployment`` want it."""
        return f"{self.flow_name}/{self.name}"

    @property
    def served_name(self) -> str:
        """The deployment's name when served by :mod:`deployments.serve`."""
        return f"{self.name}{SERVED_SUFFIX}"

    @property
    def module(self) -> str:
        """The import path of the flow's module: ``flows/x.py:fn`` -> ``flows.x``."""
        path = self.entrypoint.split(":", 1)[0]
        return path.removesuffix(".py").replace("/", ".")

    @property
    def function(self) -> str:
        return self.entrypoint.split(":", 1)[1]

    def default_parameters(self, env: str = DEFAULT_ENV) -> dict[str, Any]:
        """The deployment's default parameters, with ``env`` replaced when the deployment has that parameter."""
        parameters = dict(self.parameters)
        if "env" in parameters:
            parameters["env"] = env
        return parameters

    def load_flow(self) -> Flow[..., Any]:
        """Import the flow object named by the entrypoint (the project must be importable)."""
        candidate = getattr(importlib.import_module(self.module), self.function)
        if not isinstance(candidate, Flow):
            raise TypeError(f"{self.entrypoint} is not a Prefect flow; fix the entrypoint in deployments/catalog.py")
        if candidate.name != self.flow_name:
            raise ValueError(
                f"{self.entrypoint} defines the flow {candidate.name!r}, but the catalog calls it {self.flow_name!r}; "
                "make deployments/catalog.py and prefect.yaml name the flow as the code does"
            )
        return candidate


MIGRATION = DeploymentSpec(
    name="audit-fields-migration",
    flow_name="audit-fields-migration",
    entrypoint="flows/audit_fields_migration.py:audit_fields_migration",
    description=(
        "Add the six audit fields (_created_by, _created_by_username, _created_at, _updated_by, "
        "_updated_by_username, _updated_at) to every document type of the ontology database. "
        "Run it as a dry run first (the default): it writes the plan and the JSON report and changes nothing. "
        "Then run it with dry_run off: the run pauses until an approver answers the resume form "
        "(decision, approver, comment), then patches one commit per type and validates the result. "
        "env names the TerminusDB connection block to use (else the worker's environment variables)."
    ),
    tags=("oms-audit", "audit-fields", "migration"),
    parameters={"env": DEFAULT_ENV, "dry_run": True},
)

ROLLBACK = DeploymentSpec(
    name="audit-fields-rollback",
    flow_name="audit-fields-rollback",
    entrypoint="flows/audit_fields_rollback.py:audit_fields_rollback",
    description=(
        "Undo an audit-fields migration from its JSON report (the report parameter: the path of "
        "migration_report_audit_fields_<timestamp>.json as the worker sees it). Removes exactly the fields the "
        "run added, or with reset on resets the branch to the snapshot's commit when no commit followed. "
        "Pauses for approval like the migration, archives the DLQ files (never deletes them) and writes a "
        "rollback report."
    ),
    tags=("oms-audit", "audit-fields", "rollback"),
    parameters={"env": DEFAULT_ENV},
)

DLQ_SWEEP = DeploymentSpec(
    name="audit-dlq-sweep",
    flow_name="oms-audit-dlq-sweep",
    entrypoint="flows/dlq_sweep.py:dlq_sweep",
    description=(
        "Nightly (02:00 UTC): replay the audit dead-letter queue (audit_dlq_fallback*.jsonl in the DLQ "
        "directory) into the audit sink, move events that keep failing to poison, keep unparseable lines in "
        "corrupt, push the DLQ metrics to the Pushgateway and page the alert webhook when the DLQ grows or "
        "ages. Several workers may sweep at once: each file is claimed by one. env names the block documents "
        "to use (else the worker's environment variables)."
    ),
    tags=("oms-audit", "dlq", "sweep"),
    parameters={"env": DEFAULT_ENV},
    schedules=(CronSchedule("0 2 * * *", timezone="UTC"),),
)

DEPLOYMENTS: tuple[DeploymentSpec, ...] = (MIGRATION, ROLLBACK, DLQ_SWEEP)
"""Every deployment of the project, in the order ``prefect.yaml`` lists them."""
