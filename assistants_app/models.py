"""Assistants, the threads people hold with them, their messages and the runs that answer."""

import re
import uuid
from datetime import datetime
from functools import cached_property

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.models import Case, F, Q, Value, When
from django.urls import reverse
from django.utils import timezone

from . import prepared
from .rendering import render_markdown
from .wording import run_summary


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    REQUIRES_ACTION = "requires_action"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    FAILED = "failed"
    COMPLETED = "completed"
    INCOMPLETE = "incomplete"
    EXPIRED = "expired"


TERMINAL_STATUSES = frozenset(
    {
        RunStatus.CANCELLED,
        RunStatus.FAILED,
        RunStatus.COMPLETED,
        RunStatus.INCOMPLETE,
        RunStatus.EXPIRED,
    }
)
ACTIVE_STATUSES = frozenset(set(RunStatus) - TERMINAL_STATUSES)


class EngineKind(models.TextChoices):
    RESPONSES = "responses", "Responses API"
    ASSISTANTS = "assistants", "Assistants API (v2)"
    CHAT = "chat", "Chat Completions"


def validate_provider(value: str) -> None:
    if value not in settings.ASSISTANT_PROVIDERS:
        known = ", ".join(sorted(settings.ASSISTANT_PROVIDERS))
        raise ValidationError(f"Unknown provider {value!r}; configured providers: {known}.")


MAX_STARTERS = 4
STARTER_MAX_CHARS = 120


class AssistantQuerySet(models.QuerySet):
    def available_to(self, user) -> "AssistantQuerySet":
        """Active assistants open to everyone or shared with one of the user's groups."""
        return (
            self.filter(is_active=True)
            .filter(Q(groups__isnull=True) | Q(groups__in=user.groups.all()))
            .distinct()
        )


class Assistant(models.Model):
    name = models.CharField(max_length=200)
    description = models.CharField(max_length=500, blank=True)
    instructions = models.TextField(
        blank=True, help_text="Sent with every request; kept here, not on the provider."
    )
    model = models.CharField(
        max_length=200,
        default="gpt-4.1-mini",
        blank=True,
        help_text="Blank: the provider's default model (see README, Providers).",
    )
    engine = models.CharField(
        max_length=20, choices=EngineKind.choices, default=EngineKind.RESPONSES
    )
    provider = models.CharField(
        max_length=100,
        validators=[validate_provider],
        help_text="A key of ASSISTANT_PROVIDERS (see README).",
    )
    temperature = models.FloatField(null=True, blank=True)
    context_tokens = models.PositiveIntegerField(
        "context window (tokens)",
        null=True,
        blank=True,
        help_text="How many tokens the model reads at once. Blank: what the provider's model "
        "list says (llama.cpp, vLLM), if it says. The history sent is trimmed to fit.",
    )
    tools = models.JSONField(default=list, blank=True)
    accepts_images = models.BooleanField(
        "model reads images",
        default=True,
        help_text="Off for a text-only model: a message with an image is refused before it is "
        "sent, with the reason.",
    )
    vector_store_id = models.CharField(
        max_length=200,
        blank=True,
        help_text="The provider's vector store holding its knowledge (file_search), if any.",
    )
    remote_id = models.CharField(max_length=200, blank=True, help_text="The provider's id.")
    conversation_starters = models.JSONField(
        default=list,
        blank=True,
        help_text=f"Up to {MAX_STARTERS} short prompts offered as cards when a chat starts.",
    )
    is_active = models.BooleanField(default=True)
    groups = models.ManyToManyField(
        Group, blank=True, help_text="Who may use it. Nobody selected: every user."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AssistantQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        provider = settings.ASSISTANT_PROVIDERS.get(self.provider, {})
        if not self.model and not provider.get("default_model"):
            raise ValidationError({"model": "Name a model: this provider has no default model."})

    @property
    def is_simulated(self) -> bool:
        return bool(settings.ASSISTANT_PROVIDERS.get(self.provider, {}).get("simulated"))


class ThreadQuerySet(models.QuerySet):
    def owned_by(self, user) -> "ThreadQuerySet":
        """The user's own threads: the one scope every view, service and socket reads a
        thread through, so nobody reaches a thread that is not theirs."""
        return self.filter(owner_id=user.pk)


class Thread(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="threads"
    )
    assistant = models.ForeignKey(Assistant, on_delete=models.PROTECT, related_name="threads")
    title = models.CharField(max_length=200, blank=True)
    remote_id = models.CharField(
        max_length=200,
        blank=True,
        help_text="The provider thread or conversation of the latest run (branches.py).",
    )
    # The message the page shows last: the thread's history is the path from the root to it.
    current_leaf = models.ForeignKey(
        "Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ThreadQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title or f"Thread {self.pk}"

    @property
    def group_name(self) -> str:
        """The Channels group every socket on this thread joins."""
        return f"thread.{self.pk}"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="messages")
    # The message this one follows (tree.py): an edit is a sibling of the message it edits, a
    # regenerated answer a sibling of the answer. None: the thread's first message (or an edit
    # of it).
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    role = models.CharField(max_length=20, choices=Role.choices)
    text = models.TextField()
    remote_id = models.CharField(max_length=200, blank=True)
    is_partial = models.BooleanField(
        default=False, help_text="Cut short: the run was stopped, failed or ran out."
    )
    run = models.ForeignKey(
        "Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            # Storing a provider's message twice is impossible, whichever process tries.
            models.UniqueConstraint(
                fields=["thread", "remote_id"],
                condition=~Q(remote_id=""),
                name="message_remote_id_unique_per_thread",
            )
        ]

    # Set on a new message that starts a branch of its own at the root (an edit of the first
    # message); any other new message without a parent follows the thread's current leaf.
    starts_thread = False

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:50]}"

    def save(self, *args, **kwargs):
        """A new message follows the thread's current leaf unless given a parent, and becomes
        the current leaf if its parent was: the thread goes on along the branch it shows."""
        adding = self._state.adding
        if adding:
            self._follow_the_leaf()
        super().save(*args, **kwargs)
        if adding:
            self._thread_goes_on()

    def save_unless_stored(self) -> bool:
        """Save a provider's new message, as save() does, unless the thread holds one of its
        provider id already (stored by another driver, at this very moment too): false then.
        One statement where a look, a savepoint, an insert and its release were four: the
        unique (thread, remote_id) key decides (INSERT ... ON CONFLICT DO NOTHING)."""
        if not self._state.adding or not self.remote_id:
            raise ValueError("save_unless_stored saves a new message with a provider id")
        return self._insert(conflict=_unless_stored())

    def insert(self) -> None:
        """Save a new message as save() does, its insert built once (prepared.insert): every
        post stores one."""
        if not self._state.adding:
            raise ValueError("insert saves a new message")
        self._insert()

    def _insert(self, conflict: str = "") -> bool:
        """save()'s steps for a new message around prepared.insert; false if `conflict` kept
        it out."""
        self._follow_the_leaf()
        if not prepared.insert(self, conflict=conflict):
            return False
        self._thread_goes_on()
        return True

    def _follow_the_leaf(self) -> None:
        if self.parent_id is None and not self.starts_thread:
            leaf = Thread.objects.filter(pk=self.thread_id).values_list(
                "current_leaf_id", flat=True
            )
            self.parent_id = leaf.first()

    def _thread_goes_on(self) -> None:
        # One write: the thread has news (newest first in the list), and goes on along this
        # message if it showed its parent.
        _thread_goes_on(
            thread_id=self.thread_id,
            parent_id=self.parent_id,
            message_id=self.pk,
            now=timezone.now(),
        )

    @cached_property
    def html(self) -> str:
        # Once per loaded message: a message's text never changes, and a new one's events
        # (the post's answer, the broadcast) each show it.
        return render_markdown(self.text)

    def as_event(self) -> dict:
        return {
            "id": self.pk,
            "role": self.role,
            # A user's message is shown as typed, never as Markdown: its text, not rendered
            # (rendering and sanitising it cost every post a millisecond for nothing).
            "text": self.text if self.role == self.Role.USER else None,
            "html": self.html if self.role == self.Role.ASSISTANT else None,
            "created_at": self.created_at.isoformat(),
            "run_id": self.run_id,
            "parent_id": self.parent_id,
            "partial": self.is_partial,
            "attachments": [attachment.as_event() for attachment in self.files],
            "sources": [citation.as_event() for citation in self.sources],
        }

    @property
    def files(self) -> list:
        """A user's message's attachments (answers have none: no query for them)."""
        return list(self.attachments.all()) if self.role == self.Role.USER else []

    @property
    def sources(self) -> list:
        """The numbered sources this answer cites ([n] in its text), for links under it."""
        if self.role != self.Role.ASSISTANT or not self.run_id:
            return []
        cited = {int(number) for number in re.findall(r"\[(\d{1,3})\]", self.text)}
        if not cited:
            return []
        # Cited by the provider's file_search: "[n]: /knowledge/files/<file id>/" after the
        # text (engines/citations.py); unsaved citations, to show the same way.
        by_provider = dict(PROVIDER_CITATION.findall(self.text))
        if by_provider:
            documents = KnowledgeDocument.objects.filter(remote_file_id__in=by_provider.values())
            found = {document.remote_file_id: document for document in documents}
            return [
                Citation(number=int(n), document=found[file_id], title=found[file_id].name)
                for n, file_id in by_provider.items()
                if file_id in found
            ]
        citations = Citation.objects.filter(run_id=self.run_id, number__in=cited)
        return list(citations.select_related("document"))


PROVIDER_CITATION = re.compile(r"^\[(\d{1,3})\]: /knowledge/files/([^/\s]+)/$", re.MULTILINE)


@prepared.update
def _thread_goes_on(thread_id: int, parent_id: int | None, message_id: int, now: datetime):
    """Message.save's write: the thread's news, and its leaf if it showed the new message's
    parent. (Built once, prepared.py: every message of every answer makes it.)"""
    leaf = Case(
        When(current_leaf_id=parent_id, then=Value(message_id)),
        default=F("current_leaf_id"),
        output_field=models.BigIntegerField(),
    )
    return Thread.objects.filter(pk=thread_id), {"current_leaf_id": leaf, "updated_at": now}


def _unless_stored() -> str:
    """The insert's clause that keeps out a message whose (thread, remote_id) is taken. The
    conflict target names the unique constraint's own condition, as both PostgreSQL and SQLite
    require of a partial index (tests/test_store_once.py runs on both)."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    return (
        f" ON CONFLICT ({quote('thread_id')}, {quote('remote_id')})"
        f" WHERE NOT ({quote('remote_id')} = '') DO NOTHING"
    )


class RunQuerySet(models.QuerySet):
    def active(self) -> "RunQuerySet":
        return self.filter(status__in=ACTIVE_STATUSES)


class Run(models.Model):
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="runs")
    prompt = models.ForeignKey(
        Message,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The user's message this run answers: its history is the path up to it.",
    )
    assistant = models.ForeignKey(
        Assistant,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who answered: a thread can switch assistant between runs.",
    )
    conversation = models.ForeignKey(
        "ProviderConversation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
        help_text="The provider conversation it ran in (branches.py).",
    )
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    remote_id = models.CharField(max_length=200, blank=True)
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    cached_input_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Of the input tokens, those the provider had cached."
    )
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    assistant_version = models.ForeignKey(
        "AssistantVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
        help_text="The assistant's settings when the run was created (assistant_versions.py).",
    )
    usage_estimated = models.BooleanField(
        default=False, help_text="The provider reported no usage: the tokens were counted here."
    )
    note = models.CharField(
        max_length=300, blank=True, help_text="Shown with the answer, e.g. history left out."
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Which process drives the run, until when; another process takes over only after expiry.
    # The answer streamed so far and the provider's position in the stream, saved every
    # STREAM_SAVE_SECONDS so that a reload or another process can resume it.
    partial_text = models.TextField(blank=True)
    stream_sequence = models.IntegerField(null=True, blank=True)
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["thread"],
                condition=Q(status__in=sorted(ACTIVE_STATUSES)),
                name="one_active_run_per_thread",
            )
        ]
        indexes = [
            models.Index(fields=["status"], name="run_status_idx"),
            # The usage report selects runs by period.
            models.Index(fields=["created_at"], name="run_created_at_idx"),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def can_retry(self) -> bool:
        """Ended without a full answer, and the message it answered is still there."""
        return self.is_terminal and self.status != RunStatus.COMPLETED and bool(self.prompt_id)

    @property
    def summary(self) -> str:
        """The status as a person reads it (wording.py)."""
        return run_summary(self)

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    def as_event(self) -> dict:
        return {
            "id": self.pk,
            "status": self.status,
            "is_terminal": self.is_terminal,
            "can_retry": self.can_retry,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "prompt_id": self.prompt_id,
            "summary": self.summary,
            "note": self.note,
        }


class UsageLimit(models.Model):
    """One user's fair-use limits where they differ from the site's defaults (settings)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_limit"
    )
    messages_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: the site default. 0: no limit."
    )
    concurrent_runs = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Answers in progress at once. Empty: the site default. 0: no limit.",
    )
    daily_token_budget = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Tokens per day (UTC). Empty: the site default. 0: no limit.",
    )

    def __str__(self) -> str:
        return f"Limits of {self.user}"


class UsageReport(Run):
    """Runs seen as usage figures: admin's usage report (per user, per assistant) lives on
    this proxy, so staff find it beside the runs with the same permissions."""

    class Meta:
        proxy = True
        verbose_name = verbose_name_plural = "usage report"


class UsageRecord(models.Model):
    """What one run spent, kept apart from the run: a deleted thread takes its runs with it,
    not the tokens they used (the daily budget and the usage report read this ledger).

    A run is charged an estimate when it starts, so that answers in flight count against the
    budget too, and what the provider reports when it ends.
    """

    run = models.OneToOneField(
        Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_records"
    )
    assistant = models.ForeignKey(
        Assistant, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    cached_input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    charged_tokens = models.PositiveIntegerField(
        default=0, help_text="Counted against the budget: the estimate until the run ends."
    )
    # What it cost (costs.py): the model is kept here, as prices are per model and an
    # assistant's model may change; the groups are the user's when the run started, whose
    # budgets it counts against.
    provider = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=200, blank=True)
    groups = models.ManyToManyField(Group, blank=True, related_name="+")
    cost = models.DecimalField(
        max_digits=16, decimal_places=8, null=True, blank=True,
        help_text="What the run cost at the model's prices; empty: no price set, or not ended.",
    )  # fmt: skip
    charged_cost = models.DecimalField(
        max_digits=16, decimal_places=8, default=0,
        help_text="Counted against money budgets: an estimate until the run ends.",
    )  # fmt: skip

    class Meta:
        ordering = ["id"]
        indexes = [
            # The budget sums a user's day; the report selects a period.
            models.Index(fields=["user", "created_at"], name="usage_user_created_idx"),
            models.Index(fields=["created_at"], name="usage_created_at_idx"),
        ]

    def __str__(self) -> str:
        return f"Usage of run {self.run_id} by {self.user_id}"


class ProviderCapabilities(models.Model):
    """What one provider was found to offer (engines/capabilities.py), asked once and kept:
    a missing feature is not tried again on every run. Admin's provider page checks anew."""

    provider = models.CharField(max_length=100, unique=True)
    checked_at = models.DateTimeField(default=timezone.now)
    model = models.CharField(max_length=200, blank=True, help_text="The model it was tried with.")
    responses = models.BooleanField(null=True)
    conversations = models.BooleanField(null=True)
    background = models.BooleanField(null=True)
    streamed_retrieve = models.BooleanField(null=True)
    cancel = models.BooleanField(null=True)
    previous_response_id = models.BooleanField(null=True)
    tokenizer = models.CharField(
        max_length=200, blank=True, help_text="Its token counting endpoint, if it has one."
    )
    context_sizes = models.JSONField(default=dict, blank=True, help_text="Model -> tokens.")
    notes = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name_plural = "provider capabilities"

    def __str__(self) -> str:
        return f"Capabilities of {self.provider}"


class SsoIdentity(models.Model):
    """Who an account is at the OpenID provider (assistants_app/sso.py): its issuer and
    subject, which never change, unlike an email address."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identity"
    )
    issuer = models.CharField(max_length=500)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "single sign-on identity"
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="sso_identity_unique")
        ]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"


class AuditEntry(models.Model):
    """One change to an account or an assistant: who made it, when, where from and what
    changed (assistants_app/audit.py writes these). Entries are never changed or deleted."""

    class Action(models.TextChoices):
        CREATED = "created"
        CHANGED = "changed"
        DELETED = "deleted"
        DATA_DELETED = "data deleted"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    actor_name = models.CharField(
        max_length=150, blank=True, help_text="As it was then; empty: the system."
    )
    via = models.CharField(max_length=20, help_text="admin, site, sign-in or system")
    action = models.CharField(max_length=20, choices=Action.choices)
    target_type = models.CharField(max_length=50)
    target_id = models.CharField(max_length=50)
    target_name = models.CharField(max_length=200)
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit log"
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_target_idx")]

    def __str__(self) -> str:
        return f"{self.actor_name or 'system'} {self.action} {self.target_type} {self.target_name}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValidationError("Audit entries are never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("Audit entries are never deleted.")


# --- Files: attachments on messages, knowledge of assistants (files.py, knowledge.py) ------


def _stored_name(prefix: str, instance, filename: str) -> str:
    # A random folder per file: names never collide and say nothing about other files.
    return f"{prefix}/{uuid.uuid4().hex}/{filename}"


def attachment_path(instance, filename: str) -> str:
    return _stored_name(f"attachments/{instance.owner_id}", instance, filename)


def knowledge_path(instance, filename: str) -> str:
    return _stored_name(f"knowledge/{instance.assistant_id}", instance, filename)


class FileKind(models.TextChoices):
    IMAGE = "image"
    DOCUMENT = "document"


class Attachment(models.Model):
    """A file a user attached to a message. Uploaded first (no message yet: a chip in the
    composer), then sent with the message; counted against the user's storage either way."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attachments"
    )
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.CASCADE, related_name="attachments"
    )
    file = models.FileField(upload_to=attachment_path, max_length=400)
    thumbnail = models.FileField(upload_to=attachment_path, max_length=400, blank=True)
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=20, choices=FileKind.choices)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    text = models.TextField(blank=True, help_text="A document's text, as extracted.")
    remote_files = models.JSONField(
        default=dict, blank=True, help_text="Provider name -> its file id (uploaded there)."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    def as_event(self) -> dict:
        return {
            "id": self.pk,
            "name": self.name,
            "kind": self.kind,
            "size": self.size,
            "url": reverse("attachment", args=[self.pk]),
            "thumbnail_url": reverse("attachment-thumbnail", args=[self.pk])
            if self.thumbnail
            else "",
        }


class KnowledgeDocument(models.Model):
    """A document staff gave an assistant to answer from: chunked and indexed here, or kept in
    the provider's vector store (knowledge.py)."""

    assistant = models.ForeignKey(Assistant, on_delete=models.CASCADE, related_name="documents")
    file = models.FileField(upload_to=knowledge_path, max_length=400)
    name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    pages = models.PositiveIntegerField(null=True, blank=True)
    remote_file_id = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def url(self, page: int | None = None) -> str:
        url = reverse("knowledge-document", args=[self.pk])
        return f"{url}#page={page}" if page else url


class KnowledgeChunk(models.Model):
    """A passage of a document, as retrieval finds it (full-text indexed: see migrations)."""

    document = models.ForeignKey(
        KnowledgeDocument, on_delete=models.CASCADE, related_name="chunks"
    )
    ordinal = models.PositiveIntegerField()
    page = models.PositiveIntegerField(null=True, blank=True)
    heading = models.CharField(max_length=500, blank=True)
    text = models.TextField()

    class Meta:
        ordering = ["document_id", "ordinal"]

    def __str__(self) -> str:
        return f"{self.document} #{self.ordinal}"


class Citation(models.Model):
    """A source numbered for a run: [n] in its answer links to it."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="citations")
    number = models.PositiveIntegerField()
    document = models.ForeignKey(
        KnowledgeDocument, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    title = models.CharField(max_length=255)
    page = models.PositiveIntegerField(null=True, blank=True)
    quote = models.TextField(blank=True)

    class Meta:
        ordering = ["run_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="citation_number_unique")
        ]

    def __str__(self) -> str:
        return f"[{self.number}] {self.title}"

    def as_event(self) -> dict:
        return {
            "number": self.number,
            "title": self.title,
            "page": self.page,
            "url": self.document.url(self.page) if self.document_id else "",
        }


class ProviderConversation(models.Model):
    """A provider-side conversation (Responses) or thread (Assistants) of one of our threads,
    and the message of our tree up to which it holds the history (branches.py). A run whose
    prompt follows that message goes on in it; any other run starts one seeded with its path.
    `tip` is empty while a run writes to it and after one that did not complete."""

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="conversations")
    engine = models.CharField(max_length=20, choices=EngineKind.choices)
    provider = models.CharField(max_length=100)
    remote_id = models.CharField(max_length=200)
    tip = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["thread", "tip"], name="conversation_thread_tip_idx")]

    def __str__(self) -> str:
        return f"{self.engine} conversation {self.remote_id} of thread {self.thread_id}"


class Feedback(models.Model):
    """A user's thumbs up or down on an answer, with an optional comment. Staff see the thread
    only when the user chose to share it."""

    class Rating(models.IntegerChoices):
        GOOD = 1, "👍 Good"
        BAD = -1, "👎 Bad"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="feedback"
    )
    assistant = models.ForeignKey(
        Assistant, null=True, blank=True, on_delete=models.SET_NULL, related_name="feedback"
    )
    rating = models.SmallIntegerField(choices=Rating.choices)
    comment = models.TextField(blank=True)
    share_thread = models.BooleanField(
        default=False, help_text="The user lets staff read the thread with this feedback."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "feedback"
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="one_feedback_per_answer")
        ]

    def __str__(self) -> str:
        return f"{self.get_rating_display()} on message {self.message_id}"

    def as_event(self) -> dict:
        return {
            "message_id": self.message_id,
            "rating": self.rating,
            "comment": self.comment,
            "share_thread": self.share_thread,
        }


# --- For organisations: share links, assistants' versions, prices and group budgets ---------


class SharedLink(models.Model):
    """A read-only link to a thread as it was when shared: the messages it had then, by id
    (sharing.py). Whoever holds the token may view it; deleting the row revokes it."""

    token = models.CharField(max_length=64, unique=True)
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="shared_links")
    title = models.CharField(max_length=200)
    message_ids = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Shared link to {self.title}"


class AssistantVersion(models.Model):
    """What an assistant answered with from one change of it to the next (assistant_versions.py)."""

    assistant = models.ForeignKey(Assistant, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    values = models.JSONField(help_text="The versioned fields and their values.")
    changed = models.JSONField(default=list, help_text="Fields changed from the version before.")
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    restored_from = models.PositiveIntegerField(
        null=True, blank=True, help_text="The version number this one restored."
    )

    class Meta:
        # "Versions" under Assistants in admin: a short name, so its breadcrumbs read as links.
        verbose_name = "version"
        verbose_name_plural = "versions"
        ordering = ["assistant", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["assistant", "number"], name="one_number_per_version")
        ]

    def __str__(self) -> str:
        return f"{self.assistant} v{self.number}"


MONEY = {"max_digits": 16, "decimal_places": 6}


class ModelPrice(models.Model):
    """What a model costs per million tokens (costs.py), in the site's currency."""

    provider = models.CharField(
        max_length=100, blank=True, help_text="A key of ASSISTANT_PROVIDERS; blank: any provider."
    )
    model = models.CharField(max_length=200)
    input_per_million = models.DecimalField("input", **MONEY)
    cached_input_per_million = models.DecimalField(
        "cached input", null=True, blank=True, help_text="Empty: the input price.", **MONEY
    )
    output_per_million = models.DecimalField("output", **MONEY)

    class Meta:
        ordering = ["model", "provider"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "model"], name="one_price_per_model")
        ]

    def __str__(self) -> str:
        return f"{self.model} ({self.provider or 'any provider'})"


class GroupBudget(models.Model):
    """What a group's members may spend together (budgets.py); empty or 0: no limit."""

    group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="budget")
    tokens_per_day = models.PositiveBigIntegerField(null=True, blank=True)
    tokens_per_month = models.PositiveBigIntegerField(null=True, blank=True)
    cost_per_day = models.DecimalField(null=True, blank=True, **MONEY)
    cost_per_month = models.DecimalField(null=True, blank=True, **MONEY)

    def __str__(self) -> str:
        return f"Budget of {self.group}"


from .tool_models import AssistantTool, McpServer, ToolStep  # noqa: E402, F401 - Django finds them here
