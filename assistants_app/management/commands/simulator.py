"""Run the offline simulator (an OpenAI-compatible server with canned replies) under daphne."""

import os

from daphne.cli import CommandLineInterface
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the offline OpenAI-compatible simulator (canned replies, not a model)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001)
        parser.add_argument(
            "--latency", type=float, help="Seconds from a request to its answer (default 1.0)."
        )

    def handle(self, *args, host, port, latency, **options):
        if latency is not None:
            os.environ["SIMULATOR_LATENCY_SECONDS"] = str(latency)
        self.stdout.write(f"Simulator listening on http://{host}:{port}/v1 (canned replies)")
        CommandLineInterface().run(
            ["-b", host, "-p", str(port), "assistants_app.simulator.app:app"]
        )
