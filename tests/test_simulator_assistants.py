"""The simulator's Assistants API, spoken to by the openai SDK in process (no sockets)."""

import asyncio
import json

import httpx
import openai
import pytest

from assistants_app import tools
from assistants_app.simulator.app import create_app
from assistants_app.simulator.assistants import SimRun, SimThread

SEARCH = tools.definitions(["search_my_messages"])


@pytest.fixture
def client():
    def connect(latency: float = 0.0, token_rate: float = 1e6) -> openai.AsyncOpenAI:
        transport = httpx.ASGITransport(create_app(latency=latency, token_rate=token_rate))
        return openai.AsyncOpenAI(
            base_url="http://simulator/v1",
            api_key="simulator",
            max_retries=0,
            http_client=httpx.AsyncClient(transport=transport),
        )

    return connect


async def start(
    api: openai.AsyncOpenAI, text: str, model: str = "simulator", tools=(), stream=False
):
    assistant = await api.beta.assistants.create(model=model, name="Sim", tools=list(tools))
    thread = await api.beta.threads.create()
    await api.beta.threads.messages.create(thread.id, role="user", content=text)
    if stream:
        return thread, await api.beta.threads.runs.create(
            thread.id, assistant_id=assistant.id, stream=True
        )
    run = await api.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    return thread, run


async def read(stream) -> tuple[list[str], str]:
    """The stream's event names (deltas once, however many) and the text its deltas wrote."""
    names, text = [], ""
    async for event in stream:
        if event.event == "thread.message.delta":
            text += "".join(part.text.value for part in event.data.delta.content)
            if names[-1] == "thread.message.delta":
                continue
        names.append(event.event)
    return names, text


async def test_a_run_goes_from_queued_to_completed_and_answers_in_the_thread(client):
    api = client(latency=0.1, token_rate=1000)
    thread, run = await start(api, "Hello")
    assert run.status == "queued"
    await asyncio.sleep(0.15)  # latency, then about 20 tokens at 1,000 a second

    raw = await api.beta.threads.runs.with_raw_response.retrieve(run.id, thread_id=thread.id)
    assert raw.parse().status == "completed"
    assert raw.parse().usage.total_tokens > 0
    assert raw.headers["openai-poll-after-ms"] == "50"
    answers = [m async for m in api.beta.threads.messages.list(thread.id, run_id=run.id)]
    assert [(m.role, m.run_id) for m in answers] == [("assistant", run.id)]
    assert "Simulated reply" in answers[0].content[0].text.value


async def test_a_thread_refuses_messages_and_runs_while_a_run_is_active(client):
    api = client(latency=10)
    thread, run = await start(api, "Hello")
    with pytest.raises(openai.BadRequestError, match="while a run"):
        await api.beta.threads.messages.create(thread.id, role="user", content="Again")
    with pytest.raises(openai.BadRequestError, match="already has an active run"):
        await api.beta.threads.runs.create(thread.id, assistant_id=run.assistant_id)


async def test_a_run_asks_for_a_function_tool_named_in_the_message(client):
    api = client()
    thread, run = await start(api, "search_my_messages pizza", tools=SEARCH)

    run = await api.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert run.status == "requires_action"
    [call] = run.required_action.submit_tool_outputs.tool_calls
    assert call.function.name == "search_my_messages"
    assert json.loads(call.function.arguments) == {"query": "pizza"}

    with pytest.raises(openai.BadRequestError, match="Missing tool outputs"):
        await api.beta.threads.runs.submit_tool_outputs(run.id, thread_id=thread.id,
                                                        tool_outputs=[])  # fmt: skip
    await api.beta.threads.runs.submit_tool_outputs(
        run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": "[42]"}]
    )
    run = await api.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert run.status == "completed"
    [answer] = [m async for m in api.beta.threads.messages.list(thread.id, run_id=run.id)]
    assert "`search_my_messages` answered: [42]" in answer.content[0].text.value


async def test_a_run_without_the_tool_answers_directly(client):
    api = client()
    thread, run = await start(api, "search_my_messages pizza")
    run = await api.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert run.status == "completed"


async def test_a_cancelled_run_is_cancelling_for_a_while_then_cancelled(client):
    api = client(latency=0.5)
    thread, run = await start(api, "Hello", model="simulator+stuck")

    run = await api.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert run.status == "cancelling"
    await asyncio.sleep(0.15)
    run = await api.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert run.status == "cancelled"
    with pytest.raises(openai.BadRequestError, match="Cannot cancel run with status 'cancelled'"):
        await api.beta.threads.runs.cancel(run.id, thread_id=thread.id)


@pytest.mark.parametrize(
    ("fault", "status"), [("fail", "failed"), ("incomplete", "incomplete"), ("expire", "expired")]
)
async def test_a_fault_ends_a_run_in_its_status(client, fault, status):
    api = client()
    thread, run = await start(api, "Hello", model=f"simulator+{fault}")
    run = await api.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert run.status == status


async def test_an_assistant_is_updated_in_place(client):
    api = client()
    assistant = await api.beta.assistants.create(model="simulator", instructions="Be brief.")
    await api.beta.assistants.update(assistant.id, instructions="Be terse.", tools=SEARCH)
    stored = await api.beta.assistants.retrieve(assistant.id)
    assert stored.instructions == "Be terse."
    assert stored.tools[0].function.name == "search_my_messages"


async def test_a_run_streams_its_lifecycle_and_answer_token_by_token(client):
    api = client(latency=0.05, token_rate=200)
    started = asyncio.get_running_loop().time()
    thread, stream = await start(api, "Hello", stream=True)
    names, text = await read(stream)
    elapsed = asyncio.get_running_loop().time() - started

    assert names == [
        "thread.run.created", "thread.run.queued", "thread.run.in_progress",
        "thread.message.created", "thread.message.in_progress", "thread.message.delta",
        "thread.message.completed", "thread.run.completed",
    ]  # fmt: skip
    [answer] = [m async for m in api.beta.threads.messages.list(thread.id)][:1]
    assert text == answer.content[0].text.value
    tokens = len(text.split())
    assert elapsed >= 0.05 + (tokens - 1) / 200  # written at the token rate, not at once


async def test_a_broken_stream_stops_half_way_and_the_run_goes_on(client):
    api = client(latency=0.05, token_rate=2000)
    thread, stream = await start(api, "Hello", model="simulator+break-stream", stream=True)
    names, text = await read(stream)

    assert names[-1] == "thread.message.delta"  # no end of the run, no [DONE]
    await asyncio.sleep(0.2)
    [run] = [r async for r in api.beta.threads.runs.list(thread.id)]
    assert run.status == "completed"
    [answer] = [m async for m in api.beta.threads.messages.list(thread.id, run_id=run.id)]
    full = answer.content[0].text.value
    assert full.startswith(text) and 0 < len(text) < len(full)


async def test_a_run_that_needs_a_tool_streams_again_after_its_outputs(client):
    api = client(latency=0.01)
    thread, stream = await start(api, "search_my_messages pizza", tools=SEARCH, stream=True)
    events = [event async for event in stream]
    assert events[-1].event == "thread.run.requires_action"
    run = events[-1].data
    [call] = run.required_action.submit_tool_outputs.tool_calls

    resumed = await api.beta.threads.runs.submit_tool_outputs(
        run.id, thread_id=thread.id, stream=True,
        tool_outputs=[{"tool_call_id": call.id, "output": "[42]"}],
    )  # fmt: skip
    names, text = await read(resumed)

    assert names[0] == "thread.run.queued" and names[-1] == "thread.run.completed"
    assert "`search_my_messages` answered: [42]" in text


async def test_a_cancel_ends_the_stream_keeping_what_was_written(client):
    api = client(latency=0.05, token_rate=40)
    assistant = await api.beta.assistants.create(model="simulator", name="Sim")
    thread = await api.beta.threads.create()
    await api.beta.threads.messages.create(thread.id, role="user", content="Hello")

    async def stream_it():
        stream = await api.beta.threads.runs.create(
            thread.id, assistant_id=assistant.id, stream=True
        )
        return [event async for event in stream]

    streaming = asyncio.create_task(stream_it())
    await asyncio.sleep(0.25)  # a few tokens in
    [run] = [r async for r in api.beta.threads.runs.list(thread.id)]
    await api.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    events = await streaming

    names = [event.event for event in events]
    assert names[-3:] == ["thread.run.cancelling", "thread.message.incomplete",
                          "thread.run.cancelled"]  # fmt: skip
    written = events[-2].data.content[0].text.value
    assert written and "Simulated reply" in written


async def test_a_server_that_will_not_stream_refuses_with_400(client):
    api = client()
    with pytest.raises(openai.BadRequestError, match="Streaming is not supported"):
        await start(api, "Hello", model="simulator+no-stream", stream=True)


async def test_a_stream_read_late_still_reports_each_status_in_order():
    # On a busy machine a stream may start after its run has moved on; it says where the run
    # has been all the same, as OpenAI's does, and its first event shows the run as created.
    thread = SimThread(id="thread_1", metadata={})
    run = SimRun(
        id="run_1", thread=thread, assistant_id="asst_1", model="simulator", instructions="",
        tools=[], prompt="Hello", turn=1, latency=0.1, token_rate=1e6, fault="",
        given="", earlier="", variant=1,
    )  # fmt: skip
    run.timeline.started -= 1  # a second ago: queued, in progress and writing are long past

    events = [event async for event in run.events(opening=True)]

    names = [event.split("\n")[0].removeprefix("event: ") for event in events]
    assert names[:5] == [
        "thread.run.created", "thread.run.queued", "thread.run.in_progress",
        "thread.message.created", "thread.message.in_progress",
    ]  # fmt: skip
    assert names[-3:] == ["thread.message.completed", "thread.run.completed", "done"]
    statuses = [json.loads(event.split("data: ", 1)[1])["status"] for event in events[:3]]
    assert statuses == ["queued", "queued", "in_progress"]
