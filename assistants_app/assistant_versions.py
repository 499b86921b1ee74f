"""Assistants' versions: every change of what an assistant answers with (its instructions, model,
engine, provider, temperature, context window, tools, knowledge documents) is kept as an
AssistantVersion, numbered per assistant, with who made it and which fields changed. Admin shows
each version as a diff against the one before and restores any of them; each run records the
version it was created with (services.py).

A version is recorded after every save of an assistant that changed a versioned field (a
post_save signal, so the shell and commands are covered as well as admin); admin names the
person through `changes_by`. A change that bypasses save() (a queryset's update()) is caught
when the next run is created: `current_id` records it then, by nobody.
"""

import difflib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils.html import format_html, format_html_join

from .config_cache import ConfigCache
from .models import Assistant, AssistantVersion, KnowledgeDocument

# What decides an assistant's answers: its fields, and its knowledge (the names of its
# documents: knowledge.py). A restore puts the fields back; documents deleted since are gone
# with their files, so staff add them again (the diff says which).
FIELDS = (
    "instructions", "model", "engine", "provider", "temperature", "context_tokens", "tools",
)  # fmt: skip
VERSIONED_FIELDS = (*FIELDS, "knowledge")
LABELS = {"context_tokens": "context window", "knowledge": "knowledge documents"}

_changed_by: ContextVar = ContextVar("assistant_changed_by", default=(None, None))


@contextmanager
def changes_by(user, restored_from: int | None = None) -> Iterator[None]:
    """Assistants saved within are recorded as changed by `user` (restoring a version)."""
    token = _changed_by.set((user, restored_from))
    try:
        yield
    finally:
        _changed_by.reset(token)


def values_of(assistant: Assistant) -> dict:
    """The versioned fields' values, as JSON stores them."""
    values = _field_values(assistant)
    documents = KnowledgeDocument.objects.filter(assistant_id=assistant.pk) if assistant.pk else ()
    values["knowledge"] = sorted(f"{d.name} (#{d.pk})" for d in documents)
    assistant.has_documents = bool(values["knowledge"])  # a run's grounding needs no query
    return json.loads(json.dumps(values))


def record(assistant: Assistant, user=None, restored_from: int | None = None):
    """A new version of the assistant as it is now, unless it is the same as the latest; the
    new version, or None."""
    values = values_of(assistant)
    with transaction.atomic():
        # Two saves at once (two staff members, a save and a run) get numbers one after the
        # other: the assistant's row is the lock.
        Assistant.objects.select_for_update().filter(pk=assistant.pk).exists()
        latest = assistant.versions.order_by("-number").first()
        if latest is not None and latest.values == values:
            return None
        changed = [
            name
            for name in VERSIONED_FIELDS
            if latest is None or latest.values.get(name) != values[name]
        ]
        return AssistantVersion.objects.create(
            assistant=assistant,
            number=latest.number + 1 if latest else 1,
            values=values,
            changed=changed,
            created_by=user if user is not None and user.is_authenticated else None,
            restored_from=restored_from,
        )


# Each assistant's latest version (id, values), read for every run (config_cache.py). The
# assistant's fields are compared with it on every run, so a change to them is never missed;
# its knowledge documents are read again only with the version, at most every few seconds.
_latest_versions = ConfigCache(
    "assistant-versions", models=[Assistant, AssistantVersion, KnowledgeDocument]
)


def current_id(assistant: Assistant) -> int | None:
    """The id of the version the assistant (as loaded) is: for a run about to use it. No
    query while its latest version is known (above) and its fields are the same; else two,
    and if the assistant changed without a save(), its version is recorded."""
    known = _latest_versions.get(assistant.pk, lambda: _latest(assistant.pk))
    if known is not None and known[1] == {**known[1], **_field_values(assistant)}:
        assistant.has_documents = bool(known[1].get("knowledge"))  # as values_of does
        return known[0]
    latest = _latest(assistant.pk)
    if latest is not None and latest[1] == values_of(assistant):
        return latest[0]
    version = record(assistant)
    return version.pk if version else latest[0]


def _latest(assistant_id: int) -> tuple[int, dict] | None:
    return (
        AssistantVersion.objects.filter(assistant_id=assistant_id)
        .order_by("-number")
        .values_list("pk", "values")
        .first()
    )


def _field_values(assistant: Assistant) -> dict:
    return json.loads(json.dumps({name: getattr(assistant, name) for name in FIELDS}))


@receiver(post_save, sender=Assistant, dispatch_uid="assistant-versions")
def _record_on_save(sender, instance: Assistant, update_fields=None, raw=False, **kwargs):
    if raw or (update_fields is not None and not set(update_fields) & set(VERSIONED_FIELDS)):
        return  # a fixture being loaded, or only unversioned fields (remote_id) saved
    user, restored_from = _changed_by.get()
    record(instance, user, restored_from)


@receiver(post_save, sender=KnowledgeDocument, dispatch_uid="assistant-versions-documents")
def _record_on_document_added(sender, instance: KnowledgeDocument, created, raw=False, **kwargs):
    if created and not raw:
        record(instance.assistant, _changed_by.get()[0])


@receiver(post_delete, sender=KnowledgeDocument, dispatch_uid="assistant-versions-documents")
def _record_on_document_deleted(sender, instance: KnowledgeDocument, origin=None, **kwargs):
    # Only a document deleted for itself: with its assistant, there is nothing to version
    # (and a version made then would hold up the assistant's own deletion).
    if isinstance(origin, KnowledgeDocument) or getattr(origin, "model", None) is KnowledgeDocument:
        assistant = Assistant.objects.filter(pk=instance.assistant_id).first()
        if assistant is not None:
            record(assistant, _changed_by.get()[0])


def restore(version: AssistantVersion, user) -> AssistantVersion | None:
    """Put the assistant back as it was in `version`; the new version this makes (None when
    the assistant is already so). Raises ValidationError when the old settings are no longer
    valid (a provider taken out of the configuration)."""
    assistant = version.assistant
    for name, value in version.values.items():
        if name in FIELDS:
            setattr(assistant, name, value)
    assistant.full_clean()
    before = assistant.versions.order_by("-number").values_list("number", flat=True).first()
    with changes_by(user, restored_from=version.number):
        assistant.save()
    return assistant.versions.filter(number__gt=before or 0).order_by("-number").first()


def previous_of(version: AssistantVersion) -> AssistantVersion | None:
    return (
        AssistantVersion.objects.filter(
            assistant_id=version.assistant_id, number__lt=version.number
        )
        .order_by("-number")
        .first()
    )


def diff_html(version: AssistantVersion) -> str:
    """The version against the one before, as HTML: each changed field's old and new value,
    long text (instructions) as a line diff."""
    before = previous_of(version)
    old_values = before.values if before else {}
    rows = []
    for name in version.changed:
        old, new = old_values.get(name), version.values.get(name)
        label = LABELS.get(name, name).capitalize()
        if isinstance(new, str) and ("\n" in (old or "") + new or len(new) > 80):
            rows.append(format_html("<h3>{}</h3>{}", label, _line_diff(old or "", new)))
        else:
            rows.append(
                format_html(
                    '<h3>{}</h3><p><del class="diff-old">{}</del> → '
                    '<ins class="diff-new">{}</ins></p>',
                    label,
                    _shown(old),
                    _shown(new),
                )
            )
    if not rows:
        return format_html("<p>{}</p>", "No versioned field changed.")
    return format_html_join("", "{}", ((row,) for row in rows))


def _line_diff(old: str, new: str) -> str:
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=2)
    kinds = {"+": "diff-new", "-": "diff-old", "@": "diff-at"}
    shown = [
        (kinds.get(line[:1], "diff-same"), line)
        for line in lines
        if not line.startswith(("+++", "---"))
    ]
    return format_html(
        '<pre class="diff">{}</pre>',
        format_html_join("", '<span class="{}">{}</span>', shown),  # block spans: a line each
    )


def _shown(value) -> str:
    if value is None or value == "":
        return "(none)"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "(none)"
    return str(value)
