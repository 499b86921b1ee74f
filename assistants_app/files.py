"""Files people attach: what a file is (decided by its content, never its name), whether we
take it, and storing it whole or not at all.

Images (PNG, JPEG, WebP, GIF) are decoded by Pillow under a pixel limit, so a corrupt image or
a decompression bomb is refused, and get a small thumbnail of our own making. Documents are
PDF (pypdf: encrypted, damaged and textless ones refused), DOCX (python-docx) and text of any
kind (plain, Markdown, CSV, source code: UTF-8 without NUL bytes). Everything else, a program
renamed `.pdf` included, is refused with a sentence saying why. Nothing is stored until the
whole file has passed; a failure while storing removes what was written.
"""

import io
import logging
import os
import unicodedata
import warnings
import zipfile
from dataclasses import dataclass, field
from datetime import timedelta

import filetype
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from .exceptions import FileRefused

log = logging.getLogger(__name__)

IMAGE_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WebP", "image/gif": "GIF"}
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TEXT_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".csv": "text/csv",
}
THUMBNAIL_SIZE = (320, 320)
UNSENT_KEPT = timedelta(days=1)
DOCX_MAX_UNPACKED_BYTES = 100 * 1024 * 1024  # a zip bomb renamed .docx stops here
PROGRAMS = {"elf", "exe", "dex", "wasm", "class", "sh", "msi", "dmg", "deb", "rpm", "crx"}
ACCEPTED_WORDS = (
    "images (PNG, JPEG, WebP, GIF) and documents (PDF, DOCX, text, Markdown, CSV, code)"
)


@dataclass
class CheckedFile:
    name: str
    kind: str  # "image" | "document"
    content_type: str
    data: bytes
    text: str = ""
    pages: list[str] = field(default_factory=list)  # a PDF's text, page by page
    thumbnail: bytes = b""


def limits() -> dict:
    """The limits the picker shows."""
    return {
        "max_bytes": settings.FILE_MAX_BYTES,
        "per_message": settings.FILES_PER_MESSAGE,
        "storage_bytes": settings.FILE_STORAGE_PER_USER_BYTES,
        "accept": "image/png,image/jpeg,image/webp,image/gif,.pdf,.docx,.txt,.md,.csv,"
        ".json,.py,.js,.ts,.html,.css,.java,.c,.h,.cpp,.go,.rs,.rb,.php,.sh,.sql,.yaml,.yml",
        "summary": f"Up to {settings.FILES_PER_MESSAGE} files a message, "
        f"{human_size(settings.FILE_MAX_BYTES)} each: {ACCEPTED_WORDS}.",
    }


def human_size(size: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} bytes"  # not reached


def clean_name(name: str) -> str:
    """A file name safe to store and to show: no folders, no control characters."""
    name = os.path.basename(str(name).replace("\\", "/"))
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip(". ")
    return name[:200] or "file"


def check(name: str, data: bytes) -> CheckedFile:
    """What the file is, or FileRefused with the reason. `data` is the whole file."""
    name = clean_name(name)
    if len(data) > settings.FILE_MAX_BYTES:
        raise FileRefused(
            "FILE_TOO_LARGE",
            f"“{name}” is {human_size(len(data))}; files can be at most "
            f"{human_size(settings.FILE_MAX_BYTES)}.",
        )
    if not data:
        raise FileRefused("FILE_EMPTY", f"“{name}” is empty.")
    sniffed = filetype.guess(data)
    mime = sniffed.mime if sniffed else ""
    if mime in IMAGE_TYPES:
        return _check_image(name, data, mime)
    if mime == PDF:
        return _check_pdf(name, data)
    if mime in (DOCX, "application/zip") and name.lower().endswith(".docx"):
        return _check_docx(name, data)
    if sniffed is None:
        return _check_text(name, data)
    if sniffed.extension in PROGRAMS:
        raise FileRefused(
            "FILE_IS_PROGRAM",
            f"“{name}” is a program ({sniffed.extension.upper()}), not a document; "
            f"only {ACCEPTED_WORDS} can be attached.",
        )
    raise FileRefused(
        "FILE_TYPE_REFUSED",
        f"“{name}” is a {sniffed.extension.upper()} file ({mime}); "
        f"only {ACCEPTED_WORDS} can be attached.",
    )


def _check_image(name: str, data: bytes, mime: str) -> CheckedFile:
    label = IMAGE_TYPES[mime]
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice it; any bomb is an error here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > settings.IMAGE_MAX_PIXELS:
                    raise FileRefused(
                        "IMAGE_TOO_LARGE",
                        f"“{name}” is {width} × {height} pixels; images can have at most "
                        f"{settings.IMAGE_MAX_PIXELS:,} pixels.",
                    )
                image.load()  # decodes the whole first frame: a damaged image fails here
                thumbnail = _thumbnail(image)
    except FileRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise FileRefused(
            "IMAGE_TOO_LARGE", f"“{name}” unpacks to far more pixels than an image may have."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise FileRefused(
            "IMAGE_DAMAGED", f"“{name}” looks like a {label} image but cannot be read."
        ) from None
    return CheckedFile(name, "image", mime, data, thumbnail=thumbnail)


def _thumbnail(image: Image.Image) -> bytes:
    small = image.copy()
    small.thumbnail(THUMBNAIL_SIZE)
    if small.mode not in ("RGB", "RGBA"):
        small = small.convert("RGBA")
    out = io.BytesIO()
    small.save(out, "PNG", optimize=True)
    return out.getvalue()


def _check_pdf(name: str, data: bytes) -> CheckedFile:
    from pypdf import PdfReader  # imported when needed: most messages carry no PDF
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not _opens_without_password(reader):
            raise FileRefused(
                "PDF_ENCRYPTED",
                f"“{name}” is protected by a password; save a copy without one and attach that.",
            )
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except FileRefused:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError,
            RecursionError, NotImplementedError):  # fmt: skip
        raise FileRefused(
            "PDF_DAMAGED", f"“{name}” is a damaged PDF that cannot be read."
        ) from None
    if not pages:
        raise FileRefused("PDF_EMPTY", f"“{name}” has no pages.")
    if not any(pages):
        raise FileRefused(
            "PDF_NO_TEXT",
            f"“{name}” has no text that can be read (a scanned document?); "
            "attach its pages as images instead.",
        )
    return CheckedFile(name, "document", PDF, data, text="\n\n".join(pages), pages=pages)


def _opens_without_password(reader) -> bool:
    """Whether an encrypted PDF opens with the empty password (one that only restricts
    printing or copying does)."""
    try:
        return bool(reader.decrypt(""))
    except Exception:  # noqa: BLE001 - a cipher pypdf cannot undo here is a locked file too
        return False


def _check_docx(name: str, data: bytes) -> CheckedFile:
    import docx  # python-docx, imported when needed

    damaged = FileRefused("DOCX_DAMAGED", f"“{name}” is a damaged Word document.")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(info.file_size for info in archive.infolist()) > DOCX_MAX_UNPACKED_BYTES:
                raise FileRefused("DOCX_TOO_LARGE", f"“{name}” unpacks to far too much data.")
        document = docx.Document(io.BytesIO(data))
        text = "\n\n".join(p.text for p in document.paragraphs if p.text.strip())
    except FileRefused:
        raise
    except Exception:  # noqa: BLE001 - python-docx raises many kinds for a broken file
        raise damaged from None
    if not text.strip():
        raise FileRefused("DOCX_EMPTY", f"“{name}” has no text.")
    return CheckedFile(name, "document", DOCX, data, text=text)


def _check_text(name: str, data: bytes) -> CheckedFile:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FileRefused(
            "FILE_TYPE_REFUSED",
            f"“{name}” is not a type we take (nor text in UTF-8); only {ACCEPTED_WORDS} "
            "can be attached.",
        ) from None
    if "\x00" in text:
        raise FileRefused("FILE_TYPE_REFUSED", f"“{name}” is binary data, not text.")
    if not text.strip():
        raise FileRefused("FILE_EMPTY", f"“{name}” has no text.")
    extension = os.path.splitext(name)[1].lower()
    return CheckedFile(name, "document", TEXT_TYPES.get(extension, "text/plain"), data, text=text)


# --- Storing ------------------------------------------------------------------------


def used_storage(user) -> int:
    from .models import Attachment

    return Attachment.objects.filter(owner=user).aggregate(total=Sum("size"))["total"] or 0


def store_attachment(user, name: str, data: bytes):
    """Check a file and keep it as the user's attachment, not yet on any message; raises
    FileRefused (nothing stored then)."""
    from .models import Attachment

    checked = check(name, data)
    # Files left unsent (a tab closed with chips in it) stop counting after a day.
    stale = timezone.now() - UNSENT_KEPT
    Attachment.objects.filter(owner=user, message__isnull=True, created_at__lt=stale).delete()
    used = used_storage(user)
    if used + len(data) > settings.FILE_STORAGE_PER_USER_BYTES:
        raise FileRefused(
            "STORAGE_FULL",
            f"Your files take {human_size(used)} of your "
            f"{human_size(settings.FILE_STORAGE_PER_USER_BYTES)}; “{checked.name}” "
            f"({human_size(len(data))}) does not fit. Delete a chat with files "
            "to make room.",
        )
    attachment = Attachment(
        owner=user,
        name=checked.name,
        kind=checked.kind,
        content_type=checked.content_type,
        size=len(data),
        text=checked.text,
    )
    with stored_whole([attachment]):
        attachment.file.save(checked.name, ContentFile(data), save=False)
        if checked.thumbnail:
            attachment.thumbnail.save("thumbnail.png", ContentFile(checked.thumbnail), save=False)
        attachment.save()
    return attachment


class stored_whole:  # noqa: N801 - used as a context manager, named like one
    """Files written inside are removed again if what follows them fails: no file without
    its row, no row without its file."""

    def __init__(self, objects):
        self.objects = objects

    def __enter__(self):
        self.atomic = transaction.atomic()
        self.atomic.__enter__()

    def __exit__(self, kind, error, trace):
        self.atomic.__exit__(kind, error, trace)
        if kind is not None:
            for obj in self.objects:
                delete_stored(*stored_names(obj))
        return False


def stored_names(obj) -> list[str]:
    names = []
    for field_name in ("file", "thumbnail"):
        stored = getattr(obj, field_name, None)
        if stored:
            names.append(stored.name)
    return names


def delete_stored(*names: str) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:  # noqa: BLE001 - a file left behind is logged, not a failure
            log.warning("could not delete stored file %s", name, exc_info=True)


# --- Sending with a message -------------------------------------------------------------


def attachment_ids(value) -> list[int]:
    """The ids of the files sent with a message, from a request; InvalidInput if malformed or
    too many."""
    if not value:
        return []
    if not isinstance(value, list | tuple) or not all(isinstance(v, int | str) for v in value):
        raise FileRefused("BAD_ATTACHMENTS", "Attachments must be a list of file ids.")
    try:
        ids = list(dict.fromkeys(int(v) for v in value))
    except ValueError:
        raise FileRefused("BAD_ATTACHMENTS", "Attachments must be a list of file ids.") from None
    if len(ids) > settings.FILES_PER_MESSAGE:
        raise FileRefused(
            "TOO_MANY_FILES",
            f"A message can carry at most {settings.FILES_PER_MESSAGE} files "
            f"(this one has {len(ids)}).",
        )
    return ids


def claim(user, assistant, ids: list[int], message) -> None:
    """Put the user's unsent files on `message`, inside the transaction that stores it;
    FileRefused if one is gone or sent already, or is an image the assistant cannot read."""
    from .models import Attachment

    if not ids:
        return
    found = list(
        Attachment.objects.select_for_update().filter(owner=user, message__isnull=True, pk__in=ids)
    )
    if len(found) != len(ids):
        raise FileRefused(
            "ATTACHMENT_GONE", "A file you attached is no longer there; attach it again."
        )
    check_assistant_reads(assistant, found)
    Attachment.objects.filter(pk__in=ids).update(message=message)


def check_assistant_reads(assistant, attachments) -> None:
    """Refuse images for a model or provider that cannot take them, before anything is sent."""
    images = [a.name for a in attachments if a.kind == "image"]
    if not images:
        return
    provider = settings.ASSISTANT_PROVIDERS.get(assistant.provider, {})
    if assistant.accepts_images and provider.get("vision", True):
        return
    raise FileRefused(
        "IMAGES_NOT_READ",
        f"{assistant.name} cannot read images (its model takes text only), so “{images[0]}” "
        "was not sent. Remove the image, or ask an assistant that reads images.",
    )
