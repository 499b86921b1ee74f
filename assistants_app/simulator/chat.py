"""Chat Completions as the simulator serves them: `POST /v1/chat/completions`, streamed or not.

Streamed answers are server-sent events shaped like OpenAI's: a role chunk, one chunk per
token (a word), a chunk with the finish reason, the usage chunk when
`stream_options.include_usage` is set, then `[DONE]`. Each token comes when the answer's
timeline (timeline.py) writes it; an answer that is not streamed comes whole when the last
token would have. The reply counts the user messages it was sent, so a test can see
that the history arrived.

`GET /simulator/chat-stats` (simulator-only) says when each recent answer was complete, when
each of its tokens was written and the prompt it answered, so the benchmark can measure the
latency the site adds: a completion has no id the site keeps.

Faults (see app.py): `fail` answers 500; `break-stream` ends every streamed answer halfway,
without a finish reason or `[DONE]` (as a server that dies mid-answer behind a proxy does;
daphne cannot drop a connection in the middle of a body); `stuck` streams the first token and
then nothing.
"""

import asyncio
import json
import time
from collections import deque

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .common import (
    CONTEXT_TOKENS,
    Settings,
    error,
    fault_of,
    input_text,
    json_body,
    new_id,
    no_route,
)
from .given import describe
from .replies import canned_reply, count_tokens, tokens_of, variant_of
from .timeline import TimedAnswer
from .tool_plan import calls_for_round, results_text

KEPT_FOR_STATS = 10_000  # recent completions; a benchmark run makes a few thousand


class ChatCompletionsAPI:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.recent: deque[Completion] = deque(maxlen=KEPT_FOR_STATS)

    async def create(self, request: Request) -> Response:
        body = await json_body(request)
        if not body.get("model"):
            return error(400, "Missing required parameter: 'model'.", "missing_required_parameter")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return error(400, "'messages' must be a non-empty list.", "invalid_value")
        fault = fault_of(request, body["model"])
        if fault == "fail":
            return error(500, "Internal error (simulated).", "server_error")
        timing = (self.settings.latency_of(request), self.settings.token_rate_of(request))
        completion = Completion(body, messages, fault, *timing)
        self.recent.append(completion)
        if fault == "llamacpp" and completion.prompt_tokens > CONTEXT_TOKENS:
            # As llama-cpp-python does: 200, the stream begins, and ends with no answer.
            return StreamingResponse(completion.aborted(), media_type="text/event-stream")
        if body.get("stream"):
            return StreamingResponse(completion.events(), media_type="text/event-stream")
        await completion.timeline.wait_until(completion.timeline.finished_after)
        completion.completed_at = time.time()
        return JSONResponse(completion.whole())

    async def stats(self, request: Request) -> JSONResponse:
        completions = [
            {
                "id": c.id,
                "prompt": c.prompt,
                "completed_at": c.completed_at,
                **c.timeline.writing_record(c.started_wall),
            }
            for c in self.recent
        ]
        return JSONResponse({"completions": completions})

    async def tokenize(self, request: Request) -> Response:
        """llama-server's `POST /tokenize` (`{"content": ...}`), under the llamacpp persona."""
        if fault_of(request) != "llamacpp":
            return no_route()
        text = (await json_body(request)).get("content") or ""
        return JSONResponse({"tokens": list(range(count_tokens(text)))})

    async def props(self, request: Request) -> Response:
        """llama-server's `GET /props`: the context size it runs with."""
        if fault_of(request) != "llamacpp":
            return no_route()
        return JSONResponse({"default_generation_settings": {"n_ctx": CONTEXT_TOKENS}})

    def routes(self) -> list[Route]:
        return [
            Route("/v1/chat/completions", self.create, methods=["POST"]),
            Route("/simulator/chat-stats", self.stats),
            Route("/tokenize", self.tokenize, methods=["POST"]),
            Route("/props", self.props),
        ]


class Completion:
    """One answer: the canned reply to the last user message, as a whole or as chunks."""

    def __init__(self, body: dict, messages: list, fault: str, latency: float, token_rate: float):
        self.id = new_id("chatcmpl")
        self.created = int(time.time())
        self.model = body["model"]
        self.fault = fault
        # llama.cpp's server ignores `include_usage`: no usage in its streams.
        self.include_usage = fault != "llamacpp" and bool(
            (body.get("stream_options") or {}).get("include_usage")
        )
        user_texts = [
            input_text([m]) for m in messages if isinstance(m, dict) and m.get("role") == "user"
        ]
        said = [m for m in messages if isinstance(m, dict)]
        users = [m for m in said if m.get("role") == "user"]
        system = "\n".join(str(m.get("content")) for m in said if m.get("role") == "system")
        given = describe(users[-1].get("content") if users else None, system)
        prompt = self.prompt = user_texts[-1] if user_texts else ""
        self.completed_at: float | None = None  # when its last token was written
        earlier = user_texts[-2] if len(user_texts) > 1 else ""
        since_prompt = _after_last_user(messages)
        rounds_done = sum(1 for m in since_prompt if m.get("tool_calls"))
        self.tool_calls = calls_for_round(body.get("tools") or [], prompt, rounds_done)
        if self.tool_calls:
            self.reply = ""
        else:
            variant = variant_of(prompt, len(user_texts), earlier)
            self.reply = canned_reply(
                prompt, len(user_texts), earlier, variant, given
            ) + results_text(_outputs(since_prompt))
        self.started_wall = time.time()  # its start, as time.time()
        self.timeline = TimedAnswer(tokens_of(self.reply), latency, token_rate)
        self.prompt_tokens = count_tokens(input_text(messages))

    def usage(self) -> dict:
        completion_tokens = count_tokens(self.reply)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        }

    def whole(self) -> dict:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": self.reply or None,
                        "refusal": None,
                        **({"tool_calls": self.tool_calls} if self.tool_calls else {}),
                    },
                    "logprobs": None,
                    "finish_reason": "tool_calls" if self.tool_calls else "stop",
                }
            ],
            "usage": self.usage(),
        }

    def chunk(self, delta: dict | None, finish_reason: str | None = None) -> str:
        choices = [] if delta is None else [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        ]  # fmt: skip
        data = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            # OpenAI sends "usage": null on every chunk but the last, which has no choices.
            data["usage"] = self.usage() if delta is None else None
        return f"data: {json.dumps(data)}\n\n"

    async def aborted(self):
        self.timeline.stop()  # it writes nothing
        yield self.chunk({"role": "assistant", "content": ""})

    async def events(self):
        yield self.chunk({"role": "assistant", "content": ""})
        if self.tool_calls:
            # Each call whole in one chunk, with its index (OpenAI splits the arguments).
            await self.timeline.wait_until(self.timeline.finished_after)
            calls = [{"index": i, **call} for i, call in enumerate(self.tool_calls)]
            yield self.chunk({"tool_calls": calls})
            yield self.chunk({}, finish_reason="tool_calls")
            if self.include_usage:
                yield self.chunk(None)
            yield "data: [DONE]\n\n"
            return
        tokens = self.timeline.tokens
        try:
            for index, token in enumerate(tokens):
                if index == len(tokens) // 2 and self.fault == "break-stream":
                    self.timeline.stop()
                    return  # no finish reason, no [DONE]: the answer just stops
                if index == 1 and self.fault == "stuck":
                    self.timeline.stop()
                    await asyncio.Event().wait()
                await self.timeline.wait_until(self.timeline.token_due(index))
                yield self.chunk({"content": token})
        except (GeneratorExit, asyncio.CancelledError):
            self.timeline.stop()  # its reader is gone: no more tokens are written
            raise
        await self.timeline.wait_until(self.timeline.finished_after)
        self.completed_at = time.time()
        yield self.chunk({}, finish_reason="stop")
        if self.include_usage:
            yield self.chunk(None)
        yield "data: [DONE]\n\n"


def _after_last_user(messages: list) -> list[dict]:
    """The messages after the last user message: the rounds of tool calls so far."""
    said = [m for m in messages if isinstance(m, dict)]
    users = [i for i, m in enumerate(said) if m.get("role") == "user"]
    return said[users[-1] + 1 :] if users else []


def _outputs(since_prompt: list[dict]) -> list[tuple[str, str]]:
    names = {
        call.get("id"): (call.get("function") or {}).get("name", "?")
        for m in since_prompt
        for call in m.get("tool_calls") or []
    }
    return [
        (names.get(m.get("tool_call_id"), "?"), str(m.get("content")))
        for m in since_prompt
        if m.get("role") == "tool"
    ]
