"""How often the driver asks, and how long it waits after a failure: one rule for polls and
streams, for every engine."""

import random

from django.conf import settings

MAX_CONSECUTIVE_PROVIDER_ERRORS = 8


def poll_delay(quiet_polls: int) -> float:
    """Start fast, then back off while nothing changes (or a fixed interval, if so set)."""
    if settings.RUN_POLL_STRATEGY == "fixed":
        return settings.RUN_POLL_FIXED_SECONDS
    return min(settings.RUN_POLL_MAX_SECONDS, settings.RUN_POLL_FIRST_SECONDS * 2**quiet_polls)


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """The provider's Retry-After when given; otherwise exponential backoff with jitter."""
    if retry_after is not None:
        return retry_after
    return min(30.0, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
