"""A message's files as the engines send them: images as image inputs, documents as files
where the protocol takes them, else as their extracted text (within FILE_TEXT_MAX_CHARS).
Read only; the engines call it from their request building."""

import base64
from dataclasses import dataclass

from django.conf import settings
from django.core.files.storage import default_storage

from .models import Attachment, FileKind

PDF = "application/pdf"


@dataclass(frozen=True)
class Attached:
    pk: int
    name: str
    kind: str
    content_type: str
    stored_name: str
    text: str
    remote_files: dict

    @property
    def is_image(self) -> bool:
        return self.kind == FileKind.IMAGE

    def data(self) -> bytes:
        with default_storage.open(self.stored_name, "rb") as stored:
            return stored.read()

    def data_url(self) -> str:
        encoded = base64.b64encode(self.data()).decode("ascii")
        return f"data:{self.content_type};base64,{encoded}"

    def as_text(self) -> str:
        """The document's text as it goes into a message, cut to FILE_TEXT_MAX_CHARS."""
        text = self.text
        limit = settings.FILE_TEXT_MAX_CHARS
        if len(text) > limit:
            text = text[:limit] + f"\n[... the rest of {self.name} was left out: too long]"
        return f'<file name="{self.name}">\n{text}\n</file>'


def of_messages(message_ids) -> dict[int, tuple[Attached, ...]]:
    """Message id -> its files, for the messages given."""
    found: dict[int, list[Attached]] = {}
    rows = Attachment.objects.filter(message_id__in=list(message_ids)).order_by("pk")
    for a in rows:
        found.setdefault(a.message_id, []).append(
            Attached(a.pk, a.name, a.kind, a.content_type, a.file.name, a.text, a.remote_files)
        )
    return {message_id: tuple(items) for message_id, items in found.items()}


def none_loaded():
    """No attachments, as a message's prefetched ones (a message just sent without files:
    services.py): the empty result already in it, as prefetch_related leaves its querysets, so
    that reading it builds no SQL (an empty queryset compiles its query to learn it is empty,
    a sixth of a millisecond of every post)."""
    attachments = Attachment.objects.none()
    attachments._result_cache, attachments._prefetch_done = [], True
    return attachments


def known_to_have_none(message) -> bool:
    """Whether the message's attachments were loaded with it, and there are none (a message
    just sent without files: services.py)."""
    loaded = getattr(message, "_prefetched_objects_cache", {}).get("attachments")
    return loaded is not None and not loaded


def with_documents_as_text(text: str, attachments, keep=lambda a: False) -> str:
    """The message's text followed by the text of its documents (but those `keep` sends as
    files)."""
    documents = [a.as_text() for a in attachments if not a.is_image and not keep(a)]
    return "\n\n".join([text, *documents]) if documents else text


# An image counted as this many characters of the history's budget: about a thousand tokens,
# what a detailed image costs on OpenAI's models (a small one costs less).
IMAGE_FITTING_CHARS = 3000


def text_cost(attachments) -> int:
    """Characters the files add to a message: documents' text as sent, images as a guess."""
    return sum(IMAGE_FITTING_CHARS if a.is_image else len(a.as_text()) for a in attachments)
