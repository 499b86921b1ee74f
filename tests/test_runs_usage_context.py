"""Usage when the provider reports none, and threads longer than the model's context
(Chat Completions through the run driver, the provider mocked strictly at the wire)."""

import math

import httpx
import pytest
from asgiref.sync import sync_to_async

from assistants_app import limits, runs, services
from assistants_app.models import Assistant, Message, Run, RunStatus, Thread

from .chat_stream import answer, sent, streamed

pytestmark = pytest.mark.django_db(transaction=True)

LONG = "word " * 120  # 600 characters: 204 tokens by the generous estimate used for fitting


@pytest.fixture
async def thread(alice_chat_thread):
    return await Thread.objects.select_related("assistant").aget(pk=alice_chat_thread.pk)


async def ask(alice, thread, text: str) -> Run:
    _, run = await services.submit_message(alice, thread, text)
    await runs.drive(run.pk)
    return await Run.objects.aget(pk=run.pk)


async def test_a_server_that_reports_no_usage_has_it_estimated_and_counted_in_the_budget(
    alice, thread, provider_mock
):
    provider_mock.post("/chat/completions").mock(
        return_value=streamed(answer("Four", ".", usage=None))  # llama.cpp ignores include_usage
    )

    run = await ask(alice, thread, "What is 2+2?")

    assert run.status == RunStatus.COMPLETED
    assert run.usage_estimated
    prompt = "Answer briefly.\nWhat is 2+2?"
    assert (run.input_tokens, run.output_tokens) == (math.ceil(len(prompt) / 4), 2)  # "Four."
    assert run.total_tokens == run.input_tokens + run.output_tokens
    assert await sync_to_async(limits.tokens_used_today)(alice) == run.total_tokens


async def test_the_providers_own_tokenizer_counts_them_where_it_has_one(
    alice, thread, provider_mock, known_capabilities
):
    known_capabilities.tokenizer = "https://provider.test/tokenize"
    provider_mock.post("/chat/completions").mock(return_value=streamed(answer("Hi", usage=None)))
    tokenize = provider_mock.post("https://provider.test/tokenize").mock(
        side_effect=[
            httpx.Response(200, json={"tokens": [1] * 9}),
            httpx.Response(200, json={"count": 2}),
        ]  # fmt: skip
    )

    run = await ask(alice, thread, "Hello")

    assert (run.input_tokens, run.output_tokens, run.usage_estimated) == (9, 2, True)
    assert sent(tokenize, 1)["content"] == "Hi"


async def test_reported_usage_is_kept_as_reported(alice, thread, provider_mock):
    provider_mock.post("/chat/completions").mock(return_value=streamed(answer("Hi", usage=(7, 1))))

    run = await ask(alice, thread, "Hello")

    assert (run.total_tokens, run.usage_estimated) == (8, False)


async def test_the_history_is_trimmed_to_the_models_context_and_the_page_told(
    alice, thread, provider_mock
):
    await Assistant.objects.filter(pk=thread.assistant_id).aupdate(context_tokens=800)
    thread.assistant.context_tokens = 800
    for text in ("First " + LONG, "Answer one", "Second " + LONG, "Answer two"):
        role = "assistant" if text.startswith("Answer") else "user"
        await Message.objects.acreate(thread=thread, role=role, text=text)
    route = provider_mock.post("/chat/completions").mock(return_value=streamed(answer("Ok")))

    run = await ask(alice, thread, "Third " + LONG)

    sent_texts = [message["content"] for message in sent(route)["messages"]]
    assert sent_texts[0] == "Answer briefly."
    assert [text.split()[0] for text in sent_texts[1:]] == ["Second", "Answer", "Third"]
    assert run.status == RunStatus.COMPLETED
    assert run.note == (
        "Older messages were left out: the conversation is longer than the model can read."
    )
    assert run.as_event()["note"] == run.note


async def test_an_overflow_the_server_reports_is_retried_once_with_half_the_history(
    alice, thread, provider_mock
):
    for text in ("First", "Answer one", "Second", "Answer two"):
        role = "assistant" if text.startswith("Answer") else "user"
        await Message.objects.acreate(thread=thread, role=role, text=text)
    too_long = {
        "error": {
            "code": 400,
            "type": "exceed_context_size_error",
            "message": "the request exceeds the available context size, try increasing it",
        }
    }  # fmt: skip  (llama-server's words)
    route = provider_mock.post("/chat/completions").mock(
        side_effect=[httpx.Response(400, json=too_long), streamed(answer("Ok"))]
    )

    run = await ask(alice, thread, "Third")

    assert run.status == RunStatus.COMPLETED
    assert len(sent(route, 0)["messages"]) == 6  # instructions and five messages
    assert [m["content"] for m in sent(route, 1)["messages"]] == ["Answer briefly.", "Third"]
    assert run.note.startswith("Older messages were left out")


async def test_a_prompt_that_alone_does_not_fit_fails_with_that_reason(
    alice, thread, provider_mock
):
    too_long = {"error": {"message": "Requested tokens (9000) exceed context window of 2048",
                          "type": "invalid_request_error", "code": None}}  # fmt: skip
    route = provider_mock.post("/chat/completions").respond(400, json=too_long)

    run = await ask(alice, thread, LONG)

    assert route.call_count == 1  # nothing shorter to try
    assert (run.status, run.error_code) == (RunStatus.FAILED, "context_overflow")
    assert run.error_message.startswith("The conversation is longer than the model's context")
