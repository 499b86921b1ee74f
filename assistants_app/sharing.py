"""Share links: a read-only link to a thread as it is when shared. The link keeps the ids of
the messages the thread had then (the path the page shows), so messages added later are not
shared; the owner lists and revokes their links on one page, and a revoked link is gone (404).
A viewer may copy the shared messages into a thread of their own and go on from there.

What a shared page shows is the messages' text and the thread's title at sharing time; never
the owner's name, their other threads, runs, notes or anything else of theirs. The token is 256
random bits (`secrets`), and the page is marked noindex and names itself to no other site
(share_views).
"""

import secrets

from django.db import transaction

from . import tree
from .exceptions import InvalidInput, NotFound
from .models import Assistant, Message, SharedLink, Thread

TOKEN_BYTES = 32


def share(user, thread: Thread) -> SharedLink:
    """A new link to the thread as it is now. InvalidInput for a thread with no messages."""
    if thread.owner_id != user.pk:
        raise NotFound("No such thread")
    # The branch the owner sees (tree.py): other versions are not shared.
    leaf = Thread.objects.filter(pk=thread.pk).values_list("current_leaf_id", flat=True).first()
    message_ids = tree.path_ids(thread.pk, leaf)
    if not message_ids:
        raise InvalidInput("NOTHING_TO_SHARE", "Send a message first: this chat is empty.")
    return SharedLink.objects.create(
        token=secrets.token_urlsafe(TOKEN_BYTES),
        thread=thread,
        title=str(thread),
        message_ids=message_ids,
    )


def links_of(user):
    """The user's links, newest first, with their threads."""
    return SharedLink.objects.filter(thread__owner=user).select_related("thread")


def revoke(user, pk: int) -> None:
    """Delete one of the user's links; anyone else's, or one already gone: NotFound."""
    deleted, _ = SharedLink.objects.filter(pk=pk, thread__owner=user).delete()
    if not deleted:
        raise NotFound("No such link")


def find(token: str) -> SharedLink:
    """The live link with this token; NotFound for any other (revoked, mistyped, its thread
    deleted)."""
    if not isinstance(token, str) or len(token) > 64:
        raise NotFound("No such link")
    link = SharedLink.objects.filter(token=token).first()
    if link is None:
        raise NotFound("No such link")
    return link


def shared_messages(link: SharedLink) -> list[Message]:
    """The messages the link shares, oldest first: those the thread had when it was shared."""
    return list(
        Message.objects.filter(thread_id=link.thread_id, pk__in=link.message_ids).order_by("pk")
    )


def assistant_name(link: SharedLink) -> str:
    return Assistant.objects.filter(threads=link.thread_id).values_list("name", flat=True).first()


def continue_chat(user, link: SharedLink, assistant_id=None) -> Thread:
    """A thread of the user's own holding a copy of the shared messages, with the shared
    thread's assistant if the user may use it, else with `assistant_id` (one they may use).
    NotFound for an assistant they may not use; InvalidInput when none is given and the
    original is not theirs to use."""
    available = Assistant.objects.available_to(user)
    original = link.thread.assistant_id
    chosen = assistant_id if assistant_id not in (None, "") else original
    try:
        chosen = int(chosen)
    except (TypeError, ValueError):
        raise InvalidInput("NO_ASSISTANT", "Choose an assistant from the list.") from None
    assistant = available.filter(pk=chosen).first()
    if assistant is None:
        if chosen == original:
            raise InvalidInput(
                "ASSISTANT_UNAVAILABLE",
                "The assistant of this chat is not available to you: choose another one.",
            )
        raise NotFound("No such assistant")
    messages = shared_messages(link)
    with transaction.atomic():
        thread = Thread.objects.create(owner=user, assistant=assistant, title=link.title)
        parent = None  # a straight line: the shared branch, each message after the one before
        for message in messages:
            copy = Message(
                thread=thread,
                parent_id=parent,
                role=message.role,
                text=message.text,
                is_partial=message.is_partial,
                created_at=message.created_at,
            )
            copy.starts_thread = parent is None
            copy.save()  # the thread's current leaf follows it
            parent = copy.pk
    return thread
