"""The offline simulator speaks the Responses and Conversations APIs with a real lifecycle."""

import asyncio
import json
import time

import httpx
import pytest
from starlette.requests import Request

from assistants_app.simulator.app import create_app
from assistants_app.simulator.common import Settings


@pytest.fixture
async def simulator():
    transport = httpx.ASGITransport(app=create_app(latency=0.2, token_rate=1000))
    async with httpx.AsyncClient(transport=transport, base_url="http://sim/v1") as client:
        yield client


async def create_response(simulator, model="simulator", headers=None, text="Hello"):
    conversation = (await simulator.post("/conversations", json={})).json()
    created = await simulator.post(
        "/responses",
        json={"model": model, "conversation": conversation["id"], "input": text,
              "background": True, "instructions": "Be brief."},
        headers=headers or {},
    )  # fmt: skip
    return conversation, created


async def test_a_response_goes_from_queued_to_in_progress_to_completed(simulator):
    conversation, created = await create_response(simulator, text="Show me code")
    response_id = created.json()["id"]
    assert created.json()["status"] == "queued"

    await asyncio.sleep(0.1)
    assert (await simulator.get(f"/responses/{response_id}")).json()["status"] == "in_progress"

    await asyncio.sleep(0.2)
    done = (await simulator.get(f"/responses/{response_id}")).json()
    assert done["status"] == "completed"
    text = done["output"][0]["content"][0]["text"]
    assert text.startswith("_Simulated reply")
    assert "```python" in text
    assert done["usage"]["total_tokens"] > 0
    items = (await simulator.get(f"/conversations/{conversation['id']}/items")).json()["data"]
    assert [item["role"] for item in items] == ["user", "assistant"]


async def test_a_conversation_is_locked_while_a_response_runs(simulator):
    conversation, _ = await create_response(simulator)
    second = await simulator.post(
        "/responses", json={"model": "simulator", "conversation": conversation["id"], "input": "x"}
    )
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "conversation_locked"


async def test_a_cancelled_response_stays_cancelled(simulator):
    _, created = await create_response(simulator)
    response_id = created.json()["id"]
    cancelled = await simulator.post(f"/responses/{response_id}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    await asyncio.sleep(0.25)
    assert (await simulator.get(f"/responses/{response_id}")).json()["status"] == "cancelled"


async def test_a_fault_in_the_model_name_fails_the_response(simulator):
    _, created = await create_response(simulator, model="simulator+fail")
    await asyncio.sleep(0.3)
    failed = (await simulator.get(f"/responses/{created.json()['id']}")).json()
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "server_error"


async def test_a_fault_header_rate_limits_the_first_retrieve(simulator):
    _, created = await create_response(simulator, headers={"X-Simulator-Fault": "rate-limit-once"})
    response_id = created.json()["id"]
    first = await simulator.get(f"/responses/{response_id}")
    assert first.status_code == 429
    assert first.headers["retry-after"]
    assert (await simulator.get(f"/responses/{response_id}")).status_code == 200


async def test_unknown_ids_are_404_like_the_real_api(simulator):
    missing = await simulator.get("/responses/resp_nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    no_conversation = await simulator.post(
        "/responses", json={"model": "simulator", "conversation": "conv_nope", "input": "x"}
    )
    assert no_conversation.status_code == 404


async def test_it_lists_its_model(simulator):
    models = (await simulator.get("/models")).json()
    assert [m["id"] for m in models["data"]] == ["simulator"]


async def stream_events(simulator, response_id, starting_after=None, headers=None):
    params = {"stream": "true"}
    if starting_after is not None:
        params["starting_after"] = starting_after
    events = []
    async with simulator.stream(
        "GET", f"/responses/{response_id}", params=params, headers=headers or {}
    ) as stream:
        async for line in stream.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
    return events


async def test_a_streamed_answer_arrives_token_by_token_with_sequence_numbers(simulator):
    _, created = await create_response(simulator)
    events = await stream_events(simulator, created.json()["id"])

    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    types = [e["type"] for e in events]
    assert types[:4] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
    ]  # fmt: skip
    assert types[-1] == "response.completed"
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == events[-1]["response"]["output"][0]["content"][0]["text"]


async def test_a_stream_resumes_after_a_sequence_number(simulator):
    _, created = await create_response(simulator)
    response_id = created.json()["id"]
    everything = await stream_events(simulator, response_id)

    rest = await stream_events(simulator, response_id, starting_after=5)

    assert rest == everything[6:]


async def test_a_broken_stream_stops_half_way_and_can_be_resumed(simulator):
    _, created = await create_response(simulator, headers={"X-Simulator-Fault": "break-stream"})
    response_id = created.json()["id"]

    first = await stream_events(simulator, response_id)
    assert first[-1]["type"] == "response.output_text.delta"
    rest = await stream_events(simulator, response_id, starting_after=first[-1]["sequence_number"])

    assert rest[-1]["type"] == "response.completed"
    text = "".join(e.get("delta", "") for e in first + rest)
    assert text == rest[-1]["response"]["output"][0]["content"][0]["text"]


async def test_streaming_can_be_refused_so_clients_poll(simulator):
    _, created = await create_response(simulator, headers={"X-Simulator-Fault": "no-stream"})
    refused = await simulator.get(f"/responses/{created.json()['id']}", params={"stream": "true"})
    assert refused.status_code == 400


async def test_a_cancel_mid_answer_keeps_what_was_written(simulator):
    _, created = await create_response(
        simulator, headers={"X-Simulator-Token-Rate": "20"}, text="Tell me a long story"
    )
    response_id = created.json()["id"]
    await asyncio.sleep(0.45)  # 0.2 s latency, then about five tokens

    cancelled = (await simulator.post(f"/responses/{response_id}/cancel")).json()

    assert cancelled["status"] == "cancelled"
    partial = cancelled["output"][0]
    assert partial["status"] == "incomplete"
    text = partial["content"][0]["text"]
    assert text.startswith("_Simulated")
    assert not text.endswith("conversation.")  # cut off before the end


async def test_a_completed_response_says_when_it_completed(simulator):
    before = time.time()
    _, created = await create_response(simulator)
    assert created.json()["completed_at"] is None
    await asyncio.sleep(0.3)

    done = (await simulator.get(f"/responses/{created.json()['id']}")).json()

    # 0.2 s to the first token, then the tokens at 1000 a second.
    assert before + 0.2 < done["completed_at"] < before + 0.3


async def test_its_stats_tell_each_responses_polls_and_completion(simulator):
    _, created = await create_response(simulator)
    response_id = created.json()["id"]
    await simulator.get(f"/responses/{response_id}")
    await asyncio.sleep(0.3)
    done = (await simulator.get(f"/responses/{response_id}")).json()

    stats = (await simulator.get("http://sim/simulator/stats")).json()

    assert stats["conversations"] == 1
    [stat] = stats["responses"]
    assert {k: v for k, v in stat.items() if not k.startswith("token_")} == {
        "id": response_id, "status": "completed", "completed_at": done["completed_at"],
        "polls": 2, "streams": 0,
    }  # fmt: skip


async def test_its_stats_tell_when_each_token_of_the_answer_was_written(simulator):
    before = time.time()
    _, created = await create_response(simulator)
    await asyncio.sleep(0.3)
    done = (await simulator.get(f"/responses/{created.json()['id']}")).json()

    [stat] = (await simulator.get("http://sim/simulator/stats")).json()["responses"]

    reply = done["output"][0]["content"][0]["text"]
    assert_tokens_add_up_to(stat, reply, first_after=before + 0.2, last_by=done["completed_at"])


async def test_a_cancelled_response_tells_only_the_tokens_it_wrote(simulator):
    _, created = await create_response(
        simulator, headers={"X-Simulator-Token-Rate": "20"}, text="Tell me a long story"
    )
    await asyncio.sleep(0.35)  # 0.2 s latency, then about three tokens
    cancelled = (await simulator.post(f"/responses/{created.json()['id']}/cancel")).json()
    await asyncio.sleep(0.1)  # it would have written two more by now

    [stat] = (await simulator.get("http://sim/simulator/stats")).json()["responses"]

    partial = cancelled["output"][0]["content"][0]["text"]
    assert_tokens_add_up_to(stat, partial, first_after=0, last_by=time.time())


def assert_tokens_add_up_to(stat: dict, text: str, first_after: float, last_by: float) -> None:
    """Each token adds text until the whole of `text`, written one after another in time."""
    ends, times = stat["token_ends"], stat["token_times"]
    assert len(ends) == len(times) > 1
    assert ends == sorted(set(ends)) and ends[-1] == len(text)
    assert times == sorted(times)
    assert first_after <= times[0] and times[-1] <= last_by


def test_jitter_spreads_the_latency_of_answers():
    settings = Settings(latency=1.0, token_rate=100, jitter=0.5)
    request = Request({"type": "http", "headers": []})

    latencies = [settings.latency_of(request) for _ in range(50)]

    assert all(1.0 <= latency <= 1.5 for latency in latencies)
    assert len(set(latencies)) > 1


async def test_later_turns_report_the_instructions_as_cached_input(simulator):
    conversation, created = await create_response(simulator, text="First")
    await asyncio.sleep(0.35)
    first = (await simulator.get(f"/responses/{created.json()['id']}")).json()
    second = await simulator.post(
        "/responses",
        json={"model": "simulator", "conversation": conversation["id"], "input": "Second",
              "background": True, "instructions": "Be brief."},
    )  # fmt: skip
    await asyncio.sleep(0.35)
    done = (await simulator.get(f"/responses/{second.json()['id']}")).json()
    assert first["usage"]["input_tokens_details"]["cached_tokens"] == 0
    cached = done["usage"]["input_tokens_details"]["cached_tokens"]
    assert 0 < cached < done["usage"]["input_tokens"]
