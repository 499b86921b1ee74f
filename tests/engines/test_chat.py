"""The Chat Completions engine against a mocked OpenAI-compatible server (respx, strict)."""

import httpx
import pytest

from assistants_app.engines.base import RemoteMessage, RunUpdate, Turn, Usage
from assistants_app.engines.chat import ChatEngine
from assistants_app.exceptions import ProviderError
from assistants_app.models import Assistant, EngineKind, Message, Run, RunStatus, Thread

from ..chat_stream import DONE, answer, chunk, sent, streamed

HISTORY = [Turn("user", "Hi"), Turn("assistant", "Hello!"), Turn("user", "What is 2+2?")]


def chat_run(**assistant_fields) -> Run:
    """A run as the driver hands it to the engine (the engine never touches the database)."""
    fields = {"instructions": "Answer briefly.", "model": "llama-test", **assistant_fields}
    assistant = Assistant(name="Chatter", engine=EngineKind.CHAT, provider="test", **fields)
    return Run(pk=7, remote_id="chat-7", thread=Thread(pk=3, assistant=assistant))


@pytest.fixture
def engine(test_provider):
    return ChatEngine(test_provider)


async def test_it_starts_a_run_without_calling_the_provider(engine, provider_mock):
    run = Run(pk=12, thread=Thread(pk=3))

    update = await engine.start_run(run, Message(text="Hi"))

    assert update.status == RunStatus.QUEUED
    assert run.remote_id == "chat-12"


async def test_it_streams_an_answer_and_records_usage(engine, provider_mock):
    route = provider_mock.post("/chat/completions").mock(
        return_value=streamed(answer("Four", ".", usage=(20, 2)))
    )

    update = await engine.generate(chat_run(), HISTORY)

    assert update == RunUpdate(
        status=RunStatus.COMPLETED,
        messages=[RemoteMessage("chat-7", "Four.")],
        usage=Usage(input_tokens=20, output_tokens=2, total_tokens=22),
    )
    body = sent(route)
    assert body["model"] == "llama-test"
    assert body["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "What is 2+2?"},
    ]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert "temperature" not in body
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-test"


async def test_a_server_that_refuses_stream_options_is_asked_again_without_them(
    engine, provider_mock
):
    refusal = {"error": {"message": "Unrecognized request argument supplied: stream_options",
                         "type": "invalid_request_error", "code": None}}  # fmt: skip
    route = provider_mock.post("/chat/completions").mock(
        side_effect=[httpx.Response(400, json=refusal), streamed(answer("Four", "."))]
    )

    update = await engine.generate(chat_run(), HISTORY)

    assert (update.status, update.messages) == (
        RunStatus.COMPLETED, [RemoteMessage("chat-7", "Four.")]
    )  # fmt: skip
    assert "stream_options" in sent(route, 0) and "stream_options" not in sent(route, 1)
    assert sent(route, 1)["stream"] is True


async def test_it_sends_no_system_message_without_instructions_and_the_temperature(
    engine, provider_mock
):
    route = provider_mock.post("/chat/completions").mock(return_value=streamed(answer("Hi")))

    await engine.generate(chat_run(instructions="", temperature=0.2), HISTORY[:1])

    assert sent(route)["messages"] == [{"role": "user", "content": "Hi"}]
    assert sent(route)["temperature"] == 0.2


async def test_it_uses_the_providers_default_model_when_the_assistant_names_none(
    test_provider, provider_mock
):
    route = provider_mock.post("/chat/completions").mock(return_value=streamed(answer("Hi")))
    engine = ChatEngine({**test_provider, "default_model": "qwen3:8b"})

    await engine.generate(chat_run(model=""), HISTORY)

    assert sent(route)["model"] == "qwen3:8b"


async def test_it_refuses_to_guess_a_model(engine, provider_mock):
    with pytest.raises(ProviderError) as raised:
        await engine.generate(chat_run(model=""), HISTORY)

    assert raised.value.code == "no_model"


async def test_it_accepts_a_server_that_reports_no_usage(engine, provider_mock):
    provider_mock.post("/chat/completions").mock(return_value=streamed(answer("Hi", usage=None)))

    update = await engine.generate(chat_run(), HISTORY)

    assert update.status == RunStatus.COMPLETED
    assert update.usage is None


async def test_it_keeps_a_cut_short_answer_as_incomplete(engine, provider_mock):
    events = [chunk("", role="assistant"), chunk("Once upon"), chunk(finish_reason="length"), DONE]
    provider_mock.post("/chat/completions").mock(return_value=streamed(events))

    update = await engine.generate(chat_run(), HISTORY)

    assert update.status == RunStatus.INCOMPLETE
    assert update.messages == [RemoteMessage("chat-7", "Once upon")]
    assert "length limit" in update.error_message


async def test_it_fails_an_empty_answer(engine, provider_mock):
    provider_mock.post("/chat/completions").mock(return_value=streamed(answer()))

    update = await engine.generate(chat_run(), HISTORY)

    assert update.status == RunStatus.FAILED
    assert update.error_code == "empty_answer"
    assert update.messages == []


async def broken_after(*events: bytes):
    for event in events:
        yield event
    raise httpx.RemoteProtocolError("peer closed connection without sending complete message")


async def test_a_stream_that_breaks_midway_fails_and_keeps_the_partial_answer(
    engine, provider_mock
):
    events = broken_after(chunk("", role="assistant"), chunk("Once"), chunk(" upon"))
    provider_mock.post("/chat/completions").mock(return_value=streamed(events))

    update = await engine.generate(chat_run(), HISTORY)

    assert update.status == RunStatus.FAILED
    assert update.error_code == "stream_broken"
    assert update.error_message == (
        "The connection to the provider broke in the middle of its answer."
    )
    assert update.messages == [RemoteMessage("chat-7", "Once upon")]


async def test_a_stream_that_ends_unfinished_fails_and_keeps_the_partial_answer(
    engine, provider_mock
):
    events = [chunk("", role="assistant"), chunk("Once"), chunk(" upon")]
    provider_mock.post("/chat/completions").mock(return_value=streamed(events))

    update = await engine.generate(chat_run(), HISTORY)

    assert update.status == RunStatus.FAILED
    assert update.error_code == "stream_broken"
    assert update.messages == [RemoteMessage("chat-7", "Once upon")]


async def test_an_error_event_in_the_stream_fails_the_run_with_its_message(engine, provider_mock):
    error = b'data: {"error": {"message": "CUDA out of memory", "type": "server_error"}}\n\n'
    events = [chunk("", role="assistant"), chunk("Once"), error]
    provider_mock.post("/chat/completions").mock(return_value=streamed(events))

    update = await engine.generate(chat_run(), HISTORY)

    assert update.status == RunStatus.FAILED
    assert update.error_code == "stream_error"
    assert "CUDA out of memory" in update.error_message
    assert update.messages == [RemoteMessage("chat-7", "Once")]


@pytest.mark.parametrize(
    ("status", "body", "code", "message"),
    [
        (
            404,
            {"error": {"message": 'model "llama-test" not found, try pulling it first',
                       "type": "api_error", "param": None, "code": None}},
            "model_not_found",
            'The provider does not have this model (HTTP 404): '
            'model "llama-test" not found, try pulling it first',
        ),
        (
            500,
            {"error": {"code": 500, "message": "Loading model", "type": "unavailable_error"}},
            "server_error",
            "The provider had an internal error (HTTP 500): Loading model.",
        ),
        (502, {}, "server_error", "The provider had an internal error (HTTP 502)."),
        (
            401,
            {"error": {"message": "Invalid API Key", "type": "invalid_request_error",
                       "code": "invalid_api_key"}},
            "unauthorized",
            "The provider refused the API key (HTTP 401): Invalid API Key.",
        ),
        (403, {}, "forbidden", "The provider's key may not do this (HTTP 403)."),
        (
            404,
            {"detail": "Not Found"},  # FastAPI's (LiteLLM, vLLM) missing route
            "endpoint_not_found",
            "This provider has no /v1/chat/completions (HTTP 404): it does not offer this API.",
        ),
        (
            400,
            {"error": {"message": "This model's maximum context length is 2048 tokens. However, "
                       "you requested 2065 tokens.", "type": "BadRequestError", "code": 400}},
            "context_overflow",
            "The conversation is longer than the model's context window. (This model's maximum "
            "context length is 2048 tokens. However, you requested 2065 tokens.)",
        ),
    ],
)  # fmt: skip
async def test_an_error_status_fails_the_run_with_the_providers_reason(
    engine, provider_mock, status, body, code, message
):
    provider_mock.post("/chat/completions").mock(return_value=httpx.Response(status, json=body))

    update = await engine.generate(chat_run(), HISTORY)

    assert update == RunUpdate(status=RunStatus.FAILED, error_code=code, error_message=message)


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), "connection_error"),
        (httpx.ReadTimeout("timed out"), "timeout"),
    ],
)
async def test_an_unreachable_server_fails_the_run_at_once(engine, provider_mock, failure, code):
    route = provider_mock.post("/chat/completions").mock(side_effect=failure)

    update = await engine.generate(chat_run(), HISTORY)

    assert update.status == RunStatus.FAILED
    assert update.error_code == code
    assert route.call_count == 1  # no retry behind the user's back


async def test_a_rate_limit_before_any_output_is_left_to_the_driver(engine, provider_mock):
    body = {"error": {"message": "Slow down", "type": "rate_limit", "code": "rate_limited"}}
    provider_mock.post("/chat/completions").mock(
        return_value=httpx.Response(429, json=body, headers={"retry-after": "2"})
    )

    with pytest.raises(ProviderError) as raised:
        await engine.generate(chat_run(), HISTORY)

    assert raised.value.retryable
    assert raised.value.retry_after == 2.0


async def test_cancel_asks_no_provider_and_leaves_the_stop_to_the_generation(engine, provider_mock):
    # provider_mock is strict: a request to the provider would fail this test. The process
    # that generates the run stops at its next look and keeps what was said (test_runs_chat).
    update = await engine.cancel(chat_run())

    assert update == RunUpdate(status=RunStatus.CANCELLING)


def test_a_chat_run_is_followed_by_its_stream_only(engine):
    assert engine.streams
    assert not engine.can_poll(chat_run())
