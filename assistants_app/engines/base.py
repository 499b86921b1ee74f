"""The engine seam: what every protocol engine does, and the shapes it returns.

An engine translates domain operations into provider calls; it never touches the database
and never decides about retries. The run driver (the `runs` package) does both, for every engine.
"""

import logging
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from ..exceptions import ProviderError
from ..models import Assistant, Message, Run, Thread
from .capabilities import capabilities, count_with

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteMessage:
    remote_id: str
    text: str


@dataclass(frozen=True)
class Turn:
    """One message of the history a locally executed run sends: role "user" or "assistant"."""

    role: str
    text: str
    attachments: tuple = ()  # the message's files (attached.Attached), images and documents
    context: str = ""  # the prompt's: numbered passages of the assistant's knowledge (knowledge.py)


SEED_BATCH = 20  # items a provider takes in one call (OpenAI's limit at conversation create)


def batches(turns: Sequence[Turn], size: int = SEED_BATCH) -> list[Sequence[Turn]]:
    return [turns[start : start + size] for start in range(0, len(turns), size)]


@dataclass(frozen=True)
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    estimated: bool = False  # counted here: the provider reported none
    cached_input_tokens: int | None = None  # of input_tokens, those the provider had cached


def cached_tokens(details) -> int | None:
    """The cached part of the input from a usage's details (`input_tokens_details` of the
    Responses API, `prompt_tokens_details` of Chat Completions), where the provider says."""
    return getattr(details, "cached_tokens", None) if details is not None else None


@dataclass(frozen=True)
class ToolCall:
    """A function the provider asks us to call before the run can go on."""

    id: str
    name: str
    arguments: str  # JSON text, exactly as the provider sent it


@dataclass(frozen=True)
class ToolOutput:
    tool_call_id: str
    output: str


@dataclass(frozen=True)
class RunUpdate:
    status: str
    messages: list[RemoteMessage] = field(default_factory=list)
    usage: Usage | None = None
    error_code: str = ""
    error_message: str = ""
    poll_after: float | None = None  # seconds, when the provider asked for a pace
    tool_calls: list[ToolCall] = field(default_factory=list)  # with status requires_action


@dataclass(frozen=True)
class StreamEvent:
    """One event of a run's live stream: new answer text, a status change, or the end."""

    sequence: int | None = None  # the provider's position: resume after it
    delta: str = ""  # text just written
    item_id: str = ""  # the provider's id of the message being written
    update: RunUpdate | None = None
    restart: bool = False  # the answer is written again from the start: forget its text


class Engine:
    """Base class; `thread.assistant` and `run.thread` are loaded by the caller.

    An engine starts a run (`start_run`); the driver then follows it through `stream` where
    the engine has one (`streams`) and streaming is on, and through `poll` otherwise or when
    the stream gives out. A run whose answer is generated in this process (local.py: Chat
    Completions) has only its stream: `can_poll` is false for it.
    """

    streams = False  # whether `stream` is available; the driver polls otherwise

    def __init__(self, provider: dict):
        self.provider = provider

    def can_poll(self, run: Run) -> bool:
        """Whether the provider keeps the run, so that `poll` can say how it is going."""
        return True

    async def context_tokens(self, assistant: Assistant) -> int | None:
        """The model's context window: the assistant's, else what the provider says, if it
        says (llama.cpp, vLLM). None: unknown."""
        if assistant.context_tokens:
            return assistant.context_tokens
        found = await capabilities(self.provider, self.model_of(assistant))
        return found.context_of(self.model_of(assistant))

    async def count_tokens(self, assistant: Assistant, text: str) -> int:
        """Tokens in `text`: by the provider's own tokenizer where it has one, else a rough
        estimate of one token per four characters (OpenAI's rule of thumb for English)."""
        found = await capabilities(self.provider, self.model_of(assistant))
        if found.tokenizer and text:
            try:
                return await count_with(
                    self.provider, found.tokenizer, self.model_of(assistant), text
                )
            except Exception:  # noqa: BLE001 - a count is a nicety: estimate instead
                log.info("provider %s: counting tokens failed", self.provider.get("name"))
        return math.ceil(len(text) / 4)

    def model_of(self, assistant: Assistant) -> str:
        """The assistant's model, or its provider's default model when it names none."""
        model = assistant.model or self.provider.get("default_model")
        if not model:
            raise ProviderError(
                "no_model", "This assistant names no model and its provider has no default one."
            )
        return model

    async def sync_assistant(self, assistant: Assistant) -> None:
        """Create the provider-side assistant, or update it from ours when it has a
        `remote_id`; sets `assistant.remote_id`. Protocols without assistants do nothing."""

    async def ensure_thread(self, thread: Thread, seed: Sequence[Turn] = ()) -> None:
        """Create a provider-side thread holding `seed` (the history before the next prompt,
        oldest first) if it has none yet; sets `thread.remote_id`. Engines whose provider
        keeps no thread leave it empty and are sent the history with each run instead."""

    async def start_run(self, run: Run, message: Message) -> RunUpdate:
        """Send the user's message and start the run; sets `run.remote_id`."""
        raise NotImplementedError

    async def poll(self, run: Run) -> RunUpdate:
        raise NotImplementedError

    async def cancel(self, run: Run) -> RunUpdate:
        raise NotImplementedError

    def stream(self, run: Run, starting_after: int | None) -> AsyncIterator[StreamEvent]:
        """Follow a started run live, from after the given sequence number (None: the start).
        The stream may end before the run does (a dropped connection): the driver resumes."""
        raise NotImplementedError

    def holds_stream(self, run: Run) -> bool:
        """Whether this process holds the run's live stream open, opened when it started the
        run: it can be followed from here only, so this process should drive the run."""
        return False

    async def close_stream(self, run: Run) -> None:
        """Let go of a stream held for the run that nobody followed."""

    async def submit_tool_outputs(
        self, run: Run, outputs: list[ToolOutput], stream: bool = False
    ) -> RunUpdate:
        """Answer a run's `tool_calls`. Only engines that return tool calls implement it.
        With `stream`, the run's stream from here on is held open for `stream()` where the
        protocol offers one (see holds_stream)."""
        raise NotImplementedError
