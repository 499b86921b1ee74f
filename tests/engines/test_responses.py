"""The Responses engine through the run driver, with the provider mocked at the wire."""

import json

import httpx
import pytest
import respx

from assistants_app import runs
from assistants_app.engines.base import RunUpdate
from assistants_app.models import Message, Run, RunStatus

from ..conftest import PROVIDER_URL
from ..provider_payloads import CONVERSATION_ID, RESPONSE_ID, api_error, conversation, response

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def provider():
    with respx.mock(using="httpx", base_url=PROVIDER_URL, assert_all_called=True) as mock:
        yield mock


async def test_it_starts_a_background_response_in_a_new_conversation(provider, alice_thread):
    create_conversation = provider.post("/conversations").respond(json=conversation())
    create_response = provider.post("/responses").respond(json=response("queued"))
    prompt = await Message.objects.acreate(thread=alice_thread, role="user", text="Hello")
    run = await Run.objects.acreate(thread=alice_thread, prompt=prompt)
    run.thread = alice_thread

    await runs.start(run, prompt)

    sent = json.loads(create_response.calls.last.request.content)
    assert sent == {
        "model": "gpt-test",
        "conversation": CONVERSATION_ID,
        "input": "Hello",
        "background": True,
        "store": True,
        "instructions": "Answer briefly.",
    }
    assert create_conversation.called
    await alice_thread.arefresh_from_db()
    await run.arefresh_from_db()
    assert alice_thread.remote_id == CONVERSATION_ID
    assert run.remote_id == RESPONSE_ID
    assert run.status == RunStatus.QUEUED
    assert run.started_at is not None


async def test_it_polls_queued_then_in_progress_then_completed(provider, started_run):
    retrieve = provider.get(f"/responses/{RESPONSE_ID}").mock(
        side_effect=[
            httpx.Response(200, json=response("queued")),
            httpx.Response(200, json=response("in_progress")),
            httpx.Response(200, json=response("completed", text="Hello **there**")),
        ]
    )

    await runs.drive(started_run.pk)

    await started_run.arefresh_from_db()
    assert retrieve.call_count == 3
    assert started_run.status == RunStatus.COMPLETED
    assert started_run.finished_at is not None
    assert (started_run.input_tokens, started_run.output_tokens) == (12, 5)
    assert started_run.total_tokens == 17
    answers = [m async for m in Message.objects.filter(role="assistant")]
    assert [(m.text, m.remote_id, m.run_id) for m in answers] == [
        ("Hello **there**", "msg_out1", started_run.pk)
    ]


async def test_it_marks_the_run_failed_with_the_providers_error(provider, started_run):
    provider.get(f"/responses/{RESPONSE_ID}").respond(
        json=response("failed", error={"code": "server_error", "message": "The model crashed."})
    )

    await runs.drive(started_run.pk)

    await started_run.arefresh_from_db()
    assert started_run.status == RunStatus.FAILED
    assert started_run.error_code == "server_error"
    assert started_run.error_message == "The model crashed."


async def test_it_waits_out_a_429_and_then_succeeds(provider, started_run):
    retrieve = provider.get(f"/responses/{RESPONSE_ID}").mock(
        side_effect=[
            httpx.Response(
                429,
                json=api_error("Rate limit reached", "rate_limit_exceeded"),
                headers={"retry-after-ms": "10"},
            ),
            httpx.Response(200, json=response("completed", text="Done")),
        ]
    )

    await runs.drive(started_run.pk)

    await started_run.arefresh_from_db()
    assert retrieve.call_count == 2
    assert started_run.status == RunStatus.COMPLETED
    assert await Message.objects.filter(role="assistant", text="Done").acount() == 1


async def test_it_fails_a_run_the_provider_refuses_for_good(provider, started_run):
    provider.get(f"/responses/{RESPONSE_ID}").respond(
        404, json=api_error("No response found with id 'resp_abc123'.", "not_found")
    )

    await runs.drive(started_run.pk)

    await started_run.arefresh_from_db()
    assert started_run.status == RunStatus.FAILED
    assert started_run.error_code == "not_found"
    assert "No response found" in started_run.error_message


async def test_driving_a_finished_run_again_stores_nothing_twice(provider, started_run):
    provider.get(f"/responses/{RESPONSE_ID}").respond(json=response("completed", text="Once"))
    await runs.drive(started_run.pk)
    await Run.objects.filter(pk=started_run.pk).aupdate(status=RunStatus.IN_PROGRESS)

    await runs.drive(started_run.pk)

    assert await Message.objects.filter(role="assistant").acount() == 1


async def test_an_incomplete_answer_is_kept_with_its_reason(provider, started_run):
    provider.get(f"/responses/{RESPONSE_ID}").respond(
        json=response(
            "incomplete",
            text="Half an ans",
            incomplete_details={"reason": "max_output_tokens"},
        )
    )

    await runs.drive(started_run.pk)

    await started_run.arefresh_from_db()
    assert started_run.status == RunStatus.INCOMPLETE
    assert "max_output_tokens" in started_run.error_message
    assert await Message.objects.filter(text="Half an ans").aexists()


async def test_a_provider_error_at_start_fails_the_run_and_keeps_the_message(
    provider, alice_thread
):
    provider.post("/conversations").respond(
        500, json=api_error("The server had an error.", "server_error", "server_error")
    )
    prompt = await Message.objects.acreate(thread=alice_thread, role="user", text="Hello")
    run = await Run.objects.acreate(thread=alice_thread, prompt=prompt)
    run.thread = alice_thread

    await runs.start(run, prompt)

    await run.arefresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error_code == "server_error"
    assert run.error_message == (
        "The provider had an internal error (HTTP 500): The server had an error."
    )
    assert await Message.objects.filter(pk=prompt.pk).aexists()


WRITING = {"type": "message", "id": "msg_out1", "role": "assistant", "status": "in_progress",
           "content": [{"type": "output_text", "text": "Hel", "annotations": []}]}  # fmt: skip
DONE = {**WRITING, "status": "completed", "content": [{**WRITING["content"][0], "text": "Hi"}]}


@pytest.mark.parametrize(
    "payload, under_way",
    [
        (response("queued"), True),
        (response("in_progress"), True),
        (response("in_progress", output=[WRITING]), True),  # nothing final in it yet
        (response("in_progress", output=[DONE, WRITING]), False),  # a message to store
        (response("in_progress", usage={"input_tokens": 3, "output_tokens": 1,
                                        "total_tokens": 4}), False),  # fmt: skip
        (response("completed", text="Hi"), False),
        (response("failed", error={"code": "server_error", "message": "Crashed."}), False),
    ],
)
def test_a_poll_under_way_reads_as_the_whole_response_would(payload, under_way):
    from openai.types.responses import Response

    from assistants_app.engines.responses import _under_way, to_run_update

    headers = {"openai-poll-after-ms": "700"}
    status = _under_way(payload)
    assert (status is not None) == under_way
    if under_way:  # what the poll answers without a model, the model would have said too
        assert to_run_update(Response.model_validate(payload), headers) == RunUpdate(
            status=status, poll_after=0.7
        )


async def test_a_poll_under_way_builds_no_model_of_the_response(provider, started_run, monkeypatch):
    from openai.types.responses import Response

    parsed = []
    construct = Response.model_construct
    monkeypatch.setattr(
        Response, "model_construct", lambda **kw: parsed.append(1) or construct(**kw)
    )
    provider.get(f"/responses/{RESPONSE_ID}").mock(
        side_effect=[
            httpx.Response(200, json=response("queued")),
            httpx.Response(200, json=response("in_progress", output=[WRITING])),
            httpx.Response(200, json=response("completed", text="Hi")),
        ]
    )

    await runs.drive(started_run.pk)

    await started_run.arefresh_from_db()
    assert started_run.status == RunStatus.COMPLETED
    assert len(parsed) == 1  # only the finished answer was read into the SDK's model


@pytest.mark.parametrize("nameless", ["conversation", "response"])
async def test_a_conversation_or_response_created_without_an_id_fails_the_run_in_words(
    provider, alice_thread, nameless
):
    answers = {"conversation": conversation(), "response": response("queued")}
    del answers[nameless]["id"]
    provider.post("/conversations").respond(json=answers["conversation"])
    if nameless == "response":
        provider.post("/responses").respond(json=answers["response"])
    prompt = await Message.objects.acreate(thread=alice_thread, role="user", text="Hello")
    run = await Run.objects.acreate(thread=alice_thread, prompt=prompt)
    run.thread = alice_thread

    await runs.start(run, prompt)

    await run.arefresh_from_db()
    assert (run.status, run.error_code) == (RunStatus.FAILED, "bad_answer")
    assert "not in the API's format" in run.error_message
    assert run.remote_id == ""
