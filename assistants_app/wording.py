"""How a run's status reads on the page: one sentence a person understands, said once, in the
answer it belongs to. The provider's own message is kept as the reason, not repeated."""

# While a run goes, the page shows its own live wording ("Writing...", "Still working... 12 s");
# these are for a page that has nothing better yet, such as a reload.
ACTIVE = {
    "queued": "Waiting for the assistant...",
    "in_progress": "Writing...",
    "requires_action": "Using a tool...",
    "cancelling": "Stopping...",
}


def run_summary(run) -> str:
    """The sentence for the run's status, then the run's note once it ended (older messages
    left out to fit the model's context, say); "" for a completed run with no note."""
    sentence = _status_sentence(run)
    if run.status in ACTIVE or not run.note:
        return sentence
    return f"{sentence} {run.note}".strip()


def _status_sentence(run) -> str:
    status, reason = run.status, _reason(run.error_message)
    if status in ACTIVE:
        return ACTIVE[status]
    if status == "completed":
        return ""
    if status == "cancelled":
        return "You stopped this answer."
    if status == "expired":
        return "The assistant took too long, so this answer was stopped." + reason
    if status == "incomplete":
        return "The answer was cut short." + reason
    if run.error_code == "interrupted":
        return "The answer could not start: the server restarted before sending it."
    return "The assistant could not answer." + reason


def _reason(message: str) -> str:
    message = " ".join((message or "").split())
    if not message:
        return ""
    return " " + (message if message.endswith((".", "!", "?")) else message + ".")
