"""A thread as the page shows it: each user message followed by its answer, and an answer's
versions are the runs that answered the same message (Retry adds one), shown `< 1/2 >`."""

from .models import Message, Run, Thread


def entries(thread: Thread) -> tuple[list[dict], int | None, Run | None]:
    """The thread as the page shows it: each user message followed by its answer, whose
    versions are the runs that answered it (a retry adds one), oldest first."""
    messages = list(thread.messages.all())
    runs = list(thread.runs.order_by("pk").prefetch_related("steps"))
    parts: dict[int, list[Message]] = {}
    for message in messages:
        if message.role == Message.Role.ASSISTANT and message.run_id:
            parts.setdefault(message.run_id, []).append(message)
    answered = {run.pk for run in runs if run.prompt_id}
    entries = []
    for message in messages:
        if message.role == Message.Role.USER:
            entries.append({"user": message})
            versions = [
                {"run": run, "parts": parts.get(run.pk, [])}
                for run in runs
                if run.prompt_id == message.pk
            ]
            if versions:
                entries.append({"prompt_id": message.pk, "versions": versions})
        elif message.run_id not in answered:  # an answer whose prompt is gone, or no run
            entries.append({"prompt_id": None, "versions": [{"run": None, "parts": [message]}]})
    last_message_id = messages[-1].pk if messages else None
    return entries, last_message_id, (runs[-1] if runs else None)
