"""The one place that builds `openai` clients and turns SDK errors into ProviderError.

The SDK's own retries are off: the run driver retries, with the same policy for every engine.

Requests go through aiohttp, the SDK's alternative to httpx's own transport: at 1,000
sockets with 200 runs in flight one process finished a fifth more runs with it, at 57 % of
the p95 latency (BENCHMARKS.md). httpx's pool (httpcore) checks every pooled connection
on every request, and each of its steps costs a turn of the event loop, which under load is
what a run waits for. Tests mock it with `respx.mock(using="httpx")`.
"""

import asyncio
import contextlib
import logging
import re
import socket
import ssl
import weakref
from collections.abc import Mapping

import aiohttp
import httpx
import openai
from django.conf import settings

from ..exceptions import ProviderError
from . import wire

log = logging.getLogger(__name__)

# One client (and so one connection pool) per provider and event loop: httpx pools cannot
# be shared between loops, and a new pool per call would reconnect on every poll.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = weakref.WeakKeyDictionary()
# Each client's HTTP client (get_json sends on it) and the headers its requests carry.
_http: "weakref.WeakKeyDictionary[openai.AsyncOpenAI, tuple]" = weakref.WeakKeyDictionary()


def get_client(provider: dict) -> openai.AsyncOpenAI:
    loop = asyncio.get_running_loop()
    per_loop = _clients.setdefault(loop, {})
    timeout = provider.get("timeout") or settings.PROVIDER_TIMEOUT_SECONDS
    key = (provider["base_url"], provider.get("api_key", ""), timeout)
    if key not in per_loop:
        http = openai.DefaultAioHttpClient()
        client = per_loop[key] = openai.AsyncOpenAI(
            base_url=provider["base_url"],
            api_key=provider.get("api_key") or "none",
            max_retries=0,
            timeout=timeout,
            http_client=http,
        )
        headers = {**client.default_headers, **client.auth_headers}
        headers = {name: value for name, value in headers.items() if isinstance(value, str)}
        # The timeouts the SDK's transport gives aiohttp for every request (AiohttpTransport).
        on_aiohttp = aiohttp.ClientTimeout(sock_connect=timeout, sock_read=timeout, connect=timeout)
        _http[client] = (http, headers, {"timeout": httpx.Timeout(timeout).as_dict()}, on_aiohttp)
    return per_loop[key]


async def get_json(provider: dict, path: str) -> tuple[object, Mapping[str, str]]:
    """GET `path` of the provider's API (under its base URL): the JSON it answers, and its
    headers (names in any case). Errors are the SDK's own, as its typed calls raise them
    (provider_errors turns them into ProviderError): APIStatusError for an error status,
    httpx's for a connection that failed, ValueError for a body that is not JSON.

    For the request a run makes most, a poll (eight or nine for a polled answer), the request
    goes on the aiohttp session the SDK's client sends on, with the SDK's headers and timeouts
    (wire.py): the SDK's typed call costs a poll 1.0 ms of CPU, this 0.2 ms (BENCHMARKS.md,
    "Cost per answer", sixth and fourteenth steps). This reaches into httpx's client for
    `_transport_for_url` (which picks the transport a proxy in the environment asks for, and
    is where respx mocks), httpx being pinned in pyproject.toml; through any other transport
    than the SDK's (a proxy's, respx's) the request goes to it as an httpx request.
    tests/engines/test_get_json.py checks that what it sends and raises either way is what the
    SDK's own call would."""
    client = get_client(provider)
    if (on_aiohttp := _on_aiohttp(client, path)) is not None:
        return await wire.request_json(*on_aiohttp)
    return await get_as_httpx(client, path)


async def post_json(provider: dict, path: str, body: dict) -> tuple[object, Mapping[str, str]]:
    """POST `body` as JSON to `path`: the JSON answered, and its headers, as get_json (and
    raising as it does). A polled run's create and a thread's conversation go so: the SDK's
    typed call, with its models of the answer, costs a create 1.0 to 1.2 ms of CPU, this 0.25
    to 0.3 (`python -m bench.polls`; BENCHMARKS.md, "Cost per answer", fifteenth step). The body
    goes as the SDK sends the same parameters of a streamed create (raw_stream). Through any
    other transport than the SDK's aiohttp one, the SDK sends it and hands its response over
    unread (`cast_to=httpx.Response`)."""
    client = get_client(provider)
    if (on_aiohttp := _on_aiohttp(client, path)) is not None:
        return await wire.request_json(*on_aiohttp, body=body)
    response = await client.post(path, cast_to=httpx.Response, body=body)
    return response.json(), response.headers


async def get_as_httpx(client: openai.AsyncOpenAI, path: str) -> tuple[object, httpx.Headers]:
    """get_json through whatever transport the client picks for the URL, as an httpx request
    (the way a poll went from the sixth step of "Cost per answer" to the fourteenth)."""
    http, headers, extensions, _ = _http[client]
    url = client.base_url.join(path.lstrip("/"))
    request = httpx.Request("GET", url, headers=headers, extensions=extensions)
    response = await http._transport_for_url(url).handle_async_request(request)
    try:
        await response.aread()
    finally:
        await response.aclose()
    if response.status_code >= 400:
        raise wire.status_error_of(response)
    return response.json(), response.headers


def _on_aiohttp(client: openai.AsyncOpenAI, path: str) -> tuple | None:
    """What wire.py sends `path` with (transport, URL, headers, timeouts), when the client
    sends on its own aiohttp transport; None through any other (a proxy's, respx's)."""
    http, headers, _, timeout = _http[client]
    # The transport of the base URL is that of every path under it (picked by scheme, host
    # and port); the SDK's base URL ends with "/".
    transport = http._transport_for_url(client.base_url)
    if not wire.sends_on_aiohttp(transport):
        return None
    return transport, f"{client.base_url}{path.lstrip('/')}", headers, timeout


async def raw_stream(
    provider: dict, path: str, body: dict | None = None, query: dict | None = None
) -> "openai.AsyncStream | wire.ServerSentEvents":
    """A streamed request (a POST with `body`, else a GET with `query`) whose events come as
    the provider's JSON (dicts), not as SDK models.

    Building a pydantic model for every streamed token cost more of a process's CPU per
    streamed answer than storing the answer (BENCHMARKS.md, "Cost per answer"), for the
    handful of fields read of each. On the SDK's aiohttp transport the request goes on its
    session and the events are read as the SDK reads them (wire.py); through any other
    transport (a proxy's, respx's), the SDK sends it and reads them, raising for error
    statuses and `error` events as its typed calls do: `cast_to=object` is its documented way
    to call what it has no method for, and hands the JSON on as it came."""
    client = get_client(provider)
    if (on_aiohttp := _on_aiohttp(client, path)) is not None:
        return await wire.stream(*on_aiohttp, body=body, query=query)
    stream_cls = openai.AsyncStream[object]
    if body is not None:
        return await client.post(
            path, cast_to=object, body=body, stream=True, stream_cls=stream_cls
        )
    options = {"params": query} if query else {}
    return await client.get(
        path, cast_to=object, options=options, stream=True, stream_cls=stream_cls
    )


async def first_event(events: openai.AsyncStream, wanted):
    """The first of a stream's events that `wanted` accepts, the rest left to read; the
    stream is closed if that fails (ProviderError when it ends first)."""
    try:
        while not wanted(event := await anext(events)):
            pass
        return event
    except StopAsyncIteration:
        await events.close()
        raise ProviderError(
            "stream_error", "The provider's stream ended before the answer began."
        ) from None
    except BaseException:
        await events.close()
        raise


async def list_models(provider: dict, timeout: float) -> list[str]:
    """The ids of the provider's models (`GET /models`): whether it answers, and with what."""
    with provider_errors():
        page = await get_client(provider).models.list(timeout=timeout)
    return [model.id for model in page.data]


def preload() -> None:
    """Import the SDK's lazily loaded parts now, and build the models the engines read. That
    takes seconds, and done on a process's first run it would stall the event loop, so every
    socket of the process, meanwhile."""
    client = openai.AsyncOpenAI(
        api_key="preload", base_url="http://127.0.0.1/v1", http_client=openai.DefaultAioHttpClient()
    )
    for resource in ("responses", "conversations", "beta", "chat"):
        getattr(client, resource)
    build_models()


# One of each part of a response that the Responses engine reads, so that building them once
# builds every validator a real response needs (below).
_RESPONSE_PARTS = {
    "id": "resp_preload",
    "object": "response",
    "created_at": 0,
    "status": "completed",
    "model": "preload",
    "output": [
        {
            "type": "message", "id": "msg_preload", "role": "assistant", "status": "completed",
            "content": [
                {"type": "output_text", "text": "", "annotations": [
                    {"type": "url_citation", "url": "", "title": "", "start_index": 0,
                     "end_index": 0},
                    {"type": "file_citation", "file_id": "", "filename": "", "index": 0},
                ]},
                {"type": "refusal", "refusal": ""},
            ],
        },
        {"type": "function_call", "id": "fc_preload", "call_id": "call_preload", "name": "",
         "arguments": "{}", "status": "completed"},
        {"type": "reasoning", "id": "rs_preload", "summary": []},
    ],
    "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
              "input_tokens_details": {"cached_tokens": 0},
              "output_tokens_details": {"reasoning_tokens": 0}},
    "error": {"code": "server_error", "message": ""},
    "incomplete_details": {"reason": "max_output_tokens"},
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "tools": [],
    "background": True,
    "store": True,
    "instructions": "",
    "metadata": {},
    "temperature": 1.0,
    "top_p": 1.0,
    "max_output_tokens": 1,
    "previous_response_id": "resp_preload",
    "conversation": {"id": "conv_preload"},
    "reasoning": {"effort": None, "summary": None},
    "text": {"format": {"type": "text"}},
    "truncation": "disabled",
}  # fmt: skip


def build_models() -> None:
    """Build the SDK's models for responses and conversations. The SDK defers building a
    model's validators until it first reads one: a tenth to half a second of the event loop,
    on the first answer a process finishes (py-spy: pydantic's GenerateSchema under
    `to_stream_event` and `poll`, BENCHMARKS.md)."""
    from openai.types.conversations import Conversation
    from openai.types.responses import Response

    Response.model_construct(**_RESPONSE_PARTS)
    # An error code outside OpenAI's own (other servers') takes another way through the SDK.
    Response.model_construct(**{**_RESPONSE_PARTS, "error": {"code": "other", "message": ""}})
    Conversation.model_construct(id="conv_preload", object="conversation", created_at=0)


def retry_after_seconds(headers) -> float | None:
    """The provider's Retry-After hint in seconds (retry-after-ms wins when both are sent)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name) if headers is not None else None
        if value:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue
    return None


def poll_after_seconds(headers) -> float | None:
    """The provider's `openai-poll-after-ms` hint in seconds, when it sent one."""
    value = headers.get("openai-poll-after-ms") if headers else None
    try:
        return int(value) / 1000 if value else None
    except ValueError:
        return None


def _readable_message(error: openai.APIStatusError) -> str:
    """The provider's own message (the SDK's wraps it in the raw body), or ""."""
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]  # the SDK unwraps OpenAI's {"error": ...}, not every server's
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail")
        return str(message) if message else ""
    return body.strip()[:300] if isinstance(body, str) else ""


# Servers' words for "the prompt does not fit the context window": OpenAI, vLLM, llama.cpp's
# llama-server, llama-cpp-python, LiteLLM, LM Studio.
_OVERFLOW_WORDS = re.compile(
    r"context[_ ](length|window|size)|maximum context|exceeds? (the )?(available )?context"
    r"|too many tokens|prompt is too long|input is too large|n_ctx",
    re.IGNORECASE,
)
# Servers' bodies for "no such route" (FastAPI, llama-server, Go's mux), unlike "no such object".
_NO_ROUTE = {"", "not found", "file not found", "404 page not found", "404 not found"}
OVERFLOW_MESSAGE = "The conversation is longer than the model's context window."


def is_context_overflow(text: str) -> bool:
    return bool(_OVERFLOW_WORDS.search(text or ""))


def context_overflow(detail: str = "") -> ProviderError:
    message = f"{OVERFLOW_MESSAGE} ({detail})" if detail else OVERFLOW_MESSAGE
    return ProviderError("context_overflow", message)


def _status_error(error: openai.APIStatusError) -> ProviderError:
    """One code and sentence per kind of HTTP refusal, with the provider's words after it."""
    said = _readable_message(error)
    status = error.status_code
    code = str(error.code or "")
    detail = f": {said.rstrip('.')}" if said else ""
    hint = retry_after_seconds(error.response.headers)
    if status in (400, 413, 422) and (
        code == "context_length_exceeded" or is_context_overflow(said)
    ):
        return context_overflow(said)
    if status == 401:
        return ProviderError(
            "unauthorized", f"The provider refused the API key (HTTP 401){detail}."
        )
    if status == 403:
        return ProviderError("forbidden", f"The provider's key may not do this (HTTP 403){detail}.")
    if status == 404:
        return _not_found(error, said, code)
    if status in (405, 501):
        return _no_endpoint(error, status)
    if status == 429:
        return ProviderError(
            "rate_limited",
            f"The provider is rate limiting requests{detail}.",
            retryable=True,
            retry_after=hint,
        )
    if status >= 500:
        return ProviderError(
            "server_error",
            f"The provider had an internal error (HTTP {status}){detail}.",
            retryable=True,
            retry_after=hint,
        )
    # 409: the conversation or thread is busy with another response; it frees up soon.
    return ProviderError(
        code if code and not code.isdigit() else f"http_{status}",  # llama.cpp: an int
        said or f"The provider answered with HTTP {status}.",
        retryable=status == 409,
        retry_after=hint,
    )


def _not_found(error: openai.APIStatusError, said: str, code: str) -> ProviderError:
    if code == "model_not_found" or re.search(r"\bmodel\b", said, re.IGNORECASE):
        return ProviderError(
            "model_not_found", f"The provider does not have this model (HTTP 404): {said}"
        )
    if said.strip().lower() in _NO_ROUTE and not code:
        return _no_endpoint(error, 404)
    return ProviderError("not_found", said or "The provider does not know this object (HTTP 404).")


def _no_endpoint(error: openai.APIStatusError, status: int) -> ProviderError:
    path = error.response.request.url.path
    return ProviderError(
        "endpoint_not_found",
        f"This provider has no {path} (HTTP {status}): it does not offer this API.",
    )


def _connection_failure(error: BaseException) -> ProviderError:
    """Why a connection failed. The aiohttp transport reports every connection failure as a
    connect timeout; the causes it wraps say which it was."""
    causes = []
    while error is not None and len(causes) < 10:
        causes.append(error)
        error = error.__cause__ or error.__context__

    def caused_by(*kinds) -> bool:
        return any(isinstance(cause, kinds) for cause in causes)

    if caused_by(aiohttp.ClientConnectorDNSError, socket.gaierror):
        return ProviderError(
            "dns_failure",
            "The provider's host name could not be found (DNS): check its base URL.",
            retryable=True,
        )
    if caused_by(aiohttp.ClientSSLError, ssl.SSLError):
        return ProviderError(
            "tls_failure",
            "A secure (TLS) connection to the provider failed: check its certificate, and "
            "whether its base URL should be http.",
        )
    if caused_by(ConnectionRefusedError):
        return ProviderError(
            "connection_refused",
            "The provider refused the connection: nothing answers at its address (is it running?).",
            retryable=True,
        )
    if caused_by(aiohttp.ClientConnectorError, httpx.ConnectError):
        return ProviderError(
            "connection_error", "Could not connect to the provider.", retryable=True
        )
    if caused_by(openai.APITimeoutError, httpx.TimeoutException):
        return ProviderError("timeout", "The provider did not answer in time.", retryable=True)
    # httpx's own errors surface while a stream is read, after the SDK has handed it over.
    return ProviderError(
        "connection_error", "The connection to the provider broke.", retryable=True
    )


BAD_ANSWER = (
    "The provider's answer is not in the API's format (a web page, a stream without its "
    "content type, broken JSON): is this API served at its base URL?"
)


@contextlib.contextmanager
def provider_errors():
    """Re-raise the SDK's errors as ProviderError with a stable code and a readable message."""
    try:
        yield
    except (openai.APITimeoutError, openai.APIConnectionError, httpx.TransportError) as error:
        raise _connection_failure(error) from None
    except openai.APIStatusError as error:
        raise _status_error(error) from None
    except openai.APIResponseValidationError:
        raise ProviderError("bad_answer", BAD_ANSWER) from None
    except openai.APIError as error:
        # An error event inside a stream: the HTTP status was 200, the answer is unusable.
        if is_context_overflow(error.message):
            raise context_overflow(error.message) from None
        raise ProviderError("stream_error", f"The provider reported: {error.message}") from None
    except (ValueError, AttributeError):
        # JSON that does not parse, or parses into something other than the API's objects
        # (pydantic's ValidationError is a ValueError; a text body has no attributes).
        log.warning("provider answer not understood", exc_info=True)
        raise ProviderError("bad_answer", BAD_ANSWER) from None
