"""What a user can do with the tree of a thread: edit a message and resend it, regenerate an
answer, show another version, and switch the thread to another assistant. Each function takes
the user; the tree itself is tree.py.

Nothing here changes the tree while an answer is being written: the page would show one
branch while the run writes to another.
"""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import prefetch_related_objects

from . import runs, tree
from .db import database_sync_to_async
from .exceptions import InvalidInput, NotFound
from .models import Assistant, Message, Run, Thread
from .services import (
    _check_may_use,
    _check_owner,
    _ground,
    _refused_when_busy,
    _run_active,
    _starting_a_run,
    clean_text,
    new_run,
)


async def edit_message(user, thread: Thread, message_id, text) -> tuple[Message, Run]:
    """Send a new version of one of the user's messages: a sibling of it, answered by a new
    run from the path before it. The old version and everything after it are kept.

    `thread` must belong to `user` and have its assistant loaded. Raises what `submit_message`
    raises, and NotFound for a message that is not one of the user's in this thread.
    """
    _check_owner(user, thread)
    text = clean_text(text)
    await _check_may_use(user, thread)
    message, run = await _store_edit(user, thread, _as_id(message_id), text)
    await _ground(run, message)
    await runs.start(run, message)
    return message, run


async def regenerate(user, thread: Thread, message_id) -> Run:
    """A new answer to the user message that `message_id` answers (or to that user message
    itself), from the same history; the earlier answers stay as versions.

    Raises NotAllowed, RateLimited and RunActive as `submit_message` does, and NotFound for a
    message that is not in the thread.
    """
    _check_owner(user, thread)
    await _check_may_use(user, thread)
    prompt, run = await _store_regenerate(user, thread, _as_id(message_id))
    await _ground(run, prompt)
    await runs.start(run, prompt)
    return run


@_refused_when_busy
@database_sync_to_async
def _store_edit(user, thread: Thread, message_id: int, text: str) -> tuple[Message, Run]:
    old = _message_in(thread, message_id, role=Message.Role.USER)
    with _starting_a_run(user, thread):
        message = Message(thread=thread, role=Message.Role.USER, text=text, parent_id=old.parent_id)
        message.starts_thread = old.parent_id is None
        message.save()
        tree.set_leaf(thread, message.pk)
        run = new_run(thread, message)
    # Loaded now (none: an edit is words only), so the async view can show the message.
    prefetch_related_objects([message], "attachments")
    run.thread = thread
    return message, run


@_refused_when_busy
@database_sync_to_async
def _store_regenerate(user, thread: Thread, message_id: int) -> tuple[Message, Run]:
    message = _message_in(thread, message_id)
    prompt = message if message.role == Message.Role.USER else _prompt_of(message)
    with _starting_a_run(user, thread):
        tree.set_leaf(thread, prompt.pk)
        run = new_run(thread, prompt)
    run.thread = thread
    return prompt, run


def _prompt_of(answer: Message) -> Message:
    """The user message an answer answers: its run's prompt, else the nearest user message
    above it on its path."""
    if answer.run_id and answer.run and answer.run.prompt_id:
        return answer.run.prompt
    above = Message.objects.filter(
        pk__in=tree.path_ids(answer.thread_id, answer.pk), role=Message.Role.USER
    )
    prompt = above.order_by("-pk").first()
    if prompt is None:
        raise InvalidInput("NOTHING_TO_REGENERATE", "This answer has no message to answer again.")
    return prompt


def show_version(user, thread: Thread, message_id) -> Thread:
    """Show the branch through `message_id`: the thread's current leaf becomes the newest
    message under it. Refused while an answer is being written."""
    _check_owner(user, thread)
    if not _as_id(message_id):
        raise InvalidInput("NO_VERSION", "Choose the version to show.")
    message = _message_in(thread, _as_id(message_id))
    with transaction.atomic():
        _lock(user)
        if Run.objects.filter(thread=thread).active().exists():
            raise _run_active()
        tree.set_leaf(thread, tree.newest_leaf_under(thread.pk, message.pk))
    return thread


def switch_assistant(user, thread: Thread, assistant_id) -> Thread:
    """Let another assistant the user may use answer the thread's next messages, with the
    thread's whole history, whatever its engine or provider (branches.py)."""
    _check_owner(user, thread)
    if not _as_id(assistant_id):
        raise InvalidInput("NO_ASSISTANT", "Choose an assistant from the list.")
    assistant = Assistant.objects.available_to(user).filter(pk=_as_id(assistant_id)).first()
    if assistant is None:
        raise NotFound("No such assistant")
    with transaction.atomic():
        _lock(user)
        if Run.objects.filter(thread=thread).active().exists():
            raise _run_active()
        thread.assistant = assistant
        thread.save(update_fields=["assistant", "updated_at"])
    return thread


def _lock(user) -> None:
    """The lock `_starting_a_run` takes: a run starting in another tab either is seen here
    as active, or starts after this change (with the assistant chosen here)."""
    get_user_model().objects.select_for_update().filter(pk=user.pk).exists()


def _message_in(thread: Thread, message_id: int, role: str | None = None) -> Message:
    messages = Message.objects.filter(thread=thread, pk=message_id).select_related("run__prompt")
    message = messages.filter(role=role).first() if role else messages.first()
    if message is None:
        raise NotFound("No such message")
    return message


def _as_id(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
