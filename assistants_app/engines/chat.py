"""The Chat Completions engine: any OpenAI-compatible server (Ollama, vLLM, llama.cpp's
llama-server, LM Studio, gateways).

The provider keeps no run and no thread, so the run is generated in this process, and its
stream is that generation (local.py): `generate` sends the assistant's instructions and the
history fitted from our own messages to a streamed `chat.completions.create`, hands each piece
of text on as it comes, and returns the finished answer. A stream that breaks midway keeps
what it said, stored as a partial answer. Failures are not retried here or by the driver
(except a rate limit before any output): the run fails with its reason and the page offers a
retry.
"""

import asyncio
from collections.abc import Awaitable, Callable

import openai

from .. import attached, knowledge
from ..exceptions import ProviderError
from ..models import Message, Run, RunStatus
from ..tool_transcript import Transcript
from .base import RemoteMessage, RunUpdate, ToolCall, Turn, Usage
from .client import is_context_overflow, provider_errors, raw_stream
from .local import UNFINISHED, LocalGeneration, broken, failed_midway

CUT_SHORT = {
    "length": "the model reached its length limit",
    "content_filter": "the provider's content filter stopped it",
}


class ChatEngine(LocalGeneration):
    async def start_run(self, run: Run, message: Message) -> RunUpdate:
        # Nothing to send yet: the driver generates the answer. The id also names the answer's
        # message, so however often the run is driven, one message is stored.
        run.remote_id = f"chat-{run.pk}"
        return RunUpdate(status=RunStatus.QUEUED)

    async def generate(
        self,
        run: Run,
        history: list[Turn],
        on_text: Callable[[str], Awaitable[None]] | None = None,
        transcript: Transcript | None = None,
    ) -> RunUpdate:
        # In a thread: the files' bytes are read from storage (a disk, or a bucket).
        params = await asyncio.to_thread(self.request, run, history, transcript)
        pieces: list[str] = []
        calls = _CallsBeingWritten()
        usage = finish_reason = None
        try:
            with provider_errors():
                stream = await self._open(params)
                async with stream:
                    async for chunk in stream:  # the provider's JSON (client.raw_stream)
                        usage = _usage_of(chunk) or usage
                        for choice in chunk.get("choices") or []:
                            finish_reason = choice.get("finish_reason") or finish_reason
                            delta = choice.get("delta") or {}
                            calls.add(delta.get("tool_calls"))
                            if content := delta.get("content"):
                                pieces.append(content)
                                if on_text:
                                    await on_text(content)
        except ProviderError as error:
            return failed_midway(run, pieces, error, usage)
        if finish_reason is not None and calls:
            # The model asks for tools (some servers say "stop" even so): the driver runs
            # them, and the next generation sends their outputs (tool_transcript.py).
            round_ = len(transcript.rounds) if transcript else 0
            tool_calls = calls.finished(f"call-{run.pk}-{round_}")
            return RunUpdate(status=RunStatus.REQUIRES_ACTION, usage=usage, tool_calls=tool_calls)
        if finish_reason is None:
            # Every server we know ends with a finish reason; a stream without one was cut.
            return broken(run, pieces, "stream_broken", UNFINISHED, usage)
        return _finished(run, "".join(pieces), finish_reason, usage)

    async def _open(self, params: dict):
        try:
            return await raw_stream(self.provider, "/chat/completions", body=params)
        except openai.BadRequestError as error:
            if is_context_overflow(str(error.message)):
                raise  # the same request without them would not fit either
            # Some servers refuse `stream_options`, which only asks for the usage figures:
            # a refused request started nothing, so it is sent again without them.
            params = {key: value for key, value in params.items() if key != "stream_options"}
            return await raw_stream(self.provider, "/chat/completions", body=params)

    def request(self, run: Run, history: list[Turn], transcript: Transcript | None = None) -> dict:
        assistant = run.thread.assistant
        # The instructions live in our database and always go first, whatever was trimmed.
        # The passages of its knowledge this run answers from, numbered for citations.
        context = history[-1].context if history else ""
        system = knowledge.with_context(assistant.instructions, context)
        messages = [{"role": "system", "content": system}] if system else []
        messages += [{"role": turn.role, "content": chat_content(turn)} for turn in history]
        if transcript is not None:
            messages += transcript.chat_messages()
        params = {
            "model": self.model_of(assistant),
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if assistant.temperature is not None:
            params["temperature"] = assistant.temperature
        if transcript is not None and transcript.may_call:
            params["tools"] = [tool.definition() for tool in transcript.tools]
        return params


def chat_content(turn: Turn) -> str | list[dict]:
    """A message's content: its text with its documents' text after it, and its images as
    `image_url` parts (data URLs: the provider needs no access to our storage)."""
    text = attached.with_documents_as_text(turn.text, turn.attachments)
    images = [a for a in turn.attachments if a.is_image]
    if not images or turn.role != "user":
        return text
    parts = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": a.data_url()}} for a in images]
    return parts


def _finished(run: Run, text: str, finish_reason: str, usage: Usage | None) -> RunUpdate:
    if not text.strip():
        return RunUpdate(
            status=RunStatus.FAILED,
            usage=usage,
            error_code="empty_answer",
            error_message="The model returned an empty answer.",
        )
    messages = [RemoteMessage(run.remote_id, text)]
    if finish_reason in CUT_SHORT:
        return RunUpdate(
            status=RunStatus.INCOMPLETE,
            messages=messages,
            usage=usage,
            error_code="incomplete",
            error_message=f"The answer was cut short ({CUT_SHORT[finish_reason]}).",
        )
    return RunUpdate(status=RunStatus.COMPLETED, messages=messages, usage=usage)


def _usage_of(chunk: dict) -> Usage | None:
    usage = chunk.get("usage")
    if not usage:
        return None
    details = usage.get("prompt_tokens_details") or {}
    return Usage(
        input_tokens=usage.get("prompt_tokens"),
        output_tokens=usage.get("completion_tokens"),
        total_tokens=usage.get("total_tokens"),
        cached_input_tokens=details.get("cached_tokens"),
    )


class _CallsBeingWritten:
    """Tool calls as a stream writes them: pieces of each call's name and arguments, by index."""

    def __init__(self):
        self.calls: dict[int, dict] = {}

    def __bool__(self) -> bool:
        return bool(self.calls)

    def add(self, deltas: list[dict] | None) -> None:
        for delta in deltas or []:
            index = delta.get("index") or 0
            call = self.calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
            call["id"] = delta.get("id") or call["id"]
            function = delta.get("function") or {}
            call["name"] += function.get("name") or ""
            call["arguments"] += function.get("arguments") or ""

    def finished(self, id_prefix: str) -> list[ToolCall]:
        # Some servers give no ids: made up here, unique within the run.
        return [
            ToolCall(call["id"] or f"{id_prefix}-{index}", call["name"], call["arguments"])
            for index, call in sorted(self.calls.items())
        ]
