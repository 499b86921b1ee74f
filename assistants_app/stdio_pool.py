"""Stdio MCP servers kept running between calls: starting one (a Python program, say) takes
seconds, a call to a running one milliseconds.

One task per running server owns its connection from start to end (the SDK's anyio scopes
must close in the task that opened them); calls are handed to it and each runs in a task of
its own there, so a caller that gives up (a timeout, a Stop) cancels its call and nothing
else. A server idle for MCP_STDIO_IDLE_SECONDS is stopped; one that dies fails its calls, and
the next call starts it again. Per event loop, as the connections are.
"""

import asyncio
import logging

from django.conf import settings
from mcp import Client, StdioServerParameters

log = logging.getLogger(__name__)

# (event loop, command, args) -> the running server
_running: dict[tuple, "_Server"] = {}


async def call(params: StdioServerParameters, name: str, arguments: dict):
    """Call a tool on the server `params` starts (started now if it is not running)."""
    key = (asyncio.get_running_loop(), params.command, tuple(params.args))
    server = _running.get(key)
    if server is None or server.task.done():
        server = _running[key] = _Server(key, params)
    return await server.call(name, arguments)


async def stop_all() -> None:
    """Stop this loop's running servers (tests; a process that ends stops them anyway)."""
    loop = asyncio.get_running_loop()
    for key, server in list(_running.items()):
        if key[0] is loop:
            server.task.cancel()
            await asyncio.wait([server.task])


class _Server:
    def __init__(self, key: tuple, params: StdioServerParameters):
        self.key = key
        self.requests: asyncio.Queue = asyncio.Queue()
        self.task = asyncio.create_task(self._serve(params), name=f"mcp-stdio-{params.command}")

    async def call(self, name: str, arguments: dict):
        answer = asyncio.get_running_loop().create_future()
        self.requests.put_nowait((answer, name, arguments))
        try:
            return await answer
        finally:
            answer.cancel()  # given up: the call's task sees it and stops (see _one)

    async def _serve(self, params: StdioServerParameters) -> None:
        calls: set[asyncio.Task] = set()
        try:
            async with Client(params, mode="legacy") as client:
                while True:
                    try:
                        idle = None if calls else settings.MCP_STDIO_IDLE_SECONDS
                        async with asyncio.timeout(idle):
                            request = await self.requests.get()
                    except TimeoutError:
                        return  # idle: stopped until the next call
                    if request is None:
                        continue  # a call ended: the idle clock may start
                    task = asyncio.create_task(self._one(client, *request))
                    calls.add(task)
                    task.add_done_callback(calls.discard)
                    task.add_done_callback(lambda _: self.requests.put_nowait(None))
        except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001 - handed to callers
            log.info("MCP stdio server %s stopped: %r", params.command, error)
            self._fail_waiting(error)
        finally:
            for task in calls:
                task.cancel()
            if _running.get(self.key) is self:
                del _running[self.key]

    async def _one(self, client, answer: asyncio.Future, name: str, arguments: dict) -> None:
        work = asyncio.ensure_future(client.call_tool(name, arguments))
        answer.add_done_callback(lambda _: work.cancel())  # the caller gave up
        try:
            result = await work
        except asyncio.CancelledError:
            if not answer.done():  # the server stopped under it, not the caller
                answer.set_exception(RuntimeError("the server stopped during the call"))
            return
        except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001 - handed to the caller
            if not answer.done():
                answer.set_exception(error if isinstance(error, Exception) else RuntimeError(error))
            return
        if not answer.done():
            answer.set_result(result)

    def _fail_waiting(self, error: BaseException) -> None:
        while not self.requests.empty():
            request = self.requests.get_nowait()
            if request is None:
                continue
            answer = request[0]
            if not answer.done():
                answer.set_exception(error if isinstance(error, Exception) else RuntimeError())
