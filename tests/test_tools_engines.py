"""Every engine calls MCP tools and uses their results: Chat Completions, Responses (each
path) and Assistants, against the simulator and the real `mcp-server-time` over stdio."""

import pytest

from assistants_app import runs, services
from assistants_app.models import EngineKind, Message, Run, Thread
from assistants_app.tool_models import ToolStep

from .conftest import make_assistant
from .mcp_servers import time_server
from .tool_fixtures import allow, registered, simulated_provider  # noqa: F401

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("simulated_provider"),
]

ASK = "What time is it in Paris? time__get_current_time Europe/Paris"


async def answered(alice, engine: str, prompt: str = ASK) -> tuple[Run, str]:
    assistant = await make_assistant_async(engine=engine)
    await registered(time_server())
    await allow(assistant, "time__get_current_time")
    thread = await Thread.objects.acreate(owner=alice, assistant=assistant)
    thread = await Thread.objects.select_related("assistant", "owner").aget(pk=thread.pk)
    _, run = await services.submit_message(alice, thread, prompt)
    await runs.ensure_driving(run.pk)  # one driver per run in this process, as the site does
    run = await Run.objects.aget(pk=run.pk)
    reply = await Message.objects.filter(run=run, role="assistant").alast()
    return run, reply.text if reply else ""


async def make_assistant_async(**fields):
    from asgiref.sync import sync_to_async

    return await sync_to_async(make_assistant)(**fields)


def assert_used_the_time(run: Run, reply: str) -> None:
    assert run.status == "completed", (run.error_code, run.error_message)
    assert "`time__get_current_time` answered:" in reply
    assert '"timezone": "Europe/Paris"' in reply  # the real server's answer reached the model
    [step] = ToolStep.objects.filter(run=run)
    assert (step.tool, step.state, step.round) == ("time__get_current_time", "done", 1)
    assert step.arguments == '{"timezone": "Europe/Paris"}'
    assert '"day_of_week"' in step.output and step.duration_ms is not None


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_chat_completions_run_calls_an_mcp_tool(alice, settings, streamed):
    settings.RUN_STREAMING = streamed
    run, reply = await answered(alice, EngineKind.CHAT)
    await sync(assert_used_the_time, run, reply)


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_responses_run_calls_an_mcp_tool(alice, settings, streamed):
    settings.RUN_STREAMING = streamed
    run, reply = await answered(alice, EngineKind.RESPONSES)
    await sync(assert_used_the_time, run, reply)


async def test_a_responses_run_without_background_mode_calls_an_mcp_tool(alice, known_capabilities):
    known_capabilities.background = False  # generated here, like Chat Completions
    run, reply = await answered(alice, EngineKind.RESPONSES)
    await sync(assert_used_the_time, run, reply)


async def test_a_responses_run_chained_without_conversations_calls_an_mcp_tool(
    alice, known_capabilities
):
    known_capabilities.conversations = False  # previous_response_id carries the calls
    run, reply = await answered(alice, EngineKind.RESPONSES)
    await sync(assert_used_the_time, run, reply)


@pytest.mark.parametrize("streamed", [False, True])
async def test_an_assistants_run_calls_an_mcp_tool(alice, settings, streamed):
    settings.RUN_STREAMING = streamed
    run, reply = await answered(alice, EngineKind.ASSISTANTS)
    await sync(assert_used_the_time, run, reply)


async def test_a_chat_run_makes_parallel_calls_and_several_rounds(alice):
    prompt = (
        'time__get_current_time Europe/Paris and time__convert_time {"source_timezone": '
        '"UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"} then '
        "time__get_current_time Asia/Tokyo"
    )
    assistant = await make_assistant_async(engine=EngineKind.CHAT)
    await registered(time_server())
    await allow(assistant, "time__get_current_time")
    await allow(assistant, "time__convert_time")
    thread = await Thread.objects.acreate(owner=alice, assistant=assistant)
    thread = await Thread.objects.select_related("assistant", "owner").aget(pk=thread.pk)
    _, run = await services.submit_message(alice, thread, prompt)
    await runs.ensure_driving(run.pk)  # one driver per run in this process, as the site does
    run = await Run.objects.aget(pk=run.pk)
    steps = [(s.round, s.tool, s.state) async for s in ToolStep.objects.filter(run=run)]
    assert run.status == "completed"
    assert steps == [
        (1, "time__get_current_time", "done"),
        (1, "time__convert_time", "done"),
        (2, "time__get_current_time", "done"),
    ]
    reply = (await Message.objects.filter(run=run, role="assistant").alast()).text
    assert '"timezone": "Asia/Tokyo"' in reply  # the second round's output


async def sync(function, *args):
    from asgiref.sync import sync_to_async

    return await sync_to_async(function)(*args)
