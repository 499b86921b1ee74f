"""What a user can do with threads and messages. Each function takes the user explicitly."""

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import Http404

from . import runs
from .exceptions import (
    CancelFailed,
    InvalidMessage,
    NotAllowed,
    NothingToCancel,
    NothingToRetry,
    ProviderError,
    RunActive,
)
from .models import Assistant, Message, Run, RunStatus, Thread

TITLE_LENGTH = 60


def start_thread(user, assistant_id: int | str) -> Thread:
    """A new, empty thread with an assistant the user may use."""
    assistant = Assistant.objects.available_to(user).filter(pk=assistant_id).first()
    if assistant is None:
        raise Http404("No such assistant")
    return Thread.objects.create(owner=user, assistant=assistant)


def clean_text(text) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidMessage("EMPTY_MESSAGE", "Write a message before sending.")
    if len(text) > settings.MESSAGE_MAX_CHARS:
        raise InvalidMessage(
            "MESSAGE_TOO_LONG",
            f"Messages can be at most {settings.MESSAGE_MAX_CHARS} characters "
            f"(this one has {len(text)}).",
        )
    return text.strip()


async def submit_message(user, thread: Thread, text) -> tuple[Message, Run]:
    """Store the user's message, create a run for it and start the run on the provider.

    `thread` must belong to `user` and have its assistant loaded. Raises InvalidMessage for
    empty or oversized text and RunActive while the thread's previous run is unfinished;
    a provider error fails the run but keeps the message.
    """
    _check_may_run(user, thread)
    message, run = await _store_message_and_run(thread, clean_text(text))
    await runs.start(run, message)
    return message, run


async def retry_run(user, thread: Thread) -> Run:
    """Start a new run for the message the thread's last run did not fully answer.

    `thread` must belong to `user` and have its assistant loaded. Raises RunActive while a
    run is unfinished and NothingToRetry unless the last run failed, expired, was cancelled
    or came back incomplete. Whatever that run stored stays.
    """
    _check_may_run(user, thread)
    prompt, run = await _new_run_for_last_prompt(thread)
    await runs.start(run, prompt)
    return run


def _check_may_run(user, thread: Thread) -> None:
    if thread.owner_id != user.pk:
        raise Http404("No such thread")
    if not thread.assistant.is_active:
        raise NotAllowed("ASSISTANT_UNAVAILABLE", "This assistant has been retired by the staff.")


async def cancel_run(user, thread: Thread) -> Run:
    """Stop the thread's active run: the provider is asked to cancel it and the page sees it
    go through cancelling to cancelled. `thread` must have its assistant loaded.

    Raises NothingToCancel when no run is active and CancelFailed when the provider refuses
    (the run may have just finished).
    """
    if thread.owner_id != user.pk:
        raise Http404("No such thread")
    run = await Run.objects.active().filter(thread=thread).afirst()
    if run is None:
        raise NothingToCancel("NO_ACTIVE_RUN", "There is no answer in progress to stop.")
    run.thread = thread
    if run.status == RunStatus.CANCELLING:
        return run  # asked already, from another tab perhaps; polling will see it end
    try:
        await runs.cancel(run)
    except ProviderError as error:
        raise CancelFailed("CANCEL_FAILED", f"Could not stop the answer: {error.message}") from None
    return run


@database_sync_to_async
def _store_message_and_run(thread: Thread, text: str) -> tuple[Message, Run]:
    if Run.objects.filter(thread=thread).active().exists():
        raise _run_active()
    with transaction.atomic():
        message = Message.objects.create(thread=thread, role=Message.Role.USER, text=text)
        run = _create_run(thread, message)
    if not thread.title:
        thread.title = text.splitlines()[0][:TITLE_LENGTH]
        thread.save(update_fields=["title", "updated_at"])
    run.thread = thread
    return message, run


@database_sync_to_async
def _new_run_for_last_prompt(thread: Thread) -> tuple[Message, Run]:
    last = Run.objects.filter(thread=thread).select_related("prompt").order_by("-pk").first()
    if last is not None and not last.is_terminal:
        raise _run_active()
    if last is None or not last.can_retry:
        raise NothingToRetry(
            "NOTHING_TO_RETRY", "Only an answer that failed or was stopped can be retried."
        )
    run = _create_run(thread, last.prompt)
    run.thread = thread
    return last.prompt, run


def _create_run(thread: Thread, prompt: Message) -> Run:
    try:
        with transaction.atomic():
            # The unique "one active run per thread" constraint settles two tabs racing here.
            return Run.objects.create(thread=thread, prompt=prompt, **runs.starting_lease())
    except IntegrityError:
        raise _run_active() from None


def _run_active() -> RunActive:
    return RunActive(
        "RUN_ACTIVE", "The assistant is still answering. Wait for it to finish, then send again."
    )
