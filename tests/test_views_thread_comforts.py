"""Keeping threads: search, rename, delete with confirmation, export; only one's own."""

import json

import pytest
from django.urls import reverse

from assistants_app.models import Message, Run, RunStatus, Thread

pytestmark = pytest.mark.django_db

OWNED_URLS = [
    ("thread-rename", "get"),
    ("thread-rename", "post"),
    ("thread-delete", "get"),
    ("thread-delete", "post"),
    ("thread-export-md", "get"),
    ("thread-export-json", "get"),
]


@pytest.fixture
def chat(alice_thread):
    alice_thread.title = "Planning a garden"
    alice_thread.save()
    Message.objects.create(thread=alice_thread, role="user", text="Which **tomatoes** grow best?")
    Message.objects.create(thread=alice_thread, role="assistant", text="Try `San Marzano`.")
    return alice_thread


@pytest.mark.parametrize("name, method", OWNED_URLS)
def test_it_sends_anonymous_visitors_to_login(client, chat, name, method):
    response = getattr(client, method)(reverse(name, args=[chat.pk]), {"title": "x"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name, method", OWNED_URLS)
def test_it_hides_other_users_threads(bob_client, chat, name, method):
    response = getattr(bob_client, method)(reverse(name, args=[chat.pk]), {"title": "Mine now"})
    assert response.status_code == 404
    chat.refresh_from_db()
    assert chat.title == "Planning a garden"


def test_it_searches_titles_and_messages_of_my_threads_only(
    alice_client, chat, alice, bob_thread, assistant
):
    Message.objects.create(thread=bob_thread, role="user", text="tomatoes are secret")
    other = Thread.objects.create(owner=alice, assistant=assistant, title="Taxes")
    url = reverse("thread-list")

    assert list(alice_client.get(url, {"q": "TOMATOES"}).context["threads"]) == [chat]
    assert list(alice_client.get(url, {"q": "garden"}).context["threads"]) == [chat]
    assert list(alice_client.get(url, {"q": "tax"}).context["threads"]) == [other]
    assert set(alice_client.get(url, {"q": "  "}).context["threads"]) == {chat, other}


def test_a_search_without_results_says_so(alice_client, chat):
    response = alice_client.get(reverse("thread-list"), {"q": "zucchini"})
    assert b"No chats match" in response.content
    assert b"zucchini" in response.content


def test_it_renames_a_thread(alice_client, chat):
    response = alice_client.post(
        reverse("thread-rename", args=[chat.pk]), {"title": "  Tomato   plans "}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("thread-detail", args=[chat.pk])
    chat.refresh_from_db()
    assert chat.title == "Tomato plans"
    page = alice_client.get(response["Location"])
    assert "Renamed to “Tomato plans”." in page.content.decode()


@pytest.mark.parametrize(
    "title, error", [("   ", "Give the thread a title."), ("x" * 201, "at most")]
)
def test_it_refuses_a_bad_title(alice_client, chat, title, error):
    url = reverse("thread-rename", args=[chat.pk])
    response = alice_client.post(url, {"title": title}, follow=True)
    assert response.redirect_chain == [(url, 302)]
    assert error in response.content.decode()
    chat.refresh_from_db()
    assert chat.title == "Planning a garden"


def test_it_asks_before_deleting(alice_client, chat):
    response = alice_client.get(reverse("thread-delete", args=[chat.pk]))
    assert response.status_code == 200
    assert "Delete “Planning a garden”?" in response.content.decode()
    assert Thread.objects.filter(pk=chat.pk).exists()


def test_it_deletes_a_thread_with_its_messages(alice_client, chat):
    response = alice_client.post(reverse("thread-delete", args=[chat.pk]), follow=True)
    assert response.redirect_chain == [(reverse("thread-list"), 302)]
    assert "Deleted “Planning a garden”." in response.content.decode()
    assert not Thread.objects.exists()
    assert not Message.objects.exists()


def test_it_refuses_to_delete_while_the_assistant_answers(alice_client, chat):
    Run.objects.create(thread=chat, status=RunStatus.IN_PROGRESS)
    response = alice_client.post(reverse("thread-delete", args=[chat.pk]), follow=True)
    assert "still answering" in response.content.decode()
    assert Thread.objects.filter(pk=chat.pk).exists()


def test_it_exports_markdown(alice_client, chat):
    response = alice_client.get(reverse("thread-export-md", args=[chat.pk]))
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    # Named after the thread, so a folder of exports is readable.
    assert response["Content-Disposition"] == 'attachment; filename="planning-a-garden.md"'
    text = response.content.decode()
    assert text.startswith("# Planning a garden\n\nAssistant: Helper\n")
    assert "## You · " in text and "Which **tomatoes** grow best?" in text
    assert "## Helper · " in text and "Try `San Marzano`." in text
    assert text.index("tomatoes") < text.index("San Marzano")


def test_it_exports_json(alice_client, chat):
    response = alice_client.get(reverse("thread-export-json", args=[chat.pk]))
    assert response["Content-Disposition"] == 'attachment; filename="planning-a-garden.json"'
    data = json.loads(response.content)
    assert data["title"] == "Planning a garden"
    assert data["assistant"] == {"name": "Helper", "description": "", "simulated": False}
    assert [(m["role"], m["text"]) for m in data["messages"]] == [
        ("user", "Which **tomatoes** grow best?"),
        ("assistant", "Try `San Marzano`."),
    ]


def test_the_thread_page_offers_the_comforts(alice_client, chat):
    content = alice_client.get(reverse("thread-detail", args=[chat.pk])).content.decode()
    for url_name in ("thread-rename", "thread-export-md", "thread-export-json", "thread-delete"):
        assert reverse(url_name, args=[chat.pk]) in content
    assert 'aria-live="polite"' in content
    assert "<time datetime=" in content


def test_a_missing_thread_gets_a_friendly_page(bob_client, chat):
    response = bob_client.get(reverse("thread-detail", args=[chat.pk]))
    assert response.status_code == 404
    assert b"Back to my chats" in response.content
    assert b"Planning a garden" not in response.content


def test_the_assistants_name_and_description_are_shown(alice_client, chat, assistant):
    assistant.description = "Knows plants"
    assistant.save()
    list_page = alice_client.get(reverse("thread-list")).content.decode()
    thread_page = alice_client.get(reverse("thread-detail", args=[chat.pk])).content.decode()
    # The new-chat page's picker says what the chosen assistant is for; a thread's header
    # names its assistant, chosen in the picker that switches it.
    assert 'data-description="Knows plants"' in list_page
    assert '<p class="meta" id="assistant-description">Knows plants</p>' in list_page
    assert f'<option value="{assistant.pk}" selected>Helper</option>' in thread_page
