"""The approval pause: an approver reads the plan in the Prefect UI and answers a small form.

``decision`` is a required ``Literal`` (a dropdown starting on "Select…"), so nobody approves by leaving a
switch untouched. ``plan_fingerprint`` is prefilled with the plan being shown: an answer carrying another
fingerprint (or none) approves a plan that is not the one on the table and is refused as stale.
"""

from __future__ import annotations

from typing import Literal

from prefect import pause_flow_run, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import FlowPauseTimeout
from prefect.input import RunInput
from pydantic import Field

from core.errors import ApprovalTimedOut, StaleApproval
from core.migration_report import ApprovalSection, utc_now


class ApprovalInput(RunInput):
    decision: Literal["approve", "reject"] = Field(
        description="approve: apply the plan shown above. reject: stop the run; nothing is changed."
    )
    approver: str = Field(min_length=1, description="Who decides (name or id); recorded in the report and history.")
    comment: str = Field(default="", description="Why; required in spirit for a rejection.")
    via: str = Field(default="prefect-ui", description="How the answer was given (prefilled; leave it as it is).")
    plan_fingerprint: str = Field(
        default="", description="Fingerprint of the plan you are answering (prefilled; leave it as it is)."
    )


@task(name="approve", cache_policy=NO_CACHE)
def request_approval(
    description: str, fingerprint: str, timeout_seconds: int, poll_interval_seconds: int
) -> ApprovalInput:
    """Pause the run until someone answers (raises ApprovalTimedOut past the timeout)."""
    form = ApprovalInput.with_initial_data(description=description, plan_fingerprint=fingerprint)
    try:
        answer: ApprovalInput = pause_flow_run(
            wait_for_input=form, timeout=timeout_seconds, poll_interval=max(1, poll_interval_seconds), key="approval"
        )
    except FlowPauseTimeout as exc:
        raise ApprovalTimedOut(timeout_seconds) from exc
    return answer


def approved(answer: ApprovalInput, fingerprint: str, record: ApprovalSection) -> bool:
    """Write the answer into the report's approval section; True when approved, False when rejected.

    Raises StaleApproval for an approval of another plan than ``fingerprint`` (nothing has changed yet).
    """
    record.decision, record.approver, record.via = answer.decision, answer.approver, answer.via
    record.comment = answer.comment or None
    record.decided_at = utc_now()
    if answer.decision == "approve" and answer.plan_fingerprint != fingerprint:
        raise StaleApproval(approved=answer.plan_fingerprint or "(none)", current=fingerprint)
    return answer.decision == "approve"


def rejection_message(record: ApprovalSection) -> str:
    return f"Rejected by {record.approver}" + (f": {record.comment}" if record.comment else "")
