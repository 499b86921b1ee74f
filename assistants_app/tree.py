"""A thread's messages as a tree: each message has a parent, the thread a current leaf, and the
history of a run is the path from the root to its prompt.

An edit is a sibling of the message it edits (same parent, role user); a regenerated answer is
a sibling of the answer (same prompt). A parent is always stored before its children, so ids
grow along every path. Reading a path costs one query for the thread's (id, parent) pairs.
"""

from . import prepared
from .engines.base import Turn
from .models import Message, Run, Thread


def parents_of(thread_id: int) -> dict[int, int | None]:
    """message id -> its parent's id, for the whole thread."""
    return dict(Message.objects.filter(thread_id=thread_id).values_list("pk", "parent_id"))


def path_ids(thread_id: int, leaf_id: int | None, parents: dict | None = None) -> list[int]:
    """The ids from the root to `leaf_id`, oldest first ([] for no leaf)."""
    parents = parents_of(thread_id) if parents is None else parents
    ids: list[int] = []
    while leaf_id is not None and leaf_id in parents:
        ids.append(leaf_id)
        leaf_id = parents[leaf_id]
    return ids[::-1]


def path_turns(thread_id: int, leaf_id: int | None) -> list[Turn]:
    """The path to `leaf_id` as the turns a provider is seeded with, oldest first."""
    ids = path_ids(thread_id, leaf_id)
    rows = Message.objects.filter(pk__in=ids).order_by("pk").values_list("role", "text")
    return [Turn(role, text) for role, text in rows]


def path(thread: Thread) -> list[Message]:
    """The messages the page shows: root to the current leaf."""
    # Filtered here rather than with a long `pk__in` (see conversation.py).
    on_path = set(path_ids(thread.pk, thread.current_leaf_id))
    return [m for m in Message.objects.filter(thread_id=thread.pk) if m.pk in on_path]


def newest_leaf_under(thread_id: int, message_id: int, parents: dict | None = None) -> int:
    """The leaf reached from `message_id` by always taking the newest child: where a person
    who picks a version expects to land (its latest continuation)."""
    parents = parents_of(thread_id) if parents is None else parents
    newest_child: dict[int, int] = {}
    for child, parent in parents.items():
        if parent is not None and child > newest_child.get(parent, 0):
            newest_child[parent] = child
    while message_id in newest_child:
        message_id = newest_child[message_id]
    return message_id


def user_versions(message: Message) -> list[int]:
    """The ids of a user message's versions (itself and its edits), oldest first."""
    return list(
        Message.objects.filter(
            thread_id=message.thread_id, parent_id=message.parent_id, role=Message.Role.USER
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def last_message_of(run: Run) -> int | None:
    """The newest message a run stored, else its prompt: what its next message follows."""
    return next(iter(_newest_of_run(run_id=run.pk)), None) or run.prompt_id


@prepared.select
def _newest_of_run(run_id: int):
    return Message.objects.filter(run_id=run_id).order_by("-pk").values_list("pk", flat=True)[:1]


def set_leaf(thread: Thread, message_id: int) -> None:
    thread.current_leaf_id = message_id
    thread.save(update_fields=["current_leaf", "updated_at"])
