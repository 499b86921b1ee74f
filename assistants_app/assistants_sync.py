"""Keeping provider-side assistants in step with ours, for staff (admin) and commands.

Only the Assistants API keeps an assistant on the provider; our row stays the truth and runs
send its instructions and tools anyway, so a failed sync never loses an edit.
"""

from asgiref.sync import async_to_sync

from .engines import get_engine
from .models import Assistant, EngineKind


def has_remote_assistant(assistant: Assistant) -> bool:
    return assistant.engine == EngineKind.ASSISTANTS


def sync_assistant(assistant: Assistant) -> None:
    """Create or update the assistant on its provider and store its remote id.

    Does nothing for engines without provider-side assistants. Raises ProviderError.
    """
    if not has_remote_assistant(assistant):
        return
    async_to_sync(get_engine(assistant).sync_assistant)(assistant)
    Assistant.objects.filter(pk=assistant.pk).update(remote_id=assistant.remote_id)
