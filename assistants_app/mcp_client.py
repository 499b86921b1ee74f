"""Talking to MCP servers with the official `mcp` SDK: list a server's tools, call one.

An HTTP server gets a connection per use. A stdio server is a program we start, which takes
seconds: it is kept running while it is used and for MCP_STDIO_IDLE_SECONDS after (stdio_pool.py),
so the calls of an answer, and of the next, do not each start it again. Every use is bounded
by a timeout, and a server that is down, slow or answers garbage gives McpFailure with words
a person can read; nothing else leaves this module.
"""

import asyncio
import json
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass

from django.conf import settings
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

from . import stdio_pool
from .tool_models import McpServer, stdio_allowed

log = logging.getLogger(__name__)

LIST_SECONDS = 20.0  # listing includes starting a stdio server


class McpFailure(Exception):
    """The server could not be reached, or did not answer in time; `str()` says which."""


@dataclass(frozen=True)
class ToolResult:
    text: str  # what the tool said, as text for the model
    is_error: bool = False


@asynccontextmanager
async def _connected(server: McpServer):
    if server.transport == McpServer.Transport.STDIO:
        async with Client(_stdio_params(server), mode="legacy") as client:
            yield client
        return
    try:
        headers = server.headers()
    except LookupError as error:
        raise McpFailure(str(error)) from None
    async with create_mcp_http_client(headers=headers) as http:
        transport = streamable_http_client(server.url, http_client=http)
        async with Client(transport, mode="legacy") as client:
            yield client


def _stdio_params(server: McpServer) -> StdioServerParameters:
    # Checked again here, not only in admin: a row written another way runs nothing either.
    if not stdio_allowed(server.command):
        raise McpFailure(f"its command “{server.command}” is not one MCP_STDIO_COMMANDS allows")
    return StdioServerParameters(command=server.command, args=list(server.args))


def _describe(error: BaseException) -> str:
    """Words for a failure, out of the exception groups anyio wraps errors in."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    if isinstance(error, TimeoutError):
        return "it did not answer in time"
    if isinstance(error, (FileNotFoundError, PermissionError)):
        return f"its command could not be started ({error.strerror or error})"
    text = str(error) or type(error).__name__
    return text[:300]


async def list_tools(server: McpServer, timeout: float = LIST_SECONDS) -> list[dict]:
    """The tools the server offers: name, description and input schema of each."""
    try:
        async with asyncio.timeout(timeout):
            async with _connected(server) as client:
                listed = await client.list_tools()
    except McpFailure:
        raise
    except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001 - said in words below
        log.info("MCP server %s: listing its tools failed: %r", server.name, error)
        raise McpFailure(
            f"The server {server.name} cannot be reached: {_describe(error)}."
        ) from None
    return [
        {
            "name": tool.name,
            "description": tool.description or "",
            "input_schema": tool.input_schema or {"type": "object", "properties": {}},
        }
        for tool in listed.tools
    ]


async def call_tool(server: McpServer, name: str, arguments: dict, timeout: float) -> ToolResult:
    """Call one tool. A tool's own error (is_error) comes back as a result, for the model."""
    try:
        async with asyncio.timeout(timeout):
            kept = settings.MCP_STDIO_IDLE_SECONDS > 0
            if server.transport == McpServer.Transport.STDIO and kept:
                result = await stdio_pool.call(_stdio_params(server), name, arguments)
            else:
                async with _connected(server) as client:
                    result = await client.call_tool(name, arguments)
    except McpFailure:
        raise
    except TimeoutError:
        raise McpFailure(f"The tool did not answer within {timeout:g} seconds.") from None
    except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001 - said in words below
        log.info("MCP server %s: calling %s failed: %r", server.name, name, error)
        raise McpFailure(
            f"The server {server.name} cannot be reached: {_describe(error)}."
        ) from None
    return ToolResult(_text_of(result), bool(result.is_error))


def _text_of(result) -> str:
    parts = []
    for block in result.content or []:
        if getattr(block, "type", "") == "text":
            parts.append(block.text)
        else:  # images, audio, resources: named, not inlined (models here read text)
            parts.append(f"[{getattr(block, 'type', 'content')} omitted]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, default=str))
    return "\n".join(parts)
