"""Files over HTTP: upload an attachment, take it back before sending, and serve files to
those who may see them (anyone else gets 404). Never public media: every file goes through
these views, as a download or, for images and PDFs, shown inline, with `nosniff`."""

from django.conf import settings
from django.db.models import Q
from django.http import FileResponse, Http404, HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import files
from .exceptions import ClientError
from .models import Assistant, Attachment, KnowledgeDocument
from .signed_in import login_required

INLINE_TYPES = {*files.IMAGE_TYPES, files.PDF}


@login_required
@require_POST
def attachment_upload(request: HttpRequest) -> JsonResponse:
    """One file (field `file`), checked and kept as the user's unsent attachment."""
    upload = request.FILES.get("file")
    try:
        if upload is None:
            raise files.FileRefused("NO_FILE", "Choose a file to attach.")
        if upload.size > settings.FILE_MAX_BYTES:  # refused before it is read
            raise files.FileRefused(
                "FILE_TOO_LARGE",
                f"“{files.clean_name(upload.name)}” is {files.human_size(upload.size)}; files "
                f"can be at most {files.human_size(settings.FILE_MAX_BYTES)}.",
            )
        attachment = files.store_attachment(request.user, upload.name, upload.read())
    except ClientError as error:
        return JsonResponse({"error": {"code": error.code, "message": error.message}}, status=400)
    return JsonResponse({"attachment": attachment.as_event()}, status=201)


@login_required
@require_http_methods(["GET", "DELETE"])
def attachment(request: HttpRequest, pk: int):
    """GET: the file. DELETE: take back a file not sent yet (the chip's ×)."""
    if request.method == "DELETE":
        unsent = get_object_or_404(Attachment, pk=pk, owner=request.user, message__isnull=True)
        unsent.delete()
        return JsonResponse({"deleted": pk})
    found = get_object_or_404(_visible_attachments(request.user), pk=pk)
    return _serve(found.file, found.name, found.content_type)


@login_required
@require_GET
def attachment_thumbnail(request: HttpRequest, pk: int):
    found = get_object_or_404(_visible_attachments(request.user).exclude(thumbnail=""), pk=pk)
    return _serve(found.thumbnail, "thumbnail.png", "image/png")


@login_required
@require_GET
def knowledge_document(request: HttpRequest, pk: int):
    """A document of an assistant's knowledge, to those who may use the assistant."""
    available = Assistant.objects.available_to(request.user)
    found = get_object_or_404(KnowledgeDocument, pk=pk, assistant__in=available)
    return _serve(found.file, found.name, found.content_type)


@login_required
@require_GET
def knowledge_file(request: HttpRequest, file_id: str):
    """A document cited by the provider's file_search, by the provider's id of it."""
    available = Assistant.objects.available_to(request.user)
    found = KnowledgeDocument.objects.filter(remote_file_id=file_id, assistant__in=available)
    document = found.first()
    if document is None:
        raise Http404("No such document")
    return _serve(document.file, document.name, document.content_type)


def _visible_attachments(user):
    """The user's own files: unsent ones, and those on messages of the user's threads."""
    return Attachment.objects.filter(
        Q(owner=user, message__isnull=True) | Q(message__thread__owner=user)
    )


def _serve(stored, name: str, content_type: str) -> FileResponse:
    try:
        handle = stored.open("rb")
    except (FileNotFoundError, OSError):
        raise Http404("The file is missing from storage") from None
    inline = content_type in INLINE_TYPES
    if content_type.startswith("text/"):
        content_type += "; charset=utf-8"
    response = FileResponse(
        handle, as_attachment=not inline, filename=name, content_type=content_type
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response
