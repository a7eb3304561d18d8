"""Run a flow in this process and answer its approval pause from here, the way an approver would in the UI.

The flow runs in a worker thread exactly as it does under a deployment (same pause, same RunInput); an
``on_running`` hook hands this thread the run's id, and this thread watches the run and, when it pauses,
reads the plan it shows and resumes it with the answer given at the terminal (or by ``--yes``). (A tag
would also find the run, but task runs inherit tags, and Prefect then checks tag concurrency limits
through the API for every task run.)
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from prefect import Flow
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import FlowPauseTimeout, NotPausedError
from prefect.input import keyset_from_paused_state
from prefect.input.actions import read_flow_run_input
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.states import Cancelled, State

from core.errors import OmsAuditError
from tasks.approval import answer_paused_run
from tasks.stop_request import clear_stop_request, request_stop

Answer = Callable[..., dict[str, Any] | None]
"""Given the plan's markdown, return the run input: decision, approver, comment, via. An answer with a true
``watches_pause`` attribute is also given a ``still_waiting()`` check and may return None when the pause
ended while it was asking (timed out, or answered elsewhere)."""


@dataclass
class FlowOutcome:
    state: State[Any]
    flow_run_id: UUID | None
    answered: dict[str, Any] | None = None
    error: BaseException | None = field(default=None)


class _NoTracebackForExpectedFailures(logging.Formatter):
    """Terminal log lines of a failure we raised on purpose (an :class:`OmsAuditError`: a timed-out approval,
    a lease held, a drift...) without its traceback: the message says what happened and what to do. The
    API's copy of the log (the UI) keeps the traceback; anything unexpected keeps it here too."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, OmsAuditError):
            return self.inner.format(record)
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text = saved


def _quiet_expected_failures() -> None:
    for handler in logging.getLogger().handlers:
        formatter = handler.formatter or logging.Formatter()
        if isinstance(handler, logging.StreamHandler) and not isinstance(formatter, _NoTracebackForExpectedFailures):
            handler.setFormatter(_NoTracebackForExpectedFailures(formatter))


def _is_paused(flow_run_id: UUID | None) -> bool:
    """Whether the run waits for an answer (it would never reach a step boundary by itself).

    A client of its own: the Ctrl-C may have broken off a request of the watch's client."""
    if flow_run_id is None:
        return False
    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(flow_run_id).state
    except Exception:  # the API is gone (e.g. the same Ctrl-C stopped it): nothing to wait for
        return True
    return state is not None and state.is_paused()


def _mark_interrupted(flow_run_id: UUID | None) -> None:
    """Ctrl-C: this process (and the flow thread with it) is about to end, so record the run as Cancelled.

    Otherwise the API would show it running forever, and its migration lease would block the next run until
    it expired; with the run in a final state, the next run takes the lease over at once.
    """
    if flow_run_id is None:
        return
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, Cancelled(message="interrupted at the terminal (Ctrl-C)"), force=True)


def _ask(client: SyncPrefectClient, answer: Answer, description: str, flow_run_id: UUID) -> dict[str, Any] | None:
    if not getattr(answer, "watches_pause", False):
        return answer(description)

    def still_waiting() -> bool:
        state = client.read_flow_run(flow_run_id).state
        return state is not None and state.is_paused()

    return answer(description, still_waiting)


def _resume(flow_run_id: UUID, keyset: Mapping[Any, str], answer: dict[str, Any]) -> None:
    """Resume with the answer; a pause that ended meanwhile (timed out) is no error here: the run says so."""
    with contextlib.suppress(NotPausedError, FlowPauseTimeout):
        answer_paused_run(flow_run_id, keyset, answer)


def run_flow(
    flow_fn: Flow[..., Any],
    parameters: dict[str, Any],
    *,
    answer: Answer | None,
    on_tick: Callable[[UUID | None], None] = lambda _run_id: None,
    on_stop_requested: Callable[[], None] = lambda: None,
    poll_seconds: float = 0.5,
    heartbeats: bool = True,
) -> FlowOutcome:
    """Run ``flow_fn(**parameters)``; answer its pause with ``answer`` (None: never answer, let it time out);
    call ``on_tick`` while it runs.

    A first Ctrl-C while the run works asks it to stop at its next step boundary (``on_stop_requested``
    tells the user): the type being patched finishes, the books are closed, the lease released, and the run
    ends Cancelled. A Ctrl-C while it is paused, or a second one, ends it here and now (Cancelled too).

    ``heartbeats=False`` runs without Prefect's flow-run heartbeats: they exist to find crashed long runs,
    and their thread, which sleeps in one-second steps, holds up the end of every run by up to a second
    (worth it for a run that pauses for hours, not for a dry run of a few seconds).
    """
    result: dict[str, Any] = {}
    _quiet_expected_failures()

    def remember_run(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
        result["flow_run_id"] = flow_run.id

    watched = flow_fn.with_options(on_running=[*flow_fn.on_running_hooks, remember_run])

    done = threading.Event()

    def work() -> None:
        try:
            if heartbeats:
                result["state"] = watched(**parameters, return_state=True)
            else:
                with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
                    result["state"] = watched(**parameters, return_state=True)
        except BaseException as exc:  # surfaced to the caller below, never swallowed
            result["error"] = exc
        finally:
            done.set()

    clear_stop_request()
    worker = threading.Thread(target=work, name="oms-audit-flow", daemon=True)
    worker.start()
    flow_run_id: UUID | None = None
    answered: dict[str, Any] | None = None
    stopping = False
    # One API client for the whole watch: each new one loads the CA bundle and asks the API its version.
    with get_client(sync_client=True) as client:
        # An Event, not Thread.join: a join interrupted by Ctrl-C can leave is_alive() False for a live thread.
        while not done.is_set():
            try:
                done.wait(poll_seconds)
                flow_run_id = result.get("flow_run_id")
                on_tick(flow_run_id)
                if flow_run_id is None or answered is not None or answer is None or done.is_set():
                    continue
                run = client.read_flow_run(flow_run_id)
                if run.state is not None and run.state.is_paused():
                    keyset = keyset_from_paused_state(run.state)
                    description = read_flow_run_input(keyset["description"], flow_run_id=flow_run_id) or ""
                    answered = _ask(client, answer, str(description), flow_run_id) or {}
                    if answered:
                        _resume(flow_run_id, keyset, answered)
            except KeyboardInterrupt:
                if stopping or _is_paused(result.get("flow_run_id")):
                    _mark_interrupted(result.get("flow_run_id"))
                    raise
                stopping = True
                request_stop("Ctrl-C at the terminal")
                on_stop_requested()
    on_tick(flow_run_id)
    if "error" in result:
        raise result["error"]
    return FlowOutcome(state=result["state"], flow_run_id=flow_run_id, answered=answered or None)
