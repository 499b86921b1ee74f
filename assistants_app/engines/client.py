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
import weakref

import httpx
import openai
from django.conf import settings

from ..exceptions import ProviderError

# One client (and so one connection pool) per provider and event loop: httpx pools cannot
# be shared between loops, and a new pool per call would reconnect on every poll.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = weakref.WeakKeyDictionary()


def get_client(provider: dict) -> openai.AsyncOpenAI:
    loop = asyncio.get_running_loop()
    per_loop = _clients.setdefault(loop, {})
    timeout = provider.get("timeout") or settings.PROVIDER_TIMEOUT_SECONDS
    key = (provider["base_url"], provider.get("api_key", ""), timeout)
    if key not in per_loop:
        per_loop[key] = openai.AsyncOpenAI(
            base_url=provider["base_url"],
            api_key=provider.get("api_key") or "none",
            max_retries=0,
            timeout=timeout,
            http_client=openai.DefaultAioHttpClient(),
        )
    return per_loop[key]


async def list_models(provider: dict, timeout: float) -> list[str]:
    """The ids of the provider's models (`GET /models`): whether it answers, and with what."""
    with provider_errors():
        page = await get_client(provider).models.list(timeout=timeout)
    return [model.id for model in page.data]


def preload() -> None:
    """Import the SDK's lazily loaded parts now. That takes seconds, and done on a process's
    first run it would stall the event loop, so every socket of the process, meanwhile."""
    client = openai.AsyncOpenAI(
        api_key="preload", base_url="http://127.0.0.1/v1", http_client=openai.DefaultAioHttpClient()
    )
    for resource in ("responses", "conversations", "beta", "chat"):
        getattr(client, resource)


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
    """The provider's own message (the SDK's wraps it in the raw body)."""
    if isinstance(error.body, dict) and error.body.get("message"):
        return str(error.body["message"])
    return f"The provider answered with HTTP {error.status_code}."


@contextlib.contextmanager
def provider_errors():
    """Re-raise the SDK's errors as ProviderError with a stable code and a readable message."""
    try:
        yield
    except (openai.APITimeoutError, httpx.TimeoutException):
        raise ProviderError(
            "timeout", "The provider did not answer in time.", retryable=True
        ) from None
    except (openai.APIConnectionError, httpx.TransportError):
        # httpx's own errors surface while a stream is read, after the SDK has handed it over.
        raise ProviderError(
            "connection_error", "Could not connect to the provider.", retryable=True
        ) from None
    except openai.RateLimitError as error:
        raise ProviderError(
            "rate_limited",
            "The provider is rate limiting requests.",
            retryable=True,
            retry_after=retry_after_seconds(error.response.headers),
        ) from None
    except openai.APIStatusError as error:
        # 409: the conversation or thread is busy with another response; it frees up soon.
        retryable = error.status_code >= 500 or error.status_code == 409
        raise ProviderError(
            str(error.code or error.type or f"http_{error.status_code}"),  # llama.cpp: an int
            _readable_message(error),
            retryable=retryable,
            retry_after=retry_after_seconds(error.response.headers),
        ) from None
    except openai.APIError as error:
        # An error event inside a stream: the HTTP status was 200, the answer is unusable.
        raise ProviderError("stream_error", f"The provider reported: {error.message}") from None
