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
from collections.abc import AsyncIterator, Sequence

import openai
from django.conf import settings
from openai import AsyncStream
from openai.types.beta.threads import Run as RemoteRun

from .. import attached, knowledge
from ..db import database_sync_to_async
from ..exceptions import ProviderError
from ..models import Assistant, Message, Run, RunStatus, Thread
from ..tool_registry import allowed_tools_async
from . import openai_files
from .base import (
    Engine,
    RemoteMessage,
    RunUpdate,
    StreamEvent,
    ToolCall,
    ToolOutput,
    Turn,
    Usage,
    batches,
)
from .citations import cite_assistants
from .client import first_event, get_client, poll_after_seconds, provider_errors

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


async def _tools_of(assistant: Assistant) -> list[dict]:
    """Its allowed tools (built in and MCP), and file_search over its knowledge where the
    provider keeps it."""
    definitions = await _definitions(assistant)
    if knowledge.uses_vector_store(assistant) and assistant.vector_store_id:
        definitions = [*definitions, {"type": "file_search"}]
    return definitions


def remember_upload(attachment_id: int, provider: str, file_id: str) -> None:
    """Keep a provider's id of an attachment, so it is uploaded once and deleted with it."""
    from ..models import Attachment

    attachment = Attachment.objects.filter(pk=attachment_id).first()
    if attachment is not None:
        attachment.remote_files = {**attachment.remote_files, provider: file_id}
        attachment.save(update_fields=["remote_files"])

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
            "tools": await _tools_of(assistant),
            "metadata": {"assistant_id": str(assistant.pk)},
        }
        if knowledge.uses_vector_store(assistant) and assistant.vector_store_id:
            params["tool_resources"] = {
                "file_search": {"vector_store_ids": [assistant.vector_store_id]}
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

    async def ensure_thread(self, thread: Thread, seed: Sequence[Turn] = ()) -> None:
        if thread.remote_id:
            return
        first, *rest = batches(seed) or [()]
        threads = get_client(self.provider).beta.threads
        with provider_errors():
            seeded = {"messages": _seed(first)} if first else {}
            remote = await threads.create(metadata={"thread_id": str(thread.pk)}, **seeded)
            for batch in rest:  # one at a time: the API adds no more at once
                for item in _seed(batch):
                    await threads.messages.create(remote.id, **item)
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
            "tools": await _tools_of(assistant),
        }
        if assistant.temperature is not None:
            params["temperature"] = assistant.temperature
        context = await knowledge.acontext_for(run)
        if context:  # the passages of its knowledge this run answers from, numbered
            params["additional_instructions"] = context
        with provider_errors():
            if not message.remote_id:  # else added by an earlier attempt to start this run
                remote_message = await threads.messages.create(
                    run.thread.remote_id, role="user", **await self._message_content(message)
                )
                message.remote_id = remote_message.id
            create = threads.runs.with_raw_response.create
            remote_run, headers = await self._call(
                run, lambda **stream: create(run.thread.remote_id, **params, **stream)
            )
        run.remote_id = remote_run.id
        return await self._update(remote_run, headers)

    async def _message_content(self, message: Message) -> dict:
        """The message's content with its files: images as `image_file` parts, PDF and DOCX
        documents as attachments searched with `file_search`, uploaded to the provider once
        (their ids kept); text documents as text after the message."""
        files = (await database_sync_to_async(attached.of_messages)([message.pk])).get(
            message.pk, ()
        )
        if not files:
            return {"content": message.text}

        def as_file(a) -> bool:
            return a.content_type in (attached.PDF, DOCX)

        text = attached.with_documents_as_text(message.text, files, keep=as_file)
        content, attachments = [{"type": "text", "text": text}], []
        for a in files:
            if a.is_image:
                file_id = await self._uploaded(a, "vision")
                content.append({"type": "image_file", "image_file": {"file_id": file_id}})
            elif as_file(a):
                file_id = await self._uploaded(a, "assistants")
                attachments.append({"file_id": file_id, "tools": [{"type": "file_search"}]})
        return {"content": content, **({"attachments": attachments} if attachments else {})}

    async def _uploaded(self, a, purpose: str) -> str:
        name = self.provider.get("name", "")
        if a.remote_files.get(name):
            return a.remote_files[name]
        data = await database_sync_to_async(a.data)()
        file_id = await openai_files.upload(self.provider, a.name, data, a.content_type, purpose)
        await database_sync_to_async(remember_upload)(a.pk, name, file_id)
        return file_id

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
        # The run comes first but for a thread.created, for instance.
        event = await first_event(events, lambda e: isinstance(e.data, RemoteRun))
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


def _seed(turns: Sequence[Turn]) -> list[dict]:
    return [{"role": turn.role, "content": turn.text} for turn in turns]


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
            parts.append(cite_assistants(part.text.value, part.text.annotations))
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
