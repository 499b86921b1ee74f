"""Each engine continues from any path of the tree (branches.py): a plain follow-up goes on in
the provider conversation that holds its branch; an edit, a regenerate of an older answer or a
switched assistant seeds a new one with the path, or chains, or sends the path. The provider is
mocked strictly at the wire: the seeded items are what these tests read."""

import pytest
from asgiref.sync import sync_to_async

from assistants_app import services, versions
from assistants_app.models import (
    EngineKind,
    Message,
    ProviderConversation,
    Run,
    RunStatus,
    Thread,
)
from tests.assistants_api import provider, remote_message, remote_run, sent
from tests.conftest import make_assistant
from tests.provider_payloads import conversation, response
from tests.test_tree import exchange

pytestmark = pytest.mark.django_db(transaction=True)

ITEM_CREATES = "/conversations/conv_new/items"


def item(role: str, text: str) -> dict:
    return {"type": "message", "role": role, "content": text}


FIRST_EXCHANGE = [item("user", "My name is Ann"), item("assistant", "Hello Ann")]


def load(thread: Thread) -> Thread:
    return Thread.objects.select_related("assistant").get(pk=thread.pk)


@pytest.fixture
def talk(alice, assistant):
    """Two exchanges on the Responses engine, held by the conversation conv_old."""
    thread = Thread.objects.create(owner=alice, assistant=assistant, remote_id="conv_old")
    q1, a1 = exchange(thread, "My name is Ann", "Hello Ann")
    q2, a2 = exchange(thread, "What is my name?", "Ann")
    Run.objects.filter(prompt=q1).update(remote_id="resp_1")
    Run.objects.filter(prompt=q2).update(remote_id="resp_2")
    ProviderConversation.objects.create(
        thread=thread, engine="responses", provider="test", remote_id="conv_old", tip=a2
    )
    return load(thread), (q1, a1), (q2, a2)


# --- Responses with conversations ------------------------------------------------------


async def test_a_plain_follow_up_goes_on_in_its_branchs_conversation(alice, talk):
    thread, _, _ = talk
    with provider() as mock:  # strict: a new conversation would fail the test
        create = mock.post("/responses").respond(json=response("queued"))
        await services.submit_message(alice, thread, "And my surname?")
    assert (sent(create)["conversation"], sent(create)["input"]) == ("conv_old", "And my surname?")


async def test_an_edit_seeds_a_new_conversation_with_the_path_before_it(alice, talk):
    thread, _, (q2, a2) = talk
    with provider() as mock:
        created = mock.post("/conversations").respond(json=conversation("conv_new"))
        create = mock.post("/responses").respond(json=response("queued"))
        await versions.edit_message(alice, thread, q2.pk, "What is my surname?")

    assert sent(created)["items"] == FIRST_EXCHANGE
    assert sent(create)["conversation"] == "conv_new"
    assert sent(create)["input"] == "What is my surname?"
    # The old branch keeps its conversation: going back there and following up reuses it.
    old = await ProviderConversation.objects.aget(remote_id="conv_old")
    assert old.tip_id == a2.pk


async def test_a_follow_up_on_an_old_branch_goes_back_to_its_conversation(alice, talk):
    thread, _, (q2, a2) = talk
    with provider() as mock:
        mock.post("/conversations").respond(json=conversation("conv_new"))
        mock.post("/responses").respond(json=response("queued"))
        _, run = await versions.edit_message(alice, thread, q2.pk, "What is my surname?")
    await Run.objects.filter(pk=run.pk).aupdate(status=RunStatus.FAILED)
    await sync_to_async(versions.show_version)(alice, thread, q2.pk)  # back to "Ann"

    with provider() as mock:
        create = mock.post("/responses").respond(json=response("queued"))
        await services.submit_message(alice, await sync_to_async(load)(thread), "Thanks")
    assert sent(create)["conversation"] == "conv_old"


async def test_a_long_path_is_seeded_twenty_items_at_create_and_the_rest_in_batches(alice, talk):
    thread, _, _ = talk
    for n in range(20):  # 2 + 20 exchanges: 44 messages
        await sync_to_async(exchange)(thread, f"Question {n}", f"Answer {n}")
    last = await Message.objects.filter(thread=thread, text="Question 19").aget()
    with provider() as mock:
        created = mock.post("/conversations").respond(json=conversation("conv_new"))
        added = mock.post(ITEM_CREATES).respond(json={"object": "list", "data": []})
        mock.post("/responses").respond(json=response("queued"))
        await versions.edit_message(alice, thread, last.pk, "Question 19, edited")

    batches = [sent(created)["items"], *(sent(added, n)["items"] for n in range(added.call_count))]
    assert [len(batch) for batch in batches] == [20, 20, 2]  # the 42 messages before the edit
    seeded = [entry["content"] for batch in batches for entry in batch]
    assert seeded[:2] == ["My name is Ann", "Hello Ann"]
    assert seeded[-2:] == ["Question 18", "Answer 18"]


# --- Responses without conversations: chained, or sent whole --------------------------


async def test_a_regenerate_of_an_older_answer_chains_to_the_response_before_it(
    alice, talk, known_capabilities
):
    known_capabilities.conversations = False
    thread, (q1, a1), (q2, a2) = talk
    await Thread.objects.filter(pk=thread.pk).aupdate(remote_id="")
    await ProviderConversation.objects.all().adelete()
    thread = await sync_to_async(load)(thread)
    with provider() as mock:
        create = mock.post("/responses").respond(json=response("queued"))
        await versions.edit_message(alice, thread, q2.pk, "Spell my name")

    body = sent(create)
    assert (body["previous_response_id"], body["input"]) == ("resp_1", "Spell my name")


async def test_a_provider_that_keeps_nothing_is_sent_the_edited_path_as_input(
    alice, talk, known_capabilities
):
    known_capabilities.conversations = known_capabilities.previous_response_id = False
    thread, _, (q2, _) = talk
    await Thread.objects.filter(pk=thread.pk).aupdate(remote_id="")
    await ProviderConversation.objects.all().adelete()
    thread = await sync_to_async(load)(thread)
    with provider() as mock:
        create = mock.post("/responses").respond(json=response("queued"))
        await versions.edit_message(alice, thread, q2.pk, "Spell my name")

    assert sent(create)["input"] == [
        {"role": "user", "content": "My name is Ann"},
        {"role": "assistant", "content": "Hello Ann"},
        {"role": "user", "content": "Spell my name"},
    ]


# --- Assistants ------------------------------------------------------------------------


def remote_thread() -> dict:
    return {"id": "thread_1", "object": "thread", "created_at": 1, "metadata": {}}


@pytest.fixture
def classic_talk(alice):
    classic = make_assistant(name="Classic", engine=EngineKind.ASSISTANTS, remote_id="asst_1")
    thread = Thread.objects.create(owner=alice, assistant=classic, remote_id="thread_old")
    q1, a1 = exchange(thread, "My name is Ann", "Hello Ann")
    q2, a2 = exchange(thread, "What is my name?", "Ann")
    q2.remote_id = "msg_old"  # added to the old provider thread
    q2.save()
    ProviderConversation.objects.create(
        thread=thread, engine="assistants", provider="test", remote_id="thread_old", tip=a2
    )
    return load(thread), (q1, a1), (q2, a2)


async def test_an_edit_on_the_assistants_engine_seeds_a_new_provider_thread(alice, classic_talk):
    thread, _, (q2, _) = classic_talk
    with provider() as mock:
        created = mock.post("/threads").respond(json=remote_thread())
        added = mock.post("/threads/thread_1/messages").respond(
            json=remote_message("x", "msg_new", role="user")
        )
        started = mock.post("/threads/thread_1/runs").respond(json=remote_run())
        await versions.edit_message(alice, thread, q2.pk, "What is my surname?")

    assert sent(created)["messages"] == [
        {"role": "user", "content": "My name is Ann"},
        {"role": "assistant", "content": "Hello Ann"},
    ]
    assert sent(added) == {"role": "user", "content": "What is my surname?"}
    assert started.called


async def test_a_regenerate_on_the_assistants_engine_adds_the_prompt_to_the_new_thread(
    alice, classic_talk
):
    thread, _, (q2, a2) = classic_talk
    with provider() as mock:
        created = mock.post("/threads").respond(json=remote_thread())
        added = mock.post("/threads/thread_1/messages").respond(
            json=remote_message("x", "msg_new", role="user")
        )
        mock.post("/threads/thread_1/runs").respond(json=remote_run())
        await versions.regenerate(alice, thread, a2.pk)

    assert len(sent(created)["messages"]) == 2
    # The prompt was in the old provider thread; it is added to the new one all the same.
    assert sent(added)["content"] == "What is my name?"


# --- Switching between engines ---------------------------------------------------------


async def test_a_thread_goes_on_with_its_history_whichever_engine_answers_next(
    alice, alice_chat_thread
):
    await sync_to_async(exchange)(alice_chat_thread, "My name is Ann", "Hello Ann")
    responses = await sync_to_async(make_assistant)(name="Responder")
    classic = await sync_to_async(make_assistant)(
        name="Classic", engine=EngineKind.ASSISTANTS, remote_id="asst_1"
    )

    thread = await sync_to_async(versions.switch_assistant)(alice, alice_chat_thread, responses.pk)
    with provider() as mock:
        created = mock.post("/conversations").respond(json=conversation("conv_new"))
        mock.post("/responses").respond(json=response("queued", text="Hi again"))
        _, run = await services.submit_message(alice, thread, "Who am I?")
    assert sent(created)["items"] == FIRST_EXCHANGE
    await Run.objects.filter(pk=run.pk).aupdate(status=RunStatus.COMPLETED)  # "Hi again" stored

    thread = await sync_to_async(versions.switch_assistant)(alice, thread, classic.pk)
    with provider() as mock:
        seeded = mock.post("/threads").respond(json=remote_thread())
        mock.post("/threads/thread_1/messages").respond(
            json=remote_message("x", "msg_new", role="user")
        )
        mock.post("/threads/thread_1/runs").respond(json=remote_run())
        _, run = await services.submit_message(alice, thread, "And now?")
    assert [m["content"] for m in sent(seeded)["messages"]] == [
        "My name is Ann", "Hello Ann", "Who am I?", "Hi again"
    ]  # fmt: skip
    assert (await Run.objects.aget(pk=run.pk)).assistant_id == classic.pk
