"""Template helpers for the site's pages."""

from django import template
from django.contrib.messages import get_messages

register = template.Library()


@register.simple_tag(takes_context=True)
def flash_messages(context):
    """The request's one-off notices ("Deleted …"). Read through a tag because the thread
    page's context uses `messages` for the chat's messages."""
    return get_messages(context["request"])


@register.filter
def thousands(value):
    """1234567 -> "1,234,567", for usage figures; anything else unchanged."""
    return f"{value:,}" if isinstance(value, int) else value


@register.filter
def money(value):
    """Decimal("1234.5") -> "1,234.5000": costs are often fractions of a cent per run."""
    return f"{value:,.4f}" if value is not None else value
