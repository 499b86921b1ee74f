"""The Assistants API (v2) engine: an assistant, a thread per thread, a run per answer.

The classic flow: add the user's message to the provider's thread, create a run, poll
`runs.retrieve` until the run is terminal, then read the run's messages with `messages.list`.
A run that needs function tools stops at requires_action; the driver runs them and the engine
submits their outputs. OpenAI closed this API on 2026-08-26; compatible servers still speak it.

Streaming: a run can be streamed only from the call that starts it (`runs.create`) or sets it
going again (`submit_tool_outputs`), with `stream=True`; there is no way to reopen a stream
later. So with RUN_STREAMING those calls stream, the engine reads up to the run's first event
(for its id and status) and keeps the rest open in this process for the driver to follow
(`stream`). A stream that breaks, or a run driven by another process, is polled instead. A
server that refuses to stream (400) or ignores `stream` (answers with the run) is polled too.
"""

import json
from collections.abc import AsyncIterator

import openai
from django.conf import settings
from openai import AsyncStream
from openai.types.beta.threads import Run as RemoteRun

from ..exceptions import ProviderError
from ..models import Assistant, Message, Run, RunStatus, Thread
from ..tool_registry import allowed_tools_async
from .base import Engine, RemoteMessage, RunUpdate, StreamEvent, ToolCall, ToolOutput, Usage
from .client import get_client, poll_after_seconds, provider_errors

# Statuses whose run has written its answer; other statuses have nothing worth reading.
ANSWERED = {"completed", "incomplete"}
MESSAGE_PAGE_SIZE = 100

# Run id -> the rest of the stream its run was started (or set going again) with, opened by
# this process and waiting for the driver here to follow it.
_open_streams: dict[int, AsyncStream] = {}


class AssistantsEngine(Engine):
    streams = True  # only for runs this process started with RUN_STREAMING on (see above)

    async def sync_assistant(self, assistant: Assistant) -> None:
        params = {
            "name": assistant.name,
            "description": assistant.description,
            "instructions": assistant.instructions,
            "model": self.model_of(assistant),
            "tools": await _definitions(assistant),
            "metadata": {"assistant_id": str(assistant.pk)},
        }
        if assistant.temperature is not None:
            params["temperature"] = assistant.temperature
        api = get_client(self.provider).beta.assistants
        with provider_errors():
            if assistant.remote_id:
                try:
                    remote = await api.update(assistant.remote_id, **params)
                except openai.NotFoundError:
                    # Deleted on the provider, or the assistant moved to another provider.
                    remote = await api.create(**params)
            else:
                remote = await api.create(**params)
        assistant.remote_id = remote.id

    async def ensure_thread(self, thread: Thread) -> None:
        if thread.remote_id:
            return
        with provider_errors():
            remote = await get_client(self.provider).beta.threads.create(
                metadata={"thread_id": str(thread.pk)}
            )
        thread.remote_id = remote.id

    async def start_run(self, run: Run, message: Message) -> RunUpdate:
        """Add the message to the thread and start a run; sets `message.remote_id` too.

        The driver has created the remote assistant (`sync_assistant`) and thread already.
        """
        assistant = run.thread.assistant
        threads = get_client(self.provider).beta.threads
        # Our database holds the truth: what the assistant is now goes with every run, so a
        # remote assistant that missed an admin change still answers as configured here.
        params = {
            "assistant_id": assistant.remote_id,
            "model": self.model_of(assistant),
            "instructions": assistant.instructions,
            "tools": await _definitions(assistant),
        }
        if assistant.temperature is not None:
            params["temperature"] = assistant.temperature
        with provider_errors():
            if not message.remote_id:  # else added by an earlier attempt to start this run
                remote_message = await threads.messages.create(
                    run.thread.remote_id, role="user", content=message.text
                )
                message.remote_id = remote_message.id
            create = threads.runs.with_raw_response.create
            remote_run, headers = await self._call(
                run, lambda **stream: create(run.thread.remote_id, **params, **stream)
            )
        run.remote_id = remote_run.id
        return await self._update(remote_run, headers)

    async def poll(self, run: Run) -> RunUpdate:
        with provider_errors():
            raw = await get_client(self.provider).beta.threads.runs.with_raw_response.retrieve(
                run.remote_id, thread_id=run.thread.remote_id
            )
        return await self._update(raw.parse(), raw.headers)

    async def cancel(self, run: Run) -> RunUpdate:
        with provider_errors():
            raw = await get_client(self.provider).beta.threads.runs.with_raw_response.cancel(
                run.remote_id, thread_id=run.thread.remote_id
            )
        return await self._update(raw.parse(), raw.headers)

    async def submit_tool_outputs(
        self, run: Run, outputs: list[ToolOutput], stream: bool = False
    ) -> RunUpdate:
        submit = get_client(self.provider).beta.threads.runs.with_raw_response.submit_tool_outputs
        params = {
            "thread_id": run.thread.remote_id,
            "tool_outputs": [
                {"tool_call_id": output.tool_call_id, "output": output.output} for output in outputs
            ],
        }
        with provider_errors():
            remote_run, headers = await self._call(
                run, lambda **stream: submit(run.remote_id, **params, **stream), stream
            )
        return await self._update(remote_run, headers)

    async def _call(self, run: Run, call, stream: bool = True) -> tuple[RemoteRun, dict]:
        """Make a call that answers with a run, streamed when streaming is on: the run as of
        its first event, the rest of the stream then waits in `_open_streams`."""
        if not (stream and settings.RUN_STREAMING):
            raw = await call()
            return raw.parse(), raw.headers
        try:
            raw = await call(stream=True)
        except (openai.BadRequestError, openai.UnprocessableEntityError):
            # Refused as a whole, so nothing started: this server cannot stream runs.
            raw = await call()
            return raw.parse(), raw.headers
        if not raw.headers.get("content-type", "").startswith("text/event-stream"):
            # A server that ignores `stream` answers with the run itself.
            body = await raw.http_response.aread()
            return _run_from_body(body), raw.headers
        events: AsyncStream = raw.parse()
        try:
            while not isinstance((event := await anext(events)).data, RemoteRun):
                pass  # a thread.created, for instance
        except StopAsyncIteration:
            raise ProviderError(
                "stream_error", "The provider's stream ended before the run began."
            ) from None
        except BaseException:
            await events.close()
            raise
        _open_streams[run.pk] = events
        return event.data, raw.headers

    def holds_stream(self, run: Run) -> bool:
        return run.pk in _open_streams

    async def stream(self, run: Run, starting_after: int | None) -> AsyncIterator[StreamEvent]:
        events = _open_streams.pop(run.pk, None)
        if events is None:
            raise ProviderError(
                "stream_unavailable", "This run's stream is not open here; it is polled instead."
            )
        message_id = ""
        with provider_errors():
            async with events:
                async for event in events:
                    if isinstance(event.data, RemoteRun):
                        yield StreamEvent(update=await self._update(event.data, {}))
                    elif event.event == "thread.message.delta":
                        text = _delta_text(event.data)
                        if message_id and event.data.id != message_id:
                            text = "\n\n" + text  # the run's next message
                        message_id = event.data.id
                        yield StreamEvent(delta=text, item_id=message_id)
                    elif event.event == "error":
                        raise ProviderError("stream_error", event.data.message, retryable=True)

    async def close_stream(self, run: Run) -> None:
        if (events := _open_streams.pop(run.pk, None)) is not None:
            await events.close()

    async def _update(self, remote: RemoteRun, headers) -> RunUpdate:
        error_code, error_message = _error_of(remote)
        return RunUpdate(
            status=RunStatus(remote.status),
            messages=await self._answers(remote) if remote.status in ANSWERED else [],
            usage=_usage_of(remote),
            error_code=error_code,
            error_message=error_message,
            poll_after=poll_after_seconds(headers),
            tool_calls=_tool_calls_of(remote),
        )

    async def _answers(self, remote: RemoteRun) -> list[RemoteMessage]:
        """The assistant messages this run wrote, oldest first, all pages."""
        with provider_errors():
            page = get_client(self.provider).beta.threads.messages.list(
                remote.thread_id, run_id=remote.id, order="asc", limit=MESSAGE_PAGE_SIZE
            )
            found = [m async for m in page if m.role == "assistant"]
        answers = [RemoteMessage(remote_id=m.id, text=_text_of(m)) for m in found]
        return [answer for answer in answers if answer.text]


async def has_assistants_api(provider: dict) -> bool:
    """Whether the provider still serves the Assistants API (OpenAI closed it; the
    simulator and some compatible servers have it). Raises ProviderError if it does not
    answer at all."""
    try:
        with provider_errors():
            await get_client(provider).beta.assistants.list(limit=1)
    except ProviderError as error:
        if error.retryable or error.code in ("unauthorized", "forbidden", "tls_failure"):
            raise
        return False
    return True


def _run_from_body(body: bytes) -> RemoteRun:
    """The run in the body of a call that asked for a stream but was not served as one: the
    run itself (a server that ignores `stream`), or a whole stream served with the wrong
    content type, whose last run event says where the run is now."""
    text = body.decode("utf-8", errors="replace").lstrip()
    if not text.startswith(("event:", "data:")):
        return RemoteRun.model_validate(json.loads(text))  # not JSON: provider_errors says so
    runs = [
        data
        for line in text.splitlines()
        if line.startswith("data:")
        and (data := line[5:].strip()).startswith("{")
        and '"thread.run"' in data
    ]
    if not runs:
        raise ValueError("a stream without a run")
    return RemoteRun.model_validate(json.loads(runs[-1]))


def _error_of(remote: RemoteRun) -> tuple[str, str]:
    if remote.status == "failed":
        error = remote.last_error
        return (
            (error.code if error else "") or "failed",
            (error.message if error else "") or "The provider reported a failure.",
        )
    if remote.status == "incomplete":
        reason = remote.incomplete_details.reason if remote.incomplete_details else None
        return "incomplete", f"The answer was cut short ({reason or 'no reason given'})."
    if remote.status == "expired":
        return "expired", "The run expired on the provider before it finished."
    return "", ""


async def _definitions(assistant: Assistant) -> list[dict]:
    """The assistant's allowed tools, built in and MCP (tool_registry.py), as functions."""
    allowed = await allowed_tools_async(assistant)
    return [tool.definition() for tool in allowed.values()]


def _tool_calls_of(remote: RemoteRun) -> list[ToolCall]:
    if remote.status != "requires_action" or remote.required_action is None:
        return []
    return [
        ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments)
        for call in remote.required_action.submit_tool_outputs.tool_calls
    ]


def _delta_text(delta) -> str:
    return "".join(
        part.text.value or ""
        for part in delta.delta.content or []
        if part.type == "text" and part.text is not None
    )


def _text_of(message) -> str:
    """The message's text parts; images are left out, a refusal is said as one."""
    parts = []
    for part in message.content:
        if part.type == "text":
            parts.append(part.text.value)
        elif part.type == "refusal":
            parts.append(f"(refused: {part.refusal})")
    return "\n\n".join(parts)


def _usage_of(remote: RemoteRun) -> Usage | None:
    if remote.usage is None:
        return None
    return Usage(
        input_tokens=remote.usage.prompt_tokens,
        output_tokens=remote.usage.completion_tokens,
        total_tokens=remote.usage.total_tokens,
    )
