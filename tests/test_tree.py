"""The thread as a tree: parents, the current leaf, edit and resend, regenerate, versions and
what the page shows of them. Runs here use the Chat Completions engine, which starts without
calling the provider."""

import asyncio
import importlib

import pytest
from django.apps import apps
from django.urls import reverse

from assistants_app import conversation, runs, services, tree
from assistants_app.engines.base import RemoteMessage, RunUpdate
from assistants_app.history import load_history
from assistants_app.models import Message, Run, RunStatus, Thread

from .conftest import make_assistant

# Answers are stored by the driver's own database thread, as in the site.
pytestmark = pytest.mark.django_db(transaction=True)


def exchange(thread: Thread, question: str, answer: str) -> tuple[Message, Message]:
    """A question and its completed answer, as a run leaves them."""
    prompt = Message.objects.create(thread=thread, role="user", text=question)
    run = Run.objects.create(
        thread=thread, prompt=prompt, status=RunStatus.COMPLETED, assistant=thread.assistant
    )
    reply = Message.objects.create(thread=thread, role="assistant", text=answer, run=run)
    return prompt, reply


def post(client, name: str, thread: Thread, on: Message | None = None, **data):
    args = [thread.pk] + ([on.pk] if on else [])
    return client.post(reverse(name, args=args), data, content_type="application/json")


def shown(thread: Thread) -> list[str]:
    thread.refresh_from_db()
    return [message.text for message in tree.path(thread)]


def finish(run_id: int, text: str) -> None:
    """What the driver stores when the run's answer comes."""
    run = Run.objects.select_related("thread__assistant").get(pk=run_id)
    update = RunUpdate(RunStatus.COMPLETED, [RemoteMessage(f"chat-{run.pk}", text)])
    asyncio.run(runs.record(run, update))


@pytest.fixture
def talk(alice_chat_thread):
    """Two exchanges: the path the tests branch from."""
    first = exchange(alice_chat_thread, "My name is Ann", "Hello Ann")
    second = exchange(alice_chat_thread, "What is my name?", "Ann")
    return alice_chat_thread, first, second


def test_messages_follow_one_another_and_the_last_is_the_current_leaf(talk):
    thread, (q1, a1), (q2, a2) = talk
    assert [q1.parent_id, a1.parent_id, q2.parent_id, a2.parent_id] == [None, q1.pk, a1.pk, q2.pk]
    thread.refresh_from_db()
    assert thread.current_leaf_id == a2.pk
    assert shown(thread) == ["My name is Ann", "Hello Ann", "What is my name?", "Ann"]


def test_editing_a_message_keeps_the_old_branch_and_answers_from_the_path_before_it(
    alice_client, talk
):
    thread, (q1, a1), (q2, a2) = talk

    response = post(alice_client, "message-edit", thread, q2, text="What is my surname?")

    assert response.status_code == 201
    edited = Message.objects.get(pk=response.json()["message"]["id"])
    assert (edited.parent_id, edited.role) == (a1.pk, "user")  # a sibling of the old one
    assert shown(thread) == ["My name is Ann", "Hello Ann", "What is my surname?"]
    run = Run.objects.select_related("thread__assistant").get(pk=response.json()["run"]["id"])
    assert run.prompt_id == edited.pk
    sent = [(turn.role, turn.text) for turn in load_history(run, 10_000)]
    assert sent == [
        ("user", "My name is Ann"),
        ("assistant", "Hello Ann"),
        ("user", "What is my surname?"),
    ]
    assert Message.objects.filter(pk__in=[q2.pk, a2.pk]).count() == 2  # kept


def test_editing_the_first_message_starts_a_branch_at_the_root(alice_client, talk):
    thread, (q1, _), _ = talk

    response = post(alice_client, "message-edit", thread, q1, text="My name is Bob")

    edited = Message.objects.get(pk=response.json()["message"]["id"])
    assert edited.parent_id is None
    assert shown(thread) == ["My name is Bob"]
    assert tree.user_versions(edited) == [q1.pk, edited.pk]


def test_an_edit_is_refused_for_an_answer_or_empty_text(alice_client, talk):
    thread, (q1, a1), _ = talk
    assert post(alice_client, "message-edit", thread, a1, text="x").status_code == 404
    response = post(alice_client, "message-edit", thread, q1, text="   ")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "EMPTY_MESSAGE")
    assert Run.objects.filter(thread=thread).count() == 2  # nothing started


def test_regenerate_answers_the_same_message_again_beside_the_old_answer(alice_client, talk):
    thread, _, (q2, a2) = talk

    response = post(alice_client, "message-regenerate", thread, a2)

    assert response.status_code == 201
    run_id = response.json()["run"]["id"]
    assert Run.objects.get(pk=run_id).prompt_id == q2.pk
    assert shown(thread)[-1] == "What is my name?"  # the new answer is being written
    finish(run_id, "Your name is Ann")
    again = Message.objects.get(run_id=run_id)
    assert again.parent_id == q2.pk  # a sibling of the first answer
    assert shown(thread)[-1] == "Your name is Ann"
    answer = conversation.entries(thread)[0][-1]
    assert (answer["versions"]["index"], answer["versions"]["count"]) == (2, 2)
    assert answer["versions"]["prev"] == a2.pk


def test_the_page_shows_versions_and_switching_shows_that_branchs_later_messages(
    alice_client, talk
):
    thread, (q1, a1), (q2, a2) = talk
    run_id = post(alice_client, "message-edit", thread, q2, text="Spell it").json()["run"]["id"]
    finish(run_id, "A-N-N")
    page = alice_client.get(reverse("thread-detail", args=[thread.pk])).content.decode()
    assert '<span class="count">2/2</span>' in page
    assert "A-N-N" in page and ">Ann<" not in page

    response = post(alice_client, "version-show", thread, message=q2.pk)

    assert response.status_code == 200
    assert shown(thread) == ["My name is Ann", "Hello Ann", "What is my name?", "Ann"]
    page = alice_client.get(reverse("thread-detail", args=[thread.pk])).content.decode()
    assert '<span class="count">1/2</span>' in page
    assert "A-N-N" not in page


def test_an_answer_that_ends_after_the_user_moved_away_stays_on_its_branch(alice_client, talk):
    thread, _, (q2, a2) = talk
    run_id = post(alice_client, "message-regenerate", thread, a2).json()["run"]["id"]
    Thread.objects.filter(pk=thread.pk).update(current_leaf=a2)  # another tab showed v1

    finish(run_id, "Late answer")

    assert Message.objects.get(run_id=run_id).parent_id == q2.pk
    assert shown(thread)[-1] == "Ann"  # the page is not pulled to the new branch


def test_the_tree_does_not_change_while_an_answer_is_being_written(alice_client, talk):
    thread, (q1, a1), (q2, a2) = talk
    post(alice_client, "message-regenerate", thread, a2)  # a run is now active
    leaf = Thread.objects.get(pk=thread.pk).current_leaf_id

    for response in (
        post(alice_client, "version-show", thread, message=q1.pk),
        post(alice_client, "message-edit", thread, q2, text="Again"),
        post(alice_client, "message-regenerate", thread, a1),
    ):
        assert (response.status_code, response.json()["error"]["code"]) == (409, "RUN_ACTIVE")
    assert Thread.objects.get(pk=thread.pk).current_leaf_id == leaf
    assert Run.objects.filter(thread=thread).active().count() == 1


def test_bob_can_neither_edit_nor_regenerate_nor_switch_alices_thread(bob_client, talk):
    thread, (q1, a1), _ = talk
    before = (Message.objects.count(), Run.objects.count(), Thread.objects.get(pk=thread.pk))

    assert post(bob_client, "message-edit", thread, q1, text="mine now").status_code == 404
    assert post(bob_client, "message-regenerate", thread, a1).status_code == 404
    assert post(bob_client, "version-show", thread, message=q1.pk).status_code == 404
    assert post(bob_client, "message-feedback", thread, a1, rating=1).status_code == 404

    assert (Message.objects.count(), Run.objects.count()) == before[:2]


def test_a_message_of_another_thread_is_not_found(alice_client, alice, talk, chat_assistant):
    thread, _, _ = talk
    other = Thread.objects.create(owner=alice, assistant=chat_assistant)
    elsewhere, _ = exchange(other, "Elsewhere", "There")

    assert post(alice_client, "message-edit", thread, elsewhere, text="x").status_code == 404
    assert post(alice_client, "version-show", thread, message=elsewhere.pk).status_code == 404
    assert shown(thread)[-1] == "Ann"


def test_retry_after_a_failure_is_a_regenerate_shown_in_place(alice_client, talk):
    thread, _, _ = talk
    prompt = Message.objects.create(thread=thread, role="user", text="Tell a story")
    Run.objects.create(thread=thread, prompt=prompt, status=RunStatus.FAILED)

    response = alice_client.post(reverse("run-retry", args=[thread.pk]))

    run_id = response.json()["run"]["id"]
    finish(run_id, "Once upon a time")
    page = alice_client.get(reverse("thread-detail", args=[thread.pk])).content.decode()
    assert page.count('<li class="message assistant"') == 3  # not stacked under the failure
    assert "Once upon a time" in page
    assert shown(thread)[-2:] == ["Tell a story", "Once upon a time"]


def test_an_answer_that_failed_with_nothing_and_was_written_past_stays_a_version(
    alice_client, talk
):
    """The answer failed with no text, the person wrote on, and later regenerated it: both
    branches stay reachable from the answer's `< 1/2 >`."""
    thread, _, _ = talk
    story = Message.objects.create(thread=thread, role="user", text="Tell a story")
    Run.objects.create(thread=thread, prompt=story, status=RunStatus.FAILED)
    later, _ = exchange(thread, "Anyone there?", "Yes, sorry")
    assert later.parent_id == story.pk  # the thread went on from the question itself

    run_id = post(alice_client, "message-regenerate", thread, story).json()["run"]["id"]
    finish(run_id, "Once upon a time")

    assert shown(thread)[-2:] == ["Tell a story", "Once upon a time"]
    answer = conversation.entries(thread)[0][-1]
    assert (answer["versions"]["index"], answer["versions"]["count"]) == (2, 2)
    assert answer["versions"]["prev"] == later.pk
    post(alice_client, "version-show", thread, message=later.pk)
    assert shown(thread)[-3:] == ["Tell a story", "Anyone there?", "Yes, sorry"]
    failed = conversation.entries(thread)[0][-3]  # the failed answer, where it was
    assert failed["run"].status == RunStatus.FAILED
    assert (failed["versions"]["index"], failed["versions"]["next"]) == (
        1, Message.objects.get(run_id=run_id).pk
    )


def test_switching_assistant_marks_the_place_and_the_next_run_goes_to_it(alice_client, talk):
    thread, _, _ = talk
    other = make_assistant(name="Second opinion", engine="chat", model="other-test")

    response = post(alice_client, "assistant-switch", thread, assistant=other.pk)

    assert response.json()["assistant"]["name"] == "Second opinion"
    page = alice_client.get(reverse("thread-detail", args=[thread.pk])).content.decode()
    assert page.count("Switched to Second opinion") == 1
    response = post(alice_client, "message-create", thread, text="And now?")
    run = Run.objects.get(pk=response.json()["run"]["id"])
    assert run.assistant_id == other.pk
    finish(run.pk, "Still Ann")
    page = alice_client.get(reverse("thread-detail", args=[thread.pk])).content.decode()
    # The marker sits where the switch happened: after the first assistant's last answer,
    # before the question the second one answered.
    listed = page[page.index('<ol class="messages"') :]
    marker = listed.index("Switched to Second opinion")
    assert listed.index(">Ann<") < marker < listed.index("And now?") < listed.index("Still Ann")


def test_an_assistant_the_user_may_not_use_cannot_be_switched_to(alice_client, talk):
    thread, _, _ = talk
    retired = make_assistant(name="Retired", engine="chat", is_active=False)

    response = post(alice_client, "assistant-switch", thread, assistant=retired.pk)

    assert response.status_code == 404
    assert Thread.objects.get(pk=thread.pk).assistant_id == thread.assistant_id


def test_existing_threads_migrate_as_straight_lines(talk):
    thread, (q1, a1), (q2, a2) = talk
    retried = Run.objects.create(thread=thread, prompt=q2, status=RunStatus.COMPLETED)
    a2b = Message.objects.create(thread=thread, role="assistant", text="Ann!", run=retried)
    # As the database held them before the tree: no parents, no leaf, no answering assistant.
    Message.objects.update(parent=None)
    Thread.objects.update(current_leaf=None)
    Run.objects.update(assistant=None)
    migration = importlib.import_module("assistants_app.migrations.0011_message_tree")

    migration.straight_lines(apps, None)

    parents = dict(Message.objects.values_list("pk", "parent_id"))
    assert [parents[m.pk] for m in (q1, a1, q2, a2)] == [None, q1.pk, a1.pk, q2.pk]
    assert parents[a2b.pk] == q2.pk  # a retry's answer stays a version of the first one
    assert shown(thread) == ["My name is Ann", "Hello Ann", "What is my name?", "Ann!"]
    assert set(Run.objects.values_list("assistant_id", flat=True)) == {thread.assistant_id}


def test_two_processes_storing_one_answer_store_it_once_on_its_branch(alice_chat_thread):
    thread = alice_chat_thread
    prompt = Message.objects.create(thread=thread, role="user", text="Hi")
    run = Run.objects.create(thread=thread, prompt=prompt, remote_id="chat-1")
    update = RunUpdate(RunStatus.COMPLETED, [RemoteMessage("chat-1", "Hello")])

    async def both():
        loaded = [
            await Run.objects.select_related("thread__assistant").aget(pk=run.pk) for _ in range(2)
        ]
        return await asyncio.gather(*(runs.record(each, update) for each in loaded))

    outcomes = asyncio.run(both())

    assert sorted(outcomes) == [False, True]  # one stored it, the other found it ended
    answers = list(Message.objects.filter(role="assistant"))
    assert [(m.text, m.parent_id) for m in answers] == [("Hello", prompt.pk)]
    assert Thread.objects.get(pk=thread.pk).current_leaf_id == answers[0].pk


def test_a_message_sent_from_a_tab_that_missed_a_switch_goes_to_the_new_assistant(
    alice, alice_client, talk
):
    thread, _, _ = talk
    stale = Thread.objects.select_related("assistant").get(pk=thread.pk)  # a tab's view
    other = make_assistant(name="Second opinion", engine="chat", model="other-test")
    post(alice_client, "assistant-switch", thread, assistant=other.pk)  # another tab

    _, run = asyncio.run(services.submit_message(alice, stale, "Who answers?"))

    assert Run.objects.get(pk=run.pk).assistant_id == other.pk
    assert run.thread.assistant == other  # what the run was started with
