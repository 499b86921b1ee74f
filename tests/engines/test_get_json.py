"""A poll's GET and a create's POST go on the session of the transport the SDK sends on
(client.get_json, client.post_json): what they send, read and raise is what the SDK's own
call would, on the wire and through respx."""

import asyncio
import gzip
import json
import re

import httpx
import openai
import pytest

from assistants_app.engines.client import (
    BAD_ANSWER,
    get_client,
    get_json,
    post_json,
    provider_errors,
)
from assistants_app.exceptions import ProviderError

from ..conftest import PROVIDER_URL
from .test_provider_errors import CUT_JSON, NGINX, closed_port, openai_error, tcp_server

PROVIDER = {"base_url": PROVIDER_URL, "api_key": "sk-test"}


async def failure(call) -> ProviderError:
    with pytest.raises(ProviderError) as raised, provider_errors():
        await call()
    error = raised.value
    return error.code, error.message, error.retryable, error.retry_after


REFUSALS = [
    httpx.Response(401, json=openai_error("Incorrect API key provided", "invalid_api_key")),
    httpx.Response(404, json=openai_error("No response with id 'resp_1'", None)),
    httpx.Response(404, text="404 page not found"),
    httpx.Response(405, text="Method Not Allowed"),
    httpx.Response(409, json=openai_error("Conversation busy", "conversation_locked")),
    httpx.Response(
        429, json=openai_error("Slow down", "rate_limit_exceeded"), headers={"retry-after": "7"}
    ),  # fmt: skip
    httpx.Response(500, json={"error": {"code": 500, "message": "slot unavailable"}}),
    httpx.Response(502, text="<html>Bad gateway</html>"),
]


@pytest.mark.parametrize("answer", REFUSALS)
async def test_every_refusal_reads_as_the_sdks_own_call_would(provider_mock, answer):
    provider_mock.get("/responses/resp_1").mock(return_value=answer)

    ours = await failure(lambda: get_json(PROVIDER, "/responses/resp_1"))
    sdks = await failure(lambda: get_client(PROVIDER).responses.retrieve("resp_1"))

    assert ours == sdks


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text=NGINX),
        httpx.Response(200, text=CUT_JSON, headers={"content-type": "application/json"}),
    ],
)
async def test_an_answer_that_is_not_json_is_not_the_api(provider_mock, answer):
    provider_mock.get("/responses/resp_1").mock(return_value=answer)
    provider_mock.post("/responses").mock(return_value=answer)

    poll, create = (lambda: get_json(PROVIDER, "/responses/resp_1"),
                    lambda: post_json(PROVIDER, "/responses", CREATE))  # fmt: skip
    for send in (poll, create):
        code, message, retryable, _ = await failure(send)

        assert (code, message, retryable) == ("bad_answer", BAD_ANSWER, False)


CREATE = {"model": "gpt-test", "input": "Grüße 👋", "background": True, "store": True}


@pytest.mark.parametrize("answer", REFUSALS)
async def test_every_refusal_of_a_create_reads_as_the_sdks_own_call_would(provider_mock, answer):
    provider_mock.post("/responses").mock(return_value=answer)

    ours = await failure(lambda: post_json(PROVIDER, "/responses", CREATE))
    sdks = await failure(lambda: get_client(PROVIDER).responses.create(**CREATE))

    assert ours == sdks


async def test_a_create_through_respx_sends_what_the_sdks_own_call_sends(provider_mock):
    created = {"id": "resp_1", "object": "response", "status": "queued", "output": []}
    route = provider_mock.post("/responses").respond(json=created, headers={"x-seen": "1"})

    answer, headers = await post_json(PROVIDER, "/responses", CREATE)
    await get_client(PROVIDER).responses.create(**CREATE)

    ours, sdks = (call.request for call in route.calls)
    assert (answer, headers["x-seen"]) == (created, "1")
    assert json.loads(ours.content) == json.loads(sdks.content) == CREATE
    assert ours.headers["content-type"] == sdks.headers["content-type"] == "application/json"


async def test_it_sends_the_sdks_headers_and_reads_a_compressed_answer():
    seen = {}
    body = gzip.compress(json.dumps({"id": "resp_1", "status": "in_progress"}).encode())

    raw = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        b"openai-poll-after-ms: 300\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )

    async with tcp_server(answering(raw, seen)) as port:
        provider = {"base_url": f"http://127.0.0.1:{port}/v1", "api_key": "sk-secret"}
        answer, headers = await get_json(provider, "/responses/resp_1")

    assert answer == {"id": "resp_1", "status": "in_progress"}
    assert headers["openai-poll-after-ms"] == "300"
    request = seen["request"].lower()
    assert request.startswith("get /v1/responses/resp_1 http/1.1")
    assert "authorization: bearer sk-secret" in request
    assert f"user-agent: asyncopenai/python {openai.__version__}" in request


async def test_a_refused_connection_and_a_silent_server_fail_as_the_sdks_would():
    refused = {"base_url": f"http://127.0.0.1:{closed_port()}/v1", "api_key": "k"}
    assert (await failure(lambda: get_json(refused, "/responses/r")))[0] == "connection_refused"

    async def silent(reader, writer):
        await asyncio.sleep(10)

    async with tcp_server(silent) as port:
        slow = {"base_url": f"http://127.0.0.1:{port}/v1", "api_key": "k", "timeout": 0.3}
        ours = await failure(lambda: get_json(slow, "/responses/r"))
        sdks = await failure(lambda: get_client(slow).responses.retrieve("r"))

    assert ours == sdks == ("timeout", "The provider did not answer in time.", True, None)


def answering(raw: bytes, seen: dict | None = None):
    """A server that reads a request (its head into `seen["request"]`, its body into
    `seen["body"]`) and writes `raw` back."""

    async def serve(reader, writer):
        request = (await reader.readuntil(b"\r\n\r\n")).decode()
        length = re.search(r"(?im)^content-length: *(\d+)", request)
        body = await reader.readexactly(int(length.group(1))) if length else b""
        if seen is not None:
            seen["request"], seen["body"] = request, body
        writer.write(raw)
        await writer.drain()
        writer.close()

    return serve


def on_the_wire(answer: httpx.Response, gzipped: bool = False) -> bytes:
    """`answer` as a server writes it, its body compressed if `gzipped`."""
    body = gzip.compress(answer.content) if gzipped else answer.content
    head = [f"HTTP/1.1 {answer.status_code} {answer.reason_phrase}"]
    head += [f"{name}: {value}" for name, value in answer.headers.items()
             if name not in ("content-length", "content-encoding")]  # fmt: skip
    head += [f"Content-Length: {len(body)}", "Connection: close"]
    if gzipped:
        head.append("Content-Encoding: gzip")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("answer", REFUSALS)
async def test_every_refusal_on_the_wire_reads_as_the_sdks_own_call_would(answer, gzipped):
    # Sent to a real server, a poll goes on the SDK's aiohttp session (not through respx).
    async with tcp_server(answering(on_the_wire(answer, gzipped))) as port:
        provider = {"base_url": f"http://127.0.0.1:{port}/v1", "api_key": "sk-test"}
        ours = await failure(lambda: get_json(provider, "/responses/resp_1"))
        sdks = await failure(lambda: get_client(provider).responses.retrieve("resp_1"))

    assert ours == sdks


@pytest.mark.parametrize("answer", REFUSALS)
async def test_every_refusal_of_a_create_on_the_wire_reads_as_the_sdks_own_call_would(answer):
    async with tcp_server(answering(on_the_wire(answer))) as port:
        provider = {"base_url": f"http://127.0.0.1:{port}/v1", "api_key": "sk-test"}
        ours = await failure(lambda: post_json(provider, "/responses", CREATE))
        sdks = await failure(lambda: get_client(provider).responses.create(**CREATE))

    assert ours == sdks


async def test_a_create_on_the_wire_sends_the_body_and_headers_the_sdk_sends():
    created = httpx.Response(200, json={"id": "resp_1", "status": "queued"})
    sends = [
        lambda provider: post_json(provider, "/responses", CREATE),
        lambda provider: get_client(provider).responses.create(**CREATE),
    ]
    seen = [{}, {}]
    for each, send in zip(seen, sends, strict=True):
        async with tcp_server(answering(on_the_wire(created), each)) as port:
            await send({"base_url": f"http://127.0.0.1:{port}/v1", "api_key": "sk-secret"})

    ours, sdks = ({line.split(":")[0].lower() for line in s["request"].splitlines()[1:]}
                  for s in seen)  # fmt: skip
    assert seen[0]["request"].lower().startswith("post /v1/responses http/1.1")
    assert json.loads(seen[0]["body"]) == json.loads(seen[1]["body"]) == CREATE
    # The SDK's headers (its key, user agent, platform...) all go with ours, but those it
    # writes per request (its retry count and read timeout) and httpx's "Connection:
    # keep-alive", which HTTP/1.1 means without it.
    assert {"authorization", "user-agent", "content-type", "x-stainless-lang"} <= ours
    assert sdks - ours == {"x-stainless-read-timeout", "x-stainless-retry-count", "connection"}


@pytest.mark.parametrize("send", [
    lambda provider: get_json(provider, "/responses/resp_1"),
    lambda provider: post_json(provider, "/responses", CREATE),
], ids=["poll", "create"])  # fmt: skip
async def test_a_poll_or_create_on_the_wire_goes_on_the_aiohttp_session_not_through_httpx(
    monkeypatch, send
):
    # What makes a poll cost 0.3 ms less (BENCHMARKS.md, fourteenth step) and a create 0.8
    # (fifteenth): httpx's request, the transport's conversion and httpx's response, and the
    # SDK's request options and models, are not on their way.
    from httpx_aiohttp.transport import AiohttpTransport

    async def not_here(self, request):
        raise AssertionError("a request went through httpx's transport")

    monkeypatch.setattr(AiohttpTransport, "handle_async_request", not_here)

    answer = httpx.Response(200, json={"id": "resp_1", "status": "queued"})
    async with tcp_server(answering(on_the_wire(answer))) as port:
        provider = {"base_url": f"http://127.0.0.1:{port}/v1", "api_key": "sk-test"}
        answer, _ = await send(provider)

    assert answer == {"id": "resp_1", "status": "queued"}
