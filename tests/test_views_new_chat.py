"""Starting a chat: no thread until the first message, the last assistant preselected, its
conversation starters shown; the sidebar's pages of threads, grouped by date, with search
snippets; rename and delete answered as JSON for the sidebar's inline actions."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from assistants_app.models import Message, Run, Thread
from assistants_app.sidebar import PAGE_SIZE, date_group

from .conftest import make_assistant
from .test_views_threads import provider  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db


def start_chat(client, assistant_id, text):
    return client.post(
        reverse("thread-create"),
        json.dumps({"assistant": assistant_id, "text": text}),
        content_type="application/json",
    )


def test_the_new_chat_page_makes_no_thread(alice_client, assistant):
    for _ in range(3):
        assert alice_client.get(reverse("thread-list")).status_code == 200
    assert not Thread.objects.exists()


def test_the_first_message_makes_the_thread_with_its_run(alice_client, alice, assistant, provider):  # noqa: F811
    response = start_chat(alice_client, assistant.pk, "Plan my garden")

    assert response.status_code == 201
    thread = Thread.objects.get()
    assert (thread.owner, thread.assistant, thread.title) == (alice, assistant, "Plan my garden")
    body = response.json()
    assert body["thread"] == {
        "id": thread.pk,
        "url": reverse("thread-detail", args=[thread.pk]),
        "title": "Plan my garden",
    }
    assert body["message"]["text"] == "Plan my garden"
    assert Run.objects.get().prompt == Message.objects.get()


@pytest.mark.parametrize("text", ["", "   ", None])
def test_an_empty_first_message_leaves_no_thread(alice_client, assistant, text):
    response = start_chat(alice_client, assistant.pk, text)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "EMPTY_MESSAGE"
    assert not Thread.objects.exists()


def test_a_refused_first_message_leaves_no_thread(alice_client, assistant, settings, provider):  # noqa: F811
    settings.MESSAGES_PER_MINUTE = 1
    assert start_chat(alice_client, assistant.pk, "the one allowed").status_code == 201
    first = Thread.objects.get()

    response = start_chat(alice_client, assistant.pk, "one too many")

    assert response.status_code == 429
    assert list(Thread.objects.all()) == [first]


def test_it_refuses_an_assistant_shared_with_other_people(alice_client, assistant):
    assistant.groups.add(Group.objects.create(name="staff only"))
    response = start_chat(alice_client, assistant.pk, "Hello")
    assert response.status_code == 404
    assert not Thread.objects.exists()


def test_a_form_post_without_javascript_goes_to_the_new_thread(alice_client, assistant, provider):  # noqa: F811
    response = alice_client.post(
        reverse("thread-create"), {"assistant": assistant.pk, "text": "Hi"}
    )
    thread = Thread.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("thread-detail", args=[thread.pk])
    assert thread.messages.get().text == "Hi"


def test_the_last_assistant_used_is_preselected_with_its_starters(alice_client, alice, assistant):
    other = make_assistant(name="Gardener", conversation_starters=["Plan a bed", "Which roses?"])
    Thread.objects.create(owner=alice, assistant=other)

    page = alice_client.get(reverse("thread-list")).content.decode()

    assert f'<option value="{other.pk}" data-description="" selected>Gardener' in page
    assert f'<option value="{assistant.pk}" data-description="">Helper' in page
    assert (
        '<button type="button" class="starter" data-text="Plan a bed">Plan a bed</button>' in page
    )
    starters = page[page.index(f'<ul class="starters" data-assistant="{other.pk}"') :]
    assert starters.split(">", 1)[0].endswith('aria-label="Conversation starters for Gardener"')


def test_the_sidebar_groups_threads_by_date():
    today = timezone.localdate()
    at = lambda days: timezone.now() - timedelta(days=days)  # noqa: E731
    assert date_group(at(0), today) == "Today"
    assert date_group(at(1), today) == "Yesterday"
    assert date_group(at(6), today) == "Previous 7 days"
    assert date_group(at(400), today) == (today - timedelta(days=400)).strftime("%B %Y")


def test_the_sidebar_loads_threads_a_page_at_a_time(alice_client, alice, bob, assistant):
    for number in range(PAGE_SIZE + 5):
        Thread.objects.create(owner=alice, assistant=assistant, title=f"Chat {number}")
    Thread.objects.create(owner=bob, assistant=assistant, title="Bob's")
    url = reverse("thread-page")

    first = alice_client.get(url).json()
    second = alice_client.get(url, {"offset": first["next_offset"]}).json()

    assert len(first["threads"]) == PAGE_SIZE and first["next_offset"] == PAGE_SIZE
    assert len(second["threads"]) == 5 and second["next_offset"] is None
    titles = [t["title"] for t in first["threads"] + second["threads"]]
    assert len(set(titles)) == PAGE_SIZE + 5 and "Bob's" not in titles
    assert {t["group"] for t in first["threads"]} == {"Today"}


def test_the_sidebar_search_shows_the_matching_snippet(alice_client, alice, bob, assistant):
    garden = Thread.objects.create(owner=alice, assistant=assistant, title="Garden")
    text = "Early in the year I sow the San Marzano tomatoes indoors, in March, on a sill."
    Message.objects.create(thread=garden, role="user", text=text)
    bobs = Thread.objects.create(owner=bob, assistant=assistant, title="tomatoes")

    found = alice_client.get(reverse("thread-page"), {"q": "marzano"}).json()["threads"]
    mine = alice_client.get(reverse("thread-page"), {"q": "tomatoes"}).json()["threads"]

    assert [t["id"] for t in found] == [garden.pk]
    # The match near the start, so that it shows in a narrow sidebar.
    assert found[0]["snippet"] == "…r I sow the San Marzano tomatoes indoors, in March, on a sill."
    assert bobs.pk not in [t["id"] for t in mine]


def test_rename_and_delete_answer_json_for_the_sidebar(alice_client, alice, assistant):
    thread = Thread.objects.create(owner=alice, assistant=assistant, title="Old")
    json_accept = {"HTTP_ACCEPT": "application/json"}

    renamed = alice_client.post(
        reverse("thread-rename", args=[thread.pk]), {"title": "New"}, **json_accept
    )
    refused = alice_client.post(
        reverse("thread-rename", args=[thread.pk]), {"title": " "}, **json_accept
    )
    deleted = alice_client.post(reverse("thread-delete", args=[thread.pk]), **json_accept)

    assert renamed.json() == {"thread": {"id": thread.pk, "title": "New"}}
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "EMPTY_TITLE"
    assert deleted.json() == {"deleted": thread.pk}
    assert not Thread.objects.exists()


def test_the_sidebar_is_only_for_people_logged_in(client):
    response = client.get(reverse("thread-page"))
    assert response.status_code == 302
