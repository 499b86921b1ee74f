"""Admin's knowledge documents: staff upload documents to an assistant, each checked, cut
into passages and indexed (knowledge.py) and, on providers with vector stores, added to the
assistant's store there; deleting one deletes it here and there (signals.py)."""

from asgiref.sync import async_to_sync
from django import forms
from django.conf import settings
from django.contrib import admin, messages

from . import assistant_versions, files, knowledge
from .engines import openai_files
from .exceptions import ClientError, ProviderError
from .models import Assistant, KnowledgeDocument


class KnowledgeUploadForm(forms.ModelForm):
    upload = forms.FileField(
        label="Document",
        help_text="PDF, DOCX, text or Markdown, up to "
        f"{files.human_size(settings.FILE_MAX_BYTES)}. Its passages are cited in answers.",
    )

    class Meta:
        model = KnowledgeDocument
        fields = ["assistant"]

    def clean_upload(self):
        upload = self.cleaned_data["upload"]
        if upload.size > settings.FILE_MAX_BYTES:
            raise forms.ValidationError(
                f"{upload.name} is larger than {files.human_size(settings.FILE_MAX_BYTES)}."
            )
        data = upload.read()
        try:
            checked = files.check(upload.name, data)
        except ClientError as error:
            raise forms.ValidationError(error.message) from None
        if checked.kind != "document":
            raise forms.ValidationError("Knowledge is documents; this is an image.")
        return (upload.name, data)


@admin.register(KnowledgeDocument)
class KnowledgeDocumentAdmin(admin.ModelAdmin):
    list_display = ["name", "assistant", "pages", "size", "created_at"]
    list_filter = ["assistant"]
    search_fields = ["name", "assistant__name"]
    readonly_fields = ["assistant", "name", "content_type", "size", "pages", "remote_file_id"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = KnowledgeUploadForm
            kwargs["fields"] = ["assistant", "upload"]
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else []

    def get_fields(self, request, obj=None):
        return self.readonly_fields if obj else ["assistant", "upload"]

    def save_model(self, request, obj, form, change):
        if change:
            return  # a document is replaced by deleting it and adding the new one
        name, data = form.cleaned_data["upload"]
        with assistant_versions.changes_by(request.user):  # a new version of the assistant
            document = knowledge.add_document(form.cleaned_data["assistant"], name, data)
        obj.pk = document.pk  # admin's redirect and message name the stored document
        obj.__dict__.update(
            {k: v for k, v in document.__dict__.items() if not k.startswith("_")}
        )
        if not add_to_provider(document.assistant, document):
            messages.warning(
                request,
                f"“{document}” is indexed here, but the provider refused it: answers on that "
                "provider will not find it. Delete and add it again to retry.",
            )

    def delete_model(self, request, obj):
        with assistant_versions.changes_by(request.user):
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with assistant_versions.changes_by(request.user):
            super().delete_queryset(request, queryset)

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)


def sync_documents(assistant: Assistant) -> int:
    """Add the documents its provider's vector store lacks (an assistant moved to such a
    provider, a refusal earlier); how many could not be added."""
    if not knowledge.uses_vector_store(assistant):
        return 0
    missing = KnowledgeDocument.objects.filter(assistant=assistant, remote_file_id="")
    return sum(1 for document in missing if not add_to_provider(assistant, document))


def add_to_provider(assistant: Assistant, document: KnowledgeDocument) -> bool:
    """Upload the document to the assistant's vector store on providers that search their
    own (`file_search`). False when the provider refused it (logged)."""
    if not knowledge.uses_vector_store(assistant):
        return True
    provider = {**settings.ASSISTANT_PROVIDERS[assistant.provider], "name": assistant.provider}
    try:
        async_to_sync(_upload)(provider, assistant, document)
    except ProviderError:
        knowledge.log.warning("knowledge %s: the provider refused it", document.pk, exc_info=True)
        return False
    return True


async def _upload(provider: dict, assistant: Assistant, document: KnowledgeDocument) -> None:
    with document.file.open("rb") as stored:
        data = stored.read()
    file_id = await openai_files.upload(
        provider, document.name, data, document.content_type, "assistants"
    )
    await KnowledgeDocument.objects.filter(pk=document.pk).aupdate(remote_file_id=file_id)
    document.remote_file_id = file_id
    store_id = await openai_files.ensure_vector_store(provider, assistant)
    if store_id != assistant.vector_store_id:
        assistant.vector_store_id = store_id
        await Assistant.objects.filter(pk=assistant.pk).aupdate(vector_store_id=store_id)
    await openai_files.add_to_vector_store(provider, store_id, file_id)
