"""Shared pieces of the tool tests: the simulator as the mocked provider, and assistants
allowed tools of real MCP servers (tests/mcp_servers.py)."""

import httpx
import pytest
import respx

from assistants_app import mcp_client
from assistants_app.simulator.app import create_app
from assistants_app.tool_models import AssistantTool, McpServer

from .conftest import PROVIDER_URL


@pytest.fixture
def simulated_provider():
    """The test provider's HTTP answered by the offline simulator, in process."""
    transport = httpx.ASGITransport(app=create_app(latency=0.05, token_rate=10_000))

    async def forward(request: httpx.Request) -> httpx.Response:
        # Straight to the app's transport: a client would be caught by respx again.
        copy = httpx.Request(request.method, request.url, headers=request.headers,
                             content=request.content)  # fmt: skip
        answer = await transport.handle_async_request(copy)
        content = await answer.aread()
        return httpx.Response(answer.status_code, headers=answer.headers, content=content)

    with respx.mock(using="httpx", base_url=PROVIDER_URL, assert_all_called=False) as mock:
        mock.route().mock(side_effect=forward)
        yield mock


async def registered(server: McpServer) -> McpServer:
    """The server saved with the tools it lists now (as admin's check does)."""
    server.tools = await mcp_client.list_tools(server)
    server.status = "ok"
    await server.asave()
    return server


async def allow(assistant, tool: str, asks_first: bool = False) -> None:
    approval = AssistantTool.Approval.ASK if asks_first else AssistantTool.Approval.FREE
    await AssistantTool.objects.acreate(assistant=assistant, tool=tool, approval=approval)
