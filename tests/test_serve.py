"""`manage.py serve`, the README's run command, as a person runs it: ports taken, what it prints
and when, and answers that reach the open page whoever finishes them."""

import asyncio
import json
import os
import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import pytest

from assistants_app.management.commands import serve as serve_command

from .live import (
    ROOT,
    LiveSite,
    SiteClient,
    free_port,
    is_assistant_message,
    is_run_status,
    receive_until,
    wait_for_port,
)

# Real processes on a machine that may be busy with other work: minutes, not the default 2.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
DEMO_PASSWORD = "demo-password-1"


class Serve:
    """`manage.py serve` running, its output read line by line as it comes (through a pipe,
    which Python would buffer until exit unless the command flushes each line)."""

    def __init__(self, env: dict, port: int):
        self.port = port
        self.env = env
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for_line(self, start: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                assert self.process.poll() is None, f"serve exited: {''.join(self.seen)}"
                continue
            self.seen.append(line)
            if line.startswith(start):
                return line
        raise AssertionError(f"no line starting {start!r} in {''.join(self.seen)}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)  # serve gives its processes 10 s, then kills them


def serve_env(tmp_path, **more) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'site.sqlite3'}",
        "SIMULATOR_URL": f"http://127.0.0.1:{free_port()}/v1",
        "DEMO_PASSWORD": DEMO_PASSWORD,
        "DJANGO_DEBUG": "1",
        "CACHE_KEY_PREFIX": f"test-serve-{tmp_path.name}",
        **more,
    }


@contextmanager
def serving(env: dict):
    serve = Serve(env, free_port())
    try:
        yield serve
    finally:
        serve.stop()


def run_serve(env: dict, port: int) -> subprocess.CompletedProcess:
    command = [sys.executable, "manage.py", "serve", "--port", str(port)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_it_refuses_to_start_when_the_sites_port_is_taken(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_serve(serve_env(tmp_path), port)

    assert result.returncode != 0
    assert f"Cannot start the site on 127.0.0.1:{port}: the port is already in use" in (
        result.stderr
    )
    assert "--port" in result.stderr
    assert "Serving the site" not in result.stdout


def test_it_refuses_to_start_when_the_simulators_port_is_taken(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = serve_env(tmp_path, SIMULATOR_URL=f"http://127.0.0.1:{port}/v1")
        result = run_serve(env, free_port())

    assert result.returncode != 0
    assert f"Cannot start the simulator (SIMULATOR_URL) on 127.0.0.1:{port}" in result.stderr
    assert "Serving the site" not in result.stdout


def test_it_says_where_to_log_in_at_every_start_and_the_password_only_once(tmp_path):
    env = serve_env(tmp_path)
    with serving(env) as first:
        first.wait_for_line("Serving the site on")
        wait_for_port(first.port, first.process, timeout=0.5)  # announced once it listens
        login = first.wait_for_line("Log in at")
    assert any(DEMO_PASSWORD in line for line in first.seen)
    assert f"http://127.0.0.1:{first.port}/login/" in login

    with serving(env) as second:
        second.wait_for_line("Serving the site on")
        login = second.wait_for_line("Log in at")
    assert "'demo'" in login
    assert not any(DEMO_PASSWORD in line for line in second.seen)


@pytest.mark.timeout(60)  # a stop lost in serve hangs: this ends it as a failure
def test_a_stop_that_comes_as_serve_looks_at_its_processes_still_ends_them():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    process._waitpid_lock = SignalledWhenTaken(process._waitpid_lock)
    with serve_command.StopRequests() as stopping:
        try:
            with pytest.raises(serve_command.StopRequested):
                serve_command.wait_for(process, stopping)
        finally:
            serve_command.stop([process], seconds=10)

    assert process._waitpid_lock.signalled
    assert process.returncode == -signal.SIGTERM


class SignalledWhenTaken:
    """A child process's wait lock (subprocess's own) that sends this process a SIGTERM as it is
    first taken: the moment where an exception raised by a signal handler leaves it held."""

    def __init__(self, lock):
        self._lock = lock
        self.signalled = False

    def acquire(self, *args, **kwargs) -> bool:
        taken = self._lock.acquire(*args, **kwargs)
        if taken and not self.signalled:
            self.signalled = True
            os.kill(os.getpid(), signal.SIGTERM)
        return taken

    def release(self) -> None:
        self._lock.release()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


async def test_a_restarted_site_finishes_runs_left_from_before_without_a_visitor(tmp_path):
    env = serve_env(tmp_path, RUN_WORKER_INTERVAL_SECONDS="0.2")
    with serving(env) as first:
        first.wait_for_line("Log in at")
    # A run the stopped server never got to the provider; nobody opens the site afterwards.
    site = LiveSite(simulator_url=env["SIMULATOR_URL"], env=env)
    run_id = site.query(LEFT_BEHIND)

    with serving(env) as second:
        second.wait_for_line("Log in at")
        with sqlite3.connect(tmp_path / "site.sqlite3") as db:
            async with asyncio.timeout(20):
                while _status(db, run_id) != ("failed", "interrupted"):
                    await asyncio.sleep(0.1)


LEFT_BEHIND = """(lambda thread: Run.objects.create(thread=thread, prompt=Message.objects.create(
    thread=thread, role='user', text='Hello')).pk)(Thread.objects.create(
    owner_id=1, assistant=Assistant.objects.get()))"""


def _status(db, run_id: int) -> tuple[str, str]:
    query = "SELECT status, error_code FROM assistants_app_run WHERE id = ?"
    return db.execute(query, (run_id,)).fetchone()


async def test_an_answer_the_worker_finishes_reaches_the_open_page(tmp_path):
    # A run nobody drives (its tab closed before it started) is the worker's. The page opened
    # afterwards must see the worker's answer arrive, not only after a reload.
    env = serve_env(tmp_path, SIMULATOR_LATENCY_SECONDS="5", RUN_WORKER_INTERVAL_SECONDS="0.2")
    with serving(env) as serve:
        serve.wait_for_line("Serving the site on")
        wait_for_port(serve.port, serve.process, timeout=30)
        site = LiveSite(simulator_url=env["SIMULATOR_URL"], env=env)
        site.urls.append(f"http://127.0.0.1:{serve.port}")
        demo = SiteClient(site, "demo", password=DEMO_PASSWORD)
        thread_id = demo.start_thread("Helpful assistant")
        posted = demo.post(thread_id, "Hello with no tab open")
        assert posted.status_code == 201
        run_id = posted.json()["run"]["id"]
        await _until_driven(tmp_path / "site.sqlite3", run_id)

        async with demo.websocket(thread_id) as page:
            await page.send(json.dumps({"type": "hello", "last_message_id": None}))
            events = await receive_until(page, is_run_status("completed"), timeout=30)

    replayed_status = next(e for e in events if e["type"] == "run.status")
    assert replayed_status["run"]["status"] in ("queued", "in_progress")  # not done yet
    assert len([e for e in events if is_assistant_message(e)]) == 1


async def _until_driven(database, run_id: int) -> None:
    """Until some process holds the run's lease to drive it (not the posting request's)."""
    with sqlite3.connect(database) as db:
        async with asyncio.timeout(20):
            while True:
                query = "SELECT lease_owner FROM assistants_app_run WHERE id = ?"
                owner = db.execute(query, (run_id,)).fetchone()[0]
                if owner and not owner.endswith(":starting"):
                    return
                await asyncio.sleep(0.05)
