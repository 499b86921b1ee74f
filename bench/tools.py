"""How long an MCP tool call takes through our client (assistants_app/mcp_client.py): a stdio
server's first call (it is started) and later ones (kept running, stdio_pool.py), and a
streamable-HTTP server (a connection per call). Prints figures; asserts nothing.

    python -m bench.tools [--calls 20]

Uses `mcp-server-time` (stdio) and the tests' own HTTP server (tests/mcp_servers.py): install
with `pip install -e ".[test]"`.
"""

import argparse
import asyncio
import os
import statistics
import time

import django


def figures(label: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"{label:<34} n={len(ms):<3} median {statistics.median(ms):7.1f} ms  p95 {p95:7.1f} ms"


async def timed(server, tool: str, arguments: dict, calls: int) -> list[float]:
    from assistants_app import mcp_client

    took = []
    for _ in range(calls):
        began = time.monotonic()
        await mcp_client.call_tool(server, tool, arguments, 30)
        took.append(time.monotonic() - began)
    return took


async def measure(calls: int, http_url: str) -> None:
    from assistants_app import stdio_pool
    from assistants_app.tool_models import McpServer
    from tests.mcp_servers import time_server

    clock = time_server()
    arguments = {"timezone": "UTC"}
    [first] = await timed(clock, "get_current_time", arguments, 1)
    kept = await timed(clock, "get_current_time", arguments, calls)
    await stdio_pool.stop_all()
    web = McpServer(name="web", transport="http", url=http_url)
    http = await timed(web, "echo", {"text": "hi"}, calls)
    print(figures("stdio, first call (starts server)", [first]))
    print(figures("stdio, server kept running", kept))
    print(figures("streamable HTTP, connection/call", http))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    django.setup()
    from tests.mcp_servers import http_server

    with http_server() as url:
        asyncio.run(measure(options.calls, url))


if __name__ == "__main__":
    main()
