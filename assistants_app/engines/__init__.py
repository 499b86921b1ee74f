"""Engines, one per provider protocol, behind one seam (engines/base.py)."""

from django.conf import settings

from ..exceptions import ProviderError
from ..models import Assistant, EngineKind
from .assistants import AssistantsEngine
from .base import Engine
from .chat import ChatEngine
from .responses import ResponsesEngine

ENGINES = {
    EngineKind.RESPONSES: ResponsesEngine,
    EngineKind.ASSISTANTS: AssistantsEngine,
    EngineKind.CHAT: ChatEngine,
}


def get_engine(assistant: Assistant) -> Engine:
    """The engine for an assistant, built from its provider's configuration."""
    try:
        engine_class = ENGINES[assistant.engine]
    except KeyError:
        raise ProviderError(
            "engine_not_available", f"The {assistant.engine} engine is not available."
        ) from None
    provider = settings.ASSISTANT_PROVIDERS.get(assistant.provider)
    if provider is None:
        raise ProviderError(
            "provider_not_configured",
            f"The provider {assistant.provider!r} of this assistant is not configured.",
        )
    # The name goes along: what a provider offers is remembered under it (capabilities.py).
    return engine_class({**provider, "name": assistant.provider})
