"""The tool calls a run generated here has made so far, read back for its next request.

A run generated in this process (Chat Completions, Responses without background mode) keeps
no state at the provider between rounds of tool calls: each request sends the history, then
every round so far (the calls and their outputs, from the run's ToolSteps). A round with
calls not yet answered is `pending`: the driver answers it (after a restart too) before any
new request. Read only, like history.py.
"""

from dataclasses import dataclass, field

from django.conf import settings

from .db import database_sync_to_async
from .engines.base import ToolCall
from .tool_models import ToolStep
from .tool_registry import AllowedTool, allowed_tools


@dataclass(frozen=True)
class Transcript:
    tools: list[AllowedTool] = field(default_factory=list)
    rounds: list[list[ToolStep]] = field(default_factory=list)  # answered rounds, in order
    pending: list[ToolCall] = field(default_factory=list)  # the last round, if unanswered

    @property
    def may_call(self) -> bool:
        """Whether tools are offered: some allowed, and rounds left."""
        return bool(self.tools) and len(self.rounds) < settings.TOOL_MAX_ROUNDS

    def chat_messages(self) -> list[dict]:
        """The rounds as Chat Completions messages (after the prompt)."""
        messages = []
        for steps in self.rounds:
            messages.append({
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": s.call_id, "type": "function",
                     "function": {"name": s.tool, "arguments": s.arguments or "{}"}}
                    for s in steps
                ],
            })  # fmt: skip
            messages += [
                {"role": "tool", "tool_call_id": s.call_id, "content": s.output} for s in steps
            ]
        return messages

    def response_items(self) -> list[dict]:
        """The rounds as Responses input items (after the prompt)."""
        items = []
        for steps in self.rounds:
            items += [
                {"type": "function_call", "call_id": s.call_id, "name": s.tool,
                 "arguments": s.arguments or "{}"}
                for s in steps
            ]  # fmt: skip
            items += [
                {"type": "function_call_output", "call_id": s.call_id, "output": s.output}
                for s in steps
            ]
        return items


def load(run, started: bool = True) -> Transcript:
    """The run's tools and rounds so far; a run not `started` on its provider yet has been
    asked for no tool call (no query for its steps)."""
    tools = list(allowed_tools(run.thread.assistant).values())
    by_round: dict[int, list[ToolStep]] = {}
    steps = ToolStep.objects.filter(run=run).order_by("round", "id") if started else ()
    for step in steps:
        by_round.setdefault(step.round, []).append(step)
    rounds = [by_round[number] for number in sorted(by_round)]
    pending = []
    if rounds and not all(step.is_finished for step in rounds[-1]):
        pending = [ToolCall(s.call_id, s.tool, s.arguments) for s in rounds.pop()]
    return Transcript(tools, rounds, pending)


load_async = database_sync_to_async(load)
