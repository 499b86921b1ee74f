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
        Message.objects.filter(thread_id=thread.pk).values_list(
            "pk", "parent_id", "role", "run_id", "created_at"
        )
    )
    parents = {pk: parent for pk, parent, *_ in rows}
    # The thread's messages filtered here, not with `pk__in` a long path: a thread holds few
    # branches, and a long IN list costs more than the rows it saves.
    on_path = set(path_ids(thread.pk, thread.current_leaf_id, parents))
    path = [
        m for m in thread.messages.prefetch_related("attachments").order_by("pk") if m.pk in on_path
    ]
    runs = list(thread.runs.select_related("assistant").order_by("pk").prefetch_related("steps"))
    feedback = {
        f.message_id: f
        for f in Feedback.objects.filter(user_id=thread.owner_id, message__thread_id=thread.pk)
    }
    first_part: dict[int, int] = {}  # run id -> its first message
    asked: dict[int | None, list[int]] = {}  # parent id -> its user children (versions)
    for pk, parent, role, run_id, _ in rows:  # in id order
        if role == Message.Role.ASSISTANT and run_id:
            first_part.setdefault(run_id, pk)
        elif role == Message.Role.USER:
            asked.setdefault(parent, []).append(pk)
    runs_of: dict[int, list[Run]] = {}  # prompt id -> its runs, oldest first
    for run in runs:
        runs_of.setdefault(run.prompt_id, []).append(run)
    by_id = {run.pk: run for run in runs}
    went_on = _went_on(runs_of, asked, {pk: at for pk, *_, at in rows}, first_part)
    result: list[dict] = []
    answered_by = None  # the assistant of the last answer shown
    index = 0
    while index < len(path):
        message = path[index]
        index += 1
        asked_at = len(result)  # where the question that went to the answer's assistant is
        if message.role == Message.Role.USER:
            result.append({"user": message, "versions": _nav(asked[message.parent_id], message.pk)})
            parts, index = _parts_from(path, index)
            mine = runs_of.get(message.pk, [])
        else:  # an answer without a prompt (imported, or its prompt deleted)
            parts, index = _parts_from(path, index - 1)
            mine = []
        shown = by_id.get(parts[0].run_id) if parts else (mine[-1] if mine else None)
        if not parts and index < len(path):
            # The thread went on from the question itself: the run it went on after is shown.
            after = [run for run in mine if went_on.get(run.pk) == path[index].pk]
            shown = after[-1] if after else shown
        answer = _answer(message, parts, shown, mine, first_part, went_on, thread)
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


def _went_on(runs_of, asked, created, first_part) -> dict[int, int]:
    """Runs that answered nothing after which the person wrote on (their next message is a
    child of the question itself), each with that next message: a version of the answer whose
    branch is shown from there, beside answers regenerated later."""
    found: dict[int, int] = {}
    for prompt_id, runs in runs_of.items():
        unanswered = [run for run in runs if run.pk not in first_part]
        for child in asked.get(prompt_id, []):
            before = [run for run in unanswered if run.created_at <= created[child]]
            if before and before[-1].pk not in found:
                found[before[-1].pk] = child
    return found


def _answer(message, parts, shown, mine, first_part, went_on, thread) -> dict | None:
    """The answer entry after a user message: `shown` is the run whose messages are on the
    path, else the message's latest run (being written, or ended without an answer); its
    versions are the message's runs that answered something, or after which the thread went
    on (`went_on`), and the one shown."""
    if not parts and (shown is None or shown.pk in first_part):
        return None  # nothing answered it: the next user message follows
    starts = first_part | went_on  # run -> the message its version's branch is shown from
    versions = [run for run in mine if run.pk in starts or run is shown]
    nav = None
    if shown in versions and len(versions) > 1:
        # The arrows name each version's first message: its branch is shown from there.
        nav = _nav([starts.get(run.pk) for run in versions], starts.get(shown.pk))
    assistant = (shown.assistant if shown else None) or thread.assistant
    prompt = message if message.role == Message.Role.USER else None
    return {
        "prompt_id": prompt.pk if prompt else None,
        "run": shown,
        "parts": parts,
        "assistant": assistant,
        "versions": nav,
    }


def _nav(targets: list, current) -> dict | None:
    """`< i/n >` over versions named by `targets` (ids), `current` being the one shown."""
    if len(targets) < 2:
        return None
    at = targets.index(current)
    return {
        "index": at + 1,
        "count": len(targets),
        "prev": targets[at - 1] if at > 0 else None,
        "next": targets[at + 1] if at + 1 < len(targets) else None,
    }
