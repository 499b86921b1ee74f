"""What a user can do with threads and messages. Each function takes the user explicitly."""

import functools
import logging
from contextlib import contextmanager

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet, prefetch_related_objects
from django.utils import timezone

from . import (
    assistant_versions,
    attached,
    files,
    knowledge,
    limits,
    prepared,
    runs,
    storable,
    tree,
    usage,
)
from .db import database_sync_to_async, is_busy
from .exceptions import (
    CancelFailed,
    DatabaseBusy,
    InvalidInput,
    InvalidMessage,
    NotAllowed,
    NotFound,
    NothingToCancel,
    NothingToRetry,
    ProviderError,
    RunActive,
    SignedOut,
)
from .models import Assistant, Message, Run, RunStatus, Thread
from .runs import approvals

TITLE_LENGTH = 60

log = logging.getLogger(__name__)


def start_thread(user, assistant_id: int | str) -> Thread:
    """A new, empty thread with an assistant the user may use; InvalidInput for an id that is
    not a number, NotFound for one that is not such an assistant."""
    try:
        assistant_id = int(assistant_id)
    except (TypeError, ValueError):
        raise InvalidInput("NO_ASSISTANT", "Choose an assistant from the list.") from None
    assistant = Assistant.objects.available_to(user).filter(pk=assistant_id).first()
    if assistant is None:
        raise NotFound("No such assistant")
    return Thread.objects.create(owner=user, assistant=assistant)


async def start_chat(user, assistant_id, text, attachments=()) -> tuple[Thread, Message, Run]:
    """A new thread with its first message and the run answering it: no thread is left
    behind empty. Raises NotFound for an assistant the user may not use and what
    `submit_message` raises; the thread is not kept then."""
    text = clean_text(text)
    available = Assistant.objects.available_to(user)
    assistant = await available.filter(pk=_as_id(assistant_id)).afirst()
    if assistant is None:
        raise NotFound("No such assistant")
    thread = await Thread.objects.acreate(owner=user, assistant=assistant)
    try:
        message, run = await submit_message(user, thread, text, attachments)
    except BaseException:
        await thread.adelete()
        raise
    return thread, message, run


def _as_id(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def clean_text(text) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidMessage("EMPTY_MESSAGE", "Write a message before sending.")
    if len(text) > settings.MESSAGE_MAX_CHARS:
        raise InvalidMessage(
            "MESSAGE_TOO_LONG",
            f"Messages can be at most {settings.MESSAGE_MAX_CHARS} characters "
            f"(this one has {len(text)}).",
        )
    # Kept as typed: leading spaces indent code, and the page shows a message verbatim.
    return storable.check(text, "Your message")


async def submit_message(user, thread: Thread, text, attachments=()) -> tuple[Message, Run]:
    """Store the user's message, create a run for it and start the run on the provider.

    `thread` must belong to `user` and have its assistant loaded. Raises InvalidMessage for
    empty or oversized text, NotAllowed when the assistant is retired or no longer shared with
    the user, RunActive while the thread's previous run is unfinished and RateLimited over a
    fair-use limit; nothing is stored then. A provider error fails the run but keeps the message.
    `attachments` are ids of the user's unsent files (files.py): FileRefused for one that is
    gone, too many, or images the assistant cannot read.
    """
    _check_owner(user, thread)
    text = clean_text(text)
    attachment_ids = files.attachment_ids(attachments)
    message, run = await _store_message_and_run(user, thread, text, attachment_ids)
    await _start(user, message, run)
    return message, run


async def send_message(
    user, thread_id, text, attachments=(), signed_in=None
) -> tuple[Thread, Message, Run]:
    """`submit_message` to the user's thread `thread_id` (its assistant loaded and its title
    as stored): NotFound if it is not theirs. The thread is looked up in the trip to a
    database thread that stores the message, one trip fewer per post than looking it up first
    (BENCHMARKS.md, "Cost per answer").

    `signed_in`, when given, is asked first in that trip for the user as signed in now, or
    None (SignedOut then, nothing stored): a websocket's post, whose user was looked up when
    it connected (socket_auth.signed_in_now)."""
    thread, message, run = await _find_thread_and_store(
        user, thread_id, text, attachments, signed_in
    )
    await _start(user, message, run)
    return thread, message, run


async def _start(user, message: Message, run: Run) -> None:
    run.thread.owner = user  # checked: the driver of the run needs no query for it
    await _ground(run, message)
    await runs.start(run, message)


async def retry_run(user, thread: Thread) -> Run:
    """Regenerate the answer to the message the thread's last run did not fully answer: a
    new version of the answer, shown in place of the failed one.

    `thread` must belong to `user` and have its assistant loaded. Raises NotAllowed and
    RateLimited as `submit_message` does, RunActive while a run is unfinished and
    NothingToRetry unless the last run failed, expired, was cancelled or came back
    incomplete. Whatever that run stored stays.
    """
    _check_owner(user, thread)
    prompt, run = await _new_run_for_last_prompt(user, thread)
    await _ground(run, prompt)
    await runs.start(run, prompt)
    return run


def thread_of(user, pk) -> Thread:
    """The user's thread `pk`, its assistant loaded; NotFound if it is not theirs."""
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise NotFound("No such thread") from None
    if not 0 < pk < 2**63:  # no such id (SQLite cannot even take the number)
        raise NotFound("No such thread")
    for thread in _owned_thread(owner_id=user.pk, thread_id=pk):
        return thread
    raise NotFound("No such thread")


async def athread_of(user, pk) -> Thread:
    """`thread_of`, for async callers (on the caller's thread, as the async ORM would)."""
    return await sync_to_async(thread_of)(user, pk)


@prepared.select
def _owned_thread(owner_id: int, thread_id: int):
    owner = get_user_model()(pk=owner_id)
    return Thread.objects.owned_by(owner).select_related("assistant").filter(pk=thread_id)


def _check_owner(user, thread: Thread) -> None:
    """For a thread handed in by the caller: NotFound unless it is the user's."""
    if thread.owner_id != user.pk:
        raise NotFound("No such thread")


async def _ground(run: Run, message: Message) -> None:
    """Number the passages of the assistant's knowledge the run answers from (knowledge.py).
    A search that fails leaves the run without them, not the message unsent."""
    if knowledge.nothing_to_search(run.thread.assistant):
        run.grounded_on = 0  # known without a trip to a database thread
        return
    try:
        sources = await database_sync_to_async(knowledge.ground)(run, message.text)
        run.grounded_on = len(sources)  # known here: the run's request asks for none
    except DatabaseError:
        log.exception("run %s: searching the assistant's knowledge failed", run.pk)


async def _check_may_use(user, thread: Thread) -> None:
    await sync_to_async(_must_be_usable)(user, thread)  # where the async ORM would run it


def _must_be_usable(user, thread: Thread) -> None:
    """NotAllowed unless the thread's assistant is active and open to the user. (Sends and
    retries ask in the same trip to a database thread as their store.)"""
    if not _usable(user_id=user.pk, assistant_id=thread.assistant_id):
        raise NotAllowed("ASSISTANT_UNAVAILABLE", "This assistant is no longer available to you.")


@prepared.select
def _usable(user_id: int, assistant_id: int):
    user = get_user_model()(pk=user_id)
    usable = Assistant.objects.available_to(user).filter(pk=assistant_id)
    return usable.values_list("pk", flat=True)[:1]


async def cancel_run(user, thread: Thread) -> Run:
    """Stop the thread's active run: the provider is asked to cancel it and the page sees it
    go through cancelling to cancelled. `thread` must have its assistant loaded.

    Raises NothingToCancel when no run is active and CancelFailed when the provider refuses
    (the run may have just finished).
    """
    _check_owner(user, thread)
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


def _refused_when_busy(call):
    """A store that a busy SQLite database still refuses after db.py's retries answers 503
    with a sentence, not 500; nothing was stored."""

    @functools.wraps(call)
    async def refusing_when_busy(*args, **kwargs):
        try:
            return await call(*args, **kwargs)
        except OperationalError as error:
            if not is_busy(error):
                raise
            raise DatabaseBusy(
                "SITE_BUSY", "The site is busy and did not take this. Try again in a moment."
            ) from None

    return refusing_when_busy


@_refused_when_busy
@database_sync_to_async
def _find_thread_and_store(
    user, thread_id, text, attachments, signed_in=None
) -> tuple[Thread, Message, Run]:
    if signed_in is not None and (user := signed_in()) is None:
        raise SignedOut("Signed out since the socket opened")
    thread = thread_of(user, thread_id)  # first: a thread not theirs is a 404, whatever is sent
    text, attachment_ids = clean_text(text), files.attachment_ids(attachments)
    return thread, *_store_message_and_run_now(user, thread, text, attachment_ids)


@_refused_when_busy
@database_sync_to_async
def _store_message_and_run(
    user, thread: Thread, text: str, attachment_ids: list[int]
) -> tuple[Message, Run]:
    return _store_message_and_run_now(user, thread, text, attachment_ids)


def _store_message_and_run_now(
    user, thread: Thread, text: str, attachment_ids: list[int]
) -> tuple[Message, Run]:
    _must_be_usable(user, thread)  # before the transaction: SQLite's writers wait for it
    # One short transaction, the title included: on SQLite every writer waits for it.
    with _starting_a_run(user, thread):
        # It follows the message the thread shows last (Message.save).
        message = Message(
            thread=thread, role=Message.Role.USER, text=text, parent_id=thread.current_leaf_id
        )
        message.insert()
        thread.current_leaf = message
        run = new_run(thread, message)
        if attachment_ids:
            files.claim(user, thread.assistant, attachment_ids, message)
            # Loaded now: the views (async) show the message with its files.
            prefetch_related_objects([message], "attachments")
        else:  # none, known without asking
            message._prefetched_objects_cache = {"attachments": attached.none_loaded()}
        if not thread.title:
            thread.title = text.strip().splitlines()[0].strip()[:TITLE_LENGTH]
            thread.save(update_fields=["title", "updated_at"])
    run.thread = thread
    return message, run


@_refused_when_busy
@database_sync_to_async
def _new_run_for_last_prompt(user, thread: Thread) -> tuple[Message, Run]:
    _must_be_usable(user, thread)
    last = Run.objects.filter(thread=thread).select_related("prompt").order_by("-pk").first()
    if last is not None and not last.is_terminal:
        raise _run_active()
    if last is None or not last.can_retry:
        raise NothingToRetry(
            "NOTHING_TO_RETRY", "Only an answer that failed or was stopped can be retried."
        )
    with _starting_a_run(user, thread):
        # A regenerate of the message: the new answer is a version beside whatever was kept.
        tree.set_leaf(thread, last.prompt_id)
        run = new_run(thread, last.prompt)
    run.thread = thread
    return last.prompt, run


def new_run(thread: Thread, prompt: Message) -> Run:
    """A run answering `prompt` with the thread's assistant (as `_starting_a_run` read it)."""
    run = Run(
        thread=thread,
        prompt=prompt,
        assistant_id=thread.assistant_id,
        assistant_version_id=assistant_versions.current_id(thread.assistant),
        **runs.starting_lease(),
    )
    prepared.insert(run)
    usage.reserve(run)
    return run


@contextmanager
def _starting_a_run(user, thread: Thread):
    """The transaction that creates a run in `thread`, within the user's fair-use limits."""
    quota = None
    try:
        with transaction.atomic():
            # One submit of a user at a time past this line, so limits are counted exactly.
            # (On SQLite the transaction's immediate BEGIN already let one writer in at once,
            # and a lock of the user's row, a statement it cannot take, would only be a read.)
            if connection.features.has_select_for_update:
                _lock_user(user_id=user.pk)
            # Under the lock and before the limits count the message: of two sends racing (a
            # double-click, two tabs) the second sees the first's run, and spends nothing.
            # As stored, in the same read: the assistant (another tab may have just switched
            # it) and the message the thread shows last (what a new message follows).
            rows = _stored_thread(thread_id=thread.pk)
            if not rows:
                raise Thread.DoesNotExist("No such thread")
            stored = rows[0]
            if stored["busy"]:
                raise _run_active()
            thread.current_leaf_id = stored["current_leaf_id"]
            if stored["assistant_id"] != thread.assistant_id:
                thread.assistant = Assistant.objects.get(pk=stored["assistant_id"])
            quota = limits.check_can_start_run(user)
            yield
        quota = None  # stored: the message has spent its place in the minute
    except IntegrityError:
        # The unique "one active run per thread" constraint settles two tabs racing here.
        raise _run_active() from None
    finally:
        if quota:  # not stored (a race, a database error): a failed send spends nothing
            limits.give_back(quota)


@prepared.select
def _lock_user(user_id: int):
    return get_user_model().objects.select_for_update().filter(pk=user_id).values_list("pk")


@prepared.select
def _stored_thread(thread_id: int):
    busy = Exists(Run.objects.filter(thread=OuterRef("pk")).active())
    stored = Thread.objects.filter(pk=thread_id).values("assistant_id", "current_leaf_id")
    return stored.annotate(busy=busy)


def _run_active() -> RunActive:
    return RunActive(
        "RUN_ACTIVE", "The assistant is still answering. Wait for it to finish, then send again."
    )


# --- Keeping threads: list, search, rename, delete, export ----------------------------


def list_threads(user, query: str = "") -> QuerySet[Thread]:
    """The user's threads, newest activity first; with a query, only those whose title or
    any message contains it (case-insensitive)."""
    threads = Thread.objects.owned_by(user).select_related("assistant")
    query = storable.check(query, "The search").strip()
    if not query:
        return threads
    in_messages = Message.objects.filter(thread=OuterRef("pk"), text__icontains=query)
    return threads.filter(Q(title__icontains=query) | Exists(in_messages))


def rename_thread(user, thread: Thread, title) -> Thread:
    _check_owner(user, thread)
    title = " ".join(title.split()) if isinstance(title, str) else ""
    storable.check(title, "The title")
    if not title:
        raise InvalidInput("EMPTY_TITLE", "Give the thread a title.")
    max_length = Thread._meta.get_field("title").max_length
    if len(title) > max_length:
        raise InvalidInput("TITLE_TOO_LONG", f"Titles can be at most {max_length} characters.")
    thread.title = title
    thread.save(update_fields=["title", "updated_at"])
    return thread


def delete_thread(user, thread: Thread) -> None:
    """Delete a thread with its messages and runs. Refused while a run is unfinished: the
    driver would go on writing to a thread that no longer exists."""
    _check_owner(user, thread)
    if Run.objects.filter(thread=thread).active().exists():
        raise RunActive(
            "RUN_ACTIVE", "The assistant is still answering. Wait for it to finish, then delete."
        )
    thread.delete()


def export_json(user, thread: Thread) -> dict:
    """The thread and the messages of the branch on show as plain data, for a download."""
    _check_owner(user, thread)
    return {
        "id": thread.pk,
        "title": str(thread),
        "assistant": {
            "name": thread.assistant.name,
            "description": thread.assistant.description,
            "simulated": thread.assistant.is_simulated,
        },
        "created_at": thread.created_at.isoformat(),
        "updated_at": thread.updated_at.isoformat(),
        "messages": [
            {"role": m.role, "text": m.text, "created_at": m.created_at.isoformat()}
            for m in tree.path(thread)  # the branch on show, as the page shows it
        ],
    }


def export_markdown(user, thread: Thread) -> str:
    """The thread as a Markdown document: a heading per message, the text as written."""
    data = export_json(user, thread)
    assistant = data["assistant"]
    lines = [f"# {data['title']}", "", f"Assistant: {assistant['name']}"]
    if assistant["description"]:
        lines[-1] += f" ({assistant['description']})"
    lines += [f"Exported: {timezone.now().isoformat(timespec='seconds')}", ""]
    for message in data["messages"]:
        author = "You" if message["role"] == Message.Role.USER else assistant["name"]
        when = message["created_at"][:16].replace("T", " ")  # stored in UTC
        lines += [f"## {author} · {when} UTC", ""]
        lines += [message["text"], ""]
    return "\n".join(lines)


async def decide_tool_call(user, thread_id: int, step_id: int, approve: bool):
    """The user approves or denies a tool call their run waits on (runs/approvals.py).
    Raises NotFound for a call that is not theirs; one already decided or expired stays so."""
    return await approvals.decide(user, thread_id, step_id, approve)
