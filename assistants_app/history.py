"""The history a run sends when the provider keeps none: the thread's own messages.

Every such run sends the path of the thread's tree up to its prompt (tree.py), trimmed to
fit: the newest messages are kept, the oldest dropped, and the assistant's instructions (sent
first by the engine) count against the budget but are never dropped. Two budgets apply:
CHAT_HISTORY_MAX_CHARS, and the model's context window in tokens, less room for the answer.
Tokens are estimated here at one per three characters (plus a few per message for the chat
template): generous on purpose, since English runs at about four characters a token and code
and other languages at fewer; a provider that still finds the prompt too long gets it again,
shorter (engines/local.py).
"""

import math
from dataclasses import dataclass, replace

from . import attached, knowledge
from .engines.base import Turn
from .models import Message, Run
from .tree import path_ids

CHARS_PER_TOKEN_FITTING = 3
TOKENS_PER_MESSAGE = 4  # role markers and separators of chat templates
ANSWER_ROOM_TOKENS = 1024  # kept free for the answer, at most a quarter of the window
LEFT_OUT_NOTE = "Older messages were left out: the conversation is longer than the model can read."


@dataclass
class History:
    turns: list[Turn]
    left_out: int = 0  # messages of the thread before the prompt that are not sent

    @property
    def note(self) -> str:
        return LEFT_OUT_NOTE if self.left_out else ""


def fitting_tokens(text: str) -> int:
    """A generous estimate of the tokens `text` takes in a prompt (see the module's note)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN_FITTING) + TOKENS_PER_MESSAGE


def answer_room(context_tokens: int) -> int:
    return min(ANSWER_ROOM_TOKENS, context_tokens // 4)


def load_history(run: Run, max_chars: int, context_tokens: int | None = None) -> list[Turn]:
    return fit_history(run, max_chars, context_tokens).turns


def fit_history(run: Run, max_chars: int, context_tokens: int | None = None) -> History:
    """The messages on the path to the run's prompt, oldest first, within `max_chars` and,
    when the model's context window is known, within it with room for the answer.

    The newest message (the prompt) is always kept, even when it alone is over budget.
    `run.thread.assistant` must be loaded.
    """
    instructions = run.thread.assistant.instructions
    chars = max_chars - len(instructions)
    tokens = math.inf
    if context_tokens:
        tokens = context_tokens - answer_room(context_tokens) - fitting_tokens(instructions)
    # The path of the tree up to the prompt (ids grow along a path, so newest first is by id).
    leaf = run.prompt_id if run.prompt_id is not None else run.thread.current_leaf_id
    messages = Message.objects.filter(pk__in=path_ids(run.thread_id, leaf)).order_by("-pk")
    newest_first: list[Turn] = []
    files = _files_of(messages)
    total = 0
    for pk, role, text in messages.values_list("pk", "role", "text").iterator(chunk_size=100):
        total += 1
        attachments = files.get(pk, ())
        size = len(text) + attached.text_cost(attachments)  # files, as they are sent
        cost = math.ceil(size / CHARS_PER_TOKEN_FITTING) + TOKENS_PER_MESSAGE
        if newest_first and (size > chars or cost > tokens):
            total += messages.count() - total  # the rest are left out too
            break
        newest_first.append(Turn(role, text, attachments))
        chars -= size
        tokens -= cost
    turns = alternating(newest_first[::-1])
    if turns and (context := knowledge.context_for(run)):
        turns[-1] = replace(turns[-1], context=context)
    return History(turns, left_out=total - len(newest_first))


def _files_of(messages) -> dict:
    with_files = messages.filter(attachments__isnull=False).values_list("pk", flat=True)
    return attached.of_messages(with_files)


def shorter(history: History) -> History:
    """The newest half of a history (the prompt at least): for a second try after the
    provider found the first too long for its context."""
    keep = max(1, len(history.turns) // 2)
    turns = alternating(history.turns[-keep:])
    dropped = len(history.turns) - len(turns)
    return History(turns, left_out=history.left_out + max(1, dropped))


def alternating(turns: list[Turn]) -> list[Turn]:
    """Turns that start with the user and alternate: strict chat templates (Mistral's, Gemma's
    on vLLM or llama-server) refuse anything else. Trimming can leave an answer first, and a
    failed run leaves two user messages in a row; those are joined."""
    result: list[Turn] = []
    for turn in turns:
        if not result and turn.role != Message.Role.USER:
            continue
        if result and result[-1].role == turn.role:
            joined = f"{result[-1].text}\n\n{turn.text}"
            attachments = result[-1].attachments + turn.attachments
            result[-1] = Turn(turn.role, joined, attachments, turn.context or result[-1].context)
        else:
            result.append(turn)
    return result
