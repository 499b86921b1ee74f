"""The Responses API engine, on whatever part of that API the provider offers.

What the provider offers is found out once (capabilities.py), and each run takes the best
path it allows:

- **conversation**: OpenAI's. A conversation per thread, a background response per run,
  created with its stream and followed live on it (one request), resumed after a break with
  `responses.retrieve(stream=True, starting_after=...)` (after the last sequence number seen),
  or polled with `responses.retrieve` where that does not stream.
- **chain**: background responses without conversations: each run names the thread's last
  answered response as `previous_response_id`, and the first sends the history we keep.
- **stateless**: background responses and neither: each run sends the history we keep
  (history.py) as `input`.
- **streamed here**: no background mode (LiteLLM, Ollama, OpenRouter): the run is generated
  in this process, like a Chat Completions one, from a streamed `responses.create` with the
  history as `input` and `store=false`; Stop closes the stream.

A provider whose cancel does not cancel has its run shown as stopped anyway, and whatever it
writes later is not stored. Unlike the other engines this one reads the thread's history
(read only, through history.py): the provider keeps none on the stateless paths.
"""

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import openai
from django.conf import settings
from django.db.models import Q
from openai.types.responses import Response

from .. import attached, knowledge, prepared, tool_transcript
from ..db import database_sync_to_async
from ..exceptions import ProviderError
from ..history import LEFT_OUT_NOTE, History, fit_history
from ..models import Message, Run, RunStatus, Thread
from ..tool_registry import flat
from ..tool_transcript import Transcript
from .base import (
    RemoteMessage,
    RunUpdate,
    StreamEvent,
    ToolCall,
    ToolOutput,
    Turn,
    Usage,
    batches,
    cached_tokens,
)
from .capabilities import Capabilities, capabilities, remember
from .citations import cite_responses
from .client import (
    BAD_ANSWER,
    first_event,
    get_client,
    get_json,
    is_context_overflow,
    poll_after_seconds,
    post_json,
    provider_errors,
    raw_stream,
)
from .local import UNFINISHED, LocalGeneration, broken, failed_midway

TERMINAL = {"completed", "failed", "cancelled", "incomplete"}
LOCAL_PREFIX = "stream-"  # the remote id of a run generated here (there is none to retrieve)

log = logging.getLogger(__name__)

# run id -> the rest of the stream its response was created with, until `stream` follows it
_held_streams: dict[int, openai.AsyncStream] = {}


def stream_unavailable() -> ProviderError:
    return ProviderError(
        "stream_unavailable", "This provider's responses cannot be followed live; polled instead."
    )


class ResponsesEngine(LocalGeneration):
    async def capabilities(self, assistant) -> Capabilities:
        return await capabilities(self.provider, self.model_of(assistant), responses=True)

    def can_poll(self, run: Run) -> bool:
        return not _generated_here(run)

    async def ensure_thread(self, thread: Thread, seed: Sequence[Turn] = ()) -> None:
        found = await self.capabilities(thread.assistant)
        if thread.remote_id or not (found.responses and found.conversations):
            return
        first, *rest = batches(seed) or [()]
        try:
            with provider_errors():
                body = {"metadata": {"thread_id": str(thread.pk)}, **(await _items(first))}
                conversation, _ = await post_json(self.provider, "/conversations", body)
                remote_id = conversation.get("id") if isinstance(conversation, dict) else None
                if not remote_id or not isinstance(remote_id, str):
                    raise ValueError("a conversation has an id")
        except ProviderError as error:
            if error.code != "endpoint_not_found":
                raise
            # Known to have them, but not any more (a proxy in front, a new version): the
            # thread goes on without one, from the history we keep.
            await remember(self.provider, conversations=False)
            return
        conversations = get_client(self.provider).conversations
        with provider_errors():
            for batch in rest:  # the API takes SEED_BATCH items at create, the rest after
                await conversations.items.create(remote_id, **(await _items(batch)))
        thread.remote_id = remote_id

    async def start_run(self, run: Run, message: Message) -> RunUpdate:
        assistant = run.thread.assistant
        found = await self.capabilities(assistant)
        if not found.responses:
            raise ProviderError(
                "endpoint_not_found",
                "This provider has no /v1/responses: choose the Chat Completions engine for it.",
            )
        if not found.background:
            # Generated by the driver, here, from a stream (see generate).
            run.remote_id = f"{LOCAL_PREFIX}{run.pk}"
            return RunUpdate(status=RunStatus.QUEUED)
        params = {**await self._grounded(run), "background": True, "store": True}
        transcript, overflowed = await _before_starting(run)
        _add_tools(params, _tools_param(transcript))
        if run.thread.remote_id:
            params["conversation"] = run.thread.remote_id
            params["input"] = await _prompt_input(message)
        else:
            history = await self._history(run, found)
            previous = found.previous_response_id and await _last_answered(run)
            if previous:
                params["input"] = await _prompt_input(message)
                params["previous_response_id"] = previous
            else:
                params["input"] = await _as_input(history.turns)
            run.note = history.note if not previous else ""
        if overflowed:
            # The provider found the thread too long only once it ran the last answer: this
            # one is sent shorter from the start, or it would fail the same way.
            params = await self._shorter(run, params, found)
            run.note = LEFT_OUT_NOTE
        try:
            return await self._started(run, params, found)
        except ProviderError as error:
            if error.code != "context_overflow":
                raise
            # Once more, shorter: the provider drops the conversation's oldest items, or we
            # send half the history.
            update = await self._started(run, await self._shorter(run, params, found), found)
            run.note = LEFT_OUT_NOTE
            return update

    async def _started(self, run: Run, params: dict, found: Capabilities) -> RunUpdate:
        """Create the run's background response; sets `run.remote_id`. Where runs stream, it
        streams from its creation: one request, where creating it and then retrieving its
        stream takes two (and a round trip before the first token). The rest of that stream
        is held for `stream`, in this process, which drives the runs it starts."""
        if settings.RUN_STREAMING and found.streamed_retrieve is not False:
            if (update := await self._create_streamed(run, params)) is not None:
                return update
        return await self._create(run, params)

    async def _create(self, run: Run, params: dict) -> RunUpdate:
        """Create a background response; sets `run.remote_id`."""
        with provider_errors():
            answer, headers = await post_json(self.provider, "/responses", params)
            update = _update_of(answer, headers)
            run.remote_id = answer["id"] if isinstance(answer.get("id"), str) else ""
        if not run.remote_id:
            raise ProviderError("bad_answer", BAD_ANSWER)
        return update

    async def _create_streamed(self, run: Run, params: dict) -> RunUpdate | None:
        """The response created with its stream, read up to its first event (which names it);
        None if the provider refused to stream it (nothing was created then)."""
        with provider_errors():
            try:
                body = {**params, "stream": True}
                events = await raw_stream(self.provider, "/responses", body=body)
            except (openai.BadRequestError, openai.UnprocessableEntityError) as error:
                if is_context_overflow(error.message):
                    raise
                # Refused as a whole, so nothing started: this server cannot stream creates.
                log.info("provider refused a streamed create (%s); creating it plainly", error)
                return None
            if not events.response.headers.get("content-type", "").startswith(
                "text/event-stream"
            ):
                # A server that ignores `stream` answers with the response itself.
                try:
                    response = Response.model_validate_json(await events.response.aread())
                finally:
                    await events.close()
                run.remote_id = response.id
                return to_run_update(response, events.response.headers)
            # response.created comes first; anything before it says nothing.
            event = await first_event(events, lambda e: isinstance(e.get("response"), dict))
            try:
                first = to_stream_event(event)
                run.remote_id = str(event["response"].get("id") or "")
                if not run.remote_id or first.update is None:
                    raise ProviderError("bad_answer", BAD_ANSWER)
            except BaseException:
                await events.close()
                raise
        _held_streams[run.pk] = events
        return first.update

    async def _shorter(self, run: Run, params: dict, found: Capabilities) -> dict:
        if "conversation" in params:
            return {**params, "truncation": "auto"}
        history = await self._history(run, found)
        turns = history.turns[-max(1, len(history.turns) // 2) :]
        params = {key: value for key, value in params.items() if key != "previous_response_id"}
        return {**params, "input": await _as_input(turns)}

    async def _history(self, run: Run, found: Capabilities) -> History:
        assistant = run.thread.assistant
        context = assistant.context_tokens or found.context_of(self.model_of(assistant))
        return await database_sync_to_async(fit_history)(
            run, settings.CHAT_HISTORY_MAX_CHARS, context
        )

    async def _grounded(self, run: Run) -> dict:
        """The common parameters, with the passages of the assistant's knowledge this run
        answers from (numbered, for citations) after its instructions."""
        params = self._common(run.thread.assistant)
        if store := _vector_store_of(run.thread.assistant):
            params["tools"] = [{"type": "file_search", "vector_store_ids": [store]}]
        context = await knowledge.acontext_for(run)
        if context:
            params["instructions"] = knowledge.with_context(params.get("instructions", ""), context)
        return params

    def _common(self, assistant) -> dict:
        params = {"model": self.model_of(assistant)}
        # Instructions live in our database and go with every request (prompt objects are gone).
        if assistant.instructions:
            params["instructions"] = assistant.instructions
        if assistant.temperature is not None:
            params["temperature"] = assistant.temperature
        return params

    async def poll(self, run: Run) -> RunUpdate:
        with provider_errors():
            answer, headers = await get_json(self.provider, f"/responses/{run.remote_id}")
            return _update_of(answer, headers)

    async def stream(self, run: Run, starting_after: int | None) -> AsyncIterator[StreamEvent]:
        if _generated_here(run):
            async for event in super().stream(run, starting_after):
                yield event
            return
        if (held := _held_streams.pop(run.pk, None)) is not None:
            with provider_errors():
                async with held:  # the stream of its create (_create_streamed)
                    async for event in held:
                        yield to_stream_event(event)
            return
        found = await self.capabilities(run.thread.assistant)
        if found.streamed_retrieve is False:
            raise stream_unavailable()
        params = {} if starting_after is None else {"starting_after": starting_after}
        with provider_errors():
            events = await raw_stream(
                self.provider, f"/responses/{run.remote_id}", query={"stream": "true", **params}
            )
            async with events:
                if not events.response.headers.get("content-type", "").startswith(
                    "text/event-stream"
                ):
                    await remember(self.provider, streamed_retrieve=False)
                    raise stream_unavailable()
                async for event in events:
                    yield to_stream_event(event)

    def holds_stream(self, run: Run) -> bool:
        return run.pk in _held_streams

    async def close_stream(self, run: Run) -> None:
        if (events := _held_streams.pop(run.pk, None)) is not None:
            await events.close()
        await super().close_stream(run)

    async def submit_tool_outputs(
        self, run: Run, outputs: list[ToolOutput], stream: bool = False
    ) -> RunUpdate:
        """A response that asked for tools has ended: the outputs go in a new background
        response chained to it (through the conversation, or `previous_response_id`), which
        the run follows from now on (`run.remote_id`)."""
        if _generated_here(run):
            return await super().submit_tool_outputs(run, outputs, stream)
        params = {
            **await self._grounded(run),
            "background": True,
            "store": True,
            "input": [
                {"type": "function_call_output", "call_id": o.tool_call_id, "output": o.output}
                for o in outputs
            ],
        }
        _add_tools(params, _tools_param(await tool_transcript.load_async(run), answered=1))
        if run.thread.remote_id:
            params["conversation"] = run.thread.remote_id
        else:
            params["previous_response_id"] = run.remote_id
        return await self._create(run, params)

    async def cancel(self, run: Run) -> RunUpdate:
        if _generated_here(run):
            return await super().cancel(run)  # stopped where it is generated (local.py)
        with provider_errors():
            response = await get_client(self.provider).responses.cancel(run.remote_id)
        update = to_run_update(response, {})
        if response.status not in ("queued", "in_progress"):
            return update
        # The provider answered but goes on writing: the run is stopped here all the same,
        # with what was written so far; whatever comes later is not stored.
        await remember(self.provider, cancel=False)
        said = run.partial_text.rstrip()
        messages = [RemoteMessage(f"run-{run.pk}", said)] if said.strip() else []
        return RunUpdate(status=RunStatus.CANCELLED, messages=messages)

    async def generate(
        self,
        run: Run,
        history: list[Turn],
        on_text: Callable[[str], Awaitable[None]] | None = None,
        transcript: Transcript | None = None,
    ) -> RunUpdate:
        """A run of a provider without background mode, streamed from its create call."""
        transcript = transcript or Transcript()
        context = history[-1].context if history else ""
        common = self._common(run.thread.assistant)
        if context:
            common["instructions"] = knowledge.with_context(common.get("instructions", ""), context)
        params = {
            **common,
            "input": await _as_input(history) + transcript.response_items(),
            "store": False,
            "stream": True,
            **_tools_param(transcript),
        }
        pieces: list[str] = []
        final = None
        try:
            with provider_errors():
                events = await get_client(self.provider).responses.create(**params)
                async with events:
                    async for event in events:
                        if event.type == "response.output_text.delta":
                            pieces.append(event.delta)
                            if on_text:
                                await on_text(event.delta)
                        elif event.type in ("response.completed", "response.failed",
                                            "response.incomplete"):  # fmt: skip
                            final = event.response
                        elif event.type == "error":
                            raise ProviderError("stream_error", event.message)
        except ProviderError as error:
            return failed_midway(run, pieces, error, None)
        if final is None:
            return broken(run, pieces, "stream_broken", UNFINISHED, None)
        update = to_run_update(final, {})
        if update.tool_calls:
            return update  # the driver runs them; the next generation sends their outputs
        text = "".join(pieces) or "".join(m.text for m in update.messages)
        messages = [RemoteMessage(run.remote_id, text)] if text.strip() else []
        return RunUpdate(
            status=update.status,
            messages=messages,
            usage=update.usage,
            error_code=update.error_code,
            error_message=update.error_message,
        )


def _generated_here(run: Run) -> bool:
    """A run of a provider without background mode: generated in this process (local.py)."""
    return run.remote_id.startswith(LOCAL_PREFIX)


def _vector_store_of(assistant) -> str:
    """The assistant's knowledge in the provider's vector store, searched with file_search."""
    return assistant.vector_store_id if knowledge.uses_vector_store(assistant) else ""


async def _as_input(turns: list[Turn]) -> list[dict]:
    # Off the event loop: files are read from storage.
    return await database_sync_to_async(_input_items)(turns)


def _input_items(turns: list[Turn]) -> list[dict]:
    return [{"role": turn.role, "content": input_content(turn)} for turn in turns]


async def _prompt_input(message: Message) -> str | list[dict]:
    """The user's message alone (the provider holds the rest), with its files."""

    def build():
        files = attached.of_messages([message.pk]).get(message.pk, ())
        return _input_items([Turn(message.role, message.text, files)]) if files else message.text

    if attached.known_to_have_none(message):
        return message.text
    return await database_sync_to_async(build)()


def input_content(turn: Turn) -> str | list[dict]:
    """A message's content: images as `input_image`, PDFs as `input_file` (data URLs, so the
    provider needs no access to our storage), other documents as text after the message."""
    if not turn.attachments or turn.role != "user":
        return turn.text

    def as_file(a) -> bool:
        return a.content_type == attached.PDF

    text = attached.with_documents_as_text(turn.text, turn.attachments, keep=as_file)
    parts = [{"type": "input_text", "text": text}]
    for a in turn.attachments:
        if a.is_image:
            parts.append({"type": "input_image", "image_url": a.data_url(), "detail": "auto"})
        elif as_file(a):
            parts.append({"type": "input_file", "filename": a.name, "file_data": a.data_url()})
    return parts


async def _items(turns: Sequence[Turn]) -> dict:
    """Seed items of a new provider conversation (edited path, switched assistant...)."""
    if not turns:
        return {}
    return {"items": [{"type": "message", **item} for item in await _as_input(list(turns))]}


def _tools_param(transcript: Transcript, answered: int = 0) -> dict:
    """The function tools to offer, while rounds are left (`answered`: rounds just done)."""
    if not transcript.tools or len(transcript.rounds) + answered >= settings.TOOL_MAX_ROUNDS:
        return {}
    return {"tools": [flat(tool.definition()) for tool in transcript.tools]}


def _add_tools(params: dict, offered: dict) -> None:
    """Function tools beside those already there (file_search over the assistant's store)."""
    if offered:
        params["tools"] = [*params.get("tools", []), *offered["tools"]]


@database_sync_to_async
def _last_answered(run: Run) -> str:
    """The provider's id of the response that wrote the message the run's prompt follows, to
    chain this run to: the provider holds that response's history, which is the run's path
    when the response came from this engine and provider and completed."""
    if run.prompt_id is None:
        return ""
    parent = Message.objects.filter(pk=run.prompt_id).values_list("parent_id", flat=True)
    assistant = run.thread.assistant
    previous = (
        Run.objects.filter(messages__pk=parent[:1], status=RunStatus.COMPLETED)
        .filter(
            Q(assistant=None)  # from before threads could switch assistant
            | Q(assistant__engine=assistant.engine, assistant__provider=assistant.provider)
        )
        .exclude(remote_id="")
        .values_list("remote_id", flat=True)
        .first()
    )
    return "" if previous is None or previous.startswith(LOCAL_PREFIX) else previous


@database_sync_to_async
def _before_starting(run: Run) -> tuple[Transcript, bool]:
    """In one trip to a database thread: the tools the run may call, and whether the run
    before it in the thread failed for a context too long."""
    overflowed = _last_error_code(thread_id=run.thread_id, run_id=run.pk) == ["context_overflow"]
    return tool_transcript.load(run, started=False), overflowed


@prepared.select
def _last_error_code(thread_id: int, run_id: int):
    """The error code of the run before `run_id` in the thread, if there is one."""
    earlier = Run.objects.filter(thread_id=thread_id, pk__lt=run_id).order_by("-pk")
    return earlier.values_list("error_code", flat=True)[:1]


def _update_of(answer, headers) -> RunUpdate:
    """A response as the provider's JSON (a create's or a poll's answer) as an update; raises
    ValueError for anything else (provider_errors: "bad_answer")."""
    if (status := _under_way(answer)) is not None:
        return RunUpdate(status=status, poll_after=poll_after_seconds(headers))
    if not isinstance(answer, dict):
        raise ValueError("a response is a JSON object")
    # What the SDK's typed calls build, its fields' models within (not validated: nor are they).
    return to_run_update(Response.model_construct(**answer), headers)


def _under_way(response) -> RunStatus | None:
    """The status of a polled response (its JSON) still under way with nothing final in it
    (no usage, no message or call finished): all that an update takes from it, read without
    building the SDK's model of the response (most polls of a run; BENCHMARKS.md, "Cost per
    answer"). None for any other answer, which is read whole."""
    if not isinstance(response, dict) or response.get("usage") is not None:
        return None
    output = response.get("output") or []
    if response.get("status") not in ("queued", "in_progress") or not isinstance(output, list):
        return None
    for item in output:
        writing = isinstance(item, dict) and item.get("type") in ("message", "reasoning")
        if not writing or item.get("status") == "completed":
            return None
    return RunStatus(response["status"])


def to_stream_event(event: dict) -> StreamEvent:
    """A streamed event, as the provider's JSON (client.raw_stream): only an event that
    carries the whole response is made into the SDK's model, a few per run."""
    kind, sequence = event.get("type") or "", event.get("sequence_number")
    if kind == "response.output_text.delta":
        return StreamEvent(sequence, delta=event.get("delta") or "", item_id=event.get("item_id"))
    response = event.get("response")
    if kind.startswith("response.") and isinstance(response, dict):
        status = response.get("status")
        if status in ("queued", "in_progress") and not response.get("output"):
            # Under way with nothing written yet (created, in progress): its status is all it
            # says, and no model need be built to read it.
            return StreamEvent(sequence, update=RunUpdate(status=RunStatus(status)))
        return StreamEvent(sequence, update=to_run_update(Response.model_construct(**response), {}))
    return StreamEvent(sequence)


def to_run_update(response: Response, headers) -> RunUpdate:
    finished = response.status in TERMINAL
    error_code, error_message = "", ""
    if response.status == "failed":
        error = response.error
        error_code = (error.code if error else "") or "failed"
        error_message = (error.message if error else "") or "The provider reported a failure."
        if error_code == "context_length_exceeded" or is_context_overflow(error_message):
            error_code = "context_overflow"
    elif response.status == "incomplete":
        reason = response.incomplete_details.reason if response.incomplete_details else None
        error_code = "incomplete"
        error_message = f"The answer was cut short ({reason or 'no reason given'})."
    calls = [
        ToolCall(item.call_id, item.name, item.arguments)
        for item in response.output or []
        if item.type == "function_call"
    ]
    if response.status == "completed" and calls:
        # It ended asking for tools: the run needs them before it can go on.
        return RunUpdate(status=RunStatus.REQUIRES_ACTION, tool_calls=calls,
                         usage=_usage_of(response))  # fmt: skip
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
        cite_responses(part.text, part.annotations)
        if part.type == "output_text"
        else f"(refused: {part.refusal})"
        for part in item.content
    )


def _usage_of(response: Response) -> Usage | None:
    if response.usage is None:
        return None
    return Usage(
        input_tokens=response.usage.input_tokens,
        output_tokens=response.usage.output_tokens,
        total_tokens=response.usage.total_tokens,
        cached_input_tokens=cached_tokens(response.usage.input_tokens_details),
    )
