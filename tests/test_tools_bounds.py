"""Tool calls are bounded, and their failures go to the model, never fail the run: a call
that times out, a result too big, a server that is down, a tool's own error, the cap on
rounds and on a run's tool time. Against a real streamable-HTTP MCP server (mcp_servers.py)
and the simulator as a Chat Completions provider."""

import os

import pytest
from asgiref.sync import sync_to_async

from assistants_app import runs, services
from assistants_app.models import EngineKind, Message, Run, Thread
from assistants_app.tool_models import McpServer, ToolStep

from .conftest import make_assistant
from .live import free_port
from .mcp_servers import http_server, time_server
from .tool_fixtures import allow, registered, simulated_provider  # noqa: F401

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("simulated_provider"),
]


@pytest.fixture(scope="module")
def web_url():
    with http_server() as url:
        yield url


async def web_server(url: str, **fields) -> McpServer:
    return await registered(McpServer(name="web", transport="http", url=url, **fields))


async def ask(alice, prompt: str, *tools: str, asks_first: bool = False) -> Run:
    """A chat thread whose assistant may call `tools`, with `prompt` submitted (not driven)."""
    assistant = await sync_to_async(make_assistant)(engine=EngineKind.CHAT)
    for tool in tools:
        await allow(assistant, tool, asks_first)
    thread = await Thread.objects.acreate(owner=alice, assistant=assistant)
    thread = await Thread.objects.select_related("assistant", "owner").aget(pk=thread.pk)
    _, run = await services.submit_message(alice, thread, prompt)
    return run


async def finished(run: Run) -> tuple[Run, str, list[ToolStep]]:
    await runs.ensure_driving(run.pk)  # one driver per run in this process, as the site does
    run = await Run.objects.aget(pk=run.pk)
    reply = await Message.objects.filter(run=run, role="assistant").alast()
    steps = [step async for step in ToolStep.objects.filter(run=run)]
    return run, reply.text if reply else "", steps


async def test_a_call_past_its_timeout_tells_the_model(alice, web_url, settings):
    settings.TOOL_CALL_SECONDS = 0.5
    await web_server(web_url)
    run = await ask(alice, 'web__sleep {"seconds": 5}', "web__sleep")
    run, reply, [step] = await finished(run)
    assert run.status == "completed"
    assert step.state == "error" and step.duration_ms < 3000
    assert step.output == "Error: the tool did not answer within 0.5 seconds."
    assert "answered: Error: the tool did not answer within 0.5 seconds." in reply


async def test_an_oversized_result_is_cut_with_a_note_the_model_reads(alice, web_url, settings):
    settings.TOOL_RESULT_MAX_CHARS = 100
    await web_server(web_url)
    run = await ask(alice, 'web__big {"size": 5000}', "web__big")
    run, reply, [step] = await finished(run)
    assert run.status == "completed" and step.state == "done" and step.truncated
    assert step.output.startswith("x" * 100 + "\n[Result truncated: the first 100 of 5000")
    assert "[Result truncated: the first 100 of 5000 characters are shown.]" in reply


async def test_a_server_that_is_down_gives_the_model_an_error(alice, web_url):
    server = await web_server(web_url)  # listed its tools while up...
    server.url = f"http://127.0.0.1:{free_port()}/mcp"  # ...and is gone now
    await server.asave()
    run = await ask(alice, "web__echo hello", "web__echo")
    run, reply, [step] = await finished(run)
    assert run.status == "completed"
    assert step.state == "error"
    assert step.output.startswith("Error: The server web cannot be reached:")
    assert "answered: Error: The server web cannot be reached" in reply


async def test_a_tools_own_error_goes_to_the_model(alice):
    await registered(time_server())
    run = await ask(alice, "time__get_current_time Mars/Olympus", "time__get_current_time")
    run, reply, [step] = await finished(run)
    assert run.status == "completed" and step.state == "error"
    assert "Invalid timezone" in step.output and "Invalid timezone" in reply


async def test_headers_come_from_the_environment(alice, web_url, monkeypatch):
    monkeypatch.setitem(os.environ, "TEST_TOOLS_KEY", "k-123")
    await web_server(web_url, header_env={"X-Api-Key": "TEST_TOOLS_KEY"})
    run = await ask(alice, "web__whoami", "web__whoami")
    run, reply, [step] = await finished(run)
    assert step.output == "key=k-123"
    monkeypatch.delitem(os.environ, "TEST_TOOLS_KEY")
    run = await ask(alice, "web__whoami", "web__whoami")
    run, reply, [step] = await finished(run)
    assert step.output == "Error: Environment variable not set: TEST_TOOLS_KEY."


async def test_rounds_stop_at_the_cap(alice, web_url, settings):
    settings.TOOL_MAX_ROUNDS = 1
    await web_server(web_url)
    run = await ask(alice, "web__echo one then web__echo two", "web__echo")
    run, reply, steps = await finished(run)
    assert run.status == "completed"
    # No tools are offered after the last round: the model answers with what it has.
    assert [(s.round, s.output) for s in steps] == [(1, "echo: one")]


async def test_a_runs_tool_time_is_bounded(alice, web_url, settings):
    settings.TOOL_RUN_SECONDS = 0.2
    await web_server(web_url)
    run = await ask(alice, 'web__sleep {"seconds": 0.3} then web__echo two', "web__sleep",
                    "web__echo")  # fmt: skip
    run, reply, steps = await finished(run)
    assert run.status == "completed"
    assert [(s.tool, s.state) for s in steps] == [("web__sleep", "done"), ("web__echo", "error")]
    assert "used its 0.2 seconds of tool time" in steps[1].output


async def test_a_tool_no_longer_allowed_is_an_error_for_the_model(alice, web_url):
    await web_server(web_url)
    run = await ask(alice, "web__echo hi", "web__echo")
    # Staff remove the tool from the assistant while the run is under way.
    await sync_to_async(lambda: run.thread.assistant.allowed_tools.all().delete())()
    from assistants_app.engines import get_engine
    from assistants_app.engines.base import RunUpdate, ToolCall
    from assistants_app.runs.tool_calls import answer_tool_calls

    run = await Run.objects.select_related("thread__assistant", "thread__owner").aget(pk=run.pk)
    asking = RunUpdate(status="requires_action", tool_calls=[ToolCall("c1", "web__echo", "{}")])
    await answer_tool_calls(get_engine(run.thread.assistant), run, asking)
    step = await ToolStep.objects.aget(run=run)
    assert step.state == "error"
    assert step.output == "Error: no tool named 'web__echo' is available to this assistant."
