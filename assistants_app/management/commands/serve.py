"""Prepare the database and serve the site with daphne (on uvloop), plus the simulator when it
is used.

This is the one command a newcomer runs: migrations, demo data on an empty database, and the
offline simulator as the provider when no OPENAI_API_KEY is set. Without Redis the site's own
process finishes orphaned runs (RUN_WORKER_IN_SERVER); with it, a run worker is started next
to daphne.
"""

import errno
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

ASGI_APP = "chatsite.asgi:application"
START_TIMEOUT_SECONDS = 60


class Command(BaseCommand):
    help = "Migrate, seed demo data on an empty database and serve the site with daphne."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Address to serve on.")
        parser.add_argument("--port", type=int, default=8000, help="Port to serve on.")

    def handle(self, *args, host, port, **options):
        # Each line as it is written, also into a pipe or a log file (not at exit).
        if hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(line_buffering=True)
        simulator = simulator_address()
        refuse_if_taken(
            host, port, "the site", "Stop what is using it, or pass another with --port."
        )
        if simulator:
            refuse_if_taken(
                *simulator,
                "the simulator (SIMULATOR_URL)",
                "Stop what is using it, or set SIMULATOR_URL to another port.",
            )
        helpers = []
        # SIGTERM (systemd, a test) ends this command like Ctrl-C: its processes with it.
        with StopRequests() as stopping:
            try:
                # The simulator needs no database: it starts (seconds) while the database is
                # prepared, and is waited for only once the site is started too.
                simulating = spawn_simulator(*simulator) if simulator else None
                if simulating:
                    helpers.append(simulating)
                call_command("migrate", interactive=False, verbosity=0)
                call_command("seed_demo")
                call_command("collectstatic", interactive=False, verbosity=0)
                stopping.check()
                if not settings.RUN_WORKER_IN_SERVER:
                    helpers.append(spawn("manage.py", "run_worker"))
                site = spawn(*daphne_args(host, port))
                helpers.append(site)
                if simulating:
                    wait_until_listening(*simulator, simulating, "The simulator", stopping)
                wait_until_listening(host, port, site, "The site", stopping)
                first_request(host, port)
                url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
                self.stdout.write(f"Serving the site on {url}")
                self.stdout.write(login_hint(url))
                wait_for(site, stopping)
            except StopRequested:
                pass
            finally:
                stop(helpers)
        if not stopping.requested:
            raise CommandError(f"daphne stopped on its own (exit status {site.returncode}).")


class StopRequested(Exception):
    """Raised by serve's own waits once a stop was asked for."""


class StopRequests:
    """SIGTERM and Ctrl-C (SIGINT) noted by their handlers and acted on where serve waits.

    The handlers raise nothing: an exception raised in a signal handler lands wherever the
    main thread is, and if that is just after subprocess took a child's wait lock and before
    the `try` that gives it back, every later wait for that child blocks forever, stop()'s
    included (a SIGTERM left serve hanging so in CI)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.requested = False
        self._before = {}

    def __enter__(self) -> "StopRequests":
        for signum in self.SIGNALS:
            self._before[signum] = signal.signal(signum, self._note)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._before.items():
            signal.signal(signum, handler)

    def _note(self, signum, frame) -> None:
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise StopRequested


def simulator_address() -> tuple[str, int] | None:
    """Where serve starts the simulator: SIMULATOR_URL's address, when the simulator is the
    default provider and the URL is on this machine (else someone else runs it)."""
    if settings.DEFAULT_PROVIDER != "simulator":
        return None
    url = urlsplit(settings.SIMULATOR_URL)
    if url.hostname not in ("127.0.0.1", "localhost"):
        return None
    return url.hostname, url.port or 80


def refuse_if_taken(host: str, port: int, what: str, remedy: str) -> None:
    """Stop before starting anything when `host:port` cannot be listened on."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.create_server((host, port), family=family):
            pass
    except OSError as error:
        reason = "the port is already in use" if error.errno == errno.EADDRINUSE else error
        raise CommandError(f"Cannot start {what} on {host}:{port}: {reason}. {remedy}") from None


def spawn_simulator(host: str, port: int) -> subprocess.Popen:
    return spawn("manage.py", "simulator", "--host", host, "--port", str(port))


def spawn(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # their lines as they come, too
    return subprocess.Popen([sys.executable, *args], cwd=settings.BASE_DIR, env=env)


def wait_until_listening(
    host: str, port: int, process: subprocess.Popen, name: str, stopping: StopRequests
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while process.poll() is None:
        stopping.check()
        with socket.socket(socket.getaddrinfo(host, port)[0][0]) as probe:
            if probe.connect_ex((host, port)) == 0:
                return
        if time.monotonic() > deadline:
            raise CommandError(f"{name} did not listen on {host}:{port} within a minute.")
        time.sleep(0.1)
    raise CommandError(
        f"{name} could not start on {host}:{port} (exit status {process.returncode})."
    )


def first_request(host: str, port: int) -> None:
    """One request, so that the site's process starts its worker loop (on its first
    connection) now, and finishes runs left from before a restart without waiting for a
    visitor. Any answer will do, even a refusal of the Host header."""
    address = "127.0.0.1" if host in ("0.0.0.0", "") else host.strip("[]")
    if address == "::":
        address = "::1"
    connection = http.client.HTTPConnection(address, port, timeout=10)
    try:
        connection.request("GET", "/login/")
        connection.getresponse().read()
    except OSError:
        pass  # the site answers its visitors or it does not; nothing to add here
    finally:
        connection.close()


def wait_for(process: subprocess.Popen, stopping: StopRequests) -> None:
    """Until the process ends or a stop is asked for, looking a few times a second: a
    blocking waitpid() would not return for a signal the kernel hands to another thread (a
    SIGTERM was once left waiting so on a loaded machine)."""
    while process.poll() is None:
        stopping.check()
        time.sleep(0.2)


def stop(processes: list[subprocess.Popen], seconds: float = 10) -> None:
    """SIGTERM to all at once (daphne hands its runs over on it); SIGKILL to what still runs
    after `seconds` in all."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + seconds
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def login_hint(url: str) -> str:
    from .seed_demo import DEMO_USERNAME  # models: not at import, which tests/live.py does

    if get_user_model().objects.filter(username=DEMO_USERNAME).exists():
        return (
            f"Log in at {url}login/ as {DEMO_USERNAME!r}, with the password printed when that "
            f"login was created (`manage.py changepassword {DEMO_USERNAME}` sets a new one)."
        )
    return f"Log in at {url}login/ (`manage.py createsuperuser` makes a login)."


def daphne_args(host: str, port: int) -> list[str]:
    """Python's arguments to run daphne (on uvloop's event loop: chatsite/server.py):
    websocket messages bounded, client addresses from the proxy when there is one."""
    size = str(settings.WEBSOCKET_MAX_MESSAGE_BYTES)
    command = ["-m", "chatsite.server", "-b", host, "-p", str(port)]
    command += ["--websocket-max-message-size", size, "--websocket-max-frame-size", size]
    # In a burst of connects (every page reconnecting after a restart) a handshake can queue
    # longer than daphne's default 5 s; a refused one only comes back as another connect.
    command += ["--websocket_connect_timeout", "30"]
    if settings.BEHIND_PROXY:
        command.append("--proxy-headers")
    return command + [ASGI_APP]
