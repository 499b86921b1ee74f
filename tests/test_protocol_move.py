"""Threads outlive a protocol: assistants move from the Assistants API to Responses (a command,
or admin) and every thread goes on with its full history. The provider is mocked strictly."""

import asyncio
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from assistants_app import services
from assistants_app.models import (
    Assistant,
    EngineKind,
    Message,
    ProviderConversation,
    Run,
    RunStatus,
    Thread,
)
from tests.assistants_api import provider, sent
from tests.provider_payloads import conversation, response

from .conftest import make_assistant

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def classic(db):
    return make_assistant(name="Classic", engine=EngineKind.ASSISTANTS, remote_id="asst_1")


@pytest.fixture
def long_thread(alice, classic):
    """30 messages held by a provider thread of the Assistants API."""
    thread = Thread.objects.create(owner=alice, assistant=classic, remote_id="thread_old")
    for n in range(15):
        prompt = Message.objects.create(thread=thread, role="user", text=f"Question {n}")
        run = Run.objects.create(
            thread=thread, prompt=prompt, status=RunStatus.COMPLETED, assistant=classic
        )
        Message.objects.create(thread=thread, role="assistant", text=f"Answer {n}", run=run)
    ProviderConversation.objects.create(
        thread=thread,
        engine="assistants",
        provider="test",
        remote_id="thread_old",
        tip=thread.messages.last(),
    )
    return thread


def move(*args) -> str:
    out = StringIO()
    call_command("move_to_responses", *args, stdout=out)
    return out.getvalue()


def test_the_command_moves_a_30_message_thread_with_its_whole_history(classic, long_thread):
    with provider() as mock:
        created = mock.post("/conversations").respond(json=conversation("conv_new"))
        added = mock.post("/conversations/conv_new/items").respond(json={"data": []})
        said = move()

    classic.refresh_from_db()
    assert classic.engine == EngineKind.RESPONSES
    seeded = [sent(created)["items"], sent(added)["items"]]
    assert [len(batch) for batch in seeded] == [20, 10]
    texts = [entry["content"] for batch in seeded for entry in batch]
    assert texts == [m.text for m in long_thread.messages.order_by("pk")]  # all 30, in order
    assert [entry["role"] for entry in seeded[0][:2]] == ["user", "assistant"]
    assert "Moved “Classic” to the Responses API." in said
    assert "1 thread(s) seeded" in said

    # The next message goes on in the seeded conversation: nothing is sent twice.
    thread = Thread.objects.select_related("assistant").get(pk=long_thread.pk)
    with provider() as mock:
        create = mock.post("/responses").respond(json=response("queued"))
        asyncio.run(services.submit_message(thread.owner, thread, "Question 15"))
    assert (sent(create)["conversation"], sent(create)["input"]) == ("conv_new", "Question 15")


def test_the_command_can_be_run_again_safely(classic, long_thread):
    with provider() as mock:
        mock.post("/conversations").respond(json=conversation("conv_new"))
        mock.post("/conversations/conv_new/items").respond(json={"data": []})
        move()
    messages = Message.objects.count()

    with provider():  # strict and empty: any request to the provider fails the test
        said = move()

    assert "0 thread(s) seeded with their history, 1 already there" in said
    assert Message.objects.count() == messages
    assert ProviderConversation.objects.filter(engine="responses").count() == 1


def test_an_assistant_with_an_answer_in_progress_is_left_for_later(classic, long_thread):
    Run.objects.create(thread=long_thread, prompt=long_thread.messages.first())

    with provider():
        said = move("--no-seed")

    assert Assistant.objects.get(pk=classic.pk).engine == EngineKind.ASSISTANTS
    assert "has answers in progress" in said


def test_admin_moves_assistants_and_refuses_an_engine_change_mid_answer(
    staff_client, classic, long_thread
):
    Run.objects.create(thread=long_thread, prompt=long_thread.messages.first())
    url = reverse("admin:assistants_app_assistant_changelist")

    page = staff_client.post(
        url, {"action": "move_to_responses", "_selected_action": [classic.pk]}, follow=True
    )

    assert "Not moved, answers in progress: “Classic”" in page.content.decode()
    Run.objects.active().update(status=RunStatus.COMPLETED)
    page = staff_client.post(
        url, {"action": "move_to_responses", "_selected_action": [classic.pk]}, follow=True
    )
    assert "Moved 1 assistant(s) to the Responses API" in page.content.decode()
    assert Assistant.objects.get(pk=classic.pk).engine == EngineKind.RESPONSES


def test_a_thread_moved_without_seeding_seeds_itself_on_its_next_message(classic, long_thread):
    move("--no-seed")
    thread = Thread.objects.select_related("assistant").get(pk=long_thread.pk)

    with provider() as mock:
        created = mock.post("/conversations").respond(json=conversation("conv_new"))
        added = mock.post("/conversations/conv_new/items").respond(json={"data": []})
        create = mock.post("/responses").respond(json=response("queued"))
        asyncio.run(services.submit_message(thread.owner, thread, "Question 15"))

    assert (
        len(sent(created)["items"]) + len(json.loads(added.calls[0].request.content)["items"]) == 30
    )
    assert sent(create)["input"] == "Question 15"
