"""Function tools an assistant may call, and the registry staff pick them from in admin.

A tool is a plain function taking the user the run answers and keyword arguments, registered
with a name, a description and a JSON schema of its parameters. The run driver calls it as the
thread's owner when a run requires action, so a tool only ever sees that user's data.
"""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .db import database_sync_to_async
from .exceptions import UnknownTool
from .models import Message, Run

log = logging.getLogger(__name__)

SEARCH_LIMIT = 10
SNIPPET_CHARS = 300


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict  # JSON schema of the keyword arguments
    function: Callable[..., object]

    def definition(self) -> dict:
        """The tool as the provider's `tools` list wants it."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


REGISTRY: dict[str, Tool] = {}


def tool(name: str, description: str, parameters: dict):
    """Register the decorated function as a tool."""

    def register(function):
        REGISTRY[name] = Tool(name, description, parameters, function)
        return function

    return register


def choices() -> list[tuple[str, str]]:
    return [(t.name, f"{t.name}: {t.description}") for t in REGISTRY.values()]


def definitions(names: list[str]) -> list[dict]:
    """Provider tool definitions for the registered tools among `names`."""
    return [REGISTRY[name].definition() for name in names if name in REGISTRY]


async def call(user, enabled: list[str], name: str, arguments: str) -> str:
    """Run one tool call for `user` and return its output as JSON text for the model.

    Raises UnknownTool when the tool is not registered or not enabled on the assistant. A tool
    that fails, or arguments that are not a JSON object, give an error output instead: the
    model reads it and can say so, and the run goes on.
    """
    if name not in enabled or name not in REGISTRY:
        raise UnknownTool(f"The assistant asked for the tool {name!r}, which it does not have.")
    try:
        kwargs = json.loads(arguments or "{}")
        if not isinstance(kwargs, dict):
            raise TypeError("arguments must be a JSON object")
        # Tools may query the database; this also keeps a slow tool off the event loop.
        result = await database_sync_to_async(REGISTRY[name].function)(user, **kwargs)
    except Exception as error:
        log.warning("tool %s failed for user %s: %r", name, user.pk, error)
        return json.dumps({"error": f"{type(error).__name__}: {error}"})
    return json.dumps(result, default=str)


@tool(
    "current_datetime",
    "The current date, time and weekday, in UTC or in a given IANA time zone.",
    {
        "type": "object",
        "properties": {
            "timezone": {
                "type": "string",
                "description": "An IANA time zone such as Europe/Paris. Default: UTC.",
            }
        },
        "required": [],
    },
)
def current_datetime(user, timezone: str = "UTC") -> dict:
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"Unknown time zone {timezone!r}.") from None
    now = datetime.now(zone)
    return {
        "datetime": now.isoformat(timespec="seconds"),
        "timezone": timezone,
        "weekday": now.strftime("%A"),
    }


@tool(
    "search_my_messages",
    "Search the messages the user wrote in their earlier conversations (newest first).",
    {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "Words to look for."},
            "limit": {
                "type": "integer",
                "description": f"How many messages at most (1-{SEARCH_LIMIT}). Default: 5.",
            },
        },
        "required": ["query"],
    },
)
def search_my_messages(user, query: str, limit: int = 5) -> list[dict]:
    query = str(query).strip()
    if not query:
        raise ValueError("Give some words to search for.")
    limit = max(1, min(SEARCH_LIMIT, int(limit)))
    found = (
        Message.objects.filter(thread__owner=user, role=Message.Role.USER, text__icontains=query)
        # The message being answered right now is not a past one.
        .exclude(pk__in=_prompts_being_answered(user))
        .select_related("thread")
        .order_by("-created_at", "-pk")[:limit]
    )
    return [
        {
            "thread": str(message.thread),
            "sent_at": message.created_at.isoformat(timespec="seconds"),
            "text": message.text[:SNIPPET_CHARS],
        }
        for message in found
    ]


def _prompts_being_answered(user):
    # No NULLs: `NOT IN` a list holding NULL matches nothing.
    active = Run.objects.active().filter(thread__owner=user, prompt__isnull=False)
    return active.values("prompt")
