"""The classic Assistants API example in a terminal: name an assistant or pick one, then chat.

Each turn prints "Waiting for response..." and then the answer; `exit()` quits. It goes through
the same services, run driver and engines as the site, so its threads show up in admin and on
the site for the user it chats as.
"""

import asyncio
import sys

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from assistants_app import runs, services, tools
from assistants_app.engines import capabilities
from assistants_app.engines.assistants import has_assistants_api
from assistants_app.engines.client import list_models
from assistants_app.exceptions import ClientError, ProviderError
from assistants_app.models import Assistant, EngineKind, Message, Run, Thread

QUIT = "exit()"
UNREACHABLE = {"connection_refused", "connection_error", "dns_failure", "timeout"}
SIMULATOR_HINT = (
    "The simulator must be running: start it with `python manage.py simulator` (or run the "
    "site with `python manage.py serve`, which starts it)."
)


class Command(BaseCommand):
    help = "Chat with an assistant in the terminal, as a user of the site."

    def add_arguments(self, parser):
        parser.add_argument("--user", help="Username to chat as (asked when left out).")
        parser.add_argument(
            "--provider", help="Provider of a new assistant (default: the site's default)."
        )
        parser.add_argument("--model", help="Model of a new assistant.")
        parser.add_argument(
            "--tool",
            action="append",
            default=[],
            choices=sorted(tools.REGISTRY),
            help="A function tool for a new assistant (repeat for several).",
        )

    def handle(self, *args, user, provider, model, tool, **options):
        try:
            owner = self.find_user(user or self.ask("Username: "))
            assistant = self.pick_assistant(owner) or self.create_assistant(provider, model, tool)
            thread = services.start_thread(owner, assistant.pk)
            self.stdout.write(f"Chatting with {assistant.name}. Type {QUIT} to quit.")
            # One event loop for the whole chat: the provider's connection pool belongs to it.
            with asyncio.Runner() as loop:
                while (text := self.ask("You: ").strip()) != QUIT:
                    if text:
                        loop.run(self.turn(owner, thread, text))
        except EOFError:
            self.stdout.write("")

    def ask(self, prompt: str) -> str:
        self.stdout.write(prompt, ending="")
        self.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\n")

    def find_user(self, username: str):
        try:
            return get_user_model().objects.get_by_natural_key(username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {username!r}.") from None

    def pick_assistant(self, user) -> Assistant | None:
        """One of the assistants the user may use, or None for a new one."""
        assistants = list(Assistant.objects.available_to(user))
        for number, assistant in enumerate(assistants, 1):
            engine = assistant.get_engine_display()
            self.stdout.write(f"  {number}. {assistant.name} ({engine}, {assistant.model})")
        while assistants:
            choice = self.ask("Pick an assistant by number, or press Enter for a new one: ")
            if not choice.strip():
                return None
            if choice.strip().isdigit() and 1 <= int(choice) <= len(assistants):
                return assistants[int(choice) - 1]
            self.stdout.write(f"Answer with a number from 1 to {len(assistants)}.")
        return None

    def create_assistant(self, provider: str | None, model: str | None, tool_names: list[str]):
        name = provider or settings.DEFAULT_PROVIDER
        if name not in settings.ASSISTANT_PROVIDERS:
            raise CommandError(f"No provider named {name!r} is configured.")
        entry = settings.ASSISTANT_PROVIDERS[name]
        try:
            engine, model = asyncio.run(speaks({**entry, "name": name}, model))
        except ProviderError as error:
            raise CommandError(unreachable(name, entry, error)) from None
        self.stdout.write(f"{entry.get('label') or name}: {engine.label}, model {model}.")
        # The provider-side assistant is created with the first run, like on the site.
        return Assistant.objects.create(
            name=self.ask("Assistant name: ").strip() or "Assistant",
            instructions=self.ask("Instructions: ").strip(),
            engine=engine,
            provider=name,
            tools=tool_names,
            model=model,
        )

    async def turn(self, user, thread: Thread, text: str) -> None:
        try:
            _, run = await services.submit_message(user, thread, text)
        except ClientError as error:
            self.stderr.write(error.message)
            return
        self.stdout.write("Waiting for response...")
        run = await self.finish(run.pk)
        async for answer in Message.objects.filter(run=run, role=Message.Role.ASSISTANT):
            self.stdout.write(f"{thread.assistant.name}: {answer.text}")
        if run.status != "completed":
            reason = f": {run.error_message}" if run.error_message else ""
            self.stdout.write(f"(The run ended {run.status}{reason})")
        if run.error_code in UNREACHABLE and thread.assistant.is_simulated:
            self.stdout.write(SIMULATOR_HINT)

    async def finish(self, run_id: int) -> Run:
        """Drive the run to its end; if a site process drives it already, wait for that."""
        while True:
            # The task driving it here already, if this process started it with a stream.
            await runs.ensure_driving(run_id, standby=False)
            run = await Run.objects.aget(pk=run_id)
            if run.is_terminal:
                return run
            await asyncio.sleep(settings.RUN_POLL_MAX_SECONDS)


async def speaks(provider: dict, model: str | None) -> tuple[EngineKind, str]:
    """The engine for a new assistant on the provider, and its model: the one asked for, the
    provider's default, or else the first it lists. The classic Assistants API where the
    provider still has it, else Responses where it answers, else Chat Completions, which
    every OpenAI-compatible server speaks. Raises ProviderError when it does not answer."""
    listed = await list_models(provider, timeout=10.0)  # also: does it answer at all?
    model = model or provider.get("default_model") or (listed[0] if listed else "")
    if not model:
        raise ProviderError("no_model", "It lists no model; name one with --model.")
    if await has_assistants_api(provider):
        return EngineKind.ASSISTANTS, model
    found = await capabilities.capabilities(provider, model, responses=True)
    return (EngineKind.RESPONSES if found.responses else EngineKind.CHAT), model


def unreachable(name: str, provider: dict, error: ProviderError) -> str:
    said = f"The provider {name!r} at {provider['base_url']} cannot be used: {error.message}"
    if provider.get("simulated"):
        said += " " + SIMULATOR_HINT
    return said
