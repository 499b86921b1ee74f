"""Staff's settings that every send reads, kept by each process for a few seconds.

A send reads who may do how much (the user's limits, their groups, which groups have budgets)
and what the assistant answers with (its latest version and knowledge documents), and the usage
ledger reads prices. Staff change these a few times a month; read on every send, they were five
of the 37 statements of a follow-up (prices were kept already: BENCHMARKS.md, "Cost per
answer"), each about a millisecond of the process's CPU. Who may use an assistant and its
tools' approval rules are not kept here: a change there is about access, and counts at once.

A `ConfigCache` keeps what it read for `SECONDS`. A save or delete of one of its models in
this process clears it at once, and again when that change commits, so that nothing read in
between keeps the old value; another process sees the change within `SECONDS`, and so does
this one a change that bypasses save() (a queryset's update(), raw SQL).
"""

import time
from collections.abc import Callable, Hashable
from typing import Any

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

SECONDS = 10.0
MAX_ENTRIES = 10_000  # one per user or assistant at most: a bound, not a policy

_caches: list["ConfigCache"] = []


class ConfigCache:
    def __init__(self, name: str, models=(), relations=()):
        """`models`: whose save or delete clears it; `relations`: many-to-many tables
        (`Model.field.through`) whose changes do."""
        self.name = name
        self._entries: dict[Hashable, tuple[Any, float]] = {}
        self._generation = 0
        for model in models:
            for signal in (post_save, post_delete):
                signal.connect(self._changed, sender=model, weak=False,
                               dispatch_uid=f"config-cache-{name}-{model.__name__}")  # fmt: skip
        for through in relations:
            m2m_changed.connect(self._changed, sender=through, weak=False,
                                dispatch_uid=f"config-cache-{name}-{through.__name__}")  # fmt: skip
        _caches.append(self)

    def get(self, key: Hashable, load: Callable[[], Any]) -> Any:
        """What `load()` returns for `key`, read at most once per SECONDS. Treat it as
        read-only: every caller in the process gets the same object."""
        entry = self._entries.get(key)
        if entry is not None and _clock() < entry[1]:
            return entry[0]
        generation = self._generation
        value = load()
        if generation == self._generation:  # not kept if a change came while it was read
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (value, _clock() + SECONDS)
        return value

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()

    def _changed(self, using=None, **kwargs) -> None:
        self.clear()
        transaction.on_commit(self.clear, using=using)


def _clock() -> float:
    return time.monotonic()


def clear_all() -> None:
    """Forget everything kept (tests: an earlier test's rows were rolled back unseen)."""
    for cache in _caches:
        cache.clear()
