"""Share links: the owner shares a thread as it is now, lists and revokes links; others read
the snapshot (signed in, or anyone when the site allows it) and continue it as their own."""

import json
import re

import pytest
import respx
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from assistants_app import sharing
from assistants_app.models import Message, SharedLink, Thread

from .conftest import PROVIDER_URL, make_assistant
from .provider_payloads import conversation, response

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat(alice_thread):
    """Alice's thread of two exchanges, with her name and a secret in another thread."""
    alice_thread.title = "Garden plans"
    alice_thread.save()
    for role, text in [
        ("user", "What grows in shade?"),
        ("assistant", "**Ferns** and hostas."),
        ("user", "And <b>mint</b>?"),
        ("assistant", "Mint too, in a pot."),
    ]:
        Message.objects.create(thread=alice_thread, role=role, text=text)
    return alice_thread


@pytest.fixture
def link(alice, chat) -> SharedLink:
    return sharing.share(alice, chat)


def shared_url(link: SharedLink) -> str:
    return reverse("shared-thread", args=[link.token])


def test_the_owner_creates_a_link_and_finds_it_in_their_list(alice_client, chat):
    response = alice_client.post(reverse("thread-share", args=[chat.pk]))
    link = SharedLink.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('shared-links')}#link-{link.pk}"
    page = alice_client.get(reverse("shared-links")).content.decode()
    assert "Garden plans" in page
    assert f"http://testserver/s/{link.token}/" in page
    assert "4 messages" in page


def test_tokens_are_long_random_and_distinct(alice, chat):
    tokens = {sharing.share(alice, chat).token for _ in range(20)}
    assert len(tokens) == 20
    assert all(len(token) >= 43 and re.fullmatch(r"[A-Za-z0-9_-]+", token) for token in tokens)


def test_nobody_shares_another_users_thread(bob_client, chat):
    response = bob_client.post(reverse("thread-share", args=[chat.pk]))
    assert response.status_code == 404
    assert not SharedLink.objects.exists()


def test_an_empty_thread_is_not_shared(alice_client, alice_thread):
    response = alice_client.post(reverse("thread-share", args=[alice_thread.pk]), follow=True)
    assert not SharedLink.objects.exists()
    assert "this chat is empty" in response.content.decode()


def test_another_signed_in_user_reads_the_thread_as_it_was(bob_client, link, chat):
    Message.objects.create(thread=chat, role="user", text="A later question")
    response = bob_client.get(shared_url(link))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Garden plans" in page and "What grows in shade?" in page
    assert "<strong>Ferns</strong>" in page  # answers rendered as Markdown
    assert "And &lt;b&gt;mint&lt;/b&gt;?" in page  # a user's text shown as typed
    assert "A later question" not in page


def test_a_shared_page_is_not_indexed_cached_or_referred(bob_client, link):
    response = bob_client.get(shared_url(link))
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    assert response["Referrer-Policy"] == "same-origin"  # the token never leaves the site
    assert "no-store" in response["Cache-Control"]
    assert '<meta name="robots" content="noindex, nofollow">' in response.content.decode()


def test_a_shared_page_shows_nothing_else_of_the_owners(bob_client, alice, link, assistant):
    secret = Thread.objects.create(owner=alice, assistant=assistant, title="Salary talk")
    Message.objects.create(thread=secret, role="user", text="my salary is 1234")
    page = bob_client.get(shared_url(link)).content.decode()
    assert "alice" not in page.lower()
    assert "Salary" not in page and "1234" not in page
    assert f"/threads/{link.thread_id}/" not in page  # no way into the original thread
    assert "/ws/" not in page


def test_signed_out_visitors_are_asked_to_log_in_by_default(client, link):
    response = client.get(shared_url(link))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert response["X-Robots-Tag"] == "noindex, nofollow"


def test_anyone_reads_a_link_when_the_site_allows_public_links(client, link, settings):
    settings.SHARE_LINKS_PUBLIC = True
    response = client.get(shared_url(link))
    assert response.status_code == 200
    assert "What grows in shade?" in response.content.decode()
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    # ...but continuing it takes an account.
    response = client.post(reverse("shared-continue", args=[link.token]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert Thread.objects.count() == 1


@pytest.mark.parametrize("token", ["nope", "x" * 43, "x" * 500, "%00"])
def test_unknown_tokens_are_not_found(bob_client, link, token):
    assert bob_client.get(f"/s/{token}/").status_code == 404


def test_a_revoked_link_no_longer_opens(alice_client, bob_client, link):
    response = alice_client.post(reverse("shared-link-revoke", args=[link.pk]))
    assert response.status_code == 302
    assert bob_client.get(shared_url(link)).status_code == 404
    assert bob_client.post(reverse("shared-continue", args=[link.token])).status_code == 404
    assert "Garden plans" not in alice_client.get(reverse("shared-links")).content.decode()


def test_nobody_revokes_or_lists_another_users_links(bob_client, link):
    assert bob_client.post(reverse("shared-link-revoke", args=[link.pk])).status_code == 404
    assert "Garden plans" not in bob_client.get(reverse("shared-links")).content.decode()
    assert bob_client.get(shared_url(link)).status_code == 200


def test_deleting_the_thread_ends_its_links(alice, bob_client, link, chat):
    chat.delete()
    assert bob_client.get(shared_url(link)).status_code == 404


def test_continuing_copies_the_shared_messages_into_a_thread_of_the_viewers(
    bob, bob_client, link, chat
):
    Message.objects.create(thread=chat, role="user", text="A later question")
    response = bob_client.post(reverse("shared-continue", args=[link.token]))
    copy = Thread.objects.get(owner=bob)
    assert response["Location"] == reverse("thread-detail", args=[copy.pk])
    assert copy.title == "Garden plans" and copy.assistant == chat.assistant
    assert copy.remote_id == ""
    texts = list(copy.messages.values_list("role", "text"))
    assert texts == [
        ("user", "What grows in shade?"),
        ("assistant", "**Ferns** and hostas."),
        ("user", "And <b>mint</b>?"),
        ("assistant", "Mint too, in a pot."),
    ]
    assert chat.messages.count() == 5  # the original is untouched
    page = bob_client.get(reverse("thread-detail", args=[copy.pk])).content.decode()
    assert "Mint too, in a pot." in page


def test_a_viewer_without_the_assistant_continues_with_one_of_theirs(bob, bob_client, link, chat):
    staff_only = Group.objects.create(name="staff-only")
    chat.assistant.groups.add(staff_only)
    other = make_assistant(name="Open helper")
    page = bob_client.get(shared_url(link)).content.decode()
    assert "not available to you" in page and "Open helper" in page
    refused = bob_client.post(reverse("shared-continue", args=[link.token]), follow=True)
    assert "not available to you" in refused.content.decode()
    assert not Thread.objects.filter(owner=bob).exists()
    # Nor by naming it.
    named = {"assistant": chat.assistant_id}
    bob_client.post(reverse("shared-continue", args=[link.token]), named)
    assert not Thread.objects.filter(owner=bob).exists()
    bob_client.post(reverse("shared-continue", args=[link.token]), {"assistant": other.pk})
    assert Thread.objects.get(owner=bob).assistant == other


def test_a_continued_chat_sends_its_copied_history_to_the_provider(bob, link, bob_client):
    """A new provider conversation is seeded with the copied history (the tree's path), and
    the first answer is asked for in it."""
    bob_client.post(reverse("shared-continue", args=[link.token]))
    copy = Thread.objects.get(owner=bob)
    with respx.mock(using="httpx", base_url=PROVIDER_URL, assert_all_called=True) as provider:
        seeded = provider.post("/conversations").respond(json=conversation("conv_copy"))
        create = provider.post("/responses").respond(json=response("queued"))
        answer = Client()
        answer.force_login(bob)
        posted = answer.post(
            reverse("message-create", args=[copy.pk]),
            {"text": "What about sun?"},
            content_type="application/json",
        )
    assert posted.status_code == 201
    items = json.loads(seeded.calls.last.request.content)["items"]
    assert [item["content"] for item in items] == [
        "What grows in shade?",
        "**Ferns** and hostas.",
        "And <b>mint</b>?",
        "Mint too, in a pot.",
    ]
    sent = json.loads(create.calls.last.request.content)
    assert (sent["conversation"], sent["input"]) == ("conv_copy", "What about sun?")
