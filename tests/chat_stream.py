"""Chat Completions stream bodies for respx: server-sent events shaped like OpenAI's."""

import json

import httpx


def chunk(content: str | None = None, finish_reason: str | None = None, **delta) -> bytes:
    if content is not None:
        delta["content"] = content
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    return _event({"choices": [choice], "usage": None})


def usage_chunk(prompt_tokens: int, completion_tokens: int) -> bytes:
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    return _event({"choices": [], "usage": usage})


def _event(data: dict) -> bytes:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "llama-test",
        **data,
    }
    return f"data: {json.dumps(body)}\n\n".encode()


DONE = b"data: [DONE]\n\n"


def answer(*words: str, usage: tuple[int, int] | None = (12, 3)) -> list[bytes]:
    """A whole streamed answer: role chunk, one chunk a word, finish reason, usage, [DONE]."""
    events = [chunk("", role="assistant"), *(chunk(word) for word in words)]
    events.append(chunk(finish_reason="stop"))
    if usage:
        events.append(usage_chunk(*usage))
    return [*events, DONE]


def streamed(events) -> httpx.Response:
    """A 200 event stream; `events` is a list of events or an async iterator of them."""
    content = b"".join(events) if isinstance(events, list) else events
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=content)


def sent(route, call: int = -1) -> dict:
    """The JSON body of a request a respx route received (the last one by default)."""
    return json.loads(route.calls[call].request.content)
