"""The Chat Completions engine and tools: the allowed tools go with the request, a streamed
call written in pieces (as OpenAI writes them) becomes one call, and the next request sends
the round back (assistant tool_calls, then the tool's output)."""

import pytest
from asgiref.sync import sync_to_async

from assistants_app.engines import get_engine
from assistants_app.engines.base import Turn
from assistants_app.models import Message, Run
from assistants_app.tool_models import AssistantTool, ToolStep
from assistants_app.tool_transcript import load as load_transcript

from ..chat_stream import DONE, chunk, sent, streamed

pytestmark = pytest.mark.django_db(transaction=True)


def piece(index, id=None, name=None, arguments=None) -> dict:
    function = {k: v for k, v in (("name", name), ("arguments", arguments)) if v is not None}
    call = {"index": index, "function": function}
    if id:
        call.update(id=id, type="function")
    return call


@pytest.fixture
def run(alice_chat_thread, chat_assistant):
    AssistantTool.objects.create(assistant=chat_assistant, tool="current_datetime")
    prompt = Message.objects.create(thread=alice_chat_thread, role="user", text="Time?")
    return Run.objects.select_related("thread__assistant").get(
        pk=Run.objects.create(thread=alice_chat_thread, prompt=prompt, remote_id="chat-1").pk
    )


async def test_a_call_written_in_pieces_is_one_call(run, provider_mock):
    route = provider_mock.post("/chat/completions").mock(return_value=streamed([
        chunk("", role="assistant"),
        chunk(tool_calls=[piece(0, id="call_a", name="current_datetime", arguments="")]),
        chunk(tool_calls=[piece(0, arguments='{"timezone": ')]),
        chunk(tool_calls=[piece(0, arguments='"Europe/Paris"}')]),
        chunk(tool_calls=[piece(1, id="call_b", name="current_datetime", arguments="{}")]),
        chunk(finish_reason="tool_calls"),
        DONE,
    ]))  # fmt: skip
    engine = get_engine(run.thread.assistant)
    transcript = await sync_to_async(load_transcript)(run)
    update = await engine.generate(run, [], transcript=transcript)

    assert update.status == "requires_action"
    assert [(c.id, c.name, c.arguments) for c in update.tool_calls] == [
        ("call_a", "current_datetime", '{"timezone": "Europe/Paris"}'),
        ("call_b", "current_datetime", "{}"),
    ]
    [tool] = sent(route)["tools"]
    assert tool["function"]["name"] == "current_datetime"


async def test_the_next_request_sends_the_round_back(run, provider_mock, settings):
    await ToolStep.objects.acreate(
        run=run, call_id="call_a", tool="current_datetime", arguments="{}", state="done",
        output='{"weekday": "Monday"}',
    )  # fmt: skip
    route = provider_mock.post("/chat/completions").mock(
        return_value=streamed([chunk("It is Monday."), chunk(finish_reason="stop"), DONE])
    )
    transcript = await sync_to_async(load_transcript)(run)
    update = await get_engine(run.thread.assistant).generate(
        run, [Turn("user", "Time?")], transcript=transcript
    )
    assert update.status == "completed"
    messages = sent(route)["messages"]
    assert messages[-2]["tool_calls"][0]["id"] == "call_a"
    assert messages[-1] == {"role": "tool", "tool_call_id": "call_a",
                            "content": '{"weekday": "Monday"}'}  # fmt: skip
    settings.TOOL_MAX_ROUNDS = 1  # the round just sent was the last: no tools offered now
    transcript = await sync_to_async(load_transcript)(run)
    await get_engine(run.thread.assistant).generate(
        run, [Turn("user", "Time?")], transcript=transcript
    )
    assert "tools" not in sent(route)
