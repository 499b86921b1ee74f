"""Answering a run that asks for tools, for every engine: each call becomes a step (stored,
shown in the answer), waits for the user's approval where its tool asks first, runs within
its bounds, in parallel with the others of its round, and the outputs go back to the engine.

Everything a restart needs is in the database (approvals.py): a driver that picks the run up
finds the same steps by the provider's call ids, waits for the same approvals and runs only
what has not run. A Stop reaches a call under way: the stored status is looked at while the
tools run or wait, as a generation here does (engines/local.py).
"""

import asyncio
import logging
import time

from django.conf import settings

from ..db import database_sync_to_async
from ..engines.base import Engine, RunUpdate, ToolOutput
from ..models import ACTIVE_STATUSES, Run, RunStatus
from ..tool_models import ToolStep
from ..tool_registry import AllowedTool, allowed_tools_async, execute
from . import approvals, events
from .leases import Lease
from .store import record

log = logging.getLogger(__name__)
State = ToolStep.State
STOPPED_OUTPUT = "Error: the user stopped the answer before this tool finished."


async def answer_tool_calls(
    engine: Engine, run: Run, update: RunUpdate, stream: bool = False, lease: Lease | None = None
) -> RunUpdate | None:
    """Run the tools the provider asks for, as the thread's owner, and submit their outputs
    (asking for the run's stream from there on, with `stream`).

    Returns the provider's update after the submission, or None when the run ended here
    (stopped by its owner meanwhile, or another process drives it now).
    """
    # The page shows "using a tool" while they run, and the approval buttons if asked.
    if update.status != run.status and not await record(run, update):
        return None
    allowed = await allowed_tools_async(run.thread.assistant)
    steps, sent = await approvals.steps_for(run, update.tool_calls, allowed)
    sent += await approvals.interrupted(steps)
    await events.broadcast(run.thread.group_name, sent)
    watch = _Watch(run, lease)
    steps_asked = steps
    steps = await watch.approvals(steps)
    if steps is None:
        return await _stopped(engine, run, await approvals.current(steps_asked))
    to_run = [step for step in steps if step.state == State.APPROVED]
    if to_run and not await watch.calls(_run_all(run, to_run, allowed)):
        return await _stopped(engine, run, await approvals.current(steps))
    outputs = [ToolOutput(step.call_id, step.output) for step in steps]
    return await engine.submit_tool_outputs(run, outputs, stream=stream)


class _Watch:
    """Waiting on the user or on tools, while looking out for a Stop and keeping the lease."""

    def __init__(self, run: Run, lease: Lease | None):
        self.run, self.lease = run, lease

    async def still_wanted(self) -> bool:
        if self.lease is not None and not await self.lease.renew_when_due():
            return False
        status = await _stored_status(self.run.pk)
        return status in ACTIVE_STATUSES and status != RunStatus.CANCELLING

    async def approvals(self, steps: list[ToolStep]) -> list[ToolStep] | None:
        """The steps once none awaits approval (approved, denied or expired); None: stopped."""
        while True:
            steps, sent = await approvals.refresh(steps)
            await events.broadcast(self.run.thread.group_name, sent)
            if all(step.state != State.AWAITING_APPROVAL for step in steps):
                return steps
            if not await self.still_wanted():
                return None
            await asyncio.sleep(settings.CHAT_CANCEL_CHECK_SECONDS)

    async def calls(self, work) -> bool:
        """Run `work`; false if the run was stopped first (the work is cancelled)."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait([task], timeout=settings.CHAT_CANCEL_CHECK_SECONDS)
                if done:
                    task.result()
                    return True
                if not await self.still_wanted():
                    return False
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait([task])


async def _run_all(run: Run, steps: list[ToolStep], allowed: dict[str, AllowedTool]) -> None:
    await asyncio.gather(*(_run_one(run, step, allowed.get(step.tool)) for step in steps))


async def _run_one(run: Run, step: ToolStep, tool: AllowedTool | None) -> None:
    group = run.thread.group_name
    if tool is None:  # taken off the assistant's list since it was approved
        gone = f"Error: no tool named {step.tool!r} is available to this assistant."
        await events.broadcast(
            group, [await approvals.save(step, state=State.ERROR, output=gone, error=gone[7:])]
        )
        return
    await events.broadcast(group, [await approvals.save(step, state=State.RUNNING)])
    began = time.monotonic()
    outcome = await execute(run.thread.owner, tool, step.arguments, settings.TOOL_CALL_SECONDS)
    finished = await approvals.save(
        step,
        state=State.ERROR if outcome.is_error else State.DONE,
        output=outcome.output,
        truncated=outcome.truncated,
        error=outcome.output.removeprefix("Error: ")[:500] if outcome.is_error else "",
        duration_ms=round((time.monotonic() - began) * 1000),
    )
    log.info("run %s: tool %s %s in %s ms", run.pk, step.tool, step.state, step.duration_ms)
    await events.broadcast(group, [finished])


async def _stopped(engine: Engine, run: Run, steps: list[ToolStep]) -> None:
    """Tools waited or ran when the run was stopped by its owner, or taken over by another
    process. Stopped (or ended by its provider meanwhile): calls not finished say so, and a
    run asked to stop ends as cancelled. Taken over: nothing changes here, the other driver
    goes on from the same steps."""
    status = await _stored_status(run.pk)
    if status in ACTIVE_STATUSES and status != RunStatus.CANCELLING:
        return None
    sent = [
        await approvals.save(step, state=State.ERROR, output=STOPPED_OUTPUT, error="Stopped.")
        for step in steps
        if not step.is_finished
    ]
    await events.broadcast(run.thread.group_name, sent)
    if status != RunStatus.CANCELLING:
        return None  # it has ended already
    try:
        await engine.cancel(run)
    except Exception:  # noqa: BLE001 - we end it here either way
        log.warning("run %s: cancelling it on the provider failed", run.pk, exc_info=True)
    await record(run, RunUpdate(status=RunStatus.CANCELLED))
    return None


@database_sync_to_async
def _stored_status(run_id: int) -> str | None:
    return Run.objects.filter(pk=run_id).values_list("status", flat=True).first()
