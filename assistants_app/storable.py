"""Text the database can store. PostgreSQL refuses NUL characters in text, and no database can
encode a lone surrogate (half of a UTF-16 pair, which a JSON `\\ud800` escape can carry) as
UTF-8. What people send with either is refused in words; what a model writes is mended."""

import re

from .exceptions import InvalidInput

# In a Python string every surrogate is a lone one: decoding pairs them into one character.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def is_storable(text: str) -> bool:
    return _UNSTORABLE.search(text) is None


def check(text: str, what: str = "The text") -> str:
    """`text` unchanged, or InvalidInput naming `what` (as the person calls it)."""
    if not is_storable(text):
        raise InvalidInput(
            "UNSTORABLE_CHARACTERS",
            f"{what} contains a character that cannot be stored (a NUL character or half of "
            "an emoji's code). Remove it and try again.",
        )
    return text


def mend(text: str) -> str:
    """A model's text made storable: NUL characters dropped, lone surrogates replaced by the
    replacement character (�), everything else kept."""
    if is_storable(text):
        return text
    return _UNSTORABLE.sub(lambda found: "" if found[0] == "\x00" else "\ufffd", text)
