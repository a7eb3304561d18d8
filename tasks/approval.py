"""The approval pause: an approver reads a short summary of the plan in the Prefect UI and answers a small form.

The form cannot be misread: ``decision`` is required (a dropdown starting on "Select…", so nobody approves by
leaving a switch untouched); the approver confirms the plan by typing its short fingerprint, shown in bold
in the summary (an answer naming another plan is refused); the channel (UI, CLI) is not a form field but a
side input the CLI tools set. The full type table is in the plan artifact the summary links to.

An answer may carry the approver's JWT (``approval_token``). It is verified with the write path's verifiers
(:mod:`core.identity`), must hold role ``schema:approve``, and then the verified ``sub``/username is the
approver. Prefect stores every run input as sent, so the stored answer is rewritten at once with the token
replaced by its verdict: the token itself is kept nowhere. An answer is refused, and the run keeps waiting
(pausing again with the reason on top of the summary), when its token does not verify, when
``OMS_AUDIT_REQUIRE_VERIFIED_APPROVAL`` is on and it is unverified, when ``OMS_AUDIT_FOUR_EYES`` is on and
the approver is who triggered the run, or when it approves without naming this plan.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from prefect import get_run_logger, pause_flow_run, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import FlowPauseTimeout
from prefect.input import RunInput
from prefect.input.actions import create_flow_run_input, delete_flow_run_input, read_flow_run_input
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from core.errors import ApprovalTimedOut, IdentityError, StaleApproval
from core.migration_report import ApprovalSection, utc_now
from core.settings import ApprovalSettings, IamSettings, load_settings

if TYPE_CHECKING:  # the verifiers (PyJWT, crypto) are imported only when an answer carries a token
    from core.identity import Principal

APPROVER_ROLE = "schema:approve"
"""The role an approver's token must carry for a verified approval."""

PAUSE_KEY = "approval"
"""Run-input keys: ``approval-plan`` (the short fingerprint, for the CLI tools), then per answer asked
``paused-approval[-N]-schema|description|response`` (Prefect's) and ``paused-approval[-N]-via`` (set by the
CLI tools). Every answer is asked under a new key: Prefect hands a re-used key's old answer back at once."""

PLAN_INPUT_KEY = f"{PAUSE_KEY}-plan"
DEFAULT_VIA = "prefect-ui"
SHORT = 8


def short_fingerprint(fingerprint: str) -> str:
    """The 8 characters an approver types: the fingerprint's start (a hex digest), else a digest of it."""
    text = fingerprint.strip().lower()
    if len(text) >= SHORT and all(c in "0123456789abcdef" for c in text):
        return text[:SHORT]
    return hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()[:SHORT]


class ApprovalInput(RunInput):
    """The resume form (its field order is the form's order)."""

    decision: Literal["approve", "reject"] = Field(
        title="Decision",
        description="Required. approve: apply the plan summarised above. reject: stop the run; nothing is changed.",
    )
    plan: str = Field(
        title="Plan fingerprint",
        description="Required. Type the 8 characters shown in bold after 'Plan' above: they prove which plan "
        "you are deciding on.",
    )
    approver: str = Field(min_length=1, title="Your name", description="Required. Recorded in the report and history.")
    comment: str = Field(default="", title="Comment", description="Why (shown in the run's final state).")
    approval_token: str = Field(
        default="",
        title="Approval token",
        description="Your IAM token (JWT with role schema:approve), to record a verified approval. "
        "It is checked and then removed from the run's stored input.",
        json_schema_extra={"format": "password", "writeOnly": True},
    )


class ApprovalAnswer(BaseModel):
    """The accepted answer as the flow keeps it: everything but the token."""

    decision: Literal["approve", "reject"]
    approver: str
    comment: str = ""
    via: str = DEFAULT_VIA
    plan: str = ""
    verified: bool = False
    approver_id: str | None = None
    refused: list[str] = []


def approval_description(
    question: str, facts: list[str], fingerprint: str, artifact_url: str | None, *, refusal: str | None = None
) -> str:
    """The resume dialog's markdown: a few lines, no table (the table is in the artifact)."""
    lines: list[str] = []
    if refusal:
        lines += [f"> **The last answer was refused:** {refusal}. Answer again.", ""]
    lines += [f"### {question}", ""]
    lines += [f"- {fact}" for fact in facts]
    lines += ["", f"**Plan `{short_fingerprint(fingerprint)}`** — type these 8 characters in *Plan fingerprint*."]
    if artifact_url:
        lines += ["", f"Every type, field and document count: [the plan artifact]({artifact_url})."]
    lines += ["", "Nothing changes unless you choose **approve**."]
    return "\n".join(lines)


def _verify_token(env: str, token: str) -> Principal:
    """The token's principal (IdentityError when it is not valid or IAM cannot say), sync for the flow."""
    from blocks.environment import resolve_settings
    from core.identity import open_verifier

    settings = resolve_settings(env, IamSettings)
    result: dict[str, Any] = {}

    async def verify() -> None:
        verifier = open_verifier(settings)
        try:
            result["principal"] = await verifier.verify(token)
        except BaseException as exc:
            result["error"] = exc
        finally:
            await verifier.aclose()

    # in a fresh thread: the flow's thread may already run an event loop
    worker = threading.Thread(target=lambda: asyncio.run(verify()), name="verify-approver")
    worker.start()
    worker.join()
    if "error" in result:
        raise result["error"]
    principal: Principal = result["principal"]
    return principal


def _verdict_text(principal: Principal | None, refusal: str | None) -> str:
    if principal is not None and refusal is None:
        return f"(removed: verified as {principal.username or principal.id})"
    return "(removed: not accepted)"


def _scrub_stored_token(prefix: str, flow_run_id: UUID | None, stored: dict[str, Any], verdict: str) -> None:
    """Replace the stored answer by the same answer with the token replaced by its verdict."""
    response_key = f"{prefix}-response"
    delete_flow_run_input(response_key, flow_run_id=flow_run_id)
    create_flow_run_input(response_key, {**stored, "approval_token": verdict}, flow_run_id=flow_run_id)


def _names(answer: ApprovalInput, principal: Principal | None) -> set[str]:
    names = {answer.approver.strip().lower()}
    if principal is not None:
        names |= {n.strip().lower() for n in (principal.id, principal.username) if n}
    return names


def _refusal(
    answer: ApprovalInput,
    principal: Principal | None,
    token_error: str | None,
    fingerprint: str,
    policy: ApprovalSettings,
    triggered_by: str | None,
) -> str | None:
    """Why this answer cannot be taken (None: it can)."""
    if token_error is not None:
        return f"the approval token was not accepted ({token_error})"
    if principal is not None and not principal.has_role(APPROVER_ROLE):
        return f"the approval token of {principal.username or principal.id} lacks role {APPROVER_ROLE}"
    if policy.require_verified and principal is None:
        return "verified approvals are required (OMS_AUDIT_REQUIRE_VERIFIED_APPROVAL): add your approval token"
    if answer.decision == "approve":
        typed = answer.plan.strip().lower()
        if typed != fingerprint.lower() and typed != short_fingerprint(fingerprint):
            return f"the plan fingerprint typed ({typed or 'nothing'}) is not this plan's; type the 8 characters shown"
        if policy.four_eyes and triggered_by and triggered_by.strip().lower() in _names(answer, principal):
            return f"four eyes (OMS_AUDIT_FOUR_EYES): {triggered_by} triggered this run and may not approve it"
    return None


def _timed_out(timeout_seconds: int, refused: list[str]) -> ApprovalTimedOut:
    error = ApprovalTimedOut(timeout_seconds)
    error.refused = list(refused)  # type: ignore[attr-defined]  # the report lists the refused answers
    return error


def refused_answers(error: ApprovalTimedOut) -> list[str]:
    """The answers refused before the approval timed out (for the report)."""
    return list(getattr(error, "refused", []))


@task(name="approve", cache_policy=NO_CACHE)
def request_approval(
    description: str,
    fingerprint: str,
    timeout_seconds: int,
    poll_interval_seconds: int,
    *,
    env: str = "local",
    triggered_by: str | None = None,
    summary: tuple[str, list[str], str | None] | None = None,
) -> ApprovalAnswer:
    """Pause until an acceptable answer arrives (raises ApprovalTimedOut past the timeout).

    ``summary`` = (question, facts, artifact URL) builds the short description (and its refusal notes);
    without it ``description`` is shown as given.
    """
    logger = get_run_logger()
    policy = load_settings(ApprovalSettings)
    run_id = flow_run.get_id()
    flow_run_id = UUID(run_id) if run_id else None
    deadline = time.monotonic() + timeout_seconds
    refused: list[str] = []
    if flow_run_id is not None:
        create_flow_run_input(PLAN_INPUT_KEY, short_fingerprint(fingerprint), flow_run_id=flow_run_id)
    attempt = 0
    while True:
        attempt += 1
        key = PAUSE_KEY if attempt == 1 else f"{PAUSE_KEY}-{attempt}"
        remaining = int(deadline - time.monotonic())
        if remaining < 1:
            raise _timed_out(timeout_seconds, refused)
        shown = description
        if summary is not None:
            question, facts, url = summary
            shown = approval_description(question, facts, fingerprint, url, refusal=refused[-1] if refused else None)
        elif refused:
            shown = f"> **The last answer was refused:** {refused[-1]}. Answer again.\n\n{description}"
        try:
            answer: ApprovalInput = pause_flow_run(
                wait_for_input=ApprovalInput.with_initial_data(description=shown),
                timeout=remaining,
                poll_interval=max(1, poll_interval_seconds),
                key=key,
            )
        except FlowPauseTimeout as exc:
            raise _timed_out(timeout_seconds, refused) from exc
        token = answer.approval_token.strip()
        principal: Principal | None = None
        token_error: str | None = None
        if token:
            try:
                principal = _verify_token(env, token)
            except IdentityError as exc:
                token_error = str(exc)
        refusal = _refusal(answer, principal, token_error, fingerprint, policy, triggered_by)
        if token and flow_run_id is not None:
            stored = answer.model_dump(exclude={"metadata"})
            _scrub_stored_token(f"paused-{key}", flow_run_id, stored, _verdict_text(principal, refusal))
        del token
        via = read_flow_run_input(f"paused-{key}-via", flow_run_id=flow_run_id) if flow_run_id else None
        via = via or DEFAULT_VIA
        if refusal is not None:
            refused.append(f"{answer.decision} by {answer.approver} via {via}: {refusal}")
            logger.warning("Approval answer refused, the run keeps waiting: %s", refused[-1])
            continue
        verified = principal is not None
        return ApprovalAnswer(
            decision=answer.decision,
            approver=(principal.username or principal.id) if principal is not None else answer.approver,
            comment=answer.comment,
            via=str(via),
            plan=answer.plan.strip().lower(),
            verified=verified,
            approver_id=principal.id if principal is not None else None,
            refused=refused,
        )


def approved(answer: ApprovalAnswer, fingerprint: str, record: ApprovalSection) -> bool:
    """Write the answer into the report's approval section; True when approved, False when rejected.

    Raises StaleApproval for an approval naming another plan than ``fingerprint`` (nothing has changed yet).
    """
    record.decision, record.approver, record.via = answer.decision, answer.approver, answer.via
    record.comment = answer.comment or None
    record.verified, record.approver_id, record.refused = answer.verified, answer.approver_id, answer.refused
    record.decided_at = utc_now()
    if answer.decision == "approve" and answer.plan not in (fingerprint.lower(), short_fingerprint(fingerprint)):
        raise StaleApproval(approved=answer.plan or "(none)", current=fingerprint)
    return answer.decision == "approve"


def rejection_message(record: ApprovalSection) -> str:
    who = f"{record.approver} (verified)" if record.verified else f"{record.approver}"
    return f"Rejected by {who}" + (f": {record.comment}" if record.comment else "")


def answer_paused_run(flow_run_id: UUID, keyset: Mapping[Any, str], answer: dict[str, Any]) -> None:
    """Resume a paused run with ``answer`` the way the CLI tools do: ``via`` goes to its side input (it is no
    form field), and a missing ``plan`` is the short fingerprint the run published (the CLI showed that
    plan). Raises what ``resume_flow_run`` raises (NotPausedError, FlowPauseTimeout, RuntimeError)."""
    from prefect.flow_runs import resume_flow_run

    values = dict(answer)
    via = values.pop("via", None)
    prefix = keyset["response"].removesuffix("-response")
    if "plan" not in values:
        values["plan"] = read_flow_run_input(PLAN_INPUT_KEY, flow_run_id=flow_run_id) or ""
    if via:
        with contextlib.suppress(Exception):  # none yet (404)
            delete_flow_run_input(f"{prefix}-via", flow_run_id=flow_run_id)
        create_flow_run_input(f"{prefix}-via", str(via), flow_run_id=flow_run_id)
    resume_flow_run(flow_run_id, run_input=values)
