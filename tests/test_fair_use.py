"""Fair use: messages per minute, answers in progress at once and tokens per day, per user,
with per-user overrides in admin. Going over answers 429 with a message worded for people
and stores nothing, so the page keeps the user's text for a later try."""

import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest
import redis
import respx
from django.test import Client
from django.utils import timezone

from assistants_app import limits
from assistants_app.models import Run, RunStatus, Thread, UsageLimit, UsageRecord

from .conftest import PROVIDER_URL
from .live import ROOT

REDIS_URL = "redis://127.0.0.1:6379/0"
QUEUED_RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1_700_000_000,
    "status": "queued",
    "model": "gpt-test",
    "output": [],
}


@pytest.fixture
def provider():
    """The provider accepts runs (they stay queued); a refused message must not reach it."""
    with respx.mock(using="httpx", base_url=PROVIDER_URL, assert_all_called=False) as mock:
        mock.post("/conversations").respond(
            json={"id": "conv_1", "object": "conversation", "created_at": 1, "metadata": {}}
        )
        mock.post("/responses", name="create_response").respond(json=QUEUED_RESPONSE)
        # And keep them queued: a run whose poll failed would end, and give its budget back.
        mock.get(url__regex=r"/responses/[^/]+$").respond(json=QUEUED_RESPONSE)
        yield mock


@pytest.fixture
def fresh_minute():
    """Start at the top of a window, so no test straddles two minutes."""
    if limits.seconds_left_in_window(60) < 5:
        time.sleep(limits.seconds_left_in_window(60))


def post(client, thread: Thread, text: str):
    return client.post(
        f"/threads/{thread.pk}/messages/", {"text": text}, content_type="application/json"
    )


def new_threads(user, assistant, count: int) -> list[Thread]:
    return [Thread.objects.create(owner=user, assistant=assistant) for _ in range(count)]


def active_runs(user, assistant, count: int) -> None:
    for thread in new_threads(user, assistant, count):
        Run.objects.create(thread=thread, status=RunStatus.IN_PROGRESS, remote_id="resp_x")


def assert_refused(response, code: str, thread: Thread) -> dict:
    assert response.status_code == 429
    assert set(response.json()) == {"error"}
    error = response.json()["error"]
    assert error["code"] == code
    assert "your message is still here" in error["message"]
    assert not thread.messages.exists()  # nothing stored: the page keeps the text
    return error


def test_it_limits_messages_per_minute(
    alice_client, alice, assistant, provider, settings, fresh_minute
):
    settings.MESSAGES_PER_MINUTE = 2
    threads = new_threads(alice, assistant, 3)
    assert post(alice_client, threads[0], "one").status_code == 201
    assert post(alice_client, threads[1], "two").status_code == 201

    response = post(alice_client, threads[2], "three")

    error = assert_refused(response, "TOO_MANY_MESSAGES", threads[2])
    assert "2 messages a minute" in error["message"]
    assert 0 < int(response["Retry-After"]) <= 60
    assert provider["create_response"].call_count == 2  # the third never left


def test_one_users_messages_do_not_count_against_another(
    alice_client, bob_client, alice, bob, assistant, provider, settings, fresh_minute
):
    settings.MESSAGES_PER_MINUTE = 1
    assert post(alice_client, *new_threads(alice, assistant, 1), "mine").status_code == 201
    assert post(bob_client, *new_threads(bob, assistant, 1), "mine too").status_code == 201


def test_a_refused_message_does_not_use_up_the_minute(
    alice_client, alice, assistant, provider, settings, fresh_minute
):
    settings.MESSAGES_PER_MINUTE = 1
    settings.CONCURRENT_RUNS = 1
    active_runs(alice, assistant, 1)
    thread = new_threads(alice, assistant, 1)[0]
    assert_refused(post(alice_client, thread, "too soon"), "TOO_MANY_RUNS", thread)

    Run.objects.update(status=RunStatus.COMPLETED)
    assert post(alice_client, thread, "now").status_code == 201


def test_it_limits_answers_in_progress_at_once(alice_client, alice, bob, assistant, settings):
    settings.CONCURRENT_RUNS = 2
    active_runs(alice, assistant, 2)
    thread = new_threads(alice, assistant, 1)[0]

    with respx.mock(using="httpx", base_url=PROVIDER_URL):  # no route: any provider call would fail
        error = assert_refused(post(alice_client, thread, "a third"), "TOO_MANY_RUNS", thread)
    assert "2 answers in progress" in error["message"]
    limits.check_can_start_run(bob)  # bob's own count is zero


def run_with_tokens(user, assistant, tokens: int, days_ago: int = 0) -> None:
    """A finished run, in the ledger as the driver leaves it."""
    thread = Thread.objects.create(owner=user, assistant=assistant)
    when = timezone.now() - timedelta(days=days_ago)
    run = Run.objects.create(
        thread=thread, status=RunStatus.COMPLETED, total_tokens=tokens, created_at=when
    )
    UsageRecord.objects.create(
        run=run, user=user, assistant=assistant, created_at=when, status=run.status,
        total_tokens=tokens, charged_tokens=tokens,
    )  # fmt: skip


def test_it_enforces_the_daily_token_budget(alice_client, alice, assistant, settings):
    settings.DAILY_TOKEN_BUDGET = 100
    run_with_tokens(alice, assistant, 60)
    run_with_tokens(alice, assistant, 40)
    thread = new_threads(alice, assistant, 1)[0]

    response = post(alice_client, thread, "more please")

    error = assert_refused(response, "TOKEN_BUDGET_SPENT", thread)
    assert "100 tokens" in error["message"] and "midnight UTC" in error["message"]
    assert 0 < int(response["Retry-After"]) <= 86_400


def test_yesterdays_tokens_do_not_count(alice, assistant, settings):
    settings.DAILY_TOKEN_BUDGET = 100
    run_with_tokens(alice, assistant, 5_000, days_ago=1)
    run_with_tokens(alice, assistant, 99)
    assert limits.tokens_used_today(alice) == 99
    limits.check_can_start_run(alice)


def test_a_users_limits_in_admin_override_the_defaults(alice, bob, settings):
    settings.DAILY_TOKEN_BUDGET = 100
    settings.MESSAGES_PER_MINUTE = 10
    UsageLimit.objects.create(user=alice, daily_token_budget=5_000, concurrent_runs=0)

    assert limits.limits_for(alice) == limits.Limits(
        messages_per_minute=10, concurrent_runs=0, daily_token_budget=5_000
    )
    assert limits.limits_for(bob).daily_token_budget == 100


def test_staff_set_a_users_budget_in_admin(alice, assistant, django_user_model, settings):
    settings.DAILY_TOKEN_BUDGET = 1_000
    run_with_tokens(alice, assistant, 80)
    staff = django_user_model.objects.create_superuser("carol", password="carol-password")
    client = Client()
    client.force_login(staff)

    response = client.post(
        "/admin/assistants_app/usagelimit/add/",
        {
            "user": alice.pk,
            "daily_token_budget": 50,
            "messages_per_minute": "",
            "concurrent_runs": "",
        },
    )

    assert response.status_code == 302
    with pytest.raises(limits.RateLimited):
        limits.check_can_start_run(alice)
    listing = client.get("/admin/assistants_app/usagelimit/").content.decode()
    assert '<td class="field-tokens_used_today">80</td>' in listing


COUNT_IN_CHILD = """
import django, os
django.setup()
from assistants_app import limits
for _ in range(100):
    limits.count_in_window({name!r}, 3600)
"""


@pytest.mark.slow
def test_counters_are_shared_and_exact_across_processes_with_redis(settings):
    prefix = f"issue6-test-{uuid.uuid4().hex}"
    env = {"REDIS_URL": REDIS_URL, "CACHE_KEY_PREFIX": prefix}
    env.update(DJANGO_SETTINGS_MODULE="chatsite.settings", PATH="/usr/bin:/bin")
    code = COUNT_IN_CHILD.format(name="messages:1")
    try:
        children = [
            subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env) for _ in range(2)
        ]
        assert [child.wait(timeout=60) for child in children] == [0, 0]
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": REDIS_URL,
                "KEY_PREFIX": prefix,
            }
        }
        assert limits.peek_window("messages:1", 3600) == 200
    finally:
        server = redis.Redis.from_url(REDIS_URL)
        for key in server.scan_iter(f"{prefix}*"):
            server.delete(key)
