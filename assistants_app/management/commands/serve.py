"""Prepare the database and serve the site with daphne, plus the simulator when it is used.

This is the one command a newcomer runs: migrations, demo data on an empty database, and the
offline simulator as the provider when no OPENAI_API_KEY is set.
"""

import socket
import subprocess
import sys
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

ASGI_APP = "chatsite.asgi:application"


class Command(BaseCommand):
    help = "Migrate, seed demo data on an empty database and serve the site with daphne."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, host, port, **options):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("seed_demo")
        call_command("collectstatic", interactive=False, verbosity=0)
        helpers = [p for p in (self.start_simulator(), self.start_worker()) if p is not None]
        self.stdout.write(f"Serving the site on http://{host}:{port}/")
        site = subprocess.Popen([sys.executable, *daphne_args(host, port)])
        try:
            site.wait()
        except KeyboardInterrupt:
            site.wait()
        finally:
            for helper in helpers:
                helper.terminate()
            for helper in helpers:
                helper.wait(timeout=10)

    def start_worker(self) -> subprocess.Popen:
        """The run worker finishes runs left behind by closed tabs or a restart."""
        return subprocess.Popen([sys.executable, "manage.py", "run_worker"], cwd=settings.BASE_DIR)

    def start_simulator(self) -> subprocess.Popen | None:
        """Start the simulator on SIMULATOR_URL's port unless something already listens there."""
        if settings.DEFAULT_PROVIDER != "simulator":
            return None
        url = urlsplit(settings.SIMULATOR_URL)
        if url.hostname not in ("127.0.0.1", "localhost") or _listening(url.hostname, url.port):
            return None
        command = ["simulator", "--host", url.hostname, "--port", str(url.port)]
        return subprocess.Popen([sys.executable, "manage.py", *command], cwd=settings.BASE_DIR)


def daphne_args(host: str, port: int) -> list[str]:
    """Python's arguments to run daphne: websocket messages bounded, client addresses from
    the proxy when there is one."""
    size = str(settings.WEBSOCKET_MAX_MESSAGE_BYTES)
    command = ["-m", "daphne", "-b", host, "-p", str(port)]
    command += ["--websocket-max-message-size", size, "--websocket-max-frame-size", size]
    # In a burst of connects (every page reconnecting after a restart) a handshake can queue
    # longer than daphne's default 5 s; a refused one only comes back as another connect.
    command += ["--websocket_connect_timeout", "30"]
    if settings.BEHIND_PROXY:
        command.append("--proxy-headers")
    return command + [ASGI_APP]


def _listening(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0
