"""A person's own data from the account page: one archive with all of it, and all of it
deleted after a confirmation; nobody else's data in either, and budgets unchanged."""

import io
import json
import zipfile

from django.contrib.auth.models import Group
from django.test import Client

from assistants_app import limits
from assistants_app.models import AuditEntry, Message, Run, RunStatus, Thread, UsageRecord

from .test_retention import thread_last_active


def archive_of(client) -> zipfile.ZipFile:
    response = client.get("/account/export.zip")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="alice-data-')
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def test_the_account_page_says_who_you_are_and_what_you_have(alice_client, alice, assistant):
    alice.groups.add(Group.objects.create(name="physics"))
    thread_last_active(alice, assistant, days_ago=1)
    page = alice_client.get("/account/").content.decode()
    assert '<dd id="account-username">alice</dd>' in page
    assert '<dd id="account-groups">physics</dd>' in page
    assert "1 chat with 2 messages." in page
    assert 'href="/account/export.zip"' in page and 'href="/account/delete/"' in page


def test_every_page_links_to_the_account_page(alice_client):
    assert 'href="/account/"' in alice_client.get("/").content.decode()


def test_the_account_pages_need_a_login(client, db):
    for url in ("/account/", "/account/export.zip", "/account/delete/"):
        assert client.get(url)["Location"].startswith("/login/?next=")


def test_the_archive_holds_the_account_and_every_thread_as_json_and_markdown(
    alice_client, alice, bob, assistant
):
    mine = thread_last_active(alice, assistant, days_ago=2)
    Message.objects.create(thread=mine, role="user", text="Ünïcode and *Markdown*")
    thread_last_active(bob, assistant, days_ago=2)
    archive = archive_of(alice_client)
    names = sorted(archive.namelist())
    stem = f"threads/{mine.pk}-2-days"
    assert names == ["account.json", f"{stem}.json", f"{stem}.md"]
    account = json.loads(archive.read("account.json"))
    assert account["username"] == "alice"
    assert account["usage_per_day"][0]["tokens"] == 100
    thread = json.loads(archive.read(f"{stem}.json"))
    assert [m["text"] for m in thread["messages"]] == ["Hello", "Hi", "Ünïcode and *Markdown*"]
    assert "Ünïcode and *Markdown*" in archive.read(f"{stem}.md").decode()


def test_the_archive_of_someone_with_nothing_is_still_an_archive(alice_client):
    assert archive_of(alice_client).namelist() == ["account.json"]


def test_deleting_asks_first_and_deletes_nothing_without_the_username(
    alice_client, alice, assistant
):
    thread_last_active(alice, assistant, days_ago=1)
    page = alice_client.get("/account/delete/").content.decode()
    assert "Your 1 chat and 2 messages are deleted for good." in page
    response = alice_client.post("/account/delete/", {"confirm": "yes"})
    assert response.status_code == 400
    assert "Type your username exactly to confirm." in response.content.decode()
    assert Thread.objects.filter(owner=alice).count() == 1


def test_deleting_takes_all_threads_and_keeps_the_account_and_the_budget(
    alice_client, alice, bob, assistant
):
    thread_last_active(alice, assistant, days_ago=0.1)
    thread_last_active(alice, assistant, days_ago=300)
    bobs = thread_last_active(bob, assistant, days_ago=1)
    spent = limits.tokens_used_today(alice)
    response = alice_client.post("/account/delete/", {"confirm": "alice"}, follow=True)
    assert "Deleted all your data: 2 chats." in response.content.decode()
    assert not Thread.objects.filter(owner=alice).exists()
    assert not Message.objects.filter(thread__owner=alice).exists()
    assert not Run.objects.filter(thread__owner=alice).exists()
    assert list(Thread.objects.all()) == [bobs]
    assert limits.tokens_used_today(alice) == spent  # deleting is no way to a fresh budget
    assert UsageRecord.objects.filter(user=alice).count() == 2
    assert alice_client.get("/").status_code == 200  # still signed in
    entry = AuditEntry.objects.get(action=AuditEntry.Action.DATA_DELETED)
    assert (entry.actor_name, entry.target_name) == ("alice", "alice")
    assert entry.changes == {"threads": 2}


def test_deleting_waits_for_an_answer_being_written(alice_client, alice, assistant):
    thread_last_active(alice, assistant, days_ago=0, status=RunStatus.IN_PROGRESS)
    response = alice_client.post("/account/delete/", {"confirm": "alice"})
    assert response.status_code == 409
    assert "An answer is still being written" in response.content.decode()
    assert Thread.objects.filter(owner=alice).count() == 1


def test_deleting_refuses_a_post_without_csrf(alice, assistant):
    thread_last_active(alice, assistant, days_ago=1)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post("/account/delete/", {"confirm": "alice"}).status_code == 403
    assert Thread.objects.filter(owner=alice).count() == 1
