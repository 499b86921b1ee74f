"""Move every assistant on the Assistants API (closed by OpenAI on 2026-08-26) to the
Responses API, with each thread's full history. Safe to run again: what was moved or seeded
is skipped, and an assistant with answers in progress is left for the next run."""

import asyncio

from django.core.management.base import BaseCommand

from assistants_app import protocols
from assistants_app.exceptions import ProviderError
from assistants_app.models import Assistant, EngineKind


class Command(BaseCommand):
    help = (
        "Switch assistants from the Assistants engine to Responses and seed a Responses "
        "conversation with each of their threads' history. Safe to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--assistant", type=int, action="append", help="Only this assistant (id); repeatable."
        )
        parser.add_argument(
            "--no-seed",
            action="store_true",
            help="Only switch the engine; each thread's next message seeds its conversation.",
        )

    def handle(self, *args, assistant=None, no_seed=False, **options):
        chosen = Assistant.objects.all()
        if assistant:
            chosen = chosen.filter(pk__in=assistant)
        move = protocols.move_to_responses(chosen)
        for moved in move.moved:
            self.stdout.write(f"Moved “{moved}” to the Responses API.")
        for busy in move.busy:
            self.stdout.write(
                f"Not moved: “{busy}” has answers in progress. Run this again when they end."
            )
        if no_seed:
            return
        for each in chosen.filter(engine=EngineKind.RESPONSES):  # moved now or before
            try:
                seeded, skipped = asyncio.run(protocols.seed(each))
            except ProviderError as error:
                self.stderr.write(f"“{each}”: its provider refused ({error.message}); run again.")
                continue
            if seeded or skipped:
                self.stdout.write(
                    f"“{each}”: {seeded} thread(s) seeded with their history, "
                    f"{skipped} already there."
                )
