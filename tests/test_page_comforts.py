"""Small things a person notices: the site's own 404 page in the default (debug) run, the
username kept after a failed login, the socket's heartbeat, the admin in the site's name."""

import asyncio

import pytest
from django.urls import reverse

from assistants_app import consumers

from .test_consumer import communicator_for


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/no-such-page/", "/threads/999999/"])
def test_a_missing_page_is_the_sites_own_even_in_debug_mode(alice_client, settings, path):
    settings.DEBUG = True  # the README's default run
    response = alice_client.get(path)
    assert response.status_code == 404
    page = response.content.decode()
    assert "Back to my chats" in page
    assert "URLconf" not in page and "DEBUG = True" not in page  # not Django's debug page
    assert response["Content-Security-Policy"]


@pytest.mark.django_db
def test_the_username_stays_after_a_failed_login(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    page = response.content.decode()
    assert 'name="username" autocomplete="username" required value="alice">' in page
    assert 'autocomplete="current-password" required autofocus>' in page  # type it again


@pytest.mark.django_db
def test_a_username_is_escaped_when_kept(client):
    response = client.post(reverse("login"), {"username": '"><script>x', "password": "wrong"})
    assert "<script>x" not in response.content.decode()


@pytest.mark.django_db(transaction=True)
async def test_the_socket_sends_heartbeats_while_open(alice, alice_thread, monkeypatch):
    monkeypatch.setattr(consumers, "HEARTBEAT_SECONDS", 0.05)
    communicator = await communicator_for(alice_thread, alice)
    connected, _ = await communicator.connect()
    assert connected
    beats = [await communicator.receive_json_from(timeout=2) for _ in range(3)]
    assert beats == [{"type": "heartbeat"}] * 3
    await communicator.disconnect()
    await asyncio.sleep(0.1)  # a beat after closing would raise in the task: none does


@pytest.mark.django_db
def test_admin_pages_carry_the_sites_name_and_link_the_provider_status(staff_client):
    page = staff_client.get(reverse("admin:index")).content.decode()
    assert "Assistants · administration" in page
    assert "<title>Assistants, chats and usage | Assistants admin</title>" in page
    status_url = reverse("admin:assistants_app_provider_status")
    assert f'<a href="{status_url}">Provider status</a>' in page
