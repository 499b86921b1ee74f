"""Files on the provider, for the protocols that want them uploaded (the Assistants API:
image files and `file_search` attachments) and for assistants' knowledge kept in the
provider's vector store (`file_search` with Responses and Assistants).

A file is uploaded once per provider and its id kept (Attachment.remote_files,
KnowledgeDocument.remote_file_id); deleting ours deletes theirs (signals.py).
"""

import logging

from ..exceptions import ProviderError
from .client import get_client, provider_errors

log = logging.getLogger(__name__)


async def upload(provider: dict, name: str, data: bytes, content_type: str, purpose: str) -> str:
    """Upload a file to the provider; its id."""
    with provider_errors():
        remote = await get_client(provider).files.create(
            file=(name, data, content_type), purpose=purpose
        )
    return remote.id


async def delete(provider: dict, file_id: str) -> None:
    """Delete a provider's file; one already gone is fine."""
    try:
        with provider_errors():
            await get_client(provider).files.delete(file_id)
    except ProviderError as error:
        if error.code != "not_found":
            raise


async def ensure_vector_store(provider: dict, assistant) -> str:
    """The assistant's vector store, created when it has none yet."""
    if assistant.vector_store_id:
        return assistant.vector_store_id
    with provider_errors():
        store = await get_client(provider).vector_stores.create(
            name=f"{assistant.name} (assistant {assistant.pk})",
            metadata={"assistant_id": str(assistant.pk)},
        )
    return store.id


async def add_to_vector_store(provider: dict, store_id: str, file_id: str) -> None:
    with provider_errors():
        await get_client(provider).vector_stores.files.create(store_id, file_id=file_id)


async def delete_vector_store(provider: dict, store_id: str) -> None:
    try:
        with provider_errors():
            await get_client(provider).vector_stores.delete(store_id)
    except ProviderError as error:
        if error.code != "not_found":
            raise
