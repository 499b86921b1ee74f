"""A run's tool steps in the database: created once per call (whoever drives the run, after
however many restarts), approved or denied by the run's owner, expired when nobody answers.

The database is the state: a run paused for approval is a step `awaiting_approval` with an
expiry; the driver that resumes the run after a reload, a reconnect or a restart finds it
there. Every change is sent to the thread's sockets after it commits.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Sum
from django.utils import timezone

from ..db import database_sync_to_async
from ..engines.base import ToolCall
from ..exceptions import NotFound
from ..models import Run, Thread
from ..tool_models import ToolStep
from ..tool_registry import AllowedTool
from . import events

State = ToolStep.State
EXPIRED_OUTPUT = "The user did not answer the request to run this tool in time; it was not run."
DENIED_OUTPUT = "The user declined to run this tool. Do not try it again in this answer."
INTERRUPTED_OUTPUT = (
    "Error: the call was interrupted (the site restarted); it may or may not have taken effect."
)


@database_sync_to_async
def steps_for(run: Run, calls: list[ToolCall], allowed: dict[str, AllowedTool]):
    """The step of each call, created on first sight: the calls of one request are one round.
    Calls beyond the round cap, to unknown tools, or past the run's tool time are finished at
    once with an error the model reads. Returns (steps in the calls' order, events to send)."""
    sent: list[dict] = []
    with transaction.atomic():
        existing = {s.call_id: s for s in ToolStep.objects.filter(run=run)}
        new_calls = [call for call in calls if call.id not in existing]
        if new_calls:
            done = ToolStep.objects.filter(run=run)
            round_ = (done.aggregate(last=Max("round"))["last"] or 0) + 1
            spent_ms = done.aggregate(spent=Sum("duration_ms"))["spent"] or 0
            for call in new_calls:
                step = ToolStep(run=run, round=round_, call_id=call.id, tool=call.name,
                                arguments=call.arguments)  # fmt: skip
                _first_state(step, allowed.get(call.name), round_, spent_ms)
                step.save()
                existing[call.id] = step
                sent.append(events.tool_step(step))
    return [existing[call.id] for call in calls], sent


def _first_state(step: ToolStep, tool: AllowedTool | None, round_: int, spent_ms: int) -> None:
    if tool is None:
        _refuse(step, f"Error: no tool named {step.tool!r} is available to this assistant.")
    elif round_ > settings.TOOL_MAX_ROUNDS:
        _refuse(step, f"Error: this answer has used its {settings.TOOL_MAX_ROUNDS} rounds of "
                      "tool calls. Answer with what you have.")  # fmt: skip
    elif spent_ms >= settings.TOOL_RUN_SECONDS * 1000:
        _refuse(step, f"Error: this answer has used its {settings.TOOL_RUN_SECONDS:g} seconds "
                      "of tool time. Answer with what you have.")  # fmt: skip
    elif tool.asks_first:
        step.state = State.AWAITING_APPROVAL
        step.expires_at = timezone.now() + timedelta(seconds=settings.TOOL_APPROVAL_SECONDS)
    else:
        step.state = State.APPROVED


def _refuse(step: ToolStep, output: str) -> None:
    step.state, step.output, step.error = State.ERROR, output, output.removeprefix("Error: ")


@database_sync_to_async
def refresh(steps: list[ToolStep]) -> tuple[list[ToolStep], list[dict]]:
    """The steps as stored now, with approvals past their expiry marked expired."""
    now, sent = timezone.now(), []
    ToolStep.objects.filter(
        pk__in=[s.pk for s in steps], state=State.AWAITING_APPROVAL, expires_at__lte=now
    ).update(state=State.EXPIRED, output=EXPIRED_OUTPUT, error="Not approved in time.")
    fresh = {s.pk: s for s in ToolStep.objects.filter(pk__in=[s.pk for s in steps])}
    for step in steps:
        if fresh[step.pk].state != step.state:
            sent.append(events.tool_step(fresh[step.pk]))
    return [fresh[s.pk] for s in steps], sent


@database_sync_to_async
def current(steps: list[ToolStep]) -> list[ToolStep]:
    """The steps as stored now."""
    return list(ToolStep.objects.filter(pk__in=[s.pk for s in steps]))


@database_sync_to_async
def save(step: ToolStep, **changes) -> dict:
    for name, value in changes.items():
        setattr(step, name, value)
    ToolStep.objects.filter(pk=step.pk).update(**changes)
    return events.tool_step(step)


@database_sync_to_async
def interrupted(steps: list[ToolStep]) -> list[dict]:
    """Steps left running by a process that died: not run again behind the user's back."""
    sent = []
    for step in steps:
        if step.state == State.RUNNING:
            step.state, step.output = State.ERROR, INTERRUPTED_OUTPUT
            step.error = "Interrupted by a restart."
            step.save(update_fields=["state", "output", "error"])
            sent.append(events.tool_step(step))
    return sent


async def decide(user, thread_id: int, step_id: int, approve: bool) -> ToolStep:
    """The owner approves or denies a call that waits for them; the driver, in whichever
    process, sees it at its next look. A step that is not theirs raises NotFound; one not
    waiting any more (decided in another tab, expired) stays as it is."""
    step, changed = await _decide(user, thread_id, step_id, approve)
    if changed:
        await events.broadcast(Thread(pk=thread_id).group_name, [events.tool_step(step)])
    return step


@database_sync_to_async
def _decide(user, thread_id: int, step_id: int, approve: bool) -> tuple[ToolStep, bool]:
    thread = Thread.objects.owned_by(user).filter(pk=thread_id).first()
    step = ToolStep.objects.filter(pk=step_id, run__thread=thread).first() if thread else None
    if step is None:
        raise NotFound("No such tool call")
    if approve:
        changes = {"state": State.APPROVED}
    else:
        changes = {"state": State.DENIED, "output": DENIED_OUTPUT, "error": "Denied by the user."}
    changed = ToolStep.objects.filter(
        pk=step.pk, state=State.AWAITING_APPROVAL, expires_at__gt=timezone.now()
    ).update(**changes)
    step.refresh_from_db()
    return step, bool(changed)
