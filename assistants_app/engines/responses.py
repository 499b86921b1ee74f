"""The Responses API engine: a conversation per thread, a background response per run.

`responses.create(background=True)` returns at once with a queued response that we poll
with `responses.retrieve`, the way Assistants API runs were polled.
"""

from openai.types.responses import Response

from ..models import Message, Run, RunStatus, Thread
from .base import Engine, RemoteMessage, RunUpdate, Usage
from .client import get_client, poll_after_seconds, provider_errors

TERMINAL = {"completed", "failed", "cancelled", "incomplete"}


class ResponsesEngine(Engine):
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

    async def cancel(self, run: Run) -> RunUpdate:
        with provider_errors():
            response = await get_client(self.provider).responses.cancel(run.remote_id)
        return to_run_update(response, {})


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
