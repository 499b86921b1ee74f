"""The simulator's Assistants API, spoken to by the openai SDK in process (no sockets)."""

import asyncio
import json

import httpx
import openai
import pytest

from assistants_app import tools
from assistants_app.simulator.app import create_app

SEARCH = tools.definitions(["search_my_messages"])


@pytest.fixture
def client():
    def connect(latency: float = 0.0) -> openai.AsyncOpenAI:
        transport = httpx.ASGITransport(create_app(latency=latency))
        return openai.AsyncOpenAI(
            base_url="http://simulator/v1",
            api_key="simulator",
            max_retries=0,
            http_client=httpx.AsyncClient(transport=transport),
        )

    return connect


async def start(api: openai.AsyncOpenAI, text: str, model: str = "simulator", tools=()):
    assistant = await api.beta.assistants.create(model=model, name="Sim", tools=list(tools))
    thread = await api.beta.threads.create()
    await api.beta.threads.messages.create(thread.id, role="user", content=text)
    run = await api.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    return thread, run


async def test_a_run_goes_from_queued_to_completed_and_answers_in_the_thread(client):
    api = client(latency=0.1)
    thread, run = await start(api, "Hello")
    assert run.status == "queued"
    await asyncio.sleep(0.11)

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
