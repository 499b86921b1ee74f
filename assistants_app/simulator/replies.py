"""Canned replies: deterministic, labelled as simulated, with a little Markdown to render."""

import re
from collections import Counter

from .given import without_file_text

CODE_SAMPLE = '```python\ndef greet(name: str) -> str:\n    return f"Hello, {name}!"\n```'


# How often the same message with the same history was answered in this process: a reply
# regenerated for it says so, so that its versions differ on the page.
_answered: Counter = Counter()


def variant_of(text: str, turn: int, earlier: str = "") -> int:
    """The number of this answer to the message (1 for the first); call once per answer."""
    _answered[(text, turn, earlier)] += 1
    return _answered[(text, turn, earlier)]


def canned_reply(text: str, turn: int, earlier: str = "", variant: int = 1, given: str = "") -> str:
    """`earlier` is the user's message before this one, as the history sent or seeded holds
    it: quoted back, so that a test (or a demo) sees which history the answer came from.
    `given`: what the request carried besides words (given.py), said after them."""
    quoted = " ".join(without_file_text(text).split())[:200]
    parts = [
        "_Simulated reply from the offline simulator, not a model._",
        f"You said: “{quoted}”. This is turn {turn} of this conversation.",
    ]
    if earlier:
        said = " ".join(without_file_text(earlier).split())[:200]
        parts.append(f"Before that you said: “{said}”.")
    if variant > 1:
        parts.append(f"This is answer {variant} to that message.")
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
