"""Fuzzing the thread websocket with Hypothesis: frames of any shape get an `error` event, the
events they ask for, or a clean close; never a crashed consumer or a failed handshake. Posts
of any shape (`message.send`) get one answer each, and store only what they say they stored."""

import json
from urllib.parse import quote

import pytest
import respx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistants_app.consumers import REF
from assistants_app.framing import Reassembler
from assistants_app.models import Message, Run, RunStatus

from .conftest import PROVIDER_URL
from .provider_payloads import conversation, response
from .sockets import communicator, refusal

pytestmark = pytest.mark.django_db(transaction=True)

# Bounded so the suite stays fast; no example database written into the work tree.
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SERVER_EVENTS = {"message.created", "message.delta", "run.status", "replay.more", "error"}
PROBE = '{"type": "probe"}'  # answered UNKNOWN_EVENT: everything before it has been handled

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
events = st.one_of(
    st.fixed_dictionaries({"type": st.just("hello")}, optional={"last_message_id": json_values}),
    st.dictionaries(st.sampled_from(["type", "last_message_id", "run_id"]), json_values),
    json_values,
)
texts = st.one_of(
    events.map(json.dumps),
    st.text(max_size=200),
    st.integers(1, 6000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(16_300, 16_500).map(lambda size: json.dumps({"type": "hello", "p": "x" * size})),
)
frames = st.one_of(
    texts.map(lambda text: {"text": text}),
    st.binary(max_size=200).map(lambda data: {"bytes": data}),
)


@pytest.fixture
def thread_with_history(alice_thread):
    Message.objects.create(thread=alice_thread, role="user", text="Hi")
    Message.objects.create(thread=alice_thread, role="assistant", text="Hello *there*")
    Run.objects.create(thread=alice_thread, status=RunStatus.COMPLETED)
    return alice_thread


@FUZZ
@given(sent=st.lists(frames, min_size=1, max_size=4))
async def test_no_frame_crashes_the_consumer(thread_with_history, alice_cookie, sent):
    socket = communicator(f"/ws/threads/{thread_with_history.pk}/", alice_cookie)
    assert (await socket.connect())[0]
    for frame in sent:  # as the server hands them over: empty ones too
        await socket.send_input({"type": "websocket.receive", **frame})
    await socket.send_to(text_data=PROBE)

    parts = Reassembler()
    while True:
        output = await socket.receive_output(timeout=5)  # raises what a crashed consumer raised
        if output["type"] == "websocket.close":
            assert output["code"] == 1009  # only a frame over the limit closes the socket
            break
        event = parts.feed(output["text"])
        if event is None:
            continue
        assert event["type"] in SERVER_EVENTS
        if event["type"] == "error":
            assert isinstance(event["code"], str) and isinstance(event["message"], str)
            if "'probe'" in event["message"]:
                break
    await socket.disconnect()


@FUZZ
@given(segment=st.text(max_size=30))
async def test_no_thread_path_fails_the_handshake(alice_thread, alice_cookie, segment):
    code = await refusal(f"/ws/threads/{quote(segment)}/", alice_cookie)
    assert code is None if segment == str(alice_thread.pk) else code == 4404


refs = st.one_of(st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True), json_values)
sends = st.fixed_dictionaries(
    {"type": st.just("message.send")},
    optional={
        "ref": refs,
        "text": st.one_of(st.text(max_size=40), json_values),
        "attachments": json_values,
    },
)


@pytest.fixture
def provider_still_answering():
    """Runs stay queued on the provider, its mock in place until the drivers have stopped."""
    with respx.mock(using="httpx", base_url=PROVIDER_URL, assert_all_called=False) as provider:
        provider.post("/conversations").respond(json=conversation())
        provider.post("/responses").respond(json=response("queued"))
        provider.get(url__regex=r"/responses/").respond(json=response("queued"))
        yield


@FUZZ
@given(sent=st.lists(sends, min_size=1, max_size=6))
async def test_every_message_send_is_answered_once_and_only_what_is_answered_sent_is_stored(
    alice_thread, alice_cookie, provider_still_answering, sent
):
    await Message.objects.filter(thread=alice_thread).adelete()
    await Run.objects.filter(thread=alice_thread).adelete()
    socket = communicator(f"/ws/threads/{alice_thread.pk}/", alice_cookie)
    assert (await socket.connect())[0]
    for event in sent:
        await socket.send_json_to(event)
    await socket.send_to(text_data=PROBE)
    answers = []
    while (event := await socket.receive_json_from(timeout=5)).get("code") != "UNKNOWN_EVENT":
        if event["type"] in ("message.sent", "error"):
            answers.append(event)
    await socket.disconnect()

    assert len(answers) == len(sent)
    for event, answer in zip(sent, answers, strict=True):
        proper_ref = isinstance(event.get("ref"), str) and REF.fullmatch(event["ref"])
        assert answer.get("ref") == (event["ref"] if proper_ref else None)
    stored = await Message.objects.filter(thread=alice_thread, role="user").acount()
    assert stored == sum(answer["type"] == "message.sent" for answer in answers) <= 1
