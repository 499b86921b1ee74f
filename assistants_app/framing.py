"""Events bigger than a websocket message may be, sent as ordered parts the page puts together.

daphne's `--websocket-max-message-size` bounds what the server sends as well as what clients
send, and clients must stay bounded (an unbounded message is memory an attacker fills). So
answers of any length go out as `part` messages (`part` below: index, count, text), each
under the limit, whose texts joined in order are the event's JSON. A consumer
sends one event's parts one after another, so parts of two events never interleave.
"""

import json
from collections.abc import Iterator

# Room for the envelope around a part's text: its type, index and count.
ENVELOPE_BYTES = 100
# The smallest part worth sending; a limit below this is a misconfiguration.
MIN_PART_CHARS = 256


def part(index: int, count: int, text: str) -> dict:
    """The `part` event: the one websocket event built here rather than in runs/events.py,
    since Python clients (tests, the benchmark) use this module without Django."""
    return {"type": "part", "index": index, "count": count, "text": text}


def encode_event(event: dict) -> str:
    # ASCII (json's default): non-Latin text and lone surrogates become \u escapes, so a
    # character is a byte and no string the page cannot encode ever reaches the wire.
    return json.dumps(event)


def frames(event: dict, max_bytes: int) -> Iterator[str]:
    """The websocket text messages that carry `event`, none over `max_bytes` bytes."""
    text = encode_event(event)
    if len(text) <= max_bytes:
        yield text
        return
    # Inside a part's string a quote or backslash of the event's JSON takes two bytes.
    size = max(MIN_PART_CHARS, (max_bytes - ENVELOPE_BYTES) // 2)
    count = -(-len(text) // size)
    for index in range(count):
        piece = text[index * size : (index + 1) * size]
        yield json.dumps(part(index, count, piece))


class Reassembler:
    """The page's side, for Python clients (tests, the benchmark): whole events back."""

    def __init__(self) -> None:
        self.pieces: list[str] = []

    def feed(self, message: str) -> dict | None:
        """The event `message` completes, or None while parts are still to come."""
        event = json.loads(message)
        if event.get("type") != "part":
            return event
        if event["index"] != len(self.pieces):
            raise ValueError(f"part {event['index']} arrived after {len(self.pieces)} parts")
        self.pieces.append(event["text"])
        if len(self.pieces) < event["count"]:
            return None
        whole, self.pieces = "".join(self.pieces), []
        return json.loads(whole)
