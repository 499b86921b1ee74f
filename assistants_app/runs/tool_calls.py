"""Answering a run that asks for tools: run them as the thread's owner, submit the outputs."""

import logging

from .. import tools
from ..engines.base import Engine, RunUpdate, ToolOutput
from ..exceptions import UnknownTool
from ..models import Run, RunStatus
from .endings import cancel_quietly
from .store import record

log = logging.getLogger(__name__)


async def answer_tool_calls(
    engine: Engine, run: Run, update: RunUpdate, stream: bool = False
) -> RunUpdate | None:
    """Run the tools the provider asks for, as the thread's owner, and submit their outputs
    (asking for the run's stream from there on, with `stream`).

    Returns the provider's update after the submission, or None when the run ended here:
    cancelled meanwhile, or failed for asking for a tool its assistant does not have. If the
    submission fails and is retried, the next poll asks again and the tools run again.
    """
    # The page shows "using a tool" while they run.
    if update.status != run.status and not await record(run, update):
        return None
    owner, enabled = run.thread.owner, run.thread.assistant.tools
    try:
        outputs = [
            ToolOutput(call.id, await tools.call(owner, enabled, call.name, call.arguments))
            for call in update.tool_calls
        ]
    except UnknownTool as error:
        log.warning("run %s: %s", run.pk, error)
        await cancel_quietly(engine, run)
        await record(
            run,
            RunUpdate(status=RunStatus.FAILED, error_code="unknown_tool", error_message=str(error)),
        )
        return None
    return await engine.submit_tool_outputs(run, outputs, stream=stream)
