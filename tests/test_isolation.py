"""Each user in their own room, tested from the outside: every URL of the site and every
websocket route, as an anonymous visitor and as bob reaching for alice's things.

The routes are read from the URL configuration, not listed here, so a view added later
without a login check or without scoping its object to the user fails this suite.
"""

import re
from datetime import timedelta

import pytest
import respx
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from assistants_app.models import (
    Assistant,
    Attachment,
    KnowledgeDocument,
    Message,
    Run,
    RunStatus,
    SharedLink,
    Thread,
    ToolStep,
)
from assistants_app.routing import websocket_urlpatterns

from .sockets import refusal

# Views anyone may open, by URL name. Everything else must send anonymous visitors to log in.
PUBLIC_VIEWS = {"login", "logout", "signup", "sso-start", "sso-callback"}  # sso: signing in
# Admin checks staff itself (tests/test_accounts.py); static files are not in the URLconf.
SKIPPED_PREFIXES = ("admin/",)

# Alice's thread, message and run all share one id, and bob's another, so whatever a URL's
# id names (a thread, a run, a message), bob asking for ALICE_ID asks for something of hers.
ALICE_ID = 4242
BOB_ID = 4343
UNKNOWN_ID = 999_999
OBJECT_KWARGS = {"pk", "thread_id", "run_id", "message_id", "file_id", "step_id"}
# A share link's token is the key itself: who holds it may read (tests/test_sharing.py).
KEY_KWARGS = {"token"}
# Placeholders that name no object, and the value the walk gives them.
FIXED_KWARGS = {"decision": "approve"}
METHODS = ("get", "post")
PLACEHOLDER = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")


def walk(patterns, prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            assert isinstance(pattern, URLPattern)
            yield prefix + str(pattern.pattern), pattern


def site_routes() -> list[tuple[str, URLPattern]]:
    return [
        (route, pattern)
        for route, pattern in walk(get_resolver("chatsite.urls").url_patterns)
        if not route.startswith(SKIPPED_PREFIXES) and pattern.name not in PUBLIC_VIEWS
    ]


def object_routes(routes) -> list[str]:
    return [route for route, _ in routes if kwarg_names(route) & OBJECT_KWARGS]


def kwarg_names(route: str) -> set[str]:
    return {match["name"] for match in PLACEHOLDER.finditer(route)}


def url_for(route: str, object_id: int) -> str:
    """The route with every placeholder filled with `object_id`."""
    assert "^" not in route, f"{route}: a regex route; teach this walk to fill it"

    def fill(match):
        assert match["converter"] in (None, "int", "str", "slug", "path"), (
            f"{route}: teach this walk to make a <{match['converter']}:...> value"
        )
        if match["name"] in KEY_KWARGS:
            return f"key-of-{object_id}"
        if match["name"] in FIXED_KWARGS:
            return FIXED_KWARGS[match["name"]]
        assert match["name"] in OBJECT_KWARGS, (
            f"{route}: teach this walk which object <{match['name']}> names"
        )
        return str(object_id)

    return "/" + PLACEHOLDER.sub(fill, route)


ROUTES = site_routes()
OBJECT_ROUTES = object_routes(ROUTES)
SOCKET_ROUTES = [route for route, _ in walk(websocket_urlpatterns)]


@pytest.fixture
def rooms(alice, bob, assistant, settings, tmp_path):
    """Alice's and bob's thread, message and run, each with their owner's id; and hers, a
    file on her message and a document of an assistant only she may use (the same id)."""
    settings.MEDIA_ROOT = tmp_path
    hers = Group.objects.create(name="alice's team")
    alice.groups.add(hers)
    private = Assistant.objects.create(name="Private", provider="test", model="m")
    private.groups.add(hers)
    KnowledgeDocument.objects.create(
        pk=ALICE_ID, assistant=private, name="plans.md", content_type="text/markdown", size=5,
        remote_file_id=str(ALICE_ID), file=ContentFile(b"plans", name="plans.md"),
    )  # fmt: skip
    for owner, object_id in ((alice, ALICE_ID), (bob, BOB_ID)):
        thread = Thread.objects.create(
            pk=object_id, owner=owner, assistant=assistant, title=f"{owner}'s secret"
        )
        prompt = Message.objects.create(
            pk=object_id, thread=thread, role=Message.Role.USER, text=f"{owner}'s question"
        )
        run = Run.objects.create(
            pk=object_id, thread=thread, prompt=prompt, status=RunStatus.COMPLETED, total_tokens=9
        )
        Attachment.objects.create(
            pk=object_id, owner=owner, message=prompt, name="a.png", kind="image",
            content_type="image/png", size=5, file=ContentFile(b"image", name="a.png"),
            thumbnail=ContentFile(b"thumb", name="t.png"),
        )  # fmt: skip
        SharedLink.objects.create(
            pk=object_id, thread=thread, token=f"key-of-{object_id}", title=thread.title,
            message_ids=[prompt.pk],
        )  # fmt: skip
        ToolStep.objects.create(
            pk=object_id, run=run, call_id="call", tool="web__echo", state="awaiting_approval",
            expires_at=timezone.now() + timedelta(minutes=5),
        )  # fmt: skip


def snapshot():
    return (
        list(Thread.objects.values_list("pk", "owner_id", "title")),
        list(Message.objects.values_list("pk", "thread_id", "text")),
        list(Run.objects.values_list("pk", "thread_id", "status")),
        list(Attachment.objects.values_list("pk", "message_id", "file")),
        list(KnowledgeDocument.objects.values_list("pk", "assistant_id", "file")),
        list(SharedLink.objects.values_list("pk", "thread_id", "token")),
        list(ToolStep.objects.values_list("pk", "run_id", "state")),
    )


def test_the_walk_finds_the_sites_views():
    routes = {route for route, _ in ROUTES}
    assert {"", "threads/new/", "threads/<int:pk>/", "threads/<int:pk>/messages/"} <= routes
    assert "threads/<int:pk>/messages/" in OBJECT_ROUTES
    assert SOCKET_ROUTES == ["ws/threads/<int:thread_id>/"]


@pytest.mark.parametrize("route", [route for route, _ in ROUTES])
@pytest.mark.parametrize("method", ["get", "post"])
def test_it_sends_anonymous_visitors_to_log_in(rooms, route, method):
    url = url_for(route, ALICE_ID)
    response = getattr(Client(), method)(url)
    assert response.status_code == 302, f"{method.upper()} {url}"
    assert response["Location"].startswith(resolve_url(settings.LOGIN_URL) + "?next=")


@pytest.mark.parametrize("route", OBJECT_ROUTES)
def test_bob_gets_404_for_anything_of_alices(rooms, alice_client, bob_client, route):
    before = snapshot()
    with respx.mock(using="httpx"):  # nothing may reach a provider while walking
        for object_id in (ALICE_ID, UNKNOWN_ID):
            url = url_for(route, object_id)
            statuses = {method: getattr(bob_client, method)(url).status_code for method in METHODS}
            # A method the view does not take may say so (405); the one it takes must say 404.
            assert set(statuses.values()) <= {404, 405}, f"bob on {url}: {statuses}"
            assert 404 in statuses.values(), f"bob on {url}: {statuses}"
        assert snapshot() == before, "bob's requests changed something"

        # The same requests find something for the owner: bob's 404 was the ownership check.
        url = url_for(route, ALICE_ID)
        refused = [
            method for method in METHODS if getattr(bob_client, method)(url).status_code == 404
        ]
        statuses = {method: getattr(alice_client, method)(url).status_code for method in refused}
        assert set(statuses.values()) != {404}, f"alice on {url}: {statuses}"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("route", SOCKET_ROUTES)
async def test_it_refuses_sockets_to_anonymous_visitors_and_to_others(
    rooms, alice_cookie, bob_cookie, route
):
    alices, unknown = url_for(route, ALICE_ID), url_for(route, UNKNOWN_ID)

    assert await refusal(alices) == 4401
    assert await refusal(alices, bob_cookie) == 4404
    assert await refusal(unknown, bob_cookie) == 4404
    assert await refusal(alices, alice_cookie) is None
