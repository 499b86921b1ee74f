"""A stdio MCP server is started once and kept while it is used (stdio_pool.py): later calls
reuse it, a call given up is cancelled alone, an idle server stops, a broken command says so."""

import asyncio
import sys
from pathlib import Path

import pytest

from assistants_app import mcp_client, stdio_pool
from assistants_app.tool_models import McpServer

SCRIPT = str(Path(__file__).with_name("mcp_stdio_server.py"))


def server() -> McpServer:
    return McpServer(name="local", transport="stdio", command=sys.executable, args=[SCRIPT])


@pytest.fixture(autouse=True)
async def stopped_afterwards():
    yield
    await stdio_pool.stop_all()


async def test_later_calls_reuse_the_running_server():
    first = await mcp_client.call_tool(server(), "echo", {"text": "one"}, 20)
    [running] = stdio_pool._running.values()
    second = await mcp_client.call_tool(server(), "echo", {"text": "two"}, 20)
    assert (first.text, second.text) == ("echo: one", "echo: two")
    assert list(stdio_pool._running.values()) == [running] and not running.task.done()


async def test_a_call_given_up_is_cancelled_alone():
    with pytest.raises(mcp_client.McpFailure, match="did not answer within 0.5 seconds"):
        await mcp_client.call_tool(server(), "sleep", {"seconds": 30}, 0.5)
    [running] = stdio_pool._running.values()
    answer = await mcp_client.call_tool(server(), "echo", {"text": "still here"}, 5)
    assert answer.text == "echo: still here"
    assert list(stdio_pool._running.values()) == [running]


async def test_an_idle_server_stops(settings):
    settings.MCP_STDIO_IDLE_SECONDS = 0.3
    await mcp_client.call_tool(server(), "echo", {"text": "x"}, 20)
    [running] = stdio_pool._running.values()
    await asyncio.wait_for(running.task, 5)
    assert stdio_pool._running == {}


async def test_a_command_that_cannot_start_says_so():
    broken = McpServer(name="broken", transport="stdio", command="/nonexistent/mcp-server")
    with pytest.raises(mcp_client.McpFailure, match="its command could not be started"):
        await mcp_client.call_tool(broken, "echo", {}, 5)
    assert stdio_pool._running == {}
