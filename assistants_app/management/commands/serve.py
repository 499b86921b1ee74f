"""Prepare the database and serve the site with daphne, plus the simulator when it is used.

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
        call_command("migrate", interactive=False, verbosity=0)
        call_command("seed_demo")
        call_command("collectstatic", interactive=False, verbosity=0)
        # SIGTERM (systemd, a test) ends this command like Ctrl-C: its processes with it.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        helpers, interrupted = [], False
        try:
            if simulator:
                helpers.append(start_simulator(*simulator))
            if not settings.RUN_WORKER_IN_SERVER:
                helpers.append(spawn("manage.py", "run_worker"))
            site = spawn(*daphne_args(host, port))
            helpers.append(site)
            wait_until_listening(host, port, site, "The site")
            first_request(host, port)
            url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
            self.stdout.write(f"Serving the site on {url}")
            self.stdout.write(login_hint(url))
            try:
                wait_in_slices(site)
            except KeyboardInterrupt:
                interrupted = True
        finally:
            stop(helpers)
        if not interrupted:
            raise CommandError(f"daphne stopped on its own (exit status {site.returncode}).")


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


def start_simulator(host: str, port: int) -> subprocess.Popen:
    process = spawn("manage.py", "simulator", "--host", host, "--port", str(port))
    wait_until_listening(host, port, process, "The simulator")
    return process


def spawn(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # their lines as they come, too
    return subprocess.Popen([sys.executable, *args], cwd=settings.BASE_DIR, env=env)


def wait_until_listening(host: str, port: int, process: subprocess.Popen, name: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while process.poll() is None:
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


def wait_in_slices(process: subprocess.Popen) -> None:
    """Wait for the process a second at a time: a signal that the kernel hands to another
    thread than the one blocked in waitpid() would otherwise not be acted on until the
    process ends (a SIGTERM was once left waiting so on a loaded machine)."""
    while True:
        try:
            process.wait(timeout=1)
            return
        except subprocess.TimeoutExpired:
            continue


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
