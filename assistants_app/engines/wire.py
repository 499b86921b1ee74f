"""The requests a run makes most, sent on the aiohttp session of the SDK's own transport: a
poll's GET and a create's POST (client.get_json, client.post_json) and a streamed request
(client.raw_stream), whose events arrive as the provider's JSON.

Through the SDK and httpx, each request is built, sent and answered three times over: the
SDK's request options, httpx's request and response, and the transport's conversion of both
to and from aiohttp's, and a stream's bytes pass through three layers of generators before
the SDK's decoder splits them into events. A poll cost 0.5 ms of CPU that way where aiohttp
alone takes 0.2 (`python -m bench.polls`), and a streamed answer's request and events were a
fifth of a streaming process's CPU (BENCHMARKS.md, "Cost per answer", fourteenth step).

What goes out is what the SDK sends (its headers, the JSON body, its timeouts, no redirects
followed), and what comes back raises what it raises: the SDK's APIStatusError for an error
status, its APIError for an `error` event in a stream, httpx's errors for a connection that
fails (mapped from aiohttp's as the transport maps them), ValueError for JSON that does not
parse. `tests/engines/test_wire.py` and `test_get_json.py` hold each of them against the SDK's
own call, on a real socket. This reaches into httpx-aiohttp (pinned in pyproject.toml) for
the transport's session and its mapping of errors.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Mapping

import aiohttp
import httpx
import openai
from httpx_aiohttp.transport import AiohttpTransport, map_aiohttp_exceptions

from .. import timers

# Headers of the body as it came, which aiohttp has read (decompressed): not of what is read.
_READ = {b"content-encoding", b"content-length", b"transfer-encoding"}


def sends_on_aiohttp(transport) -> bool:
    """Whether a request to this transport can go on its session: the SDK's aiohttp
    transport without a proxy (not a proxy's transport, nor a test's mock)."""
    return type(transport) is AiohttpTransport and transport.proxy is None


def _session(transport: AiohttpTransport) -> aiohttp.ClientSession:
    if not isinstance(transport.client, aiohttp.ClientSession):
        transport.client = transport.get_client()  # as its first request would
    return transport.client


async def request_json(
    transport: AiohttpTransport,
    url: str,
    headers: dict,
    timeout: aiohttp.ClientTimeout,
    body: dict | None = None,
) -> tuple[object, Mapping[str, str]]:
    """POST `body` as JSON to `url`, or GET it without one: the JSON answered, and the
    headers (see client.get_json)."""
    method = "GET" if body is None else "POST"
    with map_aiohttp_exceptions():
        async with _session(transport).request(
            method, url, data=_json_body(body), headers=headers, allow_redirects=False,
            timeout=timeout,
        ) as answer:  # fmt: skip
            content = await answer.read()
    if answer.status >= 400:
        raise status_error_of(_as_httpx(method, url, headers, answer, content))
    return json.loads(content), answer.headers


async def stream(
    transport: AiohttpTransport,
    url: str,
    headers: dict,
    timeout: aiohttp.ClientTimeout,
    body: dict | None = None,
    query: dict | None = None,
) -> "ServerSentEvents":
    """POST `body` as JSON (or GET with `query`) and answer with its events, unread."""
    method = "GET" if body is None else "POST"
    with map_aiohttp_exceptions():
        answer = await _session(transport).request(
            method, url, params=query, data=_json_body(body), headers=headers,
            allow_redirects=False, timeout=timeout,
        )  # fmt: skip
        if answer.status >= 400:
            try:
                content = await answer.read()
            finally:
                answer.release()
            raise status_error_of(_as_httpx(method, url, headers, answer, content))
    return ServerSentEvents(answer, method, quiet_limit=timeout.sock_read)


def _json_body(body: dict | None) -> str | None:
    """The body as httpx encodes the SDK's JSON (its content type is in the SDK's headers)."""
    return None if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":"))


class ServerSentEvents:
    """A response's server-sent events, each as its JSON, as `openai.AsyncStream[object]`
    yields them: iterated, or one at a time with anext(); closed by `close()`, by leaving
    `async with`, or by reading to the end. Its `response` has the answer's `headers` and,
    for an answer that is not a stream after all, `aread()` for its body."""

    def __init__(self, answer: aiohttp.ClientResponse, method: str, quiet_limit: float | None):
        self.response = _Answer(answer)
        self._answer, self._method = answer, method
        self._quiet = _QuietLimit(answer, quiet_limit)
        self._events = self._read()

    def __aiter__(self) -> AsyncIterator[object]:
        return self._events

    async def __anext__(self) -> object:
        return await anext(self._events)

    async def __aenter__(self) -> "ServerSentEvents":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        # Unread data left: aiohttp closes the connection instead of pooling it.
        self._quiet.stop()
        self._answer.release()

    async def _read(self) -> AsyncIterator[object]:
        """The SSE format as the SDK's decoder reads it: an event ends at a blank line; its
        `data:` lines are joined with newlines; `[DONE]` ends the stream; comments and
        unknown fields are skipped; an event the stream ends inside is dropped. (Once an
        event had an `id:`, the SDK takes every blank line after it for an empty event, and
        fails on it; here, as the format has it, blank lines without fields are nothing.)"""
        event, data, fields = "", [], False
        try:
            with map_aiohttp_exceptions():
                async for line in _lines(self._answer.content, self._quiet):
                    if line:
                        name, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        if name == "data":
                            data.append(value)
                        elif name == "event":
                            event = value
                        elif name not in ("id", "retry"):
                            continue  # a comment (":..."), or a field the format does not have
                        fields = True
                        continue
                    if not fields:
                        continue
                    text = "\n".join(data)
                    if text.startswith("[DONE]"):
                        break
                    yield self._json(event, text)
                    event, data, fields = "", [], False
        finally:
            self._quiet.stop()
            self._answer.release()

    def _json(self, event: str, text: str) -> object:
        data = json.loads(text)
        if isinstance(data, Mapping) and data.get("error"):
            error = data["error"]
            message = error.get("message") if isinstance(error, Mapping) else None
            if not message or not isinstance(message, str):
                message = "An error occurred during streaming"
            request = httpx.Request(self._method, str(self._answer.url))
            raise openai.APIError(message=message, request=request, body=error)
        if event.startswith("thread."):  # the SDK's shape for the Assistants API's events
            return {"data": data, "event": event}
        return data


class _Answer:
    def __init__(self, answer: aiohttp.ClientResponse):
        self.headers = answer.headers  # names in any case, as httpx's
        self._answer = answer

    async def aread(self) -> bytes:
        with map_aiohttp_exceptions():
            return await self._answer.read()


async def _lines(content: aiohttp.StreamReader, quiet: "_QuietLimit") -> AsyncIterator[str]:
    """The lines of a body as they arrive, without their ends (\\r\\n, \\n or \\r)."""
    rest = b""
    async for chunk in content.iter_any():
        quiet.heard = quiet.loop.time()
        lines = (rest + chunk).splitlines(keepends=True)
        # The last line may go on in the next chunk (one ending in "\\r" too: "\\n" may follow).
        rest = b"" if lines[-1].endswith(b"\n") else lines.pop()
        for line in lines:
            yield line.rstrip(b"\r\n").decode()
    for line in rest.splitlines():
        yield line.decode()


class _QuietLimit:
    """A streamed body's read timeout (the SDK's, aiohttp's `sock_read`: how long the provider
    may stay silent), kept by one timer instead of aiohttp's own.

    aiohttp re-arms its read timeout for every piece of the body that arrives: a timer
    cancelled and made anew for every token, 2 % of a streaming process's CPU (BENCHMARKS.md,
    "Cost per answer", sixteenth step). Once the answer's headers are in (within aiohttp's own
    timeout), this takes over for the body: a piece that arrives only notes the time, and one
    timer, when it fires, either waits out the rest of the limit or finds the provider silent
    for all of it, and fails the body as aiohttp's timeout fails it (the same error, which the
    SDK's transport maps to httpx's ReadTimeout). This reaches into aiohttp's protocol, as its
    response does (`read_timeout`, `start_timeout`, `set_exception`): aiohttp is pinned."""

    def __init__(self, answer: aiohttp.ClientResponse, seconds: float | None):
        self.loop = asyncio.get_running_loop()
        self.heard = self.loop.time()  # when the last piece arrived
        self.seconds, self._timer = seconds, None
        connection = answer.connection
        if not seconds or connection is None or connection.protocol is None:
            return  # no limit, or the body is in already
        self._protocol, self._content = connection.protocol, answer.content
        self._protocol.read_timeout = None
        self._protocol.start_timeout()  # drops the timer armed as the headers came in
        self._timer = self.loop.call_later(timers.delay(seconds), self._check)

    def _check(self) -> None:
        left = self.heard + self.seconds - self.loop.time()
        if not timers.due(left):  # heard from meanwhile: wait out the rest
            self._timer = self.loop.call_later(timers.delay(left), self._check)
            return
        self._timer = None
        error = aiohttp.SocketTimeoutError("Timeout on reading data from socket")
        self._protocol.set_exception(error)  # as aiohttp's own timeout does
        self._content.set_exception(error)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _as_httpx(method, url, headers, answer: aiohttp.ClientResponse, body: bytes) -> httpx.Response:
    """An error answer as the httpx response the SDK's error takes."""
    kept = [(name, value) for name, value in answer.raw_headers if name.lower() not in _READ]
    request = httpx.Request(method, url, headers=headers)
    return httpx.Response(answer.status, headers=kept, content=body, request=request)


def status_error_of(response: httpx.Response) -> openai.APIStatusError:
    """The error the SDK raises for an error status (its client's
    `_make_status_error_from_response`, which picks a subclass by status: the attributes
    _status_error reads are the same)."""
    text = response.text.strip()
    try:
        body = json.loads(text)
        message = f"Error code: {response.status_code} - {body}"
    except ValueError:
        body, message = text, text or f"Error code: {response.status_code}"
    data = body.get("error", body) if isinstance(body, dict) else body  # OpenAI's {"error": ..}
    return openai.APIStatusError(message, response=response, body=data)
