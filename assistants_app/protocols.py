"""Moving assistants off a protocol that closes (OpenAI's Assistants API shut down on
2026-08-26) with every thread's history.

Our database holds every message, so changing an assistant's engine is enough: the next run of
each thread seeds a provider conversation with its path (branches.py). `move_to_responses` does
that for all assistants at once (the management command and admin's action), and `seed` makes
the conversations ahead of time, so the first message after the move goes out at once. Both can
be run again safely: what was moved or seeded is skipped.
"""

import logging
from dataclasses import dataclass, field

from django.db import transaction

from .db import database_sync_to_async
from .engines import get_engine
from .engines.base import Turn
from .models import Assistant, EngineKind, ProviderConversation, Run, Thread
from .tree import path_turns

log = logging.getLogger(__name__)


@dataclass
class Move:
    moved: list[Assistant] = field(default_factory=list)
    busy: list[Assistant] = field(default_factory=list)  # answers in progress: not moved


def answers_in_progress(assistant: Assistant) -> int:
    return Run.objects.active().filter(thread__assistant=assistant).count()


def move_to_responses(assistants) -> Move:
    """Switch assistants on the Assistants engine to Responses, except those with answers in
    progress (their runs live on the old protocol until they end: move them later)."""
    move = Move()
    for assistant in assistants.filter(engine=EngineKind.ASSISTANTS):
        with transaction.atomic():
            if answers_in_progress(assistant):
                move.busy.append(assistant)
                continue
            assistant.engine = EngineKind.RESPONSES
            assistant.save(update_fields=["engine", "updated_at"])
        move.moved.append(assistant)
        log.info("assistant %s moved to the Responses engine", assistant.pk)
    return move


async def seed(assistant: Assistant) -> tuple[int, int]:
    """Give each thread of the assistant a provider conversation holding its current path, if
    the provider keeps conversations. Returns (seeded, already there)."""
    if assistant.engine != EngineKind.RESPONSES:
        return 0, 0
    engine = get_engine(assistant)
    if not (await engine.capabilities(assistant)).conversations:
        return 0, 0  # every run sends the path itself
    seeded = skipped = 0
    for thread, turns in await _threads_to_seed(assistant):
        if turns is None:
            skipped += 1
            continue
        thread.remote_id = ""
        await engine.ensure_thread(thread, seed=turns)
        if thread.remote_id:
            await _remember(thread, assistant)
            seeded += 1
    return seeded, skipped


@database_sync_to_async
def _threads_to_seed(assistant: Assistant) -> list[tuple[Thread, list[Turn] | None]]:
    """Each thread that lived on the Assistants API, and its path as turns; None where a
    conversation of this engine and provider already holds it."""
    result = []
    threads = Thread.objects.filter(assistant=assistant).exclude(current_leaf=None)
    threads = threads.filter(conversations__engine=EngineKind.ASSISTANTS).distinct()
    for thread in threads.select_related("assistant"):
        held = ProviderConversation.objects.filter(
            thread=thread,
            engine=assistant.engine,
            provider=assistant.provider,
            tip_id=thread.current_leaf_id,
        ).exists()
        if held:
            result.append((thread, None))
            continue
        result.append((thread, path_turns(thread.pk, thread.current_leaf_id)))
    return result


@database_sync_to_async
def _remember(thread: Thread, assistant: Assistant) -> None:
    ProviderConversation.objects.create(
        thread=thread,
        engine=assistant.engine,
        provider=assistant.provider,
        remote_id=thread.remote_id,
        tip_id=thread.current_leaf_id,
    )
