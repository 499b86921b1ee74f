"""Tools as staff configure them and as runs use them: MCP servers, each assistant's
allow-list of tools, and every tool call a run made (a step shown in its answer).

Imported by models.py, so Django finds these models in the app.
"""

import os
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

HEADER_NAME = re.compile(r"^[A-Za-z0-9-]+$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SLUG = re.compile(r"^[a-z0-9_]{1,20}$")


class McpServer(models.Model):
    """A Model Context Protocol server whose tools assistants may call. Secrets never live
    here: a header's value is read from the named environment variable when we connect."""

    class Transport(models.TextChoices):
        HTTP = "http", "Streamable HTTP (a URL)"
        STDIO = "stdio", "Local command (stdio)"

    name = models.CharField(
        max_length=20,
        unique=True,
        help_text="Short, lower case letters, digits and _ (e.g. time). Tools are offered to "
        "models as <name>__<tool>.",
    )
    transport = models.CharField(max_length=10, choices=Transport.choices)
    url = models.URLField(blank=True, help_text="For HTTP: the server's MCP endpoint.")
    header_env = models.JSONField(
        "headers from the environment",
        default=dict,
        blank=True,
        help_text="For HTTP: header name -> environment variable holding its value, e.g. "
        '{"Authorization": "TOOLS_API_AUTH"}. The value itself is never stored.',
    )
    command = models.CharField(
        max_length=500, blank=True, help_text="For stdio: the program to run, e.g. uvx."
    )
    args = models.JSONField(
        default=list, blank=True, help_text='For stdio: its arguments, e.g. ["mcp-server-time"].'
    )
    is_active = models.BooleanField(default=True)
    # What the last check found (admin's "Check now", and every listing).
    status = models.CharField(max_length=20, default="unchecked", editable=False)
    status_message = models.TextField(blank=True, editable=False)
    checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    tools = models.JSONField(
        default=list, blank=True, editable=False,
        help_text="The tools it listed: name, description, input schema.",
    )  # fmt: skip

    class Meta:
        verbose_name = "MCP server"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        if not SLUG.match(self.name or ""):
            errors["name"] = "Use 1-20 lower case letters, digits or _."
        if self.transport == self.Transport.HTTP and not self.url:
            errors["url"] = "An HTTP server needs its URL."
        if self.transport == self.Transport.STDIO and not self.command:
            errors["command"] = "A stdio server needs the command that starts it."
        elif self.transport == self.Transport.STDIO and not stdio_allowed(self.command):
            errors["command"] = (
                "Local commands are off on this site: its MCP_STDIO_COMMANDS does not name "
                f"“{self.command}”. The site's operator decides which programs may run here."
            )
        if not isinstance(self.args, list) or not all(isinstance(a, str) for a in self.args):
            errors["args"] = 'A list of strings, e.g. ["mcp-server-time"].'
        if not isinstance(self.header_env, dict) or not all(
            isinstance(k, str) and HEADER_NAME.match(k) and isinstance(v, str) and ENV_NAME.match(v)
            for k, v in self.header_env.items()
        ):
            errors["header_env"] = (
                'Header names mapped to environment variable names, e.g. {"X-Api-Key": "MY_KEY"}.'
            )
        if errors:
            raise ValidationError(errors)

    def headers(self) -> dict[str, str]:
        """The headers to send, read from the environment now; missing variables are named."""
        missing = [env for env in self.header_env.values() if env not in os.environ]
        if missing:
            raise LookupError(f"Environment variable not set: {', '.join(missing)}.")
        return {header: os.environ[env] for header, env in self.header_env.items()}


class AssistantTool(models.Model):
    """One tool an assistant may call, and whether the user approves each call first."""

    class Approval(models.TextChoices):
        FREE = "free", "Runs freely"
        ASK = "ask", "Asks the user first"

    assistant = models.ForeignKey(
        "assistants_app.Assistant", on_delete=models.CASCADE, related_name="allowed_tools"
    )
    tool = models.CharField(
        max_length=150, help_text="A built-in tool, or <server>__<tool> of an MCP server."
    )
    approval = models.CharField(max_length=10, choices=Approval.choices, default=Approval.FREE)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["assistant", "tool"], name="assistant_tool_unique")
        ]

    def __str__(self) -> str:
        return self.tool


class ToolStep(models.Model):
    """One tool call of a run: what was asked, what it answered, how long it took. The
    record the driver resumes from after a restart, and the step the page shows."""

    class State(models.TextChoices):
        AWAITING_APPROVAL = "awaiting_approval"
        APPROVED = "approved"  # approved, not finished yet
        RUNNING = "running"
        DONE = "done"
        ERROR = "error"
        DENIED = "denied"
        EXPIRED = "expired"

    FINISHED = (State.DONE, State.ERROR, State.DENIED, State.EXPIRED)

    run = models.ForeignKey("assistants_app.Run", on_delete=models.CASCADE, related_name="steps")
    round = models.PositiveIntegerField(default=1, help_text="Which round of calls, from 1.")
    call_id = models.CharField(max_length=200, help_text="The provider's id of the call.")
    tool = models.CharField(max_length=150)
    arguments = models.TextField(blank=True, help_text="JSON text, as the model sent it.")
    state = models.CharField(max_length=20, choices=State.choices)
    output = models.TextField(blank=True, help_text="What the model was given back.")
    truncated = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="When an unanswered approval gives up."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["round", "id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "call_id"], name="tool_step_call_unique")
        ]
        indexes = [
            models.Index(
                fields=["state"],
                name="tool_step_awaiting_idx",
                condition=Q(state="awaiting_approval"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.tool} ({self.state})"

    @property
    def is_finished(self) -> bool:
        return self.state in self.FINISHED

    def as_event(self) -> dict:
        return {
            "id": self.pk,
            "run_id": self.run_id,
            "round": self.round,
            "tool": self.tool,
            "arguments": self.arguments,
            "state": self.state,
            "output": self.output,
            "truncated": self.truncated,
            "error": self.error,
            "duration_ms": self.duration_ms,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


def stdio_allowed(command: str) -> bool:
    """Whether the site's operator lets staff run `command` as a stdio MCP server: a program
    runs on this machine with the site's rights, so admin access alone is not enough."""
    return command in settings.MCP_STDIO_COMMANDS
