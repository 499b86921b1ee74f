"""Assistants, the threads people hold with them, their messages and the runs that answer."""

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

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
        max_length=200, blank=True, help_text="Provider thread or conversation id."
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

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:50]}"

    @property
    def html(self) -> str:
        return render_markdown(self.text)

    def as_event(self) -> dict:
        return {
            "id": self.pk,
            "role": self.role,
            # A user's message is shown as typed, never as Markdown.
            "text": self.text if self.role == self.Role.USER else None,
            "html": self.html,
            "created_at": self.created_at.isoformat(),
            "run_id": self.run_id,
            "partial": self.is_partial,
        }


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
        help_text="The user's message this run answers.",
    )
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    remote_id = models.CharField(max_length=200, blank=True)
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
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
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    charged_tokens = models.PositiveIntegerField(
        default=0, help_text="Counted against the budget: the estimate until the run ends."
    )

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


from .tool_models import AssistantTool, McpServer, ToolStep  # noqa: E402, F401 - Django finds them here
