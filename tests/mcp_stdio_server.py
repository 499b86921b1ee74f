"""A stdio MCP server for the tests, run as a script: `echo` and `sleep` (mcp SDK)."""

import asyncio

from mcp.server.mcpserver import MCPServer

server = MCPServer("test-stdio")


@server.tool()
def echo(text: str) -> str:
    """Say the text back."""
    return f"echo: {text}"


@server.tool()
async def sleep(seconds: float) -> str:
    """Answer after some seconds."""
    await asyncio.sleep(seconds)
    return "slept"


if __name__ == "__main__":
    server.run("stdio")
