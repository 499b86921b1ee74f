"""The history a chat run sends: the thread's messages up to its prompt, within a budget."""

import pytest

from assistants_app.engines.base import Turn
from assistants_app.history import alternating, load_history
from assistants_app.models import Message, Run


@pytest.fixture
def say(alice_chat_thread):
    def say(role: str, text: str) -> Message:
        return Message.objects.create(thread=alice_chat_thread, role=role, text=text)

    return say


def run_for(prompt: Message) -> Run:
    return Run.objects.create(thread=prompt.thread, prompt=prompt)


def test_it_sends_the_whole_conversation_when_it_fits(say):
    say("user", "Hi")
    say("assistant", "Hello!")
    prompt = say("user", "What is 2+2?")

    assert load_history(run_for(prompt), max_chars=1000) == [
        Turn("user", "Hi"),
        Turn("assistant", "Hello!"),
        Turn("user", "What is 2+2?"),
    ]


def test_it_drops_the_oldest_messages_first(say):
    say("user", "a" * 50)
    say("assistant", "b" * 50)
    say("user", "c" * 10)
    say("assistant", "d" * 10)
    prompt = say("user", "e" * 10)
    instructions = len(prompt.thread.assistant.instructions)

    history = load_history(run_for(prompt), max_chars=instructions + 35)

    assert history == [Turn("user", "c" * 10), Turn("assistant", "d" * 10), Turn("user", "e" * 10)]


def test_the_instructions_count_against_the_budget(say):
    say("user", "Hi")
    say("assistant", "Hello!")
    prompt = say("user", "Bye")
    prompt.thread.assistant.instructions = "x" * 100
    run = run_for(prompt)

    assert load_history(run, max_chars=108) == [Turn("user", "Bye")]
    assert len(load_history(run, max_chars=111)) == 3


def test_it_always_sends_the_prompt_even_over_budget(say):
    say("user", "Hi")
    prompt = say("user", "p" * 500)

    assert load_history(run_for(prompt), max_chars=10) == [Turn("user", "p" * 500)]


def test_it_leaves_out_what_came_after_the_prompt(say):
    prompt = say("user", "Tell me a story")
    say("assistant", "Once upon")

    assert load_history(run_for(prompt), max_chars=1000) == [Turn("user", "Tell me a story")]


def test_it_does_not_mix_in_other_threads(say, bob_thread):
    Message.objects.create(thread=bob_thread, role="user", text="Bob's secret")
    prompt = say("user", "Hi")

    assert load_history(run_for(prompt), max_chars=1000) == [Turn("user", "Hi")]


def test_it_starts_with_the_user_and_alternates():
    turns = [
        Turn("assistant", "left over"),
        Turn("user", "Hi"),
        Turn("user", "Anyone there?"),
        Turn("assistant", "Yes."),
    ]

    assert alternating(turns) == [
        Turn("user", "Hi\n\nAnyone there?"),
        Turn("assistant", "Yes."),
    ]
