"""Canned replies: deterministic, labelled as simulated, with a little Markdown to render."""

import re

from .given import without_file_text

CODE_SAMPLE = '```python\ndef greet(name: str) -> str:\n    return f"Hello, {name}!"\n```'


def canned_reply(text: str, turn: int, given: str = "") -> str:
    """`given`: what the request carried besides words (given.py), said after them."""
    quoted = " ".join(without_file_text(text).split())[:200]
    parts = [
        "_Simulated reply from the offline simulator, not a model._",
        f"You said: “{quoted}”. This is turn {turn} of this conversation.",
    ]
    if given:
        parts.append(given)
    if "code" in text.lower():
        parts.append("Here is a code sample:\n\n" + CODE_SAMPLE)
    if "list" in text.lower():
        parts.append("- first point\n- second point\n- **third** point")
    return "\n\n".join(parts)


def tokens_of(reply: str) -> list[str]:
    """The reply cut into the pieces a stream sends: each word with the space before it."""
    return re.findall(r"\s*\S+", reply) or [reply]


def count_tokens(text: str) -> int:
    """A rough token count (about four characters a token), for plausible usage figures."""
    return max(1, len(text) // 4)
