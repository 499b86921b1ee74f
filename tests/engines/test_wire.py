"""A stream read off the SDK's aiohttp session (engines/wire.py) gives what the SDK's own stream
gives, on a real socket: the same events, however the bytes arrive, and the same failures."""

import asyncio
import json

import pytest

from assistants_app.engines import wire
from assistants_app.engines.client import provider_errors, raw_stream
from assistants_app.exceptions import ProviderError

from .test_provider_errors import tcp_server


def answer(body: bytes, status: str = "200 OK", kind: str = "text/event-stream", extra=b""):
    """An HTTP/1.1 answer, chunked as a streaming server sends it, in pieces to write."""
    head = f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nTransfer-Encoding: chunked\r\n"
    return head.encode() + extra + b"\r\n", body


def served(head: bytes, body: bytes, pieces: int = 1, finish: bool = True):
    """A server writing `body` in `pieces` chunks (cut anywhere: inside a line, between \\r
    and \\n), and ending the chunked body unless told not to (a server that aborts)."""

    async def serve(reader, writer):
        request = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in request.split(b"\r\n")
                       if line.lower().startswith(b"content-length")), 0)  # fmt: skip
        await reader.readexactly(length)
        writer.write(head)
        size = max(1, -(-len(body) // pieces))
        for start in range(0, len(body), size):
            piece = body[start : start + size]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.001)
        if finish:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        writer.close()

    return serve


async def events_of(port: int, sdk: bool, monkeypatch) -> list:
    """The events of a streamed POST, read by wire.py or (`sdk`) by the SDK's own stream."""
    with monkeypatch.context() as patch:
        if sdk:
            patch.setattr(wire, "sends_on_aiohttp", lambda transport: False)
        provider = {"base_url": f"http://127.0.0.1:{port}/v1", "api_key": "sk-test"}
        events = await raw_stream(provider, "/responses", body={"model": "m", "stream": True})
        assert isinstance(events, wire.ServerSentEvents) != sdk
        async with events:
            return [event async for event in events]


async def both(serve, monkeypatch) -> tuple[list, list]:
    async with tcp_server(serve) as port:
        return await events_of(port, False, monkeypatch), await events_of(port, True, monkeypatch)


DELTA = {"type": "response.output_text.delta", "delta": "Hé, naïve 😀 words"}
STREAM = (
    b": a comment, then an event with a retry\n"
    b'retry: 300\nevent: response.created\ndata: {"type": "response.created"}\n\n'
    b"event: response.output_text.delta\r\ndata: " + json.dumps(DELTA).encode() + b"\r\n\r\n"
    b'data: {"type": "multi",\ndata: "line": 1}\n\n'
    b"\n\n"  # blank lines with no event between them
    b'unknown: field\ndata: {"type": "last"}\n\n'
    b"data: [DONE]\n\n"
    b'data: {"type": "after the end"}\n\n'
)


@pytest.mark.parametrize("pieces", [1, 7, 60, len(STREAM)], ids=["whole", "7", "60", "bytes"])
async def test_the_events_are_the_sdks_however_the_bytes_arrive(pieces, monkeypatch):
    ours, sdks = await both(served(*answer(STREAM), pieces=pieces), monkeypatch)

    assert ours == sdks
    assert [event["type"] for event in ours] == [
        "response.created", "response.output_text.delta", "multi", "last"
    ]  # fmt: skip
    assert ours[1] == DELTA


async def test_an_event_the_stream_ends_inside_is_dropped_as_the_sdk_drops_it(monkeypatch):
    ours, sdks = await both(served(*answer(b'data: {"type": "a"}\n\ndata: {"type": "b"}')),
                            monkeypatch)  # fmt: skip

    assert ours == sdks == [{"type": "a"}]


async def failure_of(serve, sdk: bool, monkeypatch) -> tuple:
    with pytest.raises(ProviderError) as raised, provider_errors():
        async with tcp_server(serve) as port:
            await events_of(port, sdk, monkeypatch)
    error = raised.value
    return error.code, error.message, error.retryable, error.retry_after


FAILURES = {
    "an error event": served(*answer(
        b'data: {"type": "a"}\n\ndata: {"error": {"message": "The server overloaded"}}\n\n')),
    "an error event without words": served(*answer(b'data: {"error": {"code": 7}}\n\n')),
    "context too long": served(*answer(json.dumps({"error": {
        "message": "This model's maximum context length is 4096 tokens",
        "code": "context_length_exceeded"}}).encode(), "400 Bad Request", "application/json")),
    "rate limited": served(*answer(b'{"error": {"message": "Slow down"}}', "429 Too Many Requests",
                                   "application/json", extra=b"Retry-After: 7\r\n")),
    "a gateway's page": served(*answer(b"<html>Bad gateway</html>", "502 Bad Gateway",
                                       "text/html")),
    "JSON that is cut": served(*answer(b'data: {"type": "a", \n\n')),
    "a stream cut off (llama.cpp past its context)": served(
        *answer(b'data: {"type": "a"}\n\ndata: {"type"'), finish=False),
}  # fmt: skip


@pytest.mark.parametrize("serve", FAILURES.values(), ids=FAILURES.keys())
async def test_a_failure_reads_as_the_sdks_own(serve, monkeypatch):
    ours = await failure_of(serve, False, monkeypatch)
    sdks = await failure_of(serve, True, monkeypatch)

    assert ours == sdks


async def test_it_sends_the_sdks_json_and_headers_and_a_get_its_query():
    seen = []

    async def serve(reader, writer):
        request = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in request.split(b"\r\n")
                       if line.lower().startswith(b"content-length")), 0)  # fmt: skip
        seen.append((request.decode().lower(), await reader.readexactly(length)))
        head, body = answer(b'data: {"type": "a"}\n\n')
        writer.write(head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        await writer.drain()
        writer.close()

    async with tcp_server(serve) as port:
        provider = {"base_url": f"http://127.0.0.1:{port}/v1", "api_key": "sk-secret"}
        body = {"model": "m", "input": "Ünïcode", "stream": True}
        async with await raw_stream(provider, "/responses", body=body) as events:
            assert [event async for event in events] == [{"type": "a"}]
        query = {"stream": "true", "starting_after": 4}
        async with await raw_stream(provider, "/responses/resp_1", query=query) as events:
            assert events.response.headers["content-type"] == "text/event-stream"
            assert [event async for event in events] == [{"type": "a"}]

    (post, sent), (get, _) = seen
    assert post.startswith("post /v1/responses http/1.1")
    assert "authorization: bearer sk-secret" in post and "content-type: application/json" in post
    assert json.loads(sent) == body
    assert get.startswith("get /v1/responses/resp_1?stream=true&starting_after=4 http/1.1")


async def test_an_answer_that_is_not_a_stream_is_read_whole():
    body = json.dumps({"id": "resp_1", "status": "completed"}).encode()
    async with tcp_server(served(*answer(body, kind="application/json"))) as port:
        provider = {"base_url": f"http://127.0.0.1:{port}/v1", "api_key": "k"}
        events = await raw_stream(provider, "/responses", body={"stream": True})
        try:
            assert events.response.headers["Content-Type"] == "application/json"
            assert json.loads(await events.response.aread()) == {
                "id": "resp_1",
                "status": "completed",
            }
        finally:
            await events.close()


def falls_silent(after: bytes, for_seconds: float):
    """A server that writes `after` (the head and the first pieces), then nothing."""

    async def serve(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(after)
        await writer.drain()
        await asyncio.sleep(for_seconds)
        writer.close()

    return serve


async def silent_failure_of(port: int, sdk: bool, monkeypatch, timeout: float = 0.3) -> tuple:
    with pytest.raises(ProviderError) as raised, provider_errors(), monkeypatch.context() as patch:
        if sdk:
            patch.setattr(wire, "sends_on_aiohttp", lambda transport: False)
        provider = {"base_url": f"http://127.0.0.1:{port}/v1", "api_key": "sk-test",
                    "timeout": timeout}  # fmt: skip
        events = await raw_stream(provider, "/responses", body={"model": "m", "stream": True})
        async with events:
            async for _ in events:
                pass
    return raised.value.code, raised.value.message, raised.value.retryable


async def test_a_provider_silent_mid_stream_times_out_as_the_sdks_read_timeout(monkeypatch):
    head, _ = answer(b"")
    first = b'data: {"type": "a"}\n\n'
    serve = falls_silent(head + b"%x\r\n%s\r\n" % (len(first), first), for_seconds=3)
    async with tcp_server(serve) as port:
        started = asyncio.get_running_loop().time()
        ours = await silent_failure_of(port, False, monkeypatch)
        waited = asyncio.get_running_loop().time() - started
        sdks = await silent_failure_of(port, True, monkeypatch)

    assert ours == sdks
    assert ours[0] == "timeout" and ours[2] is True
    assert 0.3 <= waited < 2.5  # the provider's limit, not the server's close


async def test_a_streamed_body_arms_no_timer_for_each_piece(monkeypatch):
    """aiohttp's own read timeout cancels and makes a timer for every piece of a body that
    arrives (a token, when a provider streams): the stream keeps the limit with one, so the
    timers a stream arms do not grow with its pieces."""
    loop = asyncio.get_running_loop()
    armed = []
    for name in ("call_at", "call_later"):
        arm = getattr(loop, name)

        def counted(when, callback, *args, arm=arm, **kwargs):
            armed.append(getattr(callback, "__qualname__", ""))
            return arm(when, callback, *args, **kwargs)

        monkeypatch.setattr(loop, name, counted)
    body = b"".join(b'data: {"type": "token", "n": %d}\n\n' % n for n in range(40))

    async def read_limit_timers(pieces: int) -> int:
        async with tcp_server(served(*answer(body), pieces=pieces)) as port:
            armed.clear()
            assert len(await events_of(port, False, monkeypatch)) == 40
        # (The test's server, on the same loop, arms timers of its own: not counted.)
        return len([name for name in armed if "read_timeout" in name or "QuietLimit" in name])

    whole, in_pieces = await read_limit_timers(1), await read_limit_timers(40)

    assert in_pieces <= whole + 1, f"{in_pieces} timers for 40 pieces, {whole} for one"
