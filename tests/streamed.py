"""Shared by the streaming tests: an answer cut into words, and the page's way of putting
`message.delta` events back together."""

ANSWER = "Streaming answers feel fast because words arrive as they are written."
WORDS = [" " + word if i else word for i, word in enumerate(ANSWER.split(" "))]


def written(events: list[dict]) -> str:
    """The answer as the page assembles it from the `message.delta` events among `events`."""
    text = ""
    for event in events:
        if event["type"] == "message.delta":
            assert event["offset"] <= len(text), "a delta skipped text"
            text = text[: event["offset"]] + event["text"]
    return text
