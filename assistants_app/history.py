"""The history a locally executed run (Chat Completions) sends: the thread's own messages.

The provider remembers nothing, so every run sends the conversation up to its prompt, trimmed
to a budget: the newest messages are kept, the oldest dropped, and the assistant's
instructions (sent first by the engine) count against the budget but are never dropped.
"""

from .engines.base import Turn
from .models import Message, Run


def load_history(run: Run, max_chars: int) -> list[Turn]:
    """The thread's messages up to the run's prompt, oldest first, within `max_chars`.

    The newest message (the prompt) is always kept, even when it alone is over budget.
    `run.thread.assistant` must be loaded.
    """
    budget = max_chars - len(run.thread.assistant.instructions)
    messages = Message.objects.filter(thread_id=run.thread_id).order_by("-pk")
    if run.prompt_id is not None:
        messages = messages.filter(pk__lte=run.prompt_id)
    newest_first: list[Turn] = []
    for role, text in messages.values_list("role", "text").iterator(chunk_size=100):
        if newest_first and len(text) > budget:
            break
        newest_first.append(Turn(role, text))
        budget -= len(text)
    return alternating(newest_first[::-1])


def alternating(turns: list[Turn]) -> list[Turn]:
    """Turns that start with the user and alternate: strict chat templates (Mistral's, Gemma's
    on vLLM or llama-server) refuse anything else. Trimming can leave an answer first, and a
    failed run leaves two user messages in a row; those are joined."""
    result: list[Turn] = []
    for turn in turns:
        if not result and turn.role != Message.Role.USER:
            continue
        if result and result[-1].role == turn.role:
            result[-1] = Turn(turn.role, f"{result[-1].text}\n\n{turn.text}")
        else:
            result.append(turn)
    return result
