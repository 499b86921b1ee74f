"""One registry of the tools an assistant may call: the built-in ones (tools.py) and those
of the MCP servers staff registered (mcp_client.py), each allowed per assistant and marked
"runs freely" or "asks the user first" (AssistantTool).

A model sees every tool as a function; an MCP server's tool is named `<server>__<tool>`.
Running a call is bounded here: a timeout, and a result clipped to TOOL_RESULT_MAX_CHARS
with a note saying so. A failing tool gives an error *result*, which the model reads.
"""

import asyncio
import json
import logging
import re
from dataclasses import dataclass

from django.conf import settings

from . import mcp_client, prepared, tools
from .db import database_sync_to_async
from .tool_models import AssistantTool, McpServer

log = logging.getLogger(__name__)

SEPARATOR = "__"
# What providers accept as a function's name (OpenAI's rule); an MCP tool named otherwise
# is not offered.
FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class AllowedTool:
    name: str  # as the model calls it
    description: str
    parameters: dict  # JSON schema
    asks_first: bool
    server: McpServer | None = None  # None: built in
    remote_name: str = ""  # the tool's name on its MCP server

    def definition(self) -> dict:
        """As Chat Completions and Assistants want it (Responses flattens it: see flat())."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description[:1024],
                "parameters": self.parameters,
            },
        }


@dataclass(frozen=True)
class Outcome:
    output: str  # what the model reads
    is_error: bool = False
    truncated: bool = False


def flat(definition: dict) -> dict:
    """A Chat Completions function definition as the Responses API wants it."""
    return {"type": "function", **definition["function"]}


def choices() -> list[tuple[str, str]]:
    """Every tool staff can allow: built-in ones, then each active server's listed tools."""
    found = [(name, f"{name} (built in)") for name in tools.REGISTRY]
    for server in McpServer.objects.filter(is_active=True):
        for listed in server.tools:
            name = f"{server.name}{SEPARATOR}{listed['name']}"
            if FUNCTION_NAME.match(name):
                found.append((name, f"{name} (MCP: {server.name})"))
    return found


@prepared.select
def _rules_of(assistant_id: int):
    return AssistantTool.objects.filter(assistant_id=assistant_id).values_list("tool", "approval")


def allowed_tools(assistant) -> dict[str, AllowedTool]:
    """The tools `assistant` may call, by the name the model uses (a database read).

    An MCP tool is offered only while its server is active and listed it at its last check;
    the legacy `Assistant.tools` list of built-in names still counts, as runs freely.
    """
    rules = {name: AssistantTool.Approval.FREE for name in assistant.tools or []}
    rules.update(_rules_of(assistant_id=assistant.pk))
    # Only an MCP tool needs its server (most assistants have none: no query then).
    servers = {}
    if any(name not in tools.REGISTRY for name in rules):
        servers = {s.name: s for s in McpServer.objects.filter(is_active=True)}
    allowed = {}
    for name, approval in rules.items():
        asks = approval == AssistantTool.Approval.ASK
        if name in tools.REGISTRY:
            builtin = tools.REGISTRY[name]
            allowed[name] = AllowedTool(name, builtin.description, builtin.parameters, asks)
            continue
        server_name, _, remote = name.partition(SEPARATOR)
        server = servers.get(server_name)
        listed = {t["name"]: t for t in server.tools} if server else {}
        if remote not in listed or not FUNCTION_NAME.match(name):
            log.info("assistant %s: tool %s is not available now", assistant.pk, name)
            continue
        allowed[name] = AllowedTool(
            name,
            listed[remote]["description"],
            listed[remote]["input_schema"],
            asks,
            server=server,
            remote_name=remote,
        )
    return allowed


allowed_tools_async = database_sync_to_async(allowed_tools)


def definitions(assistant) -> list[dict]:
    return [tool.definition() for tool in allowed_tools(assistant).values()]


async def execute(user, tool: AllowedTool, arguments: str, timeout: float) -> Outcome:
    """Run one call within `timeout` seconds; every failure is an error result for the model."""
    try:
        kwargs = json.loads(arguments or "{}")
        if not isinstance(kwargs, dict):
            raise ValueError
    except ValueError:
        return Outcome("Error: the arguments must be a JSON object.", is_error=True)
    try:
        async with asyncio.timeout(timeout):
            if tool.server is None:
                text = await tools.call(user, [tool.name], tool.name, json.dumps(kwargs))
                is_error = text.startswith('{"error"')
            else:
                result = await mcp_client.call_tool(tool.server, tool.remote_name, kwargs, timeout)
                text, is_error = result.text, result.is_error
    except TimeoutError:
        return Outcome(f"Error: the tool did not answer within {timeout:g} seconds.", True)
    except mcp_client.McpFailure as failure:
        return Outcome(f"Error: {failure}", is_error=True)
    return clip(text, is_error)


def clip(text: str, is_error: bool = False) -> Outcome:
    """At most TOOL_RESULT_MAX_CHARS, with a note the model reads when it was cut."""
    limit = settings.TOOL_RESULT_MAX_CHARS
    if len(text) <= limit:
        return Outcome(text, is_error)
    note = f"\n[Result truncated: the first {limit} of {len(text)} characters are shown.]"
    return Outcome(text[:limit] + note, is_error, truncated=True)
