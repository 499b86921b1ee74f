"""Real MCP servers for the tool tests: `mcp-server-time` (from PyPI) over stdio, and a small
streamable-HTTP server built here with the `mcp` SDK, served by uvicorn on a free port.

The HTTP server's tools: `echo` (says its text back), `big` (a result of `size` characters),
`sleep` (answers after `seconds`), `whoami` (the X-Api-Key header it was sent: headers from
the environment reach the server).
"""

import asyncio
import sys
import threading
import time
from contextlib import contextmanager

import uvicorn
from mcp.server.mcpserver import Context, MCPServer

from assistants_app.tool_models import McpServer

from .live import free_port


def time_server(**fields) -> McpServer:
    """The `mcp-server-time` package's server, started over stdio with this Python."""
    return McpServer(
        name="time", transport="stdio", command=sys.executable, args=["-m", "mcp_server_time"],
        **fields,
    )  # fmt: skip


def build_http_server() -> MCPServer:
    server = MCPServer("test-tools")

    @server.tool()
    def echo(text: str) -> str:
        """Say the text back."""
        return f"echo: {text}"

    @server.tool()
    def big(size: int) -> str:
        """A result of `size` characters."""
        return "x" * size

    @server.tool()
    async def sleep(seconds: float) -> str:
        """Answer after some seconds."""
        await asyncio.sleep(seconds)
        return "slept"

    @server.tool()
    def whoami(ctx: Context) -> str:
        """The API key this request came with."""
        request = ctx.request_context.request
        return f"key={request.headers.get('x-api-key') if request else None}"

    return server


@contextmanager
def http_server():
    """The URL of a running streamable-HTTP MCP server (stopped afterwards)."""
    port = free_port()
    app = build_http_server().streamable_http_app()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


TOOLS_SEED = """
from assistants_app.admin_tools import check
from assistants_app.models import Assistant
from assistants_app.tool_models import AssistantTool, McpServer
server = McpServer.objects.create(name="time", transport="stdio", command={python!r},
                                  args=["-m", "mcp_server_time"])
check(server)
assert server.status == "ok", server.status_message
for engine in {engines!r}:
    assistant = Assistant.objects.create(name=f"Tools {{engine}}", model="simulator",
                                         engine=engine, provider="simulator")
    AssistantTool.objects.create(assistant=assistant, tool="time__get_current_time",
                                 approval={approval!r})
"""


def seed_tools(site, approval: str = "free", engines=("responses", "chat", "assistants")) -> None:
    """The site gets the time server and an assistant "Tools <engine>" per engine allowed its
    get_current_time, running freely or asking first (`approval`: free | ask)."""
    code = TOOLS_SEED.format(python=sys.executable, engines=tuple(engines), approval=approval)
    site.manage("shell", "--verbosity", "0", "-c", code)
