"""The checks every post passes before a view acts, through Django's async handler as daphne
runs it: signed in (signed_in.py) and CSRF (middleware.CsrfViewMiddleware). Both run on the
event loop now, not on a thread; these say they still refuse what they refused."""

import pytest
import respx
from django.test import AsyncClient

from assistants_app import middleware
from assistants_app.models import Message

from .conftest import PROVIDER_URL
from .provider_payloads import conversation, response

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def provider():
    with respx.mock(using="httpx", base_url=PROVIDER_URL, assert_all_called=False) as provider:
        provider.post("/conversations").respond(json=conversation())
        provider.post("/responses").respond(json=response("queued"))
        provider.get(url__regex=r"/responses/").respond(json=response("completed", text="Hi!"))
        yield provider


async def signed_in(user) -> tuple[AsyncClient, str]:
    """A browser of `user` that checks CSRF as a real one is checked, and its CSRF token."""
    client = AsyncClient(enforce_csrf_checks=True)
    await client.aforce_login(user)
    page = await client.get("/")  # the chat page, whose composer is a form, sets the cookie
    assert page.status_code == 200
    return client, client.cookies["csrftoken"].value


def messages_url(thread) -> str:
    return f"/threads/{thread.pk}/messages/"


async def stored_texts(thread) -> list[str]:
    return [m.text async for m in Message.objects.filter(thread=thread)]


async def test_a_post_with_the_token_is_taken(alice, alice_thread, provider):
    client, token = await signed_in(alice)

    answer = await client.post(
        messages_url(alice_thread), {"text": "Hello"}, "application/json",
        headers={"X-CSRFToken": token},
    )  # fmt: skip

    assert answer.status_code == 201
    assert "Hello" in await stored_texts(alice_thread)


@pytest.mark.parametrize(
    "how",
    [
        {"content_type": "application/json", "data": {"text": "Hello"}},
        {"content_type": "application/x-www-form-urlencoded", "data": "text=Hello"},
        {"data": {"text": "Hello"}},  # multipart, as a form with files is sent
    ],
    ids=["json", "form", "multipart"],
)
async def test_a_post_without_the_token_is_refused_and_stores_nothing(
    alice, alice_thread, provider, how
):
    client, _ = await signed_in(alice)

    answer = await client.post(messages_url(alice_thread), **how)

    assert answer.status_code == 403
    assert await stored_texts(alice_thread) == []


async def test_a_form_post_with_its_token_in_the_form_is_taken(alice, alice_thread, provider):
    client, token = await signed_in(alice)

    answer = await client.post(
        messages_url(alice_thread), {"text": "Hello", "csrfmiddlewaretoken": token},
        headers={"Accept": "text/html"},
    )  # fmt: skip

    assert answer.status_code == 302  # back to the thread, as a form post without JavaScript
    assert "Hello" in await stored_texts(alice_thread)


async def test_a_post_from_another_site_is_refused_even_with_a_token(
    alice, alice_thread, provider
):
    client, token = await signed_in(alice)

    answer = await client.post(
        messages_url(alice_thread), {"text": "Hello"}, "application/json",
        headers={"X-CSRFToken": token, "Origin": "https://evil.example"},
    )  # fmt: skip

    assert answer.status_code == 403
    assert await stored_texts(alice_thread) == []


@pytest.mark.parametrize("path", ["messages/", "cancel/", "retry/"])
async def test_someone_signed_out_is_sent_to_log_in_and_nothing_happens(
    alice_thread, provider, path
):
    client = AsyncClient()  # no session, and no CSRF check in the way of the sign-in check

    answer = await client.post(f"/threads/{alice_thread.pk}/{path}", {"text": "Hello"})

    assert answer.status_code == 302
    assert answer["Location"].startswith("/login/?next=")
    assert await stored_texts(alice_thread) == []


async def test_a_thread_not_theirs_answers_as_one_that_does_not_exist(bob, alice_thread, provider):
    client, token = await signed_in(bob)

    for text in ("Hello", ""):  # an empty message too
        answers = [
            await client.post(
                f"/threads/{pk}/messages/", {"text": text}, "application/json",
                headers={"X-CSRFToken": token},
            )  # fmt: skip
            for pk in (alice_thread.pk, alice_thread.pk + 1000)
        ]
        assert answers[0].status_code == answers[1].status_code != 201
        if answers[0].status_code != 404:  # (a 404 page names the path asked for)
            assert answers[0].content == answers[1].content
    assert await stored_texts(alice_thread) == []


def test_a_site_without_our_csrf_middleware_is_warned(settings):
    assert middleware.check_csrf_middleware() == []

    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != middleware.CSRF_MIDDLEWARE]

    assert [warning.id for warning in middleware.check_csrf_middleware()] == ["assistants_app.W003"]
