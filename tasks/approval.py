"""The approval pause: an approver reads the plan in the Prefect UI and answers a small form.

``decision`` is a required ``Literal`` (a dropdown starting on "Select…"), so nobody approves by leaving a
switch untouched. ``plan_fingerprint`` is prefilled with the plan being shown: an answer carrying another
fingerprint approves a plan that is no longer the one on the table and is refused as stale.
"""

from __future__ import annotations

from typing import Literal

from prefect import pause_flow_run
from prefect.input import RunInput
from pydantic import Field


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


def request_approval(
    *, description: str, fingerprint: str, timeout_seconds: int, poll_interval_seconds: float
) -> ApprovalInput:
    """Pause the flow run until someone resumes it with an answer (raises FlowPauseTimeout past the timeout)."""
    form = ApprovalInput.with_initial_data(description=description, plan_fingerprint=fingerprint)
    answer: ApprovalInput = pause_flow_run(
        wait_for_input=form,
        timeout=timeout_seconds,
        poll_interval=int(max(1, poll_interval_seconds)),
        key="approval",
    )
    return answer
