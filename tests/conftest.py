"""Fixtures every test shares: two users (alice and bob), an assistant on a mocked provider."""

import itertools
import sys

import httpx
import pytest
import respx
from channels.db import aclose_old_connections
from django.core.cache import cache
from django.test import Client

from assistants_app import config_cache, runs
from assistants_app.engines import capabilities
from assistants_app.models import Assistant, EngineKind, Message, Run, Thread

from .provider_payloads import CONVERSATION_ID, RESPONSE_ID, conversation, response
from .sockets import session_cookie

PROVIDER_URL = "https://provider.test/v1"


@pytest.fixture(autouse=True)
def polling_by_default(settings):
    """Provider mocks answer polls unless a test asks for `streaming`; the real-process tests
    stream, as the site does by default."""
    settings.RUN_STREAMING = False


@pytest.fixture
def streaming(settings):
    settings.RUN_STREAMING = True
    settings.STREAM_DELTA_SECONDS = 0.05


@pytest.fixture(autouse=True)
def stdio_servers_allowed(settings):
    """The operator lets staff run the tests' stdio MCP servers (python -m ...), and one
    that is not there (MCP_STDIO_COMMANDS); tests of the refusal change this."""
    settings.MCP_STDIO_COMMANDS = [sys.executable, "/nonexistent/mcp-server"]


@pytest.fixture(autouse=True)
def test_provider(settings):
    """A provider whose HTTP the tests mock with respx at PROVIDER_URL."""
    settings.ASSISTANT_PROVIDERS = {
        **settings.ASSISTANT_PROVIDERS,
        "test": {
            "base_url": PROVIDER_URL,
            "api_key": "sk-test",
            "label": "Test",
            "simulated": False,
        },
    }
    return settings.ASSISTANT_PROVIDERS["test"]


OPENAI_LIKE = {
    "responses": True,
    "conversations": True,
    "background": True,
    "streamed_retrieve": True,
    "cancel": True,
    "previous_response_id": True,
}


@pytest.fixture(autouse=True)
def known_capabilities():
    """The test provider is known to offer what OpenAI does, so runs ask it nothing more; a
    test of another kind of provider changes this (engines/capabilities.py)."""
    capabilities.forget()
    capabilities._known["test"] = capabilities.Capabilities(**OPENAI_LIKE)
    yield capabilities._known["test"]
    capabilities.forget()


@pytest.fixture(autouse=True)
def fresh_cache():
    """Fair-use counters start at zero in every test (tests always use the in-memory cache),
    and no price read by an earlier test (rolled back with its database) is remembered."""
    cache.clear()
    config_cache.clear_all()


@pytest.fixture
def provider_mock():
    """The test provider's HTTP, mocked strictly: an unexpected request fails the test."""
    with respx.mock(using="httpx", base_url=PROVIDER_URL, assert_all_called=True) as mock:
        yield mock


@pytest.fixture
def answering_provider():
    """A Responses provider that answers every run "Hi!" (polled), each run its own response
    id and its answer its own message id, as a real one does."""
    created = itertools.count(1)

    def create(request):
        return httpx.Response(200, json={**response("queued"), "id": f"resp_{next(created)}"})

    def retrieve(request):
        response_id = request.url.path.rsplit("/", 1)[-1]
        answer = response("completed", text="Hi!")
        answer["output"][0]["id"] = f"msg_{response_id}"
        return httpx.Response(200, json={**answer, "id": response_id})

    with respx.mock(using="httpx", base_url=PROVIDER_URL) as provider:
        provider.post("/conversations").respond(json=conversation())
        provider.post("/responses").mock(side_effect=create)
        provider.get(url__regex=r"/responses/resp_\d+$").mock(side_effect=retrieve)
        yield provider


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-password")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="bob-password")


def make_assistant(**fields) -> Assistant:
    """An assistant on the mocked provider; `fields` override the defaults."""
    defaults = {
        "name": "Helper",
        "instructions": "Answer briefly.",
        "model": "gpt-test",
        "engine": EngineKind.RESPONSES,
        "provider": "test",
    }
    return Assistant.objects.create(**{**defaults, **fields})


@pytest.fixture
def assistant(db):
    return make_assistant()


@pytest.fixture
def chat_assistant(db):
    return make_assistant(name="Chatter", model="llama-test", engine=EngineKind.CHAT)


@pytest.fixture
def alice_chat_thread(alice, chat_assistant):
    return Thread.objects.create(owner=alice, assistant=chat_assistant)


@pytest.fixture
def alice_thread(alice, assistant):
    return Thread.objects.create(owner=alice, assistant=assistant)


@pytest.fixture
def bob_thread(bob, assistant):
    return Thread.objects.create(owner=bob, assistant=assistant)


@pytest.fixture
def started_run(alice_thread):
    """A Responses run the provider has accepted (the state a view leaves it in)."""
    alice_thread.remote_id = CONVERSATION_ID
    alice_thread.save()
    prompt = Message.objects.create(thread=alice_thread, role="user", text="Hi")
    return Run.objects.create(thread=alice_thread, prompt=prompt, remote_id=RESPONSE_ID)


@pytest.fixture
def staff_client(django_user_model):
    """Carol, who runs the site: a superuser logged in to admin."""
    carol = django_user_model.objects.create_superuser("carol", password="carol-password")
    client = Client()
    client.force_login(carol)
    return client


@pytest.fixture
def alice_client(alice):
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(bob):
    client = Client()
    client.force_login(bob)
    return client


@pytest.fixture
def alice_cookie(alice):
    """Alice's session as a websocket's Cookie header (see tests/sockets.py)."""
    return session_cookie(alice)


@pytest.fixture
def bob_cookie(bob):
    return session_cookie(bob)


@pytest.fixture
async def stop_drivers(django_db_blocker):
    """Async tests end with no driver task left running into the next test, and with the
    connection of asgiref's shared thread (the async ORM's) back in PostgreSQL's pool: the
    site's own calls run elsewhere (assistants_app/db.py), so nothing else closes it."""
    yield
    await runs.stop_driving()
    with django_db_blocker.unblock():  # tests without the database may follow one with it
        await aclose_old_connections()


# A wrapper, to act both before and after the other plugins' hooks: pytest-xdist's reads the
# xdist_group marks (a plain hook here would run after it, and the marks would do nothing),
# and pytest-django's sorts the tests its own way (a sort before it would be undone).
@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("asyncio"):
            item.fixturenames.append("stop_drivers")
    worker = hasattr(config, "workerinput")  # a pytest-xdist worker (the README's `-n`)
    if worker:
        share_module_fixtures(items)
    yield
    if worker:
        if config.getvalue("loadgroup"):
            keep_groups_in_ids(items)
        # The long tests first, so the short ones fill the workers' gaps at the end instead
        # of one worker finishing a long test alone. (A stable sort: Django's order stays.)
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def share_module_fixtures(items) -> None:
    """Tests that share a module-scoped fixture (a site, a browser) run on one worker, so it
    starts once (`--dist loadgroup`); the others are dealt out one by one."""
    for item in items:
        shared = any(
            definitions[-1].scope in ("module", "package", "class")
            for name, definitions in item._fixtureinfo.name2fixturedefs.items()
            if not name.startswith("_")  # pytest-django's autouse class fixture is inert here
        )
        if shared and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


def keep_groups_in_ids(items) -> None:
    """pytest-xdist (3.8) tells its scheduler a test's group by appending "@group" to the test's
    id, which pytest 9.2 no longer lets it change (pytest-dev/pytest-xdist#1386): every test
    would be dealt out alone, and each module's site started on every worker. Until that is
    fixed, append it here, as pytest-xdist would; ids it did change are left alone."""
    for item in items:
        groups = sorted({str(mark.args[0]) for mark in item.iter_markers("xdist_group")})
        if groups and "@" not in item.nodeid:
            from _pytest.nodeid import coerce_node_id  # pytest 9.2's ids; older ones have "@"

            item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(groups)}")
