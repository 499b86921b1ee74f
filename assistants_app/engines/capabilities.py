"""What a provider offers, found out once and remembered (ProviderCapabilities).

Servers that speak "the OpenAI API" speak different parts of it: OpenAI has the Conversations
API, background responses, streamed retrieval and cancel; LiteLLM, Ollama and OpenRouter serve
`/v1/responses` statelessly; llama.cpp and vLLM say their context size in their model list and
count tokens at `/tokenize`. `probe` asks, with small requests (a few tokens of answer), and
`capabilities` keeps the answer in the database and in this process, so a run asks nothing.
A run that finds out otherwise (a 404 on `/conversations`, a cancel that does not cancel)
corrects the record with `remember`.
"""

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass, field, fields

import httpx
import openai
from django.db import IntegrityError
from django.utils import timezone

from ..db import database_sync_to_async
from ..exceptions import ProviderError
from ..models import ProviderCapabilities
from .client import get_client, provider_errors

log = logging.getLogger(__name__)

PROBE_PROMPT = "Say OK."
PROBE_OUTPUT_TOKENS = 16  # OpenAI's least
# Refusals that say nothing of the feature: the probe cannot go on and says why.
NOT_ABOUT_THE_FEATURE = (
    "unauthorized", "forbidden", "model_not_found", "tls_failure", "dns_failure",
    "connection_refused", "connection_error", "timeout", "rate_limited", "server_error",
)  # fmt: skip


def _missing(error: ProviderError) -> bool:
    """Whether a refusal means "no such API here": a missing route, or a parameter refused."""
    return not error.retryable and error.code not in NOT_ABOUT_THE_FEATURE


@dataclass
class Capabilities:
    responses: bool | None = None
    conversations: bool | None = None
    background: bool | None = None
    streamed_retrieve: bool | None = None
    cancel: bool | None = None
    previous_response_id: bool | None = None
    tokenizer: str = ""  # the URL that counts tokens, "" when there is none
    context_sizes: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    model: str = ""

    def context_of(self, model: str) -> int | None:
        return self.context_sizes.get(model) or (
            # One-model servers (llama-server) answer to any model name.
            next(iter(self.context_sizes.values())) if len(self.context_sizes) == 1 else None
        )


# provider name -> what it offers, for this process (the database has it for the others),
# and when it was read there: read again after a while, so a check in admin reaches every
# process.
_known: dict[str, Capabilities] = {}
_read_at: dict[str, float] = {}
REREAD_SECONDS = 300
# One probe at a time per provider and event loop (a lock belongs to one loop).
_probing: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = weakref.WeakKeyDictionary()


async def capabilities(provider: dict, model: str, responses: bool = False) -> Capabilities:
    """The provider's capabilities: remembered, or found out now (once, however many runs
    ask at the same time); with `responses`, its Responses API's too, which costs a few tiny
    answers. Raises ProviderError when the provider cannot be asked."""
    name = provider["name"]
    if _enough(_known.get(name), responses) and not _stale(name):
        return _known[name]
    locks = _probing.setdefault(asyncio.get_running_loop(), {})
    async with locks.setdefault(name, asyncio.Lock()):
        found = None if _stale(name) else _known.get(name)
        found = found or await _load(name)
        if not _enough(found, responses):
            found = await probe(provider, model, responses)
            await _save(name, found)
        _known[name], _read_at[name] = found, time.monotonic()
    return found


def _stale(name: str) -> bool:
    read_at = _read_at.get(name)
    return read_at is not None and time.monotonic() - read_at > REREAD_SECONDS


def _enough(found: Capabilities | None, responses: bool) -> bool:
    return found is not None and (not responses or found.responses is not None)


async def remember(provider: dict, **changes) -> None:
    """Correct what is known of a provider (a run found a feature missing after all)."""
    name = provider["name"]
    known = _known.get(name) or await _load(name) or Capabilities()
    for key, value in changes.items():
        setattr(known, key, value)
    _known[name] = known
    await _save(name, known)
    log.info("provider %s: now known to have %s", name, changes)


def forget() -> None:
    """Drop this process's memory (tests; the admin page's check saves anew anyway)."""
    _known.clear()
    _read_at.clear()


async def probe(provider: dict, model: str, responses: bool = True) -> Capabilities:
    """Ask the provider what it offers. Raises ProviderError if it does not answer at all."""
    found = Capabilities(model=model)
    found.context_sizes = await _context_sizes(provider)
    found.tokenizer = await _tokenizer(provider, model)
    if responses:
        await _probe_responses(provider, model, found)
    return found


async def _context_sizes(provider: dict) -> dict:
    """Context sizes the model list gives: vLLM's `max_model_len`, llama-server's `meta`
    (trained size; its `/props` has the size it actually runs with, which wins)."""
    try:
        with provider_errors():
            page = await get_client(provider).models.list()
    except ProviderError as error:
        if not _missing(error):
            raise  # it does not answer at all: say why
        return {}
    sizes = {}
    for model in page.data:
        extra = model.model_extra or {}
        meta = extra.get("meta") if isinstance(extra.get("meta"), dict) else {}
        size = extra.get("max_model_len") or meta.get("n_ctx") or meta.get("n_ctx_train")
        if isinstance(size, int) and size > 0:
            sizes[model.id] = size
    running = await _llama_server_context(provider)
    if running and len(sizes) <= 1:
        sizes = {model_id: running for model_id in sizes} or {"*": running}
    return sizes


async def _llama_server_context(provider: dict) -> int | None:
    try:
        props = await get_client(provider).get(_root(provider) + "/props", cast_to=object)
        size = props.get("default_generation_settings", {}).get("n_ctx")
    except (openai.APIError, httpx.HTTPError, AttributeError, ValueError):
        return None
    return size if isinstance(size, int) and size > 0 else None


async def _tokenizer(provider: dict, model: str) -> str:
    """The endpoint that counts tokens: `/tokenize` (llama-server, vLLM), or
    llama-cpp-python's `/extras/tokenize/count`; "" when neither answers."""
    for url in (_root(provider) + "/tokenize", _root(provider) + "/extras/tokenize/count"):
        try:
            if await count_with(provider, url, model, PROBE_PROMPT):
                return url
        except (openai.APIError, httpx.HTTPError, ProviderError, ValueError):
            continue
    return ""


async def count_with(provider: dict, url: str, model: str, text: str) -> int:
    """Tokens in `text` by the provider's own tokenizer at `url`. The body carries each
    server's field: llama-server reads `content`, vLLM `prompt`, llama-cpp-python `input`."""
    body = {"model": model, "content": text, "prompt": text, "input": text}
    answer = await get_client(provider).post(url, body=body, cast_to=object)
    if not isinstance(answer, dict):
        raise ValueError("not a token count")
    if isinstance(answer.get("count"), int):
        return answer["count"]
    if isinstance(answer.get("tokens"), list):
        return len(answer["tokens"])
    raise ValueError("not a token count")


async def _probe_responses(provider: dict, model: str, found: Capabilities) -> None:
    client = get_client(provider)
    found.conversations = await _has_conversations(provider, found)
    params = {"model": model, "input": PROBE_PROMPT, "max_output_tokens": PROBE_OUTPUT_TOKENS}
    try:
        with provider_errors():
            background = await client.responses.create(**params, background=True, store=True)
    except ProviderError as error:
        if not _missing(error):
            raise
        found.notes.append(f"background responses: {error.message}")
        background = None
    if background is None or not background.background:
        # Refused, or ignored (answered whole): such a provider is followed from the create call.
        found.background = False
        found.responses = await _answers(provider, params, found)
    else:
        found.responses = found.background = True
        found.cancel = await _cancels(provider, background.id, found)
        found.streamed_retrieve = await _streams_retrieval(provider, background.id, found)
    if found.responses:
        found.previous_response_id = await _chains(provider, params, found)


async def _has_conversations(provider: dict, found: Capabilities) -> bool:
    try:
        with provider_errors():
            conversation = await get_client(provider).conversations.create(
                metadata={"purpose": "capability check"}
            )
    except ProviderError as error:
        if not _missing(error):
            raise
        found.notes.append(error.message)
        return False
    try:
        with provider_errors():
            await get_client(provider).conversations.delete(conversation.id)
    except ProviderError:
        pass  # an empty conversation left behind costs nothing
    return True


async def _answers(provider: dict, params: dict, found: Capabilities) -> bool:
    try:
        with provider_errors():
            await get_client(provider).responses.create(**params, store=False)
    except ProviderError as error:
        if not _missing(error):
            raise
        found.notes.append(f"responses: {error.message}")
        return False
    return True


async def _cancels(provider: dict, response_id: str, found: Capabilities) -> bool | None:
    try:
        with provider_errors():
            cancelled = await get_client(provider).responses.cancel(response_id)
    except ProviderError as error:
        found.notes.append(f"cancel: {error.message}")
        # Refused, perhaps because that tiny answer had finished already: a run finds out.
        return False if error.code == "endpoint_not_found" else None
    if cancelled.status in ("queued", "in_progress"):
        found.notes.append("cancel: answered, but the response went on")
        return False
    return True


async def _streams_retrieval(provider: dict, response_id: str, found: Capabilities) -> bool:
    try:
        with provider_errors():
            events = await get_client(provider).responses.retrieve(response_id, stream=True)
            async with events:
                streamed = events.response.headers.get("content-type", "").startswith(
                    "text/event-stream"
                )
    except ProviderError as error:
        found.notes.append(f"streamed retrieve: {error.message}")
        return False
    if not streamed:
        found.notes.append("streamed retrieve: answered with plain JSON, no live text")
    return streamed


async def _chains(provider: dict, params: dict, found: Capabilities) -> bool:
    responses = get_client(provider).responses
    try:
        with provider_errors():
            first = await responses.create(**params, store=True)
            await responses.create(**params, store=False, previous_response_id=first.id)
    except ProviderError as error:
        if not _missing(error):
            raise
        found.notes.append(f"previous_response_id: {error.message}")
        return False
    return True


def _root(provider: dict) -> str:
    """The server's root, where llama-server and vLLM serve their own endpoints."""
    base = provider["base_url"].rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


_FIELDS = [f.name for f in fields(Capabilities)]


@database_sync_to_async
def _load(name: str) -> Capabilities | None:
    row = ProviderCapabilities.objects.filter(provider=name).values(*_FIELDS).first()
    return Capabilities(**row) if row else None


async def save(name: str, found: Capabilities) -> None:
    """Keep what was found (the admin's check): in the database, and in this process."""
    await _save(name, found)
    _known[name] = found


@database_sync_to_async
def _save(name: str, found: Capabilities) -> None:
    values = {key: getattr(found, key) for key in _FIELDS} | {"checked_at": timezone.now()}
    try:
        ProviderCapabilities.objects.update_or_create(provider=name, defaults=values)
    except IntegrityError:
        # Another process found out at the same moment and saved first: same answer.
        ProviderCapabilities.objects.filter(provider=name).update(**values)
