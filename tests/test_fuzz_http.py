"""No request of any shape gets a 500: Hypothesis throws generated bodies at every POST and
JSON endpoint (JSON of any shape and depth, forms, raw bytes, any content type, NUL
characters and lone surrogates, ids of any size) as a logged-in user, and every answer must
be below 500. Examples are bounded so the suite stays fast; a failure prints the request."""

import json
from urllib.parse import quote_from_bytes

import pytest
import respx
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistants_app.models import Thread

from .conftest import PROVIDER_URL

pytestmark = pytest.mark.django_db

EXAMPLES = 80
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # The fixtures (users, threads, the mocked provider) are meant to be shared by examples.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Any code point, lone surrogates and NUL included (Hypothesis leaves surrogates out unless
# asked), with the troublemakers drawn often.
ANY_CHARACTER = st.characters(exclude_categories=()) | st.sampled_from(["\x00", "\ud800", "\udfff"])
TEXT = st.text(ANY_CHARACTER, max_size=40)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=20,
)
MESSAGE_JSON = st.fixed_dictionaries({}, optional={"text": JSON_VALUES, "assistant": JSON_VALUES})


def as_json(value) -> bytes:
    return json.dumps(value).encode()  # lone surrogates go out as \ud800 escapes, as in JS


def as_form(fields: dict) -> bytes:
    def encode(text: str) -> str:
        return quote_from_bytes(text.encode("utf-8", "surrogatepass"))

    return "&".join(f"{encode(k)}={encode(v)}" for k, v in fields.items()).encode()


def nested(depth: int) -> bytes:
    if depth % 2:
        return ("[" * depth + "]" * depth).encode()
    return ('{"text":' * depth + "1" + "}" * depth).encode()


BODIES = st.one_of(
    st.tuples(st.just("application/json"), st.fixed_dictionaries({"text": TEXT}).map(as_json)),
    st.tuples(st.just("application/json"), JSON_VALUES.map(as_json)),
    st.tuples(st.just("application/json"), MESSAGE_JSON.map(as_json)),
    st.tuples(st.just("application/json"), st.integers(1, 200_000).map(nested)),
    st.tuples(
        st.just("application/x-www-form-urlencoded"),
        st.dictionaries(st.sampled_from(["text", "title", "assistant", "q"]) | TEXT, TEXT).map(
            as_form
        ),
    ),
    st.tuples(
        st.sampled_from(
            [
                "application/json",
                "application/json; charset=latin-1",
                "text/plain",
                "",
                "application/x-www-form-urlencoded",
                "multipart/form-data",
                "multipart/form-data; boundary=x",
            ]
        ),
        st.binary(max_size=200),
    ),  # fmt: skip
)
THREAD_ACTIONS = ["messages/", "cancel/", "retry/", "rename/", "delete/"]


@pytest.fixture
def fuzzing(settings, alice, bob, assistant):
    """Alice logged in, with no fair-use limits in the way; every provider call fails at once
    (a message that is accepted starts a run that fails; nothing leaves the machine)."""
    settings.MESSAGES_PER_MINUTE = settings.CONCURRENT_RUNS = settings.DAILY_TOKEN_BUDGET = 0
    client = Client()
    client.force_login(alice)
    bobs = Thread.objects.create(owner=bob, assistant=assistant)
    with respx.mock(using="httpx", base_url=PROVIDER_URL, assert_all_called=False) as provider:
        provider.route().respond(500, json={"error": {"message": "down", "type": "server_error"}})
        yield client, alice, bobs, assistant


def alices_thread(alice, assistant) -> Thread:
    """Her thread, made again if an example deleted it."""
    return Thread.objects.filter(owner=alice).first() or Thread.objects.create(
        owner=alice, assistant=assistant
    )


@FUZZ
@given(
    body=BODIES,
    target=st.sampled_from(["alice", "alice", "alice", "bob", "huge", "zero"]),
    action=st.sampled_from(THREAD_ACTIONS),
)
def test_no_post_to_a_thread_gets_a_500(fuzzing, body, target, action):
    client, alice, bobs, assistant = fuzzing
    thread_id = {
        "alice": alices_thread(alice, assistant).pk, "bob": bobs.pk, "huge": 2**70, "zero": 0,
    }[target]  # fmt: skip
    content_type, data = body

    response = client.generic("POST", f"/threads/{thread_id}/{action}", data, content_type)

    assert response.status_code < 500, (action, body, response.content[:300])
    if target != "alice":  # never anyone else's thread, whatever is sent
        assert response.status_code in (400, 404), (action, body)


@FUZZ
@given(body=BODIES)
def test_no_new_thread_request_gets_a_500(fuzzing, body):
    client, *_ = fuzzing
    content_type, data = body
    response = client.generic("POST", "/threads/new/", data, content_type)
    assert response.status_code < 500, (body, response.content[:300])


@FUZZ
@given(query=st.dictionaries(st.sampled_from(["q", "page"]) | TEXT, TEXT, max_size=3))
def test_no_search_gets_a_500(fuzzing, query):
    client, *_ = fuzzing
    response = client.get("/?" + as_form(query).decode())
    assert response.status_code < 500, (query, response.content[:300])


@FUZZ
@given(body=BODIES, url=st.sampled_from(["/login/", "/signup/", "/logout/"]))
def test_no_post_to_the_account_pages_gets_a_500(settings, alice, body, url):
    settings.SIGNUP_ENABLED = True
    content_type, data = body
    response = Client().generic("POST", url, data, content_type)
    assert response.status_code < 500, (url, body, response.content[:300])
