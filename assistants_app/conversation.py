"""A thread as the page shows it: the path of its tree to the current leaf (tree.py), each user
message followed by its answer. A message with versions (edits of it, or answers regenerated
for the same message) carries `< 2/3 >` controls whose arrows name the message to show next;
a marker says where the thread was switched to another assistant."""

from .models import Feedback, Message, Run, Thread
from .tree import path_ids


def entries(thread: Thread) -> tuple[list[dict], int | None, Run | None]:
    """The entries of the page, the newest message id of the whole thread (replay starts
    after it) and the thread's latest run (Send or Stop)."""
    rows = list(
        Message.objects.filter(thread_id=thread.pk).values_list("pk", "parent_id", "role", "run_id")
    )
    parents = {pk: parent for pk, parent, _, _ in rows}
    path = list(
        Message.objects.filter(pk__in=path_ids(thread.pk, thread.current_leaf_id, parents))
        .select_related("run__assistant")
        .order_by("pk")
    )
    runs = list(thread.runs.select_related("assistant").order_by("pk"))
    feedback = {
        f.message_id: f
        for f in Feedback.objects.filter(user_id=thread.owner_id, message__in=[m.pk for m in path])
    }
    first_part: dict[int, int] = {}  # run id -> its first message
    for pk, _, role, run_id in rows:
        if role == Message.Role.ASSISTANT and run_id and pk < first_part.get(run_id, pk + 1):
            first_part[run_id] = pk
    result: list[dict] = []
    answered_by = None  # the assistant of the last answer shown
    index = 0
    while index < len(path):
        message = path[index]
        index += 1
        asked_at = len(result)  # where the question that went to the answer's assistant is
        if message.role == Message.Role.USER:
            result.append({"user": message, "versions": _user_versions(message, rows)})
            parts, index = _parts_from(path, index)
            answer = _answer(message, parts, runs, first_part, thread)
        else:  # an answer without a prompt (imported, or its prompt deleted)
            parts, index = _parts_from(path, index - 1)
            answer = _answer(None, parts, runs, first_part, thread)
        if answer is None:
            continue
        who = answer["assistant"]
        if answered_by is not None and who != answered_by:
            result.insert(asked_at, {"switch": who})  # before the question it was asked
        answered_by = who
        last = parts[-1] if parts else None
        answer["feedback"] = feedback.get(last.pk) if last else None
        result.append(answer)
    if answered_by is not None and thread.assistant != answered_by:
        result.append({"switch": thread.assistant})  # chosen; the next message goes there
    last_message_id = max(parents) if parents else None
    return result, last_message_id, (runs[-1] if runs else None)


def _parts_from(path: list[Message], index: int) -> tuple[list[Message], int]:
    """The consecutive assistant messages of one run from `path[index]` on."""
    parts: list[Message] = []
    while index < len(path) and path[index].role == Message.Role.ASSISTANT:
        if parts and path[index].run_id != parts[0].run_id:
            break
        parts.append(path[index])
        index += 1
    return parts, index


def _answer(prompt, parts, runs, first_part, thread) -> dict | None:
    """The answer entry after `prompt`: the run whose messages are on the path, else the
    prompt's latest run (being written, or ended without an answer)."""
    mine = [run for run in runs if prompt is not None and run.prompt_id == prompt.pk]
    if parts:
        shown = next((run for run in runs if run.pk == parts[0].run_id), None)
    else:
        shown = mine[-1] if mine else None
        if shown is None or shown.pk in first_part:
            return None  # nothing answered it: the next user message follows
    versions = [run for run in mine if run.pk in first_part or run is shown]
    nav = None
    if shown is not None and len(versions) > 1:
        at = versions.index(shown)
        nav = {
            "index": at + 1,
            "count": len(versions),
            "prev": first_part.get(versions[at - 1].pk) if at > 0 else None,
            "next": first_part.get(versions[at + 1].pk) if at + 1 < len(versions) else None,
        }
    assistant = (shown.assistant if shown else None) or thread.assistant
    return {
        "prompt_id": prompt.pk if prompt else None,
        "run": shown,
        "parts": parts,
        "assistant": assistant,
        "versions": nav,
    }


def _user_versions(message: Message, rows) -> dict | None:
    siblings = [
        pk
        for pk, parent, role, _ in rows
        if parent == message.parent_id and role == Message.Role.USER
    ]
    if len(siblings) < 2:
        return None
    at = siblings.index(message.pk)
    return {
        "index": at + 1,
        "count": len(siblings),
        "prev": siblings[at - 1] if at > 0 else None,
        "next": siblings[at + 1] if at + 1 < len(siblings) else None,
    }
