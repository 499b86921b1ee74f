"""Which function tools a simulated model calls, for Chat Completions and Responses (the
Assistants API has its own, simpler rule in assistants.py, which this one extends).

Deterministic, so tests and the offline demo can ask for calls in words: a function tool
whose name appears in the user's message is called, with the text after its name as every
required string argument (or a JSON object written right after the name, as the arguments).
Tools named with "and" between them are called in parallel, in one round; "then" between them
makes rounds: "get_current_time Europe/Paris then convert_time ..." calls one, then, once
its output came back, the other. The answer after the last round quotes every output.
"""

import json

from .assistants import planned_tool_calls
from .common import new_id

ROUND_SEPARATOR = " then "
PARALLEL_SEPARATOR = " and "


def calls_for_round(tools: list[dict], prompt: str, round_: int) -> list[dict]:
    """Chat-style tool calls ({id, type, function: {name, arguments}}) for round `round_`
    (from 0) of the answer to `prompt`; none once its rounds are done."""
    segments = prompt.split(ROUND_SEPARATOR)
    if not tools or round_ >= len(segments):
        return []
    calls = []
    for part in segments[round_].split(PARALLEL_SEPARATOR):
        for call in planned_tool_calls(as_chat_tools(tools), part):
            name = call["function"]["name"]
            given = _json_object_at_start(part[part.lower().index(name.lower()) + len(name) :])
            if given is not None:
                call["function"]["arguments"] = json.dumps(given)
            calls.append(call)
    return calls


def as_chat_tools(tools: list[dict]) -> list[dict]:
    """Responses' flat function tools ({type, name, parameters}) in Chat's nested shape."""
    return [
        tool if "function" in tool else {"type": tool.get("type"), "function": tool}
        for tool in tools
        if isinstance(tool, dict)
    ]


def results_text(outputs: list[tuple[str, str]]) -> str:
    """The closing words that show the outputs reached the model: (tool name, output)."""
    if not outputs:
        return ""
    lines = "\n".join(f"- `{name}` answered: {output}" for name, output in outputs)
    return "\n\nTool results (a simulated use of the tools):\n" + lines


def _json_object_at_start(text: str) -> dict | None:
    text = text.lstrip(" :")
    if not text.startswith("{"):
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def new_call_id() -> str:
    return new_id("call")
