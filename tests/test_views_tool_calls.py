"""Approve / Deny over HTTP: only the thread's owner, only POST with CSRF, a step that is not
waiting stays as it is; the page shows each step, and the socket replays them."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from assistants_app.models import Message, Run
from assistants_app.tool_models import ToolStep

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting(alice_thread):
    prompt = Message.objects.create(thread=alice_thread, role="user", text="Echo it")
    run = Run.objects.create(thread=alice_thread, prompt=prompt, status="requires_action",
                             remote_id="resp_1")  # fmt: skip
    return ToolStep.objects.create(
        run=run, call_id="call_1", tool="web__echo", arguments='{"text": "<b>hi</b>"}',
        state="awaiting_approval", expires_at=timezone.now() + timedelta(minutes=5),
    )  # fmt: skip


def url(step, decision="approve"):
    return reverse("tool-call-decide", args=[step.run.thread_id, step.pk, decision])


def test_the_owner_approves_a_waiting_call(alice_client, waiting):
    response = alice_client.post(url(waiting), headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.json()["step"]["state"] == "approved"
    assert ToolStep.objects.get(pk=waiting.pk).state == "approved"


def test_the_owner_denies_a_waiting_call_without_javascript(alice_client, waiting):
    response = alice_client.post(url(waiting, "deny"))
    assert response.status_code == 302  # back to the thread
    step = ToolStep.objects.get(pk=waiting.pk)
    assert (step.state, step.error) == ("denied", "Denied by the user.")


def test_someone_else_gets_404_and_changes_nothing(bob_client, waiting):
    assert bob_client.post(url(waiting)).status_code == 404
    assert bob_client.post(url(waiting, "deny")).status_code == 404
    assert ToolStep.objects.get(pk=waiting.pk).state == "awaiting_approval"


def test_it_refuses_get_unknown_decisions_and_missing_csrf(alice, alice_client, waiting):
    assert alice_client.get(url(waiting)).status_code == 405
    assert alice_client.post(url(waiting, "maybe")).status_code == 404
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert strict.post(url(waiting)).status_code == 403
    assert ToolStep.objects.get(pk=waiting.pk).state == "awaiting_approval"


def test_an_expired_question_cannot_be_approved(alice_client, waiting):
    ToolStep.objects.filter(pk=waiting.pk).update(expires_at=timezone.now())
    alice_client.post(url(waiting))
    assert ToolStep.objects.get(pk=waiting.pk).state == "awaiting_approval"  # driver expires it


def test_the_page_shows_the_step_with_its_buttons_and_escaped_arguments(alice_client, waiting):
    page = alice_client.get(reverse("thread-detail", args=[waiting.run.thread_id]))
    html = page.content.decode()
    assert f'class="tool-step" data-step-id="{waiting.pk}"' in html
    assert "{&quot;text&quot;: &quot;&lt;b&gt;hi&lt;/b&gt;&quot;}" in html
    assert url(waiting) in html and url(waiting, "deny") in html
