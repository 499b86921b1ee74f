"""The simulator speaks Chat Completions, streamed and not, as the openai SDK expects."""

import time

import httpx
import openai
import pytest

from assistants_app.simulator.app import create_app

from .test_simulator import assert_tokens_add_up_to

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Show me a list"},
]


@pytest.fixture
async def client():
    transport = httpx.ASGITransport(app=create_app(latency=0, token_rate=10_000))
    async with httpx.AsyncClient(transport=transport) as http:
        yield openai.AsyncOpenAI(
            base_url="http://simulator/v1", api_key="simulator", http_client=http, max_retries=0
        )


async def test_it_answers_without_streaming(client):
    completion = await client.chat.completions.create(model="simulator", messages=CONVERSATION)

    answer = completion.choices[0].message
    assert answer.role == "assistant"
    assert answer.content.startswith("_Simulated reply")
    assert "“Show me a list”. This is turn 2" in answer.content  # it read the history
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


async def test_it_streams_chunks_and_the_usage_when_asked(client):
    stream = await client.chat.completions.create(
        model="simulator",
        messages=CONVERSATION,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len(chunks) > 10  # word by word
    assert "This is turn 2" in text and "- **third** point" in text
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


async def test_it_streams_without_usage_unless_asked(client):
    stream = await client.chat.completions.create(
        model="simulator", messages=CONVERSATION, stream=True
    )
    chunks = [chunk async for chunk in stream]

    assert all(chunk.usage is None and chunk.choices for chunk in chunks)


async def test_a_broken_stream_stops_halfway_unfinished(client):
    stream = await client.chat.completions.create(
        model="simulator+break-stream", messages=CONVERSATION, stream=True
    )
    chunks = [chunk async for chunk in stream]

    assert chunks and all(chunk.choices[0].finish_reason is None for chunk in chunks)
    assert "**third** point" not in "".join(c.choices[0].delta.content or "" for c in chunks)


async def test_it_fails_when_asked(client):
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="simulator+fail", messages=CONVERSATION)


async def test_it_refuses_a_request_without_messages(client):
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="simulator", messages=[])


async def test_it_says_when_each_answer_was_complete_and_to_which_prompt(client):
    before = time.time()
    stream = await client.chat.completions.create(
        model="simulator", messages=CONVERSATION, stream=True
    )
    async for _ in stream:  # the answer is complete when its stream has been read
        pass
    await client.chat.completions.create(
        model="simulator", messages=[{"role": "user", "content": "Hi"}]
    )

    stats = await client.get("http://simulator/simulator/chat-stats", cast_to=httpx.Response)

    completions = stats.json()["completions"]
    assert [c["prompt"] for c in completions] == ["Show me a list", "Hi"]
    assert all(before <= c["completed_at"] <= time.time() for c in completions)


async def test_it_says_when_each_token_of_an_answer_was_written(client):
    before = time.time()
    completion = await client.chat.completions.create(model="simulator", messages=CONVERSATION)

    stats = await client.get("http://simulator/simulator/chat-stats", cast_to=httpx.Response)

    [stat] = stats.json()["completions"]
    reply = completion.choices[0].message.content
    assert_tokens_add_up_to(stat, reply, first_after=before, last_by=stat["completed_at"])


async def test_a_broken_stream_tells_only_the_tokens_it_sent(client):
    # Tokens 5 ms apart: the stream keeps up with its timeline, as it does at a model's pace.
    stream = await client.chat.completions.create(
        model="simulator+break-stream", messages=CONVERSATION, stream=True,
        extra_headers={"X-Simulator-Token-Rate": "200"},
    )  # fmt: skip
    sent = "".join([c.choices[0].delta.content or "" async for c in stream])

    stats = await client.get("http://simulator/simulator/chat-stats", cast_to=httpx.Response)

    [stat] = stats.json()["completions"]
    assert stat["token_ends"][-1] == len(sent)
