"""The Responses API engine: a conversation per thread, a background response per run.

`responses.create(background=True)` returns at once with a queued response. The driver
follows it live with `responses.retrieve(stream=True, starting_after=...)`, resuming after the
last sequence number it saw, and polls `responses.retrieve` where streaming fails.
"""

from collections.abc import AsyncIterator

from openai.types.responses import Response

from ..models import Message, Run, RunStatus, Thread
from .base import Engine, RemoteMessage, RunUpdate, StreamEvent, Usage
from .client import get_client, poll_after_seconds, provider_errors

TERMINAL = {"completed", "failed", "cancelled", "incomplete"}


class ResponsesEngine(Engine):
    streams = True

    async def ensure_thread(self, thread: Thread) -> None:
        if thread.remote_id:
            return
        with provider_errors():
            conversation = await get_client(self.provider).conversations.create(
                metadata={"thread_id": str(thread.pk)}
            )
        thread.remote_id = conversation.id

    async def start_run(self, run: Run, message: Message) -> RunUpdate:
        assistant = run.thread.assistant
        params = {
            "model": self.model_of(assistant),
            "conversation": run.thread.remote_id,
            "input": message.text,
            "background": True,
            "store": True,  # background responses must be stored to be retrievable
        }
        # Instructions live in our database and go with every request (prompt objects are gone).
        if assistant.instructions:
            params["instructions"] = assistant.instructions
        if assistant.temperature is not None:
            params["temperature"] = assistant.temperature
        with provider_errors():
            raw = await get_client(self.provider).responses.with_raw_response.create(**params)
        response = raw.parse()
        run.remote_id = response.id
        return to_run_update(response, raw.headers)

    async def poll(self, run: Run) -> RunUpdate:
        with provider_errors():
            raw = await get_client(self.provider).responses.with_raw_response.retrieve(
                run.remote_id
            )
        return to_run_update(raw.parse(), raw.headers)

    async def stream(self, run: Run, starting_after: int | None) -> AsyncIterator[StreamEvent]:
        params = {} if starting_after is None else {"starting_after": starting_after}
        with provider_errors():
            events = await get_client(self.provider).responses.retrieve(
                run.remote_id, stream=True, **params
            )
            async with events:
                async for event in events:
                    yield to_stream_event(event)

    async def cancel(self, run: Run) -> RunUpdate:
        with provider_errors():
            response = await get_client(self.provider).responses.cancel(run.remote_id)
        return to_run_update(response, {})


def to_stream_event(event) -> StreamEvent:
    if event.type == "response.output_text.delta":
        return StreamEvent(event.sequence_number, delta=event.delta, item_id=event.item_id)
    response = getattr(event, "response", None)
    if event.type.startswith("response.") and isinstance(response, Response):
        return StreamEvent(event.sequence_number, update=to_run_update(response, {}))
    return StreamEvent(getattr(event, "sequence_number", None))


def to_run_update(response: Response, headers) -> RunUpdate:
    finished = response.status in TERMINAL
    error_code, error_message = "", ""
    if response.status == "failed":
        error = response.error
        error_code = (error.code if error else "") or "failed"
        error_message = (error.message if error else "") or "The provider reported a failure."
    elif response.status == "incomplete":
        reason = response.incomplete_details.reason if response.incomplete_details else None
        error_code = "incomplete"
        error_message = f"The answer was cut short ({reason or 'no reason given'})."
    return RunUpdate(
        status=RunStatus(response.status or "queued"),
        # A message still being written is not final; it is stored once it is.
        messages=[
            RemoteMessage(remote_id=item.id, text=_text_of(item))
            for item in response.output or []
            if item.type == "message"
            and item.role == "assistant"
            and (finished or item.status == "completed")
        ],
        usage=_usage_of(response),
        error_code=error_code,
        error_message=error_message,
        poll_after=poll_after_seconds(headers),
    )


def _text_of(item) -> str:
    return "".join(
        part.text if part.type == "output_text" else f"(refused: {part.refusal})"
        for part in item.content
    )


def _usage_of(response: Response) -> Usage | None:
    if response.usage is None:
        return None
    return Usage(
        input_tokens=response.usage.input_tokens,
        output_tokens=response.usage.output_tokens,
        total_tokens=response.usage.total_tokens,
    )
