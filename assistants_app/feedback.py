"""Feedback on answers: thumbs up or down, an optional comment, and whether staff may read the
thread with it. One per answer and user; giving it again changes it."""


from . import storable
from .exceptions import InvalidInput, NotFound
from .models import Feedback, Message, Thread

COMMENT_MAX_CHARS = 2000


def give(user, thread: Thread, message_id, rating, comment="", share_thread=False) -> Feedback:
    """Record the user's feedback on an answer of their thread; NotFound for a message that is
    not in it, InvalidInput for one of the user's own messages, a rating other than 1 or -1
    or an overlong comment."""
    if thread.owner_id != user.pk:
        raise NotFound("No such thread")
    try:
        message_id = int(message_id)
    except (TypeError, ValueError):
        raise NotFound("No such message") from None
    message = Message.objects.filter(thread=thread, pk=message_id).select_related("run").first()
    if message is None:
        raise NotFound("No such message")
    if message.role != Message.Role.ASSISTANT:
        raise InvalidInput("NOT_AN_ANSWER", "Only the assistant's answers can be rated.")
    rating = _rating(rating)
    comment = storable.check(comment if isinstance(comment, str) else "", "The comment").strip()
    if len(comment) > COMMENT_MAX_CHARS:
        raise InvalidInput(
            "COMMENT_TOO_LONG", f"A comment can be at most {COMMENT_MAX_CHARS} characters."
        )
    assistant_id = (message.run.assistant_id if message.run else None) or thread.assistant_id
    feedback, _ = Feedback.objects.update_or_create(
        message=message,
        user=user,
        defaults={
            "rating": rating,
            "comment": comment,
            "share_thread": share_thread in (True, "true", "on", "1"),
            "assistant_id": assistant_id,
        },
    )
    return feedback


def _rating(value) -> int:
    try:
        rating = int(value)
    except (TypeError, ValueError):
        rating = 0
    if rating not in Feedback.Rating.values:
        raise InvalidInput("BAD_RATING", "Rate the answer with a thumb up or down.")
    return rating
