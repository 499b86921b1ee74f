"""Real servers for integration tests: the simulator and daphne as child processes on loopback.

`start_site()` gives a site on its own SQLite file (or DATABASE_URL given in `env`) with
alice and bob as users, a simulator-backed assistant "Sim" and one "Sim <fault>" for each
simulator fault asked for; `SiteClient` logs in over HTTP and
talks to the thread websocket like the page does.

The site may run from another checkout of this repository (`root`, with its own `python`),
as the benchmark does to compare commits; the simulator is always this checkout's.
"""

import atexit
import functools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import websockets
from django.conf import settings

from assistants_app.framing import Reassembler
from assistants_app.management.commands.serve import ASGI_APP, daphne_args

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-1"}

SEED = """
from django.contrib.auth import get_user_model
from assistants_app.models import Assistant
User = get_user_model()
for name, password in {passwords!r}.items():
    User.objects.create_user(name, password=password)
Assistant.objects.create(name="Sim", instructions="Be brief.", model={model!r},
                         engine={engine!r}, provider="simulator")
for fault in {faults!r}:
    Assistant.objects.create(name=f"Sim {{fault}}", model=f"simulator+{{fault}}",
                             engine={engine!r}, provider="simulator")
"""


def free_port(taken: tuple[int, ...] = ()) -> int:
    """A port nothing listens on now, other than the `taken` ones."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in taken:
            return port


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {timeout}s")


# A Python process with Django set up on a site's database, which runs the code it is sent
# (one JSON request a line on stdin) as `manage.py shell -c` would, and answers with what the
# code printed. One Django start-up per site instead of one per query: 1.5 s of CPU each.
SHELL = r"""
import contextlib, io, json, os, sys, traceback
replies = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)  # anything written to stdout but not printed by the code goes to the log
import django
django.setup()
from django.core.management.commands.shell import Command
from django.db import close_old_connections
namespace = Command().get_namespace(verbosity=0)
for line in sys.stdin:
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            exec(json.loads(line), {"__name__": "__main__", **namespace})
        reply = {"stdout": printed.getvalue()}
    except BaseException:
        reply = {"error": traceback.format_exc(), "stdout": printed.getvalue()}
    close_old_connections()
    replies.write(json.dumps(reply) + "\n")
    replies.flush()
"""


class SiteShell:
    """The site's shell process (SHELL), started at once, so it sets Django up meanwhile."""

    def __init__(self, env: dict, output=None, root: Path = ROOT, python: str = sys.executable):
        self.process = subprocess.Popen(
            [python, "-c", SHELL], cwd=root, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=output,
        )  # fmt: skip
        self.lock = threading.Lock()  # one request at a time, whichever thread asks
        weakref.finalize(self, _stop, self.process)

    def run(self, code: str) -> str:
        with self.lock:
            self.process.stdin.write(json.dumps(code) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the site's shell exited with {self.process.wait()}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"the site's shell failed on:\n{code}\n{reply['error']}")
        return reply["stdout"]

    def close(self, kill: bool = False) -> None:
        _stop(self.process, kill)


def _stop(process: subprocess.Popen, kill: bool = False) -> None:
    if process.poll() is None:
        if kill:
            process.kill()
        process.stdin.close()  # the loop ends
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# How a site's web server is started, by name: Python's arguments for a host and port.
# daphne (on uvloop, chatsite/server.py) is the product's server; uvicorn is there for the
# benchmark, to weigh daphne, with websockets' sans-I/O implementation, which cost no more
# than its older one in the fifteenth step of "Cost per answer" (BENCHMARKS.md).
SERVERS = {
    "daphne": daphne_args,
    "uvicorn": lambda host, port: [
        "-m", "uvicorn", "--host", host, "--port", str(port), "--ws", "websockets-sansio",
        # daphne's bounds (serve.py): websocket messages, and pings every 20 s.
        "--ws-max-size", str(settings.WEBSOCKET_MAX_MESSAGE_BYTES), "--ws-ping-interval", "20",
        "--lifespan", "off", "--no-access-log", ASGI_APP,
    ],
}  # fmt: skip


@dataclass
class LiveSite:
    simulator_url: str
    env: dict
    processes: list[subprocess.Popen] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)  # one per server process, in start order
    output: object = None  # where the processes' output goes (a file); None: this terminal
    root: Path = ROOT  # the checkout the site runs from...
    python: str = sys.executable  # ...with this interpreter
    server: str = "daphne"  # of SERVERS
    servers: list[subprocess.Popen] = field(default_factory=list)  # the web server processes
    _shell: SiteShell | None = None

    @property
    def url(self) -> str:
        return self.urls[0]

    def shell(self, code: str) -> str:
        """Run Python code on the site's database as `manage.py shell -c` does; what it
        printed. Use this (or `query`) rather than `manage("shell", ...)` in new tests."""
        if self._shell is None:
            self._shell = SiteShell(self.env, self.output, self.root, self.python)
        return self._shell.run(code)

    def close_shell(self, kill: bool = False) -> None:
        if self._shell is not None:
            self._shell.close(kill)
            self._shell = None

    def manage(self, *args: str) -> str:
        if args[0] == "shell" and "-c" in args:  # the same, without a process per call
            return self.shell(args[args.index("-c") + 1])
        result = subprocess.run(
            [self.python, "manage.py", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    def start_daphne(self, port: int | None = None) -> subprocess.Popen:
        """Another daphne process on the same database (and channel layer, if Redis)."""
        return self.start_daphnes(1, port)[0]

    def start_daphnes(
        self, count: int, port: int | None = None, taken: tuple[int, ...] = ()
    ) -> list[subprocess.Popen]:
        """`count` daphne processes started together (each takes seconds to set Django up);
        on `port`, or each on a free one other than the `taken` ports (a process started
        meanwhile, not listening yet, holds none of its own)."""
        ports = [port] if port else [free_port(taken) for _ in range(count)]
        started = [self.spawn_server(p) for p in ports]
        for index, (p, process) in enumerate(zip(ports, started, strict=True)):
            try:
                wait_for_port(p, process)
            except RuntimeError:
                if port:
                    raise
                # It exited before listening: something else took its free port meanwhile
                # (tests run in parallel). Once more, on another.
                self.processes.remove(process)
                p = ports[index] = free_port(taken)
                started[index] = self.spawn_server(p)
                wait_for_port(p, started[index])
        for p in ports:
            url = f"http://127.0.0.1:{p}"
            if url not in self.urls:
                self.urls.append(url)
        return started

    def start_worker(self) -> subprocess.Popen:
        return self.spawn("manage.py", "run_worker", "--interval", "0.2")

    def spawn_server(self, port: int) -> subprocess.Popen:
        process = self.spawn(*SERVERS[self.server]("127.0.0.1", port))
        self.servers.append(process)
        return process

    def spawn(self, *args: str, root: Path | None = None, python: str = "") -> subprocess.Popen:
        """A process of the site (or, given `root` and `python`, of another checkout)."""
        process = subprocess.Popen(
            [python or self.python, *args], cwd=root or self.root, env=self.env,
            stdout=self.output, stderr=self.output,
        )  # fmt: skip
        self.processes.append(process)
        return process

    def query(self, expression: str):
        """Evaluate a Python expression against the site's database (models imported)."""
        code = f"from assistants_app.models import *; import json; print(json.dumps({expression}))"
        return json.loads(self.shell(code))


@functools.cache
def migrated_sqlite_template(root: Path = ROOT, python: str = sys.executable) -> Path:
    """An empty, migrated SQLite database, made once per test session (and checkout) and
    copied per site."""
    path = Path(tempfile.mkdtemp(prefix="chat-template-")) / "template.sqlite3"
    subprocess.run(
        [python, "manage.py", "migrate", "--verbosity", "0"],
        cwd=root,
        env={**os.environ, "DATABASE_URL": f"sqlite:///{path}"},
        check=True,
    )
    return path


@contextmanager
def start_site(tmp_path: Path, env: dict | None = None, model: str = "simulator",
               engine: str = "responses", latency: float = 0.3, servers: int = 1,
               faults: tuple[str, ...] = (), output=None, root: Path = ROOT,
               python: str = sys.executable, server: str = "daphne"):  # fmt: skip
    simulator_port = free_port()
    site_env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'site.sqlite3'}",
        "FILES_ROOT": str(tmp_path / "files"),  # attachments and knowledge of this site only
        "SIMULATOR_URL": f"http://127.0.0.1:{simulator_port}/v1",
        "SIMULATOR_LATENCY_SECONDS": str(latency),
        "DJANGO_DEBUG": "1",
        "PYTHONUNBUFFERED": "1",
        # Each site its own fair-use counters and channel layer groups, even in a Redis that
        # other sites (tests running in parallel, other test runs) share.
        "CACHE_KEY_PREFIX": f"test-site-{uuid.uuid4().hex}",
        "REDIS_PREFIX": f"test-site-{uuid.uuid4().hex[:12]}",
        "MCP_STDIO_COMMANDS": sys.executable,  # the tool tests' stdio servers (python -m ...)
        **(env or {}),
    }
    site = LiveSite(simulator_url=site_env["SIMULATOR_URL"], env=site_env, output=output,
                    root=root, python=python, server=server)  # fmt: skip
    try:
        # The processes set Django up at the same time; each needs only what comes before it.
        simulator_args = ("manage.py", "simulator", "--port", str(simulator_port))
        simulator = site.spawn(*simulator_args, root=ROOT, python=sys.executable)
        site._shell = SiteShell(site_env, output, root, python)
        if site_env["DATABASE_URL"].startswith("sqlite:"):
            shutil.copy(migrated_sqlite_template(root, python), tmp_path / "site.sqlite3")
        else:
            # In the shell, whose Django is set up meanwhile, not in a process of its own (seconds
            # of start-up); a copy of `migrated_postgres_template` has nothing left to apply.
            site.shell(MIGRATE)
        seed = SEED.format(passwords=PASSWORDS, model=model, engine=engine, faults=faults)
        with ThreadPoolExecutor(1) as seeding:
            seeded = seeding.submit(site.shell, seed)  # users exist before anyone logs in
            # The servers set Django up while the simulator does: they need it only once a run
            # starts, and each start takes seconds (not on the simulator's port meanwhile).
            site.start_daphnes(servers, taken=(simulator_port,))
            wait_for_port(simulator_port, simulator)
            seeded.result()
        yield site
    finally:
        # Killed, not stopped: nothing is left to finish once the test is over, and a stopped
        # process spends seconds of a busy machine tearing its interpreter down. (Stopping
        # gracefully is tested where it matters: test_integration_durable.py.)
        site.close_shell(kill=True)
        for process in site.processes:
            process.kill()
        for process in site.processes:
            process.wait()


class SiteClient:
    """A logged-in person: HTTP with a session cookie, and the thread websocket."""

    def __init__(
        self, site: LiveSite, username: str, url: str | None = None, password: str | None = None
    ):
        self.site = site
        self.url = url or site.url
        self.http = httpx.Client(base_url=self.url, follow_redirects=False, timeout=10)
        page = self.http.get("/login/")
        response = self.http.post(
            "/login/",
            data={
                "username": username,
                "password": password or PASSWORDS[username],
                "csrfmiddlewaretoken": _csrf_token(page.text),
            },
        )
        assert response.status_code == 302, f"login failed for {username}"

    def start_thread(self, assistant: str = "Sim") -> int:
        page = self.http.get("/")
        option = rf'<option value="(\d+)"[^>]*>{re.escape(assistant)}\b'
        assistant_id = re.search(option, page.text)[1]
        response = self.http.post(
            "/threads/new/",
            data={"assistant": assistant_id, "csrfmiddlewaretoken": _csrf_token(page.text)},
        )
        return int(response.headers["location"].strip("/").split("/")[-1])

    def post(self, thread_id: int, text: str) -> httpx.Response:
        return self.http.post(
            f"/threads/{thread_id}/messages/",
            json={"text": text},
            headers={"X-CSRFToken": self.http.cookies["csrftoken"]},
        )

    def cancel(self, thread_id: int) -> httpx.Response:
        return self.http.post(
            f"/threads/{thread_id}/cancel/", headers={"X-CSRFToken": self.http.cookies["csrftoken"]}
        )

    def websocket(self, thread_id: int, url: str | None = None):
        """The thread's socket on this client's server, or on another one given by `url`."""
        url = url or self.url
        cookies = "; ".join(f"{name}={value}" for name, value in self.http.cookies.items())
        return websockets.connect(
            url.replace("http", "ws", 1) + f"/ws/threads/{thread_id}/",
            additional_headers={"Cookie": cookies, "Origin": url},
        )


def _csrf_token(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


async def receive_until(socket, predicate, timeout: float = 15.0) -> list[dict]:
    """Collect events until one satisfies `predicate`; fail after `timeout` seconds."""
    import asyncio

    events = []
    parts = Reassembler()  # events bigger than a websocket message come in parts
    async with asyncio.timeout(timeout):
        while True:
            event = parts.feed(await socket.recv())
            if event is None:
                continue
            events.append(event)
            if predicate(event):
                return events


def is_assistant_message(event: dict) -> bool:
    return event["type"] == "message.created" and event["message"]["role"] == "assistant"


def is_run_status(status: str):
    return lambda event: event["type"] == "run.status" and event["run"]["status"] == status


MIGRATE = "from django.core.management import call_command; call_command('migrate', verbosity=0)"


@functools.cache
def migrated_postgres_template() -> str:
    """The name of an empty PostgreSQL database migrated by this checkout, made once per test
    process and dropped when it exits. A database copied from it (CREATE DATABASE ... TEMPLATE)
    is ready in a twentieth of a second; migrating a new one takes seconds."""
    import psycopg

    name = f"chat_template_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    atexit.register(_drop_database, name)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}"},
        check=True,
    )
    return name


def _drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def postgres_database(migrated: bool = False):
    """A new PostgreSQL database for one test; its DATABASE_URL. Dropped afterwards. Empty, or
    `migrated` by this checkout (a copy of `migrated_postgres_template`)."""
    import psycopg

    name = f"chat_it_{uuid.uuid4().hex[:12]}"
    template = f' TEMPLATE "{migrated_postgres_template()}"' if migrated else ""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"{template}')
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        _drop_database(name)
