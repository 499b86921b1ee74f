"""Deleting a message, a thread or an assistant deletes its files: here (storage) and on the
provider (uploaded files, vector stores). Done after the transaction commits, so a rolled-back
delete loses nothing; a provider that fails is logged, never an error for the person."""

import logging

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from . import files
from .engines import openai_files
from .models import Assistant, Attachment, KnowledgeDocument

log = logging.getLogger(__name__)


@receiver(post_delete, sender=Attachment)
def attachment_deleted(sender, instance: Attachment, **kwargs) -> None:
    names = files.stored_names(instance)
    remote = dict(instance.remote_files)
    transaction.on_commit(lambda: _delete_everywhere(names, remote))


@receiver(post_delete, sender=KnowledgeDocument)
def document_deleted(sender, instance: KnowledgeDocument, **kwargs) -> None:
    names = files.stored_names(instance)
    remote = {}
    if instance.remote_file_id:
        provider = _assistant_provider(instance.assistant_id)
        if provider:
            remote[provider] = instance.remote_file_id
    transaction.on_commit(lambda: _delete_everywhere(names, remote))


@receiver(post_delete, sender=Assistant)
def assistant_deleted(sender, instance: Assistant, **kwargs) -> None:
    if instance.vector_store_id:
        store, provider = instance.vector_store_id, instance.provider
        transaction.on_commit(lambda: _delete_vector_store(provider, store))


def _assistant_provider(assistant_id: int) -> str:
    return Assistant.objects.filter(pk=assistant_id).values_list("provider", flat=True).first()


def _delete_everywhere(names: list[str], remote: dict[str, str]) -> None:
    files.delete_stored(*names)
    for provider_name, file_id in remote.items():
        provider = settings.ASSISTANT_PROVIDERS.get(provider_name)
        if provider is None:
            continue
        try:
            async_to_sync(openai_files.delete)({**provider, "name": provider_name}, file_id)
        except Exception:  # noqa: BLE001 - logged; the file is ours no longer either way
            log.warning("could not delete file %s on provider %s", file_id, provider_name)


def _delete_vector_store(provider_name: str, store_id: str) -> None:
    provider = settings.ASSISTANT_PROVIDERS.get(provider_name)
    if provider is None:
        return
    try:
        async_to_sync(openai_files.delete_vector_store)(
            {**provider, "name": provider_name}, store_id
        )
    except Exception:  # noqa: BLE001
        log.warning("could not delete vector store %s on provider %s", store_id, provider_name)
