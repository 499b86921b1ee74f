"""Provider-side state as a cache of a path of our tree.

A provider conversation (Responses) or thread (Assistants) holds the history of one branch up
to a message, its `tip` (ProviderConversation). A run whose prompt follows that tip goes on in
it, as a plain follow-up always has; any other run (an edit, a regenerate, a switched
assistant, an engine changed in admin) starts a new provider conversation seeded with the path
before its prompt. Engines without provider-side state (Chat Completions, stateless Responses)
send the path itself (history.py). Our database stays the only source of truth: a lost or
stale provider conversation costs a new one, never a message.
"""

from django.db import transaction

from . import prepared
from .db import database_sync_to_async
from .engines.base import Engine, Turn
from .models import Message, ProviderConversation, Run, RunStatus, Thread
from .tree import path_turns


async def prepare(engine: Engine, run: Run, message: Message) -> None:
    """Point `run.thread.remote_id` at the provider conversation that holds the history before
    the run's prompt, seeding a new one when none does (or none where the engine keeps none).

    `message` is the prompt: its provider id is cleared, since it is added to that
    conversation by this run whatever conversation it went to before.
    """
    thread = run.thread
    message.remote_id = ""
    was = thread.remote_id
    if await _go_on_in_reusable(run, message.parent_id):
        return
    thread.remote_id = ""
    await engine.ensure_thread(thread, seed=await _turns_before(message))
    conversation = await _remember(thread) if thread.remote_id else None
    await _claim(run, conversation, moved=thread.remote_id != was)


def settle(run: Run, last: int | None = None) -> None:
    """Called as a run ends, in the transaction that records it: a completed run's
    conversation holds its path up to the run's last message (`last`, when the caller just
    stored it); any other end leaves it holding something we cannot name (a prompt without
    answer, part of one), so it is not reused."""
    if not run.conversation_id:
        return
    if run.status != RunStatus.COMPLETED:
        last = None
    elif last is None:
        last = Message.objects.filter(run_id=run.pk).order_by("-pk").values_list("pk", flat=True)
        last = last.first()
    _set_tip(conversation_id=run.conversation_id, tip_id=last)


@database_sync_to_async
def _go_on_in_reusable(run: Run, parent_id: int | None) -> bool:
    """Claim for the run the conversation that holds the path up to its prompt, if one does
    (a plain follow-up): true then. One trip to a database thread for the lookup and claim."""
    thread, assistant = run.thread, run.thread.assistant
    found = _reusable(thread, assistant.engine, assistant.provider, parent_id)
    if found is None:
        return False
    was, thread.remote_id = thread.remote_id, found.remote_id
    _claim_now(run, found, moved=thread.remote_id != was)
    return True


def _reusable(thread: Thread, engine: str, provider: str, parent_id: int | None):
    conversations = ProviderConversation.objects.filter(thread_id=thread.pk)
    if parent_id is not None:  # a follow-up: the conversation that holds its parent, if any
        holding = _holding(thread_id=thread.pk, engine=engine, provider=provider, tip_id=parent_id)
        if holding:
            return holding[0]
    if thread.remote_id and not conversations.exists():
        # A provider id set without a record (by hand, or an import): taken to hold the line
        # up to the prompt, as every thread did before branches.
        return ProviderConversation.objects.create(
            thread_id=thread.pk,
            engine=engine,
            provider=provider,
            remote_id=thread.remote_id,
            tip_id=parent_id,
        )
    return None  # the first message (an empty seed), or a branch no conversation holds


@database_sync_to_async
def _remember(thread: Thread) -> ProviderConversation:
    # Not the async ORM: its connection would stay checked out of the pool through the
    # provider call that follows, and under load the pool's other users queue behind it.
    return ProviderConversation.objects.create(
        thread_id=thread.pk,
        engine=thread.assistant.engine,
        provider=thread.assistant.provider,
        remote_id=thread.remote_id,
    )


def _claim_now(run: Run, conversation: ProviderConversation | None, moved: bool = True) -> None:
    """Record where the run goes on; while it writes there, the conversation's tip is unknown.
    The thread's provider id is written only if it `moved` (a follow-up's stays put)."""
    run.conversation = conversation
    with transaction.atomic():
        if conversation is not None:
            _set_tip(conversation_id=conversation.pk, tip_id=None)
        _set_conversation(run_id=run.pk, conversation_id=conversation and conversation.pk)
        if moved:
            _set_remote_id(thread_id=run.thread_id, remote_id=run.thread.remote_id)


_claim = database_sync_to_async(_claim_now)


# The statements of every follow-up, built once (prepared.py).


@prepared.select
def _holding(thread_id: int, engine: str, provider: str, tip_id: int):
    conversations = ProviderConversation.objects.filter(thread_id=thread_id, tip_id=tip_id)
    return conversations.filter(engine=engine, provider=provider).order_by("-id")[:1]


@prepared.update
def _set_tip(conversation_id: int, tip_id: int | None):
    return ProviderConversation.objects.filter(pk=conversation_id), {"tip_id": tip_id}


@prepared.update
def _set_conversation(run_id: int, conversation_id: int | None):
    return Run.objects.filter(pk=run_id), {"conversation_id": conversation_id}


@prepared.update
def _set_remote_id(thread_id: int, remote_id: str):
    return Thread.objects.filter(pk=thread_id), {"remote_id": remote_id}


@database_sync_to_async
def _turns_before(message: Message) -> list[Turn]:
    return path_turns(message.thread_id, message.parent_id)
