"""Real servers for integration tests: the simulator and daphne as child processes on loopback.

`start_site()` gives a site on its own SQLite file (or DATABASE_URL given in `env`) with
alice and bob as users, a simulator-backed assistant "Sim" and one "Sim <fault>" for each
simulator fault asked for; `SiteClient` logs in over HTTP and
talks to the thread websocket like the page does.
"""

import functools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import websockets

from assistants_app.framing import Reassembler
from assistants_app.management.commands.serve import daphne_args

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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {timeout}s")


@dataclass
class LiveSite:
    simulator_url: str
    env: dict
    processes: list[subprocess.Popen] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)  # one per daphne process, in start order
    output: object = None  # where the processes' output goes (a file); None: this terminal

    @property
    def url(self) -> str:
        return self.urls[0]

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    def start_daphne(self, port: int | None = None) -> subprocess.Popen:
        """Another daphne process on the same database (and channel layer, if Redis)."""
        port = port or free_port()
        process = self.spawn(*daphne_args("127.0.0.1", port))
        wait_for_port(port, process)
        url = f"http://127.0.0.1:{port}"
        if url not in self.urls:
            self.urls.append(url)
        return process

    def start_worker(self) -> subprocess.Popen:
        return self.spawn("manage.py", "run_worker", "--interval", "0.2")

    def spawn(self, *args: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=self.env, stdout=self.output, stderr=self.output
        )
        self.processes.append(process)
        return process

    def query(self, expression: str):
        """Evaluate a Python expression against the site's database (models imported)."""
        code = f"from assistants_app.models import *; import json; print(json.dumps({expression}))"
        return json.loads(self.manage("shell", "--verbosity", "0", "-c", code))


@functools.cache
def migrated_sqlite_template() -> Path:
    """An empty, migrated SQLite database, made once per test session and copied per site."""
    path = Path(tempfile.mkdtemp(prefix="chat-template-")) / "template.sqlite3"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": f"sqlite:///{path}"},
        check=True,
    )
    return path


@contextmanager
def start_site(tmp_path: Path, env: dict | None = None, model: str = "simulator",
               engine: str = "responses", latency: float = 0.3, servers: int = 1,
               faults: tuple[str, ...] = (), output=None):  # fmt: skip
    simulator_port = free_port()
    site_env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'site.sqlite3'}",
        "FILES_ROOT": str(tmp_path / "files"),  # attachments and knowledge of this site only
        "SIMULATOR_URL": f"http://127.0.0.1:{simulator_port}/v1",
        "SIMULATOR_LATENCY_SECONDS": str(latency),
        "DJANGO_DEBUG": "1",
        "PYTHONUNBUFFERED": "1",
        # Each site its own fair-use counters, even in a Redis other test runs share.
        "CACHE_KEY_PREFIX": f"test-site-{uuid.uuid4().hex}",
        **(env or {}),
    }
    site = LiveSite(simulator_url=site_env["SIMULATOR_URL"], env=site_env, output=output)
    try:
        simulator = site.spawn("manage.py", "simulator", "--port", str(simulator_port))
        if site_env["DATABASE_URL"].startswith("sqlite:"):
            shutil.copy(migrated_sqlite_template(), tmp_path / "site.sqlite3")
        else:
            site.manage("migrate", "--verbosity", "0")
        seed = SEED.format(passwords=PASSWORDS, model=model, engine=engine, faults=faults)
        site.manage("shell", "--verbosity", "0", "-c", seed)
        wait_for_port(simulator_port, simulator)
        for _ in range(servers):
            site.start_daphne()
        yield site
    finally:
        for process in reversed(site.processes):
            process.terminate()
        for process in site.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


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


@contextmanager
def postgres_database():
    """A new, empty PostgreSQL database for one test; its DATABASE_URL. Dropped afterwards."""
    import psycopg

    name = f"chat_it_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
